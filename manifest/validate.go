package manifest

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// Validate checks a whole Set and returns every problem found, sorted by file and line.
//
// The objects are expected to be decoded with Kubernetes' defaults applied (Decode does that),
// so a field Kubernetes defaults is only checked when it holds a value Kubernetes would reject.
// Checks that span objects (a Service's selector, a volume's ConfigMap, a StatefulSet's
// headless Service, two Services claiming one ClusterIP, two StatefulSets making one claim name) look objects up by Key in the Set, so
// the whole pass is linear in the number of objects.
//
// Validate never reads a Secret's values: it knows their keys only (SecretInfo), and no message
// quotes a value.
func Validate(s *Set) ErrorList {
	return validate(s, runtime.GOMAXPROCS(0))
}

// minObjectsPerWorker keeps small sets on one goroutine, where starting more costs more than
// it saves.
const minObjectsPerWorker = 512

// validate checks s on up to workers goroutines. Each takes a contiguous run of the Set (in key
// order) with its own error list; the checks between objects that need a first-come order (two
// Services claiming one ClusterIP or node port) are collected as claims and settled afterwards
// in key order, so the result does not depend on the number of workers.
func validate(s *Set, workers int) ErrorList {
	objs := s.Objects()
	workers = max(1, min(workers, len(objs)/minObjectsPerWorker))
	shared := &validateShared{set: s}
	vs := make([]*validator, workers)
	chunk := (len(objs) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := range workers {
		v := &validator{set: s, shared: shared}
		vs[w] = v
		part := objs[min(w*chunk, len(objs)):min((w+1)*chunk, len(objs))]
		wg.Go(func() {
			for _, o := range part {
				v.object(o)
			}
		})
	}
	wg.Wait()

	all := &validator{set: s, shared: shared}
	for _, v := range vs {
		all.errs = append(all.errs, v.errs...)
		all.ipClaims = append(all.ipClaims, v.ipClaims...)
		all.portClaims = append(all.portClaims, v.portClaims...)
		all.claimPrefixes = append(all.claimPrefixes, v.claimPrefixes...)
	}
	all.settleClaims()
	all.errs.Sort()
	return all.errs
}

// validator carries one worker's share of a Validate pass: the problems it found and the
// claims it saw.
type validator struct {
	set    *Set
	shared *validateShared
	errs   ErrorList

	// ipClaims and portClaims are the explicit ClusterIPs and node ports Services ask for, in
	// key order, settled by settleClaims.
	ipClaims   []ipClaim
	portClaims []portClaim
	// claimPrefixes are the StatefulSets' claim names less the ordinal, in key order, settled
	// by settleClaims (validate_workloads.go).
	claimPrefixes []claimPrefix
}

// validateShared is what a pass's workers share: indexes built once, on first use.
type validateShared struct {
	set           *Set
	workloadsOnce sync.Once
	workloads     *workloadIndex // see validate_service.go
}

// errorf records a problem with field path of object o, positioned where path was written.
func (v *validator) errorf(o *Object, path, format string, args ...any) {
	v.errs = append(v.errs, &Error{
		Source:  o.At(path),
		Object:  o.Key,
		Field:   path,
		Message: fmt.Sprintf(format, args...),
	})
}

// object runs the checks for one object: its metadata, then its kind's own rules.
func (v *validator) object(o *Object) {
	if o == nil || o.Obj == nil {
		return
	}
	switch obj := o.Obj.(type) {
	case *corev1.Namespace:
		v.meta(o, nameDNSLabel)
		v.namespaceObject(o)
	case *corev1.Pod:
		v.meta(o, nameDNSSubdomain)
		v.podSpec(&podContext{o: o, path: "spec", owner: ownerPod}, &obj.Spec)
	case *corev1.Service:
		v.meta(o, nameDNSLabel)
		v.service(o, obj)
	case *corev1.ConfigMap:
		v.meta(o, nameDNSSubdomain)
		v.configMap(o, obj)
	case *corev1.Secret:
		v.meta(o, nameDNSSubdomain)
		v.secret(o, obj)
	case *appsv1.Deployment:
		v.meta(o, nameDNSSubdomain)
		v.deployment(o, obj)
	case *appsv1.StatefulSet:
		v.meta(o, nameStatefulSet)
		v.statefulSet(o, obj)
	case *appsv1.DaemonSet:
		v.meta(o, nameDNSSubdomain)
		v.daemonSet(o, obj)
	case *batchv1.Job:
		v.meta(o, nameDNSSubdomain)
		v.job(o, "spec", &obj.Spec)
	case *batchv1.CronJob:
		v.meta(o, nameCronJob)
		v.cronJob(o, obj)
	case *autoscalingv2.HorizontalPodAutoscaler:
		v.meta(o, nameDNSSubdomain)
		v.hpa(o, obj)
	default:
		// Decode refuses kinds it does not know; an object of another type can only come from a
		// caller building a Set by hand.
		v.errorf(o, "kind", "kind %T is not supported by shoal", o.Obj)
	}
}

// indexPath renders a list element path: indexPath("spec.ports", 2) = "spec.ports[2]".
func indexPath(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

// joinMsgs joins the messages an apimachinery validation function returns into one clause.
func joinMsgs(msgs []string) string {
	return strings.Join(msgs, "; ")
}

// keyPath renders a map entry's path the way Decode records it: keyPath("metadata.labels",
// "app") = "metadata.labels[app]", so keys with dots or slashes stay one path element.
func keyPath(path, key string) string {
	return path + "[" + key + "]"
}
