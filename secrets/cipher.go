package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The value format, as sops writes it: ENC[AES256_GCM,data:B64,iv:B64,tag:B64,type:T]. The cipher
// is AES-256-GCM with a 32-byte nonce (sops' choice, not GCM's usual 12), the additional data is
// the value's path in the document ("stringData:password:"), and data and tag are the GCM output
// split at the last 16 bytes. An empty plaintext is written as an empty string, unencrypted.

const (
	dataKeySize = 32
	nonceSize   = 32
	tagSize     = 16
)

// valueType is the type: field of an encrypted value.
type valueType string

const (
	typeStr     valueType = "str"
	typeInt     valueType = "int"
	typeFloat   valueType = "float"
	typeBool    valueType = "bool"
	typeBytes   valueType = "bytes"
	typeTime    valueType = "time"
	typeComment valueType = "comment"
)

// leaf is one decrypted or to-be-encrypted value: its bytes as sops encrypts them, and its type.
type leaf struct {
	typ valueType
	raw []byte // the encrypted bytes: "True" for a true bool, as sops writes it
}

// macBytes is what sops feeds its MAC for this value: the canonical form of the typed value, so
// an int written "007" counts as "7", exactly as sops parses then re-renders it.
func (l leaf) macBytes() ([]byte, error) {
	s := string(l.raw)
	switch l.typ {
	case typeStr, typeBytes:
		return l.raw, nil
	case typeInt:
		n, err := strconv.Atoi(s)
		if err != nil {
			return nil, errors.New("an int value is not an integer")
		}
		return []byte(strconv.Itoa(n)), nil
	case typeFloat:
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, errors.New("a float value is not a number")
		}
		return []byte(strconv.FormatFloat(f, 'f', -1, 64)), nil
	case typeBool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, errors.New("a bool value is not a boolean")
		}
		return []byte(boolText(b)), nil
	case typeTime:
		var t time.Time
		if err := t.UnmarshalText(l.raw); err != nil {
			return nil, errors.New("a time value is not a timestamp")
		}
		return t.MarshalText()
	case typeComment:
		return nil, nil
	}
	return nil, fmt.Errorf("unknown value type %q", l.typ)
}

// text is the value as a Secret or a decrypted YAML file shows it: bools as true/false.
func (l leaf) text() []byte {
	if l.typ == typeBool {
		if b, err := strconv.ParseBool(string(l.raw)); err == nil {
			return []byte(strconv.FormatBool(b))
		}
	}
	if m, err := l.macBytes(); err == nil && l.typ != typeComment {
		return m
	}
	return l.raw
}

// boolText is how sops encrypts and MACs a bool (the Python original's spelling).
func boolText(b bool) string {
	if b {
		return "True"
	}
	return "False"
}

// leafOf converts a YAML-decoded scalar into what sops encrypts for it. nil is never a leaf.
func leafOf(v any) (leaf, error) {
	switch v := v.(type) {
	case string:
		return leaf{typeStr, []byte(v)}, nil
	case []byte:
		return leaf{typeStr, v}, nil // sops walks []byte as a string
	case int:
		return leaf{typeInt, []byte(strconv.Itoa(v))}, nil
	case float64:
		return leaf{typeFloat, []byte(strconv.FormatFloat(v, 'f', -1, 64))}, nil
	case bool:
		return leaf{typeBool, []byte(boolText(v))}, nil
	case time.Time:
		b, err := v.MarshalText()
		return leaf{typeTime, b}, err
	}
	return leaf{}, fmt.Errorf("a value of type %T, which sops cannot encrypt", v)
}

// isEncryptedValue reports whether s has the shape of a sops-encrypted value.
func isEncryptedValue(s string) bool {
	return strings.HasPrefix(s, "ENC[AES256_GCM,") && strings.HasSuffix(s, "]")
}

// encryptValue encrypts l under key with the path as additional data. An empty value stays
// empty, as sops leaves it.
func encryptValue(l leaf, key []byte, path string) (string, error) {
	if len(l.raw) == 0 && (l.typ == typeStr || l.typ == typeBytes || l.typ == typeComment) {
		return "", nil
	}
	gcm, err := newGCM(key)
	if err != nil {
		return "", err
	}
	iv := make([]byte, nonceSize)
	if _, err := rand.Read(iv); err != nil {
		return "", fmt.Errorf("random nonce: %w", err)
	}
	out := gcm.Seal(nil, iv, l.raw, []byte(path))
	b64 := base64.StdEncoding.EncodeToString
	return "ENC[AES256_GCM,data:" + b64(out[:len(out)-tagSize]) + ",iv:" + b64(iv) +
		",tag:" + b64(out[len(out)-tagSize:]) + ",type:" + string(l.typ) + "]", nil
}

// decryptValue opens an ENC[...] value. Its errors never quote the value: the caller names the
// file and the path.
func decryptValue(s string, key []byte, path string) (leaf, error) {
	if s == "" {
		return leaf{typ: typeStr}, nil
	}
	fields, ok := parseEncrypted(s)
	if !ok {
		return leaf{}, errors.New("not an ENC[AES256_GCM,...] value")
	}
	data, err1 := base64.StdEncoding.DecodeString(fields["data"])
	iv, err2 := base64.StdEncoding.DecodeString(fields["iv"])
	tag, err3 := base64.StdEncoding.DecodeString(fields["tag"])
	if err := errors.Join(err1, err2, err3); err != nil || len(iv) == 0 || len(tag) != tagSize {
		return leaf{}, errors.New("malformed ENC[...] value (bad base64, nonce or tag)")
	}
	typ := valueType(fields["type"])
	switch typ {
	case typeStr, typeInt, typeFloat, typeBool, typeBytes, typeTime, typeComment:
	default:
		return leaf{}, fmt.Errorf("unknown value type %q", fields["type"])
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return leaf{}, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return leaf{}, err
	}
	plain, err := gcm.Open(nil, iv, append(data, tag...), []byte(path))
	if err != nil {
		return leaf{}, errors.New("authentication failed (the value was altered, moved to another key, or encrypted with another data key)")
	}
	l := leaf{typ: typ, raw: plain}
	if _, err := l.macBytes(); err != nil {
		return leaf{}, err
	}
	return l, nil
}

// parseEncrypted splits ENC[AES256_GCM,data:..,iv:..,tag:..,type:..] into its fields, in that
// order, as sops' own pattern requires.
func parseEncrypted(s string) (map[string]string, bool) {
	if !isEncryptedValue(s) {
		return nil, false
	}
	parts := strings.Split(s[len("ENC[AES256_GCM,"):len(s)-1], ",")
	names := []string{"data", "iv", "tag", "type"}
	if len(parts) != len(names) {
		return nil, false
	}
	out := make(map[string]string, len(names))
	for i, p := range parts {
		v, ok := strings.CutPrefix(p, names[i]+":")
		if !ok || v == "" {
			return nil, false
		}
		out[names[i]] = v
	}
	return out, true
}

func newGCM(key []byte) (cipher.AEAD, error) {
	if len(key) != dataKeySize {
		return nil, fmt.Errorf("data key is %d bytes, want %d", len(key), dataKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCMWithNonceSize(block, nonceSize)
}
