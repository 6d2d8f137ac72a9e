package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
	"github.com/shoal-dev/shoal/svcproxy"
	"github.com/shoal-dev/shoal/svcproxy/dns"
)

// The node's Service loop: every node load-balances every Service. Each
// change of the state (pods, nodes, allocations, the pinned commit) builds
// the view (BuildServiceView) and hands it to the sinks: with the containerd
// runtime, svcproxy's proxier (nftables or iptables, newProxier; in the
// node's network namespace) and the
// cluster DNS server, which listens on the node's pod-bridge gateway (the
// first address of the node's pod CIDR), port 53, UDP and TCP. Pods with
// dnsPolicy ClusterFirst get a resolv.conf naming that server (podDNS).
// With the fake runtime, or a runtime given in Deps, the view is built (and
// its problems logged) but nothing on the machine is touched.

// hostResolvConf is where the DNS server's upstreams come from.
const hostResolvConf = "/etc/resolv.conf"

// serviceSink receives every new view.
type serviceSink interface {
	Update([]svcproxy.Service)
}

// programsNode reports whether this agent owns the machine's networking:
// the containerd runtime it built itself (as for the host-gw routes).
func (a *Agent) programsNode() bool {
	return a.cfg.Runtime == RuntimeContainerd && a.deps.Runtime == nil
}

// dnsAddr is the cluster DNS address of a node with pod CIDR cidr: the
// bridge's gateway address, which the CNI bridge plugin gives the bridge.
func dnsAddr(cidr netip.Prefix) netip.Addr { return cidr.Masked().Addr().Next() }

// podDNS is the resolv.conf of a pod in namespace on a node with pod CIDR
// podCIDR: the node's cluster DNS, Kubernetes' search path and ndots:5.
// Nil (the runtime's node-wide default) when this agent serves no DNS or the
// node has no pod CIDR yet.
func (a *Agent) podDNS(podCIDR, namespace string) *runtime.DNSConfig {
	if !a.programsNode() {
		return nil
	}
	cidr, err := netip.ParsePrefix(podCIDR)
	if err != nil {
		return nil
	}
	d := a.cfg.ClusterDomain
	return &runtime.DNSConfig{
		Nameservers: []string{dnsAddr(cidr).String()},
		Searches:    []string{namespace + ".svc." + d, "svc." + d, d},
		Options:     []string{"ndots:5"},
	}
}

// serviceView builds the Service view from v and the Services at its pinned
// commit; nets caches pods' named ports and hostnames by UID (a record's
// manifest never changes) and is pruned to the pods of v.
func (a *Agent) serviceView(ctx context.Context, v *state.Snapshot, nets map[string]PodNet) ([]svcproxy.Service, []error, error) {
	pinned := v.PinnedRevision()
	if pinned == nil {
		return nil, nil, nil
	}
	l, err := a.src.load(ctx, pinned.Commit)
	if err != nil {
		return nil, nil, err
	}
	if l.set == nil {
		return nil, nil, fmt.Errorf("pinned commit %s holds no objects", pinned.Commit)
	}
	live := map[string]bool{}
	for _, p := range v.Pods() {
		live[p.UID] = true
	}
	for uid := range nets {
		if !live[uid] {
			delete(nets, uid)
		}
	}
	view, problems := BuildServiceView(v, servicesOf(l.set), func(rec *state.Pod) (PodNet, error) {
		if pn, ok := nets[rec.UID]; ok {
			return pn, nil
		}
		p, err := a.src.podFor(ctx, rec)
		if err != nil {
			return PodNet{}, err // not cached: tried again next round
		}
		pn := podNetOf(p)
		nets[rec.UID] = pn
		return pn, nil
	})
	return view, problems, nil
}

// runServices runs the node's Service loop until ctx ends.
func (a *Agent) runServices(ctx context.Context) {
	var sinks []serviceSink
	if a.programsNode() {
		cidr, err := a.waitPodCIDR(ctx)
		if err != nil {
			return
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		sinks = a.startServiceNetworking(ctx, &wg, cidr)
	}
	nets := map[string]PodNet{}
	var said string
	a.runLoop(ctx, "services", []state.Table{state.TableRevisions, state.TablePods, state.TableNodes, state.TableAllocations}, nil,
		func(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
			view, problems, err := a.serviceView(ctx, v, nets)
			if err != nil {
				return 0, err
			}
			if text := errors.Join(problems...); text != nil && text.Error() != said {
				said = text.Error()
				for _, p := range problems {
					a.log.Warn("service view", "problem", p)
				}
			} else if text == nil {
				said = ""
			}
			for _, s := range sinks {
				s.Update(view)
			}
			a.log.Debug("services in sync", "services", len(view))
			return 0, nil
		})
}

// waitPodCIDR waits until the leader gave this node its pod CIDR.
func (a *Agent) waitPodCIDR(ctx context.Context) (netip.Prefix, error) {
	for {
		v := a.store.Snapshot()
		if n := v.Node(a.cfg.NodeName); n != nil && n.PodCIDR != "" {
			return netip.ParsePrefix(n.PodCIDR)
		}
		if err := v.Wait(ctx, state.TableNodes); err != nil {
			return netip.Prefix{}, err
		}
	}
}

// startServiceNetworking prepares the kernel, starts the Proxier and the
// DNS server (each in its own goroutine, counted in wg) and returns them as
// sinks. What cannot start is logged as an error saying what will not work;
// the rest still runs.
func (a *Agent) startServiceNetworking(ctx context.Context, wg *sync.WaitGroup, podCIDR netip.Prefix) []serviceSink {
	log := a.log.With("component", "services")
	for _, w := range prepareKernel() {
		log.Warn(w)
	}
	var sinks []serviceSink
	clusterCIDR, _ := netip.ParsePrefix(a.cfg.PodCIDRRange) // checked by Validate
	serviceCIDR, _ := netip.ParsePrefix(a.cfg.ServiceCIDR)  // checked by Validate
	if p, err := newProxier(ctx, a.cfg.ProxyMode, svcproxy.Config{NodeName: a.cfg.NodeName, ClusterCIDR: clusterCIDR, ServiceCIDR: serviceCIDR,
		MasqueradeEgress: true}, log); err != nil {
		log.Error("service proxy unavailable: ClusterIPs and NodePorts do not answer on this node", "err", err)
	} else {
		sinks = append(sinks, p)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Run(ctx); err != nil && ctx.Err() == nil {
				log.Error("service proxy stopped", "err", err)
			}
		}()
	}
	upstreams, err := dns.UpstreamsFromResolvConf(hostResolvConf)
	if err != nil {
		log.Warn("cluster DNS: no upstream resolvers: names outside the cluster get SERVFAIL", "err", err)
	}
	srv, err := dns.NewServer(dns.Config{Domain: a.cfg.ClusterDomain, Upstreams: upstreams, Log: log})
	if err != nil {
		log.Error("cluster DNS unavailable", "err", err)
		return sinks
	}
	sinks = append(sinks, srv)
	addr := net.JoinHostPort(dnsAddr(podCIDR).String(), "53")
	wg.Add(1)
	go func() {
		defer wg.Done()
		serveDNS(ctx, srv, addr, log.Info, log.Warn)
	}()
	return sinks
}

// serviceProxy is what the agent uses of either svcproxy backend.
type serviceProxy interface {
	serviceSink
	Run(ctx context.Context) error
}

// newProxier builds the Proxier of the configured mode: nftables (the
// table "ip shoal", programmed over netlink), iptables (the system's
// iptables binaries), or auto: nftables when the kernel accepts the
// nftables table (checked by building and deleting a probe table in one
// transaction), iptables otherwise. The mode chosen is logged. The other
// backend's rules, left by an earlier run in the other mode, are removed:
// both would DNAT the same traffic.
func newProxier(ctx context.Context, mode string, node svcproxy.Config, log *slog.Logger) (serviceProxy, error) {
	plog := log.With("component", "svcproxy")
	useNFT := mode == ProxyModeNFTables
	if mode == ProxyModeAuto {
		if err := svcproxy.ProbeNFTables(); err != nil {
			log.Info("service proxy: the kernel does not take the nftables backend; using iptables", "err", err)
		} else {
			useNFT = true
		}
	}
	if useNFT {
		if ipt, err := svcproxy.NewIPTables(svcproxy.BackendAuto); err == nil {
			if err := ipt.Cleanup(ctx); err != nil {
				log.Warn("service proxy: removing the iptables backend's rules failed; they may still DNAT Service traffic", "err", err)
			}
		}
		p, err := svcproxy.NewNFTProxier(svcproxy.ProxierConfig{Node: node, NFT: svcproxy.NewNetlinkNFT(), Log: plog})
		if err != nil {
			return nil, err
		}
		log.Info("service proxy mode", "mode", ProxyModeNFTables, "requested", mode, "table", "ip "+svcproxy.NFTTable)
		return p, nil
	}
	if err := svcproxy.DeleteNFTTable(); err != nil {
		log.Debug("service proxy: no nftables table to remove", "err", err)
	}
	ipt, err := svcproxy.NewIPTables(svcproxy.BackendAuto)
	if err != nil {
		return nil, err
	}
	p, err := svcproxy.NewProxier(svcproxy.ProxierConfig{Node: node, Runner: ipt, Log: plog})
	if err != nil {
		return nil, err
	}
	log.Info("service proxy mode", "mode", ProxyModeIPTables, "requested", mode, "iptablesBackend", ipt.Backend())
	return p, nil
}

// serveDNS serves cluster DNS on addr until ctx ends. The address is the
// bridge's, which exists once the CNI bridge plugin set up the first pod:
// until then binding fails and is retried (with back-off, at most a second
// apart, so a new pod's first lookups are answered soon).
func serveDNS(ctx context.Context, srv *dns.Server, addr string, info, warn func(string, ...any)) {
	wait := 50 * time.Millisecond
	logged := false
	for ctx.Err() == nil {
		err := srv.Serve(ctx, addr, func(net.Addr) { info("cluster DNS listening", "addr", addr) })
		if ctx.Err() != nil {
			return
		}
		if !logged {
			warn("cluster DNS cannot listen yet (the pod bridge gets its address with the first pod); retrying", "addr", addr, "err", err)
			logged = true
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, time.Second)
	}
}

// prepareKernel enables what the Service rules need, as far as it can, and
// returns a warning per thing it could not: IPv4 forwarding, and
// br_netfilter with bridge-nf-call-iptables=1 (pods reaching a Service
// whose endpoint sits on the same bridge).
func prepareKernel() []string {
	var warns []string
	if err := writeSysctl("/proc/sys/net/ipv4/ip_forward", "1"); err != nil {
		warns = append(warns, fmt.Sprintf("cannot enable net.ipv4.ip_forward (%v): Services with endpoints on other nodes will not work", err))
	}
	const bridgeNF = "/proc/sys/net/bridge/bridge-nf-call-iptables"
	if _, err := os.Stat(bridgeNF); err != nil {
		if path, lerr := exec.LookPath("modprobe"); lerr == nil {
			if out, err := exec.Command(path, "br_netfilter").CombinedOutput(); err != nil {
				warns = append(warns, fmt.Sprintf("modprobe br_netfilter: %v: %s", err, strings.TrimSpace(string(out))))
			}
		}
	}
	if err := writeSysctl(bridgeNF, "1"); err != nil {
		warns = append(warns, fmt.Sprintf("br_netfilter is not available (%v): load it (modprobe br_netfilter) and set net.bridge.bridge-nf-call-iptables=1, "+
			"or pods will not reach Services whose endpoint runs on the same node", err))
	}
	return warns
}

func writeSysctl(path, value string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(b)) == value {
		return nil
	}
	return os.WriteFile(path, []byte(value+"\n"), 0o644)
}
