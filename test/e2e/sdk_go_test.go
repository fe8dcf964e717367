package e2e

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mixpanel/mixpanel-go"
)

// TestSDKGo drives the official Go SDK (github.com/mixpanel/mixpanel-go)
// against veil serve: every ingestion call it has, then checks what was
// stored, record by record.
func TestSDKGo(t *testing.T) {
	s := NewServer(t)
	ctx := testContext(t)
	mp := mixpanel.NewApiClient(s.Token, mixpanel.ProxyApiLocation(s.URL()), mixpanel.ApiSecret(s.Secret))

	const user, user2 = "go-user-1", "go-user-2"
	now := time.Now()
	ms := func(t time.Time) int64 { return t.UnixMilli() }
	ago := func(d time.Duration) time.Time { return now.Add(-d).Truncate(time.Millisecond) }
	const day = 24 * time.Hour
	w := openRecvWindow()

	// Track: POST /track?verbose=1 with a JSON array.
	signup := mp.NewEvent("go_signup", user, map[string]any{
		"plan": "free", "emoji": "lift-off 🚀", "ratio": 1.5, "count": 3,
		"list": []any{1, "a", true}, "nested": map[string]any{"k": "v"}, "none": nil,
	})
	timed := mp.NewEvent("go_timed", user, map[string]any{"step": 1})
	timed.AddTime(ago(time.Hour))
	timed.AddInsertID("go-ins-0001")
	timed2 := mp.NewEvent("go_timed", user, map[string]any{"step": 2})
	timed2.AddTime(ago(2 * time.Hour))
	timed2.AddInsertID("go-ins-0002")
	anon := mp.NewEvent("go_anonymous", "", map[string]any{"$device_id": "go-dev-1"})
	login := mp.NewEvent("go_login", "", map[string]any{"$device_id": "go-dev-1", "$user_id": user})
	if err := mp.Track(ctx, []*mixpanel.Event{signup, timed, timed2, anon, login}); err != nil {
		t.Fatalf("Track: %v", err)
	}
	// The same event again (a client retry): stored once, and still a success.
	if err := mp.Track(ctx, []*mixpanel.Event{timed}); err != nil {
		t.Fatalf("Track (retry of go-ins-0001): %v", err)
	}

	// Import, recommended options: POST /import?strict=1, gzip body.
	var imp []*mixpanel.Event
	for i, id := range []string{"go-imp-0001", "go-imp-0002"} {
		e := mp.NewEvent("go_imported", user, map[string]any{"i": i})
		e.AddTime(ago(200*day + time.Duration(i)*time.Minute))
		e.AddInsertID(id)
		imp = append(imp, e)
	}
	res, err := mp.Import(ctx, imp, mixpanel.ImportOptionsRecommend)
	if err != nil {
		t.Fatalf("Import(strict, gzip): %v", err)
	}
	if res.Code != 200 || res.NumRecordsImported != 2 || res.Status != "OK" {
		t.Errorf("Import(strict, gzip) = %+v, want {Code:200 NumRecordsImported:2 Status:OK}", *res)
	}

	// Import with service-account credentials: any user name, the project
	// secret as password, and ?project_id=.
	sa := mixpanel.NewApiClient(s.Token, mixpanel.ProxyApiLocation(s.URL()), mixpanel.ServiceAccount(int(s.ID), "sa-e2e", s.Secret))
	viaSA := sa.NewEvent("go_imported_sa", user, nil)
	viaSA.AddTime(ago(50 * day))
	viaSA.AddInsertID("go-imp-0003")
	if res, err := sa.Import(ctx, []*mixpanel.Event{viaSA}, mixpanel.ImportOptionsRecommend); err != nil {
		t.Errorf("Import(service account): %v", err)
	} else if res.NumRecordsImported != 1 {
		t.Errorf("Import(service account) = %+v, want 1 imported", *res)
	}

	// Import, not strict, uncompressed: neither time nor $insert_id is required.
	old := mp.NewEvent("go_imported_lax", user, map[string]any{"k": "old"})
	old.AddTime(ago(30 * day))
	untimed := mp.NewEvent("go_imported_lax", user, map[string]any{"k": "untimed"})
	res, err = mp.Import(ctx, []*mixpanel.Event{old, untimed}, mixpanel.ImportOptions{Strict: false, Compression: mixpanel.None})
	if err != nil {
		t.Fatalf("Import(non-strict, none): %v", err)
	}
	if res.Code != 200 || res.NumRecordsImported != 2 {
		t.Errorf("Import(non-strict, none) = %+v, want Code 200, 2 imported", *res)
	}

	// Import, strict, one bad record (no time): Mixpanel answers 400 naming
	// the record, and imports the others.
	good := mp.NewEvent("go_imported_mixed", user, map[string]any{"ok": true})
	good.AddTime(ago(10 * day))
	good.AddInsertID("go-imp-0005")
	bad := mp.NewEvent("go_imported_mixed", user, map[string]any{"ok": false})
	bad.AddInsertID("go-bad-0001")
	res, err = mp.Import(ctx, []*mixpanel.Event{good, bad}, mixpanel.ImportOptionsRecommend)
	var verr mixpanel.ImportFailedValidationError
	switch {
	case err == nil:
		t.Errorf("Import with a record without time in strict mode succeeded (%+v); want ImportFailedValidationError", *res)
	case !errors.As(err, &verr):
		t.Errorf("Import with a bad record: got %T %v, want ImportFailedValidationError", err, err)
	default:
		if verr.Code != 400 || verr.NumRecordsImported != 1 || verr.ApiError == "" {
			t.Errorf("ImportFailedValidationError = %+v, want code 400, 1 imported, an error message", verr)
		}
		if len(verr.FailedImportRecords) != 1 {
			t.Errorf("failed_records = %+v, want exactly the record without time", verr.FailedImportRecords)
		} else if f := verr.FailedImportRecords[0]; f.Index != 1 || f.InsertID != "go-bad-0001" || f.Field != "properties.time" || !strings.Contains(f.Message, "time") {
			t.Errorf("failed record = %+v, want index 1, insert_id go-bad-0001, field properties.time, a message about time", f)
		}
	}

	// People: POST /engage with a JSON array.
	check := func(name string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	check("PeopleSet", mp.PeopleSet(ctx, []*mixpanel.PeopleProperties{
		mixpanel.NewPeopleProperties(user, map[string]any{"$email": "go@example.com", "plan": "pro", "motto": "to the moon 🚀"}),
		mixpanel.NewPeopleProperties(user2, map[string]any{"plan": "team"}),
	}))
	check("PeopleSetOnce", mp.PeopleSetOnce(ctx, []*mixpanel.PeopleProperties{
		mixpanel.NewPeopleProperties(user, map[string]any{"first_seen": "2024-01-01"}),
	}))
	check("PeopleIncrement", mp.PeopleIncrement(ctx, user, map[string]int{"logins": 1}))
	check("PeopleUnionProperty", mp.PeopleUnionProperty(ctx, user, map[string]any{"plans": []string{"free", "pro"}}))
	check("PeopleAppendListProperty", mp.PeopleAppendListProperty(ctx, user, map[string]any{"tags": "beta"}))
	check("PeopleRemoveListProperty", mp.PeopleRemoveListProperty(ctx, user, map[string]any{"tags": "alpha"}))
	check("PeopleDeleteProperty", mp.PeopleDeleteProperty(ctx, user, []string{"old_prop"}))
	check("PeopleDeleteProfile", mp.PeopleDeleteProfile(ctx, user2, true))

	// Groups: POST /groups.
	check("GroupSet", mp.GroupSet(ctx, "company", "acme-inc", map[string]any{"name": "Acme", "employees": 50}))
	check("GroupSetOnce", mp.GroupSetOnce(ctx, "company", "acme-inc", map[string]any{"founded": 1999}))
	check("GroupUnionListProperty", mp.GroupUnionListProperty(ctx, "company", "acme-inc", map[string]any{"industries": []string{"saas"}}))
	check("GroupRemoveListProperty", mp.GroupRemoveListProperty(ctx, "company", "acme-inc", map[string]any{"industries": "retail"}))
	check("GroupDeleteProperty", mp.GroupDeleteProperty(ctx, "company", "acme-inc", []string{"legacy"}))
	check("GroupDelete", mp.GroupDelete(ctx, "company", "acme-inc"))

	// Identity: Alias posts a form to /track; Merge a form to /import.
	check("Alias", mp.Alias(ctx, "go-alias-1", user))
	check("Merge", mp.Merge(ctx, user, "$device:go-dev-2"))
	w.close()

	// What was stored: what the privacy stage made of it. Identities are
	// their pseudonyms (distinct ids, $device_id, $user_id, alias and
	// $distinct_ids share one domain, so they stay joinable), group ids
	// theirs, and personal fields ($email, name) are gone.
	events, profiles, links := splitRecords(t, s.Records("all"))
	id := s.DistinctID
	puser, puser2 := id(user), id(user2)
	lib := func(props map[string]any) map[string]any {
		props["mp_lib"] = "go"
		props["$lib_version"] = "v1.2.0"
		props["$veil_received_ms"] = w.within()
		return props
	}
	imported := func(props map[string]any) map[string]any {
		props = lib(props)
		props["$import"] = true
		return props
	}
	ev := func(name string, props map[string]any) map[string]any {
		return map[string]any{"event": name, "properties": props}
	}
	matchRecords(t, "events", events, []map[string]any{
		ev("go_signup", lib(map[string]any{
			"time": atReceipt, "distinct_id": puser,
			"plan": "free", "emoji": "lift-off 🚀", "ratio": 1.5, "count": 3,
			"list": []any{1, "a", true}, "nested": map[string]any{"k": "v"}, "none": nil,
		})),
		// Random insert ids are kept as sent.
		ev("go_timed", lib(map[string]any{"time": ms(ago(time.Hour)), "distinct_id": puser, "$insert_id": "go-ins-0001", "step": 1})),
		ev("go_timed", lib(map[string]any{"time": ms(ago(2 * time.Hour)), "distinct_id": puser, "$insert_id": "go-ins-0002", "step": 2})),
		// Simplified ID Merge: $device_id alone is "$device:<id>"; $user_id wins.
		ev("go_anonymous", lib(map[string]any{"time": atReceipt, "distinct_id": id("$device:go-dev-1"), "$device_id": id("go-dev-1")})),
		ev("go_login", lib(map[string]any{"time": atReceipt, "distinct_id": puser, "$device_id": id("go-dev-1"), "$user_id": puser})),
		ev("go_imported", imported(map[string]any{"time": ms(ago(200 * day)), "distinct_id": puser, "$insert_id": "go-imp-0001", "i": 0})),
		ev("go_imported", imported(map[string]any{"time": ms(ago(200*day + time.Minute)), "distinct_id": puser, "$insert_id": "go-imp-0002", "i": 1})),
		ev("go_imported_sa", imported(map[string]any{"time": ms(ago(50 * day)), "distinct_id": puser, "$insert_id": "go-imp-0003"})),
		ev("go_imported_lax", imported(map[string]any{"time": ms(ago(30 * day)), "distinct_id": puser, "k": "old"})),
		ev("go_imported_lax", imported(map[string]any{"time": atReceipt, "distinct_id": puser, "k": "untimed"})),
		ev("go_imported_mixed", imported(map[string]any{"time": ms(ago(10 * day)), "distinct_id": puser, "$insert_id": "go-imp-0005", "ok": true})),
		// Alias sends only distinct_id, alias and token.
		ev("$create_alias", map[string]any{"time": atReceipt, "distinct_id": puser, "alias": id("go-alias-1"), "$veil_received_ms": w.within()}),
		// $merge has no distinct_id: the first merged id is it.
		ev("$merge", map[string]any{
			"time": atReceipt, "distinct_id": puser, "$distinct_ids": []string{puser, id("$device:go-dev-2")},
			"$import": true, "$veil_received_ms": w.within(),
		}),
	})
	if got := s.counter(t, `veil_ingest_events_deduplicated_total{endpoint="track"}`); got != 1 {
		t.Errorf("track events deduplicated = %v, want 1 (the retried go-ins-0001)", got)
	}

	person := func(pid string, op string, v any) map[string]any {
		return map[string]any{"kind": "profile", "$distinct_id": pid, "$time": w.within(), op: v}
	}
	acme := s.GroupID("company", "acme-inc")
	group := func(op string, v any) map[string]any {
		return map[string]any{"kind": "profile", "$group_key": "company", "$group_id": acme, "$time": w.within(), op: v}
	}
	deleted := person(puser2, "$delete", "null")
	deleted["$ignore_alias"] = true
	matchRecords(t, "profiles", profiles, []map[string]any{
		person(puser, "$set", map[string]any{"plan": "pro", "motto": "to the moon 🚀"}), // $email dropped
		person(puser2, "$set", map[string]any{"plan": "team"}),
		person(puser, "$set_once", map[string]any{"first_seen": "2024-01-01"}),
		person(puser, "$add", map[string]any{"logins": 1}),
		person(puser, "$union", map[string]any{"plans": []string{"free", "pro"}}),
		person(puser, "$append", map[string]any{"tags": "beta"}),
		person(puser, "$remove", map[string]any{"tags": "alpha"}),
		person(puser, "$unset", []string{"old_prop"}),
		deleted,
		group("$set", map[string]any{"employees": 50}), // name dropped
		group("$set_once", map[string]any{"founded": 1999}),
		group("$union", map[string]any{"industries": []string{"saas"}}),
		group("$remove", map[string]any{"industries": "retail"}),
		group("$unset", []string{"legacy"}),
		group("$delete", "null"),
	})

	link := func(from, to, source string) map[string]any {
		return map[string]any{"kind": "identity", "from": from, "to": to, "source": source, "time": w.within()}
	}
	matchRecords(t, "identity links", links, []map[string]any{
		link(id("$device:go-dev-1"), puser, "$device_id"),
		link(id("go-alias-1"), puser, "$create_alias"),
		link(id("$device:go-dev-2"), puser, "$merge"),
	})
}
