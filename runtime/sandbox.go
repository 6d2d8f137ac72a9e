package runtime

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sys/unix"
)

// A pod sandbox is a network namespace pinned by a bind mount on a file
// under DataDir/netns, attached to the node bridge by CNI, plus the pod's
// hosts, hostname and resolv.conf files. There is no pause container: the
// bind mount keeps the namespace alive while no container runs, and across
// agent restarts.

// newNetNS creates a network namespace and pins it at path.
func newNetNS(path string) error {
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		return fmt.Errorf("create netns file: %w", err)
	}
	f.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread is locked and never unlocked: when this goroutine
		// returns the Go runtime discards the thread and its namespace,
		// so no other goroutine ever runs in the new namespace.
		goruntime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare netns: %w", err)
			return
		}
		src := fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())
		if err := unix.Mount(src, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind netns to %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		return err
	}
	return nil
}

// removeNetNS unpins and deletes a network namespace file. A missing file
// is not an error.
func removeNetNS(path string) error {
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmount netns %s: %w", path, err)
	}
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove netns %s: %w", path, err)
	}
	return nil
}

// cniNet runs the node's CNI configuration: loopback, then bridge +
// host-local + portmap.
type cniNet struct {
	cni  *libcni.CNIConfig
	lo   *libcni.NetworkConfigList
	main *libcni.NetworkConfigList
}

func newCNINet(cfg Config) (*cniNet, error) {
	cache := filepath.Join(cfg.DataDir, "cni", "cache")
	bridge := map[string]any{
		"type":        "bridge",
		"bridge":      cfg.BridgeName,
		"isGateway":   true,
		"ipMasq":      cfg.IPMasq,
		"hairpinMode": true,
		"ipam": map[string]any{
			"type":    "host-local",
			"ranges":  [][]map[string]string{{{"subnet": cfg.PodCIDR.Masked().String()}}},
			"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
			"dataDir": filepath.Join(cfg.DataDir, "cni", "networks"),
		},
	}
	if cfg.MTU > 0 {
		bridge["mtu"] = cfg.MTU
	}
	mainConf, err := json.Marshal(map[string]any{
		"cniVersion": "1.0.0",
		"name":       cfg.NetworkName,
		"plugins": []any{bridge, map[string]any{
			"type":         "portmap",
			"capabilities": map[string]bool{"portMappings": true},
			"snat":         true,
		}},
	})
	if err != nil {
		return nil, err
	}
	main, err := libcni.ConfListFromBytes(mainConf)
	if err != nil {
		return nil, fmt.Errorf("cni config: %w", err)
	}
	lo, err := libcni.ConfListFromBytes([]byte(`{"cniVersion":"1.0.0","name":"` + cfg.NetworkName + `-lo","plugins":[{"type":"loopback"}]}`))
	if err != nil {
		return nil, fmt.Errorf("cni loopback config: %w", err)
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := findPlugin(cfg.CNIBinDirs, p); err != nil {
			return nil, err
		}
	}
	// An explicit exec: with nil, libcni fills in its default lazily and without a lock on the
	// first call, which races when a fresh node sets up several pods at once.
	exec := &invoke.DefaultExec{RawExec: &invoke.RawExec{Stderr: os.Stderr}, PluginDecoder: version.PluginDecoder{}}
	return &cniNet{cni: libcni.NewCNIConfigWithCacheDir(cfg.CNIBinDirs, cache, exec), lo: lo, main: main}, nil
}

func findPlugin(dirs []string, name string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("CNI plugin %q not found in %s", name, strings.Join(dirs, ", "))
}

type cniPortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol"`
	HostIP        string `json:"hostIP,omitempty"`
}

func (n *cniNet) runtimeConf(uid, netns string, ports []PortMapping) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: uid, NetNS: netns, IfName: "eth0"}
	var pm []cniPortMapping
	for _, p := range ports {
		if p.HostPort > 0 {
			pm = append(pm, cniPortMapping{HostPort: p.HostPort, ContainerPort: p.ContainerPort,
				Protocol: strings.ToLower(string(p.Protocol)), HostIP: p.HostIP})
		}
	}
	if len(pm) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": pm}
	}
	return rt
}

// add attaches the namespace and returns the pod's IPv4 address.
func (n *cniNet) add(ctx context.Context, uid, netns string, ports []PortMapping) (netip.Addr, error) {
	rt := n.runtimeConf(uid, netns, nil)
	if _, err := n.cni.AddNetworkList(ctx, n.lo, rt); err != nil {
		return netip.Addr{}, fmt.Errorf("cni loopback: %w", err)
	}
	res, err := n.cni.AddNetworkList(ctx, n.main, n.runtimeConf(uid, netns, ports))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cni %s: %w", n.main.Name, err)
	}
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("cni result: %w", err)
	}
	for _, ip := range r.IPs {
		if a, ok := netip.AddrFromSlice(ip.Address.IP); ok && a.Unmap().Is4() {
			return a.Unmap(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("cni %s returned no IPv4 address", n.main.Name)
}

// del releases the pod's network. netns may be empty or gone: host-local
// still releases the address and the bridge plugin skips the veth.
func (n *cniNet) del(ctx context.Context, uid, netns string, ports []PortMapping) error {
	if netns != "" {
		if _, err := os.Stat(netns); err != nil {
			netns = ""
		}
	}
	var errs []error
	if err := n.cni.DelNetworkList(ctx, n.main, n.runtimeConf(uid, netns, ports)); err != nil {
		errs = append(errs, fmt.Errorf("cni del %s: %w", n.main.Name, err))
	}
	if netns != "" {
		if err := n.cni.DelNetworkList(ctx, n.lo, n.runtimeConf(uid, netns, nil)); err != nil {
			errs = append(errs, fmt.Errorf("cni del loopback: %w", err))
		}
	}
	return errors.Join(errs...)
}

// writePodFiles writes hostname, hosts and resolv.conf into dir.
func writePodFiles(dir string, spec PodSpec, ip netip.Addr, dns DNSConfig, clusterDomain string) error {
	var hosts strings.Builder
	hosts.WriteString("# Managed by shoal.\n127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	names := spec.Hostname
	if spec.Subdomain != "" {
		names = fmt.Sprintf("%s.%s.%s.svc.%s\t%s", spec.Hostname, spec.Subdomain, spec.Key.Namespace, clusterDomain, spec.Hostname)
	}
	fmt.Fprintf(&hosts, "%s\t%s\n", ip, names)
	for _, a := range spec.HostAliases {
		if len(a.Hostnames) > 0 {
			fmt.Fprintf(&hosts, "%s\t%s\n", a.IP, strings.Join(a.Hostnames, " "))
		}
	}
	var rc strings.Builder
	for _, ns := range dns.Nameservers {
		fmt.Fprintf(&rc, "nameserver %s\n", ns)
	}
	if len(dns.Searches) > 0 {
		fmt.Fprintf(&rc, "search %s\n", strings.Join(dns.Searches, " "))
	}
	if len(dns.Options) > 0 {
		fmt.Fprintf(&rc, "options %s\n", strings.Join(dns.Options, " "))
	}
	files := map[string]string{"hostname": spec.Hostname + "\n", "hosts": hosts.String(), "resolv.conf": rc.String()}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			return fmt.Errorf("write pod %s: %w", name, err)
		}
	}
	return nil
}

// hostDNS reads nameservers, search and options from a resolv.conf.
func hostDNS(path string) DNSConfig {
	var d DNSConfig
	f, err := os.Open(path)
	if err != nil {
		return d
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch fields[0] {
		case "nameserver":
			// A loopback resolver on the host is unreachable from a pod.
			if a, err := netip.ParseAddr(fields[1]); err == nil && !a.IsLoopback() {
				d.Nameservers = append(d.Nameservers, fields[1])
			}
		case "search":
			d.Searches = fields[1:]
		case "options":
			d.Options = fields[1:]
		}
	}
	return d
}
