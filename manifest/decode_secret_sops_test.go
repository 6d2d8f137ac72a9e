package manifest

import (
	"os"
	"strings"
	"testing"
)

// sops leaves an empty value as "" (not ENC[...]); a Secret the real sops encrypted with an empty
// value must decode. The vector was made by sops 3.13.3 (secrets/testdata/make-vectors.sh).
func TestDecodeSopsSecretWithEmptyValue(t *testing.T) {
	data, err := os.ReadFile("../secrets/testdata/sops-empty.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, errs := Decode("sops-empty.yaml", data)
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if len(objs) != 1 || objs[0].Secret == nil || strings.Join(objs[0].Secret.Keys, ",") != "blank,token" {
		t.Fatalf("objects %+v", objs)
	}
	if objs[0].Secret.Digests["blank"] == "" || objs[0].Secret.Digests["token"] == "" {
		t.Errorf("digests %v", objs[0].Secret.Digests)
	}
	// A non-empty plaintext value beside the sops block is still refused, and not quoted.
	tampered := strings.Replace(string(data), `blank: ""`, `blank: "hunter2"`, 1)
	_, errs = Decode("sops-empty.yaml", []byte(tampered))
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `"blank" is not encrypted`) || strings.Contains(errs[0].Error(), "hunter2") {
		t.Errorf("errors: %v", errs)
	}
}
