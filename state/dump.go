package state

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// Dump writes every record of the view, meta rows included, one line each:
// "<table> <json>", tables in a fixed order and records in id order. Equal
// states dump to equal text; the golden tests and `shoal` debugging read it.
func (v *Snapshot) Dump(w io.Writer) error {
	for _, tt := range tableTags {
		it, err := v.tx.Get(string(tt.table), indexIDName)
		if err != nil {
			return fmt.Errorf("dump %s: %w", tt.table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			b, err := json.Marshal(raw)
			if err != nil {
				return fmt.Errorf("dump %s: %w", tt.table, err)
			}
			if _, err := fmt.Fprintf(w, "%s %s\n", tt.table, b); err != nil {
				return err
			}
		}
	}
	return nil
}

// DumpString is Dump into a string.
func (v *Snapshot) DumpString() string {
	var b strings.Builder
	must(0, v.Dump(&b))
	return b.String()
}
