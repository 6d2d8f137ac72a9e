package reconciler

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/state"
)

// TestScripts runs the golden scripts in testdata. Commands:
//
//	add-node N...      nodes join, Ready
//	label-node N k=v...           labels a node
//	taint-node N k=v:Effect...    taints a node
//	kill-node N...     nodes become unreachable; their pods are marked lost (the health loop)
//	revive-node N...   nodes are Ready again
//	gone-node N...     nodes are declared gone (known dead)
//	commit             input: YAML; pins a new commit (c1, c2, ...) at the current time
//	reconcile          runs the controllers, prints the plan and applies it
//	reconcile crash    runs the controllers and drops the plan (the leader died)
//	reconcile stale    runs the controllers on the view saved by save-view and applies the
//	                   plan, printing what the store rejected (a new leader acting on a
//	                   stale view)
//	save-view          saves the current view of the store
//	schedule           binds unplaced pods; reachable nodes start, stop and clean up pods
//	pod-ready P...     pods become ready (P: a name, a prefix ending in '*', or "all")
//	pod-unready P...   pods stop being ready
//	pod-fail P...      pods fail
//	pod-succeed P...   pods succeed (their containers exited 0)
//	tick D             time moves by D (a Go duration)
//	pods               lists the pod records
//	volumes            lists the volume records
//	status             prints the last plan's workload status
//	converge [step=D]  repeats {reconcile; schedule; pod-ready all; tick D} until a reconcile
//	                   does nothing and every workload is complete; prints the rounds and the
//	                   time taken
//
// Rewrite the expected output with: go test ./reconciler -run TestScripts -rewrite
func TestScripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			w := newWorld(t)
			datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
				w.t = t
				out := w.command(d)
				for _, v := range w.violations {
					t.Errorf("%s: %s", d.Pos, v)
				}
				w.violations = nil
				return out
			})
		})
	}
}

func (w *world) command(d *datadriven.TestData) string {
	var args []string
	for _, a := range d.CmdArgs {
		args = append(args, a.String())
	}
	switch d.Cmd {
	case "add-node":
		for _, n := range args {
			w.addNode(n)
		}
	case "label-node", "taint-node":
		// label-node N k=v...; taint-node N key=value:Effect...
		n := w.store.Snapshot().Node(args[0]).Copy()
		for _, a := range args[1:] {
			if d.Cmd == "label-node" {
				k, v, _ := strings.Cut(a, "=")
				if n.Labels == nil {
					n.Labels = map[string]string{}
				}
				n.Labels[k] = v
				continue
			}
			kv, eff, _ := strings.Cut(a, ":")
			k, v, _ := strings.Cut(kv, "=")
			n.Taints = append(n.Taints, corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(eff)})
		}
		w.apply(&state.UpsertNode{Node: *n})
	case "kill-node":
		for _, n := range args {
			w.killNode(n)
		}
	case "revive-node":
		for _, n := range args {
			w.setNode(n, state.NodeReady)
		}
	case "gone-node":
		for _, n := range args {
			w.setNode(n, state.NodeGone)
		}
	case "commit":
		w.commitYAML(d.Input)
		return "pinned " + w.commit
	case "reconcile":
		before := w.store.Snapshot()
		if d.HasArg("crash") {
			// The leader decides and dies before its commands commit.
			p, err := Reconcile(w.input(before))
			if err != nil {
				w.t.Fatal(err)
			}
			return describePlan(before, p, w.now) + "\n(leader lost: nothing applied)"
		}
		if d.HasArg("stale") {
			// A new leader that decides from the view saved by "save-view", older than the
			// store, and commits: the store checks each command against its current state.
			p, err := Reconcile(w.input(w.saved))
			if err != nil {
				w.t.Fatal(err)
			}
			var b strings.Builder
			b.WriteString(describePlan(w.saved, p, w.now))
			for _, c := range p.Commands() {
				for _, rej := range w.apply(c).Rejected {
					name := rej.UID
					for _, cp := range p.Create {
						if cp.UID == rej.UID {
							name = cp.Name
						}
					}
					fmt.Fprintf(&b, "\nrejected %s: %s", name, rej.Reason)
				}
			}
			return b.String()
		}
		p := w.reconcile()
		return describePlan(before, p, w.now)
	case "save-view":
		w.saved = w.store.Snapshot()
		return ""
	case "schedule":
		return strings.Join(w.schedule(), "\n")
	case "pod-ready":
		return strings.Join(w.setPods(args, true, state.PhaseRunning), "\n")
	case "pod-unready":
		return strings.Join(w.setPods(args, false, state.PhaseRunning), "\n")
	case "pod-succeed":
		return strings.Join(w.setPods(args, false, state.PhaseSucceeded), "\n")
	case "pod-fail":
		return strings.Join(w.setPods(args, false, state.PhaseFailed), "\n")
	case "tick":
		dur, err := time.ParseDuration(args[0])
		if err != nil {
			w.t.Fatal(err)
		}
		w.now = w.now.Add(dur)
		return "now +" + w.now.Sub(epoch).String()
	case "pods":
		return describePods(w.store.Snapshot())
	case "volumes":
		return describeVolumes(w.store.Snapshot(), w.now)
	case "status":
		return describeStatus(w.last)
	case "converge":
		step := 5 * time.Second
		if d.HasArg("step") {
			var v string
			d.ScanArgs(w.t, "step", &v)
			var err error
			if step, err = time.ParseDuration(v); err != nil {
				w.t.Fatal(err)
			}
		}
		return w.converge(step)
	default:
		w.t.Fatalf("unknown command %q", d.Cmd)
	}
	return ""
}

func describePlan(before *state.Snapshot, p *Plan, now time.Time) string {
	var b strings.Builder
	name := func(uid string) string {
		if pod := before.Pod(uid); pod != nil {
			return pod.Name
		}
		return uid
	}
	for _, v := range p.Volumes {
		fmt.Fprintf(&b, "record-volume %s/%s on %s (pod %s, whenDeleted=%s whenScaled=%s%s)\n", v.Namespace, v.Claim, v.Node, v.Pod, v.WhenDeleted, v.WhenScaled, keepFlag(v.Keep))
	}
	for _, v := range p.UpdateVolumes {
		fmt.Fprintf(&b, "update-volume %s/%s on %s (pod %s, whenDeleted=%s whenScaled=%s%s)\n", v.Namespace, v.Claim, v.Node, v.Pod, v.WhenDeleted, v.WhenScaled, keepFlag(v.Keep))
	}
	for _, v := range p.ForgetVolumes {
		fmt.Fprintf(&b, "forget-volume %s/%s on %s\n", v.Namespace, v.Claim, v.Node)
	}
	for _, uid := range p.Delete {
		fmt.Fprintf(&b, "remove-record %s\n", name(uid))
	}
	for _, v := range p.DeleteVolumes {
		fmt.Fprintf(&b, "delete-volume %s/%s on %s\n", v.Namespace, v.Claim, v.Node)
	}
	for _, c := range p.Desired {
		fmt.Fprintf(&b, "desired %s %s\n", name(c.UID), c.Desired)
	}
	for _, c := range p.Create {
		fmt.Fprintf(&b, "create %s rev=%s commit=%s", c.Name, c.TemplateHash, c.Commit)
		if c.Spec.PinnedNode != "" {
			fmt.Fprintf(&b, " pinned=%s", c.Spec.PinnedNode)
		}
		if len(c.Spec.FreshClaims) > 0 {
			fmt.Fprintf(&b, " fresh=%s", strings.Join(c.Spec.FreshClaims, ","))
		}
		b.WriteString("\n")
	}
	for _, e := range p.Events {
		fmt.Fprintf(&b, "event %s %s %s: %s (%s)\n", e.Key, e.Type, e.Reason, e.Message, e.Commit)
	}
	if !p.NextAt.IsZero() {
		fmt.Fprintf(&b, "next in %s\n", p.NextAt.Sub(now))
	}
	if b.Len() == 0 {
		return "nothing to do"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func describePods(s *state.Snapshot) string {
	pods := s.Pods()
	sort.Slice(pods, func(i, j int) bool { return pods[i].Name < pods[j].Name })
	var b strings.Builder
	for _, p := range pods {
		fmt.Fprintf(&b, "%s rev=%s %s %s", p.Name, p.TemplateHash, p.Desired, p.Status.Phase)
		if i, ok := p.Labels[LabelJobCompletionIdx]; ok {
			fmt.Fprintf(&b, " index=%s", i)
		}
		if p.Status.Ready {
			b.WriteString(" ready")
		}
		if p.NodeName != "" {
			fmt.Fprintf(&b, " on %s", p.NodeName)
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return "no pods"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// keepFlag prints a volume record's Keep (prune disabled).
func keepFlag(keep bool) string {
	if keep {
		return " keep"
	}
	return ""
}

func describeVolumes(s *state.Snapshot, now time.Time) string {
	var b strings.Builder
	for _, v := range s.Volumes() {
		fmt.Fprintf(&b, "%s/%s on %s", v.Namespace, v.Claim, v.Node)
		if v.Owner != "" {
			fmt.Fprintf(&b, " pod=%s whenDeleted=%s whenScaled=%s%s", v.Pod, v.WhenDeleted, v.WhenScaled, keepFlag(v.Keep))
		}
		fmt.Fprintf(&b, " created -%s", now.Sub(v.Created))
		if !v.Deleting.IsZero() {
			fmt.Fprintf(&b, " deleting since -%s", now.Sub(v.Deleting))
		}
		b.WriteString("\n")
	}
	if b.Len() == 0 {
		return "no volumes"
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func describeStatus(p *Plan) string {
	if p == nil {
		return "no reconcile yet"
	}
	var b strings.Builder
	for _, s := range p.Status {
		if s.Key.Kind == "CronJob" {
			fmt.Fprintf(&b, "%s active=%d last-schedule=%s\n", s.Key, s.Current, s.LastSchedule.Format(time.RFC3339))
		} else if s.Key.Kind == "Job" {
			fmt.Fprintf(&b, "%s run=%s completions=%d active=%d ready=%d succeeded=%d failed=%d\n",
				s.Key, s.Revision, s.Replicas, s.Current, s.Ready, s.Succeeded, s.Failed)
		} else {
			fmt.Fprintf(&b, "%s rev=%s replicas=%d current=%d updated=%d ready=%d available=%d terminating=%d\n",
				s.Key, s.Revision, s.Replicas, s.Current, s.Updated, s.Ready, s.Available, s.Terminating)
		}
		for _, c := range s.Conditions {
			fmt.Fprintf(&b, "  %s=%s %s", c.Type, c.Status, c.Reason)
			if c.Message != "" {
				fmt.Fprintf(&b, ": %s", c.Message)
			}
			b.WriteString("\n")
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// converge runs the cluster until it is quiet: every pod that starts becomes ready at once.
func (w *world) converge(step time.Duration) string {
	start := w.now
	for round := 1; round <= 200; round++ {
		p := w.reconcile()
		w.schedule()
		w.setPods([]string{"all"}, true, state.PhaseRunning)
		if p.Empty() && done(p) {
			return fmt.Sprintf("converged in %d rounds, %s", round, w.now.Sub(start))
		}
		w.now = w.now.Add(step)
	}
	return "did not converge in 200 rounds"
}

func done(p *Plan) bool {
	for _, s := range p.Status {
		for _, c := range s.Conditions {
			if c.Type == "Progressing" && c.Reason != ReasonNewRevision {
				return false
			}
		}
	}
	return true
}
