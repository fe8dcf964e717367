package collector

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/privacy"
	"github.com/veil-analytics/veil/internal/wire"
)

// DecodeEvent decodes one Mixpanel event object ({"event": ...,
// "properties": {...}}) into an event of projectID with the collector's own
// code, as /import does without ?strict=1: distinct_id (or $user_id, else
// "$device:"+$device_id), time (seconds or milliseconds; now when missing)
// and $insert_id are lifted out of the properties, token is ignored and
// Mixpanel's limits apply. Unlike /import it adds no "$import" property.
// The error says why the collector would refuse the event. It is for
// offline tools (veil privacy explain); the collector does not call it.
func DecodeEvent(projectID int64, raw []byte, now time.Time) (event.Event, error) {
	if b := bytes.TrimLeft(raw, " \t\r\n"); len(b) == 0 || b[0] != '{' {
		return event.Event{}, errors.New("not a JSON object: want one event object {\"event\": ..., \"properties\": {...}}")
	}
	var cfg Config
	cfg.setDefaults()
	items, err := wire.ParseItems(raw, wire.ParseOptions{
		MaxMembers: maxContainerMembers,
		MaxValues:  cfg.MaxBatch * maxValuesPerRecord,
	})
	if err != nil {
		return event.Event{}, err
	}
	in := &intake{c: &Collector{cfg: cfg}, ep: epImport, now: now, importProject: projectID}
	e, ok, rerr := in.event(context.Background(), 0, items[0])
	switch {
	case rerr != nil: // only project lookups fail this way, and /import does none
		return event.Event{}, rerr
	case ok:
		if n := len(e.Props); n > 0 && e.Props[n-1].Key == "$import" {
			e.Props = e.Props[:n-1]
		}
		return e, nil
	case len(in.failures) > 0:
		return event.Event{}, errors.New(in.failures[0].Message)
	case in.ignored > 0:
		return event.Event{}, errors.New("properties.$ignore is set: the collector ignores the event")
	}
	return event.Event{}, errors.New("event refused")
}

// TruncateEvent cuts e's name and string values to Mixpanel's 255
// characters, as the collector does after the privacy stage before storing.
func TruncateEvent(e *event.Event) {
	b := event.Batch{Events: []event.Event{*e}}
	truncateBatch(&b)
	*e = b.Events[0]
}

// importLinkMemory bounds the identity links an Importer remembers to
// skip repeats of.
const importLinkMemory = 1 << 16

// Importer decodes Mixpanel export records for the offline bulk importer
// exactly as /import (without strict=1) decodes a request's records, and
// passes them through the privacy stage. It is safe for concurrent use.
type Importer struct {
	c       *Collector
	project int64
}

// NewImporter returns an Importer for projectID through the stage p.
func NewImporter(projectID int64, p Privacy) *Importer {
	var cfg Config
	cfg.setDefaults()
	return &Importer{c: &Collector{cfg: cfg, privacy: p, links: newLinkFilter(importLinkMemory)}, project: projectID}
}

// ImportResult says what became of the records of one Decode call.
type ImportResult struct {
	// Refused counts refused records by the message /import would answer,
	// with the record index taken out.
	Refused map[string]int
	// Dropped counts events the privacy stage dropped or that carried $ignore.
	Dropped int
}

// Decode turns records (one Mixpanel event object each) into the batch the
// collector would store: events (marked "$import": true, as /import marks
// them) and identity links, privacy applied.
func (im *Importer) Decode(ctx context.Context, items []wire.Item, now time.Time) (event.Batch, ImportResult, error) {
	in := &intake{c: im.c, ep: epImport, now: now, importProject: im.project}
	var b event.Batch
	var res ImportResult
	if err := in.events(ctx, items, &b); err != nil {
		return b, res, errors.New(err.msg)
	}
	var r result
	if err := im.c.applyPrivacy(ctx, &privacy.Request{}, &b, &r); err != nil {
		return b, res, err
	}
	res.Dropped = in.ignored + r.ignored
	for _, f := range in.failures {
		if res.Refused == nil {
			res.Refused = map[string]int{}
		}
		res.Refused[f.Message]++
	}
	return b, res, nil
}
