package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/veil-analytics/veil/internal/meta"
)

const tokenUsage = `Usage: veil token create --data DIR --project ID [--scope read] [--name NAME] [--json]
       veil token list --data DIR --project ID [--json]
       veil token revoke --data DIR --project ID --id N

API tokens authenticate the JSON API under /api/v1 ("Authorization: Bearer
vt_..."). A token belongs to one project and has one scope: read runs
reports and manages cohorts. "create" shows the token once; only its hash
is stored. "revoke" takes effect on the next request, also on a running
server. "veil token <create|list|revoke> --help" lists flags.
`

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runSubcommand(ctx, args, tokenUsage, []subcommand{
		{"create", tokenCreate},
		{"list", tokenList},
		{"revoke", tokenRevoke},
	}, stdout, stderr)
}

// tokenCreatedJSON is what token create --json prints.
type tokenCreatedJSON struct {
	Token   string `json:"token"`
	ID      int64  `json:"id"`
	Project int64  `json:"project"`
	Scope   string `json:"scope"`
}

func tokenCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token create", `token create --data DIR --project ID [--scope read] [--name NAME] [--json]

Creates an API token for the project and prints it, once: only its hash is
stored.`, stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	scope := fs.String("scope", string(meta.ScopeRead), "what the token may do: read (run reports, manage cohorts)")
	name := fs.String("name", "", "a name to tell the token apart in veil token list")
	asJSON := fs.Bool("json", false, `print {"token","id","project","scope"} as JSON`)
	if err := fs.parse(args); err != nil {
		return err
	}
	db, err := openProjectMeta(ctx, *data, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	t, secret, err := db.CreateToken(ctx, *project, meta.Scope(*scope), *name)
	if err != nil {
		return flagError(err, map[string]string{"scope": "--scope", "name": "--name"})
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(tokenCreatedJSON{Token: secret, ID: t.ID, Project: t.ProjectID, Scope: string(t.Scope)})
	}
	fmt.Fprintf(stdout, `Created %s token %d for project %d.
  token: %s
Send it as "Authorization: Bearer <token>" to /api/v1/projects/%d/...
The token is shown only now and stored hashed: keep it somewhere safe.
`, t.Scope, t.ID, t.ProjectID, secret, t.ProjectID)
	return nil
}

// tokenJSON is a token as token list --json prints it.
type tokenJSON struct {
	ID       int64  `json:"id"`
	Project  int64  `json:"project"`
	Name     string `json:"name"`
	Scope    string `json:"scope"`
	Created  string `json:"created"`
	LastUsed string `json:"last_used,omitempty"`
	Revoked  string `json:"revoked,omitempty"`
}

func tokenList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token list", `token list --data DIR --project ID [--json]

Lists the project's API tokens, revoked ones included (never the tokens
themselves: they are not stored).`, stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	asJSON := fs.Bool("json", false, "print a JSON array")
	if err := fs.parse(args); err != nil {
		return err
	}
	db, err := openProjectMeta(ctx, *data, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	ts, err := db.Tokens(ctx, *project)
	if err != nil {
		return err
	}
	if *asJSON {
		out := make([]tokenJSON, 0, len(ts))
		for _, t := range ts {
			out = append(out, tokenJSON{ID: t.ID, Project: t.ProjectID, Name: t.Name, Scope: string(t.Scope),
				Created: timeOrEmpty(t.Created), LastUsed: timeOrEmpty(t.LastUsed), Revoked: timeOrEmpty(t.Revoked)})
		}
		return json.NewEncoder(stdout).Encode(out)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPE\tCREATED\tLAST USED\tREVOKED")
	for _, t := range ts {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", t.ID, orDash(t.Name), t.Scope, timeOrEmpty(t.Created),
			orDash(timeOrEmpty(t.LastUsed)), orDash(timeOrEmpty(t.Revoked)))
	}
	return tw.Flush()
}

func tokenRevoke(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("token revoke", `token revoke --data DIR --project ID --id N

Revokes one of the project's API tokens (see veil token list). A running
server refuses it from the next request on.`, stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	id := fs.Int64("id", 0, "token id (see veil token list)")
	if err := fs.parse(args); err != nil {
		return err
	}
	if *id <= 0 {
		return errors.New("--id is required: the token's id (see veil token list)")
	}
	db, err := openProjectMeta(ctx, *data, *project)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.RevokeToken(ctx, *project, *id); err != nil {
		if errors.Is(err, meta.ErrNotFound) {
			return fmt.Errorf("project %d has no token %d (see veil token list)", *project, *id)
		}
		return err
	}
	fmt.Fprintf(stdout, "revoked token %d of project %d\n", *id, *project)
	return nil
}

// flagError words a meta input error about a field in terms of the flag
// that set it: "--scope: token scope "x" is unknown...".
func flagError(err error, flags map[string]string) error {
	if fe, ok := errors.AsType[interface {
		error
		Field() string
	}](err); ok {
		if flag, ok := flags[fe.Field()]; ok {
			return fmt.Errorf("%s: %w", flag, err)
		}
	}
	return err
}

func timeOrEmpty(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
