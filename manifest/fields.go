package manifest

import (
	"sort"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// This file is shoal's contract with users: the fields it reads and acts on, per kind. A field
// that exists in the upstream Kubernetes type but is missing here is refused with "is not
// supported by shoal", so nothing a user writes is silently ignored. The same tables drive the
// decoder (which walks the user-written YAML against them), and WriteReference, which renders
// docs/manifests.md; a test keeps that file equal to the generated text.
//
// Adding support for a field is a two-step change: add it here (with its default, if any, in
// words), then make the code that acts on it (defaults.go, validation, reconciler...).

// valueKind is how the decoder reads a value.
type valueKind uint8

const (
	kString      valueKind = iota // a YAML string (quote numbers and booleans)
	kInt32                        // an integer that fits in 32 bits
	kInt64                        // an integer
	kBool                         // true or false
	kQuantity                     // a Kubernetes quantity: 250m, 1.5, 64Mi, 1Gi
	kIntOrString                  // an integer or a string (a port name, a percentage)
	kBase64                       // a base64-encoded string
	kObject                       // a mapping with the fields listed
	kList                         // a sequence of elem
	kMap                          // a mapping from any string key to elem
	kSecretData                   // Secret data/stringData: SOPS ciphertext, handled apart
	kSOPS                         // a Secret's sops metadata: kept raw, not decoded
)

// schema describes one value: a scalar, an object with known fields, a list or a map.
type valueSchema struct {
	kind valueKind
	// title names a shared object, which the reference documents in its own section
	// ("Container"); inline objects have none and are documented under their parent.
	title  string
	doc    string
	fields []*fieldDef
	index  map[string]*fieldDef
	elem   *valueSchema
}

// field is one supported key of an object.
type fieldDef struct {
	name   string
	schema *valueSchema
	// def is the default applied when the field is not written, in words ("" = none). The code
	// that applies it is in defaults.go, and defaults_test.go tests each one.
	def string
	// doc says how shoal reads the value; restricted values are checked by validation.
	doc string
}

var (
	sString      = &valueSchema{kind: kString}
	sInt32       = &valueSchema{kind: kInt32}
	sInt64       = &valueSchema{kind: kInt64}
	sBool        = &valueSchema{kind: kBool}
	sQuantity    = &valueSchema{kind: kQuantity}
	sIntOrString = &valueSchema{kind: kIntOrString}
	sBase64      = &valueSchema{kind: kBase64}
	sSecretData  = &valueSchema{kind: kSecretData}
	sSOPS        = &valueSchema{kind: kSOPS}
	sStrings     = listSchema(sString)
	sStringMap   = mapSchema(sString)
)

func fld(name string, s *valueSchema, def, doc string) *fieldDef {
	return &fieldDef{name: name, schema: s, def: def, doc: doc}
}

// object builds an object schema; a non-empty title makes it a shared, separately documented one.
func objectSchema(title, doc string, fields ...*fieldDef) *valueSchema {
	s := &valueSchema{kind: kObject, title: title, doc: doc, fields: fields, index: make(map[string]*fieldDef, len(fields))}
	for _, fl := range fields {
		if _, dup := s.index[fl.name]; dup {
			panic("manifest: field " + fl.name + " listed twice in " + title)
		}
		s.index[fl.name] = fl
	}
	return s
}

func listSchema(elem *valueSchema) *valueSchema { return &valueSchema{kind: kList, elem: elem} }
func mapSchema(elem *valueSchema) *valueSchema  { return &valueSchema{kind: kMap, elem: elem} }

// kindInfo is one supported kind.
type kindInfo struct {
	apiVersion string
	kind       string
	namespaced bool
	doc        string
	schema     *valueSchema // the whole document
	new        func() runtime.Object
}

// kindCatalog is every supported kind, built once; it is never modified afterwards.
type kindCatalog struct {
	kinds  []*kindInfo // in reference order
	byKind map[string]*kindInfo
}

var supportedKinds = newCatalog()

func (c *kindCatalog) names() []string {
	n := make([]string, len(c.kinds))
	for i, k := range c.kinds {
		n[i] = k.kind
	}
	sort.Strings(n)
	return n
}

func newCatalog() *kindCatalog {
	meta := objectSchema("ObjectMeta", "The metadata of a namespaced object.",
		fld("name", sString, "", "Required. The object's name, unique per kind and namespace."),
		fld("namespace", sString, `"default"`, "The namespace; it should be declared by a Namespace object in the repository."),
		fld("labels", sStringMap, "", "Any keys. Used by selectors."),
		fld("annotations", sStringMap, "", "Any keys. Kept, not acted on."),
	)
	clusterMeta := objectSchema("", "",
		fld("name", sString, "", "Required. The namespace's name."),
		fld("labels", sStringMap, "", "Any keys."),
		fld("annotations", sStringMap, "", "Any keys. Kept, not acted on."),
	)
	templateMeta := objectSchema("", "",
		fld("labels", sStringMap, "", "Labels of each pod (or job) made from the template; must match the selector."),
		fld("annotations", sStringMap, "", "Any keys. Copied to each pod (or job)."),
	)
	pod := podSchemas()

	top := func(kind string, fields ...*fieldDef) *valueSchema {
		return objectSchema("", "", append([]*fieldDef{
			fld("apiVersion", sString, "", "Required."),
			fld("kind", sString, "", "Required: "+kind+"."),
		}, fields...)...)
	}
	metaField := fld("metadata", meta, "", "See [ObjectMeta](#objectmeta).")
	selector := fld("selector", pod.labelSelector, "", "Required. Must match the template's labels.")
	template := fld("template", pod.template, "", "Required.")
	minReady := fld("minReadySeconds", sInt32, "0", "Seconds a new pod must be ready before it counts as available.")
	revisionHistory := fld("revisionHistoryLimit", sInt32, "10", "How many old revisions shoal keeps for rollback.")

	deployment := top("Deployment", metaField, fld("spec", objectSchema("", "",
		fld("replicas", sInt32, "1", ""),
		selector,
		template,
		fld("strategy", objectSchema("", "",
			fld("type", sString, "RollingUpdate", "RollingUpdate or Recreate."),
			fld("rollingUpdate", objectSchema("", "",
				fld("maxSurge", sIntOrString, "25%", "A count or a percentage of replicas."),
				fld("maxUnavailable", sIntOrString, "25%", "A count or a percentage of replicas."),
			), "", "Only with type RollingUpdate."),
		), "", ""),
		minReady,
		fld("progressDeadlineSeconds", sInt32, "600", "A rollout that makes no progress for this long is reported as failed."),
		revisionHistory,
		fld("paused", sBool, "false", "A paused Deployment's pods are not changed when its template changes."),
	), "", ""))

	claimTemplate := objectSchema("", "",
		fld("metadata", objectSchema("", "",
			fld("name", sString, "", "Required. Claims are named `NAME-STATEFULSET-ORDINAL`."),
			fld("labels", sStringMap, "", "Any keys."),
		), "", ""),
		fld("spec", objectSchema("", "",
			fld("accessModes", sStrings, "", "ReadWriteOnce or ReadWriteOncePod."),
			fld("resources", objectSchema("", "",
				fld("requests", objectSchema("", "",
					fld("storage", sQuantity, "", "Required. The volume size."),
				), "", ""),
			), "", ""),
			fld("storageClassName", sString, "", "Unset only: shoal has one storage class, a directory on the node that first runs the pod."),
		), "", ""),
	)
	statefulSet := top("StatefulSet", metaField, fld("spec", objectSchema("", "",
		fld("replicas", sInt32, "1", ""),
		selector,
		template,
		fld("serviceName", sString, "", "The headless Service that gives each pod a stable DNS name."),
		fld("podManagementPolicy", sString, "OrderedReady", "OrderedReady or Parallel."),
		fld("updateStrategy", objectSchema("", "",
			fld("type", sString, "RollingUpdate", "RollingUpdate or OnDelete."),
			fld("rollingUpdate", objectSchema("", "",
				fld("partition", sInt32, "0", "Only pods with an ordinal at least this are updated."),
				fld("maxUnavailable", sIntOrString, "", "A count or a percentage of replicas; unset means 1."),
			), "set, with partition 0, for type RollingUpdate", ""),
		), "", ""),
		fld("volumeClaimTemplates", listSchema(claimTemplate), "", "One volume claim per pod per template."),
		fld("persistentVolumeClaimRetentionPolicy", objectSchema("", "",
			fld("whenDeleted", sString, "Retain", "Retain or Delete: Delete removes the claims' local volumes once the StatefulSet left Git and its pods are gone."),
			fld("whenScaled", sString, "Retain", "Retain or Delete: Delete removes the local volumes of ordinals scaled away once their pods are gone; scaling up again gives empty ones."),
		), "", ""),
		minReady,
		revisionHistory,
	), "", ""))

	daemonSet := top("DaemonSet", metaField, fld("spec", objectSchema("", "",
		selector,
		template,
		fld("updateStrategy", objectSchema("", "",
			fld("type", sString, "RollingUpdate", "RollingUpdate or OnDelete."),
			fld("rollingUpdate", objectSchema("", "",
				fld("maxUnavailable", sIntOrString, "1", "A count or a percentage of nodes."),
				fld("maxSurge", sIntOrString, "0", "A count or a percentage of nodes."),
			), "", "Only with type RollingUpdate."),
		), "", ""),
		minReady,
		revisionHistory,
	), "", ""))

	jobSpec := objectSchema("JobSpec", "The spec of a Job, and of the Jobs a CronJob makes.",
		fld("parallelism", sInt32, "1", ""),
		fld("completions", sInt32, "1 when parallelism is not set either", "Unset with parallelism set: the job is done when any pod succeeds."),
		fld("backoffLimit", sInt32, "6", "Failed pods allowed before the job fails."),
		fld("activeDeadlineSeconds", sInt64, "", "The job fails once it has run this long."),
		fld("completionMode", sString, "NonIndexed", "NonIndexed or Indexed."),
		fld("ttlSecondsAfterFinished", sInt32, "", "A finished job (and its pods) is removed after this long."),
		fld("template", pod.template, "", "Required. spec.restartPolicy must be set, to OnFailure or Never."),
	)
	job := top("Job", metaField, fld("spec", jobSpec, "", "See [JobSpec](#jobspec)."))
	cronJob := top("CronJob", metaField, fld("spec", objectSchema("", "",
		fld("schedule", sString, "", "Required. A cron expression (five fields, or a macro such as @hourly)."),
		fld("timeZone", sString, "", "An IANA time zone name such as Europe/Paris; unset means the leader's local time zone, as in Kubernetes."),
		fld("concurrencyPolicy", sString, "Allow", "Allow, Forbid or Replace."),
		fld("startingDeadlineSeconds", sInt64, "", "A run missed by more than this is skipped."),
		fld("suspend", sBool, "false", "A suspended CronJob starts no new jobs."),
		fld("successfulJobsHistoryLimit", sInt32, "3", ""),
		fld("failedJobsHistoryLimit", sInt32, "1", ""),
		fld("jobTemplate", objectSchema("", "",
			fld("metadata", templateMeta, "", ""),
			fld("spec", jobSpec, "", "See [JobSpec](#jobspec); Job defaults apply."),
		), "", "Required."),
	), "", ""))

	podKind := top("Pod", metaField, fld("spec", pod.spec, "", "See [PodSpec](#podspec)."))

	service := top("Service", metaField, fld("spec", objectSchema("", "",
		fld("type", sString, "ClusterIP", "ClusterIP or NodePort."),
		fld("clusterIP", sString, "allocated from the service range", `An address in the service range, or "None" for a headless Service.`),
		fld("ports", listSchema(objectSchema("", "",
			fld("name", sString, "", "Required when there is more than one port."),
			fld("protocol", sString, "TCP", "TCP or UDP."),
			fld("port", sInt32, "", "Required."),
			fld("targetPort", sIntOrString, "the value of port", "A container port number or name."),
			fld("nodePort", sInt32, "", "Only for type NodePort; allocated when unset."),
		)), "", ""),
		fld("selector", sStringMap, "", "Pods with all these labels receive the traffic. Without a selector the Service has no endpoints."),
		fld("sessionAffinity", sString, "None", "None or ClientIP."),
		fld("sessionAffinityConfig", objectSchema("", "",
			fld("clientIP", objectSchema("", "",
				fld("timeoutSeconds", sInt32, "10800 when sessionAffinity is ClientIP", ""),
			), "", ""),
		), "", ""),
		fld("externalTrafficPolicy", sString, "Cluster, for type NodePort", "Cluster or Local."),
		fld("publishNotReadyAddresses", sBool, "false", "Also route to pods that are not ready (and list them in DNS)."),
	), "", ""))

	configMap := top("ConfigMap", metaField,
		fld("data", sStringMap, "", "Any keys."),
		fld("binaryData", mapSchema(sBase64), "", "Any keys; values are base64."),
		fld("immutable", sBool, "false", ""),
	)
	secret := top("Secret", metaField,
		fld("type", sString, "Opaque", ""),
		fld("data", sSecretData, "", "Any keys; every value must be SOPS ciphertext (ENC[...])."),
		fld("stringData", sSecretData, "", "Any keys; every value must be SOPS ciphertext (ENC[...])."),
		fld("immutable", sBool, "false", ""),
		fld("sops", sSOPS, "", "Required when there is any data: the SOPS metadata (age recipients, MAC), kept as written for the node that decrypts."),
	)
	namespace := top("Namespace", fld("metadata", clusterMeta, "", ""))

	scalingRules := objectSchema("HPAScalingRules", "How fast a HorizontalPodAutoscaler may scale in one direction.",
		fld("stabilizationWindowSeconds", sInt32, "0 for scaleUp, 300 for scaleDown", ""),
		fld("selectPolicy", sString, "Max", "Max, Min or Disabled."),
		fld("policies", listSchema(objectSchema("", "",
			fld("type", sString, "", "Pods or Percent."),
			fld("value", sInt32, "", ""),
			fld("periodSeconds", sInt32, "", ""),
		)), "scaleUp: 4 Pods and 100 Percent per 15s; scaleDown: 100 Percent per 15s", ""),
	)
	hpa := top("HorizontalPodAutoscaler", metaField, fld("spec", objectSchema("", "",
		fld("scaleTargetRef", objectSchema("", "",
			fld("apiVersion", sString, "", "apps/v1."),
			fld("kind", sString, "", "Required: Deployment or StatefulSet."),
			fld("name", sString, "", "Required."),
		), "", "Required. The workload to scale, in the same namespace."),
		fld("minReplicas", sInt32, "1", ""),
		fld("maxReplicas", sInt32, "", "Required."),
		fld("metrics", listSchema(objectSchema("", "",
			fld("type", sString, "", "Resource."),
			fld("resource", objectSchema("", "",
				fld("name", sString, "", "cpu or memory."),
				fld("target", objectSchema("", "",
					fld("type", sString, "", "Utilization or AverageValue."),
					fld("averageUtilization", sInt32, "", "Percent of the pods' requests."),
					fld("averageValue", sQuantity, "", ""),
				), "", ""),
			), "", ""),
		)), "cpu at 80% average utilization", ""),
		fld("behavior", objectSchema("", "",
			fld("scaleUp", scalingRules, "", "See [HPAScalingRules](#hpascalingrules)."),
			fld("scaleDown", scalingRules, "", "See [HPAScalingRules](#hpascalingrules)."),
		), "", "When set, each unset part takes its default."),
	), "", ""))

	c := &kindCatalog{byKind: map[string]*kindInfo{}}
	add := func(apiVersion, kind string, namespaced bool, doc string, s *valueSchema, mk func() runtime.Object) {
		k := &kindInfo{apiVersion: apiVersion, kind: kind, namespaced: namespaced, doc: doc, schema: s, new: mk}
		c.kinds = append(c.kinds, k)
		c.byKind[kind] = k
	}
	add("apps/v1", "Deployment", true, "Runs replicas of a pod and replaces them on change.", deployment,
		func() runtime.Object { return &appsv1.Deployment{} })
	add("apps/v1", "StatefulSet", true, "Runs pods with stable names, ordinals and volumes.", statefulSet,
		func() runtime.Object { return &appsv1.StatefulSet{} })
	add("apps/v1", "DaemonSet", true, "Runs one pod on every (selected) node.", daemonSet,
		func() runtime.Object { return &appsv1.DaemonSet{} })
	add("batch/v1", "Job", true, "Runs pods to completion.", job,
		func() runtime.Object { return &batchv1.Job{} })
	add("batch/v1", "CronJob", true, "Makes Jobs on a schedule.", cronJob,
		func() runtime.Object { return &batchv1.CronJob{} })
	add("v1", "Pod", true, "One pod, bound to a node once and never moved.", podKind,
		func() runtime.Object { return &corev1.Pod{} })
	add("v1", "Service", true, "A stable virtual IP and DNS name in front of a set of pods.", service,
		func() runtime.Object { return &corev1.Service{} })
	add("v1", "ConfigMap", true, "Configuration data, projected into pods as files or environment.", configMap,
		func() runtime.Object { return &corev1.ConfigMap{} })
	add("v1", "Secret", true, "Secret data, SOPS-encrypted in Git and decrypted only on the node that runs a pod using it.", secret,
		func() runtime.Object { return &corev1.Secret{} })
	add("v1", "Namespace", false, "A namespace; objects name it in metadata.namespace.", namespace,
		func() runtime.Object { return &corev1.Namespace{} })
	add("autoscaling/v2", "HorizontalPodAutoscaler", true, "Scales a Deployment or StatefulSet on cpu or memory use.", hpa,
		func() runtime.Object { return &autoscalingv2.HorizontalPodAutoscaler{} })
	return c
}
