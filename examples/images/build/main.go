// Command build writes shoal's demo images as OCI layout tarballs, one per
// image, for `make images` and for importing on machines without a
// registry:
//
//	go run ./examples/images/build -o dist/images [-tag shoal.dev/examples/NAME:dev]
//
// Each tarball is DIR/NAME.tar holding the image named by -tag with NAME
// substituted.
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
	tag := flag.String("tag", "shoal.dev/examples/NAME:dev", "image reference; NAME is replaced by the image name")
	flag.Parse()
	if err := run(*out, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "build images:", err)
		os.Exit(1)
	}
}

func run(out, tag string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	var b testimages.Builder
	for _, name := range testimages.Names() {
		img, err := b.Build(context.Background(), name)
		if err != nil {
			return err
		}
		ref := strings.ReplaceAll(tag, "NAME", name)
		path := filepath.Join(out, name+".tar")
		if err := testimages.WriteOCITar(img, ref, path); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		d, err := img.Digest()
		if err != nil {
			return err
		}
		fmt.Printf("%s\t%s\t%s\n", path, ref, d)
	}
	return nil
}
