// Command veil is Veil's single binary: the server, its administration
// commands, the demo and the benchmarks.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// command is one subcommand of veil.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the collector and the JSON API (and, later, the web UI)", runServe},
		{"project", "create and list projects, and set their retention and report settings: project create|list|retention|settings", runProject},
		{"token", "create, list and revoke API tokens for /api/v1: token create|list|revoke", runToken},
		{"events", "print what the log holds for a project, as JSON lines", runEvents},
		{"policy", "show and set a project's privacy policy: policy show|set|default", runPolicy},
		{"pseudonym", "print the pseudonyms Veil stores for given identifiers", runPseudonym},
		{"privacy", "privacy change counters and dry runs: privacy report|explain", runPrivacy},
		{"import", "load a Mixpanel export (JSON lines, gzip'd or not) into a project's event table", runImport},
		{"erase", "erase one person from a project (data-subject request), with an audit", runErase},
		{"demo", "run a server on the embedded store with a demo project and sample traffic", runDemo},
		{"bench-ingest", "benchmark /track from a separate process over loopback", runBenchIngest},
		{"bench-store", "benchmark the event store: import, size, scan, peak RSS (and the anchors on the same events)", runBenchStore},
		{"bench-scan", "benchmark a full scan of a project's event table", runBenchScan},
		{"query", "run a report (insights, funnels, retention, flows) on a data directory", runQuery},
		{"bench-query", "benchmark the reports on the anchor queries (and ClickHouse and DuckDB on the same events)", runBenchQuery},
		{"version", "print the version", runVersion},
	}
}

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func runVersion(_ context.Context, _ []string, stdout, _ io.Writer) error {
	fmt.Fprintln(stdout, "veil", version)
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `Veil is a self-hosted, privacy-first product analytics server that the
official Mixpanel SDKs send to when only their API host is changed.

Usage: veil <command> [flags]

Commands:
`)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, `
Every flag can also be set by an environment variable: --data is
VEIL_DATA, --rate-limit is VEIL_RATE_LIMIT, and so on;
"veil <command> --help" lists them.
`)
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			}
			fmt.Fprintln(stderr, "veil "+c.name+":", err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "veil: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}
