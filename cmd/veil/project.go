package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/veil-analytics/veil/internal/meta"
)

func runProject(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "Usage: veil project create --data DIR --name NAME [--json]\n       veil project list --data DIR [--json]\n       veil project retention --data DIR --project ID [--days N]\n       veil project settings --data DIR --project ID [--timezone TZ] [--min-group-size K] [--json]")
		return errUsage
	}
	switch args[0] {
	case "create":
		return projectCreate(ctx, args[1:], stdout, stderr)
	case "list":
		return projectList(ctx, args[1:], stdout, stderr)
	case "retention":
		return projectRetention(ctx, args[1:], stdout, stderr)
	case "settings":
		return projectSettings(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown subcommand %q: use create, list, retention or settings", args[0])
}

func openMeta(ctx context.Context, data string) (*meta.DB, error) {
	if err := requireData(data); err != nil {
		return nil, err
	}
	return meta.Open(ctx, filepath.Join(data, "meta.db"))
}

// openExistingMeta is openMeta for commands that only read: a mistyped
// --data must be an error, not a new empty data directory.
func openExistingMeta(ctx context.Context, data string) (*meta.DB, error) {
	if err := requireData(data); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(data, "meta.db")); err != nil {
		return nil, fmt.Errorf("%s is not a Veil data directory (no meta.db): create a project first with veil project create", data)
	}
	return openMeta(ctx, data)
}

type projectJSON struct {
	ID      int64  `json:"id"`
	Name    string `json:"name"`
	Token   string `json:"token"`
	Secret  string `json:"secret,omitempty"`
	Created string `json:"created"`
}

func toJSON(p meta.Project, secret string) projectJSON {
	return projectJSON{ID: p.ID, Name: p.Name, Token: p.Token, Secret: secret, Created: p.Created.UTC().Format(time.RFC3339)}
}

func projectCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("project create", "project create --data DIR --name NAME [--json]", stderr)
	data := fs.String("data", "", "data directory")
	name := fs.String("name", "", "project name")
	asJSON := fs.Bool("json", false, "print {\"id\",\"token\",\"secret\"} as JSON")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("--name is required")
	}
	db, err := openMeta(ctx, *data)
	if err != nil {
		return err
	}
	defer db.Close()
	p, secret, err := db.CreateProject(ctx, *name)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(toJSON(p, secret))
	}
	fmt.Fprintf(stdout, `Created project %d (%s).
  token:  %s   (public: put it in the SDKs' init)
  secret: %s   (server-side: HTTP basic auth for /import)
The secret is shown only now and stored hashed: keep it somewhere safe.
`, p.ID, p.Name, p.Token, secret)
	return nil
}

func projectList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("project list", "project list --data DIR [--json]", stderr)
	data := fs.String("data", "", "data directory")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := fs.parse(args); err != nil {
		return err
	}
	db, err := openExistingMeta(ctx, *data)
	if err != nil {
		return err
	}
	defer db.Close()
	ps, err := db.Projects(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]projectJSON, 0, len(ps))
		for _, p := range ps {
			out = append(out, toJSON(p, ""))
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tTOKEN\tCREATED")
	for _, p := range ps {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\n", p.ID, p.Name, p.Token, p.Created.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// projectRetention shows or sets how many days of events a project keeps.
func projectRetention(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("project retention", "project retention --data DIR --project ID [--days N]", stderr)
	data := fs.String("data", "", "data directory")
	project := fs.Int64("project", 0, "project id")
	days := fs.Int("days", -1, "days of events to keep, 0 for all; veil serve drops older day partitions whole after its next flush")
	if err := fs.parse(args); err != nil {
		return err
	}
	db, err := openProjectMeta(ctx, *data, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	if *days >= 0 {
		if err := db.SetRetentionDays(ctx, *project, *days); err != nil {
			return err
		}
	}
	keep, err := db.RetentionDays(ctx, *project)
	if err != nil {
		return err
	}
	if keep == 0 {
		fmt.Fprintf(stdout, "project %d keeps all its events\n", *project)
	} else {
		fmt.Fprintf(stdout, "project %d keeps %d days of events\n", *project, keep)
	}
	return nil
}

// settingsJSON is what project settings --json prints.
type settingsJSON struct {
	Project      int64  `json:"project"`
	TimeZone     string `json:"timezone"`
	MinGroupSize int    `json:"min_group_size"`
}

// projectSettings shows or sets a project's report settings.
func projectSettings(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("project settings", `project settings --data DIR --project ID [--timezone TZ] [--min-group-size K] [--json]

Shows the project's report settings, after changing those given: the time
zone in which reports cut days, weeks and months, and the privacy
threshold k (report groups of fewer than k people are suppressed; 1 shows
every group).`, stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	var tz optString
	var k optInt
	fs.Var(&tz, "timezone", "IANA time zone of the project's reports, such as UTC or Europe/Paris")
	fs.Var(&k, "min-group-size", "privacy threshold k: the smallest group of people a report shows (at least 1)")
	asJSON := fs.Bool("json", false, `print {"project","timezone","min_group_size"} as JSON`)
	if err := fs.parse(args); err != nil {
		return err
	}
	db, err := openProjectMeta(ctx, *data, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	s, err := db.ProjectSettings(ctx, *project)
	if err != nil {
		return err
	}
	if tz.set || k.set {
		if tz.set {
			s.TimeZone = tz.v
		}
		if k.set {
			s.MinGroupSize = k.v
		}
		if err := db.SetProjectSettings(ctx, *project, s); err != nil {
			return flagError(err, map[string]string{"timezone": "--timezone", "min_group_size": "--min-group-size"})
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(settingsJSON{Project: *project, TimeZone: s.TimeZone, MinGroupSize: s.MinGroupSize})
	}
	fmt.Fprintf(stdout, "project %d: time zone %s, minimum group size %d\n", *project, s.TimeZone, s.MinGroupSize)
	return nil
}

// optString is a string flag that records whether it was given (on the
// command line or by its environment variable).
type optString struct {
	v   string
	set bool
}

func (o *optString) String() string { return o.v }

func (o *optString) Set(s string) error {
	o.v, o.set = s, true
	return nil
}

// optInt is an int flag that records whether it was given.
type optInt struct {
	v   int
	set bool
}

func (o *optInt) String() string {
	if !o.set {
		return ""
	}
	return strconv.Itoa(o.v)
}

func (o *optInt) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return errors.New("not an integer")
	}
	o.v, o.set = v, true
	return nil
}
