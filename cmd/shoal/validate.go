package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/manifest"
)

func newValidateCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "validate [DIR]",
		Short: "Decode and validate every manifest under DIR (default: the current directory)",
		Long: `Decode and validate every *.yaml, *.yml and *.json file under DIR, as the cluster would
at a commit. Every problem is listed at once with its file, line, object and field.
Exit status: 0 valid, 1 invalid.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			dir := "."
			if len(args) == 1 {
				dir = args[0]
			}
			if fi, err := os.Stat(dir); err != nil {
				return err
			} else if !fi.IsDir() {
				return fmt.Errorf("%s is not a directory", dir)
			}
			set, errs := manifest.Load(os.DirFS(dir), ".")
			if err := writeValidation(cmd.OutOrStdout(), output, dir, set, errs); err != nil {
				return err
			}
			if len(errs) > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

// validationReport is the JSON form of `shoal validate -o json`.
type validationReport struct {
	Valid   bool               `json:"valid"`
	Objects int                `json:"objects"`
	Errors  manifest.ErrorList `json:"errors"`
}

func writeValidation(w io.Writer, output, dir string, set *manifest.Set, errs manifest.ErrorList) error {
	if output == "json" {
		if errs == nil {
			errs = manifest.ErrorList{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(validationReport{Valid: len(errs) == 0, Objects: set.Len(), Errors: errs})
	}
	for _, e := range errs {
		fmt.Fprintln(w, e.Error())
	}
	switch {
	case len(errs) == 0:
		fmt.Fprintf(w, "%s: %s valid\n", dir, plural(set.Len(), "object"))
	default:
		fmt.Fprintf(w, "%s: %s, %s\n", dir, plural(set.Len(), "object"), plural(len(errs), "problem"))
	}
	return nil
}

// checkOutput rejects an -o value the command does not render, naming the ones it does.
func checkOutput(got string, allowed ...string) error {
	for _, a := range allowed {
		if got == a {
			return nil
		}
	}
	return fmt.Errorf("unsupported output format %q: use one of %v", got, allowed)
}

func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
