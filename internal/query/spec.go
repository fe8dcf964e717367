package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// AnyEvent selects every event.
const AnyEvent = "$any_event"

// Range is a report's date range: whole days From..To, both inclusive, in
// TimeZone (the project's zone when empty).
type Range struct {
	From     string `json:"from"`
	To       string `json:"to"`
	TimeZone string `json:"timezone,omitempty"`
}

// Filter is one condition on an event property, a user-profile property or
// cohort membership.
type Filter struct {
	// Property is the property's name (not for cohort filters).
	Property string `json:"property,omitempty"`
	// Source is "event" (the default) or "user" (the profile).
	Source string `json:"source,omitempty"`
	// Op is eq, neq, contains, not_contains, in, not_in, gt, gte, lt, lte,
	// set, not_set, in_cohort or not_in_cohort.
	Op string `json:"op"`
	// Value is the operand of eq, neq, contains, not_contains and the
	// comparisons: a string, number or boolean.
	Value any `json:"value,omitempty"`
	// Values are the operands of in and not_in.
	Values []any `json:"values,omitempty"`
	// Cohort is the saved cohort of in_cohort and not_in_cohort.
	Cohort int64 `json:"cohort,omitempty"`
}

// Step selects events: one event name (or AnyEvent) and filters on them.
type Step struct {
	Event   string   `json:"event"`
	Filters []Filter `json:"filters,omitempty"`
}

// Breakdown splits a report by one property, or by membership of cohorts.
type Breakdown struct {
	Property string  `json:"property,omitempty"`
	Source   string  `json:"source,omitempty"` // event (default) or user
	Cohorts  []int64 `json:"cohorts,omitempty"`
}

// Duration is a length of time in a unit.
type Duration struct {
	Value int    `json:"value"`
	Unit  string `json:"unit"` // second, minute, hour, day, week
}

// Series is one line of an Insights report.
type Series struct {
	Step
	// Measure is total, unique, sum, avg, min, max, median, p90 (of
	// Property over events), per_user (Property summed per user, or the
	// event count per user, then PerUser across users) or distribution
	// (users by their number of events).
	Measure  string `json:"measure,omitempty"`
	Property string `json:"property,omitempty"`
	PerUser  string `json:"per_user,omitempty"` // avg, median, min, max, p90, sum
}

// Formula is arithmetic over series letters (A is the first series).
type Formula struct {
	Name       string `json:"name,omitempty"`
	Expression string `json:"expression"`
}

// InsightsSpec asks for an Insights report.
type InsightsSpec struct {
	Range
	// Interval is hour, day (the default), week, month or none (the range
	// as one bucket).
	Interval   string      `json:"interval,omitempty"`
	Series     []Series    `json:"series"`
	Filters    []Filter    `json:"filters,omitempty"`
	Breakdowns []Breakdown `json:"breakdowns,omitempty"`
	// Limit is how many breakdown segments are kept (by the first series'
	// total), the rest folded into "$other"; default 25, at most 1000.
	Limit           int       `json:"limit,omitempty"`
	ComparePrevious bool      `json:"compare_previous,omitempty"`
	Formulas        []Formula `json:"formulas,omitempty"`
}

// Exclusion drops attempts in which an event happens between two steps.
type Exclusion struct {
	Step
	// After and Before are 1-based step numbers; the exclusion applies
	// after step After and before step Before (defaults: 1 and the last).
	After  int `json:"after,omitempty"`
	Before int `json:"before,omitempty"`
}

// FunnelSpec asks for a Funnels report.
type FunnelSpec struct {
	Range
	Steps []Step `json:"steps"`
	// Window is the conversion window from the first step (default 7 days,
	// at most 366 days).
	Window *Duration `json:"window,omitempty"`
	// Order is ordered (the default), strict or any.
	Order        string      `json:"order,omitempty"`
	Exclusions   []Exclusion `json:"exclusions,omitempty"`
	HoldConstant []string    `json:"hold_constant,omitempty"`
	Breakdown    *Breakdown  `json:"breakdown,omitempty"`
	Filters      []Filter    `json:"filters,omitempty"`
	// Interval (day, week or month) adds conversion over time, one funnel
	// per interval of the first step.
	Interval string `json:"interval,omitempty"`
	Limit    int    `json:"limit,omitempty"`
}

// RetentionSpec asks for a Retention report.
type RetentionSpec struct {
	Range
	Birth  Step  `json:"birth"`
	Return *Step `json:"return,omitempty"` // default: any event
	// Type is first_time (the default: cohorted by the first birth event
	// ever) or recurring (every interval with a birth event).
	Type string `json:"type,omitempty"`
	// Unit is day, week (the default) or month; Periods how many after
	// the birth one (default 8, at most 120).
	Unit    string `json:"unit,omitempty"`
	Periods int    `json:"periods,omitempty"`
	// Mode is on (the default) or on_or_after.
	Mode string `json:"mode,omitempty"`
	// Brackets are rolling (the default: period k is [birth + k units,
	// birth + k+1 units)) or calendar (period k is the k-th calendar unit
	// after the birth one).
	Brackets  string     `json:"brackets,omitempty"`
	Filters   []Filter   `json:"filters,omitempty"`
	Breakdown *Breakdown `json:"breakdown,omitempty"`
	Limit     int        `json:"limit,omitempty"`
}

// FlowsSpec asks for a Flows report.
type FlowsSpec struct {
	Range
	Anchor Step `json:"anchor"`
	// Direction is after (the default) or before the anchor.
	Direction string `json:"direction,omitempty"`
	// Steps is the path length, 1 to 10 (default 3).
	Steps int `json:"steps,omitempty"`
	// CollapseRepeats folds consecutive repeats of an event into one.
	CollapseRepeats bool `json:"collapse_repeats,omitempty"`
	// SessionGapMinutes ends a path at a longer pause (default 30; -1: no
	// limit).
	SessionGapMinutes int `json:"session_gap_minutes,omitempty"`
	// IncludeEvents, when set, are the only events on paths;
	// ExcludeEvents never appear on them.
	IncludeEvents []string `json:"include_events,omitempty"`
	ExcludeEvents []string `json:"exclude_events,omitempty"`
	Filters       []Filter `json:"filters,omitempty"`
	// TopEvents is how many events per step are nodes of their own (the
	// rest are "$other"); default 10. TopPaths is how many full paths are
	// listed; default 50.
	TopEvents int `json:"top_events,omitempty"`
	TopPaths  int `json:"top_paths,omitempty"`
}

// CohortDefinition is a saved set of users, evaluated when a report runs.
type CohortDefinition struct {
	// Op combines Conditions: and (the default) or or.
	Op         string            `json:"op,omitempty"`
	Conditions []CohortCondition `json:"conditions"`
}

// CohortCondition is one test of a user.
type CohortCondition struct {
	// Type is event (did an event, counted), property (a profile
	// property, with Filter), cohort (membership of another cohort) or
	// group (nested Op and Conditions).
	Type string `json:"type"`

	// Event conditions: the user did Step between From and To (dates) or
	// in the LastDays before the report runs, a number of times compared
	// by CountOp (at_least, the default, at_most or exactly) with Count
	// (default 1). Did not do: at_most 0.
	Step
	CountOp  string `json:"count_op,omitempty"`
	Count    *int   `json:"count,omitempty"`
	LastDays int    `json:"last_days,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`

	// Property conditions.
	Filter *Filter `json:"filter,omitempty"`

	// Cohort conditions: membership (In true) or not.
	Cohort int64 `json:"cohort,omitempty"`
	In     *bool `json:"in,omitempty"`

	// Group conditions.
	Op         string            `json:"op,omitempty"`
	Conditions []CohortCondition `json:"conditions,omitempty"`
}

// SpecError is a report spec the engines refuse, naming the field as a
// JSON pointer ("/steps/2/event").
type SpecError struct {
	Pointer string
	Detail  string
}

func (e *SpecError) Error() string {
	if e.Pointer == "" {
		return "spec: " + e.Detail
	}
	return "spec " + e.Pointer + ": " + e.Detail
}

// Field is the JSON pointer of the offending field.
func (e *SpecError) Field() string { return e.Pointer }

func specErr(ptr, format string, args ...any) error {
	return &SpecError{Pointer: ptr, Detail: fmt.Sprintf(format, args...)}
}

// decodeSpec reads one JSON object into v, refusing unknown fields and
// trailing data.
func decodeSpec(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		var ute *json.UnmarshalTypeError
		var se *json.SyntaxError
		switch {
		case errors.As(err, &ute):
			return specErr("/"+strings.ReplaceAll(ute.Field, ".", "/"), "must be %s, not a JSON %s", jsonKind(ute.Type.Kind().String()), ute.Value)
		case errors.As(err, &se):
			return specErr("", "malformed JSON at byte %d: %v", se.Offset, err)
		case errors.Is(err, io.EOF):
			return specErr("", "empty body: a JSON object is required")
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			return specErr("/"+name, "unknown field %q", name)
		}
		return specErr("", "%v", err)
	}
	if dec.More() {
		return specErr("", "trailing data after the JSON object")
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "int", "int64", "float64":
		return "a number"
	case "bool":
		return "a boolean"
	case "slice":
		return "an array"
	case "struct", "map", "ptr":
		return "an object"
	}
	return goKind
}

// window is a resolved date range in Unix ms, [From, To), with its zone.
type window struct {
	From, To int64
	Loc      *time.Location
}

const dateLayout = "2006-01-02"

// resolve checks a Range and returns it in Unix ms.
func (r Range) resolve(defaultTZ string, ptr string) (window, error) {
	tz := r.TimeZone
	if tz == "" {
		tz = defaultTZ
	}
	if tz == "" {
		tz = "UTC"
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return window{}, specErr(ptr+"/timezone", "unknown time zone %q", tz)
	}
	if r.From == "" {
		return window{}, specErr(ptr+"/from", "required (a date, YYYY-MM-DD)")
	}
	if r.To == "" {
		return window{}, specErr(ptr+"/to", "required (a date, YYYY-MM-DD)")
	}
	from, err := time.ParseInLocation(dateLayout, r.From, loc)
	if err != nil {
		return window{}, specErr(ptr+"/from", "%q is not a date (YYYY-MM-DD)", r.From)
	}
	to, err := time.ParseInLocation(dateLayout, r.To, loc)
	if err != nil {
		return window{}, specErr(ptr+"/to", "%q is not a date (YYYY-MM-DD)", r.To)
	}
	if to.Before(from) {
		return window{}, specErr(ptr+"/to", "%s is before from (%s)", r.To, r.From)
	}
	if to.Sub(from) > 3*366*24*time.Hour {
		return window{}, specErr(ptr+"/to", "the range is longer than 3 years")
	}
	end := time.Date(to.Year(), to.Month(), to.Day()+1, 0, 0, 0, 0, loc)
	return window{From: from.UnixMilli(), To: end.UnixMilli(), Loc: loc}, nil
}

// millis is d in milliseconds.
func (d Duration) millis(ptr string, max time.Duration) (int64, error) {
	var unit time.Duration
	switch d.Unit {
	case "second":
		unit = time.Second
	case "minute":
		unit = time.Minute
	case "hour":
		unit = time.Hour
	case "day":
		unit = 24 * time.Hour
	case "week":
		unit = 7 * 24 * time.Hour
	default:
		return 0, specErr(ptr+"/unit", "must be second, minute, hour, day or week, not %q", d.Unit)
	}
	if d.Value <= 0 {
		return 0, specErr(ptr+"/value", "must be positive")
	}
	if time.Duration(d.Value) > max/unit {
		return 0, specErr(ptr, "longer than %d days", int(max/(24*time.Hour)))
	}
	return (time.Duration(d.Value) * unit).Milliseconds(), nil
}
