package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// crashBatch is one /track request of the crash tests' load generator.
type crashBatch struct {
	id     string
	body   []byte
	events []trackEvent // as sent: may repeat an event (see crashLoadConfig.copyOneIn)

	// Written by the worker that owns the batch; read after the workers end.
	attempts int       // requests sent
	acked    bool      // some attempt got 200 {"status":1,...}
	retried  bool      // acked on a retry after a failed attempt
	failedAt time.Time // when the first attempt failed
}

// crashSeed is the seed of a crash test's randomness: VEIL_E2E_SEED if
// set, else the clock. It logs it so that a failure can be replayed.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("VEIL_E2E_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("VEIL_E2E_SEED=%q: %v", v, err)
		}
	}
	t.Logf("seed %d (replay with VEIL_E2E_SEED=%d)", seed, seed)
	return seed
}

// crashLoadConfig shapes the crash tests' load generator.
type crashLoadConfig struct {
	workers            int
	minBatch, maxBatch int           // events per batch
	retryEvery         time.Duration // a client's wait between retries of an unanswered batch
	span               time.Duration // event times spread over this long before now (default 1h)
	pause              time.Duration // a worker waits up to this long between batches (0: none)
	// resendOneIn: 1 in n acknowledged batches is sent once more, the same
	// body, as a client that lost the answer would (0: never).
	resendOneIn int
	// copyOneIn: 1 in n batches also carries copies of a few events of the
	// worker's previous batch (acknowledged or not) and a second copy of
	// one of its own events (0: never).
	copyOneIn int
}

// crashLoad is a load generator that keeps sending /track batches while a
// crash test kills and restarts the server, and remembers what was sent
// and what was acknowledged.
type crashLoad struct {
	t             *testing.T
	s             *Server
	cfg           crashLoadConfig
	ctx           context.Context
	client        *http.Client
	url           string
	retryDeadline time.Time // a client retry loop must not spin forever if the server never comes back

	mu      sync.Mutex
	batches []*crashBatch
	byID    map[string]trackEvent // every insert id sent

	stopping    atomic.Bool  // no new batches
	interrupted atomic.Int64 // batches whose first attempt got no answer
	refused     atomic.Int64 // attempts refused while the server was down
	cutOff      atomic.Int64 // attempts reset or cut short by a kill
	resent      atomic.Int64 // acknowledged batches sent again on purpose
	protoErrs   atomic.Int64
	wg          sync.WaitGroup
}

// startCrashLoad starts cfg.workers workers sending to s; their batch
// contents follow from seed.
func startCrashLoad(t *testing.T, s *Server, seed uint64, cfg crashLoadConfig) *crashLoad {
	t.Helper()
	if cfg.span <= 0 {
		cfg.span = time.Hour
	}
	ctx, cancel := context.WithCancel(testContext(t))
	transport := &http.Transport{MaxIdleConnsPerHost: cfg.workers}
	l := &crashLoad{
		t: t, s: s, cfg: cfg, ctx: ctx,
		client:        &http.Client{Timeout: 20 * time.Second, Transport: transport},
		url:           s.URL() + "/track?verbose=1",
		retryDeadline: time.Now().Add(3 * time.Minute),
		byID:          map[string]trackEvent{},
	}
	// If the test ends early (a failed restart), stop the load generator
	// before the test completes (and before the harness stops the server).
	t.Cleanup(func() {
		l.stopping.Store(true)
		cancel()
		l.wg.Wait()
		transport.CloseIdleConnections()
	})
	for w := range cfg.workers {
		l.wg.Add(1)
		go l.worker(w, rand.New(rand.NewPCG(seed, uint64(w)+1)))
	}
	return l
}

// send makes one attempt; acked reports a 200 {"status":1,...}. Any other
// complete answer is a server bug: every event sent is valid.
func (l *crashLoad) send(b *crashBatch) (acked bool) {
	b.attempts++
	code, body, err := postBody(l.ctx, l.client, l.url, "application/json", bytes.NewReader(b.body))
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			l.refused.Add(1)
		} else if l.ctx.Err() == nil {
			l.cutOff.Add(1)
		}
		return false
	}
	if code == http.StatusOK && strings.HasPrefix(string(body), `{"status":1`) {
		if string(body) != okVerbose {
			l.protoErrs.Add(1)
			l.t.Errorf("batch %s: accepted with failures (every event is valid): %s", b.id, body)
		}
		return true
	}
	l.protoErrs.Add(1)
	l.t.Errorf("batch %s: answered %d %s; want 200 %s or no answer", b.id, code, body, okVerbose)
	return true // answered: do not retry
}

func (l *crashLoad) worker(w int, rng *rand.Rand) {
	defer l.wg.Done()
	cfg := l.cfg
	var prev []trackEvent // the previous batch's own events
	for n := 0; !l.stopping.Load() && l.ctx.Err() == nil; n++ {
		b := &crashBatch{id: fmt.Sprintf("w%d-b%d", w, n)}
		now := time.Now().UnixMilli()
		for i := range cfg.minBatch + rng.IntN(cfg.maxBatch-cfg.minBatch+1) {
			b.events = append(b.events, trackEvent{
				Name:       []string{"page_view", "signup", "checkout", "search"}[rng.IntN(4)],
				DistinctID: fmt.Sprintf("user-%d", rng.IntN(500)),
				TimeMS:     now - rng.Int64N(cfg.span.Milliseconds()),
				InsertID:   fmt.Sprintf("%s-e%d", b.id, i),
				Props:      map[string]any{"batch": b.id, "n": float64(i)},
			})
		}
		own := b.events
		if cfg.copyOneIn > 0 && rng.IntN(cfg.copyOneIn) == 0 {
			// The same events again, as a client that merged a retry
			// queue into a new request would send them: each must still
			// be stored once.
			for range 1 + rng.IntN(3) {
				if len(prev) > 0 {
					b.events = append(b.events, prev[rng.IntN(len(prev))])
				}
			}
			b.events = append(b.events, own[rng.IntN(len(own))])
		}
		prev = own
		b.body = trackBody(l.s.Token, b.events)
		l.mu.Lock()
		l.batches = append(l.batches, b)
		for _, e := range b.events {
			l.byID[e.InsertID] = e
		}
		l.mu.Unlock()

		if l.send(b) {
			b.acked = true
			if cfg.resendOneIn > 0 && rng.IntN(cfg.resendOneIn) == 0 {
				l.resent.Add(1)
				l.send(b) // whatever the answer: the batch is acknowledged
			}
		} else {
			l.interrupted.Add(1)
			b.failedAt = time.Now()
			if rng.IntN(2) != 0 {
				// The client retries the same body until it is acknowledged,
				// as an SDK does after a network error.
				for l.ctx.Err() == nil && time.Now().Before(l.retryDeadline) {
					time.Sleep(cfg.retryEvery)
					if l.send(b) {
						b.acked, b.retried = true, true
						break
					}
				}
			} // else the client gives up: the batch stays unacknowledged
		}
		if cfg.pause > 0 {
			time.Sleep(time.Duration(rng.Int64N(int64(cfg.pause))))
		}
	}
}

// batchCount is how many batches the workers have started.
func (l *crashLoad) batchCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.batches)
}

// finish stops the workers: they end once their current batch is
// acknowledged or given up.
func (l *crashLoad) finish(timeout time.Duration) {
	l.t.Helper()
	l.stopping.Store(true)
	done := make(chan struct{})
	go func() { l.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
		l.t.Fatalf("load generator did not finish within %v of the last restart", timeout)
	}
}

// crashTally is what a crash test's load generator sent and what is stored.
type crashTally struct {
	batches, sentEvents    int // distinct insert ids
	acked, ackedEvents     int // batches, distinct insert ids in them
	retried, retriedStored int // batches acked on a retry; of them, stored before the crash
	dropped, storedUnacked int // batches never acknowledged; their events stored anyway
	stored, storedDistinct int // events stored, distinct insert ids stored
	copies                 int // events sent again in a later batch, or twice in one
}

// verify checks what is stored (recs, after the workers finished) against
// what was sent: every event of an acknowledged batch stored exactly once,
// nothing stored twice, nothing stored that was never sent, each as sent.
// Past 20 problems, it only counts them.
func (l *crashLoad) verify(recs []Record) crashTally {
	t := l.t
	t.Helper()
	problems := 0
	report := func(format string, args ...any) {
		t.Helper()
		if problems++; problems <= 20 {
			t.Errorf(format, args...)
		}
	}
	count, stored := countByInsertID(recs)
	tl := crashTally{batches: len(l.batches), sentEvents: len(l.byID), stored: len(recs), storedDistinct: len(count)}
	ackedIDs := map[string]bool{}
	sentIn := map[string]int{} // batch sends of each insert id
	for _, b := range l.batches {
		switch {
		case b.acked && b.retried:
			tl.retried++
		case !b.acked:
			tl.dropped++
		}
		if b.acked {
			tl.acked++
		}
		preCrash := false
		seen := map[string]bool{}
		for _, e := range b.events {
			sentIn[e.InsertID]++
			if seen[e.InsertID] {
				continue
			}
			seen[e.InsertID] = true
			if b.acked {
				ackedIDs[e.InsertID] = true
			}
			n := count[e.InsertID]
			switch {
			case b.acked && n != 1:
				report("acknowledged event %s (batch %s, %d attempts) is stored %d times; want exactly 1", e.InsertID, b.id, b.attempts, n)
			case n > 1:
				report("unacknowledged event %s (batch %s) is stored %d times; want at most 1", e.InsertID, b.id, n)
			}
			if n == 0 {
				continue
			}
			if !b.acked {
				tl.storedUnacked++
			}
			if diff := checkStoredEvent(l.s, stored[e.InsertID], e); diff != "" {
				report("event %s is stored wrong: %s", e.InsertID, diff)
			}
			if rms, ok := stored[e.InsertID].Props()["$veil_received_ms"].(float64); ok && b.retried && int64(rms) <= b.failedAt.UnixMilli() {
				preCrash = true
			}
		}
		if preCrash {
			tl.retriedStored++
		}
	}
	tl.ackedEvents = len(ackedIDs)
	for _, n := range sentIn {
		tl.copies += n - 1
	}
	for id, n := range count {
		if _, ok := l.byID[id]; !ok {
			report("stored event with $insert_id %q (%d times) was never sent: %v", id, n, stored[id])
		}
	}
	if len(recs) != len(count) {
		report("%d events stored under %d distinct insert ids", len(recs), len(count))
	}
	if problems > 20 {
		t.Errorf("... %d problems with the stored events in all", problems)
	}
	return tl
}

// summary is a log line of what the load generator did and what is stored.
func (l *crashLoad) summary(tl crashTally) string {
	return fmt.Sprintf("%d batches sent (%d events), %d acknowledged (%d events); %d batches unanswered at first "+
		"(%d requests cut off by a kill, %d refused while down): %d acked on retry (%d of them had been stored before the crash "+
		"and were deduplicated), %d dropped unacknowledged (%d of their events stored anyway); %d acknowledged batches resent, "+
		"%d event copies sent; %d events stored",
		tl.batches, tl.sentEvents, tl.acked, tl.ackedEvents, l.interrupted.Load(), l.cutOff.Load(), l.refused.Load(),
		tl.retried, tl.retriedStored, tl.dropped, tl.storedUnacked, l.resent.Load(), tl.copies, tl.stored)
}

// checkExercised fails the test if the load was too light for kills
// crashes to mean anything, or some request got an unexpected answer.
func (l *crashLoad) checkExercised(tl crashTally, kills int, wantCutOff bool) {
	t := l.t
	t.Helper()
	if wantCutOff && l.cutOff.Load() == 0 {
		t.Errorf("no request was cut off by %d kills: the test did not exercise a crash under load", kills)
	}
	if tl.acked < kills {
		t.Errorf("only %d batches acknowledged across %d kills: too little load to mean anything", tl.acked, kills)
	}
	if l.protoErrs.Load() > 0 {
		t.Errorf("%d requests got an answer other than 200 %s", l.protoErrs.Load(), okVerbose)
	}
}

// TestCrashNoAcknowledgedEventLost SIGKILLs the server at random moments
// under load and checks that every acknowledged event is stored exactly
// once, that client retries of interrupted batches are deduplicated across
// the restart, and that nothing is stored that was never sent.
//
// Replay a failure with VEIL_E2E_SEED=<seed from the log>; the kill delays
// and batch contents follow from it (the interleaving with the server does not).
func TestCrashNoAcknowledgedEventLost(t *testing.T) {
	seed := crashSeed(t)
	const kills = 24
	s := NewServer(t)
	start := time.Now()
	load := startCrashLoad(t, s, seed, crashLoadConfig{workers: 4, minBatch: 20, maxBatch: 50, retryEvery: 25 * time.Millisecond})

	// The killer: SIGKILL at a random moment after each restart.
	// On some kills it also tears the log's tail the way a power loss can
	// (SIGKILL alone leaves a partial write(2) only now and then).
	krng := rand.New(rand.NewPCG(seed, 0))
	var logs []string
	tears := map[int]int64{} // index in logs of the run that must repair → bytes
	for i := range kills {
		d := time.Duration(50+krng.IntN(351)) * time.Millisecond
		time.Sleep(d)
		s.Kill()
		logs = append(logs, s.Log())
		tear := ""
		if krng.IntN(5) == 0 {
			n, kind := tearWALTail(t, s.Data, krng)
			tears[len(logs)] = n
			tear = fmt.Sprintf(", tore the log tail (%d bytes of %s)", n, kind)
		}
		restartServer(t, s) // fails the test if start-up fails
		t.Logf("kill %d after %v%s; %d batches so far, %d requests cut off, %d refused", i+1, d, tear, load.batchCount(), load.cutOff.Load(), load.refused.Load())
	}
	// Let retries of the last crash finish against a live server, then stop.
	time.Sleep(300 * time.Millisecond)
	load.finish(2 * time.Minute)
	if err := s.Stop(); err != nil {
		t.Errorf("clean stop after the last restart: %v\n%s", err, s.Log())
	}
	logs = append(logs, s.Log())
	if !strings.Contains(logs[len(logs)-1], "stopped cleanly") {
		t.Errorf("final log lacks \"stopped cleanly\":\n%s", logs[len(logs)-1])
	}
	repairs := 0
	for i, l := range logs {
		if !strings.Contains(l, "veil is listening") {
			t.Errorf("run %d never started listening:\n%s", i, l)
		}
		if strings.Contains(l, "torn tail") {
			repairs++
		}
		if n, torn := tears[i]; torn {
			if want := fmt.Sprintf("bytes=%d", n); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "torn tail") || !strings.Contains(l, want) {
				t.Errorf("run %d started on a log with a torn tail of %d bytes but did not warn of its repair (%s):\n%s", i, n, want, l)
			}
		}
		checkServerLog(t, fmt.Sprintf("run %d", i), l)
	}

	tally := load.verify(s.Records("event"))
	t.Logf("%d kills in %v: %s; %d torn-tail repairs (%d injected)",
		kills, time.Since(start).Round(time.Millisecond), load.summary(tally), repairs, len(tears))
	if repairs < len(tears) {
		t.Errorf("%d torn tails injected but %d repairs logged", len(tears), repairs)
	}
	load.checkExercised(tally, kills, true)
}

// tearWALTail appends to the last WAL segment what a crash during a write
// can leave: a frame cut short, a frame whose payload did not reach the
// disk (zeros), or a zero-filled extension. It returns the bytes added.
func tearWALTail(t *testing.T, data string, rng *rand.Rand) (int64, string) {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(data, "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no WAL segment in %s: %v", data, err)
	}
	sort.Strings(segs)
	var tail []byte
	var kind string
	switch rng.IntN(3) {
	case 0: // a frame header promising more payload than was written
		kind = "a cut-short frame"
		tail = binary.LittleEndian.AppendUint32(nil, uint32(1000+rng.IntN(4000)))
		tail = binary.LittleEndian.AppendUint32(tail, rng.Uint32())
		for range 1 + rng.IntN(500) {
			tail = append(tail, byte(rng.IntN(256)))
		}
	case 1: // a whole frame whose payload is zeros: bad checksum
		kind = "a frame with a lost payload"
		n := 100 + rng.IntN(400)
		tail = binary.LittleEndian.AppendUint32(nil, uint32(n))
		tail = binary.LittleEndian.AppendUint32(tail, 0xdeadbeef)
		tail = append(tail, make([]byte, n)...)
	default: // the file grew but no data reached the disk
		kind = "zeros"
		tail = make([]byte, 1+rng.IntN(8192))
	}
	f, err := os.OpenFile(segs[len(segs)-1], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(tail); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return int64(len(tail)), kind
}

// TestCrashRetryDeduplicatesClockSkew: a client whose clock runs ahead of
// the server's sends events timed in the future; its batch is stored, the
// server crashes before the client sees the answer, and the client retries
// the same batch after the restart (and once more). Each event must be
// stored exactly once, whatever the skew.
func TestCrashRetryDeduplicatesClockSkew(t *testing.T) {
	s := NewServer(t)
	ctx := testContext(t)
	now := time.Now().UnixMilli()
	var evs []trackEvent
	for i, skew := range []time.Duration{0, -time.Minute, 2 * time.Second, time.Minute, 30 * time.Minute} {
		evs = append(evs, trackEvent{
			Name:       "skewed",
			DistinctID: "user-1",
			TimeMS:     now + skew.Milliseconds(),
			InsertID:   fmt.Sprintf("skew-%d", i),
			Props:      map[string]any{"skew_ms": float64(skew.Milliseconds())},
		})
	}
	body := trackBody(s.Token, evs)
	send := func(what string) {
		t.Helper()
		code, rb, err := postBody(ctx, s.Client(), s.URL()+"/track?verbose=1", "application/json", bytes.NewReader(body))
		if err != nil || code != http.StatusOK || string(rb) != okVerbose {
			t.Fatalf("%s: %d %s %v", what, code, rb, err)
		}
	}
	send("first attempt")
	s.Kill() // the answer was lost: the client retries
	restartServer(t, s)
	time.Sleep(50 * time.Millisecond) // the server's clock moves on
	send("retry after the crash")
	time.Sleep(50 * time.Millisecond)
	send("second retry")
	if err := s.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	count, _ := countByInsertID(s.Records("event"))
	for _, e := range evs {
		if n := count[e.InsertID]; n != 1 {
			t.Errorf("event %s timed %+dms from the server's clock is stored %d times after 2 retries; want 1",
				e.InsertID, e.TimeMS-now, n)
		}
	}
}

// TestCrashDuringSegmentRollRecovers: a crash while the log rolls to a new
// segment can leave that segment (its predecessor complete and synced, as
// the roll syncs it first) empty, with part of its header, or, on a file
// system that exposes unwritten blocks as zeros after a power loss, with a
// zero-filled header: nothing in it was ever acknowledged, because the roll
// syncs the header before any record goes in. Start-up must succeed (with
// at most a warning), keep every acknowledged event and accept new ones,
// and veil events must read the log.
func TestCrashDuringSegmentRollRecovers(t *testing.T) {
	for _, c := range []struct {
		name string
		tail []byte
	}{
		{"empty", nil},
		{"partial-header", []byte("VEIL")},
		{"zeroed-header", make([]byte, 8)},
		{"zero-filled", make([]byte, 4096)},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewServer(t)
			ctx := testContext(t)
			send := func(prefix string) []trackEvent {
				t.Helper()
				evs := makeEvents(prefix, 20, time.Now().UnixMilli())
				code, rb, err := postBody(ctx, s.Client(), s.URL()+"/track?verbose=1", "application/json", bytes.NewReader(trackBody(s.Token, evs)))
				if err != nil || code != http.StatusOK || string(rb) != okVerbose {
					t.Fatalf("track %s: %d %s %v", prefix, code, rb, err)
				}
				return evs
			}
			before := send("before")
			s.Kill()
			segs, _ := filepath.Glob(filepath.Join(s.Data, "wal", "*.wal"))
			if len(segs) != 1 {
				t.Fatalf("want one WAL segment, found %v", segs)
			}
			next := filepath.Join(s.Data, "wal", "00000002.wal")
			if err := os.WriteFile(next, c.tail, 0o600); err != nil {
				t.Fatal(err)
			}
			// veil events reads the log as it is.
			r := runCLI(t, time.Minute, nil, "events", "--data", s.Data, "--project", fmt.Sprint(s.ID))
			if r.code != 0 || strings.Count(r.stdout, "\n") != len(before) {
				t.Errorf("veil events after the crash: exit %d, %d lines; want 0 and %d\n%s", r.code, strings.Count(r.stdout, "\n"), len(before), r.stderr)
			}
			restartServer(t, s)
			after := send("after")
			if err := s.Stop(); err != nil {
				t.Errorf("stop: %v", err)
			}
			checkServerLog(t, "restart", s.Log())
			count, _ := countByInsertID(s.Records("event"))
			for _, e := range append(before, after...) {
				if count[e.InsertID] != 1 {
					t.Errorf("acknowledged event %s stored %d times; want 1", e.InsertID, count[e.InsertID])
				}
			}
		})
	}
}
