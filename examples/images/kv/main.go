// Command kv is the database of shoal's shop example: a tiny key-value store over HTTP that
// keeps each value in a file under its data directory, so the data outlives the pod when the
// directory is a StatefulSet's volume.
//
//	PUT    /kv/KEY   store the request body
//	GET    /kv/KEY   the value, or 404
//	DELETE /kv/KEY   remove it
//	GET    /healthz  200 while the process runs
//
// Every /kv request must carry "Authorization: Bearer $KV_PASSWORD" when KV_PASSWORD is set.
// It listens on $PORT (default 7379), keeps data in $DATA_DIR (default /data), and on SIGTERM
// finishes in-flight requests and exits 0.
package main

import (
	"context"
	"crypto/subtle"
	"errors"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// validKey keeps keys to plain file names that cannot name a directory or escape the data
// directory: no slash, and no leading dot (so neither "." nor "..").
var validKey = regexp.MustCompile(`^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$`)

func main() {
	log.SetFlags(0)
	port := getenv("PORT", "7379")
	dir := getenv("DATA_DIR", "/data")
	password := os.Getenv("KV_PASSWORD")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		log.Fatalf("kv: data directory: %v", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/kv/{key}", func(w http.ResponseWriter, r *http.Request) {
		if password != "" && subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+password)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		key := r.PathValue("key")
		if !validKey.MatchString(key) {
			http.Error(w, "bad key", http.StatusBadRequest)
			return
		}
		file := filepath.Join(dir, key)
		switch r.Method {
		case http.MethodGet:
			b, err := os.ReadFile(file)
			if errors.Is(err, os.ErrNotExist) {
				http.NotFound(w, r)
				return
			} else if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.Write(b)
		case http.MethodPut:
			b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
			if err == nil {
				err = writeAtomic(file, b)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		case http.MethodDelete:
			if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		}
	})

	srv := &http.Server{Addr: ":" + port, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
		s := <-sigs
		log.Printf("kv: %v: shutting down", s)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	log.Printf("kv: listening on :%s, data in %s", port, dir)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatalf("kv: %v", err)
	}
}

// writeAtomic replaces file's content in one step, so a crash never leaves half a value.
func writeAtomic(file string, b []byte) error {
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

func getenv(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
