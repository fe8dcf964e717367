package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/veil-analytics/veil/internal/collector"
	"github.com/veil-analytics/veil/internal/privacy"
)

const privacyUsage = `Usage: veil privacy report --data DIR --project ID [--json]
       veil privacy explain --data DIR --project ID [--geoip FILE] [--ip ADDR] [--user-agent UA] [--json] < event.json

"report" prints what the privacy stage changed in a project, as counters
(counts only, never values). "explain" shows what the stage would do to
an event, without storing or counting anything.
"veil privacy <report|explain> --help" lists flags.
`

func runPrivacy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSubcommand(ctx, args, privacyUsage, []subcommand{
		{"report", privacyReport},
		{"explain", privacyExplain},
	}, stdout, stderr)
}

type changeJSON struct {
	Event     string `json:"event"`
	Property  string `json:"property"`
	Reason    string `json:"reason"`
	Count     int64  `json:"count"`
	FirstSeen string `json:"first_seen"`
	LastSeen  string `json:"last_seen"`
}

func privacyReport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("privacy report", `privacy report --data DIR --project ID [--json]

Prints the privacy stage's change counters of a project, most frequent
first: per event, property and reason, how many times and when first and
last. Counts only, never values. A running server flushes its counters
every 10 s, so the newest changes may not show yet.`, stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	asJSON := fs.Bool("json", false, "print a JSON array of {event, property, reason, count, first_seen, last_seen}")
	if err := fs.parse(args); err != nil {
		return err
	}
	db, err := openProjectMeta(ctx, *data, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.PrivacyChanges(ctx, *project)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]changeJSON, 0, len(rows))
		for _, r := range rows {
			out = append(out, changeJSON{Event: r.Event, Property: r.Property, Reason: r.Reason, Count: r.Count,
				FirstSeen: r.FirstSeen.UTC().Format(time.RFC3339), LastSeen: r.LastSeen.UTC().Format(time.RFC3339)})
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	fmt.Fprintf(stdout, "# What the privacy stage changed in project %d: counts only, never values. A running server flushes counters every 10 s.\n", *project)
	if len(rows) == 0 {
		fmt.Fprintln(stdout, "# No changes recorded yet.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "EVENT\tPROPERTY\tREASON\tCOUNT\tFIRST SEEN\tLAST SEEN")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", cell(r.Event), cell(r.Property), r.Reason, r.Count,
			r.FirstSeen.UTC().Format(time.RFC3339), r.LastSeen.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// cell keeps a name on one table cell: tabs and line breaks would break
// the alignment.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace(s)
}

type explainJSON struct {
	Kept    bool             `json:"kept"`
	Event   json.RawMessage  `json:"event"`
	Changes []privacy.Change `json:"changes"`
}

func privacyExplain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("privacy explain", `privacy explain --data DIR --project ID [--geoip FILE] [--ip ADDR] [--user-agent UA] [--json] < event.json

Reads Mixpanel events from stdin (one {"event": ..., "properties": {...}}
object, an array of them, or one per line), decodes each as the collector
does (distinct_id, time and $insert_id lifted out; token optional), runs it
through the project's privacy stage and prints the event as it would be
stored (the shape of veil events), or "dropped", then the changes, one
"property<TAB>reason" a line. Nothing is stored or counted. --ip and
--user-agent stand for the HTTP request's; --ip asks for geolocation as a
client that does not send ip=0. The master key must exist: it is never
created here.`, stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	ipFlag := fs.String("ip", "", "client IP address of the request")
	ua := fs.String("user-agent", "", "User-Agent header of the request")
	asJSON := fs.Bool("json", false, `print {"kept", "event", "changes": [{"property", "reason"}]} a line per event`)
	var keys keyFlags
	keys.register(fs, true)
	fs.Lookup("master-key-file").Usage = existingKeyUsage
	if err := fs.parse(args); err != nil {
		return err
	}
	req := &privacy.Request{UserAgent: *ua}
	if *ipFlag != "" {
		a, err := netip.ParseAddr(strings.TrimSpace(*ipFlag))
		if err != nil {
			return errors.New("--ip: not an IPv4 or IPv6 address")
		}
		req.IP, req.Geolocate = a.Unmap(), true
	}
	db, err := openProjectMeta(ctx, *data, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	ring, err := openExistingKeys(keys, *data)
	if err != nil {
		return err
	}
	stage, closeGeo, err := openStageWithKeys(ring, keys, db, nil)
	if err != nil {
		return err
	}
	defer closeGeo()
	raws, err := readEvents(stdin)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	var buf []byte
	for i, raw := range raws {
		e, err := collector.DecodeEvent(*project, raw, time.Now())
		if err != nil {
			w.Flush()
			return fmt.Errorf("event %d: %w", i+1, err)
		}
		kept, changes, err := stage.Explain(ctx, req, &e)
		if err != nil {
			w.Flush()
			return fmt.Errorf("event %d: %w", i+1, err)
		}
		buf = buf[:0]
		if kept {
			collector.TruncateEvent(&e)
			buf = appendEventJSON(buf, &e, false)
		}
		if *asJSON {
			out := explainJSON{Kept: kept, Event: json.RawMessage("null"), Changes: changes}
			if kept {
				out.Event = buf
			}
			if out.Changes == nil {
				out.Changes = []privacy.Change{}
			}
			b, err := json.Marshal(out)
			if err != nil {
				return err
			}
			w.Write(append(b, '\n'))
			continue
		}
		if i > 0 {
			w.WriteByte('\n')
		}
		if kept {
			w.Write(append(buf, '\n'))
		} else {
			w.WriteString("dropped\n")
		}
		for _, c := range changes {
			fmt.Fprintf(w, "%s\t%s\n", c.Property, c.Reason)
		}
	}
	return w.Flush()
}

// readEvents splits stdin into event objects: JSON values one after the
// other, each an object or an array of them. Errors give a position, never
// the content.
func readEvents(r io.Reader) ([]json.RawMessage, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxStdinBytes+1))
	if err != nil {
		return nil, fmt.Errorf("stdin: %w", err)
	}
	if len(b) > maxStdinBytes {
		return nil, fmt.Errorf("stdin is larger than %d bytes", maxStdinBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var out []json.RawMessage
	for {
		var v json.RawMessage
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, jsonInputError(err)
		}
		if t := bytes.TrimSpace(v); len(t) > 0 && t[0] == '[' {
			var items []json.RawMessage
			if err := json.Unmarshal(t, &items); err != nil {
				return nil, jsonInputError(err)
			}
			out = append(out, items...)
			continue
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, errors.New(`no event on stdin: pipe a Mixpanel event {"event": ..., "properties": {...}} or an array of them`)
	}
	return out, nil
}

// jsonInputError describes a JSON syntax error by position only.
func jsonInputError(err error) error {
	var se *json.SyntaxError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("stdin is not valid JSON (at byte %d)", se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return errors.New("stdin ends in the middle of a JSON value")
	}
	return errors.New("stdin is not valid JSON")
}
