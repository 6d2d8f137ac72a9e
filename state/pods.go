package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
	corev1 "k8s.io/api/core/v1"
)

// Desired is what the leader wants the owning node to do with a pod.
type Desired uint8

const (
	DesiredRun Desired = iota + 1
	DesiredStop
	// DesiredDelete: stop the pod; the leader deletes the record once the
	// node reports it stopped (or at once if it was never bound).
	DesiredDelete
)

func (d Desired) String() string {
	switch d {
	case DesiredRun:
		return "run"
	case DesiredStop:
		return "stop"
	case DesiredDelete:
		return "delete"
	}
	return fmt.Sprintf("Desired(%d)", uint8(d))
}

func (d Desired) valid() bool { return d >= DesiredRun && d <= DesiredDelete }

// Phase is the pod phase as Kubernetes names it, plus Lost.
type Phase string

const (
	PhasePending   Phase = "Pending"
	PhaseRunning   Phase = "Running"
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
	PhaseUnknown   Phase = "Unknown"
	// PhaseLost: the leader marked the pod lost with its node; status
	// reports for it are rejected from then on, so a returning node cannot
	// bring it back next to its replacement.
	PhaseLost Phase = "Lost"
)

func (p Phase) valid() bool {
	switch p {
	case PhasePending, PhaseRunning, PhaseSucceeded, PhaseFailed, PhaseUnknown, PhaseLost:
		return true
	}
	return false
}

// Terminal reports whether the pod will not run again.
func (p Phase) Terminal() bool { return p == PhaseSucceeded || p == PhaseFailed || p == PhaseLost }

// Owner is the controller object a pod belongs to, in the pod's namespace
// (Kubernetes forbids owners in another namespace). Kind is empty for a bare Pod.
type Owner struct {
	Kind string `json:"kind,omitempty"`
	Name string `json:"name,omitempty"`
}

// HostPort is a port a pod binds on its node.
type HostPort struct {
	Port     int32  `json:"port"`
	Protocol string `json:"proto,omitempty"`
	IP       string `json:"ip,omitempty"`
}

// PodSpec holds what the leader extracted from the manifest for scheduling,
// so that placement needs no Git read. The full manifest stays in Git: the
// owning node reads it at Pod.Commit.
type PodSpec struct {
	Requests       Resources                         `json:"requests,omitzero"`
	NodeSelector   map[string]string                 `json:"nodeSelector,omitempty"`
	Affinity       *corev1.Affinity                  `json:"affinity,omitempty"`
	Tolerations    []corev1.Toleration               `json:"tolerations,omitempty"`
	HostPorts      []HostPort                        `json:"hostPorts,omitempty"`
	TopologySpread []corev1.TopologySpreadConstraint `json:"topologySpread,omitempty"`
	// PinnedNode is the node a local volume ties the pod to.
	PinnedNode string   `json:"pinnedNode,omitempty"`
	Images     []string `json:"images,omitempty"`
	// FreshClaims are the pod's local volume claims that had no volume
	// record when the leader created it: each gets a new, empty volume. A
	// directory its node holds for such a claim was made for an earlier
	// incarnation of the claim (a node declared gone and back, a deletion
	// interrupted) and the node moves it aside first, unless this very pod made
	// it (runtime.LocalVolume.Fresh). Claims with a record are pinned
	// (PinnedNode) and keep their data. CreatePods refuses a pod that lists
	// a claim with a record (RejectClaimRecorded).
	FreshClaims []string `json:"freshClaims,omitempty"`
}

// ContainerStatus is what the node reported for one container.
type ContainerStatus struct {
	Name      string    `json:"name"`
	State     string    `json:"state,omitempty"` // waiting, running or terminated
	Ready     bool      `json:"ready,omitempty"`
	Restarts  int32     `json:"restarts,omitempty"`
	ExitCode  int32     `json:"exitCode,omitempty"`
	Reason    string    `json:"reason,omitempty"`
	Message   string    `json:"message,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
}

// PodStatus is what the owning node reported.
type PodStatus struct {
	Phase      Phase             `json:"phase"`
	PodIP      string            `json:"podIP,omitempty"`
	Ready      bool              `json:"ready,omitempty"`
	Reason     string            `json:"reason,omitempty"`
	Message    string            `json:"message,omitempty"`
	StartTime  time.Time         `json:"startTime,omitzero"`
	Containers []ContainerStatus `json:"containers,omitempty"`
}

// Pod is the record of one pod: identity, owner, scheduling requirements,
// binding, desired state and reported status. It holds no manifest and no
// secret: ConfigHash is at most a content hash of what the pod mounts.
type Pod struct {
	UID          string            `json:"uid"`
	Namespace    string            `json:"ns"`
	Name         string            `json:"name"`
	Labels       map[string]string `json:"labels,omitempty"`
	Owner        Owner             `json:"owner,omitzero"`
	TemplateHash string            `json:"templateHash,omitempty"`
	ConfigHash   string            `json:"configHash,omitempty"`
	Commit       string            `json:"commit,omitempty"`
	Created      time.Time         `json:"created,omitzero"`
	Spec         PodSpec           `json:"spec,omitzero"`
	NodeName     string            `json:"node,omitempty"`
	Desired      Desired           `json:"desired"`
	Status       PodStatus         `json:"status"`
}

// Copy returns a copy that shares nothing that Apply changes in place.
// Labels and the scheduling spec are shared: no command modifies them after
// creation.
func (p *Pod) Copy() *Pod {
	c := *p
	c.Status.Containers = append([]ContainerStatus(nil), p.Status.Containers...)
	return &c
}

// Key returns "namespace/name".
func (p *Pod) Key() string { return p.Namespace + "/" + p.Name }

const (
	indexPodName     = "name"
	indexPodNode     = "node"
	indexPodOwner    = "owner"
	indexPodPhase    = "phase"
	indexPodUnplaced = "unplaced"
)

func unplaced(p *Pod) bool { return p.NodeName == "" && p.Desired == DesiredRun }

func podsSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: string(TablePods),
		Indexes: map[string]*memdb.IndexSchema{
			indexIDName: {Name: indexIDName, Unique: true, Indexer: keyIndex[Pod]{func(p *Pod) (string, bool) { return p.UID, true }}},
			// Unique: CreatePods refuses a second pod with the same name,
			// so "web-0" never exists twice, even while the old one stops.
			indexPodName: {Name: indexPodName, Unique: true, Indexer: keyIndex[Pod]{func(p *Pod) (string, bool) { return key(p.Namespace, p.Name), true }}},
			indexPodNode: {Name: indexPodNode, AllowMissing: true, Indexer: keyIndex[Pod]{func(p *Pod) (string, bool) { return p.NodeName, p.NodeName != "" }}},
			indexPodOwner: {Name: indexPodOwner, AllowMissing: true, Indexer: keyIndex[Pod]{func(p *Pod) (string, bool) {
				return key(p.Namespace, p.Owner.Kind, p.Owner.Name), p.Owner.Kind != ""
			}}},
			indexPodPhase: {Name: indexPodPhase, Indexer: keyIndex[Pod]{func(p *Pod) (string, bool) { return string(p.Status.Phase), true }}},
			// Sparse: only pods waiting for a node are in it.
			indexPodUnplaced: {Name: indexPodUnplaced, AllowMissing: true, Indexer: keyIndex[Pod]{func(p *Pod) (string, bool) { return "", unplaced(p) }}},
		},
	}
}

// CreatePods records new pods. A pod whose UID or namespace/name already
// exists is rejected; the others are created. A pod may come bound
// (NodeName set), with the same checks as BindPods.
type CreatePods struct {
	Pods []Pod `json:"pods"`
	// Time is the creation time the leader observed.
	Time time.Time `json:"time,omitzero"`
}

func (*CreatePods) CommandType() CommandType { return CmdCreatePods }

func (c *CreatePods) validate() error {
	for i := range c.Pods {
		p := &c.Pods[i]
		if err := checkID("pod uid", p.UID); err != nil {
			return fmt.Errorf("pod %d: %v", i, err)
		}
		if err := checkID("pod namespace", p.Namespace); err != nil {
			return fmt.Errorf("pod %s: %v", p.UID, err)
		}
		if err := checkID("pod name", p.Name); err != nil {
			return fmt.Errorf("pod %s: %v", p.UID, err)
		}
		if p.NodeName != "" {
			if err := checkID("node name", p.NodeName); err != nil {
				return fmt.Errorf("pod %s: %v", p.UID, err)
			}
		}
		if p.Desired != 0 && !p.Desired.valid() {
			return fmt.Errorf("pod %s: invalid desired state %d", p.UID, p.Desired)
		}
		if p.Status.Phase != "" && !p.Status.Phase.valid() {
			return fmt.Errorf("pod %s: invalid phase %q", p.UID, p.Status.Phase)
		}
		if p.Spec.Requests.MilliCPU < 0 || p.Spec.Requests.Memory < 0 {
			return fmt.Errorf("pod %s: negative requests", p.UID)
		}
	}
	return nil
}

func applyCreatePods(w *writeTxn, c *CreatePods) (*Result, error) {
	res := &Result{}
	for i := range c.Pods {
		p := c.Pods[i]
		if old, err := first[Pod](w.tx, TablePods, indexIDName, p.UID); err != nil {
			return nil, err
		} else if old != nil {
			res.Rejected = append(res.Rejected, Rejection{UID: p.UID, Reason: RejectPodExists})
			continue
		}
		if old, err := first[Pod](w.tx, TablePods, indexPodName, p.Namespace, p.Name); err != nil {
			return nil, err
		} else if old != nil {
			res.Rejected = append(res.Rejected, Rejection{UID: p.UID, Reason: RejectNameTaken})
			continue
		}
		if p.NodeName != "" {
			if r, err := checkBindNode(w, p.NodeName); err != nil {
				return nil, err
			} else if r != "" {
				res.Rejected = append(res.Rejected, Rejection{UID: p.UID, Node: p.NodeName, Reason: r})
				continue
			}
		}
		if r, err := checkFreshClaims(w, &p); err != nil {
			return nil, err
		} else if r != "" {
			res.Rejected = append(res.Rejected, Rejection{UID: p.UID, Node: p.NodeName, Reason: r})
			continue
		}
		if p.Desired == 0 {
			p.Desired = DesiredRun
		}
		if p.Status.Phase == "" {
			p.Status.Phase = PhasePending
		}
		if !c.Time.IsZero() {
			p.Created = c.Time
		}
		normalizePod(&p)
		if err := w.insert(TablePods, &p); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// normalizePod bounds free text and strips time zones so that every
// replica stores the same value.
func normalizePod(p *Pod) {
	p.Created = utc(p.Created)
	normalizeStatus(&p.Status)
}

func normalizeStatus(s *PodStatus) {
	s.StartTime = utc(s.StartTime)
	s.Message = truncate(s.Message)
	for i := range s.Containers {
		s.Containers[i].StartedAt = utc(s.Containers[i].StartedAt)
		s.Containers[i].Message = truncate(s.Containers[i].Message)
	}
}

// checkBindNode returns why a pod cannot be bound to the node, or "".
func checkBindNode(w *writeTxn, name string) (RejectReason, error) {
	n, err := first[Node](w.tx, TableNodes, indexIDName, name)
	if err != nil {
		return "", err
	}
	switch {
	case n == nil:
		return RejectNodeNotFound, nil
	case n.Status == NodeGone:
		return RejectNodeGone, nil
	}
	return "", nil
}

// Binding places one pod on one node.
type Binding struct {
	UID  string `json:"uid"`
	Node string `json:"node"`
}

// BindPods commits the scheduler's placements. Each binding is checked
// against the state at the time it is applied (optimistic concurrency): a
// pod that is missing, already bound or no longer meant to run, or a node
// that is missing or gone, rejects that binding and only that one.
type BindPods struct {
	Bindings []Binding `json:"bindings"`
}

func (*BindPods) CommandType() CommandType { return CmdBindPods }

func (c *BindPods) validate() error {
	for i, b := range c.Bindings {
		if err := checkID("pod uid", b.UID); err != nil {
			return fmt.Errorf("binding %d: %v", i, err)
		}
		if err := checkID("node name", b.Node); err != nil {
			return fmt.Errorf("binding %d: %v", i, err)
		}
	}
	return nil
}

func applyBindPods(w *writeTxn, c *BindPods) (*Result, error) {
	res := &Result{}
	// Batches are usually sorted by node; remember the last node checked.
	lastNode, lastReason := "", RejectReason("")
	for _, b := range c.Bindings {
		p, err := first[Pod](w.tx, TablePods, indexIDName, b.UID)
		if err != nil {
			return nil, err
		}
		reason := RejectReason("")
		switch {
		case p == nil:
			reason = RejectPodNotFound
		case p.NodeName != "":
			reason = RejectAlreadyBound
		case p.Desired != DesiredRun:
			reason = RejectNotRunnable
		default:
			if b.Node != lastNode {
				if lastReason, err = checkBindNode(w, b.Node); err != nil {
					return nil, err
				}
				lastNode = b.Node
			}
			reason = lastReason
		}
		if reason != "" {
			res.Rejected = append(res.Rejected, Rejection{UID: b.UID, Node: b.Node, Reason: reason})
			continue
		}
		np := p.Copy()
		np.NodeName = b.Node
		if err := w.insert(TablePods, np); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// PodStatusUpdate is one pod's status as its node observed it.
type PodStatusUpdate struct {
	UID    string    `json:"uid"`
	Status PodStatus `json:"status"`
}

// UpdatePodStatus records a node's batch of status reports. A report for a
// pod that is not bound to that node, or that was marked lost, is rejected.
type UpdatePodStatus struct {
	Node    string            `json:"node"`
	Updates []PodStatusUpdate `json:"updates"`
}

func (*UpdatePodStatus) CommandType() CommandType { return CmdUpdatePodStatus }

func (c *UpdatePodStatus) validate() error {
	if err := checkID("node name", c.Node); err != nil {
		return err
	}
	for i, u := range c.Updates {
		if err := checkID("pod uid", u.UID); err != nil {
			return fmt.Errorf("update %d: %v", i, err)
		}
		if !u.Status.Phase.valid() || u.Status.Phase == PhaseLost {
			return fmt.Errorf("pod %s: invalid phase %q", u.UID, u.Status.Phase)
		}
	}
	return nil
}

func applyUpdatePodStatus(w *writeTxn, c *UpdatePodStatus) (*Result, error) {
	res := &Result{}
	for i := range c.Updates {
		u := &c.Updates[i]
		p, err := first[Pod](w.tx, TablePods, indexIDName, u.UID)
		if err != nil {
			return nil, err
		}
		reason := RejectReason("")
		switch {
		case p == nil:
			reason = RejectPodNotFound
		case p.NodeName != c.Node:
			reason = RejectNotOnNode
		case p.Status.Phase == PhaseLost:
			reason = RejectPodLost
		}
		if reason != "" {
			res.Rejected = append(res.Rejected, Rejection{UID: u.UID, Node: c.Node, Reason: reason})
			continue
		}
		np := *p
		np.Status = u.Status
		np.Status.Containers = append([]ContainerStatus(nil), u.Status.Containers...)
		normalizeStatus(&np.Status)
		if err := w.insert(TablePods, &np); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// DesiredChange sets one pod's desired state.
type DesiredChange struct {
	UID     string  `json:"uid"`
	Desired Desired `json:"desired"`
}

// SetPodsDesired tells owning nodes to run, stop or delete pods.
type SetPodsDesired struct {
	Changes []DesiredChange `json:"changes"`
}

func (*SetPodsDesired) CommandType() CommandType { return CmdSetPodsDesired }

func (c *SetPodsDesired) validate() error {
	for i, ch := range c.Changes {
		if err := checkID("pod uid", ch.UID); err != nil {
			return fmt.Errorf("change %d: %v", i, err)
		}
		if !ch.Desired.valid() {
			return fmt.Errorf("pod %s: invalid desired state %d", ch.UID, ch.Desired)
		}
	}
	return nil
}

func applySetPodsDesired(w *writeTxn, c *SetPodsDesired) (*Result, error) {
	res := &Result{}
	for _, ch := range c.Changes {
		p, err := first[Pod](w.tx, TablePods, indexIDName, ch.UID)
		if err != nil {
			return nil, err
		}
		if p == nil {
			res.Rejected = append(res.Rejected, Rejection{UID: ch.UID, Reason: RejectPodNotFound})
			continue
		}
		if p.Desired == ch.Desired {
			res.Applied++
			continue
		}
		np := *p
		np.Desired = ch.Desired
		if err := w.insert(TablePods, &np); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// DeletePods removes pod records. Missing pods are reported, not an error.
type DeletePods struct {
	UIDs []string `json:"uids"`
}

func (*DeletePods) CommandType() CommandType { return CmdDeletePods }

func (c *DeletePods) validate() error {
	for i, u := range c.UIDs {
		if err := checkID("pod uid", u); err != nil {
			return fmt.Errorf("uid %d: %v", i, err)
		}
	}
	return nil
}

func applyDeletePods(w *writeTxn, c *DeletePods) (*Result, error) {
	res := &Result{}
	for _, uid := range c.UIDs {
		p, err := first[Pod](w.tx, TablePods, indexIDName, uid)
		if err != nil {
			return nil, err
		}
		if p == nil {
			res.Rejected = append(res.Rejected, Rejection{UID: uid, Reason: RejectPodNotFound})
			continue
		}
		if err := w.delete(TablePods, p); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// MarkPodsLost records that pods went down with their node: phase Lost,
// not ready, with the reason and time given. Pods already terminal are
// reported and left alone.
type MarkPodsLost struct {
	UIDs   []string  `json:"uids"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time,omitzero"`
}

func (*MarkPodsLost) CommandType() CommandType { return CmdMarkPodsLost }

func (c *MarkPodsLost) validate() error {
	for i, u := range c.UIDs {
		if err := checkID("pod uid", u); err != nil {
			return fmt.Errorf("uid %d: %v", i, err)
		}
	}
	return nil
}

func applyMarkPodsLost(w *writeTxn, c *MarkPodsLost) (*Result, error) {
	res := &Result{}
	for _, uid := range c.UIDs {
		p, err := first[Pod](w.tx, TablePods, indexIDName, uid)
		if err != nil {
			return nil, err
		}
		switch {
		case p == nil:
			res.Rejected = append(res.Rejected, Rejection{UID: uid, Reason: RejectPodNotFound})
			continue
		case p.Status.Phase.Terminal():
			res.Rejected = append(res.Rejected, Rejection{UID: uid, Node: p.NodeName, Reason: RejectAlreadyTerminal})
			continue
		}
		np := p.Copy()
		np.Status.Phase = PhaseLost
		np.Status.Ready = false
		np.Status.Reason = "NodeLost"
		np.Status.Message = truncate(c.Reason)
		for i := range np.Status.Containers {
			np.Status.Containers[i].Ready = false
		}
		if err := w.insert(TablePods, np); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// Pod returns the pod with the given UID, or nil.
func (v *Snapshot) Pod(uid string) *Pod {
	return must(first[Pod](v.tx, TablePods, indexIDName, uid))
}

// PodByName returns the pod namespace/name, or nil.
func (v *Snapshot) PodByName(namespace, name string) *Pod {
	return must(first[Pod](v.tx, TablePods, indexPodName, namespace, name))
}

// Pods returns every pod, ordered by UID.
func (v *Snapshot) Pods() []*Pod {
	return must(all[Pod](v.tx, TablePods, indexIDName))
}

// PodsInNamespace returns the pods of one namespace, ordered by name.
func (v *Snapshot) PodsInNamespace(namespace string) []*Pod {
	return must(all[Pod](v.tx, TablePods, indexPodName+"_prefix", namespace))
}

// PodsOnNode returns the pods bound to a node, ordered by UID.
func (v *Snapshot) PodsOnNode(node string) []*Pod {
	return must(all[Pod](v.tx, TablePods, indexPodNode, node))
}

// PodsByOwner returns the pods of one controller, ordered by UID.
func (v *Snapshot) PodsByOwner(namespace, kind, name string) []*Pod {
	return must(all[Pod](v.tx, TablePods, indexPodOwner, namespace, kind, name))
}

// PodsInPhase returns the pods in one phase, ordered by UID.
func (v *Snapshot) PodsInPhase(phase Phase) []*Pod {
	return must(all[Pod](v.tx, TablePods, indexPodPhase, string(phase)))
}

// UnplacedPods returns the pods meant to run that have no node yet, ordered by UID.
func (v *Snapshot) UnplacedPods() []*Pod {
	return must(all[Pod](v.tx, TablePods, indexPodUnplaced, ""))
}

// MarshalText and UnmarshalText give the JSON form ("run"); msgpack ignores
// them and stores the byte.
func (d Desired) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

func (d *Desired) UnmarshalText(b []byte) error {
	for v := DesiredRun; v <= DesiredDelete; v++ {
		if v.String() == string(b) {
			*d = v
			return nil
		}
	}
	return fmt.Errorf("unknown desired state %q", b)
}
