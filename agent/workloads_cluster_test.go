package agent

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/state"
)

// webPods returns the records of Deployment web, and those meant to run
// and not finished (the pods a rollout's surge bound counts).
func webPods(v *state.Snapshot) (all, live []*state.Pod) {
	for _, p := range v.PodsByOwner("default", "Deployment", "web") {
		all = append(all, p)
		if p.Desired == state.DesiredRun && !p.Status.Phase.Terminal() {
			live = append(live, p)
		}
	}
	return all, live
}

// webRolledOut checks that Deployment web has exactly replicas pods, every
// one of revision hash, running and ready, and nothing else.
func webRolledOut(v *state.Snapshot, replicas int, hash string) error {
	all, _ := webPods(v)
	if len(all) != replicas {
		return fmt.Errorf("%d pod records of web, want %d", len(all), replicas)
	}
	for _, p := range all {
		if p.TemplateHash != hash || p.Labels[reconciler.LabelTemplateHash] != hash {
			return fmt.Errorf("pod %s: template hash %s (label %s), want %s", p.Name, p.TemplateHash, p.Labels[reconciler.LabelTemplateHash], hash)
		}
		if p.Desired != state.DesiredRun {
			return fmt.Errorf("pod %s: desired %v", p.Name, p.Desired)
		}
		if err := running(v, p.Name); err != nil {
			return err
		}
	}
	return nil
}

// templateHash is the revision the reconciler gives Deployment name of
// the manifest text.
func templateHash(t *testing.T, name, text string) string {
	t.Helper()
	set := loadSet(t, map[string]string{"d.yaml": text})
	d := set.Get(manifest.Key{Kind: "Deployment", Namespace: "default", Name: name}).Obj.(*appsv1.Deployment)
	return reconciler.TemplateHash("default", &d.Spec.Template, nil)
}

// surgeWatch follows one replica through every state change and records
// the most live pods of web it saw at once.
type surgeWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	most   int
	at     string
}

func watchSurge(s *state.Store) *surgeWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &surgeWatch{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			v := s.Snapshot()
			_, live := webPods(v)
			w.mu.Lock()
			if len(live) > w.most {
				w.most, w.at = len(live), v.DumpString()
			}
			w.mu.Unlock()
			if v.Wait(ctx, state.TablePods) != nil {
				return
			}
		}
	}()
	return w
}

func (w *surgeWatch) stop() (int, string) {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.most, w.at
}

func TestDeploymentRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-agent cluster")
	}
	const replicas, maxSurge = 3, 1
	repo := newTestRepo(t)
	solo := podYAML("solo", "example.com/solo:1")
	web1 := deploymentYAML("web", "example.com/web:1", replicas)
	web2 := deploymentYAML("web", "example.com/web:2", replicas)
	h1, h2 := templateHash(t, "web", web1), templateHash(t, "web", web2)
	if h1 == h2 {
		t.Fatalf("both templates hash to %s", h1)
	}
	c1 := repo.commit("web v1", map[string]string{"solo.yaml": solo, "web.yaml": web1})

	c := newTestCluster(t, repo, 3)
	for _, n := range []string{"n1", "n2", "n3"} {
		c.start(n)
	}
	all := c.live()

	// Three pods created, scheduled, run and Ready, beside the bare pod.
	waitState(t, "web v1 rolled out", all, func(v *state.Snapshot) error {
		if err := pinned(v, c1); err != nil {
			return err
		}
		if err := running(v, "solo"); err != nil {
			return err
		}
		return webRolledOut(v, replicas, h1)
	})
	v := all[0].Store().Snapshot()
	checkPlacement(t, c, v)
	soloUID := podNamed(v, "solo").UID
	old, _ := webPods(v)
	for _, p := range old {
		if got := c.agents[p.NodeName].rt.imagesOf(p.UID); !reflect.DeepEqual(got, []string{"example.com/web:1"}) {
			t.Errorf("pod %s on %s runs %v", p.Name, p.NodeName, got)
		}
	}

	// A new image rolls out: every pod of the new revision, never more
	// than replicas+maxSurge pods meant to run at once.
	surge := watchSurge(all[0].Store())
	c2 := repo.commit("web v2", map[string]string{"solo.yaml": solo, "web.yaml": web2})
	waitState(t, "web v2 rolled out", all, func(v *state.Snapshot) error {
		if err := pinned(v, c2); err != nil {
			return err
		}
		return webRolledOut(v, replicas, h2)
	})
	most, at := surge.stop()
	if most > replicas+maxSurge {
		t.Errorf("%d pods of web live at once, more than %d+%d:\n%s", most, replicas, maxSurge, at)
	}
	if most <= replicas {
		t.Errorf("at most %d pods of web live at once: the rollout never surged", most)
	}
	v = all[0].Store().Snapshot()
	checkPlacement(t, c, v)
	updated, _ := webPods(v)
	for _, p := range updated {
		if got := c.agents[p.NodeName].rt.imagesOf(p.UID); !reflect.DeepEqual(got, []string{"example.com/web:2"}) {
			t.Errorf("pod %s on %s runs %v", p.Name, p.NodeName, got)
		}
	}
	for _, p := range old {
		for _, a := range c.live() {
			waitRuntime(t, a.rt, "old pod "+p.Name+" removed from "+a.name, func() error {
				if _, held := a.rt.holds()[p.UID]; held {
					return errNotYet
				}
				return nil
			})
		}
	}

	// Removed from Git: its pods are deleted; the bare pod is untouched.
	c3 := repo.commit("drop web", map[string]string{"solo.yaml": solo})
	waitState(t, "web pruned", all, func(v *state.Snapshot) error {
		if err := pinned(v, c3); err != nil {
			return err
		}
		if all, _ := webPods(v); len(all) > 0 {
			return fmt.Errorf("%d pod records of web remain", len(all))
		}
		return running(v, "solo")
	})
	for _, p := range updated {
		a := c.agents[p.NodeName]
		waitRuntime(t, a.rt, "pod "+p.Name+" removed from "+a.name, func() error {
			if _, held := a.rt.holds()[p.UID]; held {
				return errNotYet
			}
			return nil
		})
	}
	v = all[0].Store().Snapshot()
	if p := podNamed(v, "solo"); p == nil || p.UID != soloUID {
		t.Errorf("bare pod solo: %+v, want the record %s kept throughout", p, soloUID)
	}
	checkPlacement(t, c, v)
}
