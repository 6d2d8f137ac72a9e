package manifest

import (
	"errors"
	"io/fs"
	"path"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// IgnoreFile is the name of the file, at the root handed to Load, that lists paths Load skips,
// in .gitignore syntax.
const IgnoreFile = ".shoalignore"

// Load reads every manifest under dir in fsys ("." for the root): each *.yaml, *.yml and *.json
// file, except those matched by dir's .shoalignore and hidden files and directories (a name
// starting with '.', such as .git and .github). It decodes the files in parallel, builds the
// Set and validates it, and returns every error found, sorted. Source.File is the slash path
// relative to dir.
//
// The Set is returned even when there are errors, holding every object that decoded, so a
// caller can show as much as possible; a repository with errors must not be applied.
//
// A ConfigFile at dir's root may allow plaintext Secrets under some paths (for local
// development); everywhere else a Secret must be sops-encrypted.
//
// Files are read from several goroutines at once: fsys must be safe for concurrent use, as
// os.DirFS and fstest.MapFS are.
func Load(fsys fs.FS, dir string) (*Set, ErrorList) {
	files, errs := listManifests(fsys, dir)
	settings, cerrs := readRepoConfig(fsys, dir)
	errs = append(errs, cerrs...)
	results := make([]fileResult, len(files))
	workers := min(runtime.GOMAXPROCS(0), len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := decoder{plaintextAllowed: settings.plaintextAllowed}
			for {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				results[i] = d.readFile(fsys, dir, files[i])
			}
		}()
	}
	wg.Wait()

	n := 0
	for _, r := range results {
		n += len(r.objs)
	}
	objs := make([]*Object, 0, n)
	for _, r := range results {
		objs = append(objs, r.objs...)
		errs = append(errs, r.errs...)
	}
	set, setErrs := NewSet(objs)
	set.goneNodes = settings.goneNodes
	errs = append(errs, setErrs...)
	errs = append(errs, withoutEchoes(Validate(set), errs)...)
	errs.Sort()
	return set, errs
}

type fileResult struct {
	objs []*Object
	errs ErrorList
}

func (d *decoder) readFile(fsys fs.FS, dir, rel string) fileResult {
	data, err := fs.ReadFile(fsys, path.Join(dir, rel))
	if err != nil {
		return fileResult{errs: ErrorList{{Source: Source{File: rel}, Message: "cannot read: " + unwrapAll(err).Error()}}}
	}
	objs, errs := d.file(rel, data)
	return fileResult{objs: objs, errs: errs}
}

// isManifest reports whether a file name is one Load reads.
func isManifest(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext == ".yaml" || ext == ".yml" || ext == ".json"
}

// listManifests walks dir and returns the manifest files to read, relative to dir, in walk
// (lexical) order.
func listManifests(fsys fs.FS, dir string) ([]string, ErrorList) {
	if !fs.ValidPath(dir) {
		return nil, ErrorList{{Source: Source{File: dir}, Message: "not a valid directory path"}}
	}
	var errs ErrorList
	ignore, ierr := readIgnore(fsys, dir)
	if ierr != nil {
		errs = append(errs, ierr)
	}
	var files []string
	err := fs.WalkDir(fsys, dir, func(p string, e fs.DirEntry, err error) error {
		rel := relPath(dir, p)
		if err != nil {
			if p == dir {
				errs = append(errs, &Error{Source: Source{File: dir}, Message: "cannot read: " + unwrapAll(err).Error()})
				return fs.SkipAll
			}
			errs = append(errs, &Error{Source: Source{File: rel}, Message: "cannot read: " + unwrapAll(err).Error()})
			return nil
		}
		if p == dir {
			return nil
		}
		isDir := e.IsDir()
		if strings.HasPrefix(e.Name(), ".") || (ignore != nil && ignore.Match(strings.Split(rel, "/"), isDir)) {
			if isDir {
				return fs.SkipDir
			}
			return nil
		}
		if !isDir && isManifest(e.Name()) {
			files = append(files, rel)
		}
		return nil
	})
	if err != nil {
		errs = append(errs, &Error{Source: Source{File: dir}, Message: "cannot read: " + err.Error()})
	}
	return files, errs
}

func relPath(dir, p string) string {
	if dir == "." {
		return p
	}
	if p == dir {
		return "."
	}
	return strings.TrimPrefix(p, dir+"/")
}

// unwrapAll strips fs.PathError's path (Load names the file itself) from an IO error.
func unwrapAll(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readIgnore reads dir's .shoalignore, if there is one.
func readIgnore(fsys fs.FS, dir string) (gitignore.Matcher, *Error) {
	data, err := fs.ReadFile(fsys, path.Join(dir, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &Error{Source: Source{File: IgnoreFile}, Message: "cannot read: " + unwrapAll(err).Error()}
	}
	var patterns []gitignore.Pattern
	for _, line := range strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n") {
		if strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			continue
		}
		patterns = append(patterns, gitignore.ParsePattern(line, nil))
	}
	return gitignore.NewMatcher(patterns), nil
}

// withoutEchoes drops the validation errors on a field that decoding already reported: a value of
// the wrong type is decoded as its zero value, and "invalid port 0" after "expected an integer"
// would send the user after a value they never wrote.
func withoutEchoes(validation, decoding ErrorList) ErrorList {
	type site struct {
		obj   Key
		field string
	}
	seen := make(map[site]bool, len(decoding))
	for _, e := range decoding {
		if e.Field != "" {
			seen[site{e.Object, e.Field}] = true
		}
	}
	if len(seen) == 0 {
		return validation
	}
	out := validation[:0:0]
	for _, e := range validation {
		if !seen[site{e.Object, e.Field}] {
			out = append(out, e)
		}
	}
	return out
}
