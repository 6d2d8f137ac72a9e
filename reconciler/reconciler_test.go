package reconciler

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/shoal-dev/shoal/state"
)

// TestCommandsBatches: a plan's commands come in store order and in batches of MaxBatch.
func TestCommandsBatches(t *testing.T) {
	p := &Plan{Create: make([]state.Pod, 2500), Delete: []string{"a"}, Desired: make([]state.DesiredChange, 1000)}
	var kinds []string
	for _, c := range p.Commands() {
		switch c := c.(type) {
		case *state.CreatePods:
			kinds = append(kinds, "create:"+strconv.Itoa(len(c.Pods)))
		case *state.DeletePods:
			kinds = append(kinds, "delete:"+strconv.Itoa(len(c.UIDs)))
		case *state.SetPodsDesired:
			kinds = append(kinds, "desired:"+strconv.Itoa(len(c.Changes)))
		}
	}
	if got := strings.Join(kinds, " "); got != "delete:1 desired:1000 create:1000 create:1000 create:500" {
		t.Errorf("commands: %s", got)
	}
}

// TestLatestDue: the walk over missed times finds the latest one, also past its bound.
func TestLatestDue(t *testing.T) {
	sched, err := cron.ParseStandard("* * * * *")
	if err != nil {
		t.Fatal(err)
	}
	now := epoch.Add(30*24*time.Hour + 30*time.Second)
	due, missed := latestDue(sched, epoch, now)
	if want := epoch.Add(30 * 24 * time.Hour); !due.Equal(want) || missed < 100*maxMissed {
		t.Errorf("latestDue over 30 days of minutes = %s, %d missed; want %s, at least %d", due, missed, want, 100*maxMissed)
	}
	due, missed = latestDue(sched, now.Add(-90*time.Second), now)
	if want := epoch.Add(30 * 24 * time.Hour); !due.Equal(want) || missed != 1 {
		t.Errorf("latestDue over 90 s = %s, %d; want %s, 1", due, missed, want)
	}
}
