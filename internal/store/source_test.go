package store

import (
	"context"
	"sync"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/scan"
)

func TestSource(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var b event.Batch
	for i := range 60 {
		b.Events = append(b.Events, dayEvent([]string{"p0_a", "p0_b", "p0_c"}[i%3], i%4, i, ""))
	}
	b.Profiles = []event.ProfileUpdate{{Project: 1, DistinctID: "p0_b", Ops: setOp("plan", "pro")}}
	if _, err := s.Append(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	check := func(src scan.Source) {
		t.Helper()
		var mu sync.Mutex
		users := map[uint64]int{}
		err := src.Scan(ctx, scan.Request{Props: []string{"i", "nope"}, From: dayEvent("", 1, 0, "").Time}, func(int) func(*scan.Sequence) error {
			return func(q *scan.Sequence) error {
				for i := range q.Times {
					if i > 0 && q.Times[i] < q.Times[i-1] || src.Events()[q.Events[i]] != "view" {
						t.Errorf("user %d: bad row %d", q.User, i)
					}
					if q.Value(0, i).Kind() != event.Number || q.Props[1][i] != 0 || q.Value(1, i) != "" {
						t.Errorf("props %q %q", q.Value(0, i), q.Value(1, i))
					}
				}
				mu.Lock()
				users[q.User] += q.Len()
				mu.Unlock()
				return nil
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		// Days 1-3 of 0-3: 45 of the 60 events.
		if n := users[0] + users[1] + users[2]; n != 45 || len(users) != 3 {
			t.Fatalf("scan saw %v", users)
		}
		up, err := src.UserProps(ctx, []string{"plan", "x"})
		if err != nil {
			t.Fatal(err)
		}
		if len(up) != 1 || up[1][0] != scan.String("pro") || up[1][1] != "" {
			t.Fatalf("user props %v", up)
		}
		if err := src.Close(); err != nil {
			t.Fatal(err)
		}
	}
	src, err := s.Source(1)
	if err != nil {
		t.Fatal(err)
	}
	check(src)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenSource(dir, 1)
	if err != nil {
		t.Fatal(err)
	}
	check(ro)
}
