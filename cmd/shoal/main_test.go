package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// shoal runs the command line in-process and returns its exit code and output.
func shoal(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestValidateExamples(t *testing.T) {
	for _, dir := range []string{"hello", "shop"} {
		code, out, errOut := shoal(t, "validate", filepath.Join("..", "..", "examples", dir))
		if code != 0 || !strings.Contains(out, "valid") {
			t.Errorf("validate examples/%s: exit %d\n%s%s", dir, code, out, errOut)
		}
	}
}

func TestValidateReportsEveryProblemAsJSON(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "web.yaml", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: other}
    spec:
      containers:
        - name: web
          image: web:1
          imagePullPolicyy: Always
`)
	code, out, _ := shoal(t, "validate", dir, "-o", "json")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s", code, out)
	}
	var report struct {
		Valid  bool
		Errors []struct {
			File, Field, Message string
			Line                 int
			Object               struct{ Kind, Namespace, Name string }
		}
	}
	if err := json.Unmarshal([]byte(out), &report); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out)
	}
	if report.Valid || len(report.Errors) != 2 {
		t.Fatalf("want 2 errors (selector, unknown field), got %+v", report)
	}
	for _, e := range report.Errors {
		if e.File != "web.yaml" || e.Line == 0 || e.Object.Kind != "Deployment" || e.Object.Name != "web" || e.Field == "" {
			t.Errorf("error lacks its position or object: %+v", e)
		}
	}
}

func TestValidateRejectsWhatItCannotRead(t *testing.T) {
	if code, _, errOut := shoal(t, "validate", filepath.Join(t.TempDir(), "missing")); code != 1 || !strings.Contains(errOut, "missing") {
		t.Errorf("missing directory: exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := shoal(t, "validate", "-o", "yaml", "."); code != 1 || !strings.Contains(errOut, `unsupported output format "yaml"`) {
		t.Errorf("-o yaml: exit %d, stderr %q", code, errOut)
	}
}

func TestPlanExitCodes(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the plan test builds its repository with the git command, which is not installed")
	}
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	write(t, repo, "deploy/web.yaml", helloDeployment(3, "web:1.0"))
	write(t, repo, "README.md", "not a manifest, outside --path\n")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-qm", "deploy")

	write(t, repo, "deploy/web.yaml", helloDeployment(5, "web:1.0"))
	git(t, repo, "commit", "-qam", "scale")

	write(t, repo, "deploy/web.yaml", strings.Replace(helloDeployment(5, "web:1.0"), "replicas", "replicaz", 1))
	git(t, repo, "commit", "-qam", "typo")

	plan := func(args ...string) (int, string, string) {
		return shoal(t, append([]string{"plan", "--repo", repo, "--path", "deploy"}, args...)...)
	}
	if code, out, errOut := plan("HEAD~2", "HEAD~2"); code != 0 || !strings.Contains(out, "No changes") {
		t.Errorf("no change: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut := plan("HEAD~2", "HEAD~1")
	if code != 2 || !strings.Contains(out, "spec.replicas: 3 → 5") || !strings.Contains(out, "scale up 3 → 5") {
		t.Errorf("scale: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := plan("HEAD~1", "HEAD"); code != 1 || !strings.Contains(out, `unknown field (did you mean "replicas"?)`) {
		t.Errorf("invalid head: exit %d\n%s", code, out)
	}
	if code, out, _ := plan("main~2", "main~1", "-o", "markdown"); code != 2 || !strings.Contains(out, "| `~` | Deployment default/web |") {
		t.Errorf("markdown: exit %d\n%s", code, out)
	}
	code, out, _ = plan("HEAD~2", "HEAD~1", "-o", "json")
	var p struct {
		ExitCode int
		Changes  []struct{ Op, Object string }
	}
	if err := json.Unmarshal([]byte(out), &p); err != nil || code != 2 || p.ExitCode != 2 || len(p.Changes) != 1 || p.Changes[0].Object != "Deployment default/web" {
		t.Errorf("json: exit %d, err %v, %+v\n%s", code, err, p, out)
	}
	if code, _, errOut := plan("HEAD~2", "no-such-branch"); code != 1 || !strings.Contains(errOut, "no-such-branch") {
		t.Errorf("unknown revision: exit %d, stderr %q", code, errOut)
	}
}

func TestVersion(t *testing.T) {
	if code, out, _ := shoal(t, "version"); code != 0 || !strings.HasPrefix(out, "shoal ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
}

func helloDeployment(replicas int, image string) string {
	return strings.NewReplacer("REPLICAS", strconv.Itoa(replicas), "IMAGE", image).Replace(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: REPLICAS
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: IMAGE
`)
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "user.name=test", "-c", "user.email=test@shoal.dev", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}
