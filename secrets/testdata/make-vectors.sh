#!/bin/sh
# Regenerates the sops-made test vectors in this directory. Needs the real sops (v3.13.3 was used)
# and age-keygen. The keys under keys/ are test-only keys, committed on purpose: never use them
# for anything real. Run from this directory: sh make-vectors.sh
set -eu
A=$(sed -n 's/^# public key: //p' keys/test-a.agekey)
B=$(sed -n 's/^# public key: //p' keys/test-b.agekey)
sops() { command sops --config /dev/null "$@"; }

# Default rules (everything but *_unencrypted), several value types, nesting, a list, comments.
sops --encrypt --age "$A" --input-type yaml --output-type yaml plain/types.yaml > sops-types.yaml
# A Secret with data and stringData, encrypted_regex as shoal uses it, two recipients.
sops --encrypt --age "$A,$B" --encrypted-regex '^(data|stringData)$' plain/secret.yaml > sops-secret.yaml
# mac_only_encrypted: the MAC covers the encrypted values only.
sops --encrypt --age "$A" --encrypted-regex '^(data|stringData)$' --mac-only-encrypted plain/mac-only.yaml > sops-mac-only.yaml
# encrypted_suffix.
sops --encrypt --age "$A" --encrypted-suffix _secret plain/suffix.yaml > sops-suffix.yaml
# Two YAML documents in one file, one sops block.
sops --encrypt --age "$A" --encrypted-regex '^(data|stringData)$' plain/multi.yaml > sops-multi.yaml
# An empty value, which sops leaves as "" rather than ENC[...].
sops --encrypt --age "$A" --encrypted-regex '^(data|stringData)$' plain/empty.yaml > sops-empty.yaml
# JSON.
sops --encrypt --age "$A" --encrypted-regex '^(data|stringData)$' plain/secret.json > sops-secret.json

# What sops decrypts each to, for the tests to compare with.
for f in sops-types.yaml sops-secret.yaml sops-mac-only.yaml sops-suffix.yaml sops-multi.yaml sops-empty.yaml sops-secret.json; do
	SOPS_AGE_KEY_FILE=keys/test-a.agekey sops --decrypt "$f" > "decrypted/$f"
done

# Files made by shoal, decrypted by the real sops: proof that sops reads what shoal writes.
# Needs a shoal binary: go build -o /tmp/shoal ./cmd/shoal (from the module root).
SHOAL=${SHOAL:-/tmp/shoal}
"$SHOAL" secret encrypt --age "$A" --age "$B" plain/secret.yaml > shoal-secret.yaml
"$SHOAL" secret rotate --age "$B" --age-key-file keys/test-a.agekey sops-secret.yaml > shoal-rotated.yaml
# Every value type, by shoal's encryptor (a test that writes the file when asked).
(cd ../.. && SHOAL_WRITE_VECTORS=1 go test ./secrets -run TestWriteShoalTypesVector)
for f in shoal-secret.yaml shoal-rotated.yaml shoal-types.yaml; do
	SOPS_AGE_KEY_FILE=keys/test-b.agekey sops --decrypt "$f" > "decrypted/$f"
done
