package plan

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
)

// configUser is one head object whose pods use a ConfigMap or Secret, and how.
type configUser struct {
	Key manifest.Key
	// Obj is the user in head.
	Obj *manifest.Object
	// Volume: mounted as files. Env: environment variables (env
	// valueFrom, envFrom). Pull: an imagePullSecret.
	Volume, Env, Pull bool
}

// usersOf returns the head objects that use the ConfigMap or Secret k, in Key order.
func (pl *planner) usersOf(k manifest.Key) []configUser {
	if pl.users == nil {
		pl.users = indexConfigUsers(pl.head)
	}
	return pl.users[k]
}

// indexConfigUsers finds every reference to a ConfigMap or Secret in the pod templates of head's
// workloads and in its bare Pods: volumes, env valueFrom, envFrom (in init and regular
// containers) and imagePullSecrets, the ways shoal's supported fields can name one. A reference names an object in the
// user's own namespace.
func indexConfigUsers(head *manifest.Set) map[manifest.Key][]configUser {
	byRef := map[manifest.Key]map[manifest.Key]*configUser{}
	for _, o := range head.Objects() {
		spec := podSpecOf(o)
		if spec == nil {
			continue
		}
		use := func(kind, name string, set func(*configUser)) {
			if name == "" {
				return
			}
			ref := manifest.Key{Kind: kind, Namespace: o.Key.Namespace, Name: name}
			if byRef[ref] == nil {
				byRef[ref] = map[manifest.Key]*configUser{}
			}
			u := byRef[ref][o.Key]
			if u == nil {
				u = &configUser{Key: o.Key, Obj: o}
				byRef[ref][o.Key] = u
			}
			set(u)
		}
		vol := func(u *configUser) { u.Volume = true }
		env := func(u *configUser) { u.Env = true }
		for _, v := range spec.Volumes {
			if v.ConfigMap != nil {
				use("ConfigMap", v.ConfigMap.Name, vol)
			}
			if v.Secret != nil {
				use("Secret", v.Secret.SecretName, vol)
			}
		}
		eachContainer(spec, func(envFrom []corev1.EnvFromSource, vars []corev1.EnvVar) {
			for _, f := range envFrom {
				if f.ConfigMapRef != nil {
					use("ConfigMap", f.ConfigMapRef.Name, env)
				}
				if f.SecretRef != nil {
					use("Secret", f.SecretRef.Name, env)
				}
			}
			for _, e := range vars {
				if e.ValueFrom == nil {
					continue
				}
				if r := e.ValueFrom.ConfigMapKeyRef; r != nil {
					use("ConfigMap", r.Name, env)
				}
				if r := e.ValueFrom.SecretKeyRef; r != nil {
					use("Secret", r.Name, env)
				}
			}
		})
		for _, s := range spec.ImagePullSecrets {
			use("Secret", s.Name, func(u *configUser) { u.Pull = true })
		}
	}
	out := make(map[manifest.Key][]configUser, len(byRef))
	for ref, users := range byRef {
		list := make([]configUser, 0, len(users))
		for _, u := range users {
			list = append(list, *u)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Key.Less(list[j].Key) })
		out[ref] = list
	}
	return out
}

func eachContainer(spec *corev1.PodSpec, f func([]corev1.EnvFromSource, []corev1.EnvVar)) {
	for _, c := range spec.InitContainers {
		f(c.EnvFrom, c.Env)
	}
	for _, c := range spec.Containers {
		f(c.EnvFrom, c.Env)
	}
}

// podSpecOf returns the pod template of a workload or the spec of a bare Pod; nil for others.
func podSpecOf(o *manifest.Object) *corev1.PodSpec {
	switch t := o.Obj.(type) {
	case *appsv1.Deployment:
		return &t.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return &t.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return &t.Spec.Template.Spec
	case *batchv1.Job:
		return &t.Spec.Template.Spec
	case *batchv1.CronJob:
		return &t.Spec.JobTemplate.Spec.Template.Spec
	case *corev1.Pod:
		return &t.Spec
	}
	return nil
}

// ConfigMap and Secret rules: a content change rolls the workloads that use it (shoal's rule;
// Kubernetes itself would not), unless a workload opts out.
func configConsequences(pl *planner, c manifest.Change) []string {
	switch c.Op {
	case manifest.Added:
		if users := pl.usersOf(c.Key); len(users) > 0 {
			return []string{"used by " + keyList(userKeys(users))}
		}
		return []string{"not used by any workload yet"}
	case manifest.Removed:
		if users := pl.usersOf(c.Key); len(users) > 0 {
			return []string{"still used by " + keyList(userKeys(users)) + ": their new pods cannot start without it"}
		}
		return []string{"delete it; no workload uses it"}
	}

	var out []string
	if k := dataKeys(c.Fields); k != "" {
		out = append(out, k)
	}
	var roll, later []manifest.Key
	var notes []string
	for _, u := range pl.usersOf(c.Key) {
		if pl.base.Get(u.Key) == nil {
			continue // created by this commit, with the new contents
		}
		switch u.Key.Kind {
		case "Job", "CronJob":
			later = append(later, u.Key)
			if u.Volume {
				notes = append(notes, u.Key.String()+" running pods: mounted files are updated in place")
			}
			continue
		}
		if optedOut(u.Obj) {
			notes = append(notes, u.Key.String()+" not rolled (opted out); "+inPlace(u))
			continue
		}
		if !u.Volume && !u.Env {
			// Pull secrets are not part of the template hash, as in Kubernetes.
			notes = append(notes, u.Key.String()+" not rolled (uses it as an imagePullSecret); "+inPlace(u))
			continue
		}
		switch t := u.Obj.Obj.(type) {
		case *corev1.Pod:
			// A bare Pod's identity is its spec, not the contents it references.
			notes = append(notes, u.Key.String()+" not replaced (a bare Pod); "+inPlace(u))
		case *appsv1.Deployment:
			if t.Spec.Paused {
				notes = append(notes, u.Key.String()+" is paused: it rolls when unpaused")
				continue
			}
			roll = append(roll, u.Key)
		case *appsv1.StatefulSet:
			if t.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
				notes = append(notes, u.Key.String()+" updates on delete: not rolled; "+inPlace(u))
				continue
			}
			roll = append(roll, u.Key)
			if ru := t.Spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil && *ru.Partition > 0 {
				notes = append(notes, fmt.Sprintf("%s rolls from ordinal %d; below it: %s", u.Key, *ru.Partition, inPlace(u)))
			}
		case *appsv1.DaemonSet:
			if t.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType {
				notes = append(notes, u.Key.String()+" updates on delete: not rolled; "+inPlace(u))
				continue
			}
			roll = append(roll, u.Key)
		}
	}
	if len(roll) > 0 {
		out = append(out, "workloads that use it roll: "+keyList(roll))
	}
	out = append(out, notes...)
	if len(later) > 0 {
		out = append(out, "runs started from now on see the new contents: "+keyList(later))
	}
	if len(roll)+len(notes)+len(later) == 0 {
		out = append(out, "no existing workload uses it")
	}
	return out
}

// inPlace says how an opted-out workload's pods see a change without a roll.
func inPlace(u configUser) string {
	var parts []string
	if u.Volume {
		parts = append(parts, "mounted files are updated in place (subPath mounts only when its pods are recreated)")
	}
	if u.Env {
		parts = append(parts, "environment variables change only when its pods restart")
	}
	if u.Pull {
		parts = append(parts, "image pulls use it from now on")
	}
	return strings.Join(parts, "; ")
}

func userKeys(users []configUser) []manifest.Key {
	keys := make([]manifest.Key, len(users))
	for i, u := range users {
		keys[i] = u.Key
	}
	return keys
}

// dataKeys summarises which data keys changed, by name only: for a Secret that is all a plan
// may say. "keys changed: a, b; added: c; removed: d".
func dataKeys(fields []manifest.FieldChange) string {
	var changed, added, removed []string
	for _, f := range fields {
		var key string
		for _, p := range []string{"data[", "binaryData["} {
			if strings.HasPrefix(f.Path, p) && strings.HasSuffix(f.Path, "]") {
				key = f.Path[len(p) : len(f.Path)-1]
			}
		}
		switch {
		case key == "":
		case f.Old == "":
			added = append(added, key)
		case f.New == "":
			removed = append(removed, key)
		default:
			changed = append(changed, key)
		}
	}
	var parts []string
	for _, p := range []struct {
		label string
		keys  []string
	}{{"keys changed", changed}, {"keys added", added}, {"keys removed", removed}} {
		if len(p.keys) > 0 {
			parts = append(parts, p.label+": "+strings.Join(p.keys, ", "))
		}
	}
	return strings.Join(parts, "; ")
}

// Namespace rules: removing a Namespace takes everything in it, whatever their annotations.
func namespaceConsequences(pl *planner, c manifest.Change) []string {
	switch c.Op {
	case manifest.Added:
		return []string{"create the namespace"}
	case manifest.Changed:
		return []string{"settings changed"}
	}
	var held []manifest.Key
	kept := 0
	for _, o := range pl.base.Objects() {
		if o.Key.Namespace == c.Key.Name {
			held = append(held, o.Key)
			if annotation(o, manifest.AnnotationPrune) == manifest.PruneDisabled {
				kept++
			}
		}
	}
	if len(held) == 0 {
		return []string{"delete the namespace; it held nothing"}
	}
	out := []string{fmt.Sprintf("deletes everything it held: %s: %s", count(len(held), "object"), keyList(held))}
	if kept > 0 {
		out = append(out, fmt.Sprintf("including %s with prune disabled: a namespace takes everything in it", count(kept, "object")))
	}
	return out
}
