package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/runtime"
)

func newImageCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the images on this node",
	}
	cmd.AddCommand(newImageImportCommand())
	return cmd
}

func newImageImportCommand() *cobra.Command {
	var socket, dataDir, namespace string
	cmd := &cobra.Command{
		Use:   "import FILE.tar [FILE.tar...]",
		Short: "Load images from OCI or docker-save tarballs into this node's containerd",
		Long: `Load the images of OCI layout or "docker save" tarballs into this node's containerd, for
machines that cannot reach a registry. Pods use them with imagePullPolicy IfNotPresent or Never.

The images go to the containerd the agent uses: --containerd-socket when given, otherwise the
agent's private containerd under --data-dir (started, detached, if it is not running).`,
		Example: `  shoal image import --data-dir /var/lib/shoal dist/images/web-1.0.tar`,
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			address := socket
			if address == "" {
				if dataDir == "" {
					return errors.New("give --containerd-socket, or --data-dir for the agent's private containerd")
				}
				dir, err := filepath.Abs(filepath.Join(dataDir, "containerd"))
				if err != nil {
					return err
				}
				d, err := runtime.StartContainerd(ctx, runtime.DaemonConfig{Dir: dir})
				if err != nil {
					return err
				}
				address = d.Address
			}
			for _, file := range args {
				f, err := os.Open(file)
				if err != nil {
					return err
				}
				names, err := runtime.ImportImageArchive(ctx, address, namespace, "", f)
				f.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", file, err)
				}
				for _, n := range names {
					fmt.Fprintf(cmd.OutOrStdout(), "imported %s from %s\n", n, file)
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&socket, "containerd-socket", "", "an existing containerd's socket (default: the agent's private containerd under --data-dir)")
	cmd.Flags().StringVar(&dataDir, "data-dir", "", "the agent's data dir")
	cmd.Flags().StringVar(&namespace, "namespace", "shoal", "the containerd namespace the agent uses (--containerd-namespace)")
	return cmd
}
