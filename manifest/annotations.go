package manifest

// The annotations shoal reads from objects. They are part of the manifest format: the plan
// predicts what the reconciler does with them, and both read them from here.
const (
	// AnnotationPrune set to PruneDisabled on an object means: when the object is removed from
	// Git, leave it running and stop managing it.
	AnnotationPrune = "shoal.dev/prune"
	PruneDisabled   = "disabled"
	// AnnotationRolloutOnConfigChange set to "false" on a workload means: do not roll it when a
	// ConfigMap or Secret it uses changes; its node updates the pods' mounted configMap and
	// secret volumes in place, while env and subPath mounts keep what the containers started
	// with, as in Kubernetes.
	AnnotationRolloutOnConfigChange = "shoal.dev/rollout-on-config-change"
)
