package plan

import (
	"fmt"
	"sort"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/state"
)

// RebuildStore writes live node and pod records, as the status API serves them, into a fresh
// state store through the store's own commands (UpsertNode, CreatePods, DeleteNode,
// PinRevision), so that the controllers and the scheduler read them exactly as they read the
// leader's replica. running, when set, is pinned as the cluster's current revision.
//
// A pod keeps its node, desired state and status. The store binds a pod only to a node it
// knows that is not Gone, so a pod on a Gone node is written while its node is briefly Ready,
// and a pod on a node missing from the list (deleted since) on a placeholder node that is
// removed afterwards: both end as they are in the cluster. A record the store still refuses
// (a duplicate UID or name) is an error: the view would not be the cluster's.
func RebuildStore(nodes []*state.Node, pods []*state.Pod, running *state.Revision) (*state.Store, error) {
	s, err := state.NewStore()
	if err != nil {
		return nil, err
	}
	known := map[string]*state.Node{}
	for _, n := range nodes {
		known[n.Name] = n
	}
	var gone, placeholders []string
	for _, n := range nodes {
		rec := *n.Copy()
		if rec.Status == state.NodeGone {
			rec.Status = state.NodeReady
			gone = append(gone, n.Name)
		}
		if err := mustApply(s, &state.UpsertNode{Node: rec}); err != nil {
			return nil, err
		}
	}
	for _, p := range pods {
		if p.NodeName == "" || known[p.NodeName] != nil {
			continue
		}
		known[p.NodeName] = &state.Node{Name: p.NodeName}
		placeholders = append(placeholders, p.NodeName)
	}
	sort.Strings(placeholders)
	for _, name := range placeholders {
		if err := mustApply(s, &state.UpsertNode{Node: state.Node{Name: name, Status: state.NodeReady}}); err != nil {
			return nil, err
		}
	}
	recs := make([]state.Pod, len(pods))
	for i, p := range pods {
		recs[i] = *p.Copy()
	}
	for _, b := range reconciler.Batches(recs, reconciler.MaxBatch) {
		// No Time: each record keeps its own creation time.
		if err := mustApply(s, &state.CreatePods{Pods: b}); err != nil {
			return nil, err
		}
	}
	for _, name := range gone {
		if err := mustApply(s, &state.UpsertNode{Node: *known[name].Copy()}); err != nil {
			return nil, err
		}
	}
	for _, name := range placeholders {
		if err := mustApply(s, &state.DeleteNode{Name: name}); err != nil {
			return nil, err
		}
	}
	if running != nil {
		if err := mustApply(s, &state.PinRevision{Commit: running.Commit, Ref: running.Ref, Time: running.Time}); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// mustApply applies one command of a rebuild; any rejected item is an error.
func mustApply(s *state.Store, c state.Command) error {
	res, err := s.ApplyCommand(c)
	if err != nil {
		return fmt.Errorf("rebuild the cluster's state: %s: %w", c.CommandType(), err)
	}
	if len(res.Rejected) > 0 {
		r := res.Rejected[0]
		return fmt.Errorf("rebuild the cluster's state: %s: %d records refused, the first: %s %s %s",
			c.CommandType(), len(res.Rejected), r.UID, r.Node, r.Reason)
	}
	return nil
}

// withoutConfigHashes returns pods with the content of ConfigMaps and Secrets taken out of the
// template hashes of those that run HEAD's template.
//
// The leader folds each referenced ConfigMap's and Secret's content hash into a template hash
// (reconciler.Input.ConfigHashes), keyed with the cluster key and the decrypted Secret values,
// which a reviewer's machine does not have. Reconciling without them would see every pod that
// references a ConfigMap or Secret as running an old template and roll it. So a pod whose hash
// is HEAD's template with the pod's own config hash folded in (the template did not change)
// gets the hash of the template alone, as the reconciler computes it without config; a pod of
// another template keeps its hash and is rolled, as it would be. The cost, said in the report:
// a change of config content alone rolls nothing in the dry run.
func withoutConfigHashes(head *manifest.Set, pods []*state.Pod) []*state.Pod {
	out := make([]*state.Pod, len(pods))
	copy(out, pods)
	for i, p := range pods {
		if p.ConfigHash == "" || p.Owner.Kind == "" {
			continue
		}
		o := head.Get(manifest.Key{Kind: p.Owner.Kind, Namespace: p.Namespace, Name: p.Owner.Name})
		if o == nil {
			continue
		}
		t := manifest.PodTemplate(o)
		if t == nil || reconciler.TemplateHashWithConfigHash(t, p.ConfigHash) != p.TemplateHash {
			continue
		}
		np := p.Copy()
		np.TemplateHash = reconciler.TemplateHash(p.Namespace, t, nil)
		np.ConfigHash = ""
		np.Labels = make(map[string]string, len(p.Labels))
		for k, v := range p.Labels {
			if v == p.TemplateHash {
				v = np.TemplateHash // pod-template-hash, controller-revision-hash
			}
			np.Labels[k] = v
		}
		out[i] = np
	}
	return out
}
