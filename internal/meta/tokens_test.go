package meta

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var apiTokenRE = regexp.MustCompile(`^vt_[A-Za-z0-9_-]{43}$`)

// fieldOf returns the Field of a meta input error ("" if none).
func fieldOf(err error) string {
	if fe, ok := errors.AsType[interface {
		error
		Field() string
	}](err); ok {
		return fe.Field()
	}
	return ""
}

func TestTokens(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "meta.db"))
	p1, _, err := db.CreateProject(ctx, "one")
	if err != nil {
		t.Fatal(err)
	}
	p2, _, err := db.CreateProject(ctx, "two")
	if err != nil {
		t.Fatal(err)
	}

	before := time.Now()
	tok, secret, err := db.CreateToken(ctx, p1.ID, ScopeRead, "  dashboards ")
	if err != nil {
		t.Fatal(err)
	}
	if !apiTokenRE.MatchString(secret) {
		t.Errorf("secret %q is not vt_ + 43 base64url characters", secret)
	}
	if tok.ID <= 0 || tok.ProjectID != p1.ID || tok.Name != "dashboards" || tok.Scope != ScopeRead ||
		tok.Created.Location() != time.UTC || tok.Created.Before(before.Add(-time.Second)) ||
		!tok.Active() || !tok.LastUsed.IsZero() {
		t.Fatalf("created token %+v", tok)
	}
	other, otherSecret, err := db.CreateToken(ctx, p2.ID, ScopeRead, "")
	if err != nil {
		t.Fatal(err)
	}
	if otherSecret == secret || other.ID == tok.ID {
		t.Fatal("tokens repeat")
	}

	got, err := db.TokenBySecret(ctx, secret)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != tok.ID || got.ProjectID != p1.ID || got.Scope != ScopeRead || !got.Created.Equal(tok.Created) ||
		got.LastUsed.IsZero() || !got.Allows(ScopeRead) || got.Allows("write") {
		t.Fatalf("TokenBySecret = %+v, want %+v used now", got, tok)
	}

	for name, s := range map[string]string{
		"empty":            "",
		"wrong last char":  otherLastChar(secret),
		"prefix only":      tokenPrefix,
		"no prefix":        strings.TrimPrefix(secret, tokenPrefix),
		"project secret":   "vs_" + strings.TrimPrefix(secret, tokenPrefix),
		"upper-cased":      strings.ToUpper(secret),
		"with a space":     secret + " ",
		"project token":    p1.Token,
		"one char shorter": secret[:len(secret)-1],
	} {
		if got, err := db.TokenBySecret(ctx, s); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: TokenBySecret = %+v, %v; want ErrNotFound", name, got, err)
		}
	}

	// Bad input.
	if _, _, err := db.CreateToken(ctx, p1.ID, "admin", ""); !errors.Is(err, ErrInvalid) || fieldOf(err) != "scope" || !strings.Contains(err.Error(), `"admin"`) {
		t.Errorf("unknown scope: %v (field %q)", err, fieldOf(err))
	}
	if _, _, err := db.CreateToken(ctx, p1.ID, ScopeRead, "a\nb"); !errors.Is(err, ErrInvalid) || fieldOf(err) != "name" {
		t.Errorf("name with a newline: %v", err)
	}
	if _, _, err := db.CreateToken(ctx, p1.ID, ScopeRead, strings.Repeat("x", MaxTokenNameLen+1)); !errors.Is(err, ErrInvalid) {
		t.Errorf("long name: %v", err)
	}
	if _, _, err := db.CreateToken(ctx, 999, ScopeRead, ""); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "999") {
		t.Errorf("unknown project: %v", err)
	}

	// Listing is per project.
	ts, err := db.Tokens(ctx, p1.ID)
	if err != nil || len(ts) != 1 || ts[0].ID != tok.ID || ts[0].Name != "dashboards" || ts[0].LastUsed.IsZero() {
		t.Fatalf("Tokens(p1) = %+v, %v", ts, err)
	}
	if ts, err := db.Tokens(ctx, 999); err != nil || ts == nil || len(ts) != 0 {
		t.Fatalf("Tokens(unknown) = %+v, %v; want empty, non-nil", ts, err)
	}

	// Revocation: only within the token's project; then the secret is refused.
	if err := db.RevokeToken(ctx, p2.ID, tok.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke through another project: %v", err)
	}
	if err := db.RevokeToken(ctx, p1.ID, 12345); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke unknown token: %v", err)
	}
	if _, err := db.TokenBySecret(ctx, secret); err != nil {
		t.Fatalf("token refused before its revocation: %v", err)
	}
	if err := db.RevokeToken(ctx, p1.ID, tok.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := db.TokenBySecret(ctx, secret); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked token accepted: %+v, %v", got, err)
	}
	ts, _ = db.Tokens(ctx, p1.ID)
	if len(ts) != 1 || ts[0].Active() || ts[0].Allows(ScopeRead) {
		t.Fatalf("after revocation: %+v", ts)
	}
	revokedAt := ts[0].Revoked
	if err := db.RevokeToken(ctx, p1.ID, tok.ID); err != nil {
		t.Fatalf("revoking twice: %v", err)
	}
	if ts, _ := db.Tokens(ctx, p1.ID); !ts[0].Revoked.Equal(revokedAt) {
		t.Errorf("second revocation moved revoked_at from %v to %v", revokedAt, ts[0].Revoked)
	}
	// The other project's token is untouched.
	if got, err := db.TokenBySecret(ctx, otherSecret); err != nil || got.ID != other.ID {
		t.Fatalf("other token: %+v, %v", got, err)
	}
}

// TestTokenScopesMatchSchema checks that the scopes the code knows are the
// ones the schema accepts.
func TestTokenScopesMatchSchema(t *testing.T) {
	db := openTest(t, filepath.Join(t.TempDir(), "meta.db"))
	rows, err := db.sql.Query(`SELECT name FROM token_scopes ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		names = append(names, n)
		if !validScope(Scope(n)) {
			t.Errorf("schema scope %q unknown to validScope", n)
		}
	}
	if !slices.Equal(names, []string{"read"}) {
		t.Errorf("token_scopes = %v", names)
	}
	ctx := context.Background()
	p, _, err := db.CreateProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	// The schema itself refuses an unknown scope.
	_, err = db.sql.Exec(`INSERT INTO tokens (project_id, scope, secret_sha256, created_at) VALUES (?, 'admin', zeroblob(32), '2026-01-01T00:00:00Z')`, p.ID)
	if err == nil {
		t.Error("schema accepted scope 'admin'")
	}
}

// TestTokenLastUsed checks that a use writes last_used_at only when the
// recorded one is a minute old.
func TestTokenLastUsed(t *testing.T) {
	ctx := context.Background()
	db := openTest(t, filepath.Join(t.TempDir(), "meta.db"))
	p, _, err := db.CreateProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	tok, secret, err := db.CreateToken(ctx, p.ID, ScopeRead, "")
	if err != nil {
		t.Fatal(err)
	}
	stored := func() string {
		t.Helper()
		var s *string
		if err := db.sql.QueryRow(`SELECT last_used_at FROM tokens WHERE id = ?`, tok.ID).Scan(&s); err != nil {
			t.Fatal(err)
		}
		if s == nil {
			return ""
		}
		return *s
	}
	if s := stored(); s != "" {
		t.Fatalf("unused token has last_used_at %q", s)
	}
	if _, err := db.TokenBySecret(ctx, secret); err != nil {
		t.Fatal(err)
	}
	first := stored()
	if first == "" {
		t.Fatal("first use not recorded")
	}
	for range 3 {
		if _, err := db.TokenBySecret(ctx, secret); err != nil {
			t.Fatal(err)
		}
	}
	if s := stored(); s != first {
		t.Fatalf("uses within a minute rewrote last_used_at: %q, then %q", first, s)
	}
	// 59 s ago: still fresh; 61 s ago: stale.
	for _, c := range []struct {
		age     time.Duration
		rewrite bool
	}{{59 * time.Second, false}, {61 * time.Second, true}} {
		old := time.Now().UTC().Add(-c.age).Format(timeFormat)
		if _, err := db.sql.Exec(`UPDATE tokens SET last_used_at = ? WHERE id = ?`, old, tok.ID); err != nil {
			t.Fatal(err)
		}
		got, err := db.TokenBySecret(ctx, secret)
		if err != nil {
			t.Fatal(err)
		}
		if rewritten := stored() != old; rewritten != c.rewrite {
			t.Errorf("last use %v ago: rewritten = %v, want %v", c.age, rewritten, c.rewrite)
		}
		if c.rewrite && time.Since(got.LastUsed) > 5*time.Second {
			t.Errorf("returned LastUsed %v, want now", got.LastUsed)
		}
	}
}

// TestTokenSecretNotStored greps every file of the database for the raw
// token secrets.
func TestTokenSecretNotStored(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := db.CreateProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	var secrets []string
	for range 5 {
		_, s, err := db.CreateToken(ctx, p.ID, ScopeRead, "t")
		if err != nil {
			t.Fatal(err)
		}
		secrets = append(secrets, s)
	}
	for _, s := range secrets {
		if _, err := db.TokenBySecret(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string) {
		t.Helper()
		files, err := filepath.Glob(path + "*")
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range secrets {
				for _, needle := range []string{s, strings.TrimPrefix(s, tokenPrefix)} {
					if bytes.Contains(b, []byte(needle)) {
						t.Errorf("%s: %s contains a raw token secret", when, filepath.Base(f))
					}
				}
			}
		}
	}
	check("while open")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	check("after close")
}
