package gitsource

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Reader is what the rest of shoal needs from a repository: the tree at a
// commit. *Repo implements it.
type Reader interface {
	FS(commit plumbing.Hash) (fs.FS, error)
}

var _ Reader = (*Repo)(nil)

// FS returns the tree of commit under Config.Path, read straight from the
// object store. It implements fs.ReadDirFS, fs.ReadFileFS and fs.StatFS.
// Every entry's ModTime is the commit time. Symbolic links are listed with
// fs.ModeSymlink but not followed (opening one fails), and submodules are
// listed as fs.ModeIrregular entries that cannot be opened. The error wraps
// ErrNotFound when the commit is not in the clone or Path does not exist at
// it.
func (r *Repo) FS(commit plumbing.Hash) (fs.FS, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.repo.CommitObject(commit)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("gitsource: commit %s %w in the local clone (FetchCommit it first)", commit, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("gitsource: commit %s: %w", commit, err)
	}
	t, err := r.subtree(c)
	if err != nil {
		return nil, err
	}
	return &treeFS{r: r, root: t.Hash, mtime: c.Committer.When}, nil
}

// treeFS is an fs.FS over a git tree. The Repo's lock is held for every
// object read, because go-git's storage is not safe for concurrent use, and
// objects are always read through the Repo's current storage, which is
// replaced after a repack or re-clone.
type treeFS struct {
	r     *Repo
	root  plumbing.Hash
	mtime time.Time
}

var (
	_ fs.ReadDirFS  = (*treeFS)(nil)
	_ fs.ReadFileFS = (*treeFS)(nil)
	_ fs.StatFS     = (*treeFS)(nil)
)

// lookup finds name; for the root it returns a nil entry.
func (f *treeFS) lookup(op, name string) (*object.TreeEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return nil, nil
	}
	root, err := object.GetTree(f.r.repo.Storer, f.root)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	e, err := root.FindEntry(name)
	if err != nil {
		if errors.Is(err, object.ErrEntryNotFound) || errors.Is(err, object.ErrDirectoryNotFound) {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return e, nil
}

func (f *treeFS) Stat(name string) (fs.FileInfo, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	e, err := f.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return &entryInfo{name: ".", mode: fs.ModeDir | 0o755, mtime: f.mtime}, nil
	}
	return f.info(e)
}

func (f *treeFS) info(e *object.TreeEntry) (*entryInfo, error) {
	fi := &entryInfo{name: e.Name, mtime: f.mtime}
	switch e.Mode {
	case filemode.Dir:
		fi.mode = fs.ModeDir | 0o755
	case filemode.Symlink:
		fi.mode = fs.ModeSymlink | 0o777
	case filemode.Submodule:
		fi.mode = fs.ModeIrregular
	case filemode.Executable:
		fi.mode = 0o755
	default:
		fi.mode = 0o644
	}
	if fi.mode.IsRegular() || fi.mode&fs.ModeSymlink != 0 {
		size, err := f.r.repo.Storer.EncodedObjectSize(e.Hash)
		if err != nil {
			return nil, err
		}
		fi.size = size
	}
	return fi, nil
}

func (f *treeFS) ReadFile(name string) ([]byte, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	return f.readFileLocked("readfile", name)
}

func (f *treeFS) readFileLocked(op, name string) ([]byte, error) {
	e, err := f.lookup(op, name)
	if err != nil {
		return nil, err
	}
	if e == nil || e.Mode == filemode.Dir {
		return nil, &fs.PathError{Op: op, Path: name, Err: errors.New("is a directory")}
	}
	if !e.Mode.IsFile() || e.Mode == filemode.Symlink {
		return nil, &fs.PathError{Op: op, Path: name, Err: errors.New("not a regular file (symlinks and submodules are not followed)")}
	}
	b, err := object.GetBlob(f.r.repo.Storer, e.Hash)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	rd, err := b.Reader()
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	defer rd.Close()
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return data, nil
}

func (f *treeFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	return f.readDirLocked("readdir", name)
}

func (f *treeFS) readDirLocked(op, name string) ([]fs.DirEntry, error) {
	h := f.root
	if name != "." {
		e, err := f.lookup(op, name)
		if err != nil {
			return nil, err
		}
		if e.Mode != filemode.Dir {
			return nil, &fs.PathError{Op: op, Path: name, Err: errors.New("not a directory")}
		}
		h = e.Hash
	}
	t, err := object.GetTree(f.r.repo.Storer, h)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	out := make([]fs.DirEntry, 0, len(t.Entries))
	for i := range t.Entries {
		fi, err := f.info(&t.Entries[i])
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		out = append(out, fs.FileInfoToDirEntry(fi))
	}
	// Git orders "a/" after "a.b"; fs.ReadDir promises plain name order.
	slices.SortFunc(out, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return out, nil
}

func (f *treeFS) Open(name string) (fs.File, error) {
	f.r.mu.Lock()
	defer f.r.mu.Unlock()
	e, err := f.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if e == nil || e.Mode == filemode.Dir {
		entries, err := f.readDirLocked("open", name)
		if err != nil {
			return nil, err
		}
		fi := &entryInfo{name: ".", mode: fs.ModeDir | 0o755, mtime: f.mtime}
		if e != nil {
			fi.name = e.Name
		}
		return &dirFile{info: fi, entries: entries}, nil
	}
	data, err := f.readFileLocked("open", name)
	if err != nil {
		return nil, err
	}
	fi, err := f.info(e)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	return &blobFile{info: fi, Reader: bytes.NewReader(data)}, nil
}

type entryInfo struct {
	name  string
	size  int64
	mode  fs.FileMode
	mtime time.Time
}

func (i *entryInfo) Name() string       { return i.name }
func (i *entryInfo) Size() int64        { return i.size }
func (i *entryInfo) Mode() fs.FileMode  { return i.mode }
func (i *entryInfo) ModTime() time.Time { return i.mtime }
func (i *entryInfo) IsDir() bool        { return i.mode.IsDir() }
func (i *entryInfo) Sys() any           { return nil }

// blobFile holds the blob in memory: manifests are small, and it keeps the
// store's lock short.
type blobFile struct {
	info *entryInfo
	*bytes.Reader
}

func (b *blobFile) Stat() (fs.FileInfo, error) { return b.info, nil }
func (b *blobFile) Close() error               { return nil }

type dirFile struct {
	info    *entryInfo
	entries []fs.DirEntry
	off     int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: errors.New("is a directory")}
}

func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return rest[:n], nil
}
