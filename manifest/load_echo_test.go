package manifest

import (
	"testing"
	"testing/fstest"
)

// A value of the wrong type is reported once, by decoding; validation must not add a second
// error about the zero value the decoder left in its place.
func TestLoadReportsATypeErrorOnce(t *testing.T) {
	fsys := fstest.MapFS{"pod.yaml": {Data: []byte(`apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
    - name: c
      image: busybox:1
      ports:
        - containerPort: "abc"
`)}}
	_, errs := Load(fsys, ".")
	if len(errs) != 1 {
		t.Fatalf("want exactly one error, got %d:\n%v", len(errs), errs)
	}
	e := errs[0]
	if e.Field != "spec.containers[0].ports[0].containerPort" || e.Source.Line != 10 {
		t.Errorf("error at %s %s, want pod.yaml:10 spec.containers[0].ports[0].containerPort: %v", e.Source, e.Field, e)
	}
}
