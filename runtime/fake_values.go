package runtime

import (
	"context"
	"errors"
	"fmt"
)

// What the Fake does with values when FakeConfig.Values is set: it
// resolves imagePullSecrets and checks them against FakeConfig.RegistryAuth
// as a registry would, and keeps the files of configMap and secret volumes
// in memory, re-projecting them on RefreshVolumes, so that unit tests can
// check the plumbing without containerd.

// FakePull is one image pull the Fake made.
type FakePull struct {
	Image string
	// Secret is the imagePullSecret ("namespace/name") whose credentials
	// pulled the image; empty for an anonymous pull.
	Secret string
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
	objs := newObjectCache(f.cfg.Values, spec.Key.Namespace)
	var secrets []PullSecret
	if len(spec.ImagePullSecrets) > 0 {
		secrets = resolvePullSecrets(ctx, objs, spec.ImagePullSecrets)
	}
	if f.cfg.Values == nil {
		return secrets, nil, nil, nil
	}
	vols, hashes, err := projectObjectVolumes(ctx, objs, spec.Volumes, nil, nil)
	if err != nil {
		return nil, nil, nil, err
	}
	return secrets, vols, hashes, nil
}

// authorize checks a pull against FakeConfig.RegistryAuth and returns the
// Secret whose credentials were used ("" for none).
func (f *Fake) authorize(ref string, secrets []PullSecret) (string, error) {
	if len(secrets) == 0 && len(f.cfg.RegistryAuth) == 0 {
		return "", nil
	}
	host, _, err := imageRepo(ref)
	if err != nil {
		return "", nil // the Fake takes any name; no registry guards it
	}
	creds := credentialsFor(ref, secrets)
	want, guarded := f.cfg.RegistryAuth[host]
	if !guarded {
		if len(creds) > 0 {
			return creds[0].secret, nil
		}
		return "", nil
	}
	unauthorized := errors.New("401 Unauthorized")
	if len(creds) == 0 {
		return "", pullFailure(ref, secrets, nil, []error{unauthorized})
	}
	errs := make([]error, 0, len(creds))
	for _, c := range creds {
		if c.auth == want {
			return c.secret, nil
		}
		errs = append(errs, unauthorized)
	}
	return "", pullFailure(ref, secrets, creds, errs)
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
		old = p.volumeHash
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
