package query

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/scan/scantest"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata/golden from the engines' answers")

// goldenData is a small fixed data set: 60 users over two weeks of
// March 2024 (across the US DST change), a signup funnel, page views
// with plan, country and amount properties, and profiles.
func goldenData() ([]scantest.Event, map[uint64]map[string]event.Value) {
	r := rand.New(rand.NewPCG(2024, 3))
	t0 := time.Date(2024, 3, 4, 8, 0, 0, 0, time.UTC).UnixMilli()
	countries := []string{"US", "DE", "FR", "IN"}
	var evs []scantest.Event
	profiles := map[uint64]map[string]event.Value{}
	for u := uint64(1); u <= 60; u++ {
		t := t0 + r.Int64N(5*86_400_000)
		country := countries[r.IntN(len(countries))]
		plan := []string{"free", "free", "pro"}[r.IntN(3)]
		if u%4 != 0 {
			profiles[u] = map[string]event.Value{"plan": event.StringValue(plan), "age": event.NumberValue(float64(18 + r.IntN(50)))}
		}
		add := func(name string, props map[string]event.Value) {
			t += 1000 + r.Int64N(6*3_600_000)
			evs = append(evs, scantest.Event{User: u, Time: t, Name: name, Props: props})
		}
		base := map[string]event.Value{"country": event.StringValue(country), "plan": event.StringValue(plan)}
		add("signup", base)
		for range 1 + r.IntN(8) {
			add("page_view", map[string]event.Value{"country": event.StringValue(country), "path": event.StringValue([]string{"/", "/docs", "/pricing"}[r.IntN(3)])})
		}
		if r.IntN(3) > 0 {
			add("activate", base)
			for range r.IntN(4) {
				add("purchase", map[string]event.Value{"amount": event.NumberValue(float64(5 * (1 + r.IntN(20)))), "plan": event.StringValue(plan)})
			}
		}
		if r.IntN(4) == 0 {
			add("logout", nil)
		}
	}
	return evs, profiles
}

// goldenCohorts are the saved cohorts the golden specs use.
type goldenCohorts map[int64][2]string

func (g goldenCohorts) Cohort(_ context.Context, id int64) (string, []byte, error) {
	c, ok := g[id]
	if !ok {
		return "", nil, ErrNoCohort
	}
	return c[0], []byte(c[1]), nil
}

// TestGolden pins the answer of every report option on goldenData: a
// change in any answer shows as a diff of testdata/golden (go test
// -run TestGolden -update rewrites them after review).
func TestGolden(t *testing.T) {
	const r = `"from":"2024-03-04","to":"2024-03-17"`
	cases := []struct{ name, kind, spec string }{
		{"insights_total_day", "insights", `{` + r + `,"series":[{"event":"page_view"}]}`},
		{"insights_unique_week_tz", "insights", `{` + r + `,"timezone":"America/New_York","interval":"week","series":[{"event":"page_view","measure":"unique"}]}`},
		{"insights_hour", "insights", `{"from":"2024-03-10","to":"2024-03-10","timezone":"America/New_York","interval":"hour","series":[{"event":"$any_event"}]}`},
		{"insights_month_none", "insights", `{` + r + `,"interval":"month","series":[{"event":"purchase","measure":"sum","property":"amount"}]}`},
		{"insights_property_measures", "insights", `{` + r + `,"interval":"none","series":[{"event":"purchase","measure":"avg","property":"amount"},{"event":"purchase","measure":"min","property":"amount"},{"event":"purchase","measure":"max","property":"amount"},{"event":"purchase","measure":"median","property":"amount"},{"event":"purchase","measure":"p90","property":"amount"}]}`},
		{"insights_per_user", "insights", `{` + r + `,"interval":"week","series":[{"event":"page_view","measure":"per_user","per_user":"avg"},{"event":"purchase","measure":"per_user","property":"amount","per_user":"median"},{"event":"page_view","measure":"per_user","per_user":"p90"}]}`},
		{"insights_distribution", "insights", `{` + r + `,"series":[{"event":"page_view","measure":"distribution"}]}`},
		{"insights_breakdown_other", "insights", `{` + r + `,"interval":"week","series":[{"event":"page_view","measure":"unique"}],"breakdowns":[{"property":"country"}],"limit":2}`},
		{"insights_two_breakdowns_user", "insights", `{` + r + `,"interval":"none","series":[{"event":"purchase","measure":"total"}],"breakdowns":[{"property":"plan","source":"user"},{"property":"amount"}],"limit":5}`},
		{"insights_filters", "insights", `{` + r + `,"interval":"none","series":[{"event":"page_view","filters":[{"property":"path","op":"contains","value":"DOC"}]}],"filters":[{"property":"country","op":"in","values":["US","DE"]},{"property":"age","source":"user","op":"gte","value":30},{"property":"plan","source":"user","op":"set"}]}`},
		{"insights_compare_formula", "insights", `{` + r + `,"interval":"week","series":[{"event":"activate","measure":"unique"},{"event":"signup","measure":"unique"}],"compare_previous":true,"formulas":[{"name":"activation","expression":"A / B * 100"}]}`},
		{"insights_cohort_breakdown", "insights", `{` + r + `,"interval":"none","series":[{"event":"page_view","measure":"unique"}],"breakdowns":[{"cohorts":[1,2]}]}`},
		{"insights_threshold", "insights", `{` + r + `,"interval":"week","series":[{"event":"purchase","measure":"unique"}],"breakdowns":[{"property":"plan"}]}`},
		{"funnels_ordered", "funnels", `{` + r + `,"steps":[{"event":"signup"},{"event":"activate"},{"event":"purchase"}]}`},
		{"funnels_window_hours", "funnels", `{` + r + `,"steps":[{"event":"signup"},{"event":"activate"}],"window":{"value":6,"unit":"hour"}}`},
		{"funnels_strict", "funnels", `{` + r + `,"steps":[{"event":"signup"},{"event":"page_view"},{"event":"page_view"}],"order":"strict"}`},
		{"funnels_any", "funnels", `{` + r + `,"steps":[{"event":"purchase"},{"event":"activate"},{"event":"logout"}],"order":"any"}`},
		{"funnels_exclusion", "funnels", `{` + r + `,"steps":[{"event":"signup"},{"event":"activate"},{"event":"purchase"}],"exclusions":[{"event":"logout","after":1,"before":3}]}`},
		{"funnels_hold_constant", "funnels", `{` + r + `,"steps":[{"event":"signup"},{"event":"activate"}],"hold_constant":["plan"]}`},
		{"funnels_breakdown_over_time", "funnels", `{` + r + `,"steps":[{"event":"signup"},{"event":"purchase","filters":[{"property":"amount","op":"gt","value":20}]}],"breakdown":{"property":"country"},"limit":2,"interval":"week"}`},
		{"funnels_user_filter", "funnels", `{` + r + `,"steps":[{"event":"signup"},{"event":"activate"}],"filters":[{"op":"in_cohort","cohort":2}]}`},
		{"retention_first_week", "retention", `{` + r + `,"birth":{"event":"signup"},"unit":"week","periods":3}`},
		{"retention_day_on_or_after", "retention", `{` + r + `,"birth":{"event":"signup"},"return":{"event":"page_view"},"unit":"day","periods":7,"mode":"on_or_after"}`},
		{"retention_recurring_calendar", "retention", `{` + r + `,"birth":{"event":"page_view"},"type":"recurring","unit":"day","periods":5,"brackets":"calendar"}`},
		{"retention_month_breakdown", "retention", `{` + r + `,"birth":{"event":"signup"},"unit":"month","periods":2,"breakdown":{"property":"country"}}`},
		{"flows_after", "flows", `{` + r + `,"anchor":{"event":"signup"},"steps":3}`},
		{"flows_before_collapse", "flows", `{` + r + `,"anchor":{"event":"purchase"},"direction":"before","steps":2,"collapse_repeats":true,"session_gap_minutes":-1}`},
		{"flows_exclude_top", "flows", `{` + r + `,"anchor":{"event":"signup"},"steps":4,"exclude_events":["page_view"],"top_events":2,"top_paths":3,"session_gap_minutes":600}`},
		{"flows_include", "flows", `{` + r + `,"anchor":{"event":"signup"},"steps":2,"include_events":["activate","purchase"]}`},
	}
	evs, profiles := goldenData()
	src := scantest.New(evs, profiles)
	cohorts := goldenCohorts{
		1: {"buyers", `{"conditions":[{"type":"event","event":"purchase","count":2,"from":"2024-03-01","to":"2024-03-31"}]}`},
		2: {"pro or quiet", `{"op":"or","conditions":[{"type":"property","filter":{"property":"plan","op":"eq","value":"pro"}},{"type":"event","event":"purchase","count_op":"at_most","count":0}]}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := Env{TimeZone: "UTC", Cohorts: cohorts, Now: time.Date(2024, 3, 20, 0, 0, 0, 0, time.UTC), Workers: 2}
			if c.name == "insights_threshold" {
				env.MinGroupSize = 12
			}
			var got []byte
			// Fast paths and general ones (Insights from rows or from
			// gathered users, plain funnels by a walk or not): the same.
			for _, general := range []bool{false, true} {
				env.generalOnly = general
				res, err := Run(context.Background(), src, env, c.kind, []byte(c.spec))
				if err != nil {
					t.Fatal(err)
				}
				js, err := json.MarshalIndent(res, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				js = append(js, '\n')
				if got != nil && !bytes.Equal(got, js) {
					t.Fatalf("the per-user pass answers otherwise than the row pass: %s", firstDiff(got, js))
				}
				got = js
			}
			file := filepath.Join("testdata", "golden", c.name+".json")
			if *updateGolden {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s changed; the answer now:\n%s", file, firstDiff(want, got))
			}
		})
	}
}

// firstDiff shows where two answers first differ.
func firstDiff(a, b []byte) string {
	la, lb := bytes.Split(a, []byte("\n")), bytes.Split(b, []byte("\n"))
	for i := 0; i < len(la) && i < len(lb); i++ {
		if !bytes.Equal(la[i], lb[i]) {
			return fmt.Sprintf("line %d: want %s\n          got  %s", i+1, la[i], lb[i])
		}
	}
	return fmt.Sprintf("lengths differ: %d lines, want %d", len(lb), len(la))
}
