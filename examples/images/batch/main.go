// Command batch is shoal's demo and test batch worker: it prints a start
// line, waits, prints a done line and exits with a chosen code.
//
//	-exit-code N      exit code (default $EXIT_CODE, else 0)
//	-sleep D          how long to work (default $SLEEP, else 0), a Go duration
//	-ignore-sigterm   keep working through SIGTERM (to exercise the grace period)
//
// On SIGTERM, unless ignoring it, it prints "terminated" and exits 143.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	code := flag.Int("exit-code", envInt("EXIT_CODE", 0), "exit code")
	sleep := flag.Duration("sleep", envDuration("SLEEP", 0), "how long to work")
	ignoreTerm := flag.Bool("ignore-sigterm", false, "ignore SIGTERM")
	flag.Parse()

	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	fmt.Printf("batch starting: sleep=%s exit-code=%d ignore-sigterm=%v\n", *sleep, *code, *ignoreTerm)
	timer := time.NewTimer(*sleep)
	for {
		select {
		case <-timer.C:
			fmt.Printf("batch done, exiting %d\n", *code)
			os.Exit(*code)
		case <-sigs:
			if *ignoreTerm {
				fmt.Println("batch got SIGTERM, ignoring it")
				continue
			}
			fmt.Println("batch terminated")
			os.Exit(143)
		}
	}
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envDuration(name string, def time.Duration) time.Duration {
	if v, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return v
	}
	return def
}
