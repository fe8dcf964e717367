package wire

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"hash/crc32"
	"io"
	"net/url"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// seedJSON are JSON texts for the parser fuzzers: real payloads plus the
// corners of the grammar.
func seedJSON(f *testing.F) [][]byte {
	seeds := [][]byte{
		[]byte(`{"event":"a","properties":{"token":"t","time":1795376173.909,"$insert_id":"4gucgsdruv9f22x8"}}`),
		[]byte(`[{"$token":"t","$distinct_id":"u","$set":{"$email":"a@example.com","n":[1,2.5,-3e2,true,false,null]}}]`),
		[]byte(`["\"\\\/\b\f\n\r\t\u00e9\ud83d\ude80\ud83d\u0041\ude80"]`),
		[]byte("[\"a\xffb\xed\xa0\x80\"]"),
		[]byte(`{"a":1,"a":2,"b":{"a":3,"a":[]}}`),
		[]byte(` [ 0 , -0 , 0.1e-2 , 1E+308, 1e309, 123456789012345678901234567890 ] `),
		[]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`),
		[]byte(`{"a":[1,2,}`),
		[]byte("{}\n{\"b\":2}\r\n\n[1]\n"),
		[]byte(`"x"`), []byte(`-`), []byte(``), []byte(` `), []byte(`nul`),
	}
	// One real event each, not whole batches: the fuzzer minimizes every
	// input that finds new coverage, and on inputs of several kilobytes
	// that eats most of the fuzzing time.
	if data, err := os.ReadFile("testdata/browser_batch_data.json"); err == nil {
		var events []json.RawMessage
		if json.Unmarshal(data, &events) == nil && len(events) > 1 {
			seeds = append(seeds, events[1])
		}
	}
	batch := browserBatch(1)
	seeds = append(seeds, batch[1:len(batch)-1])
	return seeds
}

func FuzzParseItems(f *testing.F) {
	for _, s := range seedJSON(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		checkAgainstStdlib(t, data)
	})
}

// FuzzParseNDJSON checks NDJSON mode against json.Decoder, which reads a
// stream of values, plus the rule that values are newline-separated.
func FuzzParseNDJSON(f *testing.F) {
	for _, s := range seedJSON(f) {
		f.Add(s)
	}
	f.Add([]byte("{\"a\":1}\n{\"b\":2}\n"))
	f.Add([]byte("{} {}"))
	f.Add([]byte("[1]\n[2]"))
	f.Add([]byte("1\n2\n\n3 "))
	f.Fuzz(func(t *testing.T, data []byte) {
		items, err := ParseItems(data, ParseOptions{NDJSON: true, MaxDepth: 10000})
		if err != nil {
			checkErrorText(t, err)
		}

		type span struct{ start, end int }
		var vals []any
		var spans []span
		valid := true
		dec := json.NewDecoder(bytes.NewReader(data))
		prevEnd := 0
		for {
			var v any
			err := dec.Decode(&v)
			if err == io.EOF {
				break
			}
			if err != nil {
				valid = false
				break
			}
			end := int(dec.InputOffset())
			start := prevEnd + skipSpace(data[prevEnd:])
			if len(vals) > 0 && bytes.IndexByte(data[prevEnd:start], '\n') < 0 {
				valid = false // two values on one line
				break
			}
			vals = append(vals, v)
			spans = append(spans, span{start, end})
			prevEnd = end
		}
		if len(vals) == 0 && valid {
			valid = false // empty payload
		}
		if !valid {
			if err == nil {
				t.Fatalf("accepted %q", data)
			}
			return
		}
		if err != nil {
			t.Fatalf("rejected %q: %v", data, err)
		}
		if len(vals) == 1 && firstByte(data) == '[' {
			if where, ok := sameAny(vals[0], itemsAny(items, true)); !ok {
				t.Fatalf("array differs at %s", where)
			}
			return
		}
		if len(items) != len(vals) {
			t.Fatalf("%d items, want %d", len(items), len(vals))
		}
		for i := range vals {
			if where, ok := sameAny(vals[i], toAny(items[i].Value)); !ok {
				t.Fatalf("item %d differs at %s", i, where)
			}
			sp := spans[i]
			if items[i].Size != sp.end-sp.start {
				t.Fatalf("item %d size %d, want %d", i, items[i].Size, sp.end-sp.start)
			}
			if line := 1 + bytes.Count(data[:sp.start], []byte("\n")); items[i].Line != line {
				t.Fatalf("item %d line %d, want %d", i, items[i].Line, line)
			}
		}
	})
}

// FuzzExtractPayload runs arbitrary bodies and queries (no panics, known
// error texts only) and round-trips a payload through every base64 and
// form spelling a client might use.
func FuzzExtractPayload(f *testing.F) {
	for _, s := range []string{
		"data=eyJhIjoxfQ%3D%3D", "data=eyJhIjoxfQ", "api_key=x&data=e30&verbose=1", "data=%7B%22a%22%3A1%7D",
		" {\"a\":1}", "[]", "data=%zz", "data=QQ==QQ", "data=", "&&=&data&", "data=\xed\xa0\xbd",
	} {
		f.Add([]byte(s), "", []byte(`{"k":"v"}`), uint8(0))
	}
	f.Add([]byte(""), "ip=1&data=eyJhIjoxfQ%3D%3D", []byte("{\"name\":\"\xed\xa0\xbd\xed\xba\x80\"}"), uint8(255))
	f.Add([]byte("verbose=1"), "data=%5B%5D", []byte("[1,2]"), uint8(7))
	f.Fuzz(func(t *testing.T, body []byte, rawQuery string, payload []byte, variant uint8) {
		// Arbitrary input.
		q, _ := url.ParseQuery(rawQuery)
		p, err := ExtractPayload(body, q)
		if err != nil {
			checkErrorText(t, err)
		} else {
			switch p.Encoding {
			case EncodingBody:
				if !bytes.Equal(p.Data, body) || p.Form != nil {
					t.Fatal("body payload is not the body")
				}
			case EncodingJSON, EncodingBase64:
			default:
				t.Fatalf("encoding %q", p.Encoding)
			}
		}

		// Round trip: payload encoded as a client would.
		if len(payload) == 0 {
			return
		}
		enc := base64.StdEncoding
		if variant&1 != 0 {
			enc = base64.URLEncoding
		}
		if variant&2 != 0 {
			enc = enc.WithPadding(base64.NoPadding)
		}
		b64 := enc.EncodeToString(payload)
		if variant&4 != 0 { // MIME-style line breaks
			var sb strings.Builder
			for i := 0; i < len(b64); i += 76 {
				sb.WriteString(b64[i:min(i+76, len(b64))])
				sb.WriteString("\r\n")
			}
			b64 = sb.String()
		}
		value := url.QueryEscape(b64)
		if variant&8 != 0 { // '+' not percent-encoded: arrives as a space
			value = strings.ReplaceAll(value, "%2B", "+")
		}
		if variant&8 != 0 && strings.Trim(b64, "+\r\n") == "" {
			return // nothing but spaces: an empty data field, not base64
		}
		var form string
		if variant&16 != 0 {
			form = "api_key=k&data=" + value + "&verbose=1"
		} else {
			form = "data=" + value
		}
		if variant&32 != 0 {
			p, err = ExtractPayload(nil, url.Values{"data": {b64}})
		} else {
			p, err = ExtractPayload([]byte(form), nil)
		}
		if err != nil {
			t.Fatalf("round trip of %q (%s): %v", payload, form, err)
		}
		if p.Encoding != EncodingBase64 || !bytes.Equal(p.Data, RepairCESU8(payload)) {
			t.Fatalf("round trip: got %q (%s), want %q", p.Data, p.Encoding, payload)
		}
		if variant&16 != 0 && variant&32 == 0 && (p.Form.Get("api_key") != "k" || p.Form.Get("verbose") != "1") {
			t.Fatalf("form %v", p.Form)
		}
	})
}

// FuzzReadBody compares ReadBody with compress/gzip on arbitrary bodies
// and checks that gzipped data comes back whole or is refused for size.
func FuzzReadBody(f *testing.F) {
	for _, s := range [][]byte{nil, []byte("data=e30"), []byte(`[{"a":1}]`), {0x1f}, {0x1f, 0x8b}} {
		f.Add(s, uint8(0), uint16(100))
	}
	gz := gzipBytes(f, []byte(`[{"event":"a"}]`))
	f.Add(gz, uint8(1), uint16(100))
	f.Add(gz, uint8(0), uint16(5))
	f.Add(gz[:len(gz)-3], uint8(1), uint16(1000))
	f.Add(append(bytes.Clone(gz), gz...), uint8(0), uint16(1000))
	f.Fuzz(func(t *testing.T, data []byte, mode uint8, limit16 uint16) {
		limit := int64(limit16)
		encs := []string{"", "gzip", "identity", "x-gzip"}
		enc := encs[int(mode>>1)%len(encs)]

		if mode&1 != 0 { // gzip the data: it must come back exactly
			zb := bytes.NewBuffer(storedGzip(data))
			got, err := ReadBody(bytes.NewReader(zb.Bytes()), enc, 1<<20)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("gzip round trip: %v", err)
			}
			got, err = ReadBody(bytes.NewReader(zb.Bytes()), enc, limit)
			if int64(len(data)) > limit {
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("want ErrTooLarge, got %v", err)
				}
			} else if zb.Len() <= int(limit) && (err != nil || !bytes.Equal(got, data)) {
				t.Fatalf("gzip within limit: %v", err)
			}
			return
		}

		got, err := ReadBody(bytes.NewReader(data), enc, limit)
		if err != nil {
			checkErrorText(t, err)
		}
		if int64(len(got)) > limit {
			t.Fatalf("returned %d bytes, limit %d", len(got), limit)
		}
		magic := len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b
		switch {
		case len(data) == 0:
			if err != nil || got == nil || len(got) != 0 {
				t.Fatalf("empty body: %q, %v", got, err)
			}
		case int64(len(data)) > limit:
			if err == nil {
				t.Fatalf("accepted a %d-byte body with limit %d", len(data), limit)
			}
		case !magic && (enc == "" || enc == "identity"):
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("plain body: %v", err)
			}
		default: // inflated: compare with compress/gzip
			zr, zerr := gzip.NewReader(bytes.NewReader(data))
			var want []byte
			if zerr == nil {
				want, zerr = io.ReadAll(io.LimitReader(zr, limit+1))
			}
			switch {
			case zerr != nil:
				if err == nil {
					t.Fatalf("accepted what compress/gzip rejects (%v)", zerr)
				}
			case int64(len(want)) > limit:
				if !errors.Is(err, ErrTooLarge) {
					t.Fatalf("want ErrTooLarge, got %v", err)
				}
			default:
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("got %q, %v; want %q", got, err, want)
				}
			}
		}
	})
}

// storedGzip wraps data in a gzip member made of stored deflate blocks.
// compress/gzip's writer allocates over half a megabyte per use, which
// would slow the fuzzer down tenfold; real compressed members come from
// the seeds and their mutations.
func storedGzip(data []byte) []byte {
	out := []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}
	crc, size := crc32.ChecksumIEEE(data), uint32(len(data))
	for first := true; first || len(data) > 0; first = false {
		n := min(len(data), 0xffff)
		final := byte(0)
		if n == len(data) {
			final = 1
		}
		out = append(out, final, byte(n), byte(n>>8), ^byte(n), ^byte(n>>8))
		out = append(out, data[:n]...)
		data = data[n:]
	}
	out = binary.LittleEndian.AppendUint32(out, crc)
	return binary.LittleEndian.AppendUint32(out, size)
}

// isCESU8OrUTF8 reports whether b is valid UTF-8 in which characters
// outside the BMP may also appear as CESU-8 surrogate pairs.
func isCESU8OrUTF8(b []byte) bool {
	for len(b) > 0 {
		if indexSurrogatePair(b, 0) == 0 {
			b = b[6:]
			continue
		}
		r, size := utf8.DecodeRune(b)
		if r == utf8.RuneError && size == 1 {
			return false
		}
		b = b[size:]
	}
	return true
}

func FuzzRepairCESU8(f *testing.F) {
	for _, s := range []string{
		"", "abc", "\xed\xa0\xbd\xed\xba\x80", "Zoë 日本 \xed\xa0\xbd\xed\xba\x80!", "\xed\xa0\xbd", "\xed\xa0\xbd\xed\xa0\xbd\xed\xba\x80",
		"한국어", "\xed\xa0\xbd\xed\xba", "\xed\xba\x80\xed\xa0\xbd", "\xff\xed\xa0\x80\xed\xb0\x80\xed",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		out := RepairCESU8(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("input modified")
		}
		if isCESU8OrUTF8(in) && !utf8.Valid(out) {
			t.Fatalf("% x repaired to invalid UTF-8 % x", in, out)
		}
		if utf8.Valid(in) && !bytes.Equal(out, in) {
			t.Fatal("valid UTF-8 changed")
		}
		if again := RepairCESU8(out); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent: % x -> % x -> % x", in, out, again)
		}
		if len(out) > len(in) || (len(in)-len(out))%2 != 0 {
			t.Fatalf("length %d -> %d", len(in), len(out))
		}
		// The in-place variant agrees.
		if inPlace := repairCESU8InPlace(bytes.Clone(in)); !bytes.Equal(inPlace, out) {
			t.Fatal("in-place repair differs")
		}
		// Runes other than repaired pairs are unchanged: decoding the
		// output as UTF-8 equals decoding the input with pairs combined.
		var want []rune
		for b := in; len(b) > 0; {
			if indexSurrogatePair(b, 0) == 0 {
				hi := rune(b[1]&0x0F)<<6 | rune(b[2]&0x3F)
				lo := rune(b[4]&0x0F)<<6 | rune(b[5]&0x3F)
				want = append(want, 0x10000+hi<<10+lo)
				b = b[6:]
				continue
			}
			r, size := utf8.DecodeRune(b)
			want = append(want, r)
			b = b[size:]
		}
		if got := []rune(string(out)); string(got) != string(want) {
			t.Fatalf("runes differ: % x -> % x", in, out)
		}
	})
}
