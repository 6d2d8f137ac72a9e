package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// The import itself runs against a real containerd in the runtime package's tests
// (TestContainerdImportOCITarball); here, the command's own checks.
func TestImageImportNeedsAContainerd(t *testing.T) {
	code, _, errOut := shoal(t, "image", "import", filepath.Join(t.TempDir(), "web.tar"))
	if code != 1 || !strings.Contains(errOut, "--containerd-socket") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = shoal(t, "image", "import", "--containerd-socket", filepath.Join(t.TempDir(), "none.sock"), filepath.Join(t.TempDir(), "missing.tar"))
	if code != 1 || !strings.Contains(errOut, "missing.tar") {
		t.Errorf("missing file: exit %d, stderr %q", code, errOut)
	}
}
