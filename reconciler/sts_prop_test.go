package reconciler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/shoal-dev/shoal/state"
)

// statefulSetVolumesYAML is the property test's StatefulSet, with a claim template and the given
// persistentVolumeClaimRetentionPolicy (YAML flow mapping) when retention is not "".
func statefulSetVolumesYAML(replicas int, policy string, partition int, image, retention string) string {
	volumes := ""
	if retention != "" {
		volumes = `
  persistentVolumeClaimRetentionPolicy: ` + retention + `
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}`
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  replicas: %d
  serviceName: db
  podManagementPolicy: %s
  selector: {matchLabels: {app: db}}
  updateStrategy: {rollingUpdate: {partition: %d}}%s
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:%s"}]
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
`, replicas, policy, partition, volumes, image)
}

// TestStatefulSetNameNeverLiveTwice: over random histories (scaling, new images and
// partitions, pods failing and becoming ready, nodes unreachable, back, and declared gone),
// no pod name ever runs on two nodes at once, even though an unreachable node keeps running
// what it had; OrderedReady creates an ordinal only when every lower one is available; and
// once the world calms down (the operator declares the unreachable nodes gone) the set
// converges to its replicas, every ordinal at or above the partition on the new revision.
//
// The set has a claim template with a random retention policy, is sometimes annotated
// shoal.dev/prune: disabled, and is sometimes removed from Git and brought back: the nodes
// (world.sync) report, and the test fails on, any pod started on a volume being deleted or with
// a fresh claim that has a record, and any volume marked for deletion while a pod of its claim
// runs anywhere; no volume of a prune-disabled set is marked while the set is out of Git; after
// the calm every live pod runs on its claim's volume's node.
func TestStatefulSetNameNeverLiveTwice(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(t)
		policy := rapid.SampledFrom([]string{"OrderedReady", "Parallel"}).Draw(rt, "policy")
		replicas := rapid.IntRange(1, 5).Draw(rt, "replicas")
		partition, image := 0, "v1"
		retention := rapid.SampledFrom([]string{"{}", "{whenScaled: Delete}", "{whenDeleted: Delete}", "{whenScaled: Delete, whenDeleted: Delete}"}).Draw(rt, "retention")
		nodes := rapid.IntRange(1, 4).Draw(rt, "nodes")
		for i := range nodes {
			w.addNode(fmt.Sprintf("n%d", i+1))
		}
		keep := rapid.Bool().Draw(rt, "pruneDisabled")
		inGit := true
		commit := func() {
			doc := statefulSetVolumesYAML(replicas, policy, partition, image, retention)
			if keep {
				doc = strings.Replace(doc, "metadata: {name: db, namespace: default}\nspec:", "metadata: {name: db, namespace: default, annotations: {shoal.dev/prune: disabled}}\nspec:", 1)
			}
			w.commitYAML(doc)
			inGit = true
		}
		commit()

		noTwice := func(when string) {
			for name, on := range w.liveNames() {
				if len(on) > 1 {
					rt.Fatalf("%s: %s runs on %v\n%s", when, name, on, describePods(w.store.Snapshot()))
				}
			}
			if len(w.violations) > 0 {
				rt.Fatalf("%s: %s\n%s\n%s", when, strings.Join(w.violations, "; "), describePods(w.store.Snapshot()), describeVolumes(w.store.Snapshot(), w.now))
			}
		}
		reconcile := func() {
			before := w.store.Snapshot()
			p := w.reconcile()
			if keep && !inGit && len(p.DeleteVolumes) > 0 {
				rt.Fatalf("volumes %v of a prune-disabled set marked for deletion after it left Git\n%s", p.DeleteVolumes, describeVolumes(before, w.now))
			}
			if policy != "OrderedReady" {
				return
			}
			for _, c := range p.Create {
				ord, _ := ordinalOf("db", c.Name)
				for i := range ord {
					lower := before.PodByName("default", fmt.Sprintf("db-%d", i))
					if lower == nil || !lower.Status.Ready || lower.Desired != state.DesiredRun || lower.Status.Phase != state.PhaseRunning {
						rt.Fatalf("OrderedReady created %s while db-%d was not ready\n%s", c.Name, i, describePods(before))
					}
				}
			}
		}

		for range rapid.IntRange(5, 60).Draw(rt, "steps") {
			reconcile()
			noTwice("after reconcile")
			switch rapid.IntRange(0, 11).Draw(rt, "event") {
			case 0, 1:
				w.schedule()
			case 2:
				w.setPods([]string{"all"}, true, state.PhaseRunning)
			case 3:
				w.setPods([]string{pick(rt, w, "ready")}, true, state.PhaseRunning)
			case 4:
				w.setPods([]string{pick(rt, w, "fail")}, false, state.PhaseFailed)
			case 5:
				w.now = w.now.Add(time.Duration(rapid.IntRange(1, 30).Draw(rt, "tick")) * time.Second)
			case 6, 7:
				n := fmt.Sprintf("n%d", rapid.IntRange(1, nodes).Draw(rt, "node"))
				node := w.store.Snapshot().Node(n)
				switch rapid.IntRange(0, 4).Draw(rt, "nodeEvent") {
				case 0:
					if node.Status == state.NodeReady {
						w.killNode(n)
					}
				case 3:
					// Unreachable, its pods not (yet) marked lost.
					if node.Status == state.NodeReady {
						w.setNode(n, state.NodeNotReady)
					}
				case 1:
					if node.Status == state.NodeNotReady {
						w.setNode(n, state.NodeReady)
						w.sync()
						w.releaseLost(n)
					}
				case 2:
					if node.Status == state.NodeNotReady {
						w.setNode(n, state.NodeGone)
					}
				case 4:
					// Binds and starts pods, and is cut off before its report lands.
					if node.Status == state.NodeReady {
						w.startUnreported(n)
					}
				}
			case 8:
				nodes++
				w.addNode(fmt.Sprintf("n%d", nodes))
			case 9:
				image = rapid.SampledFrom([]string{"v1", "v2", "v3"}).Draw(rt, "image")
				partition = rapid.IntRange(0, 3).Draw(rt, "partition")
				commit()
			case 10:
				replicas = rapid.IntRange(0, 5).Draw(rt, "newReplicas")
				commit()
			case 11:
				// Removed from Git (pruned); the next commit of the set brings it back.
				w.commitYAML("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: default}\ndata: {a: b}\n")
				inGit = false
			}
			noTwice("after a world event")
		}

		// Calm: the operator declares every unreachable node, and every node holding a lost
		// pod, gone; pods start and become ready as soon as they can.
		snap := w.store.Snapshot()
		for _, n := range snap.Nodes() {
			lost := false
			for _, p := range snap.PodsOnNode(n.Name) {
				lost = lost || p.Status.Phase == state.PhaseLost
			}
			if n.Status == state.NodeNotReady || lost {
				w.setNode(n.Name, state.NodeGone)
			}
		}
		w.addNode("spare")
		commit()
		for range 60 {
			reconcile()
			noTwice("calm")
			w.schedule()
			w.setPods([]string{"all"}, true, state.PhaseRunning)
			w.now = w.now.Add(5 * time.Second)
		}
		p := w.reconcile()
		st := p.Status[0]
		var names []string
		for _, pod := range w.store.Snapshot().PodsByOwner("default", "StatefulSet", "db") {
			names = append(names, pod.Name)
		}
		wantUpdated := max(replicas-partition, 0)
		if !p.Empty() || st.Current != replicas || st.Available != replicas || st.Updated < wantUpdated || len(names) != replicas {
			rt.Fatalf("did not converge: %+v, pods %s\n%s", st, strings.Join(names, " "), describePods(w.store.Snapshot()))
		}
		snap = w.store.Snapshot()
		for _, pod := range snap.PodsByOwner("default", "StatefulSet", "db") {
			if v := snap.Volume("default", ClaimName("data", pod.Name)); v == nil || v.Node != pod.NodeName || !v.Deleting.IsZero() {
				rt.Fatalf("pod %s on %s: its volume %+v\n%s", pod.Name, pod.NodeName, v, describeVolumes(snap, w.now))
			}
		}
	})
}
