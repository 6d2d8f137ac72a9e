package runtime

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/secrets"
)

// ConfigMap and Secret volumes use the kubelet's AtomicWriter layout
// (secrets.WriteProjection):
//
//	volumes/NAME/..2026_11_22_16_45_00.123456789/KEY   the payload, never changed once written
//	volumes/NAME/..data -> ..2026_11_22_16_45_00.123456789
//	volumes/NAME/KEY -> ..data/KEY
//
// so that RefreshVolumes can replace the content of a running pod's volume
// atomically: a new timestamped directory, a temporary symlink renamed
// over ..data (rename(2)), then the old directory removed. A process reads
// the old content or the new, never a mix. A subPath mount resolves to a
// file of the payload when the container is created and is not updated,
// as in Kubernetes. Secret volumes stay on their tmpfs (checked before
// every write); ConfigMap volumes are on disk.
//
// What was projected is remembered as an HMAC of each volume's files
// (keyed with a random per-process key, so that the hash of a Secret says
// nothing about its values) in memory only, so that an unchanged volume is
// not rewritten. After a restart of the process the first refresh compares
// with the files on disk instead (WriteProjection leaves an identical
// payload alone).

// volumeHashes is the runtime's memory of the projected volumes' content.
type volumeHashes struct {
	key []byte
	m   map[string]map[string]string // pod UID -> volume -> hash; guarded by Containerd.mu
}

func newVolumeHashes() volumeHashes {
	key := make([]byte, 32)
	rand.Read(key) // never fails: crypto/rand crashes the program rather than return an error
	return volumeHashes{key: key, m: map[string]map[string]string{}}
}

// ErrNotUpdatableInPlace is wrapped by RefreshVolumes for a pod whose
// configMap or secret volumes were set up by a version of shoal without
// the ..data layout: they cannot be replaced atomically, so they keep
// their content until the pod is replaced. Asking again does not help.
var ErrNotUpdatableInPlace = errors.New("volumes set up without the ..data layout (by an earlier version of shoal) cannot be updated in place")

func (c *Containerd) volumeHashesOf(uid string) map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]string{}
	for k, v := range c.vhash.m[uid] {
		out[k] = v
	}
	return out
}

func (c *Containerd) rememberVolume(uid, name, hash string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.vhash.m[uid] == nil {
		c.vhash.m[uid] = map[string]string{}
	}
	c.vhash.m[uid][name] = hash
}

// forgetVolumes drops what is remembered of a removed pod.
func (c *Containerd) forgetVolumes(uid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.vhash.m, uid)
}

// filesHash is the HMAC-SHA256 of a volume's files: paths, modes and
// contents, in path order.
func filesHash(key []byte, files map[string]projectedFile) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := hmac.New(sha256.New, key)
	for _, p := range paths {
		f := files[p]
		fmt.Fprintf(h, "%d:%s:%o:%d:", len(p), p, f.mode, len(f.data))
		h.Write(f.data)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// projectObjectVolumes resolves the configMap and secret volumes of vols
// and returns the files of each whose content hash is not old[name], with
// the hashes. An error for one volume does not stop the others; the
// returned error joins them, each naming its volume.
func projectObjectVolumes(ctx context.Context, objs *objectCache, vols []Volume, old map[string]string, key []byte) (map[string]map[string]projectedFile, map[string]string, error) {
	files := map[string]map[string]projectedFile{}
	hashes := map[string]string{}
	var errs []error
	for _, v := range vols {
		kind, ov := "ConfigMap", v.ConfigMap
		if v.Secret != nil {
			kind, ov = "Secret", v.Secret
		}
		if ov == nil {
			continue
		}
		pf, err := objectFiles(ctx, objs, kind, ov)
		if err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", v.Name, err))
			continue
		}
		h := filesHash(key, pf)
		if old != nil && old[v.Name] == h {
			continue
		}
		files[v.Name], hashes[v.Name] = pf, h
	}
	return files, hashes, errors.Join(errs...)
}

// writeProjected writes a configMap or secret volume's files with the
// atomic layout: a Secret's only into its tmpfs (grown first when the new
// payload would not fit beside the old one).
func writeProjected(dir string, secret bool, files map[string]projectedFile) error {
	out := make(map[string]secrets.File, len(files))
	var need int64
	for p, f := range files {
		out[filepath.ToSlash(p)] = secrets.File{Data: f.data, Mode: f.mode}
		need += (int64(len(f.data))/4096 + 1) * 4096
	}
	if !secret {
		return secrets.WriteConfigProjection(dir, out)
	}
	if err := growTmpfs(dir, need+64<<10); err != nil {
		return err
	}
	return secrets.WriteProjection(dir, out)
}

// growTmpfs makes room for need more bytes on the tmpfs mounted at dir.
func growTmpfs(dir string, need int64) error {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("%s is not a tmpfs: refusing to write secret values there", dir)
	}
	free := int64(st.Bavail) * st.Bsize
	if free >= need {
		return nil
	}
	size := int64(st.Blocks)*st.Bsize + need
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_REMOUNT|unix.MS_NOSUID|unix.MS_NODEV, "size="+strconv.FormatInt(size, 10)); err != nil {
		return fmt.Errorf("grow the tmpfs on %s: %w", dir, err)
	}
	return nil
}

// RefreshVolumes implements Runtime.
func (c *Containerd) RefreshVolumes(ctx context.Context, key PodKey) ([]string, error) {
	ctx = c.ctx(ctx)
	defer c.lock(key.UID)()
	r, err := c.loadRecord(key.UID)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, podErr(key, "refresh volumes", ErrPodNotFound)
	}
	if err != nil {
		return nil, podErr(key, "refresh volumes", err)
	}
	if r.Stopped {
		return nil, nil // a stopped pod reads nothing
	}
	if !r.VolumesReady {
		// RunPod finishes them (from the pod's own commit): ask again after it.
		return nil, podErr(key, "refresh volumes", errors.New("the pod's volumes are not set up yet"))
	}
	byName := map[string]Volume{}
	// The ..data target of each configMap and secret volume, read while
	// the pod lock is held: only writeProjected below changes it.
	dataLinks := map[string]string{}
	var flat []string
	for _, v := range r.Spec.Volumes {
		byName[v.Name] = v
		if v.ConfigMap == nil && v.Secret == nil {
			continue
		}
		target, err := os.Readlink(filepath.Join(c.volumeDir(key.UID, v.Name), "..data"))
		if err != nil {
			flat = append(flat, v.Name)
			continue
		}
		dataLinks[v.Name] = target
	}
	if len(flat) > 0 {
		// Checked before anything is read: replacing a flat volume would not
		// be atomic, and updating only the others would give the pod two
		// revisions of its configuration. The pod sees the change when it is
		// recreated.
		return nil, podErr(key, "refresh volumes", fmt.Errorf("volumes %v: %w", flat, ErrNotUpdatableInPlace))
	}
	files, hashes, rerr := projectObjectVolumes(ctx, newObjectCache(c.cfg.Values, key.Namespace), r.Spec.Volumes, c.volumeHashesOf(key.UID), c.vhash.key)
	errs := []error{rerr}
	var changed []string
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		dir := c.volumeDir(key.UID, name)
		before := dataLinks[name]
		if err := writeProjected(dir, byName[name].Secret != nil, files[name]); err != nil {
			errs = append(errs, fmt.Errorf("volume %s: %w", name, err))
			continue
		}
		c.rememberVolume(key.UID, name, hashes[name])
		if after, _ := os.Readlink(filepath.Join(dir, "..data")); after != before {
			changed = append(changed, name)
		}
	}
	if len(changed) > 0 {
		c.log.Info("volumes updated in place", "pod", key.Namespace+"/"+key.Name, "uid", key.UID, "volumes", changed)
	}
	if err := errors.Join(errs...); err != nil {
		return changed, podErr(key, "refresh volumes", err)
	}
	return changed, nil
}
