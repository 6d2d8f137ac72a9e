// Command batch is shoal's demo and test batch worker: it prints a start
// line, waits, prints a done line and exits with a chosen code.
//
//	-exit-code N      exit code (default $EXIT_CODE, else 0)
//	-sleep D          how long to work (default $SLEEP, else 0), a Go duration
//	-ignore-sigterm   keep working through SIGTERM (to exercise the grace period)
//	-alloc-mib N      first allocate and touch N MiB of memory (to exercise memory limits)
//	-touch PATH       first write "touched" to the file PATH (to exercise exec hooks)
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
	// First of all: as PID 1 the process gets no default SIGTERM action,
	// and Go exits with 2 on a signal it has no handler for.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)

	code := flag.Int("exit-code", envInt("EXIT_CODE", 0), "exit code")
	sleep := flag.Duration("sleep", envDuration("SLEEP", 0), "how long to work")
	ignoreTerm := flag.Bool("ignore-sigterm", false, "ignore SIGTERM")
	allocMiB := flag.Int("alloc-mib", 0, "MiB of memory to allocate and touch first")
	touch := flag.String("touch", "", "file to write first")
	flag.Parse()

	if *touch != "" {
		if err := os.WriteFile(*touch, []byte("touched\n"), 0o644); err != nil {
			fmt.Println("batch:", err)
			os.Exit(1)
		}
	}

	var hold [][]byte
	for i := range *allocMiB {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		hold = append(hold, b)
		if (i+1)%16 == 0 {
			fmt.Printf("batch allocated %d MiB\n", i+1)
		}
	}

	fmt.Printf("batch starting: sleep=%s exit-code=%d ignore-sigterm=%v\n", *sleep, *code, *ignoreTerm)
	timer := time.NewTimer(*sleep)
	for {
		select {
		case <-timer.C:
			fmt.Printf("batch done, exiting %d (holding %d MiB)\n", *code, len(hold))
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
