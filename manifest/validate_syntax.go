package manifest

import (
	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Kubernetes' syntax checks (names, label keys and values, port names...) are regular
// expressions, which dominate a validation pass over thousands of objects. Each function here
// first runs a byte loop that accepts exactly what the upstream expression accepts, and calls
// the upstream function only for a value that fails, so the message is Kubernetes' own.
// validate_syntax_test.go checks each loop against its upstream function.

func isLower(c byte) bool      { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool      { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isLowerAlnum(c byte) bool { return isLower(c) || isDigit(c) }
func isAlnum(c byte) bool      { return isLower(c) || isUpper(c) || isDigit(c) }

// isDNSLabel: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63 characters.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > validation.DNS1123LabelMaxLength {
		return false
	}
	if !isLowerAlnum(s[0]) || !isLowerAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isLowerAlnum(c) && c != '-' {
			return false
		}
	}
	return true
}

// isDNSSubdomain: DNS labels joined by dots, at most 253 characters.
func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > validation.DNS1123SubdomainMaxLength {
		return false
	}
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			part := s[start:i]
			// A part may be longer than 63 here: the subdomain expression does not limit parts.
			if len(part) == 0 || !isLowerAlnum(part[0]) || !isLowerAlnum(part[len(part)-1]) {
				return false
			}
			for j := 1; j < len(part)-1; j++ {
				if c := part[j]; !isLowerAlnum(c) && c != '-' {
					return false
				}
			}
			start = i + 1
		}
	}
	return true
}

// isLabelName: ([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9], at most 63 characters.
func isLabelName(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	if !isAlnum(s[0]) || !isAlnum(s[len(s)-1]) {
		return false
	}
	for i := 1; i < len(s)-1; i++ {
		if c := s[i]; !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

func dnsLabelErrs(s string) []string {
	if isDNSLabel(s) {
		return nil
	}
	return validation.IsDNS1123Label(s)
}

func dnsSubdomainErrs(s string) []string {
	if isDNSSubdomain(s) {
		return nil
	}
	return validation.IsDNS1123Subdomain(s)
}

// labelKeyErrs checks a qualified name: an optional DNS subdomain prefix and '/', then a name.
func labelKeyErrs(s string) []string {
	name := s
	ok := true
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			ok = isDNSSubdomain(s[:i])
			name = s[i+1:]
			break
		}
	}
	if ok && isLabelName(name) {
		return nil
	}
	return content.IsLabelKey(s)
}

// labelValueErrs: empty, or a label name.
func labelValueErrs(s string) []string {
	if s == "" || isLabelName(s) {
		return nil
	}
	return content.IsLabelValue(s)
}

// portNameErrs: an IANA service name: [-a-z0-9], at most 15, at least one letter, no leading,
// trailing or double hyphen.
func portNameErrs(s string) []string {
	ok := len(s) > 0 && len(s) <= 15 && s[0] != '-' && s[len(s)-1] != '-'
	letter := false
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		switch {
		case isLower(c):
			letter = true
		case isDigit(c):
		case c == '-':
			ok = s[i-1] != '-'
		default:
			ok = false
		}
	}
	if ok && letter {
		return nil
	}
	return validation.IsValidPortName(s)
}

// envVarNameErrs: [-._a-zA-Z][-._a-zA-Z0-9]*, not "." and not starting with "..".
func envVarNameErrs(s string) []string {
	ok := len(s) > 0 && !isDigit(s[0]) && s != "." && !(len(s) >= 2 && s[0] == '.' && s[1] == '.')
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '-' || c == '.' || c == '_'
	}
	if ok {
		return nil
	}
	return validation.IsEnvVarName(s)
}

// configKeyErrs: [-._a-zA-Z0-9]+, at most 253, not "." and not starting with "..".
func configKeyErrs(s string) []string {
	ok := len(s) > 0 && len(s) <= validation.DNS1123SubdomainMaxLength && s != "." &&
		!(len(s) >= 2 && s[0] == '.' && s[1] == '.')
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '-' || c == '.' || c == '_'
	}
	if ok {
		return nil
	}
	return validation.IsConfigMapKey(s)
}
