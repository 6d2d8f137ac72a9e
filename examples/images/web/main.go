// Command web is shoal's demo and test web server. It answers:
//
//	GET  /         "hello from POD" where POD is $POD_NAME, else the hostname,
//	               followed by ": $MESSAGE" when MESSAGE is set
//	GET  /healthz  200 ok while the process runs
//	GET  /ready    200 when ready, 503 when not (ready at start unless $READY=false)
//	POST /ready    ?ready=true|false sets readiness; without it, toggles
//	GET  /env/NAME the value of environment variable NAME
//	GET  /cwd      the working directory
//	GET  /file/P   the content of file /P (to check /etc/hosts, resolv.conf)
//	PUT  /file/P   writes the request body to file /P (to check volumes)
//	GET  /hook/N   logs "hook N" and answers 200 (a target for lifecycle hooks)
//	PUT  /kv/KEY   stores the request body under KEY in the shop's database
//	GET  /kv/KEY   the value of KEY in the shop's database (404 when it has none)
//
// The /kv endpoints forward to the kv image's protocol at http://$DB_ADDR/kv/KEY with
// "Authorization: Bearer $DB_PASSWORD" (when DB_PASSWORD is set), and relay the database's
// status and body; without DB_ADDR they answer 503.
// It listens on $PORT (default 8080) and on SIGTERM logs the signal,
// finishes in-flight requests and exits 0.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	name := os.Getenv("POD_NAME")
	if name == "" {
		name, _ = os.Hostname()
	}
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	var ready atomic.Bool
	ready.Store(os.Getenv("READY") != "false")

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if msg := os.Getenv("MESSAGE"); msg != "" {
			fmt.Fprintf(w, "hello from %s: %s\n", name, msg)
			return
		}
		fmt.Fprintf(w, "hello from %s\n", name)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		if !ready.Load() {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("POST /ready", func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query().Get("ready")
		if v == "" {
			ready.Store(!ready.Load())
		} else {
			b, err := strconv.ParseBool(v)
			if err != nil {
				http.Error(w, "ready must be true or false", http.StatusBadRequest)
				return
			}
			ready.Store(b)
		}
		log.Printf("ready=%v", ready.Load())
		fmt.Fprintf(w, "ready=%v\n", ready.Load())
	})
	mux.HandleFunc("GET /env/{name}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, os.Getenv(r.PathValue("name")))
	})

	mux.HandleFunc("GET /cwd", func(w http.ResponseWriter, r *http.Request) {
		wd, err := os.Getwd()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, wd)
	})
	mux.HandleFunc("GET /file/{path...}", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile("/" + r.PathValue("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})

	mux.HandleFunc("GET /hook/{name}", func(w http.ResponseWriter, r *http.Request) {
		log.Printf("hook %s", r.PathValue("name"))
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("PUT /file/{path...}", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err == nil {
			err = os.WriteFile("/"+r.PathValue("path"), b, 0o644)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "written")
	})

	db := &http.Client{Timeout: 10 * time.Second}
	kv := func(w http.ResponseWriter, r *http.Request) {
		addr := os.Getenv("DB_ADDR")
		if addr == "" {
			http.Error(w, "no database: DB_ADDR is not set", http.StatusServiceUnavailable)
			return
		}
		req, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+addr+"/kv/"+url.PathEscape(r.PathValue("key")), r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if pw := os.Getenv("DB_PASSWORD"); pw != "" {
			req.Header.Set("Authorization", "Bearer "+pw)
		}
		resp, err := db.Do(req)
		if err != nil {
			http.Error(w, "database: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.WriteHeader(resp.StatusCode)
		io.Copy(w, resp.Body)
	}
	mux.HandleFunc("PUT /kv/{key}", kv)
	mux.HandleFunc("GET /kv/{key}", kv)

	srv := &http.Server{Addr: ":" + port, Handler: logRequests(mux), ReadHeaderTimeout: 10 * time.Second}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		s := <-sigs
		log.Printf("received %v, shutting down", s)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()
	log.Printf("web %s listening on :%s", name, port)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
	log.Printf("bye")
}

func logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.Printf("%s %s from %s", r.Method, r.URL.Path, r.RemoteAddr)
		h.ServeHTTP(w, r)
	})
}
