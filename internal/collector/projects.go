package collector

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"time"
)

// projectCache keeps credential lookups off the metadata database on the
// hot path. Hits are kept for good (a token never changes project); misses
// for a few seconds, so a project created meanwhile is found quickly and a
// flood of bad tokens cannot hammer the database.
type projectCache struct {
	src Projects
	now func() time.Time

	mu      sync.Mutex // guards the maps
	tokens  map[string]int64
	secrets map[[32]byte]int64 // keyed by SHA-256: raw secrets are not kept
	misses  map[string]time.Time
}

const missTTL = 2 * time.Second

func newProjectCache(src Projects, now func() time.Time) *projectCache {
	return &projectCache{
		src: src, now: now,
		tokens:  make(map[string]int64),
		secrets: make(map[[32]byte]int64),
		misses:  make(map[string]time.Time),
	}
}

func (c *projectCache) byToken(ctx context.Context, token string) (int64, error) {
	c.mu.Lock()
	if id, ok := c.tokens[token]; ok {
		c.mu.Unlock()
		return id, nil
	}
	if t, ok := c.misses["t"+token]; ok && c.now().Sub(t) < missTTL {
		c.mu.Unlock()
		return 0, ErrUnknownProject
	}
	c.mu.Unlock()
	id, err := c.src.ProjectIDByToken(ctx, token)
	// Clone: token may be a substring of a whole request body.
	c.remember("t"+token, err, func() { c.tokens[strings.Clone(token)] = id })
	return id, err
}

func (c *projectCache) bySecret(ctx context.Context, secret string) (int64, error) {
	sum := sha256.Sum256([]byte(secret))
	c.mu.Lock()
	if id, ok := c.secrets[sum]; ok {
		c.mu.Unlock()
		return id, nil
	}
	missKey := "s" + string(sum[:])
	if t, ok := c.misses[missKey]; ok && c.now().Sub(t) < missTTL {
		c.mu.Unlock()
		return 0, ErrUnknownProject
	}
	c.mu.Unlock()
	id, err := c.src.ProjectIDBySecret(ctx, secret)
	c.remember(missKey, err, func() { c.secrets[sum] = id })
	return id, err
}

func (c *projectCache) remember(missKey string, err error, hit func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		hit()
	case errors.Is(err, ErrUnknownProject):
		if len(c.misses) > 100000 {
			clear(c.misses)
		}
		c.misses[missKey] = c.now()
	}
}
