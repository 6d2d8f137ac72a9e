// Package testimages builds shoal's demo images (examples/images/web,
// batch and kv) into OCI images with go-containerregistry, serves
// them from an in-process registry on 127.0.0.1, and writes them as OCI
// layout tarballs for offline import.
//
// An image is one layer holding one static binary (CGO_ENABLED=0) at
// /NAME, with entrypoint ["/NAME"], for the platform the tests run on.
package testimages

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sync"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Names returns the images this package can build.
func Names() []string { return []string{"web", "batch", "kv"} }

const pkgBase = "github.com/shoal-dev/shoal/examples/images/"

// epoch is the fixed timestamp of every file and image, so that a build is
// reproducible and its digest stable.
var epoch = time.Unix(0, 0).UTC()

// Builder builds images once per process and caches them.
type Builder struct {
	// GoBinary is the go command (default: "go" on PATH, else GOROOT/bin/go).
	GoBinary string

	mu     sync.Mutex
	images map[string]v1.Image
}

// Build returns the image for one of Names.
func (b *Builder) Build(ctx context.Context, image string) (v1.Image, error) {
	if !slices.Contains(Names(), image) {
		return nil, fmt.Errorf("unknown test image %q (have %v)", image, Names())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if img, ok := b.images[image]; ok {
		return img, nil
	}
	bin, err := b.goBuild(ctx, image)
	if err != nil {
		return nil, err
	}
	img, err := imageFromBinary(image, bin)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", image, err)
	}
	if b.images == nil {
		b.images = map[string]v1.Image{}
	}
	b.images[image] = img
	return img, nil
}

func (b *Builder) goBuild(ctx context.Context, image string) ([]byte, error) {
	gobin := b.GoBinary
	if gobin == "" {
		if p, err := exec.LookPath("go"); err == nil {
			gobin = p
		} else {
			gobin = filepath.Join(goruntime.GOROOT(), "bin", "go")
		}
	}
	dir, err := os.MkdirTemp("", "shoal-testimage-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, image)
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkgBase+image)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goruntime.GOARCH)
	if msg, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("go build %s: %w\n%s", image, err, msg)
	}
	return os.ReadFile(out)
}

// imageFromBinary makes a one-layer OCI image running bin as /name.
func imageFromBinary(image string, bin []byte) (v1.Image, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"tmp/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o1777, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: image, Mode: 0o755, Size: int64(len(bin)), ModTime: epoch}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	layerBytes := buf.Bytes()
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerBytes)), nil
	}, tarball.WithMediaType(types.OCILayer))
	if err != nil {
		return nil, err
	}
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	img, err := mutate.Append(base, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: epoch}, CreatedBy: "shoal testimages: go build " + pkgBase + image,
	}})
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", goruntime.GOARCH
	cf.Created = v1.Time{Time: epoch}
	cf.Config = v1.Config{
		Entrypoint: []string{"/" + image},
		Env:        []string{"PATH=/"},
		WorkingDir: "/",
	}
	return mutate.ConfigFile(img, cf)
}

// Registry is an in-memory OCI registry served on 127.0.0.1.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of image references.
	Host string
	srv  *http.Server
	ln   net.Listener
	auth authn.Authenticator // what Push sends; nil: anonymous
}

// StartRegistry serves an empty registry on a free loopback port.
func StartRegistry() (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &Registry{Host: ln.Addr().String(), ln: ln,
		srv: &http.Server{Handler: registry.New(registry.Logger(log.New(io.Discard, "", 0))), ReadHeaderTimeout: 10 * time.Second}}
	go r.srv.Serve(ln)
	return r, nil
}

// StartAuthRegistry serves an empty registry that demands HTTP Basic
// credentials user:password on every request: a request without them, or
// with others, gets 401 with `WWW-Authenticate: Basic realm="shoal-test"`.
// Push authenticates.
func StartAuthRegistry(user, password string) (*Registry, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	h := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		u, p, ok := req.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u), []byte(user)) != 1 || subtle.ConstantTimeCompare([]byte(p), []byte(password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="shoal-test"`)
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
			return
		}
		reg.ServeHTTP(w, req)
	})
	r := &Registry{Host: ln.Addr().String(), ln: ln, auth: &authn.Basic{Username: user, Password: password},
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go r.srv.Serve(ln)
	return r, nil
}

// Close stops the registry.
func (r *Registry) Close() error { return r.srv.Close() }

// Push writes img as HOST/repo:tag and returns that reference.
func (r *Registry) Push(ctx context.Context, img v1.Image, repoTag string) (string, error) {
	ref := r.Host + "/" + repoTag
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		return "", err
	}
	opts := []remote.Option{remote.WithContext(ctx)}
	if r.auth != nil {
		opts = append(opts, remote.WithAuth(r.auth))
	}
	if err := remote.Write(tag, img, opts...); err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref, nil
}

// WriteOCITar writes img as an OCI image layout in a tar file, the image
// named ref (annotations org.opencontainers.image.ref.name and
// io.containerd.image.name), importable with `ctr images import`.
func WriteOCITar(img v1.Image, ref, path string) error {
	dir, err := os.MkdirTemp("", "shoal-oci-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	// containerd names the image after io.containerd.image.name, in its
	// normalised form (docker.io/library/x:tag for "x").
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return err
	}
	tag := "latest"
	if t, ok := named.(reference.Tagged); ok {
		tag = t.Tag()
	}
	if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
		"org.opencontainers.image.ref.name": tag,
		"io.containerd.image.name":          named.String(),
	})); err != nil {
		return err
	}
	return tarDir(dir, path)
}

// tarDir writes the files under dir into a tar at path, with fixed times.
func tarDir(dir, path string) (retErr error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if err := f.Close(); retErr == nil {
			retErr = err
		}
	}()
	tw := tar.NewWriter(f)
	err = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(rel), ModTime: epoch, Mode: 0o644}
		if info.IsDir() {
			hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, hdr.Name+"/", 0o755
			return tw.WriteHeader(hdr)
		}
		hdr.Typeflag, hdr.Size = tar.TypeReg, info.Size()
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		src, err := os.Open(p)
		if err != nil {
			return err
		}
		defer src.Close()
		_, err = io.Copy(tw, src)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
