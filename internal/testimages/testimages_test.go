package testimages

import (
	"archive/tar"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestBuildIsReproducibleAndRunnable(t *testing.T) {
	ctx := context.Background()
	var a, b Builder
	imgA, err := a.Build(ctx, "batch")
	if err != nil {
		t.Fatal(err)
	}
	imgB, err := b.Build(ctx, "batch")
	if err != nil {
		t.Fatal(err)
	}
	da, _ := imgA.Digest()
	db, _ := imgB.Digest()
	if da != db {
		t.Errorf("two builds differ: %s %s", da, db)
	}
	mt, _ := imgA.MediaType()
	if mt != types.OCIManifestSchema1 {
		t.Errorf("manifest media type %s", mt)
	}
	cf, err := imgA.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(cf.Config.Entrypoint, " ") != "/batch" || cf.OS != "linux" {
		t.Errorf("config %+v", cf.Config)
	}
	layers, _ := imgA.Layers()
	if len(layers) != 1 {
		t.Fatalf("%d layers", len(layers))
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "batch" && h.Mode&0o111 != 0 && h.Size > 0 {
			found = true
		}
	}
	if !found {
		t.Error("layer lacks an executable /batch")
	}
	if _, err := a.Build(ctx, "nope"); err == nil {
		t.Error("unknown image built")
	}
}

func TestRegistryAndOCITar(t *testing.T) {
	ctx := context.Background()
	var b Builder
	img, err := b.Build(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	reg, err := StartRegistry()
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	if !strings.HasPrefix(reg.Host, "127.0.0.1:") {
		t.Errorf("registry on %s", reg.Host)
	}
	ref, err := reg.Push(ctx, img, "shoal/web:v1")
	if err != nil {
		t.Fatal(err)
	}
	pref, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	got, err := remote.Image(pref, remote.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	if d, _ := got.Digest(); d != want {
		t.Errorf("pulled %s, pushed %s", d, want)
	}

	path := filepath.Join(t.TempDir(), "web.tar")
	if err := WriteOCITar(img, "web:dev", path); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			t.Fatal("no index.json in the tarball")
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "index.json" {
			continue
		}
		var idx struct {
			Manifests []struct {
				Digest      string            `json:"digest"`
				Annotations map[string]string `json:"annotations"`
			} `json:"manifests"`
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			t.Fatal(err)
		}
		if len(idx.Manifests) != 1 || idx.Manifests[0].Digest != want.String() ||
			idx.Manifests[0].Annotations["io.containerd.image.name"] != "docker.io/library/web:dev" {
			t.Errorf("index.json %+v", idx)
		}
		return
	}
}
