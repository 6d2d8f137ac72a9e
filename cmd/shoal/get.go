package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/state"
)

func newGetCommand() *cobra.Command {
	var (
		srv           serverFlags
		output        string
		namespace     string
		allNamespaces bool
		noHeaders     bool
	)
	cmd := &cobra.Command{
		Use:   "get (nodes | pods | services | events) [-n NS | -A] [-o wide|json|yaml]",
		Short: "List nodes, pods, Services or events, as kubectl get does",
		Long: `List the cluster's nodes, pods or Services from an agent's replica, in kubectl's columns.
Pods and Services are those of the namespace given with -n (default "default"), or of every
namespace with -A. Services show the addresses the cluster allocated and their endpoints, as the
answering node programs them. Events are what the leader recorded: why a pod is not scheduled,
rollout steps, refused Service addresses (-A for every namespace and the nodes' events).`,
		Example: `  shoal get nodes
  shoal get pods -A -o wide
  shoal get services -n hello
  shoal get pods -n shop -o yaml`,
		Args:      cobra.ExactArgs(1),
		ValidArgs: []string{"nodes", "pods", "services", "events"},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "", "wide", "json", "yaml"); err != nil {
				return err
			}
			c, err := srv.client()
			if err != nil {
				return err
			}
			w, now := cmd.OutOrStdout(), time.Now()
			if noHeaders {
				w = &skipFirstLine{w: w}
			}
			ns := namespace
			if allNamespaces {
				ns = ""
			}
			switch strings.ToLower(args[0]) {
			case "nodes", "node", "no":
				list, err := c.Nodes(cmd.Context())
				if err != nil {
					return err
				}
				if output == "json" || output == "yaml" {
					return writeData(w, output, list.Nodes)
				}
				if len(list.Nodes) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "No resources found")
					return nil
				}
				return writeNodes(w, list.Nodes, list.Leader, output == "wide")
			case "pods", "pod", "po":
				list, err := c.Pods(cmd.Context(), ns)
				if err != nil {
					return err
				}
				if output == "json" || output == "yaml" {
					return writeData(w, output, list.Pods)
				}
				if len(list.Pods) == 0 {
					if allNamespaces {
						fmt.Fprintln(cmd.ErrOrStderr(), "No resources found")
					} else {
						fmt.Fprintf(cmd.ErrOrStderr(), "No resources found in %s namespace.\n", ns)
					}
					return nil
				}
				return writePods(w, list.Pods, allNamespaces, output == "wide", now)
			case "services", "service", "svc":
				list, err := c.Services(cmd.Context(), ns)
				if err != nil {
					return err
				}
				for _, p := range list.Problems {
					fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", p)
				}
				if output == "json" || output == "yaml" {
					return writeData(w, output, list.Services)
				}
				if len(list.Services) == 0 {
					if allNamespaces {
						fmt.Fprintln(cmd.ErrOrStderr(), "No resources found")
					} else {
						fmt.Fprintf(cmd.ErrOrStderr(), "No resources found in %s namespace.\n", ns)
					}
					return nil
				}
				return writeServices(w, list.Services, allNamespaces, output == "wide")
			case "events", "event", "ev":
				list, err := c.Events(cmd.Context(), ns)
				if err != nil {
					return err
				}
				if output == "json" || output == "yaml" {
					return writeData(w, output, list.Events)
				}
				if len(list.Events) == 0 {
					fmt.Fprintln(cmd.ErrOrStderr(), "No events found")
					return nil
				}
				return writeEvents(w, list.Events, now)
			default:
				return fmt.Errorf("unknown resource type %q: use nodes, pods, services or events", args[0])
			}
		},
	}
	srv.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide, json or yaml")
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "the namespace of the pods or Services")
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "pods or Services of every namespace")
	cmd.Flags().BoolVar(&noHeaders, "no-headers", false, "leave out the header line of the table")
	return cmd
}

func writeData(w io.Writer, format string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if format == "yaml" {
		if b, err = yaml.JSONToYAML(b); err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// nodeStatus reads like kubectl's STATUS column.
func nodeStatus(n *state.Node) string {
	s := n.Status.String()
	if n.Cordoned {
		s += ",SchedulingDisabled"
	}
	return s
}

func writeNodes(w io.Writer, nodes []*state.Node, leader string, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := "NAME\tSTATUS\tROLES\tCPU\tMEMORY\tPODS"
	if wide {
		head += "\tINTERNAL-IP\tPOD-CIDR\tTAINTS"
	}
	fmt.Fprintln(tw, head)
	for _, n := range nodes {
		role := "<none>"
		if n.Name == leader {
			role = "leader"
		}
		cpu := resource.NewMilliQuantity(n.Allocatable.MilliCPU, resource.DecimalSI)
		mem := resource.NewQuantity(n.Allocatable.Memory, resource.BinarySI)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d", n.Name, nodeStatus(n), role, cpu, humanBytes(n.Allocatable.Memory, mem), n.Allocatable.Pods)
		if wide {
			taints := make([]string, 0, len(n.Taints))
			for _, t := range n.Taints {
				taints = append(taints, t.ToString())
			}
			fmt.Fprintf(tw, "\t%s\t%s\t%s", orNone(n.Address), orNone(n.PodCIDR), orNone(strings.Join(taints, ",")))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// humanBytes shows memory in whole Mi or Gi when it divides, as kubectl
// users read it.
func humanBytes(b int64, q *resource.Quantity) string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGi", b>>30)
	case b >= 1<<20:
		return fmt.Sprintf("%dMi", b>>20)
	}
	return q.String()
}

// podStatus reads like kubectl's STATUS column: Terminating while being
// deleted, Lost once its node is gone, the waiting reason while one holds
// the pod, else the phase.
func podStatus(p *state.Pod) string {
	if p.Desired == state.DesiredDelete && !p.Status.Phase.Terminal() {
		return "Terminating"
	}
	if p.Status.Phase == state.PhaseLost {
		return string(state.PhaseLost) // what its containers last said no longer holds
	}
	for _, c := range p.Status.Containers {
		if c.State == "waiting" && c.Reason != "" {
			return c.Reason
		}
	}
	if p.Status.Reason != "" && p.Status.Phase != state.PhaseRunning {
		return p.Status.Reason
	}
	if p.Status.Phase == "" {
		return string(state.PhasePending)
	}
	return string(p.Status.Phase)
}

func writePods(w io.Writer, pods []*state.Pod, allNamespaces, wide bool, now time.Time) error {
	pods = append([]*state.Pod(nil), pods...)
	sort.Slice(pods, func(i, j int) bool {
		if pods[i].Namespace != pods[j].Namespace {
			return pods[i].Namespace < pods[j].Namespace
		}
		return pods[i].Name < pods[j].Name
	})
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := "NAME\tREADY\tSTATUS\tRESTARTS\tAGE"
	if allNamespaces {
		head = "NAMESPACE\t" + head
	}
	if wide {
		head += "\tIP\tNODE"
	}
	fmt.Fprintln(tw, head)
	for _, p := range pods {
		ready, restarts := 0, int32(0)
		for _, c := range p.Status.Containers {
			if c.Ready {
				ready++
			}
			restarts += c.Restarts
		}
		total := max(len(p.Status.Containers), len(p.Spec.Images))
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", p.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%s\t%d\t%s", p.Name, ready, total, podStatus(p), restarts, age(now, p.Created))
		if wide {
			fmt.Fprintf(tw, "\t%s\t%s", orNone(p.Status.PodIP), orNone(p.NodeName))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func writeServices(w io.Writer, svcs []agent.ServiceInfo, allNamespaces, wide bool) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	head := "NAME\tTYPE\tCLUSTER-IP\tPORT(S)\tENDPOINTS"
	if allNamespaces {
		head = "NAMESPACE\t" + head
	}
	if wide {
		head += "\tADDRESSES"
	}
	fmt.Fprintln(tw, head)
	for _, s := range svcs {
		ports := make([]string, 0, len(s.Ports))
		for _, p := range s.Ports {
			if p.NodePort != 0 {
				ports = append(ports, fmt.Sprintf("%d:%d/%s", p.Port, p.NodePort, p.Protocol))
			} else {
				ports = append(ports, fmt.Sprintf("%d/%s", p.Port, p.Protocol))
			}
		}
		ready := 0
		addrs := make([]string, 0, len(s.Endpoints))
		for _, e := range s.Endpoints {
			if e.Ready {
				ready++
				addrs = append(addrs, e.IP)
			}
		}
		ip := s.ClusterIP
		if ip == "" {
			ip = "None"
		}
		if allNamespaces {
			fmt.Fprintf(tw, "%s\t", s.Namespace)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d", s.Name, s.Type, ip, orNone(strings.Join(ports, ",")), ready, len(s.Endpoints))
		if wide {
			fmt.Fprintf(tw, "\t%s", orNone(strings.Join(addrs, ",")))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

// skipFirstLine drops everything up to and including the first newline.
type skipFirstLine struct {
	w    io.Writer
	done bool
}

func (s *skipFirstLine) Write(p []byte) (int, error) {
	n := len(p)
	if !s.done {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			return n, nil
		}
		s.done = true
		p = p[i+1:]
	}
	if _, err := s.w.Write(p); err != nil {
		return 0, err
	}
	return n, nil
}

func writeEvents(w io.Writer, evs []*state.Event, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "LAST SEEN\tTYPE\tREASON\tOBJECT\tMESSAGE")
	for _, e := range evs {
		typ := e.Type
		if typ == "" {
			typ = "Normal"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", age(now, e.Time), typ, e.Reason, e.Key, strings.ReplaceAll(e.Message, "\n", " "))
	}
	return tw.Flush()
}
