package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"log"
	"log/slog"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// raft logs through hclog and memberlist through the standard log package;
// both are bridged to the node's slog.Logger so the agent has one log.

// hclogFor returns an hclog.Logger that writes JSON lines into slog.
func hclogFor(l *slog.Logger, name string) hclog.Logger {
	level := hclog.Info
	if l.Enabled(context.Background(), slog.LevelDebug) {
		level = hclog.Debug
	}
	return hclog.New(&hclog.LoggerOptions{
		Name:       name,
		Level:      level,
		JSONFormat: true,
		Output:     &hclogWriter{l: l},
	})
}

type hclogWriter struct{ l *slog.Logger }

func (w *hclogWriter) Write(p []byte) (int, error) {
	for _, line := range bytes.Split(bytes.TrimSpace(p), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			w.l.Info(string(line))
			continue
		}
		lvl := slogLevel(str(m["@level"]))
		msg := str(m["@message"])
		attrs := []any{"module", str(m["@module"])}
		for k, v := range m {
			if !strings.HasPrefix(k, "@") {
				attrs = append(attrs, k, v)
			}
		}
		w.l.Log(context.Background(), lvl, msg, attrs...)
	}
	return len(p), nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func slogLevel(s string) slog.Level {
	switch strings.ToLower(strings.Trim(s, "[]")) {
	case "trace", "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "err", "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}

// stdlogFor returns a *log.Logger for memberlist, whose lines look like
// "[WARN] memberlist: message".
func stdlogFor(l *slog.Logger) *log.Logger {
	return log.New(&stdlogWriter{l: l}, "", 0)
}

type stdlogWriter struct{ l *slog.Logger }

func (w *stdlogWriter) Write(p []byte) (int, error) {
	s := strings.TrimSpace(string(p))
	lvl := slog.LevelInfo
	if strings.HasPrefix(s, "[") {
		if i := strings.IndexByte(s, ']'); i > 0 {
			lvl = slogLevel(s[:i+1])
			s = strings.TrimSpace(s[i+1:])
		}
	}
	s = strings.TrimPrefix(s, "memberlist: ")
	w.l.Log(context.Background(), lvl, s, "module", "memberlist")
	return len(p), nil
}
