package plan

import (
	"fmt"
	"strings"

	"github.com/shoal-dev/shoal/manifest"
)

// count renders "1 pod", "3 pods".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// maxListed is how many names a consequence lists before it abbreviates.
const maxListed = 6

// ordinals names the pods of a StatefulSet with ordinals lo..hi-1, ascending or descending:
// "web-0, web-1, web-2". A long range is abbreviated ("web-0, web-1, …, web-99 (100 pods)")
// without building every name, so a huge replica count costs nothing.
func ordinals(name string, lo, hi int, descending bool) string {
	n := hi - lo
	if n <= 0 {
		return ""
	}
	at := func(i int) string { // i-th name in listing order
		if descending {
			return fmt.Sprintf("%s-%d", name, hi-1-i)
		}
		return fmt.Sprintf("%s-%d", name, lo+i)
	}
	if n <= maxListed {
		names := make([]string, n)
		for i := range names {
			names[i] = at(i)
		}
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s, %s, …, %s (%d pods)", at(0), at(1), at(n-1), n)
}

// keyList renders object keys: "Deployment shop/web, StatefulSet shop/db", abbreviated past
// maxListed as "…, and 4 more".
func keyList(keys []manifest.Key) string {
	var b strings.Builder
	for i, k := range keys {
		if i == maxListed && len(keys) > maxListed+1 {
			fmt.Fprintf(&b, ", and %d more", len(keys)-i)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(k.String())
	}
	return b.String()
}

// replicas is a replica count with Kubernetes' default of 1 for an unset field.
func replicas(p *int32) int {
	if p == nil {
		return 1
	}
	return int(*p)
}

// scale describes a replica change: "scale up 3 → 5", "scale down 5 → 0".
func scale(from, to int) string {
	if to > from {
		return fmt.Sprintf("scale up %d → %d", from, to)
	}
	return fmt.Sprintf("scale down %d → %d", from, to)
}
