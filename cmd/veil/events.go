package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/meta"
	"github.com/veil-analytics/veil/internal/store"
)

// runEvents streams what the log holds for a project, one JSON object a
// line. Events print in Mixpanel's export shape with time in milliseconds.
func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("events", "events --data DIR --project ID [--kind event|profile|identity|all] --json", stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	kind := fs.String("kind", "event", "what to print: event, profile, identity or all")
	fs.Bool("json", true, "print JSON lines (the only format)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if err := requireData(*data); err != nil {
		return err
	}
	if *project <= 0 {
		return errors.New("--project is required: a project id (see veil project list)")
	}
	switch *kind {
	case "event", "profile", "identity", "all":
	default:
		return fmt.Errorf("--kind %q: want event, profile, identity or all", *kind)
	}
	db, err := openExistingMeta(ctx, *data)
	if err != nil {
		return err
	}
	_, err = db.ProjectByID(ctx, *project)
	db.Close()
	if errors.Is(err, meta.ErrNotFound) {
		return fmt.Errorf("no project %d in %s (see veil project list)", *project, *data)
	}
	if err != nil {
		return err
	}
	want := func(k string) bool { return *kind == "all" || *kind == k }
	w := bufio.NewWriterSize(stdout, 1<<16)
	var buf []byte
	emit := func(b []byte) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := w.Write(append(b, '\n'))
		return err
	}
	v := store.Visitor{}
	if want("event") {
		v.Event = func(e *event.Event) error {
			if e.Project != *project {
				return nil
			}
			buf = appendEventJSON(buf[:0], e, *kind == "all")
			return emit(buf)
		}
	}
	if want("profile") {
		v.Profile = func(u *event.ProfileUpdate) error {
			if u.Project != *project {
				return nil
			}
			buf = appendProfileJSON(buf[:0], u)
			return emit(buf)
		}
	}
	if want("identity") {
		v.Identity = func(l *event.IdentityLink) error {
			if l.Project != *project {
				return nil
			}
			buf = appendIdentityJSON(buf[:0], l)
			return emit(buf)
		}
	}
	if err := store.Scan(*data, *project, v); err != nil {
		return err
	}
	return w.Flush()
}

// appendEventJSON writes {"event":..,"properties":{time,distinct_id,$insert_id,...}}.
func appendEventJSON(b []byte, e *event.Event, withKind bool) []byte {
	b = append(b, '{')
	if withKind {
		b = append(b, `"kind":"event",`...)
	}
	b = append(b, `"event":`...)
	b = event.AppendString(b, e.Name)
	b = append(b, `,"properties":{"time":`...)
	b = strconv.AppendInt(b, e.Time, 10)
	b = append(b, `,"distinct_id":`...)
	b = event.AppendString(b, e.DistinctID)
	if e.InsertID != "" {
		b = append(b, `,"$insert_id":`...)
		b = event.AppendString(b, e.InsertID)
	}
	b = append(b, `,"$veil_received_ms":`...)
	b = strconv.AppendInt(b, e.Received, 10)
	for _, f := range e.Props {
		b = append(b, ',')
		b = event.AppendString(b, f.Key)
		b = append(b, ':')
		b = f.Value.AppendJSON(b)
	}
	return append(b, "}}"...)
}

func appendProfileJSON(b []byte, u *event.ProfileUpdate) []byte {
	b = append(b, `{"kind":"profile"`...)
	if u.IsGroup() {
		b = append(b, `,"$group_key":`...)
		b = event.AppendString(b, u.GroupKey)
		b = append(b, `,"$group_id":`...)
		b = event.AppendString(b, u.GroupID)
	} else {
		b = append(b, `,"$distinct_id":`...)
		b = event.AppendString(b, u.DistinctID)
	}
	b = append(b, `,"$time":`...)
	b = strconv.AppendInt(b, u.Time, 10)
	if u.IgnoreTime {
		b = append(b, `,"$ignore_time":true`...)
	}
	if u.IgnoreAlias {
		b = append(b, `,"$ignore_alias":true`...)
	}
	for _, op := range u.Ops {
		b = append(b, ',')
		b = event.AppendString(b, op.Op)
		b = append(b, ':')
		b = op.Value.AppendJSON(b)
	}
	return append(b, '}')
}

func appendIdentityJSON(b []byte, l *event.IdentityLink) []byte {
	b = append(b, `{"kind":"identity","from":`...)
	b = event.AppendString(b, l.From)
	b = append(b, `,"to":`...)
	b = event.AppendString(b, l.To)
	b = append(b, `,"source":`...)
	b = event.AppendString(b, l.Source)
	b = append(b, `,"time":`...)
	b = strconv.AppendInt(b, l.Time, 10)
	return append(b, '}')
}
