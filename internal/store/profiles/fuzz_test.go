package profiles

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/veil-analytics/veil/internal/event"
)

func FuzzRead(f *testing.F) {
	var empty State
	f.Add(snapshot(f, &empty))
	f.Add(snapshot(f, sampleState()))
	small := &State{}
	small.Apply(user(op("$set", o("a", 1, "l", l("x", o("k", nil))))))
	small.Apply(group("company", "acme", op("$union", o("l", l(1, 2)))))
	f.Add(snapshot(f, small))
	// Small hand-made bodies, so that mutations reach every branch.
	f.Add(seal(body(1, []byte{2}, 1, "u", props("a", 1, "b", "x", "c", nil, "d", true), 0)))
	f.Add(seal(body(1, []byte{2}, 0, 1, "company", 2, "acme", props("l", l(1, "x", l(false))), "b", props("o", o("k", 1.5)))))
	f.Add(seal(body(2, []byte{1}, 1, "u", props(), 0, []byte{2}, 1, "v", props("n", 1), 1, "k", 1, "g", props())))
	f.Add(seal(body(1, []byte{2}, 1, "u", manyProps(20, false), 0)))
	f.Add(seal(body(1, []byte{2}, 1, "u", "\x01\x01a"+strings.Repeat("\x05\x01", maxNesting)+"\x00", 0)))
	g := &gen{r: rand.New(rand.NewPCG(1, 2)), time: 1_700_000_000_000}
	s := &State{}
	for i := range 300 {
		s.Apply(g.update())
		if i%100 == 99 {
			f.Add(snapshot(f, s))
		}
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		checkRead(t, data)
		// Mutations almost never keep the checksum right; fix it up so the
		// fuzzer also explores the parser behind it.
		if len(data) >= headerSize+crcSize {
			checkRead(t, reseal(data))
		}
	})
}

// reseal gives data a correct header and checksum around its body.
func reseal(data []byte) []byte {
	b := bytes.Clone(data)
	copy(b, magic)
	b[len(magic)] = version
	binary.LittleEndian.PutUint64(b[len(magic)+1:], uint64(len(b)-headerSize-crcSize))
	binary.LittleEndian.PutUint32(b[len(b)-crcSize:], crc32.Checksum(b[:len(b)-crcSize], castagnoli))
	return b
}

func checkRead(t *testing.T, data []byte) {
	s, err := Read(bytes.NewReader(data))
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error does not wrap ErrCorrupt: %v", err)
		}
		return
	}
	if out := snapshot(t, s); !bytes.Equal(out, data) {
		t.Fatalf("accepted input rewritten differently:\n in  %x\n out %x", data, out)
	}
	// Whatever Read accepts, Apply and the readers must cope with, and the
	// result must still make a snapshot Read accepts.
	for pid, p := range s.projects {
		var ups []*event.ProfileUpdate
		s.EachUser(pid, func(id string, props []event.Field) bool {
			ups = append(ups, touchAll(&event.ProfileUpdate{Project: pid, DistinctID: id, Time: 1}, props))
			return len(ups) < 20
		})
		for key, ids := range p.groups {
			for id := range ids {
				props, ok := s.Group(pid, key, id)
				if !ok {
					t.Fatalf("group %q/%q listed but not found", key, id)
				}
				ups = append(ups, touchAll(&event.ProfileUpdate{Project: pid, GroupKey: key, GroupID: id}, props))
				break
			}
		}
		for _, u := range ups {
			s.Apply(u)
		}
	}
	mustRead(t, snapshot(t, s))
}

// touchAll adds to u ops that read and rewrite every property in props.
func touchAll(u *event.ProfileUpdate, props []event.Field) *event.ProfileUpdate {
	add, app, uni, rem, once := o(), o(), o(), o(), o()
	for i, f := range props {
		if i == 50 {
			break
		}
		add.Fields = append(add.Fields, event.Field{Key: f.Key, Value: v(1)})
		app.Fields = append(app.Fields, event.Field{Key: f.Key, Value: v("x")})
		uni.Fields = append(uni.Fields, event.Field{Key: f.Key, Value: l("x", f.Value)})
		once.Fields = append(once.Fields, event.Field{Key: f.Key, Value: v(0)})
		item := f.Value
		if f.Value.Kind == event.Array && len(f.Value.Items) > 0 {
			item = f.Value.Items[0]
		}
		rem.Fields = append(rem.Fields, event.Field{Key: f.Key, Value: item})
	}
	u.Ops = []event.ProfileOp{op("$set_once", once), op("$add", add), op("$union", uni), op("$append", app), op("$remove", rem)}
	return u
}
