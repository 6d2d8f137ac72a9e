package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAtomicReplacesTheValue(t *testing.T) {
	file := filepath.Join(t.TempDir(), "k")
	for _, v := range []string{"one", "two"} {
		if err := writeAtomic(file, []byte(v)); err != nil {
			t.Fatal(err)
		}
		if b, err := os.ReadFile(file); err != nil || string(b) != v {
			t.Fatalf("read %q, %v; want %q", b, err, v)
		}
	}
	if _, err := os.Stat(file + ".tmp"); !os.IsNotExist(err) {
		t.Errorf("temporary file left behind: %v", err)
	}
}

func TestValidKeyKeepsPathsInside(t *testing.T) {
	for key, ok := range map[string]bool{"orders": true, "a.b-c_1": true, "..": false, ".": false, ".hidden": false, "../etc": false, "a/b": false, "": false} {
		if validKey.MatchString(key) != ok {
			t.Errorf("validKey(%q) = %v, want %v", key, !ok, ok)
		}
	}
}
