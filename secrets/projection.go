package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// A projected volume on disk, as the kubelet's AtomicWriter lays it out:
//
//	dir/..2026_11_22_16_45_00.123456789/   the payload, written once, never changed
//	dir/..data -> ..2026_11_22_16_45_00.123456789
//	dir/password -> ..data/password        one symlink per top-level name
//
// An update writes a new timestamped directory and renames a new ..data symlink over the old one,
// so a reader sees the old payload or the new, never a mix; then the per-name symlinks are added
// or removed and the old directory is deleted.

const (
	dataDirName    = "..data"
	newDataDirName = "..data_tmp"
	// DefaultMode is a volume's file mode when the pod gives none, as in Kubernetes.
	DefaultMode os.FileMode = 0o644
)

// File is one file of a projected volume.
type File struct {
	Data []byte
	Mode os.FileMode
}

// Project maps values to the files of a volume, as the kubelet does for a Secret or ConfigMap
// volume: without items every key becomes a file of its name; with items only those keys, at
// their paths, with their modes. defaultMode (nil: DefaultMode) applies to files without one. A
// key named in items that values lack is an error unless optional. The files share the values'
// byte slices.
func Project(values Values, items []corev1.KeyToPath, defaultMode *int32, optional bool) (map[string]File, error) {
	mode := DefaultMode
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode) & fs.ModePerm
	}
	out := make(map[string]File, len(values))
	if len(items) == 0 {
		for k, v := range values {
			out[k] = File{Data: v, Mode: mode}
		}
		return out, validatePayload(out)
	}
	for _, it := range items {
		v, ok := values[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("item key %q is not in the volume's source (mark the volume optional to allow it)", it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode) & fs.ModePerm
		}
		out[it.Path] = File{Data: v, Mode: m}
	}
	return out, validatePayload(out)
}

// validatePayload checks the paths as the kubelet does: relative, clean, no "..", no name that
// starts with ".." (reserved for the writer's own entries), and no file that is also a directory.
func validatePayload(files map[string]File) error {
	for p := range files {
		if p == "" || len(p) > 4096 {
			return fmt.Errorf("invalid path %q: empty or too long", p)
		}
		if path.IsAbs(p) || strings.HasPrefix(p, "/") {
			return fmt.Errorf("invalid path %q: must be relative", p)
		}
		if path.Clean(p) != p {
			return fmt.Errorf("invalid path %q: not clean", p)
		}
		for _, part := range strings.Split(p, "/") {
			if part == ".." {
				return fmt.Errorf("invalid path %q: contains '..'", p)
			}
		}
		if strings.HasPrefix(p, "..") {
			return fmt.Errorf("invalid path %q: must not start with '..'", p)
		}
		for dir := path.Dir(p); dir != "."; dir = path.Dir(dir) {
			if _, clash := files[dir]; clash {
				return fmt.Errorf("invalid path %q: %q is also a file", p, dir)
			}
		}
	}
	return nil
}

// WriteProjection atomically replaces the files projected into dir with files. dir must exist and
// be on tmpfs: plaintext is never written to a disk, and a dir that is not tmpfs is refused before
// anything is written. Writing the same payload again changes nothing on disk.
func WriteProjection(dir string, files map[string]File) error {
	ok, err := IsTmpfs(dir)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("refusing to write secret files into %s: it is not a tmpfs", dir)
	}
	return writeProjection(dir, files)
}

// WriteConfigProjection is WriteProjection for values that are not secret, a ConfigMap's or the
// downward API's, on any filesystem (the kubelet keeps ConfigMap volumes on disk). Never give it
// a Secret's values: they go through WriteProjection, to tmpfs only.
func WriteConfigProjection(dir string, files map[string]File) error {
	return writeProjection(dir, files)
}

func writeProjection(dir string, files map[string]File) error {
	if err := validatePayload(files); err != nil {
		return err
	}
	oldTS, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	var oldPaths map[string]bool
	if oldTS != "" {
		oldPaths, err = payloadPaths(filepath.Join(dir, oldTS))
		if err != nil {
			return err
		}
		if same, err := samePayload(filepath.Join(dir, oldTS), oldPaths, files); err != nil {
			return err
		} else if same {
			return ensureUserLinks(dir, files)
		}
	}

	tsDir, err := os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05."))
	if err != nil {
		return err
	}
	if err := writePayload(tsDir, files); err != nil {
		os.RemoveAll(tsDir)
		return err
	}
	tmpLink := filepath.Join(dir, newDataDirName)
	if err := os.Remove(tmpLink); err != nil && !errors.Is(err, fs.ErrNotExist) {
		os.RemoveAll(tsDir)
		return err
	}
	if err := os.Symlink(filepath.Base(tsDir), tmpLink); err != nil {
		os.RemoveAll(tsDir)
		return err
	}
	// The swap: rename(2) replaces ..data atomically.
	if err := os.Rename(tmpLink, filepath.Join(dir, dataDirName)); err != nil {
		os.Remove(tmpLink)
		os.RemoveAll(tsDir)
		return err
	}
	if err := ensureUserLinks(dir, files); err != nil {
		return err
	}
	if err := removeStaleLinks(dir, oldPaths, files); err != nil {
		return err
	}
	if oldTS != "" && oldTS != filepath.Base(tsDir) {
		return os.RemoveAll(filepath.Join(dir, oldTS))
	}
	return nil
}

func writePayload(tsDir string, files map[string]File) error {
	if err := os.Chmod(tsDir, 0o755); err != nil {
		return err
	}
	for p, f := range files {
		full := filepath.Join(tsDir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		fh, err := os.OpenFile(full, os.O_WRONLY|os.O_CREATE|os.O_EXCL, f.Mode)
		if err != nil {
			return err
		}
		_, werr := fh.Write(f.Data)
		cerr := fh.Close()
		if err := errors.Join(werr, cerr); err != nil {
			return err
		}
		if err := os.Chmod(full, f.Mode); err != nil { // the umask must not change the mode asked for
			return err
		}
	}
	return nil
}

// topLevel is the set of first path components: the names that get a symlink in dir.
func topLevel(paths []string) map[string]bool {
	out := map[string]bool{}
	for _, p := range paths {
		first, _, _ := strings.Cut(p, "/")
		out[first] = true
	}
	return out
}

func ensureUserLinks(dir string, files map[string]File) error {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	names := topLevel(paths)
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, name := range sorted {
		link := filepath.Join(dir, name)
		target := filepath.Join(dataDirName, name)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		} else if err == nil || !errors.Is(err, fs.ErrNotExist) {
			// Something else is there: a stale link or a file. Only symlinks are ours to replace.
			fi, lerr := os.Lstat(link)
			if lerr != nil {
				return lerr
			}
			if fi.Mode()&fs.ModeSymlink == 0 {
				return fmt.Errorf("%s exists and is not a symlink written by shoal", link)
			}
			if err := os.Remove(link); err != nil {
				return err
			}
		}
		if err := os.Symlink(target, link); err != nil {
			return err
		}
	}
	return nil
}

func removeStaleLinks(dir string, oldPaths map[string]bool, files map[string]File) error {
	var old []string
	for p := range oldPaths {
		old = append(old, p)
	}
	current := make([]string, 0, len(files))
	for p := range files {
		current = append(current, p)
	}
	keep := topLevel(current)
	for name := range topLevel(old) {
		if keep[name] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// payloadPaths lists the files of a written payload, as slash paths.
func payloadPaths(tsDir string) (map[string]bool, error) {
	out := map[string]bool{}
	err := filepath.WalkDir(tsDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(tsDir, p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = true
		}
		return nil
	})
	return out, err
}

// samePayload reports whether the payload on disk is files, contents and modes.
func samePayload(tsDir string, onDisk map[string]bool, files map[string]File) (bool, error) {
	if len(onDisk) != len(files) {
		return false, nil
	}
	for p, f := range files {
		if !onDisk[p] {
			return false, nil
		}
		full := filepath.Join(tsDir, filepath.FromSlash(p))
		fi, err := os.Stat(full)
		if err != nil {
			return false, err
		}
		if fi.Mode().Perm() != f.Mode.Perm() {
			return false, nil
		}
		data, err := os.ReadFile(full)
		if err != nil {
			return false, err
		}
		same := bytes.Equal(data, f.Data)
		clear(data)
		if !same {
			return false, nil
		}
	}
	return true, nil
}

// SubPath resolves a container's subPath inside a projected volume to the file or directory in
// the current payload, for the runtime to bind-mount. As in Kubernetes, a subPath mount is not
// updated when the volume changes: it keeps the payload it was resolved against.
func SubPath(dir, subPath string) (string, error) {
	if subPath == "" || path.IsAbs(subPath) || path.Clean(subPath) != subPath || subPath == ".." || strings.HasPrefix(subPath, "../") || strings.HasPrefix(subPath, "..") {
		return "", fmt.Errorf("invalid subPath %q: must be a clean relative path inside the volume", subPath)
	}
	ts, err := os.Readlink(filepath.Join(dir, dataDirName))
	if err != nil {
		return "", fmt.Errorf("volume %s has no payload: %w", dir, err)
	}
	full := filepath.Join(dir, ts, filepath.FromSlash(subPath))
	if _, err := os.Lstat(full); err != nil {
		return "", fmt.Errorf("subPath %q is not in the volume", subPath)
	}
	return full, nil
}
