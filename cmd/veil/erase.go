package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/user"
	"strings"

	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
	"github.com/veil-analytics/veil/internal/store"
)

const eraseUsage = `erase --data DIR --project ID (--pseudonym P | --id RAW) [--json] [--master-key-file PATH]

Erases one person from a project (a data-subject request): their events
leave every segment (each day holding some is rewritten), their profile is
deleted, the log segments holding their raw records are purged, and their
pseudonym goes on the project's suppression list so that later events for
them are refused. --id takes the raw distinct id and erases the pseudonyms
of every key epoch up to the current one. The server must be stopped (the
command takes the data directory's lock). An audit of what was done is
printed.`

// eraseAudit is what veil erase prints.
type eraseAudit struct {
	Operator string              `json:"operator"`
	Project  int64               `json:"project"`
	Reports  []store.EraseReport `json:"erasures"`
}

func runErase(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("erase", eraseUsage, stderr)
	data := fs.String("data", "", "data directory (of a stopped server)")
	project := fs.Int64("project", 0, "project id")
	pseudo := fs.String("pseudonym", "", "the pseudonym Veil stores for the person (see veil pseudonym)")
	raw := fs.String("id", "", "the person's raw distinct id (needs the master key)")
	asJSON := fs.Bool("json", false, "print the audit as JSON")
	var keys keyFlags
	keys.register(fs, false)
	if err := fs.parse(args); err != nil {
		return err
	}
	if (*pseudo == "") == (*raw == "") {
		return errors.New("give exactly one of --pseudonym P and --id RAW")
	}
	if *pseudo != "" && !pseudonym.IsPseudonym(*pseudo) {
		return fmt.Errorf("--pseudonym %q is not a Veil pseudonym (p<epoch>_ and 22 characters); to erase by the raw id use --id", *pseudo)
	}
	pol, err := projectPolicy(ctx, *data, *project)
	if err != nil {
		return err
	}
	pseudos := []string{*pseudo}
	if *raw != "" {
		ring, err := openExistingKeys(keys, *data)
		if err != nil {
			return err
		}
		pseudos = pseudos[:0]
		for e := uint32(0); e <= pol.Epoch; e++ {
			pseudos = append(pseudos, ring.Project(*project, e).Pseudonym(pseudonym.FieldDistinctID, *raw))
		}
	}
	st, err := store.Open(*data, store.Options{FlushInterval: -1})
	if err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("%w: stop veil serve on %s first", err, *data)
		}
		return err
	}
	audit := eraseAudit{Project: *project}
	if u, err := user.Current(); err == nil {
		audit.Operator = u.Username
	}
	for _, p := range pseudos {
		rep, err := st.Erase(ctx, *project, p)
		if err != nil {
			st.Close()
			return err
		}
		audit.Reports = append(audit.Reports, rep)
	}
	if err := st.Close(); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(audit)
	}
	for _, r := range audit.Reports {
		known := "seen before"
		if !r.Known {
			known = "never seen: suppressed for the future only"
		}
		fmt.Fprintf(stdout, "erased %s from project %d at %s by %s (%s)\n", r.Pseudonym, r.Project, r.At.Format("2006-01-02T15:04:05Z"), audit.Operator, known)
		fmt.Fprintf(stdout, "  events removed     %d\n", r.RowsRemoved)
		fmt.Fprintf(stdout, "  days rewritten     %d %s\n", len(r.DaysRewritten), strings.Join(r.DaysRewritten, " "))
		fmt.Fprintf(stdout, "  segments rewritten %d\n", r.SegmentsRewritten)
		fmt.Fprintf(stdout, "  log segments purged %d\n", r.LogSegmentsPurged)
		fmt.Fprintf(stdout, "  profile deleted; later events refused (suppression list)\n")
	}
	return nil
}
