package idmap

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestOrdinalsAndMerges(t *testing.T) {
	m := New()
	a, b, c := m.Ordinal("a"), m.Ordinal("b"), m.Ordinal("c")
	if a != 0 || b != 1 || c != 2 || m.Ordinal("b") != 1 || m.Len() != 3 {
		t.Fatalf("ordinals %d %d %d, len %d", a, b, c, m.Len())
	}
	if !m.Merge(c, b) || m.Merge(b, c) {
		t.Fatal("merge should join once")
	}
	if m.Canonical(c) != b || m.Canonical(b) != b || m.Canonical(a) != a {
		t.Fatalf("canonical: %d %d %d", m.Canonical(a), m.Canonical(b), m.Canonical(c))
	}
	m.Merge(c, a)
	if got := m.Members(b); fmt.Sprint(got) != "[0 1 2]" {
		t.Fatalf("members %v", got)
	}
}

func TestPersistRoundTripAndCommittedPrefix(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	m := New()
	var file bytes.Buffer
	var committed []int64
	for step := range 20 {
		for range 50 {
			m.Ordinal(fmt.Sprintf("p0_user%04d", r.IntN(800)))
			if m.Len() > 2 && r.IntN(10) == 0 {
				m.Merge(uint32(r.IntN(m.Len())), uint32(r.IntN(m.Len())))
			}
		}
		if _, err := m.Sync(&file); err != nil {
			t.Fatal(err)
		}
		committed = append(committed, int64(file.Len()))
		_ = step
	}
	// A torn write after the last commit is ignored.
	file.Write([]byte{kindID, 5, 'x'})
	got, err := Read(bytes.NewReader(file.Bytes()), committed[len(committed)-1])
	if err != nil {
		t.Fatal(err)
	}
	if got.Len() != m.Len() {
		t.Fatalf("len %d, want %d", got.Len(), m.Len())
	}
	for o := range m.Len() {
		if got.ID(uint32(o)) != m.ID(uint32(o)) || got.Canonical(uint32(o)) != m.Canonical(uint32(o)) {
			t.Fatalf("ordinal %d differs", o)
		}
	}
	// Every committed prefix reads; a flipped byte is caught.
	for _, n := range committed {
		if _, err := Read(bytes.NewReader(file.Bytes()), n); err != nil {
			t.Fatalf("prefix %d: %v", n, err)
		}
	}
	bad := bytes.Clone(file.Bytes())
	bad[len(bad)/2] ^= 0x40
	if _, err := Read(bytes.NewReader(bad), committed[len(committed)-1]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("flipped byte: %v", err)
	}
	if _, err := Read(bytes.NewReader(file.Bytes()), committed[len(committed)-1]-1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("cut entry: %v", err)
	}
}

func FuzzRead(f *testing.F) {
	m := New()
	m.Ordinal("p0_a")
	m.Ordinal("p0_b")
	m.Merge(0, 1)
	var b bytes.Buffer
	m.Sync(&b)
	f.Add(b.Bytes())
	f.Add([]byte{kindMerge, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Read(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		var out bytes.Buffer
		m2 := New()
		for o := range m.Len() {
			m2.Ordinal(m.ID(uint32(o)))
		}
		for o := range m.Len() {
			m2.Merge(uint32(o), m.Canonical(uint32(o)))
		}
		m2.Sync(&out)
		back, err := Read(bytes.NewReader(out.Bytes()), int64(out.Len()))
		if err != nil || back.Len() != m.Len() {
			t.Fatalf("re-encoded map does not read back: %v", err)
		}
		for o := range m.Len() {
			if back.Canonical(uint32(o)) != m.Canonical(uint32(o)) {
				t.Fatalf("canonical of %d differs", o)
			}
		}
	})
}
