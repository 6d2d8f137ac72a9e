package runtime

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/distribution/reference"
	corev1 "k8s.io/api/core/v1"
)

// normaliseRef turns a Kubernetes image reference into containerd's full
// form: "nginx" becomes "docker.io/library/nginx:latest".
func normaliseRef(ref string) (string, error) {
	named, err := reference.ParseDockerRef(ref)
	if err != nil {
		return "", fmt.Errorf("%w: %q: %w", ErrInvalidImageName, ref, err)
	}
	return named.String(), nil
}

// EnsureImage implements Runtime.
func (c *Containerd) EnsureImage(ctx context.Context, ref string, policy corev1.PullPolicy, secrets ...PullSecret) (string, error) {
	ctx = c.ctx(ctx)
	full, err := normaliseRef(ref)
	if err != nil {
		return "", err
	}
	if policy != corev1.PullAlways {
		img, err := c.client.GetImage(ctx, full)
		switch {
		case err == nil:
			// Present, but a pull interrupted before unpacking leaves an
			// image without a snapshot: finish it rather than fail later.
			if ok, uerr := img.IsUnpacked(ctx, c.cfg.Snapshotter); uerr == nil && ok {
				return full, nil
			}
			if err := img.Unpack(ctx, c.cfg.Snapshotter); err != nil {
				return "", fmt.Errorf("%w: unpack %s: %w", ErrImagePull, full, err)
			}
			return full, nil
		case !errdefs.IsNotFound(err):
			return "", fmt.Errorf("%w: look up %s: %w", ErrImagePull, full, err)
		case policy == corev1.PullNever:
			return "", fmt.Errorf("%w: image %s is not present and imagePullPolicy is Never", ErrImageNeverPull, full)
		}
	}
	creds := credentialsFor(full, secrets)
	if len(creds) == 0 {
		// No credentials for this registry: anonymous, as the kubelet does.
		c.log.Info("pulling image", "image", full)
		if err := c.pull(ctx, full, nil); err != nil {
			return "", pullFailure(full, secrets, nil, []error{err})
		}
		return full, nil
	}
	errs := make([]error, 0, len(creds))
	for i := range creds {
		// The log names the Secret, never a credential.
		c.log.Info("pulling image", "image", full, "imagePullSecret", creds[i].secret)
		err := c.pull(ctx, full, &creds[i].auth)
		if err == nil {
			return full, nil
		}
		if ctx.Err() != nil {
			return "", fmt.Errorf("%w: pull %s: %w", ErrImagePull, full, err)
		}
		errs = append(errs, err)
	}
	return "", pullFailure(full, secrets, creds, errs)
}

// pull fetches and unpacks an image, with the credentials given (nil for
// none). Each pull has its own resolver and authorizer, so credentials are
// not cached beyond it.
func (c *Containerd) pull(ctx context.Context, full string, auth *RegistryAuth) error {
	var opts []docker.RegistryOpt
	if auth != nil {
		opts = append(opts, docker.WithAuthorizer(docker.NewDockerAuthorizer(docker.WithAuthCreds(credsFunc(full, *auth)))))
	}
	_, err := c.client.Pull(ctx, full,
		containerd.WithPullUnpack,
		containerd.WithPullSnapshotter(c.cfg.Snapshotter),
		containerd.WithResolver(docker.NewResolver(docker.ResolverOptions{Hosts: c.registryHosts(opts...)})),
	)
	return err
}

// registryHosts reaches localhost and the configured insecure registries
// over plain HTTP and everything else over HTTPS.
func (c *Containerd) registryHosts(opts ...docker.RegistryOpt) docker.RegistryHosts {
	insecure := map[string]bool{}
	for _, h := range c.cfg.InsecureRegistries {
		insecure[h] = true
	}
	return docker.ConfigureDefaultRegistries(append(opts, docker.WithPlainHTTP(func(host string) (bool, error) {
		if insecure[host] {
			return true, nil
		}
		if h, _, err := net.SplitHostPort(host); err == nil && insecure[h] {
			return true, nil
		}
		return isLoopbackHost(host), nil
	}))...)
}

func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ImportImages loads the images of an OCI layout or `docker save` tarball
// (as written by `go run ./examples/images/build`) into the node's
// namespace and unpacks them, for machines that cannot reach a registry.
// It returns the image names, which pods then use with imagePullPolicy
// Never or IfNotPresent.
func (c *Containerd) ImportImages(ctx context.Context, r io.Reader) ([]string, error) {
	return importImages(c.ctx(ctx), c.client, c.cfg.Snapshotter, r)
}

// ImportImageArchive is ImportImages for a caller that has no node runtime:
// `shoal image import` on a machine whose agent is stopped or not yet
// started. It connects to the containerd at address, imports into namespace
// (default "shoal", the agent's) and unpacks for snapshotter (default
// overlayfs).
func ImportImageArchive(ctx context.Context, address, namespace, snapshotter string, r io.Reader) ([]string, error) {
	cfg := Config{Namespace: namespace, Snapshotter: snapshotter}.withDefaults()
	client, err := containerd.New(address, containerd.WithDefaultNamespace(cfg.Namespace), containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", address, err)
	}
	defer client.Close()
	return importImages(namespaces.WithNamespace(ctx, cfg.Namespace), client, cfg.Snapshotter, r)
}

func importImages(ctx context.Context, client *containerd.Client, snapshotter string, r io.Reader) ([]string, error) {
	ctx, done, err := client.WithLease(ctx)
	if err != nil {
		return nil, err
	}
	defer done(context.WithoutCancel(ctx))
	imgs, err := client.Import(ctx, r)
	if err != nil {
		return nil, fmt.Errorf("import images: %w", err)
	}
	var names []string
	for _, im := range imgs {
		img := containerd.NewImage(client, im)
		if err := img.Unpack(ctx, snapshotter); err != nil {
			return names, fmt.Errorf("import images: unpack %s: %w", im.Name, err)
		}
		names = append(names, im.Name)
	}
	return names, nil
}
