package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
)

func mkEvent(i int, insertID string) event.Event {
	return event.Event{
		Project: 1, Name: "e", DistinctID: fmt.Sprint("u", i%7), Time: 1_700_000_000_000 + int64(i),
		InsertID: insertID, Received: time.Now().UnixMilli(),
		Props: []event.Field{{Key: "i", Value: event.NumberValue(float64(i))}},
	}
}

func scanAll(t *testing.T, dir string) (events []event.Event, profiles []event.ProfileUpdate, links []event.IdentityLink) {
	t.Helper()
	err := Scan(dir, 1, Visitor{
		Event:    func(e *event.Event) error { events = append(events, *e); return nil },
		Profile:  func(u *event.ProfileUpdate) error { profiles = append(profiles, *u); return nil },
		Identity: func(l *event.IdentityLink) error { links = append(links, *l); return nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	return
}

func TestAppendScanAndDedupAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := &event.Batch{
		Events:   []event.Event{mkEvent(1, "a"), mkEvent(2, ""), mkEvent(1, "a"), mkEvent(3, "c")},
		Profiles: []event.ProfileUpdate{{Project: 1, DistinctID: "u1", Ops: []event.ProfileOp{{Op: "$set", Value: event.Value{Kind: event.Object, Fields: []event.Field{{Key: "k", Value: event.StringValue("v")}}}}}}},
		Links:    []event.IdentityLink{{Project: 1, From: "$device:d", To: "u1", Source: "$device_id"}},
	}
	dups, err := s.Append(ctx, b)
	if err != nil || dups != 1 {
		t.Fatalf("Append = %d, %v; want 1 duplicate", dups, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	evs, prof, links := scanAll(t, dir)
	if len(evs) != 3 || len(prof) != 1 || len(links) != 1 {
		t.Fatalf("scan: %d events, %d profiles, %d links", len(evs), len(prof), len(links))
	}
	if evs[0].InsertID != "a" || evs[1].InsertID != "" || evs[2].InsertID != "c" {
		t.Fatalf("order/dedup wrong: %+v", evs)
	}

	// After a restart the index is rebuilt from the log: a retry of an
	// acknowledged event is still a duplicate; events without $insert_id are not.
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	dups, err = s.Append(ctx, &event.Batch{Events: []event.Event{mkEvent(1, "a"), mkEvent(2, ""), mkEvent(4, "d")}})
	if err != nil || dups != 1 {
		t.Fatalf("after restart Append = %d, %v; want 1 duplicate", dups, err)
	}
	s.Close()
	evs, _, _ = scanAll(t, dir)
	if len(evs) != 5 {
		t.Fatalf("after restart %d events, want 5", len(evs))
	}
	if _, err := s.Append(ctx, &event.Batch{Events: []event.Event{mkEvent(9, "z")}}); err != ErrClosed {
		t.Fatalf("Append after Close = %v", err)
	}
}

func TestConcurrentAppendsShareCommits(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	const writers, per = 8, 50
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				// Every writer also sends writer 0's ids: exactly one copy may win.
				b := &event.Batch{Events: []event.Event{mkEvent(w*1000+i, fmt.Sprint("w", w, "-", i)), mkEvent(i, fmt.Sprint("shared-", i))}}
				if _, err := s.Append(context.Background(), b); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	s.Close()
	evs, _, _ := scanAll(t, dir)
	if want := writers*per + per; len(evs) != want {
		t.Fatalf("stored %d events, want %d", len(evs), want)
	}
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.InsertID] {
			t.Fatalf("duplicate %s stored", e.InsertID)
		}
		seen[e.InsertID] = true
	}
}

func TestDedupWindowForgets(t *testing.T) {
	clock := time.Unix(1_800_000_000, 0)
	d := newDedupIndex(time.Hour, 1<<20)
	e := mkEvent(1, "x")
	k := d.key(&e)
	d.add(k, clock.UnixMilli())
	if !d.has(k) {
		t.Fatal("key not found")
	}
	other := mkEvent(2, "y")
	d.add(d.key(&other), clock.Add(2*time.Hour).UnixMilli())
	if d.has(k) {
		t.Fatal("key outlived its window")
	}
}

func TestDedupMaxKeysBoundsMemory(t *testing.T) {
	d := newDedupIndex(24*time.Hour, 100)
	base := int64(1_800_000_000_000)
	for i := range 1000 {
		e := mkEvent(i, fmt.Sprint("k", i))
		d.add(d.key(&e), base+int64(i)*int64(time.Hour/time.Millisecond)/10)
	}
	if d.keys > 200 {
		t.Fatalf("index holds %d keys, bound is about 100", d.keys)
	}
}

func BenchmarkAppend50(b *testing.B) {
	s, err := Open(b.TempDir(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			batch := &event.Batch{}
			for j := range 50 {
				i++
				batch.Events = append(batch.Events, mkEvent(i, fmt.Sprintf("b%p-%d-%d", pb, i, j)))
			}
			if _, err := s.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func TestDedupKeyIsPerDay(t *testing.T) {
	d := newDedupIndex(time.Hour, 100)
	a, b, c := mkEvent(1, "x"), mkEvent(1, "x"), mkEvent(1, "x")
	a.Time = 1_800_000_000_000 // 2027-01-15T08:00Z
	b.Time = a.Time + 3_600_000
	c.Time = a.Time + 24*3_600_000
	if d.key(&a) != d.key(&b) {
		t.Error("retries stamped at different times of one day must share a key")
	}
	if d.key(&a) == d.key(&c) {
		t.Error("events a day apart must not share a key")
	}
	e := mkEvent(1, "x")
	e.Name = "other"
	if d.key(&a) == d.key(&e) {
		t.Error("different events must not share a key")
	}
}

func TestDedupMaxKeysWithinOneSlot(t *testing.T) {
	d := newDedupIndex(24*time.Hour, 100)
	base := int64(1_800_000_000_000)
	for i := range 100000 {
		e := mkEvent(i, fmt.Sprint("k", i))
		d.add(d.key(&e), base+int64(i)) // all within a millisecond-spaced 100 s
	}
	if d.keys > 150 {
		t.Fatalf("index holds %d keys, bound is 100 (+ one generation)", d.keys)
	}
	last := mkEvent(99999, "k99999")
	if !d.has(d.key(&last)) {
		t.Fatal("the newest key was forgotten")
	}
}
