package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/veil-analytics/veil/internal/meta"
	"github.com/veil-analytics/veil/internal/privacy"
)

// stdin is what commands read piped input from; tests replace it.
var stdin io.Reader = os.Stdin

// maxStdinBytes bounds what a command reads from stdin or a file.
const maxStdinBytes = 10 << 20

const policyUsage = `Usage: veil policy show --data DIR --project ID
       veil policy set --data DIR --project ID [--file F]
       veil policy default

A project's privacy policy says what the privacy stage pseudonymises,
drops, redacts and derives. "show" prints the project's effective policy,
"set" replaces it with JSON read from --file or stdin, "default" prints the
strict default every project starts with. A running server picks a new
policy up within 5 s. "veil policy <show|set|default> --help" lists flags.
`

func runPolicy(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSubcommand(ctx, args, policyUsage, []subcommand{
		{"show", policyShow},
		{"set", policySet},
		{"default", func(_ context.Context, args []string, stdout, stderr io.Writer) error {
			return policyDefault(args, stdout, stderr)
		}},
	}, stdout, stderr)
}

// openProjectMeta opens an existing data directory's metadata and checks
// that the project exists.
func openProjectMeta(ctx context.Context, data string, project int64) (*meta.DB, error) {
	if err := requireData(data); err != nil {
		return nil, err
	}
	if project <= 0 {
		return nil, errors.New("--project is required: a project id (see veil project list)")
	}
	db, err := openExistingMeta(ctx, data)
	if err != nil {
		return nil, err
	}
	if _, err := db.ProjectByID(ctx, project); err != nil {
		db.Close()
		if errors.Is(err, meta.ErrNotFound) {
			return nil, fmt.Errorf("no project %d in %s (see veil project list)", project, data)
		}
		return nil, err
	}
	return db, nil
}

// effectivePolicy is the project's stored policy, or the default.
// projectPolicy opens the metadata of data just long enough to read
// project's effective policy.
func projectPolicy(ctx context.Context, data string, project int64) (privacy.Policy, error) {
	db, err := openProjectMeta(ctx, data, project)
	if err != nil {
		return privacy.Policy{}, err
	}
	defer db.Close()
	return effectivePolicy(ctx, db, project)
}

func effectivePolicy(ctx context.Context, db *meta.DB, project int64) (privacy.Policy, error) {
	raw, err := db.PrivacyPolicy(ctx, project)
	if err != nil {
		return privacy.Policy{}, err
	}
	if raw == nil {
		return privacy.DefaultPolicy(), nil
	}
	p, err := privacy.ParsePolicy(raw)
	if err != nil {
		return privacy.Policy{}, fmt.Errorf("stored policy of project %d: %w (replace it with veil policy set)", project, err)
	}
	return p, nil
}

func policyShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy show", `policy show --data DIR --project ID

Prints the project's effective privacy policy as JSON: the stored one, or
the strict default when none was set.`, stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	if err := fs.parse(args); err != nil {
		return err
	}
	db, err := openProjectMeta(ctx, *data, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	p, err := effectivePolicy(ctx, db, *project)
	if err != nil {
		return err
	}
	_, err = stdout.Write(p.JSON())
	return err
}

func policySet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy set", `policy set --data DIR --project ID [--file F] [< policy.json]

Replaces the project's privacy policy with the JSON in --file, or on stdin
without it (or with --file -), and prints the effective policy. Fields left
out keep their strict defaults, so the JSON may say only what it changes;
unknown fields, classes and actions are refused. "epoch" selects the
pseudonym key epoch: raising it rotates keys, so new data no longer joins
old data. A running server picks the new policy up within 5 s.`, stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	file := fs.String("file", "", "policy JSON file (default stdin)")
	if err := fs.parse(args); err != nil {
		return err
	}
	raw, src, err := readInput(*file)
	if err != nil {
		return err
	}
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return fmt.Errorf("%s is not a JSON object: want a policy such as veil policy default prints", src)
	}
	p, err := privacy.ParsePolicy(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	db, err := openProjectMeta(ctx, *data, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	old, err := effectivePolicy(ctx, db, *project)
	if err != nil {
		old = privacy.Policy{} // a broken stored policy is what set repairs
	}
	if old.Epoch > 0 && !hasKey(raw, "epoch") {
		return fmt.Errorf("%s leaves out \"epoch\", which would take project %d back from key epoch %d to 0 and make new pseudonyms join data the rotation separated; add \"epoch\": %d to keep it", src, *project, old.Epoch, old.Epoch)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return fmt.Errorf("%s: %w", src, err)
	}
	if err := db.SetPrivacyPolicy(ctx, *project, compact.Bytes()); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("no project %d in %s (see veil project list)", *project, *data)
		}
		return err
	}
	if p.Epoch != old.Epoch {
		fmt.Fprintf(stderr, "key epoch changes from %d to %d: new data gets epoch %d pseudonyms; stored data keeps its own (veil pseudonym --all-epochs maps both)\n", old.Epoch, p.Epoch, p.Epoch)
	}
	_, err = stdout.Write(p.JSON())
	return err
}

func policyDefault(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("policy default", `policy default

Prints the strict default policy every project starts with: a starting
point for veil policy set.`, stderr)
	if err := fs.parse(args); err != nil {
		return err
	}
	_, err := stdout.Write(privacy.DefaultPolicy().JSON())
	return err
}

// readInput reads file, or stdin when file is "" or "-", and names it.
func readInput(file string) ([]byte, string, error) {
	r, src := stdin, "stdin"
	if file != "" && file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return nil, "", fmt.Errorf("--file: %w", err)
		}
		defer f.Close()
		r, src = f, file
	}
	b, err := io.ReadAll(io.LimitReader(r, maxStdinBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("%s: %w", src, err)
	}
	if len(b) > maxStdinBytes {
		return nil, "", fmt.Errorf("%s is larger than %d bytes", src, maxStdinBytes)
	}
	return b, src, nil
}

// hasKey reports whether the JSON object raw has a top-level key.
func hasKey(raw []byte, key string) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return false
	}
	_, ok := m[key]
	return ok
}
