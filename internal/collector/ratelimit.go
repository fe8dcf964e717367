package collector

import (
	"math"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// rateLimits holds one token bucket of records per project.
type rateLimits struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex // guards buckets
	buckets map[int64]*rate.Limiter
}

func newRateLimits(perSecond float64, burst int) *rateLimits {
	return &rateLimits{limit: rate.Limit(perSecond), burst: burst, buckets: make(map[int64]*rate.Limiter)}
}

// allow takes the request's records from each project's bucket, all or
// none: a refused request must write nothing.
func (l *rateLimits) allow(perProject map[int64]int) *requestError {
	if l.limit <= 0 || len(perProject) == 0 {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var taken []*rate.Reservation
	for id, n := range perProject {
		b := l.buckets[id]
		if b == nil {
			b = rate.NewLimiter(l.limit, l.burst)
			l.buckets[id] = b
		}
		res := b.ReserveN(now, n)
		if !res.OK() || res.DelayFrom(now) > 0 {
			wait := time.Second
			if res.OK() {
				wait = res.DelayFrom(now)
			}
			res.CancelAt(now)
			for _, t := range taken {
				t.CancelAt(now)
			}
			e := fail(http.StatusTooManyRequests, reasonRateLimited, "Project exceeded rate limits. Please retry the request with exponential backoff.")
			e.retry = int(math.Ceil(wait.Seconds()))
			return e
		}
		taken = append(taken, res)
	}
	return nil
}
