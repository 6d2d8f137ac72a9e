package secrets

import (
	"os"
	"testing"
)

// TestWriteShoalTypesVector writes testdata/shoal-types.yaml, a file of every value type made by
// shoal's encryptor, when SHOAL_WRITE_VECTORS=1 (see testdata/make-vectors.sh, which then has the
// real sops decrypt it). Otherwise it is skipped: the vector is checked in.
func TestWriteShoalTypesVector(t *testing.T) {
	if os.Getenv("SHOAL_WRITE_VECTORS") != "1" {
		t.Skip("set SHOAL_WRITE_VECTORS=1 to rewrite testdata/shoal-types.yaml")
	}
	out, err := Encrypt("types.yaml", readFile(t, "testdata/plain/types.yaml"), EncryptOptions{
		Recipients:     []string{publicKey(t, keyB)},
		EncryptedRegex: "^(name|port|ratio|big|enabled|disabled|empty|multiline|nested|hex|quoted_number)$",
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("testdata/shoal-types.yaml", out, 0o644); err != nil {
		t.Fatal(err)
	}
}
