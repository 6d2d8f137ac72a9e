package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// hashWatch records every template hash the pods of some Deployments ever had, by following
// one replica through every change of the pods table.
type hashWatch struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	seen   map[string]map[string]bool // Deployment name → template hashes
}

func watchHashes(s *state.Store, names ...string) *hashWatch {
	ctx, cancel := context.WithCancel(context.Background())
	w := &hashWatch{cancel: cancel, done: make(chan struct{}), seen: map[string]map[string]bool{}}
	for _, n := range names {
		w.seen[n] = map[string]bool{}
	}
	go func() {
		defer close(w.done)
		for {
			v := s.Snapshot()
			w.mu.Lock()
			for _, n := range names {
				for _, p := range v.PodsByOwner("default", "Deployment", n) {
					w.seen[n][p.TemplateHash] = true
				}
			}
			w.mu.Unlock()
			if v.Wait(ctx, state.TablePods) != nil {
				return
			}
		}
	}()
	return w
}

// stop returns the hashes seen per Deployment, sorted.
func (w *hashWatch) stop() map[string][]string {
	w.cancel()
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[string][]string{}
	for n, hs := range w.seen {
		for h := range hs {
			out[n] = append(out[n], h)
		}
		sort.Strings(out[n])
	}
	return out
}

// deploymentAt checks that Deployment name has exactly replicas pods, all running and ready,
// all of one template hash, and returns it.
func deploymentAt(v *state.Snapshot, name string, replicas int) (string, error) {
	pods := v.PodsByOwner("default", "Deployment", name)
	if len(pods) != replicas {
		return "", fmt.Errorf("%d pod records of %s, want %d", len(pods), name, replicas)
	}
	hash := pods[0].TemplateHash
	for _, p := range pods {
		if p.TemplateHash != hash {
			return "", fmt.Errorf("%s: pods of hashes %s and %s", name, hash, p.TemplateHash)
		}
		if p.Desired != state.DesiredRun {
			return "", fmt.Errorf("pod %s: desired %v", p.Name, p.Desired)
		}
		if err := running(v, p.Name); err != nil {
			return "", err
		}
	}
	return hash, nil
}

// TestRolloutOnConfigChange runs a one-node cluster on a real Git repository: Deployment web
// uses ConfigMap app (env) and the encrypted Secret db (a volume); Deployment quiet uses app too
// but opts out with shoal.dev/rollout-on-config-change: "false". Changing an unrelated ConfigMap
// or re-encrypting db with the same values rolls nothing; changing app or a value of db rolls
// web, and never quiet.
func TestRolloutOnConfigChange(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an agent")
	}
	keyFile, recipient := ageKey(t)
	values := map[string]string{"password": testPassword, "user": testUser}
	files := map[string]string{
		"web.yaml":    configDeploymentYAML("web", "app", "db", manifest.AnnotationRolloutOnConfigChange+`: "true"`),
		"quiet.yaml":  configDeploymentYAML("quiet", "app", "", manifest.AnnotationRolloutOnConfigChange+`: "false"`),
		"app.yaml":    configMapYAML("app", map[string]string{"mode": "blue"}),
		"unused.yaml": configMapYAML("unused", map[string]string{"x": "1"}),
		"db.yaml":     encryptedSecret(t, "db.yaml", "db", values, recipient),
	}
	commit := func(repo *testRepo, msg string, change map[string]string) string {
		for k, v := range change {
			files[k] = v
		}
		snapshot := map[string]string{}
		for k, v := range files {
			snapshot[k] = v
		}
		return repo.commit(msg, snapshot)
	}
	repo := newTestRepo(t)
	c1 := commit(repo, "web and quiet", nil)

	c := newTestCluster(t, repo, 1)
	c.configure = func(cfg *Config) { cfg.AgeKeyFile = keyFile }
	n1 := c.start("n1")
	all := c.live()

	var web1, quiet1 string
	waitState(t, "web and quiet running", all, func(v *state.Snapshot) error {
		if err := pinned(v, c1); err != nil {
			return err
		}
		var err error
		if web1, err = deploymentAt(v, "web", 2); err != nil {
			return err
		}
		quiet1, err = deploymentAt(v, "quiet", 2)
		return err
	})
	v := n1.Store().Snapshot()
	for _, p := range v.PodsByOwner("default", "Deployment", "web") {
		if p.ConfigHash == "" {
			t.Errorf("pod %s records no config hash: the reconciler got no ConfigHashes", p.Name)
		}
		noLeak(t, "a pod record", fmt.Sprintf("%+v", p))
	}
	watch := watchHashes(n1.Store(), "web", "quiet")

	// marker adds a Deployment that uses nothing: once its pods exist, the reconcile of that
	// commit is done, and with it the decision about web and quiet.
	marker := func(what, name, commit string) {
		t.Helper()
		waitState(t, what, all, func(v *state.Snapshot) error {
			if err := pinned(v, commit); err != nil {
				return err
			}
			if _, err := deploymentAt(v, name, 2); err != nil {
				return err
			}
			if h, err := deploymentAt(v, "web", 2); err != nil || h != web1 {
				return fmt.Errorf("web at %s (%v), want %s untouched", h, err, web1)
			}
			return nil
		})
	}
	c2 := commit(repo, "unrelated ConfigMap changed", map[string]string{
		"unused.yaml":  configMapYAML("unused", map[string]string{"x": "2"}),
		"marker1.yaml": configDeploymentYAML("marker1", "", "", ""),
	})
	marker("unrelated change reconciled", "marker1", c2)
	c3 := commit(repo, "db re-encrypted, same values", map[string]string{
		"db.yaml":      encryptedSecret(t, "db.yaml", "db", values, recipient),
		"marker2.yaml": configDeploymentYAML("marker2", "", "", ""),
	})
	marker("re-encryption reconciled", "marker2", c3)

	// The ConfigMap web uses changes: web rolls, quiet does not.
	c4 := commit(repo, "app changed", map[string]string{"app.yaml": configMapYAML("app", map[string]string{"mode": "green"})})
	var web2 string
	waitState(t, "web rolled for the ConfigMap", all, func(v *state.Snapshot) error {
		if err := pinned(v, c4); err != nil {
			return err
		}
		h, err := deploymentAt(v, "web", 2)
		if err != nil {
			return err
		}
		if h == web1 {
			return fmt.Errorf("web still at %s", h)
		}
		web2 = h
		return nil
	})

	// A value of the Secret changes: web rolls again.
	c5 := commit(repo, "db password changed", map[string]string{
		"db.yaml": encryptedSecret(t, "db.yaml", "db", map[string]string{"password": testPassword + "-2", "user": testUser}, recipient),
	})
	waitState(t, "web rolled for the Secret", all, func(v *state.Snapshot) error {
		if err := pinned(v, c5); err != nil {
			return err
		}
		h, err := deploymentAt(v, "web", 2)
		if err != nil {
			return err
		}
		if h == web1 || h == web2 {
			return fmt.Errorf("web still at %s", h)
		}
		return nil
	})
	v = n1.Store().Snapshot()
	if h, err := deploymentAt(v, "quiet", 2); err != nil || h != quiet1 {
		t.Errorf("quiet at %s (%v), want %s throughout: it opted out", h, err, quiet1)
	}
	seen := watch.stop()
	if len(seen["web"]) != 3 {
		t.Errorf("web had template hashes %v, want 3 (the first, one per content change)", seen["web"])
	}
	if len(seen["quiet"]) != 1 {
		t.Errorf("quiet had template hashes %v, want only %s", seen["quiet"], quiet1)
	}
	// Nothing in the replicated state holds a value.
	noLeak(t, "the state", v.DumpString())
	if strings.Contains(v.DumpString(), "AGE-SECRET-KEY") {
		t.Error("the state holds a private key")
	}
}
