package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/veil-analytics/veil/internal/meta"
	"github.com/veil-analytics/veil/internal/query"
	"github.com/veil-analytics/veil/internal/scan"
	"github.com/veil-analytics/veil/internal/store"
)

// reportRunner is the api.Reports of veil serve and the engine of veil
// query: a project's settings and cohorts from the metadata database, its
// events from a scan.Source.
type reportRunner struct {
	db   *meta.DB
	open func(project int64) (scan.Source, error)
	// workers is the scan parallelism (0: all cores).
	workers int
}

// env is what a report of project runs with.
func (r reportRunner) env(ctx context.Context, project int64) (query.Env, error) {
	st, err := r.db.ProjectSettings(ctx, project)
	if err != nil {
		return query.Env{}, err
	}
	return query.Env{TimeZone: st.TimeZone, MinGroupSize: st.MinGroupSize, Workers: r.workers,
		Cohorts: projectCohorts{db: r.db, project: project}}, nil
}

// Run runs one report.
func (r reportRunner) Run(ctx context.Context, project int64, kind string, spec []byte) (any, error) {
	env, err := r.env(ctx, project)
	if err != nil {
		return nil, err
	}
	src, err := r.open(project)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	return query.Run(ctx, src, env, kind, spec)
}

// ValidateCohort checks a cohort definition against the project's events
// and saved cohorts.
func (r reportRunner) ValidateCohort(ctx context.Context, project int64, definition []byte) error {
	env, err := r.env(ctx, project)
	if err != nil {
		return err
	}
	src, err := r.open(project)
	if err != nil {
		return err
	}
	defer src.Close()
	return query.ValidateCohort(ctx, src.Events(), env, definition)
}

// projectCohorts serves one project's saved cohorts to the engines.
type projectCohorts struct {
	db      *meta.DB
	project int64
}

func (c projectCohorts) Cohort(ctx context.Context, id int64) (string, []byte, error) {
	co, err := c.db.Cohort(ctx, c.project, id)
	if errors.Is(err, meta.ErrNotFound) {
		return "", nil, query.ErrNoCohort
	}
	if err != nil {
		return "", nil, err
	}
	return co.Name, co.Definition, nil
}

// runQuery runs a report on the data directory of a stopped server and
// prints the answer the API would give.
func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || !slices.Contains(query.Kinds, args[0]) {
		return fmt.Errorf("usage: veil query {%s} --data DIR --project ID --spec FILE.json", strings.Join(query.Kinds, "|"))
	}
	kind := args[0]
	fs := newFlagSet("query "+kind, "query "+kind+" --data DIR --project ID --spec FILE.json", stderr)
	data := fs.String("data", "", "data directory (of a stopped server or a finished import)")
	project := fs.Int64("project", 0, "project id")
	specFile := fs.String("spec", "", "the report spec, a JSON file (- for standard input)")
	if err := fs.parse(args[1:]); err != nil {
		return err
	}
	if err := requireData(*data); err != nil {
		return err
	}
	if *project <= 0 {
		return errors.New("--project is required: the project's id (see veil project list)")
	}
	if *specFile == "" {
		return errors.New("--spec is required: a JSON file with the report spec (see docs/REPORTS.md)")
	}
	var spec []byte
	var err error
	if *specFile == "-" {
		spec, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20+1))
	} else {
		spec, err = os.ReadFile(*specFile)
	}
	if err != nil {
		return fmt.Errorf("reading --spec: %w", err)
	}
	if len(spec) > 1<<20 {
		return errors.New("--spec: larger than 1 MiB")
	}
	db, err := openMeta(ctx, *data)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.ProjectByID(ctx, *project); err != nil {
		return fmt.Errorf("--project %d: %w", *project, err)
	}
	r := reportRunner{db: db, open: func(p int64) (scan.Source, error) { return store.OpenSource(*data, p) }}
	res, err := r.Run(ctx, *project, kind, spec)
	if err != nil {
		var se *query.SpecError
		if errors.As(err, &se) {
			return fmt.Errorf("--spec %s: %s", se.Pointer, se.Detail)
		}
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(res)
}
