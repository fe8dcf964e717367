package pseudonym

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// testKeyFile is a valid key file holding the bytes 0x00..0x1f.
const testKeyFile = "veil-master-key-v1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"

func testMasterKey(t testing.TB) *MasterKey {
	t.Helper()
	m, err := ParseMasterKey([]byte(testKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseMasterKey(t *testing.T) {
	m := testMasterKey(t)
	for i, c := range m.b() {
		if c != byte(i) {
			t.Fatalf("byte %d = %#x, want %#x", i, c, i)
		}
	}
	if got := string(m.appendKeyFile(nil)); got != testKeyFile {
		t.Fatalf("round trip = %q", got)
	}

	zero := "veil-master-key-v1\n" + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n"
	short := "veil-master-key-v1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n"
	bad := map[string]string{
		"empty":             "",
		"header_only":       "veil-master-key-v1\n",
		"wrong_version":     strings.Replace(testKeyFile, "v1", "v2", 1),
		"no_final_newline":  strings.TrimSuffix(testKeyFile, "\n"),
		"crlf":              strings.ReplaceAll(testKeyFile, "\n", "\r\n"),
		"trailing_garbage":  testKeyFile + "x",
		"comment":           "# key\n" + testKeyFile,
		"unpadded":          "veil-master-key-v1\n" + base64.RawStdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) + "\n\n",
		"url_alphabet":      strings.Replace(testKeyFile, "AAEC", "-AEC", 1),
		"not_base64":        "veil-master-key-v1\n" + strings.Repeat("!", 44) + "\n",
		"stray_bits":        strings.Replace(testKeyFile, "Hh8=", "Hh9=", 1),
		"all_zero":          zero,
		"short_key":         short,
		"newline_in_middle": "veil-master-key-v1\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh\n=\n",
	}
	for name, in := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseMasterKey([]byte(in))
			if !errors.Is(err, ErrBadKeyFile) {
				t.Fatalf("err = %v, want ErrBadKeyFile", err)
			}
			// The error must never quote the key material.
			if strings.Contains(err.Error(), "AAECAwQF") || strings.Contains(err.Error(), "!!!!") {
				t.Fatalf("error quotes the content: %v", err)
			}
		})
	}
}

func TestMasterKeyNeverPrints(t *testing.T) {
	m := testMasterKey(t)
	k := NewKeyring(m)
	p := k.Project(1, 1)
	b64 := base64.StdEncoding.EncodeToString(m.b()[:])
	type holder struct {
		key  *MasterKey
		val  MasterKey
		Pub  MasterKey
		ring *Keyring
		ps   *Pseudonymizer
	}
	h := holder{key: m, val: *m, Pub: *m, ring: k, ps: p}
	var outs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		outs = append(outs,
			fmt.Sprintf(verb, m), fmt.Sprintf(verb, *m), fmt.Sprintf(verb, k), fmt.Sprintf(verb, p),
			fmt.Sprintf(verb, h), fmt.Sprintf(verb, &h))
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("x", "key", m, "keyv", *m, "ring", k, "ps", p)
	slog.New(slog.NewTextHandler(&logBuf, nil)).Info("x", "key", m, "ring", k, "ps", p)
	outs = append(outs, logBuf.String(), m.String(), m.GoString())
	for _, s := range outs {
		low := strings.ToLower(s)
		if strings.Contains(s, b64) || strings.Contains(low, "000102030405") ||
			strings.Contains(s, "[0 1 2 3") || strings.Contains(low, "0x0, 0x1, 0x2") {
			t.Fatalf("key material printed: %s", s)
		}
	}
	if got := fmt.Sprint(m); got != "[redacted]" {
		t.Fatalf("Sprint = %q", got)
	}
}

func TestMasterKeyEqual(t *testing.T) {
	a, b := testMasterKey(t), testMasterKey(t)
	if !a.Equal(b) {
		t.Fatal("same key not equal")
	}
	b.b()[31] ^= 1
	if a.Equal(b) || a.Equal(nil) {
		t.Fatal("different keys equal")
	}
}

// keyDirs returns a fresh data directory and a directory beside it for keys.
func keyDirs(t *testing.T) (dataDir, keyDir string) {
	t.Helper()
	root := t.TempDir()
	dataDir = filepath.Join(root, "data")
	keyDir = filepath.Join(root, "etc")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dataDir, keyDir
}

func TestLoadOrCreateCreates(t *testing.T) {
	dataDir, keyDir := keyDirs(t)
	path := filepath.Join(keyDir, "nested", "master.key")

	m, created, err := LoadOrCreateMasterKey(path, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Fatal("created = false for a new file")
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" {
		if got := fi.Mode().Perm(); got != 0o600 {
			t.Fatalf("file mode = %#o, want 0600", got)
		}
		for _, d := range []string{keyDir, filepath.Dir(path)} {
			di, err := os.Stat(d)
			if err != nil {
				t.Fatal(err)
			}
			if got := di.Mode().Perm(); got != 0o700 {
				t.Fatalf("dir %s mode = %#o, want 0700", d, got)
			}
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 64 || !strings.HasPrefix(string(b), "veil-master-key-v1\n") || b[63] != '\n' {
		t.Fatalf("file content has the wrong shape (%d bytes)", len(b))
	}
	fromFile, err := ParseMasterKey(b)
	if err != nil {
		t.Fatal(err)
	}
	if !fromFile.Equal(m) {
		t.Fatal("returned key differs from the file")
	}
	// No temporary file is left behind.
	ents, _ := os.ReadDir(filepath.Dir(path))
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the key", len(ents))
	}

	again, created, err := LoadOrCreateMasterKey(path, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Fatal("created = true on reload")
	}
	if !again.Equal(m) {
		t.Fatal("reload gives a different key")
	}
	// Same pseudonyms from the reloaded key.
	if NewKeyring(m).Project(3, 1).Pseudonym(FieldDistinctID, "u") != NewKeyring(again).Project(3, 1).Pseudonym(FieldDistinctID, "u") {
		t.Fatal("reloaded key gives other pseudonyms")
	}

	// Two fresh files get two different keys.
	other, _, err := LoadOrCreateMasterKey(filepath.Join(keyDir, "other.key"), dataDir)
	if err != nil {
		t.Fatal(err)
	}
	if other.Equal(m) {
		t.Fatal("two created keys are equal")
	}
}

func TestLoadOrCreateConcurrentCreators(t *testing.T) {
	dataDir, keyDir := keyDirs(t)
	path := filepath.Join(keyDir, "master.key")
	const n = 8
	keys := make([]*MasterKey, n)
	created := make([]bool, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { keys[i], created[i], errs[i] = LoadOrCreateMasterKey(path, dataDir) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if created[i] {
			creators++
		}
		if !keys[i].Equal(keys[0]) {
			t.Fatal("concurrent creators ended with different keys")
		}
	}
	if creators != 1 {
		t.Fatalf("%d callers report creating the key, want 1", creators)
	}
}

func TestLoadOrCreateRefusesLoosePermissions(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("file modes do not describe access on Windows")
	}
	dataDir, keyDir := keyDirs(t)
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o606, 0o700 | 0o001} {
		path := filepath.Join(keyDir, fmt.Sprintf("key-%o", mode))
		if err := os.WriteFile(path, []byte(testKeyFile), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadOrCreateMasterKey(path, dataDir)
		if err == nil || !strings.Contains(err.Error(), "0600 or stricter") || !strings.Contains(err.Error(), fmt.Sprintf("%#o", mode)) {
			t.Fatalf("mode %#o: err = %v, want a refusal naming the mode", mode, err)
		}
		// Refused, not repaired.
		fi, _ := os.Stat(path)
		if fi.Mode().Perm() != mode {
			t.Fatalf("mode changed to %#o", fi.Mode().Perm())
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		path := filepath.Join(keyDir, fmt.Sprintf("ok-%o", mode))
		if err := os.WriteFile(path, []byte(testKeyFile), mode); err != nil {
			t.Fatal(err)
		}
		m, created, err := LoadOrCreateMasterKey(path, dataDir)
		if err != nil || created || !m.Equal(testMasterKey(t)) {
			t.Fatalf("mode %#o: created=%v err=%v", mode, created, err)
		}
	}
}

func TestLoadOrCreateRefusesForeignOwner(t *testing.T) {
	if runtime.GOOS == "windows" || os.Geteuid() != 0 {
		t.Skip("needs root to give a file away")
	}
	dataDir, keyDir := keyDirs(t)
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(keyDir, "master.key")
	if err := os.WriteFile(path, []byte(testKeyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Skip(err)
	}
	_, _, err := LoadOrCreateMasterKey(path, dataDir)
	if err == nil || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("err = %v, want an owner refusal", err)
	}
}

func TestLoadOrCreateRefusesCorruptFile(t *testing.T) {
	dataDir, keyDir := keyDirs(t)
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{
		"empty":     "",
		"truncated": testKeyFile[:40],
		"garbage":   strings.Repeat("\x00\xff", 32),
		"huge":      strings.Repeat(testKeyFile, 1000),
	} {
		path := filepath.Join(keyDir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, created, err := LoadOrCreateMasterKey(path, dataDir)
		if !errors.Is(err, ErrBadKeyFile) || created {
			t.Fatalf("%s: created=%v err=%v, want ErrBadKeyFile", name, created, err)
		}
		if !strings.Contains(err.Error(), path) {
			t.Fatalf("%s: error does not name the file: %v", name, err)
		}
		// Never overwritten.
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Fatalf("%s: corrupt file was modified", name)
		}
	}

	// A link to a key that is gone is not silently replaced by a new key.
	dangling := filepath.Join(keyDir, "dangling.key")
	mustSymlink(t, filepath.Join(keyDir, "gone.key"), dangling)
	if _, _, err := LoadOrCreateMasterKey(dangling, dataDir); err == nil || !strings.Contains(err.Error(), "symbolic link to a missing file") {
		t.Fatalf("dangling link: err = %v", err)
	}
	if _, err := os.Lstat(filepath.Join(keyDir, "gone.key")); err == nil {
		t.Fatal("a key was created behind a dangling link")
	}

	dir := filepath.Join(keyDir, "a-directory")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreateMasterKey(dir, dataDir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("directory: err = %v", err)
	}
}

func TestLoadOrCreateRefusesInsideDataDir(t *testing.T) {
	dataDir, keyDir := keyDirs(t)
	root := filepath.Dir(dataDir)
	if err := os.MkdirAll(filepath.Join(dataDir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A symlink outside that leads into the data directory.
	mustSymlink(t, dataDir, filepath.Join(root, "data-link"))
	// A symlink inside the data directory that leads to a key outside.
	outsideKey := filepath.Join(keyDir, "outside.key")
	if err := os.WriteFile(outsideKey, []byte(testKeyFile), 0o600); err != nil {
		t.Fatal(err)
	}
	mustSymlink(t, outsideKey, filepath.Join(dataDir, "key-link"))
	// A key file path that is a symlink to a file inside the data directory.
	mustSymlink(t, filepath.Join(dataDir, "real.key"), filepath.Join(keyDir, "points-in.key"))
	// A directory symlink whose ".." leads into the data directory:
	// root/jump -> root/data/sub, so root/jump/../x is root/data/x.
	mustSymlink(t, filepath.Join(dataDir, "sub"), filepath.Join(root, "jump"))

	t.Chdir(root)
	cases := map[string]struct{ key, data string }{
		"direct":             {filepath.Join(dataDir, "master.key"), dataDir},
		"nested_missing":     {filepath.Join(dataDir, "a", "b", "master.key"), dataDir},
		"the_dir_itself":     {dataDir, dataDir},
		"dotdot":             {filepath.Join(keyDir, "..", "data", "master.key"), dataDir},
		"dotdot_raw":         {keyDir + "/../data/master.key", dataDir},
		"relative":           {"data/master.key", dataDir},
		"relative_data":      {filepath.Join(dataDir, "master.key"), "data"},
		"relative_both":      {"./etc/../data/k", "./data/"},
		"via_symlinked_path": {filepath.Join(root, "data-link", "master.key"), dataDir},
		"via_symlinked_data": {filepath.Join(dataDir, "master.key"), filepath.Join(root, "data-link")},
		"symlink_in_data":    {filepath.Join(dataDir, "key-link"), dataDir},
		"symlink_points_in":  {filepath.Join(keyDir, "points-in.key"), dataDir},
		"link_then_dotdot":   {filepath.Join(root, "jump") + "/../master.key", dataDir},
		"data_missing_yet":   {filepath.Join(root, "new-data", "k"), filepath.Join(root, "new-data")},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, created, err := LoadOrCreateMasterKey(c.key, c.data)
			if err == nil || created || !strings.Contains(err.Error(), "inside the data directory") {
				t.Fatalf("err = %v, created = %v; want a refusal", err, created)
			}
			if !strings.Contains(err.Error(), "must never") && !strings.Contains(err.Error(), "would get the key") {
				t.Fatalf("error does not say why: %v", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dataDir, "master.key")); err == nil {
		t.Fatal("a key was created inside the data directory")
	}

	// Beside the data directory, and in its parent, is fine; so is a
	// sibling whose name shares the data directory's as a prefix.
	for _, p := range []string{filepath.Join(root, "master.key"), filepath.Join(root, "data2", "master.key"), filepath.Join(root, "data-key")} {
		if _, _, err := LoadOrCreateMasterKey(p, dataDir); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	if _, _, err := LoadOrCreateMasterKey(filepath.Join(keyDir, "k"), ""); err == nil {
		t.Fatal("empty data directory accepted")
	}
	if _, _, err := LoadOrCreateMasterKey("", dataDir); err == nil {
		t.Fatal("empty path accepted")
	}
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Skip("symlinks unavailable:", err)
	}
}
