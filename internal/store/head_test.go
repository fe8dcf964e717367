package store

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/store/profiles"
	"github.com/veil-analytics/veil/internal/store/table"
)

func dayEvent(user string, day, i int, insert string) event.Event {
	return event.Event{Project: 1, Name: "view", DistinctID: user, Time: 1_700_006_400_000 + int64(day)*86_400_000 + int64(i)*1000,
		InsertID: insert, Received: 1_800_000_000_000 + int64(i),
		Props: []event.Field{{Key: "i", Value: event.NumberValue(float64(i))}}}
}

func setOp(k, v string) []event.ProfileOp {
	return []event.ProfileOp{{Op: "$set", Value: event.Value{Kind: event.Object, Fields: []event.Field{{Key: k, Value: event.StringValue(v)}}}}}
}

// copyDir copies a live data directory: what a crash at this moment leaves
// (everything acknowledged is fsync'd).
func copyDir(t *testing.T, src string) string {
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func insertIDs(t *testing.T, dir string) []string {
	evs, _, _ := scanAll(t, dir)
	var ids []string
	for _, e := range evs {
		ids = append(ids, e.DistinctID+"/"+e.InsertID)
	}
	sort.Strings(ids)
	return ids
}

// TestFlushCheckpointReplay appends across flushes and checks that a
// crash at any of those moments (a copy of the directory) replays to
// exactly the acknowledged events, once each, with the profile state.
func TestFlushCheckpointReplay(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	var crashes []string
	var wantAt [][]string
	n := 0
	for round := range 6 {
		var b event.Batch
		for i := range 40 {
			u := fmt.Sprintf("u%d", (n+i)%9)
			id := fmt.Sprintf("ins%d", n+i)
			b.Events = append(b.Events, dayEvent(u, (n+i)%3, n+i, id))
			want = append(want, u+"/"+id)
		}
		b.Profiles = append(b.Profiles, event.ProfileUpdate{Project: 1, DistinctID: "u1", Time: 1, Ops: setOp("round", fmt.Sprint(round))})
		n += 40
		if _, err := s.Append(ctx, &b); err != nil {
			t.Fatal(err)
		}
		if round%2 == 1 {
			if err := s.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			s.compact(ctx)
		}
		crashes = append(crashes, copyDir(t, dir))
		sorted := append([]string(nil), want...)
		sort.Strings(sorted)
		wantAt = append(wantAt, sorted)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for i, c := range crashes {
		// Reopen (replay) and close (final flush): the table then holds it all.
		s, err := Open(c, Options{FlushInterval: -1})
		if err != nil {
			t.Fatalf("crash %d: %v", i, err)
		}
		var round string
		s.Profiles(func(st *profiles.State) {
			props, _ := st.User(1, "u1")
			if v, ok := event.Get(props, "round"); ok {
				round = v.Str
			}
		})
		if round != fmt.Sprint(i) {
			t.Fatalf("crash %d: profile round %q, want %d", i, round, i)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if got := insertIDs(t, c); fmt.Sprint(got) != fmt.Sprint(wantAt[i]) {
			t.Fatalf("crash %d: %d events, want %d\n got %v\nwant %v", i, len(got), len(wantAt[i]), got, wantAt[i])
		}
		// Replaying twice changes nothing.
		s, err = Open(c, Options{FlushInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		if got := insertIDs(t, c); len(got) != len(wantAt[i]) {
			t.Fatalf("crash %d, second replay: %d events, want %d", i, len(got), len(wantAt[i]))
		}
	}
}

func TestErase(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const victim = "p0_VictimVictimVictimVicti"
	var b event.Batch
	for i := range 30 {
		u := "p0_other" + fmt.Sprint(i%4)
		if i%3 == 0 {
			u = victim
		}
		b.Events = append(b.Events, dayEvent(u, i%2, i, fmt.Sprint("i", i)))
	}
	b.Profiles = []event.ProfileUpdate{{Project: 1, DistinctID: victim, Ops: setOp("plan", "pro")}}
	if _, err := s.Append(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// More of the victim's events, still in the head and the log.
	if _, err := s.Append(ctx, &event.Batch{Events: []event.Event{dayEvent(victim, 0, 99, "late")}}); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Erase(ctx, 1, victim)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Known || rep.RowsRemoved != 11 || len(rep.DaysRewritten) != 2 {
		t.Fatalf("report %+v", rep)
	}
	// Later events for them are refused.
	dups, err := s.Append(ctx, &event.Batch{Events: []event.Event{dayEvent(victim, 0, 100, "after"), dayEvent("p0_other1", 0, 101, "ok")}})
	if err != nil || dups != 1 {
		t.Fatalf("append after erase: %d, %v", dups, err)
	}
	s.Profiles(func(st *profiles.State) {
		if _, ok := st.User(1, victim); ok {
			t.Error("profile still there")
		}
	})
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range insertIDs(t, dir) {
		if bytes.Contains([]byte(id), []byte(victim)) {
			t.Fatalf("scan still shows %s", id)
		}
	}
	// No byte of the data directory holds the pseudonym any more except
	// the user ordinal table (which maps it to the suppressed ordinal).
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d.IsDir() || filepath.Base(p) == "users.idm" {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(victim)) {
			t.Errorf("%s still holds the erased pseudonym", p)
		}
		return nil
	})
}

func TestRetentionDropsOldDays(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// "Now" is day 3 of the events below: keeping 2 days keeps days 2 and 3.
	now := time.UnixMilli(dayEvent("", 3, 0, "").Time)
	s, err := Open(dir, Options{FlushInterval: -1, Now: func() time.Time { return now },
		Retention: func(context.Context) (map[int64]int, error) { return map[int64]int{1: 2}, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var b event.Batch
	for i := range 40 {
		b.Events = append(b.Events, dayEvent("p0_u", i%4, i, ""))
	}
	if _, err := s.Append(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	s.applyRetention(ctx)
	tb, _ := s.Table(1)
	days := tb.Days()
	if len(days) != 2 || days[0] != table.DayOf(dayEvent("", 2, 0, "").Time) {
		t.Fatalf("days kept: %v", days)
	}
	if n := tb.Stats().Rows; n != 20 {
		t.Fatalf("%d rows kept, want 20", n)
	}
}
