package runtime

import (
	"context"
	"errors"
	"fmt"
	"maps"
)

// What the Fake does with values when FakeConfig.Values is set: at every
// pull it resolves imagePullSecrets (WithCurrentValues, as containerd
// does) and checks them against FakeConfig.RegistryAuth as a registry
// would; it keeps the files of configMap and secret volumes in memory,
// re-projecting them on RefreshVolumes, and each container's environment
// as of its last (re)start (Env), so that unit tests can check the
// plumbing without containerd.

// FakePull is one image pull the Fake made.
type FakePull struct {
	Image string
	// Secret is the imagePullSecret ("namespace/name") whose credentials
	// pulled the image; empty for an anonymous pull.
	Secret string
	// Username is the user name of those credentials, so that a test can
	// tell one version of a Secret from another.
	Username string
}

// Env returns a container's environment ("NAME=value") as of its last
// (re)start; nil when the Fake resolved none (no FakeConfig.Values, or a
// failure: the container's status says why).
func (f *Fake) Env(uid, container string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[uid]
	if !ok {
		return nil
	}
	return append([]string(nil), p.env[container]...)
}

// resolveEnvs resolves the environments of a pod RunPod just made, outside
// the lock, and records them; a container whose environment fails is
// Waiting with CreateContainerConfigError, as with containerd.
func (f *Fake) resolveEnvs(ctx context.Context, spec PodSpec, p *fakePod) PodStatus {
	f.mu.Lock()
	ip := p.ip.String()
	f.mu.Unlock()
	envs := map[string][]string{}
	errs := map[string]error{}
	for _, c := range spec.allContainers() {
		env, _, _, _, err := containerEnv(ctx, newObjectCache(f.cfg.Values, spec.Key.Namespace), spec, ip, c)
		if err != nil {
			errs[c.Name] = err
			continue
		}
		envs[c.Name] = env
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range p.cs {
		c := &p.cs[i]
		if err, bad := errs[c.Name]; bad && c.ID != "" {
			c.ID, c.Reason, c.Message, c.FailedAt = "", ReasonCreateContainerConfigError, err.Error(), f.cfg.Now()
		}
	}
	for name, env := range envs {
		p.env[name] = env
	}
	return f.status(p)
}

// Pulls returns the pulls made so far, in order.
func (f *Fake) Pulls() []FakePull {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]FakePull(nil), f.pulls...)
}

// VolumeFiles returns the files of a pod's configMap or secret volume as
// the container would read them; nil when the Fake holds none.
func (f *Fake) VolumeFiles(uid, volume string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[uid]
	if !ok || p.volumes[volume] == nil {
		return nil
	}
	out := map[string]string{}
	for path, pf := range p.volumes[volume] {
		out[path] = string(pf.data)
	}
	return out
}

// resolve reads what a new pod needs from FakeConfig.Values.
func (f *Fake) resolve(ctx context.Context, spec PodSpec) ([]PullSecret, map[string]map[string]projectedFile, map[string]string, error) {
	secrets := resolvePullSecrets(ctx, f.cfg.Values, spec.Key.Namespace, spec.ImagePullSecrets)
	if f.cfg.Values == nil {
		return secrets, nil, nil, nil
	}
	// The Fake's hashes are HMACs with an empty key: they never leave it.
	vols, hashes, err := projectObjectVolumes(ctx, newObjectCache(f.cfg.Values, spec.Key.Namespace), spec.Volumes, nil, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	return secrets, vols, hashes, nil
}

// authorize checks a pull against FakeConfig.RegistryAuth and returns the
// credentials used (zero for none).
func (f *Fake) authorize(ref string, secrets []PullSecret) (pullCred, error) {
	if len(secrets) == 0 && len(f.cfg.RegistryAuth) == 0 {
		return pullCred{}, nil
	}
	host, _, err := imageRepo(ref)
	if err != nil {
		return pullCred{}, nil // the Fake takes any name; no registry guards it
	}
	creds := credentialsFor(ref, secrets)
	want, guarded := f.cfg.RegistryAuth[host]
	if !guarded {
		if len(creds) > 0 {
			return creds[0], nil
		}
		return pullCred{}, nil
	}
	unauthorized := errors.New("401 Unauthorized")
	if len(creds) == 0 {
		return pullCred{}, pullFailure(ref, secrets, nil, []error{unauthorized})
	}
	errs := make([]error, 0, len(creds))
	for _, c := range creds {
		if c.auth == want {
			return c, nil
		}
		errs = append(errs, unauthorized)
	}
	return pullCred{}, pullFailure(ref, secrets, creds, errs)
}

// RefreshVolumes implements Runtime: with FakeConfig.Values, the pod's
// configMap and secret volumes are resolved again and those whose content
// changed are replaced.
func (f *Fake) RefreshVolumes(ctx context.Context, key PodKey) ([]string, error) {
	f.mu.Lock()
	p, ok := f.pods[key.UID]
	var spec PodSpec
	var old map[string]string
	if ok {
		spec = p.spec
		old = maps.Clone(p.volumeHash) // written under the lock by another refresh
	}
	f.mu.Unlock()
	if !ok {
		return nil, podErr(key, "refresh volumes", ErrPodNotFound)
	}
	if f.cfg.Values == nil {
		return nil, nil
	}
	vols, hashes, err := projectObjectVolumes(ctx, newObjectCache(f.cfg.Values, key.Namespace), spec.Volumes, old, nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok = f.pods[key.UID]
	if !ok {
		return nil, podErr(key, "refresh volumes", ErrPodNotFound)
	}
	if p.volumes == nil {
		p.volumes, p.volumeHash = map[string]map[string]projectedFile{}, map[string]string{}
	}
	var changed []string
	for _, v := range spec.Volumes {
		if files, ok := vols[v.Name]; ok {
			p.volumes[v.Name], p.volumeHash[v.Name] = files, hashes[v.Name]
			changed = append(changed, v.Name)
		}
	}
	if len(changed) > 0 {
		f.calls = append(f.calls, fmt.Sprintf("RefreshVolumes %s/%s %v", key.Namespace, key.Name, changed))
	}
	if err != nil {
		return changed, podErr(key, "refresh volumes", err)
	}
	return changed, nil
}
