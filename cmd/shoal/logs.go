package main

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/agent"
)

func newLogsCommand() *cobra.Command {
	var (
		srv       serverFlags
		namespace string
		container string
		follow    bool
	)
	cmd := &cobra.Command{
		Use:   "logs POD [-c CONTAINER] [-n NS] [-f]",
		Short: "Print the output of a pod's container, as kubectl logs does",
		Long: `Print what a container of a pod wrote to stdout and stderr, from the node that runs it.
The agent given with --server answers for its own pods; for a pod on another node it names that
node, and the command asks the node's status API at the same port (so every node's status API
must be reachable: --status-addr on a non-loopback address, with the cluster key).`,
		Example: `  shoal logs web-7c9f-x2x4q -n hello
  shoal logs db-0 -n shop -c db -f`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := srv.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			err = c.Logs(ctx, namespace, args[0], container, follow, cmd.OutOrStdout())
			var mis *agent.MisdirectedError
			if !errors.As(err, &mis) {
				return err
			}
			if mis.NodeAddr == "" {
				return fmt.Errorf("%s; its address is unknown", mis.Message)
			}
			// Ask the pod's node, at the port the first answer came from.
			_, port, perr := net.SplitHostPort(strings.TrimPrefix(strings.TrimPrefix(c.Server, "http://"), "https://"))
			if perr != nil {
				return fmt.Errorf("%s; --server %q has no port to ask it at", mis.Message, c.Server)
			}
			there := *c
			there.Server = net.JoinHostPort(mis.NodeAddr, port)
			return there.Logs(ctx, namespace, args[0], container, follow, cmd.OutOrStdout())
		},
	}
	srv.register(cmd)
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "the pod's namespace")
	cmd.Flags().StringVarP(&container, "container", "c", "", "the container (needed when the pod has several)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until interrupted")
	return cmd
}
