package collector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy/pii"
	"github.com/veil-analytics/veil/internal/wire"
)

// intake turns the decoded records of one request into a batch, collecting
// a failure for each record it refuses.
type intake struct {
	c             *Collector
	ep            endpoint
	now           time.Time
	strict        bool
	importProject int64

	failures   []failure
	ignored    int
	perProject map[int64]int // records per project, for rate limits
	scratch    []byte
}

// answerScanner redacts personal data from what a refusal echoes back:
// a property name or $insert_id may hold some, and an answer must not
// carry what the privacy stage would not store. It holds no state.
var answerScanner = pii.NewScanner()

func (in *intake) refuse(idx int, insertID, field string, why reason, format string, args ...any) {
	insertID, _ = answerScanner.Redact(insertID)
	field, _ = answerScanner.Redact(field)
	msg, _ := answerScanner.Redact(fmt.Sprintf(format, args...))
	in.failures = append(in.failures, failure{
		Index: idx, InsertID: insertID, Field: field, reason: why, Message: msg,
	})
}

func (in *intake) count(project int64) {
	if in.perProject == nil {
		in.perProject = make(map[int64]int)
	}
	in.perProject[project]++
}

// project resolves a token; a lookup failure (not a miss) ends the request.
func (in *intake) project(ctx context.Context, token string) (int64, bool, *requestError) {
	id, err := in.c.projects.byToken(ctx, token)
	if errors.Is(err, ErrUnknownProject) {
		return 0, false, nil
	}
	if err != nil {
		in.c.cfg.Logger.ErrorContext(ctx, "project lookup failed", "err", err)
		return 0, false, fail(http.StatusServiceUnavailable, reasonUnavailable, "project lookup failed; retry later")
	}
	return id, true, nil
}

// maxTokenLen bounds the tokens looked up: Veil's are 32 characters, and a
// long junk token must not reach the database or the miss cache.
const maxTokenLen = 64

// Mixpanel's time floor for /import: 1971-01-01. It also splits the units:
// a number below it read as milliseconds would be before 1971, so it must
// be seconds.
const minTimeMS = 31536000000

// timeMS reads a time value (seconds or milliseconds, integer or float, or
// a string holding one) as Unix milliseconds.
func timeMS(v event.Value) (int64, bool) {
	var f float64
	switch v.Kind {
	case event.Number:
		f = v.Num
	case event.String:
		var err error
		if f, err = strconv.ParseFloat(strings.TrimSpace(v.Str), 64); err != nil {
			return 0, false
		}
	default:
		return 0, false
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 || f > 1e15 {
		return 0, false
	}
	if f < minTimeMS {
		f *= 1000
	}
	return int64(math.Round(f)), true
}

// idString reads a distinct id: a string, or a number as its decimal text.
func idString(v event.Value) (string, bool) {
	switch v.Kind {
	case event.String:
		return v.Str, true
	case event.Number:
		if v.Num == math.Trunc(v.Num) && math.Abs(v.Num) < 1<<53 {
			return strconv.FormatInt(int64(v.Num), 10), true
		}
		return strconv.FormatFloat(v.Num, 'f', -1, 64), true
	}
	return "", false
}

// invalidIDs are the distinct ids and insert ids /import refuses in strict
// mode: placeholders that would merge unrelated people.
var invalidIDs = map[string]bool{
	"00000000-0000-0000-0000-000000000000": true, "anon": true, "anonymous": true,
	"nil": true, "none": true, "null": true, "n/a": true, "na": true, "undefined": true,
	"unknown": true, "<nil>": true, "0": true, "-1": true, "true": true, "false": true,
	"[]": true, "{}": true,
}

func validInsertID(s string) bool {
	// The placeholders are at most 9 characters but for the nil UUID.
	if s == "" || len(s) > 36 || (len(s) <= 9 || len(s) == 36) && invalidIDs[strings.ToLower(s)] {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Per-value shape limits (Mixpanel's).
const (
	maxNameLen         = 255
	maxNestedKeys      = 255
	maxNestedItems     = 255
	maxNestedDepth     = 3
	maxEventListBytes  = 8 << 10
	maxProfileProps    = 2000
	maxProfileObjBytes = 256 << 10
)

// checkValue enforces Mixpanel's limits on one property value and returns a
// message naming the problem, or "".
func (in *intake) checkValue(v event.Value, maxComposite int) string {
	if v.Kind != event.Array && v.Kind != event.Object {
		return ""
	}
	if d := depth(v); d > maxNestedDepth {
		return fmt.Sprintf("is nested %d levels deep; the limit is %d", d, maxNestedDepth)
	}
	if msg := checkWidth(v); msg != "" {
		return msg
	}
	in.scratch = v.AppendJSON(in.scratch[:0])
	if len(in.scratch) > maxComposite {
		return fmt.Sprintf("is %d bytes; lists and objects are limited to %d bytes", len(in.scratch), maxComposite)
	}
	return ""
}

func depth(v event.Value) int {
	d := 0
	switch v.Kind {
	case event.Array:
		for _, it := range v.Items {
			d = max(d, depth(it))
		}
	case event.Object:
		for _, f := range v.Fields {
			d = max(d, depth(f.Value))
		}
	default:
		return 0
	}
	return d + 1
}

func checkWidth(v event.Value) string {
	switch v.Kind {
	case event.Array:
		if len(v.Items) > maxNestedItems {
			return fmt.Sprintf("has %d items; lists are limited to %d", len(v.Items), maxNestedItems)
		}
		for _, it := range v.Items {
			if msg := checkWidth(it); msg != "" {
				return msg
			}
		}
	case event.Object:
		if len(v.Fields) > maxNestedKeys {
			return fmt.Sprintf("has %d keys; objects are limited to %d", len(v.Fields), maxNestedKeys)
		}
		for _, f := range v.Fields {
			if msg := checkWidth(f.Value); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// truncate cuts s to Mixpanel's 255 characters, on a rune boundary.
func truncate(s string) string {
	if len(s) <= maxNameLen {
		return s
	}
	n := 0
	for i := range s {
		if n == maxNameLen {
			return s[:i]
		}
		n++
	}
	return s
}

func truncateValue(v *event.Value) {
	switch v.Kind {
	case event.String:
		v.Str = truncate(v.Str)
	case event.Array:
		for i := range v.Items {
			truncateValue(&v.Items[i])
		}
	case event.Object:
		for i := range v.Fields {
			truncateValue(&v.Fields[i].Value)
		}
	}
}

// truncateBatch applies Mixpanel's 255-character cut to stored strings. It
// runs after the privacy stage so that the stage scans whole values.
func truncateBatch(b *event.Batch) {
	for i := range b.Events {
		e := &b.Events[i]
		e.Name = truncate(e.Name)
		for j := range e.Props {
			truncateValue(&e.Props[j].Value)
		}
	}
	for i := range b.Profiles {
		for j := range b.Profiles[i].Ops {
			truncateValue(&b.Profiles[i].Ops[j].Value)
		}
	}
}

func validKey(k string) string {
	switch {
	case k == "":
		return "property name is empty"
	case len(k) > maxNameLen:
		return fmt.Sprintf("property name is %d bytes; the limit is %d", len(k), maxNameLen)
	case !utf8.ValidString(k):
		return "property name is not valid UTF-8"
	}
	return ""
}

// fieldName quotes a property name for a message; names are schema, not
// values, but are cut short so a message stays readable.
func fieldName(k string) string {
	if len(k) > 64 {
		k = truncateBytes(k, 64) + "…"
	}
	return k
}

func truncateBytes(s string, n int) string {
	for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// events validates /track and /import records into b.Events.
func (in *intake) events(ctx context.Context, items []wire.Item, b *event.Batch) *requestError {
	b.Events = make([]event.Event, 0, len(items))
	for idx, it := range items {
		e, ok, err := in.event(ctx, idx, it)
		if err != nil {
			return err
		}
		if !ok {
			continue
		}
		in.count(e.Project)
		b.Events = append(b.Events, e)
	}
	return nil
}

func (in *intake) event(ctx context.Context, idx int, it wire.Item) (event.Event, bool, *requestError) {
	var e event.Event
	if it.Value.Kind != event.Object {
		in.refuse(idx, "", "", reasonInvalid, "record %d is a JSON %s, not an event object", idx, it.Value.Kind)
		return e, false, nil
	}
	if it.Size > in.c.cfg.MaxRecordBytes {
		in.refuse(idx, "", "", reasonTooLarge, "event is %d bytes; the limit is %d bytes", it.Size, in.c.cfg.MaxRecordBytes)
		return e, false, nil
	}
	name, _ := event.Get(it.Value.Fields, "event")
	props, hasProps := event.Get(it.Value.Fields, "properties")
	if hasProps && props.Kind != event.Object && props.Kind != event.Null {
		in.refuse(idx, "", "properties", reasonInvalid, "properties must be an object, not a JSON %s", props.Kind)
		return e, false, nil
	}
	insertVal, hasInsert := event.Get(props.Fields, "$insert_id")
	insertID := ""
	if hasInsert && insertVal.Kind == event.String {
		insertID = insertVal.Str
	}
	if hasInsert && insertVal.Kind != event.Null {
		if insertVal.Kind != event.String || !validInsertID(insertVal.Str) {
			in.refuse(idx, "", "properties.$insert_id", reasonInvalid, "properties.$insert_id must be a string of 1 to 36 characters from [A-Za-z0-9-]")
			return e, false, nil
		}
	} else if in.strict {
		in.refuse(idx, "", "properties.$insert_id", reasonInvalid, "properties.$insert_id is required")
		return e, false, nil
	}
	e.InsertID = insertID
	if name.Kind != event.String || name.Str == "" {
		in.refuse(idx, insertID, "event", reasonInvalid, "event must be a non-empty string")
		return e, false, nil
	}
	e.Name = name.Str
	if _, ok := event.Get(props.Fields, "$ignore"); ok {
		in.ignored++
		return e, false, nil
	}

	// Project.
	if in.ep == epImport {
		e.Project = in.importProject
	} else {
		tok, ok := event.Get(props.Fields, "token")
		if !ok || tok.Kind != event.String || tok.Str == "" {
			in.refuse(idx, insertID, "properties.token", reasonNoToken, "properties.token is required: the project token")
			return e, false, nil
		}
		if len(tok.Str) > maxTokenLen {
			in.refuse(idx, insertID, "properties.token", reasonUnknownToken, "properties.token is not the token of any project")
			return e, false, nil
		}
		id, found, err := in.project(ctx, tok.Str)
		if err != nil {
			return e, false, err
		}
		if !found {
			in.refuse(idx, insertID, "properties.token", reasonUnknownToken, "properties.token is not the token of any project")
			return e, false, nil
		}
		e.Project = id
		if e.Name == "$merge" {
			in.refuse(idx, insertID, "event", reasonMergeEndpoint, "$merge events are only accepted on /import (with the project secret)")
			return e, false, nil
		}
	}

	// Time.
	nowMS := in.now.UnixMilli()
	e.Received = nowMS
	tv, hasTime := event.Get(props.Fields, "time")
	switch {
	case !hasTime || tv.Kind == event.Null:
		if in.strict {
			in.refuse(idx, insertID, "properties.time", reasonBadTime, "properties.time is required on /import")
			return e, false, nil
		}
		e.Time = nowMS
	default:
		t, ok := timeMS(tv)
		if !ok {
			in.refuse(idx, insertID, "properties.time", reasonBadTime, "'properties.time' is invalid: must be specified as seconds or milliseconds since epoch")
			return e, false, nil
		}
		switch {
		case in.ep == epImport && t < minTimeMS:
			in.refuse(idx, insertID, "properties.time", reasonBadTime, "properties.time is before 1971-01-01")
			return e, false, nil
		case in.ep == epImport && t > nowMS+time.Hour.Milliseconds():
			in.refuse(idx, insertID, "properties.time", reasonBadTime, "properties.time is more than 1 hour in the future")
			return e, false, nil
		case in.ep == epTrack && t < nowMS-in.c.cfg.TrackMaxAge.Milliseconds():
			in.refuse(idx, insertID, "properties.time", reasonTooOld,
				"properties.time (%s) is more than %s old; /track accepts recent events only, send historical events to /import",
				time.UnixMilli(t).UTC().Format(time.RFC3339), in.c.cfg.TrackMaxAge)
			return e, false, nil
		case t > nowMS:
			t = nowMS // clock skew: Mixpanel overwrites future times with the present
		}
		e.Time = t
	}

	// Identity: Simplified ID Merge derives distinct_id from $user_id, else $device_id.
	did, hasDID := event.Get(props.Fields, "distinct_id")
	userID, hasUser := event.Get(props.Fields, "$user_id")
	deviceID, hasDevice := event.Get(props.Fields, "$device_id")
	switch {
	case hasUser && userID.Kind != event.Null:
		s, ok := idString(userID)
		if !ok {
			in.refuse(idx, insertID, "properties.$user_id", reasonInvalid, "properties.$user_id must be a string or number")
			return e, false, nil
		}
		e.DistinctID = s
	case hasDevice && deviceID.Kind != event.Null:
		s, ok := idString(deviceID)
		if !ok {
			in.refuse(idx, insertID, "properties.$device_id", reasonInvalid, "properties.$device_id must be a string or number")
			return e, false, nil
		}
		e.DistinctID = "$device:" + s
	case hasDID && did.Kind != event.Null:
		s, ok := idString(did)
		if !ok {
			in.refuse(idx, insertID, "properties.distinct_id", reasonInvalid, "properties.distinct_id must be a string or number, not a JSON %s", did.Kind)
			return e, false, nil
		}
		e.DistinctID = s
	case e.Name == "$merge":
		// Mixpanel's $merge carries no distinct_id: the first merged id is it.
		if ids, ok := event.Get(props.Fields, "$distinct_ids"); ok && ids.Kind == event.Array && len(ids.Items) > 0 {
			e.DistinctID, _ = idString(ids.Items[0])
		}
	case in.strict:
		in.refuse(idx, insertID, "properties.distinct_id", reasonInvalid, "properties.distinct_id is required on /import")
		return e, false, nil
	}
	if in.strict && invalidIDs[strings.ToLower(e.DistinctID)] {
		in.refuse(idx, insertID, "properties.distinct_id", reasonInvalid, "properties.distinct_id is a placeholder value that would merge unrelated users")
		return e, false, nil
	}

	// Properties, minus the reserved ones lifted into fields.
	// Filter in place: the decoded item is not used after this.
	e.Props = props.Fields[:0]
	for _, f := range props.Fields {
		switch f.Key {
		case "token", "time", "distinct_id", "$insert_id":
			continue
		}
		if msg := validKey(f.Key); msg != "" {
			in.refuse(idx, insertID, "properties", reasonInvalid, "%s", msg)
			return e, false, nil
		}
		if msg := in.checkValue(f.Value, maxEventListBytes); msg != "" {
			in.refuse(idx, insertID, "properties."+fieldName(f.Key), reasonInvalid, "properties.%s %s", fieldName(f.Key), msg)
			return e, false, nil
		}
		e.Props = append(e.Props, f)
	}
	if len(e.Props) > in.c.cfg.MaxProperties {
		in.refuse(idx, insertID, "properties", reasonTooManyProps, "event has %d properties; the limit is %d", len(e.Props), in.c.cfg.MaxProperties)
		return e, false, nil
	}
	if in.ep == epImport {
		// Mixpanel marks imported events; it is not one of the client's properties.
		e.Props = append(e.Props, event.Field{Key: "$import", Value: event.BoolValue(true)})
	}
	return e, true, nil
}
