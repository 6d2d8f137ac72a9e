package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// leadership turns raft's leadership notifications into epochs: an epoch
// starts when this node becomes leader and a raft barrier has gone through
// (so every entry committed by earlier leaders is applied to our FSM), and
// ends when leadership is lost. Loops run with the epoch's context.
type leadership struct {
	notify chan bool // raft Config.NotifyCh

	mu     sync.Mutex
	ready  context.Context // current epoch, nil when not (yet) leading
	cancel context.CancelFunc
	watch  chan struct{} // closed when ready changes

	changedMu sync.Mutex
	changed   chan struct{} // closed when raft's view of the leader changes
}

func (l *leadership) init() {
	l.notify = make(chan bool, 16)
	l.watch = make(chan struct{})
	l.changed = make(chan struct{})
}

func (l *leadership) run(n *Node) {
	for {
		select {
		case <-n.ctx.Done():
			return
		case isLeader := <-l.notify:
			if isLeader {
				l.begin(n)
			} else {
				l.end(n)
			}
		}
	}
}

func (l *leadership) begin(n *Node) {
	l.end(n) // a repeated "true" means leadership was lost and regained
	ctx, cancel := context.WithCancel(n.ctx)
	l.mu.Lock()
	l.cancel = cancel
	l.mu.Unlock()
	n.log.Info("gained leadership")
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for ctx.Err() == nil {
			err := n.raft.Barrier(n.cfg.Raft.ElectionTimeout * 4).Error()
			if err == nil {
				break
			}
			n.log.Warn("leader barrier failed; retrying", "err", err)
			t := time.NewTimer(n.cfg.Raft.CommitTimeout * 10)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
		if ctx.Err() != nil {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if ctx.Err() == nil {
			l.ready = ctx
			close(l.watch)
			l.watch = make(chan struct{})
		}
	}()
}

func (l *leadership) end(n *Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel == nil {
		return
	}
	l.cancel()
	l.cancel = nil
	l.ready = nil
	close(l.watch)
	l.watch = make(chan struct{})
	n.log.Info("lost leadership")
}

func (l *leadership) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cancel != nil {
		l.cancel()
		l.cancel = nil
		l.ready = nil
	}
}

func (l *leadership) state() (context.Context, <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ready, l.watch
}

// RunLeaderLoops calls fn each time this node becomes the leader, once a
// barrier has applied everything committed before, with a context that is
// cancelled when leadership is lost, ctx is done or the node shuts down. fn
// must return soon after its context is done; it is not called again in
// the same term if it returns early. RunLeaderLoops blocks until ctx is done
// or the node shuts down, so run it in its own goroutine.
func (n *Node) RunLeaderLoops(ctx context.Context, fn func(leaderCtx context.Context)) {
	for {
		epoch, watch := n.lead.state()
		if epoch != nil && epoch.Err() == nil {
			run, cancel := context.WithCancel(epoch)
			stop := context.AfterFunc(ctx, cancel)
			fn(run)
			stop()
			cancel()
			select {
			case <-epoch.Done():
			case <-ctx.Done():
				return
			}
			continue
		}
		select {
		case <-watch:
		case <-ctx.Done():
			return
		case <-n.ctx.Done():
			return
		}
	}
}

// watchLeader turns raft's leader observations into a broadcast that Apply
// waits on when it has no leader to send to.
func (n *Node) watchLeader(obs chan raft.Observation) {
	for {
		select {
		case <-n.ctx.Done():
			return
		case o := <-obs:
			lo := o.Data.(raft.LeaderObservation)
			n.log.Debug("leader changed", "leader", lo.LeaderID)
			n.lead.changedMu.Lock()
			close(n.lead.changed)
			n.lead.changed = make(chan struct{})
			n.lead.changedMu.Unlock()
		}
	}
}

func (n *Node) leaderChanged() <-chan struct{} {
	n.lead.changedMu.Lock()
	defer n.lead.changedMu.Unlock()
	return n.lead.changed
}
