package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/veil-analytics/veil/internal/meta"
	"github.com/veil-analytics/veil/internal/privacy"
	"github.com/veil-analytics/veil/internal/privacy/geo"
	"github.com/veil-analytics/veil/internal/privacy/pseudonym"
)

// keyFlags are the flags of every command that computes pseudonyms.
type keyFlags struct {
	masterKeyFile string
	geoip         string
}

func (k *keyFlags) register(fs *flagSet, withGeo bool) {
	fs.StringVar(&k.masterKeyFile, "master-key-file", defaultMasterKeyPath(),
		"file holding the master key that pseudonyms are derived from (mode 0600, outside --data; created on first run: back it up)")
	if withGeo {
		fs.StringVar(&k.geoip, "geoip", "", "MaxMind-format country or city database (GeoLite2, DB-IP Lite) for IP geolocation; without it no location is derived")
	}
}

// defaultMasterKeyPath is $XDG_CONFIG_HOME/veil/master.key (or the
// platform's equivalent): outside any data directory by default.
func defaultMasterKeyPath() string {
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "veil", "master.key")
}

// openKeys loads the master key, creating it on first use.
func openKeys(k keyFlags, dataDir string, logger *slog.Logger) (*pseudonym.Keyring, error) {
	if k.masterKeyFile == "" {
		return nil, errors.New("--master-key-file is required (no user configuration directory to default to)")
	}
	key, created, err := pseudonym.LoadOrCreateMasterKey(k.masterKeyFile, dataDir)
	if err != nil {
		return nil, err
	}
	if created && logger != nil {
		logger.Warn("created a new master key: every pseudonym is derived from it, so back it up now and keep it apart from the data directory; without it no one can map a person to their pseudonyms again, with it anyone can test guesses",
			"file", k.masterKeyFile)
	}
	return pseudonym.NewKeyring(key), nil
}

// openStage builds the privacy stage of a server or an offline command.
// The returned closer releases the geolocation database.
func openStage(k keyFlags, dataDir string, db *meta.DB, logger *slog.Logger) (*privacy.Stage, func() error, error) {
	keys, err := openKeys(k, dataDir, logger)
	if err != nil {
		return nil, nil, err
	}
	return openStageWithKeys(keys, k, db, logger)
}

// existingKeyUsage is the --master-key-file help of offline commands.
const existingKeyUsage = "file holding the master key veil serve derives pseudonyms from; it must exist (never created here)"

// openExistingKeys is openKeys for offline commands: a missing key file
// is an error, never a new key, since pseudonyms of a new key match
// nothing the server stored.
func openExistingKeys(k keyFlags, dataDir string) (*pseudonym.Keyring, error) {
	if k.masterKeyFile == "" {
		return nil, errors.New("--master-key-file is required (no user configuration directory to default to)")
	}
	if _, err := os.Stat(k.masterKeyFile); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("no master key at %s: point --master-key-file (or VEIL_MASTER_KEY_FILE) at the key veil serve uses; this command never creates one", k.masterKeyFile)
		}
		return nil, fmt.Errorf("master key file %s: %w", k.masterKeyFile, err)
	}
	return openKeys(k, dataDir, nil)
}

// openStageWithKeys is openStage with the key ring already loaded.
func openStageWithKeys(keys *pseudonym.Keyring, k keyFlags, db *meta.DB, logger *slog.Logger) (*privacy.Stage, func() error, error) {
	var err error
	var gdb *geo.DB
	closer := func() error { return nil }
	if k.geoip != "" {
		if gdb, err = geo.Open(k.geoip); err != nil {
			return nil, nil, fmt.Errorf("--geoip: %w", err)
		}
		closer = gdb.Close
		if logger != nil {
			typ, built := gdb.Metadata()
			logger.Info("IP geolocation on: addresses are looked up in memory and discarded", "database", typ, "built", built.Format(time.DateOnly))
		}
	} else if logger != nil {
		logger.Info("no --geoip database: events get no location (IP addresses are discarded either way)")
	}
	st, err := privacy.NewStage(privacy.Config{Keys: keys, Policies: db, Geo: gdb})
	if err != nil {
		closer()
		return nil, nil, err
	}
	return st, closer, nil
}

// changeSink stores the stage's counters in the metadata database.
type changeSink struct{ db *meta.DB }

func (c changeSink) AddPrivacyChanges(ctx context.Context, counts []privacy.ChangeCount) error {
	now := time.Now()
	out := make([]meta.PrivacyChange, len(counts))
	for i, x := range counts {
		out[i] = meta.PrivacyChange{ProjectID: x.Project, Event: x.Event, Property: x.Property, Reason: x.Reason,
			Count: x.Count, FirstSeen: now, LastSeen: now}
	}
	return c.db.AddPrivacyChanges(ctx, out)
}
