package meta

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
)

func TestPrivacyPolicyAndChanges(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	p, _, err := db.CreateProject(ctx, "p")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := db.PrivacyPolicy(ctx, p.ID); err != nil || got != nil {
		t.Fatalf("default policy = %q, %v; want nil", got, err)
	}
	for _, pol := range []string{`{"geo":"off"}`, `{"geo":"city"}`} {
		if err := db.SetPrivacyPolicy(ctx, p.ID, []byte(pol)); err != nil {
			t.Fatal(err)
		}
		if got, err := db.PrivacyPolicy(ctx, p.ID); err != nil || string(got) != pol {
			t.Fatalf("policy = %q, %v; want %s", got, err, pol)
		}
	}
	if err := db.SetPrivacyPolicy(ctx, 999, []byte(`{}`)); !errors.Is(err, ErrNotFound) {
		t.Fatalf("policy of a missing project: %v", err)
	}

	t1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	add := []PrivacyChange{
		{ProjectID: p.ID, Event: "signup", Property: "email", Reason: "dropped", Count: 3, FirstSeen: t1, LastSeen: t1},
		{ProjectID: p.ID, Event: "signup", Property: "$current_url", Reason: "url_query_removed", Count: 1, FirstSeen: t1, LastSeen: t1},
	}
	if err := db.AddPrivacyChanges(ctx, add); err != nil {
		t.Fatal(err)
	}
	if err := db.AddPrivacyChanges(ctx, []PrivacyChange{{ProjectID: p.ID, Event: "signup", Property: "email", Reason: "dropped", Count: 2, FirstSeen: t2, LastSeen: t2}}); err != nil {
		t.Fatal(err)
	}
	got, err := db.PrivacyChanges(ctx, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Property != "email" || got[0].Count != 5 || !got[0].FirstSeen.Equal(t1) || !got[0].LastSeen.Equal(t2) {
		t.Fatalf("changes = %+v", got)
	}
}
