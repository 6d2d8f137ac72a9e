// Command build writes shoal's demo images as OCI layout tarballs, one per
// image, for `make images` and for importing on machines without a
// registry:
//
//	go run ./examples/images/build -o dist/images [-tag shoal.dev/examples/NAME:1.0 ...]
//
// For each image and each -tag (repeatable; NAME is replaced by the image
// name) it writes DIR/NAME-TAG.tar, TAG being the reference's tag. The
// default is the tags the examples use, 1.0, and 1.1 for rolling updates.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/shoal-dev/shoal/internal/testimages"
)

func main() {
	out := flag.String("o", "dist/images", "output directory")
	var tags []string
	flag.Func("tag", "image reference, repeatable; NAME is replaced by the image name (default shoal.dev/examples/NAME:1.0 and :1.1)", func(s string) error {
		tags = append(tags, s)
		return nil
	})
	flag.Parse()
	if len(tags) == 0 {
		tags = []string{"shoal.dev/examples/NAME:1.0", "shoal.dev/examples/NAME:1.1"}
	}
	if err := run(*out, tags); err != nil {
		fmt.Fprintln(os.Stderr, "build images:", err)
		os.Exit(1)
	}
}

func run(out string, tags []string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var b testimages.Builder
	for _, name := range testimages.Names() {
		img, err := b.Build(context.Background(), name)
		if err != nil {
			return err
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		for _, tag := range tags {
			ref := strings.ReplaceAll(tag, "NAME", name)
			v := "latest"
			if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
				v = ref[i+1:]
			}
			path := filepath.Join(out, name+"-"+v+".tar")
			if err := testimages.WriteOCITar(img, ref, path); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			fmt.Printf("%s\t%s\t%s\n", path, ref, d)
		}
	}
	return nil
}
