package pseudonym

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// TestGoldenVectors pins the derivation: master key bytes 0x00..0x1f
// (testKeyFile), HKDF-SHA-256 with no salt and the documented info, HMAC
// over field || 0x00 || normalized value, first 16 bytes, base64url. The
// expected values were computed independently (Python hmac/hashlib, RFC 5869
// by hand). If this test fails, existing pseudonyms no longer match new
// ones: that is a breaking change needing a new format version, not a new
// expected value.
func TestGoldenVectors(t *testing.T) {
	k := NewKeyring(testMasterKey(t))
	f := func(project int64, epoch uint32, field Field, value, want string) {
		t.Helper()
		if got := k.Project(project, epoch).Pseudonym(field, value); got != want {
			t.Fatalf("Project(%d, %d).Pseudonym(%q, %q) = %q, want %q", project, epoch, field, value, got, want)
		}
	}
	f(1, 1, FieldDistinctID, "8f14e45f-ceea-467f-a0e1-7a1b2c3d4e5f", "p1_rtiIiFGooJuOdL2sTOhOHg")
	// Trimmed and lower-cased before hashing as "alice@example.com".
	f(42, 0, FieldEmail, "  Alice@Example.COM\t", "p0_knbarm6VAeLX6TfGXVuviw")
	// NFD input, hashed as NFC "Café Ltd"; negative id and the largest epoch.
	f(-7, 4294967295, GroupField("company"), "Cafe\u0301 Ltd", "p4294967295_2T3ci-Jpf_zsNugD822shw")

	if got := deriveInfo(-7, 4294967295); got != "veil/pseudonym/v1/project/-7/epoch/4294967295" {
		t.Fatalf("info = %q", got)
	}
}

func TestPseudonymDomains(t *testing.T) {
	k := NewKeyring(testMasterKey(t))
	const v = "user-1234"
	seen := map[string]string{}
	add := func(what, p string) {
		t.Helper()
		if !IsPseudonym(p) {
			t.Fatalf("%s: %q is not pseudonym-shaped", what, p)
		}
		if prev, dup := seen[p]; dup {
			t.Fatalf("%s and %s give the same pseudonym %q", prev, what, p)
		}
		seen[p] = what
	}
	for _, project := range []int64{1, 2, -1, 1 << 40} {
		for _, epoch := range []uint32{0, 1, 2} {
			for _, field := range []Field{FieldDistinctID, FieldDeviceID, FieldUserID, FieldEmail, GroupField("company"), GroupField("team"), PropertyField("account_id"), "distinct_i", "distinct_id\x00"} {
				add(fmt.Sprintf("project %d epoch %d field %q", project, epoch, field), k.Project(project, epoch).Pseudonym(field, v))
			}
		}
	}
	// Same inputs: same output, from a fresh keyring too.
	p := k.Project(1, 1)
	if p.Pseudonym(FieldUserID, v) != NewKeyring(testMasterKey(t)).Project(1, 1).Pseudonym(FieldUserID, v) {
		t.Fatal("not stable across keyrings")
	}
	if !strings.HasPrefix(k.Project(9, 17).Pseudonym(FieldUserID, v), "p17_") {
		t.Fatal("epoch prefix missing")
	}
	// Values differing only in normalisation collide, as they should.
	if p.Pseudonym(FieldUserID, " x ") != p.Pseudonym(FieldUserID, "x") {
		t.Fatal("trimming not applied")
	}
	// A different master key gives different pseudonyms.
	other := testMasterKey(t)
	other.b()[0] ^= 0x80
	if NewKeyring(other).Project(1, 1).Pseudonym(FieldUserID, v) == p.Pseudonym(FieldUserID, v) {
		t.Fatal("master key does not matter")
	}
}

func TestAppendPseudonym(t *testing.T) {
	p := NewKeyring(testMasterKey(t)).Project(5, 3)
	dst := []byte("id=")
	dst = p.AppendPseudonym(dst, FieldDistinctID, "abc")
	if want := "id=" + p.Pseudonym(FieldDistinctID, "abc"); string(dst) != want {
		t.Fatalf("AppendPseudonym = %q, want %q", dst, want)
	}
	// A long value is hashed whole and its buffer not pooled for good.
	long := strings.Repeat("x", 10000)
	if p.Pseudonym(FieldUserID, long) == p.Pseudonym(FieldUserID, long[:9999]) {
		t.Fatal("long value truncated")
	}
}

func TestProjectCached(t *testing.T) {
	k := NewKeyring(testMasterKey(t))
	a, b := k.Project(7, 2), k.Project(7, 2)
	if a != b {
		t.Fatal("Project not cached")
	}
	if a.ProjectID() != 7 || a.Epoch() != 2 {
		t.Fatalf("ProjectID, Epoch = %d, %d", a.ProjectID(), a.Epoch())
	}
	if k.Project(7, 3) == a || k.Project(8, 2) == a {
		t.Fatal("cache mixes projects or epochs")
	}
	// Past the bound Project still works, uncached.
	for i := range int64(maxCached + 10) {
		k.Project(1000+i, 0)
	}
	x := k.Project(-99, 0)
	if x == k.Project(-99, 0) {
		t.Fatal("cache grew past its bound")
	}
	if x.Pseudonym(FieldUserID, "u") != k.Project(-99, 0).Pseudonym(FieldUserID, "u") {
		t.Fatal("uncached pseudonymizers disagree")
	}
}

func TestNormalize(t *testing.T) {
	f := func(field Field, in, want string) {
		t.Helper()
		if got := Normalize(field, in); got != want {
			t.Fatalf("Normalize(%q, %q) = %q, want %q", field, in, got, want)
		}
		if again := Normalize(field, want); again != want {
			t.Fatalf("Normalize not idempotent on %q: %q", want, again)
		}
	}
	// NFC: decomposed "é" (e + U+0301) becomes precomposed U+00E9.
	f(FieldUserID, "Jose\u0301", "Jos\u00e9")
	f(FieldUserID, "Jos\u00e9", "Jos\u00e9")
	f(FieldUserID, "\u212b", "\u00c5") // ANGSTROM SIGN → Å
	// Whitespace, Unicode included, trimmed at both ends only.
	f(FieldUserID, " \t\n user 42 \r\n", "user 42")
	f(FieldUserID, "\u00a0\u2003id\u3000", "id")
	f(FieldUserID, "", "")
	f(FieldUserID, " \t ", "")
	// Non-email values keep their case.
	f(FieldUserID, "User-42", "User-42")
	f(FieldDistinctID, "ABCDEF-0123", "ABCDEF-0123")
	f(PropertyField("account_id"), "Acme@Corp", "Acme@Corp") // no dotted domain
	f(FieldDistinctID, "a@b@c.com", "a@b@c.com")             // two '@'
	f(FieldDistinctID, "Name <A@B.COM>", "Name <A@B.COM>")   // not a bare address
	f(FieldDistinctID, "@Example.com", "@Example.com")
	f(FieldDistinctID, "A@.Example.com", "A@.Example.com")
	f(FieldDistinctID, "A@Example.c", "A@Example.c")
	f(FieldDistinctID, "Hello World@Example.com", "Hello World@Example.com")
	// Emails are lower-cased in any field, once they look like one.
	f(FieldDistinctID, " Alice.Smith+Tag@Example.COM ", "alice.smith+tag@example.com")
	f(FieldEmail, "ALICE@EXAMPLE.COM", "alice@example.com")
	f(PropertyField("contact"), "Ünïcödé@Exämple.de", "ünïcödé@exämple.de")
	f(FieldUserID, "JOSE\u0301@EXAMPLE.COM", "jos\u00e9@example.com")
	// In an email field, any value is lower-cased.
	f(FieldEmail, "NotAnEmail", "notanemail")
	f("$email", "X", "x")
	f(PropertyField("$email"), "X", "x")
	f(PropertyField("Work_Email"), "X", "x")
	f(PropertyField("email_address"), "X", "x")
	f(PropertyField("e-mail"), "X", "x")
	f(PropertyField("emails"), "X", "X")
	f(PropertyField("email_"), "X", "X")
	// Invalid UTF-8 is never rewritten, so distinct inputs stay distinct.
	f(FieldEmail, "A\xffB", "A\xffB")
	f(FieldDistinctID, "A\xff@Example.com", "A\xff@Example.com")
}

func TestNormalizeAllocs(t *testing.T) {
	for _, v := range []string{"8f14e45f-ceea-467f-a0e1-7a1b2c3d4e5f", "  padded  ", "alice@example.com", "Jos\u00e9"} {
		if n := testing.AllocsPerRun(100, func() { _ = Normalize(FieldDistinctID, v) }); n != 0 {
			t.Errorf("Normalize(%q): %v allocs, want 0", v, n)
		}
	}
}

func TestIsPseudonym(t *testing.T) {
	p := NewKeyring(testMasterKey(t)).Project(1, 0)
	for _, s := range []string{
		p.Pseudonym(FieldDistinctID, "x"),
		NewKeyring(testMasterKey(t)).Project(1, 4294967295).Pseudonym(FieldDistinctID, "x"),
		"p0_AAAAAAAAAAAAAAAAAAAAAA",
		"p1_rtiIiFGooJuOdL2sTOhOHg",
		"p10_-_-_-_-_-_-_-_-_-_-_-w",
		"p4294967295_2T3ci-Jpf_zsNugD822shw",
	} {
		if !IsPseudonym(s) {
			t.Errorf("IsPseudonym(%q) = false", s)
		}
	}
	for _, s := range []string{
		"",
		"p",
		"p1_",
		"8f14e45f-ceea-467f-a0e1-7a1b2c3d4e5f",
		"p1_rtiIiFGooJuOdL2sTOhOH",   // 21 characters
		"p1_rtiIiFGooJuOdL2sTOhOHgA", // 23 characters
		"p1_rtiIiFGooJuOdL2sTOhOHh",  // stray low bits in the last character
		"p1_rtiIiFGooJuOdL2sTOhO+g",  // standard, not URL, alphabet
		"p1_rtiIiFGooJuOdL2sTOhO=g",
		"P1_rtiIiFGooJuOdL2sTOhOHg",
		"q1_rtiIiFGooJuOdL2sTOhOHg",
		"p_rtiIiFGooJuOdL2sTOhOHgA",
		"p01_rtiIiFGooJuOdL2sTOhOHg",         // leading zero
		"p4294967296_rtiIiFGooJuOdL2sTOhOHg", // epoch overflows uint32
		"p99999999999_rtiIiFGooJuOdL2sTOhOHg",
		"p1-rtiIiFGooJuOdL2sTOhOHg",
		"p1a_tiIiFGooJuOdL2sTOhOHg",
		" p1_rtiIiFGooJuOdL2sTOhOHg",
		"p1_rtiIiFGooJuOdL2sTOhOHg ",
		"p+1_rtiIiFGooJuOdL2sTOhOHg",
	} {
		if IsPseudonym(s) {
			t.Errorf("IsPseudonym(%q) = true", s)
		}
	}
}

func TestPseudonymConcurrent(t *testing.T) {
	k := NewKeyring(testMasterKey(t))
	values := make([]string, 64)
	want := make([]string, len(values))
	for i := range values {
		values[i] = fmt.Sprintf("user-%d@Example.com", i)
		want[i] = NewKeyring(testMasterKey(t)).Project(int64(i%3), uint32(i%2)).Pseudonym(FieldDistinctID, values[i])
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, 0, MaxLen)
			for n := range 500 {
				i := (g*31 + n) % len(values)
				p := k.Project(int64(i%3), uint32(i%2))
				if got := p.Pseudonym(FieldDistinctID, values[i]); got != want[i] {
					t.Errorf("value %d: %q, want %q", i, got, want[i])
					return
				}
				if got := p.AppendPseudonym(buf[:0], FieldDistinctID, values[i]); string(got) != want[i] {
					t.Errorf("value %d: append %q, want %q", i, got, want[i])
					return
				}
			}
		})
	}
	wg.Wait()
}

func FuzzPseudonym(f *testing.F) {
	for _, s := range []string{"", " ", "8f14e45f-ceea-467f-a0e1-7a1b2c3d4e5f", "Alice@Example.COM", "Cafe\u0301", "\xff\xfe", "p1_rtiIiFGooJuOdL2sTOhOHg", "a@b@c.d", "\u0301 x \u0301", "\u00a0@\u00a0.de"} {
		f.Add("distinct_id", s, uint32(1))
	}
	f.Add("email", "İSTANBUL@EXAMPLE.COM", uint32(0))
	f.Add("property:e-mail", "ǅ", uint32(4294967295))
	k := NewKeyring(testMasterKey(f))
	f.Fuzz(func(t *testing.T, field, value string, epoch uint32) {
		p := k.Project(int64(epoch%5), epoch)
		a := p.Pseudonym(Field(field), value)
		if !IsPseudonym(a) {
			t.Fatalf("%q is not pseudonym-shaped", a)
		}
		if !strings.HasPrefix(a, fmt.Sprintf("p%d_", epoch)) || len(a) > MaxLen {
			t.Fatalf("%q: wrong prefix or length", a)
		}
		if b := p.Pseudonym(Field(field), value); a != b {
			t.Fatalf("not deterministic: %q then %q", a, b)
		}
		n := Normalize(Field(field), value)
		if nn := Normalize(Field(field), n); nn != n {
			t.Fatalf("Normalize not idempotent: %q → %q → %q", value, n, nn)
		}
		if utf8.ValidString(value) && !utf8.ValidString(n) {
			t.Fatalf("Normalize made valid UTF-8 invalid: %q → %q", value, n)
		}
		if b := p.Pseudonym(Field(field), n); a != b {
			t.Fatalf("pseudonym of the normalized value differs: %q vs %q", a, b)
		}
	})
}

// BenchmarkPseudonym measures one pseudonym of a 36-character UUID, the
// common distinct_id, and its append form.
func BenchmarkPseudonym(b *testing.B) {
	p := NewKeyring(testMasterKey(b)).Project(1, 1)
	const uuid = "8f14e45f-ceea-467f-a0e1-7a1b2c3d4e5f"
	b.Run("string", func(b *testing.B) {
		// The result is kept where the caller would keep it (the heap),
		// so the string's one allocation is counted.
		sink := new(string)
		b.Cleanup(func() { _ = *sink })
		b.ReportAllocs()
		for b.Loop() {
			*sink = p.Pseudonym(FieldDistinctID, uuid)
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, MaxLen)
		for b.Loop() {
			buf = p.AppendPseudonym(buf[:0], FieldDistinctID, uuid)
		}
	})
	b.Run("email", func(b *testing.B) {
		sink := new(string)
		b.Cleanup(func() { _ = *sink })
		b.ReportAllocs()
		for b.Loop() {
			*sink = p.Pseudonym(FieldEmail, "  Alice.Smith@Example.com")
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = p.Pseudonym(FieldDistinctID, uuid)
			}
		})
	})
	b.Run("project_lookup", func(b *testing.B) {
		k := NewKeyring(testMasterKey(b))
		b.ReportAllocs()
		for b.Loop() {
			_ = k.Project(1, 1)
		}
	})
}
