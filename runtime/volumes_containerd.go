package runtime

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
)

// A pod's volumes live under its directory, except hostPath volumes (the
// node's own paths) and local persistent volumes (which outlive the pod):
//
//	DataDir/pods/UID/volumes/NAME          emptyDir, configMap, downwardAPI (disk)
//	DataDir/pods/UID/volumes/NAME          emptyDir medium Memory, secret (a tmpfs mounted there)
//	DataDir/volumes/local/NAMESPACE/CLAIM  persistentVolumeClaim
//	DataDir/volumes/local-pods/NAMESPACE/CLAIM  UID of the pod that made a fresh claim's volume
//	DataDir/volumes/local-replaced/NAMESPACE/CLAIM-UID-UNIXTIME  a volume a fresh claim replaced
//
// ConfigMap and secret volumes use the kubelet's atomic ..data layout and
// are updated in place by RefreshVolumes (volume_refresh.go); downwardAPI
// files are written once, when the sandbox is built (a pod's metadata does
// not change while it runs).

func (c *Containerd) volumeDir(uid, name string) string {
	return filepath.Join(c.podDir(uid), "volumes", name)
}

// LocalVolumePath is where the local persistent volume of a claim lives.
func (c *Containerd) LocalVolumePath(namespace, claim string) string {
	return filepath.Join(c.cfg.DataDir, "volumes", "local", namespace, claim)
}

// localVolumeMaker is where the UID of the pod that made a fresh claim's
// volume is kept: beside the volume, not in it (the pod sees the whole
// directory, and a database refuses to initialise a non-empty one).
func (c *Containerd) localVolumeMaker(namespace, claim string) string {
	return filepath.Join(c.cfg.DataDir, "volumes", "local-pods", namespace, claim)
}

// DeleteLocalVolume deletes a claim's local persistent volume and its
// data. The caller makes sure no pod uses it (the runtime does not check).
// Deleting a missing volume is not an error.
func (c *Containerd) DeleteLocalVolume(namespace, claim string) error {
	if !validUID(namespace) || !validUID(claim) {
		return fmt.Errorf("delete local volume %s/%s: bad name", namespace, claim)
	}
	if err := os.RemoveAll(c.LocalVolumePath(namespace, claim)); err != nil {
		return fmt.Errorf("delete local volume %s/%s: %w", namespace, claim, err)
	}
	if err := os.Remove(c.localVolumeMaker(namespace, claim)); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("delete local volume %s/%s: %w", namespace, claim, err)
	}
	// Remove the namespace directories once empty.
	os.Remove(filepath.Dir(c.LocalVolumePath(namespace, claim)))
	os.Remove(filepath.Dir(c.localVolumeMaker(namespace, claim)))
	return nil
}

// setupLocalVolume makes the directory of a pod's claim. A claim the
// leader gave no volume record (FreshClaims, AnnotationFreshClaims) gets a
// new, empty volume: a directory already there was made for an earlier
// incarnation of the claim (this node was declared gone, its records
// forgotten, and came back under its name; or a volume's deletion was cut
// short), unless this very pod made it (set up again after an agent
// restart), which the maker file says. The old directory is moved aside
// (localVolumeReplaced), not deleted, before the pod sees it: should the
// claim have been fresh by mistake, its data can be moved back by hand.
// That is refused while another pod this runtime holds mounts the claim,
// or may (a pod record that cannot be read). A claim with a record (the
// pod is pinned here) always keeps its directory and data.
func (c *Containerd) setupLocalVolume(key PodKey, claim string, fresh bool) error {
	if err := c.setupLocalDir(key, claim, fresh); err != nil {
		return fmt.Errorf("claim %s: %w", claim, err)
	}
	return nil
}

func (c *Containerd) setupLocalDir(key PodKey, claim string, fresh bool) error {
	dir := c.LocalVolumePath(key.Namespace, claim)
	if !fresh {
		return mkdirMode(dir, 0o777)
	}
	maker := c.localVolumeMaker(key.Namespace, claim)
	b, err := os.ReadFile(maker)
	if err == nil && string(b) == key.UID {
		return mkdirMode(dir, 0o777)
	} else if err != nil && !os.IsNotExist(err) {
		return err
	}
	if _, err := os.Lstat(dir); err == nil {
		other, err := c.claimHolder(key, claim)
		if err != nil {
			return fmt.Errorf("a new volume is wanted, but whether another pod here mounts the old one is unknown: %w", err)
		}
		if other != "" {
			return fmt.Errorf("a new volume is wanted, but pod %s still mounts the old one here", other)
		}
		to, err := c.replaceLocalVolume(key.Namespace, claim, string(b))
		if err != nil {
			return fmt.Errorf("move the old volume aside: %w", err)
		}
		c.log.Warn("local volume of an earlier incarnation of the claim moved aside: the claim has no volume record, so its pod gets a new, empty volume; the old data stays there until removed by hand",
			"claim", key.Namespace+"/"+claim, "pod", key.Namespace+"/"+key.Name, "uid", key.UID, "dir", dir, "movedTo", to)
	} else if !os.IsNotExist(err) {
		return err
	}
	if err := mkdirMode(dir, 0o777); err != nil {
		return err
	}
	// Written last: a crash before it leaves an empty directory this pod
	// moves aside again.
	if err := os.MkdirAll(filepath.Dir(maker), 0o755); err != nil {
		return err
	}
	tmp := maker + ".tmp"
	if err := os.WriteFile(tmp, []byte(key.UID), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, maker)
}

// localVolumeReplaced is where the directory of a claim made for the pod
// maker (its UID, or "unknown" without a maker file) is moved when a fresh
// claim replaces it: in the data directory, so that a rename moves it.
// Nothing removes it: the operator does, once sure the data is not wanted.
func (c *Containerd) localVolumeReplaced(namespace, claim, maker string, at time.Time) string {
	if !validUID(maker) {
		maker = "unknown"
	}
	return filepath.Join(c.cfg.DataDir, "volumes", "local-replaced", namespace, fmt.Sprintf("%s-%s-%d", claim, maker, at.Unix()))
}

// replaceLocalVolume moves a claim's directory to localVolumeReplaced and
// returns where. It renames, never copies: a directory on another
// filesystem is an error, not a deletion.
func (c *Containerd) replaceLocalVolume(namespace, claim, maker string) (string, error) {
	to := c.localVolumeReplaced(namespace, claim, maker, time.Now())
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return "", err
	}
	// A rename replaces an empty directory at to: never overwrite one.
	if _, err := os.Lstat(to); err == nil {
		return "", fmt.Errorf("%s exists already; retried later", to)
	} else if !os.IsNotExist(err) {
		return "", err
	}
	if err := os.Rename(c.LocalVolumePath(namespace, claim), to); err != nil {
		return "", err
	}
	return to, nil
}

// claimHolder returns another pod this runtime holds (running or
// stopped) that mounts claim in key's namespace, or "". A record that
// cannot be read is an error (it may be such a pod), unless it is gone.
// Records are read without their locks: they are replaced atomically, and
// taking another pod's lock while holding this one's could deadlock.
func (c *Containerd) claimHolder(key PodKey, claim string) (string, error) {
	uids, err := c.recordUIDs()
	if err != nil {
		return "", fmt.Errorf("pod records: %w", err)
	}
	for _, uid := range uids {
		if uid == key.UID {
			continue
		}
		r, err := c.loadRecord(uid)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since it was listed, or no record written
		} else if err != nil {
			return "", fmt.Errorf("pod %s: %w", uid, err)
		}
		if r.Spec.Key.Namespace != key.Namespace {
			continue
		}
		for _, v := range r.Spec.Volumes {
			if v.Local != nil && v.Local.Claim == claim {
				return r.Spec.Key.Name + " (uid " + uid + ")", nil
			}
		}
	}
	return "", nil
}

// setupVolumes makes every volume of the pod ready to be mounted. It is
// idempotent: a tmpfs already mounted is reused and files are rewritten.
func (c *Containerd) setupVolumes(ctx context.Context, r *podRecord) error {
	key := r.Spec.Key
	objs := newObjectCache(c.cfg.Values, key.Namespace)
	for _, v := range r.Spec.Volumes {
		if err := c.setupVolume(ctx, objs, r, v); err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
	}
	return nil
}

func (c *Containerd) setupVolume(ctx context.Context, objs *objectCache, r *podRecord, v Volume) error {
	dir := c.volumeDir(r.Spec.Key.UID, v.Name)
	switch {
	case v.EmptyDir != nil:
		if err := mkdirMode(dir, 0o777); err != nil {
			return err
		}
		if v.EmptyDir.Memory {
			return mountTmpfs(dir, 0o777, v.EmptyDir.SizeLimit)
		}
		return nil
	case v.HostPath != nil:
		return checkHostPath(v.HostPath)
	case v.Local != nil:
		if !validUID(r.Spec.Key.Namespace) {
			return fmt.Errorf("namespace %q cannot name a local volume", r.Spec.Key.Namespace)
		}
		return c.setupLocalVolume(r.Spec.Key, v.Local.Claim, FreshClaim(r.Spec.Annotations, v.Local.Claim))
	case v.ConfigMap != nil:
		files, err := objectFiles(ctx, objs, "ConfigMap", v.ConfigMap)
		if err != nil {
			return err
		}
		if err := mkdirMode(dir, 0o755); err != nil {
			return err
		}
		if err := writeProjected(dir, false, files); err != nil {
			return err
		}
		c.rememberVolume(r.Spec.Key.UID, v.Name, filesHash(c.vhash.key, files))
		return nil
	case v.Secret != nil:
		files, err := objectFiles(ctx, objs, "Secret", v.Secret)
		if err != nil {
			return err
		}
		if err := mkdirMode(dir, 0o755); err != nil {
			return err
		}
		size := int64(1 << 20)
		for _, f := range files {
			size += 2 * int64(len(f.data))
		}
		if err := secretTmpfs(dir, size); err != nil {
			return err
		}
		if err := writeProjected(dir, true, files); err != nil {
			return err
		}
		c.rememberVolume(r.Spec.Key.UID, v.Name, filesHash(c.vhash.key, files))
		return nil
	case v.DownwardAPI != nil:
		files := map[string]projectedFile{}
		for _, it := range v.DownwardAPI.Items {
			var val string
			var err error
			if it.Resource != nil {
				val, err = resourceValue(r.Spec, *it.Resource)
			} else {
				val, err = fieldValue(r.Spec, r.IP, it.FieldPath)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", it.Path, err)
			}
			files[it.Path] = projectedFile{data: []byte(val), mode: fileMode(it.Mode, v.DownwardAPI.DefaultMode)}
		}
		if err := mkdirMode(dir, 0o755); err != nil {
			return err
		}
		return writeFiles(dir, files)
	}
	return errors.New("volume has no source")
}

type projectedFile struct {
	data []byte
	mode os.FileMode
}

func fileMode(item *int32, def int32) os.FileMode {
	if item != nil {
		return os.FileMode(*item) & os.ModePerm
	}
	return os.FileMode(def) & os.ModePerm
}

// objectFiles projects a ConfigMap's or Secret's keys as files.
func objectFiles(ctx context.Context, objs *objectCache, kind string, ov *ObjectVolume) (map[string]projectedFile, error) {
	vals, found, err := objs.get(ctx, kind, ov.Name)
	if err != nil {
		return nil, err
	}
	files := map[string]projectedFile{}
	if !found {
		if ov.Optional {
			return files, nil
		}
		return nil, fmt.Errorf("%s %q not found", strings.ToLower(kind), ov.Name)
	}
	if len(ov.Items) == 0 {
		for k, v := range vals {
			if err := checkRelPath("key", k); err != nil {
				return nil, fmt.Errorf("%s %s: %w", kind, ov.Name, err)
			}
			files[k] = projectedFile{data: v, mode: fileMode(nil, ov.DefaultMode)}
		}
		return files, nil
	}
	for _, it := range ov.Items {
		v, ok := vals[it.Key]
		if !ok {
			if ov.Optional {
				continue
			}
			return nil, fmt.Errorf("%s %s has no key %q (mark the volume optional to allow it)", kind, ov.Name, it.Key)
		}
		files[it.Path] = projectedFile{data: v, mode: fileMode(it.Mode, ov.DefaultMode)}
	}
	return files, nil
}

// writeFiles writes projected files under dir with their modes.
func writeFiles(dir string, files map[string]projectedFile) error {
	for p, f := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, f.data, f.mode); err != nil {
			return err
		}
		if err := os.Chmod(full, f.mode); err != nil { // WriteFile's mode is cut by the umask
			return err
		}
	}
	return nil
}

func mkdirMode(dir string, mode os.FileMode) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// secretTmpfs mounts a tmpfs on dir (unless one is there) for secret
// values, and checks that dir is a tmpfs before anything is written there.
func secretTmpfs(dir string, size int64) error {
	if err := mountTmpfs(dir, 0o755, size); err != nil {
		return err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("%s is not a tmpfs: refusing to write secret values there", dir)
	}
	return nil
}

// mountTmpfs mounts a tmpfs on dir unless one is there already.
func mountTmpfs(dir string, mode os.FileMode, size int64) error {
	if isMountPoint(dir) {
		return nil
	}
	opts := "mode=" + strconv.FormatUint(uint64(mode), 8)
	if size > 0 {
		opts += ",size=" + strconv.FormatInt(size, 10)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
		return fmt.Errorf("mount tmpfs on %s: %w", dir, err)
	}
	return nil
}

// isMountPoint reports whether dir is on another device than its parent.
func isMountPoint(dir string) bool {
	var st, parent unix.Stat_t
	if unix.Stat(dir, &st) != nil || unix.Stat(filepath.Dir(dir), &parent) != nil {
		return false
	}
	return st.Dev != parent.Dev
}

// checkHostPath applies the hostPath type rules, creating what the
// *OrCreate types ask for.
func checkHostPath(h *HostPathVolume) error {
	fi, err := os.Stat(h.Path)
	exists := err == nil
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	want := func(ok bool, what string) error {
		if !exists {
			return fmt.Errorf("hostPath %s does not exist (type %s)", h.Path, h.Type)
		}
		if !ok {
			return fmt.Errorf("hostPath %s is not a %s (type %s)", h.Path, what, h.Type)
		}
		return nil
	}
	switch h.Type {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if !exists {
			return mkdirMode(h.Path, 0o755)
		}
		return want(fi.IsDir(), "directory")
	case corev1.HostPathDirectory:
		return want(exists && fi.IsDir(), "directory")
	case corev1.HostPathFileOrCreate:
		if !exists {
			if err := os.MkdirAll(filepath.Dir(h.Path), 0o755); err != nil {
				return err
			}
			f, err := os.OpenFile(h.Path, os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return err
			}
			return f.Close()
		}
		return want(fi.Mode().IsRegular(), "file")
	case corev1.HostPathFile:
		return want(exists && fi.Mode().IsRegular(), "file")
	case corev1.HostPathSocket:
		return want(exists && fi.Mode()&os.ModeSocket != 0, "socket")
	case corev1.HostPathCharDev:
		return want(exists && fi.Mode()&os.ModeCharDevice != 0, "character device")
	case corev1.HostPathBlockDev:
		return want(exists && fi.Mode()&os.ModeDevice != 0 && fi.Mode()&os.ModeCharDevice == 0, "block device")
	}
	return fmt.Errorf("unknown hostPath type %q", h.Type)
}

// containerMounts returns the OCI mounts of a container's volumeMounts,
// parents before children. ConfigMap, Secret and downward API volumes are
// always read-only, as in Kubernetes.
func (c *Containerd) containerMounts(r *podRecord, cs ContainerSpec) ([]specs.Mount, error) {
	vols := map[string]Volume{}
	for _, v := range r.Spec.Volumes {
		vols[v.Name] = v
	}
	ms := append([]Mount(nil), cs.Mounts...)
	sort.SliceStable(ms, func(i, j int) bool {
		return strings.Count(filepath.Clean(ms[i].Path), "/") < strings.Count(filepath.Clean(ms[j].Path), "/")
	})
	var out []specs.Mount
	for _, m := range ms {
		v, ok := vols[m.Volume]
		if !ok {
			return nil, fmt.Errorf("volumeMount %s: no volume %q", m.Path, m.Volume)
		}
		src := c.volumeDir(r.Spec.Key.UID, v.Name)
		projected := v.ConfigMap != nil || v.Secret != nil || v.DownwardAPI != nil
		switch {
		case v.HostPath != nil:
			src = v.HostPath.Path
		case v.Local != nil:
			src = c.LocalVolumePath(r.Spec.Key.Namespace, v.Local.Claim)
		}
		if m.SubPath != "" {
			sub, err := subPathSource(src, m.SubPath, !projected && !m.ReadOnly)
			if err != nil {
				return nil, fmt.Errorf("volumeMount %s: %w", m.Path, err)
			}
			src = sub
		}
		opt := "rw"
		if m.ReadOnly || projected {
			opt = "ro"
		}
		out = append(out, specs.Mount{Destination: m.Path, Type: "bind", Source: src, Options: []string{"rbind", opt}})
	}
	return out, nil
}

// subPathSource resolves a subPath inside root, refusing one that leaves
// it through a symlink, and creating a missing directory when create.
func subPathSource(root, sub string, create bool) (string, error) {
	p := filepath.Join(root, sub)
	if _, err := os.Lstat(p); os.IsNotExist(err) {
		if !create {
			return "", fmt.Errorf("subPath %q does not exist in the volume", sub)
		}
		if err := os.MkdirAll(p, 0o777); err != nil {
			return "", err
		}
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", err
	}
	if real != realRoot && !strings.HasPrefix(real, realRoot+"/") {
		return "", fmt.Errorf("subPath %q leaves the volume", sub)
	}
	return real, nil
}

// UnmountUnder unmounts every mount point below dir (tmpfs volumes, netns
// bind mounts), deepest first, detaching busy ones. shoal down uses it for
// a whole local cluster's directory.
func UnmountUnder(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	defer f.Close()
	var points []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := unescapeMountinfo(fields[4])
		if strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	var errs []error
	for _, p := range points {
		if err := unix.Unmount(p, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("unmount %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// unescapeMountinfo undoes mountinfo's octal escapes (\040 for a space).
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
