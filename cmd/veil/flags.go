package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// errUsage means the flags were wrong; the flag package already said how.
var errUsage = errors.New("usage")

// flagSet wraps flag.FlagSet so that every flag has a VEIL_* environment
// variable, documented in the help text.
type flagSet struct {
	*flag.FlagSet
	usage string
}

func newFlagSet(name, usage string, stderr io.Writer) *flagSet {
	fs := &flagSet{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), usage: usage}
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: veil %s\n\nFlags (each also read from its environment variable):\n", fs.usage)
		fs.VisitAll(func(f *flag.Flag) {
			def := ""
			if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
				def = fmt.Sprintf(" (default %s)", f.DefValue)
			}
			fmt.Fprintf(w, "  --%s  [%s]\n      %s%s\n", f.Name, envName(f.Name), f.Usage, def)
		})
	}
	return fs
}

// envName is the environment variable of a flag: data-dir → VEIL_DATA_DIR.
func envName(flagName string) string {
	return "VEIL_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse reads environment variables for flags not given on the command
// line, then the command line.
func (fs *flagSet) parse(args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		if v, ok := os.LookupEnv(envName(f.Name)); ok {
			if err := f.Value.Set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %w", envName(f.Name), v, err))
			}
		}
	})
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	return errors.Join(errs...)
}

// parseWithArgs is parse for commands that take arguments: flags may come
// before, between and after them, and everything after "--" is an argument.
func (fs *flagSet) parseWithArgs(args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if err := fs.parse(nil); err != nil {
		return nil, err
	}
	return pos, nil
}

// requireData checks the --data flag.
func requireData(dir string) error {
	if dir == "" {
		return errors.New("--data is required (or VEIL_DATA): the data directory")
	}
	return nil
}

// subcommand is one verb of a command with verbs ("policy show").
type subcommand struct {
	name string
	run  func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// runSubcommand dispatches args[0] to its subcommand, printing usage for
// help or a missing verb.
func runSubcommand(ctx context.Context, args []string, usage string, subs []subcommand, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	var names []string
	for _, s := range subs {
		if s.name == args[0] {
			return s.run(ctx, args[1:], stdout, stderr)
		}
		names = append(names, s.name)
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return flag.ErrHelp
	}
	return fmt.Errorf("unknown subcommand %q: use %s", args[0], strings.Join(names, ", "))
}
