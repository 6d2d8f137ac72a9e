package agent

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/secrets"
	"github.com/shoal-dev/shoal/state"
)

// The ConfigMaps and Secrets of this node's pods, and their content hashes.
//
// nodeValues is the runtime's ValueResolver (runtime.Config.Values): when the runtime sets up a
// pod or (re)creates a container it asks for a ConfigMap or Secret by namespace and name, and
// nodeValues answers from the object set at the commit the pod loop put in the context before
// it called RunPod, RestartContainer or RefreshVolumes (withPodCommit; podCtx says which commit
// that is). A call the runtime marks runtime.WithCurrentValues (imagePullSecrets, read at pull
// time as the kubelet reads them) is answered from the node's pinned commit instead, which the
// pod loop also puts in the context (withPinnedCommit), or at the pod's commit when the pinned
// one cannot be read (treeAt). ConfigMaps come from the set as decoded; Secrets are decrypted
// from the file at that commit with the node's age keyring (secrets.Resolver), on demand.
//
// What is held where: the keyring is read once, when the agent starts, and kept in memory.
// Decrypted Secret values are kept in memory only, in a cache bounded to maxCachedSecrets
// entries (least recently used first out), keyed by (commit, namespace, name); an entry is
// wiped when it is evicted, and when its commit is neither the pinned commit nor the commit of a
// pod bound to this node (retain, from every round of the pod loop). The runtime gets a copy of
// the values and writes them only to tmpfs volumes and to the container's environment. Nothing
// here writes a value to disk, the state store, a log line or an error message: errors name the
// file, the Secret and what failed (see secrets.Error), never a value or the key file's content.
type nodeValues struct {
	tree commitTree
	// keyFile is the --age-key-file path, for messages only; "" when none was given.
	keyFile string
	// keyring is nil when the node has no age key: encrypted Secrets cannot be read here.
	keyring *secrets.Keyring
	hasher  *secrets.ContentHasher

	// log, when set, says once per pinned commit that reads marked runtime.WithCurrentValues
	// fell back to the pod's commit (treeAt).
	log *slog.Logger

	mu       sync.Mutex
	fellBack string // the pinned commit last logged as unreadable
	max      int
	cache    map[valueKey]*list.Element // of *cachedSecret
	lru      *list.List                 // most recently used at the front
}

var _ runtime.ValueResolver = (*nodeValues)(nil)

// maxCachedSecrets bounds the decrypted Secrets a node keeps in memory.
const maxCachedSecrets = 256

// commitTree returns the repository tree at commit (rooted where manifest.Load was) and the
// object set loaded from it.
type commitTree func(ctx context.Context, commit string) (fs.FS, *manifest.Set, error)

type valueKey struct{ commit, namespace, name string }

type cachedSecret struct {
	key    valueKey
	values secrets.Values
	hash   string
}

// newNodeValues loads the node's age keyring from keyFile ("" for none: encrypted Secrets then
// fail with a message saying so) and derives the content hash key from the cluster key.
func newNodeValues(tree commitTree, keyFile string, clusterKey []byte) (*nodeValues, error) {
	hasher, err := secrets.NewContentHasher(secrets.DeriveHashKey(clusterKey))
	if err != nil {
		return nil, err
	}
	n := &nodeValues{tree: tree, keyFile: keyFile, hasher: hasher, max: maxCachedSecrets,
		cache: map[valueKey]*list.Element{}, lru: list.New()}
	if keyFile != "" {
		// LoadKeyring's errors name the file and the kind of problem, never a line of it.
		if n.keyring, err = secrets.LoadKeyring(keyFile); err != nil {
			return nil, err
		}
		if n.keyring.Len() == 0 {
			return nil, fmt.Errorf("age key file %s holds no identity (AGE-SECRET-KEY-1... line): make one with `shoal secret keygen`", keyFile)
		}
	}
	return n, nil
}

// tree returns the tree and the objects at commit from this node's clone, fetching the commit
// when the clone lacks it.
func (s *source) tree(ctx context.Context, commit string) (fs.FS, *manifest.Set, error) {
	l, err := s.load(ctx, commit) // fetches the commit when missing
	if err != nil {
		return nil, nil, err
	}
	if l.set == nil {
		return nil, nil, fmt.Errorf("commit %s holds no objects", commit)
	}
	fsys, err := s.repo.FS(plumbing.NewHash(commit))
	if err != nil {
		return nil, nil, fmt.Errorf("read commit %s: %w", commit, err)
	}
	return fsys, l.set, nil
}

type podCommitKey struct{}

type pinnedCommitKey struct{}

// withPodCommit tells the ValueResolver which commit the pod being set up reads its ConfigMaps
// and Secrets from (podCtx says which).
func withPodCommit(ctx context.Context, commit string) context.Context {
	return context.WithValue(ctx, podCommitKey{}, commit)
}

// withPinnedCommit tells the ValueResolver the node's pinned commit, the newest it knows: what
// the runtime reads marked runtime.WithCurrentValues is read there.
func withPinnedCommit(ctx context.Context, v *state.Snapshot) context.Context {
	if p := v.PinnedRevision(); p != nil && p.Commit != "" {
		return context.WithValue(ctx, pinnedCommitKey{}, p.Commit)
	}
	return ctx
}

// podCtx is the context of a RunPod or RestartContainer of the pod record uid of v: its
// ConfigMaps and Secrets are read at values, the commit podValuesCommit chose, and what the
// runtime reads as current at the pinned commit.
func podCtx(ctx context.Context, v *state.Snapshot, values string) context.Context {
	return withPinnedCommit(withPodCommit(ctx, values), v)
}

// podValuesCommit is the commit a (re)started container of rec reads its ConfigMaps and Secrets
// at (env, envFrom, and the volumes of a new pod): the record's commit, unless the pod's mounted
// ConfigMaps and Secrets have been projected again from a later one (volumes.go; done, by UID),
// in which case that one, so that a container's environment and the files it sees come from one
// commit. So a pod that rolls on a config change keeps its revision's values for its whole life
// (its replacement has the new ones); a pod updated in place gets, on a restart, the values its
// volumes have.
func podValuesCommit(rec *state.Pod, done map[string]string) string {
	if c := done[rec.UID]; c != "" {
		return c
	}
	return rec.Commit
}

// valuesCommit is the commit a call reads at: the pinned one for a call marked
// runtime.WithCurrentValues (the pod's when the context has none), else the pod's.
func valuesCommit(ctx context.Context) (string, error) {
	if runtime.CurrentValues(ctx) {
		if c, _ := ctx.Value(pinnedCommitKey{}).(string); c != "" {
			return c, nil
		}
	}
	c, _ := ctx.Value(podCommitKey{}).(string)
	if c == "" {
		return "", errors.New("no commit for the pod: the agent calls the runtime with the pod's commit (withPodCommit)")
	}
	return c, nil
}

// treeAt returns the tree and objects at commit, the commit valuesCommit chose for ctx, and the
// commit they are from. A call marked runtime.WithCurrentValues whose pinned commit cannot be
// read (a clone that lacks it and cannot fetch it) reads at the pod's commit instead, logged once
// per pinned commit: imagePullSecrets at the pod's revision are better than an anonymous pull.
func (n *nodeValues) treeAt(ctx context.Context, commit string) (string, fs.FS, *manifest.Set, error) {
	fsys, set, err := n.tree(ctx, commit)
	if err == nil || !runtime.CurrentValues(ctx) {
		return commit, fsys, set, err
	}
	pod, _ := ctx.Value(podCommitKey{}).(string)
	if pod == "" || pod == commit {
		return commit, nil, nil, err
	}
	fsys, set, perr := n.tree(ctx, pod)
	if perr != nil {
		return commit, nil, nil, err
	}
	n.mu.Lock()
	first := n.fellBack != commit
	n.fellBack = commit
	n.mu.Unlock()
	if first && n.log != nil {
		n.log.Warn("imagePullSecrets read at the pod's commit: the pinned commit cannot be read", "pinned", commit, "commit", pod, "err", err)
	}
	return pod, fsys, set, nil
}

// ConfigMap implements runtime.ValueResolver: the ConfigMap at the commit in ctx (valuesCommit).
func (n *nodeValues) ConfigMap(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	if n == nil {
		return nil, errors.New("this agent has no ConfigMap and Secret resolver")
	}
	commit, err := valuesCommit(ctx)
	if err != nil {
		return nil, err
	}
	commit, _, set, err := n.treeAt(ctx, commit)
	if err != nil {
		return nil, err
	}
	obj := set.Get(manifest.Key{Kind: "ConfigMap", Namespace: namespace, Name: name})
	if obj == nil {
		return nil, fmt.Errorf("ConfigMap %s/%s is not in commit %s: %w", namespace, name, commit, runtime.ErrValueNotFound)
	}
	cm, ok := obj.Obj.(*corev1.ConfigMap)
	if !ok {
		return nil, fmt.Errorf("ConfigMap %s/%s at %s decoded as %T", namespace, name, commit, obj.Obj)
	}
	// ConfigMapValues shares binaryData's slices with the set, which every reader shares.
	return copyValues(secrets.ConfigMapValues(cm)), nil
}

// Secret implements runtime.ValueResolver: the Secret at the commit in ctx (valuesCommit),
// decrypted on this node. The caller gets its own copy of the values.
func (n *nodeValues) Secret(ctx context.Context, namespace, name string) (map[string][]byte, error) {
	if n == nil {
		return nil, errors.New("this agent has no ConfigMap and Secret resolver")
	}
	commit, err := valuesCommit(ctx)
	if err != nil {
		return nil, err
	}
	k := valueKey{commit, namespace, name}
	if v, ok := n.cached(k); ok {
		return v, nil
	}
	commit, fsys, set, err := n.treeAt(ctx, commit)
	if err != nil {
		return nil, err
	}
	if k.commit != commit { // read at the pod's commit instead
		k.commit = commit
		if v, ok := n.cached(k); ok {
			return v, nil
		}
	}
	res, err := n.resolve(fsys, set, commit, namespace, name)
	if err != nil {
		return nil, err
	}
	out := copyValues(res.Values)
	n.put(k, res)
	return out, nil
}

// resolve reads and decrypts one Secret of set. A Secret that is not in set is an error wrapping
// runtime.ErrValueNotFound; an encrypted one on a node without an age key, an error that says so.
func (n *nodeValues) resolve(fsys fs.FS, set *manifest.Set, commit, namespace, name string) (*secrets.Resolved, error) {
	if namespace == "" {
		namespace = "default"
	}
	obj := set.Get(manifest.Key{Kind: "Secret", Namespace: namespace, Name: name})
	if obj == nil {
		return nil, fmt.Errorf("Secret %s/%s is not in commit %s: %w", namespace, name, commit, runtime.ErrValueNotFound)
	}
	kr := n.keyring
	if obj.Secret != nil && obj.Secret.SOPS != nil && kr == nil {
		return nil, &configError{fmt.Errorf("%s: Secret %s/%s is sops-encrypted and no age key is configured on this node: "+
			"give the agent the cluster's age key with --age-key-file (ageKeyFile in its config file); see docs/secrets.md",
			obj.Source.File, namespace, name)}
	}
	if kr == nil {
		kr = &secrets.Keyring{} // a plaintext Secret the repository opted in needs no key
	}
	r := &secrets.Resolver{Keyring: kr, Hasher: n.hasher}
	res, err := r.Resolve(fsys, set, namespace, name)
	if err != nil {
		// secrets' errors name the file and what failed, never a value.
		return nil, &configError{fmt.Errorf("Secret %s/%s at commit %s: %w", namespace, name, commit, err)}
	}
	return res, nil
}

// configError is a Secret this node cannot read: no age key, not a recipient, a file that fails
// verification. The pod loop reports a pod whose setup failed on one as
// CreateContainerConfigError, as the runtime does for a container's environment, rather than as
// a sandbox failure.
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// runFailureReason is the status reason of a pod whose RunPod failed with err.
func runFailureReason(err error) string {
	var ce *configError
	if errors.As(err, &ce) {
		return runtime.ReasonCreateContainerConfigError
	}
	return "FailedCreatePodSandBox"
}

// cached returns a copy of a cached Secret's values.
func (n *nodeValues) cached(k valueKey) (map[string][]byte, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.cache[k]
	if !ok {
		return nil, false
	}
	n.lru.MoveToFront(e)
	return copyValues(e.Value.(*cachedSecret).values), true
}

// cachedHash returns a cached Secret's content hash.
func (n *nodeValues) cachedHash(k valueKey) (string, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	e, ok := n.cache[k]
	if !ok {
		return "", false
	}
	return e.Value.(*cachedSecret).hash, true
}

// put caches res under k, evicting (and wiping) the least recently used entry beyond the bound.
func (n *nodeValues) put(k valueKey, res *secrets.Resolved) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if e, ok := n.cache[k]; ok {
		// Decrypted twice at once: keep the first.
		n.lru.MoveToFront(e)
		res.Values.Wipe()
		return
	}
	n.cache[k] = n.lru.PushFront(&cachedSecret{key: k, values: res.Values, hash: res.Hash})
	for n.lru.Len() > n.max {
		n.dropLocked(n.lru.Back())
	}
}

func (n *nodeValues) dropLocked(e *list.Element) {
	c := e.Value.(*cachedSecret)
	c.values.Wipe()
	delete(n.cache, c.key)
	n.lru.Remove(e)
}

// retain drops (and wipes) every cached Secret whose commit is not in live.
func (n *nodeValues) retain(live map[string]bool) {
	if n == nil {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for e := n.lru.Front(); e != nil; {
		next := e.Next()
		if !live[e.Value.(*cachedSecret).key.commit] {
			n.dropLocked(e)
		}
		e = next
	}
}

// cachedCount is the number of Secrets held decrypted.
func (n *nodeValues) cachedCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lru.Len()
}

// liveCommits are the commits whose Secrets this node may still need: the pinned one, and the
// values commit of every pod bound here that is not lost (its containers restart from it;
// podValuesCommit with done).
func liveCommits(node string, v *state.Snapshot, done map[string]string) map[string]bool {
	live := map[string]bool{}
	if p := v.PinnedRevision(); p != nil {
		live[p.Commit] = true
	}
	for _, rec := range v.PodsOnNode(node) {
		if rec.Status.Phase != state.PhaseLost {
			live[podValuesCommit(rec, done)] = true
		}
	}
	return live
}

func copyValues(v map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(v))
	for k, b := range v {
		out[k] = append([]byte(nil), b...)
	}
	return out
}

// judgeSecrets says why a commit must be refused for its Secrets, or ""
// when every sops-encrypted Secret in set decrypts and verifies with this
// (the leader's) age key: a Secret no node can read would only fail its
// pods later, while the cluster can keep running the last good commit.
// The values are wiped at once; the errors name file, Secret and field,
// never a value.
func (n *nodeValues) judgeSecrets(ctx context.Context, commit string, set *manifest.Set) string {
	if n == nil || set == nil {
		return ""
	}
	var msgs []string
	var fsys fs.FS
	for _, o := range set.Objects() {
		if o.Key.Kind != "Secret" || o.Secret == nil || o.Secret.SOPS == nil {
			continue
		}
		if fsys == nil {
			var err error
			if fsys, _, err = n.tree(ctx, commit); err != nil {
				return fmt.Sprintf("cannot read the commit to check its Secrets: %v", err)
			}
		}
		res, err := n.resolve(fsys, set, commit, o.Key.Namespace, o.Key.Name)
		if err != nil {
			msgs = append(msgs, err.Error())
			continue
		}
		res.Values.Wipe()
	}
	if len(msgs) > 0 {
		return fmt.Sprintf("%d Secret(s) cannot be decrypted by the leader: %s", len(msgs), strings.Join(msgs, "; "))
	}
	return ""
}
