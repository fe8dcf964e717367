package pseudonym

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
)

// Field names the domain a value is pseudonymised in. The same value in two
// fields gives two unrelated pseudonyms. Fields are chosen by code and
// policy, never read from an event, and must not contain a NUL byte.
type Field string

// Fields the privacy stage uses; groups and properties are built with
// [GroupField] and [PropertyField].
const (
	FieldDistinctID Field = "distinct_id"
	FieldDeviceID   Field = "device_id"
	FieldUserID     Field = "user_id"
	FieldEmail      Field = "email"
)

// GroupField is the field of the ids of group key (e.g. "company"):
// "group:<key>".
func GroupField(key string) Field { return Field("group:" + key) }

// PropertyField is the field of an identifier property: "property:<name>".
func PropertyField(name string) Field { return Field("property:" + name) }

// Keyring derives per-project, per-epoch pseudonym keys from a master key.
// It is safe for concurrent use.
type Keyring struct {
	master secret

	// projects caches Pseudonymizers by projectEpoch; cached counts its
	// entries so that a flood of distinct project ids cannot grow it
	// without bound (beyond maxCached, Project derives every time).
	projects sync.Map
	cached   atomic.Int32
}

type projectEpoch struct {
	project int64
	epoch   uint32
}

// maxCached bounds the Pseudonymizers a Keyring keeps; far above the
// number of projects one installation serves.
const maxCached = 4096

// NewKeyring returns a keyring over a copy of m.
func NewKeyring(m *MasterKey) *Keyring {
	if m == nil || m.b == nil {
		panic("pseudonym: NewKeyring with no master key")
	}
	kb := new([KeySize]byte)
	*kb = *m.b()
	return &Keyring{master: newSecret(kb)}
}

// String returns "[redacted]".
func (*Keyring) String() string { return redacted }

// GoString returns "[redacted]".
func (*Keyring) GoString() string { return redacted }

// Format writes "[redacted]" whatever the verb.
func (*Keyring) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue keeps the keyring out of structured logs.
func (*Keyring) LogValue() slog.Value { return slog.StringValue(redacted) }

// Project returns the Pseudonymizer of one project and key epoch. Repeated
// calls with the same arguments return the same Pseudonymizer.
func (k *Keyring) Project(projectID int64, epoch uint32) *Pseudonymizer {
	pe := projectEpoch{projectID, epoch}
	if p, ok := k.projects.Load(pe); ok {
		return p.(*Pseudonymizer)
	}
	p := newPseudonymizer(k.derive(projectID, epoch), projectID, epoch)
	if k.cached.Load() >= maxCached {
		return p
	}
	actual, loaded := k.projects.LoadOrStore(pe, p)
	if !loaded {
		k.cached.Add(1)
	}
	return actual.(*Pseudonymizer)
}

// derive returns HKDF-SHA-256(master, salt=none, info, 32) for the project
// and epoch; see the package documentation.
func (k *Keyring) derive(projectID int64, epoch uint32) *[KeySize]byte {
	info := deriveInfo(projectID, epoch)
	b, err := hkdf.Key(sha256.New, k.master()[:], nil, info, KeySize)
	if err != nil {
		// Only possible for lengths beyond 255 hash blocks or a non-SHA-2
		// hash in FIPS-only mode; neither applies.
		panic("pseudonym: BUG: HKDF failed: " + err.Error())
	}
	key := new([KeySize]byte)
	copy(key[:], b)
	clear(b)
	return key
}

// deriveInfo is the HKDF info string of a project and epoch.
func deriveInfo(projectID int64, epoch uint32) string {
	return "veil/pseudonym/v1/project/" + strconv.FormatInt(projectID, 10) + "/epoch/" + strconv.FormatUint(uint64(epoch), 10)
}

// Pseudonymizer computes the pseudonyms of one project under one key epoch.
// It is safe for concurrent use.
type Pseudonymizer struct {
	projectID int64
	epoch     uint32
	prefix    string // "p<epoch>_"

	// macs holds *macState, each an HMAC already keyed for this project
	// and epoch: keying costs two SHA-256 blocks and four allocations, a
	// pooled state none.
	macs sync.Pool
}

// macState is one pooled HMAC with its scratch space.
type macState struct {
	h   hash.Hash
	in  []byte // field || 0x00 || value
	sum [sha256.Size]byte
}

// maxPooledInput is the largest input buffer put back in the pool, so that
// one huge value does not pin its buffer for good.
const maxPooledInput = 1 << 10

func newPseudonymizer(key *[KeySize]byte, projectID int64, epoch uint32) *Pseudonymizer {
	p := &Pseudonymizer{
		projectID: projectID,
		epoch:     epoch,
		prefix:    "p" + strconv.FormatUint(uint64(epoch), 10) + "_",
	}
	p.macs.New = func() any {
		return &macState{h: hmac.New(sha256.New, key[:]), in: make([]byte, 0, 128)}
	}
	return p
}

// ProjectID is the project p pseudonymises for.
func (p *Pseudonymizer) ProjectID() int64 { return p.projectID }

// Epoch is the key epoch p uses.
func (p *Pseudonymizer) Epoch() uint32 { return p.epoch }

// String returns "[redacted]".
func (*Pseudonymizer) String() string { return redacted }

// GoString returns "[redacted]".
func (*Pseudonymizer) GoString() string { return redacted }

// Format writes "[redacted]" whatever the verb.
func (*Pseudonymizer) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, redacted) }

// LogValue keeps the pseudonymizer out of structured logs.
func (*Pseudonymizer) LogValue() slog.Value { return slog.StringValue(redacted) }

// digestLen is how many bytes of the HMAC a pseudonym keeps (128 bits).
const digestLen = 16

// encodedLen is the length of the base64url part of a pseudonym.
var encodedLen = base64.RawURLEncoding.EncodedLen(digestLen) // 22

// MaxLen is the longest pseudonym: "p4294967295_" and 22 characters.
const MaxLen = 1 + 10 + 1 + 22

// Pseudonym returns the pseudonym of value in field:
// "p<epoch>_" + base64url(no padding) of the first 16 bytes of
// HMAC-SHA-256(key, field || 0x00 || Normalize(field, value)).
// It does not look at whether value already is a pseudonym; callers that
// may see one check [IsPseudonym] first.
func (p *Pseudonymizer) Pseudonym(field Field, value string) string {
	var buf [MaxLen]byte
	return string(p.AppendPseudonym(buf[:0], field, value))
}

// AppendPseudonym appends the pseudonym of value in field to dst.
func (p *Pseudonymizer) AppendPseudonym(dst []byte, field Field, value string) []byte {
	v := Normalize(field, value)
	s := p.macs.Get().(*macState)
	s.in = append(s.in[:0], field...)
	s.in = append(s.in, 0)
	s.in = append(s.in, v...)
	s.h.Reset()
	s.h.Write(s.in)
	sum := s.h.Sum(s.sum[:0])
	dst = append(dst, p.prefix...)
	dst = base64.RawURLEncoding.AppendEncode(dst, sum[:digestLen])
	clear(s.in) // the raw value must not linger in pooled memory
	if cap(s.in) > maxPooledInput {
		s.in = nil
	}
	p.macs.Put(s)
	return dst
}

// IsPseudonym reports whether s has the exact shape of a pseudonym: "p",
// an epoch in canonical decimal (0 to 4294967295, no leading zeros), "_",
// and 22 base64url characters encoding 16 bytes (so the last one carries
// no stray bits). The privacy stage leaves such values as they are, so an
// event processed twice is not hashed twice.
func IsPseudonym(s string) bool {
	if len(s) < 1+1+1+encodedLen || len(s) > MaxLen || s[0] != 'p' {
		return false
	}
	digits := len(s) - encodedLen - 2
	if s[1+digits] != '_' {
		return false
	}
	if digits > 1 && s[1] == '0' {
		return false
	}
	var epoch uint64
	for i := 1; i <= digits; i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return false
		}
		epoch = epoch*10 + uint64(c-'0')
	}
	if epoch > 1<<32-1 {
		return false
	}
	enc := s[len(s)-encodedLen:]
	for i := 0; i < len(enc); i++ {
		if b64index(enc[i]) < 0 {
			return false
		}
	}
	// 22 characters hold 132 bits; the last character's low 4 bits must
	// be zero for 16 bytes (what a strict decoder demands).
	return b64index(enc[len(enc)-1])&0x0f == 0
}

// b64index is the value of c in the base64url alphabet, or -1.
func b64index(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '-':
		return 62
	case c == '_':
		return 63
	}
	return -1
}
