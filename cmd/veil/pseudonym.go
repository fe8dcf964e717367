package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/veil-analytics/veil/internal/privacy"
	"github.com/veil-analytics/veil/internal/privacy/pii"
	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
)

// epochFlag is an optional --epoch.
type epochFlag struct {
	set bool
	n   uint32
}

func (e *epochFlag) String() string {
	if e == nil || !e.set {
		return ""
	}
	return strconv.FormatUint(uint64(e.n), 10)
}

func (e *epochFlag) Set(s string) error {
	n, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
	if err != nil {
		return errors.New("want a key epoch: a whole number from 0 to 4294967295")
	}
	e.set, e.n = true, uint32(n)
	return nil
}

// maxListedEpochs bounds --all-epochs.
const maxListedEpochs = 4096

const pseudonymUsage = `pseudonym --data DIR --project ID [--field F] [--epoch N | --all-epochs] [--master-key-file PATH] VALUE... | -

Prints, one line per VALUE, the pseudonym Veil stores for it: to find a
person's data (an access or erasure request) or to map a breach list. With
- as the only argument, values are read from stdin, one per line, and an
empty line gives an empty line. Values are never logged.

--field is the pseudonym domain:
  distinct_id      distinct ids, and the identifier properties sharing
                   their domain ($device_id, $user_id, user_id, alias, ...)
  email            e-mail addresses the PII scan pseudonymises
  group:KEY        group ids of group key KEY (e.g. group:company)
  property:NAME    values of identifier property NAME (lower-cased)
  pii:CLASS        other personal data the PII scan pseudonymises (pii:phone)
  NAME             an identifier property or group key of the project's
                   policy, mapped as the privacy stage maps it
Note: an event sent with only $device_id gets the distinct id
"$device:<id>", so look that value up for its distinct_id.

The epoch defaults to the policy's current one; data stored before a key
rotation carries an older epoch's pseudonyms, which --all-epochs lists as
"epoch<TAB>pseudonym" lines, epochs 0 to current for each value in turn.
The master key must exist (the one veil serve uses): it is never created.`

func runPseudonym(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("pseudonym", pseudonymUsage, stderr)
	data := fs.String("data", "", "data directory (a running server's is fine)")
	project := fs.Int64("project", 0, "project id")
	field := fs.String("field", "distinct_id", "pseudonym domain: distinct_id, email, group:KEY, property:NAME, pii:CLASS or an identifier property name")
	var epoch epochFlag
	fs.Var(&epoch, "epoch", "key epoch (default the policy's current epoch)")
	all := fs.Bool("all-epochs", false, "print epoch<TAB>pseudonym for every epoch from 0 to the current one")
	var keys keyFlags
	keys.register(fs, false)
	fs.Lookup("master-key-file").Usage = existingKeyUsage
	values, err := fs.parseWithArgs(args)
	if err != nil {
		return err
	}
	if epoch.set && *all {
		return errors.New("--epoch and --all-epochs exclude each other")
	}
	fromStdin := len(values) == 1 && values[0] == "-"
	if len(values) == 0 {
		return errors.New("no values: give VALUE... or - to read them from stdin, one per line")
	}
	if !fromStdin {
		for _, v := range values {
			if v == "-" {
				return errors.New("- (read values from stdin) must be the only argument")
			}
		}
	}
	pol, err := projectPolicy(ctx, *data, *project)
	if err != nil {
		return err
	}
	f, err := resolveField(*field, pol, *project)
	if err != nil {
		return err
	}
	ring, err := openExistingKeys(keys, *data)
	if err != nil {
		return err
	}
	first, last := pol.Epoch, pol.Epoch
	switch {
	case *all:
		if pol.Epoch >= maxListedEpochs {
			return fmt.Errorf("--all-epochs: project %d is at epoch %d, too many to list; give --epoch N for each one you need", *project, pol.Epoch)
		}
		first = 0
	case epoch.set:
		first, last = epoch.n, epoch.n
		if epoch.n > pol.Epoch {
			fmt.Fprintf(stderr, "note: epoch %d is after project %d's current epoch %d: no stored data carries it yet\n", epoch.n, *project, pol.Epoch)
		}
	}
	pseudos := make([]*pseudonym.Pseudonymizer, 0, int(last-first)+1)
	for e := uint64(first); e <= uint64(last); e++ {
		pseudos = append(pseudos, ring.Project(*project, uint32(e)))
	}
	w := bufio.NewWriter(stdout)
	emit := func(v string) {
		for _, p := range pseudos {
			if *all {
				w.WriteString(strconv.FormatUint(uint64(p.Epoch()), 10))
				w.WriteByte('\t')
			}
			if v != "" { // the stage stores an empty id as it is
				w.WriteString(p.Pseudonym(f, v))
			}
			w.WriteByte('\n')
		}
	}
	if fromStdin {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		line := 0
		for sc.Scan() {
			line++
			if err := ctx.Err(); err != nil {
				return err
			}
			emit(strings.TrimSuffix(sc.Text(), "\r"))
		}
		if err := sc.Err(); err != nil {
			w.Flush()
			return fmt.Errorf("stdin, after line %d: %w", line, err)
		}
	} else {
		for _, v := range values {
			emit(v)
		}
	}
	return w.Flush()
}

// resolveField turns --field into the pseudonym domain the privacy stage
// uses for it under policy p (see internal/privacy/compiled.go).
func resolveField(spec string, p privacy.Policy, project int64) (pseudonym.Field, error) {
	s := strings.TrimSpace(spec)
	prefix, rest, hasPrefix := strings.Cut(s, ":")
	switch {
	case s == "":
		return "", errors.New("--field is empty: want distinct_id, email, group:KEY, property:NAME, pii:CLASS or an identifier property name")
	case s == string(pseudonym.FieldDistinctID):
		return pseudonym.FieldDistinctID, nil
	case s == string(pseudonym.FieldEmail):
		return pseudonym.FieldEmail, nil
	case hasPrefix && prefix == "group":
		key := strings.TrimSpace(rest)
		if key == "" {
			return "", fmt.Errorf("--field %q: no group key after group:", spec)
		}
		return pseudonym.GroupField(key), nil
	case hasPrefix && prefix == "property":
		name := strings.ToLower(strings.TrimSpace(rest))
		if name == "" {
			return "", fmt.Errorf("--field %q: no property name after property:", spec)
		}
		if f, ok := (&privacy.Policy{}).IdentityField(name); ok {
			return f, nil // a distinct-id property, as the stage maps it
		}
		return pseudonym.PropertyField(name), nil
	case hasPrefix && prefix == "pii":
		var names []string
		for _, c := range pii.Classes() {
			if c.String() == strings.TrimSpace(rest) {
				return privacy.PIIField(c), nil
			}
			names = append(names, c.String())
		}
		return "", fmt.Errorf("--field %q: unknown class (known: %s)", spec, strings.Join(names, ", "))
	}
	// A bare name is mapped as the stage maps it.
	if f, ok := p.IdentityField(s); ok {
		return f, nil
	}
	return "", fmt.Errorf("--field %q: not distinct_id, email, group:KEY, property:NAME or pii:CLASS, nor an identifier property or group key of project %d's policy (see veil policy show)", spec, project)
}
