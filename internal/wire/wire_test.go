package wire

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"math/bits"
	"math/rand/v2"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/veil-analytics/veil/internal/event"
)

// ---- ReadBody ----

type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func TestReadBody(t *testing.T) {
	plain := []byte(`[{"event":"a","properties":{"token":"t"}}]`)
	gz := gzipBytes(t, plain)
	multi := append(gzipBytes(t, plain[:10]), gzipBytes(t, plain[10:])...)
	badChecksum := bytes.Clone(gz)
	badChecksum[len(badChecksum)-8] ^= 1
	badHeader := bytes.Clone(gz)
	badHeader[2] = 7 // compression method other than deflate
	badDeflate := append(bytes.Clone(gz[:10]), 0xff, 0xff, 0xff, 0xff, 0xff)
	random := make([]byte, 1000)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	randomGz := gzipBytes(t, random) // compresses to more than 1000 bytes
	big := bytes.Repeat(plain, 20)
	gzBig := gzipBytes(t, big)

	tests := []struct {
		name     string
		body     []byte
		enc      string
		limit    int64
		want     []byte
		err      string // substring of the error; "" for success
		tooLarge bool
	}{
		{"plain", plain, "", 1 << 20, plain, "", false},
		{"plain identity", plain, "identity", 1 << 20, plain, "", false},
		{"plain exactly at limit", plain, "", int64(len(plain)), plain, "", false},
		{"plain one byte over", plain, "", int64(len(plain) - 1), nil, "body too large: more than 41 bytes", true},
		{"empty", nil, "", 10, []byte{}, "", false},
		{"empty claiming gzip", nil, "gzip", 10, []byte{}, "", false},
		{"one byte", []byte("x"), "", 10, []byte("x"), "", false},
		{"gzip header", gz, "gzip", 1 << 20, plain, "", false},
		{"gzip header any case", gz, "GZip", 1 << 20, plain, "", false},
		{"x-gzip", gz, "x-gzip", 1 << 20, plain, "", false},
		{"gzip header with spaces", gz, " gzip ", 1 << 20, plain, "", false},
		{"gzip by magic", gz, "", 1 << 20, plain, "", false},
		{"gzip by magic despite identity", gz, "identity", 1 << 20, plain, "", false},
		{"gzip multistream", multi, "gzip", 1 << 20, plain, "", false},
		{"gzip output exactly at limit", gzBig, "gzip", int64(len(big)), big, "", false},
		{"gzip output one byte over", gzBig, "gzip", int64(len(big) - 1), nil, "body too large: more than 839 bytes after gzip inflation", true},
		{"gzip input over limit", randomGz, "gzip", 1010, nil, "body too large: more than 1010 bytes", true},
		{"unknown encoding", plain, "br", 1 << 20, nil, `unsupported Content-Encoding "br": send gzip or no encoding`, false},
		{"deflate is not gzip", plain, "deflate", 1 << 20, nil, `unsupported Content-Encoding "deflate"`, false},
		{"gzip header, plain body", plain, "gzip", 1 << 20, nil, "body is not valid gzip: invalid gzip header", false},
		{"bad gzip header", badHeader, "", 1 << 20, nil, "body is not valid gzip: invalid gzip header", false},
		{"truncated gzip", gz[:len(gz)-5], "gzip", 1 << 20, nil, "body is not valid gzip: truncated data", false},
		{"truncated gzip header", gz[:5], "", 1 << 20, nil, "body is not valid gzip: truncated data", false},
		{"gzip checksum", badChecksum, "gzip", 1 << 20, nil, "body is not valid gzip: checksum mismatch", false},
		{"corrupt deflate", badDeflate, "gzip", 1 << 20, nil, "body is not valid gzip: corrupt deflate data at offset 1", false},
		{"gzip then garbage", append(bytes.Clone(gz), "junk"...), "gzip", 1 << 20, nil, "body is not valid gzip: unexpected data after the gzip stream", false},
		{"gzip then zeros", append(bytes.Clone(gz), 0, 0, 0, 0), "", 1 << 20, nil, "body is not valid gzip: unexpected data after the gzip stream", false},
		{"gzip then half a member", append(bytes.Clone(gz), gz[:5]...), "", 1 << 20, nil, "body is not valid gzip: truncated data", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadBody(bytes.NewReader(tt.body), tt.enc, tt.limit)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("error %v", err)
				}
				if !bytes.Equal(got, tt.want) || got == nil {
					t.Fatalf("got %q, want %q", got, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("error %v, want %q", err, tt.err)
			}
			if errors.Is(err, ErrTooLarge) != tt.tooLarge {
				t.Fatalf("errors.Is(ErrTooLarge) = %v", !tt.tooLarge)
			}
		})
	}
}

func TestReadBodyReaderError(t *testing.T) {
	boom := errors.New("connection reset")
	for _, tc := range []struct {
		name string
		data []byte
		enc  string
	}{
		{"plain at start", nil, ""},
		{"plain midway", []byte("data=abc"), ""},
		{"gzip midway", gzipBytes(t, []byte("hello hello hello"))[:12], "gzip"},
	} {
		_, err := ReadBody(&errReader{data: tc.data, err: boom}, tc.enc, 1<<20)
		if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "reading body: ") {
			t.Errorf("%s: error %v", tc.name, err)
		}
	}
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestReadBodyGzipBomb sends 1 GiB of zeros, gzipped on the fly (about
// 1 MiB compressed), and checks that ReadBody stops after limit+1 bytes of
// output without reading or allocating anything near the whole.
func TestReadBodyGzipBomb(t *testing.T) {
	const total = 1 << 30
	const limit = 1 << 20
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		zw, _ := gzip.NewWriterLevel(pw, gzip.BestCompression)
		zeros := make([]byte, 64<<10)
		for n := 0; n < total; n += len(zeros) {
			if _, err := zw.Write(zeros); err != nil {
				pw.CloseWithError(err)
				return
			}
		}
		pw.CloseWithError(zw.Close())
	}()
	src := &countingReader{r: pr}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	body, err := ReadBody(src, "gzip", limit)
	runtime.ReadMemStats(&after)
	pr.CloseWithError(errors.New("test over"))
	<-done

	if !errors.Is(err, ErrTooLarge) || body != nil {
		t.Fatalf("got %d bytes, error %v; want ErrTooLarge", len(body), err)
	}
	if want := "body too large: more than 1048576 bytes after gzip inflation"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("allocated %d MiB while refusing the bomb", alloc>>20)
	}
	if src.n > 64<<10 { // about limit/1000 of compressed input is needed
		t.Errorf("read %d compressed bytes", src.n)
	}
}

// ---- ExtractPayload ----

func TestExtractPayload(t *testing.T) {
	const js = `{"event":"x","properties":{"k":"~~~???>>>ü"}}`
	std := base64.StdEncoding.EncodeToString([]byte(js))
	if !strings.ContainsAny(std, "+") || !strings.ContainsAny(std, "/") || !strings.HasSuffix(std, "=") {
		t.Fatalf("test data should exercise + / and =: %s", std)
	}
	raw := base64.RawStdEncoding.EncodeToString([]byte(js))
	urlsafe := base64.URLEncoding.EncodeToString([]byte(js))
	var wrapped strings.Builder
	for i := 0; i < len(std); i += 20 {
		wrapped.WriteString(std[i:min(i+20, len(std))])
		wrapped.WriteString("\r\n")
	}
	rocket := "\xed\xa0\xbd\xed\xba\x80" // CESU-8 for U+1F680
	cesu := base64.StdEncoding.EncodeToString([]byte(`{"name":"Zoë 日本 ` + rocket + `!"}`))

	tests := []struct {
		name  string
		body  string
		query string
		data  string
		enc   string
		form  url.Values
		err   string
	}{
		{"form base64 padded", "data=" + url.QueryEscape(std), "", js, "base64", url.Values{}, ""},
		{"form base64 unpadded", "data=" + url.QueryEscape(raw), "", js, "base64", url.Values{}, ""},
		{"form base64 url-safe", "data=" + urlsafe, "", js, "base64", url.Values{}, ""},
		{"form base64 url-safe unpadded", "data=" + strings.TrimRight(urlsafe, "="), "", js, "base64", url.Values{}, ""},
		{"form base64 with + sent raw (read as space)", "data=" + std, "", js, "base64", url.Values{}, ""},
		{"form base64 with line breaks", "data=" + url.QueryEscape(wrapped.String()), "", js, "base64", url.Values{}, ""},
		{"form base64 with raw line breaks", "data=" + strings.ReplaceAll(wrapped.String(), "+", "%2B"), "", js, "base64", url.Values{}, ""},
		{"form with other fields", "api_key=k%201&data=" + url.QueryEscape(std) + "&verbose=1&ip", "", js, "base64",
			url.Values{"api_key": {"k 1"}, "verbose": {"1"}, "ip": {""}}, ""},
		{"form first data wins", "data=" + url.QueryEscape(std) + "&data=e30", "", js, "base64", url.Values{}, ""},
		{"form json", "data=" + url.QueryEscape(js), "", js, "json", url.Values{}, ""},
		{"form json with leading space", "data=%20%0A" + url.QueryEscape(js), "", " \n" + js, "json", url.Values{}, ""},
		{"form json unencoded", `data={"a":"b"}`, "", `{"a":"b"}`, "json", url.Values{}, ""},
		{"form escaped key", "d%61ta=" + url.QueryEscape(std), "", js, "base64", url.Values{}, ""},
		{"form bad escapes stay literal", "x=%zz%4&data=e30", "", "{}", "base64", url.Values{"x": {"%zz%4"}}, ""},
		{"query base64", "", "ip=1&data=" + url.QueryEscape(std), js, "base64", nil, ""},
		{"query json", "", "data=" + url.QueryEscape(js), js, "json", nil, ""},
		{"query when form has no data", "verbose=1", "data=" + url.QueryEscape(std), js, "base64", url.Values{"verbose": {"1"}}, ""},
		{"query when body is blank", " \r\n", "data=" + url.QueryEscape(std), js, "base64", nil, ""},
		{"body json", js, "data=e30", js, "body", nil, ""},
		{"body json leading whitespace", "\r\n\t [" + js + "]", "", "\r\n\t [" + js + "]", "body", nil, ""},
		{"body ndjson", js + "\n" + js + "\n", "", js + "\n" + js + "\n", "body", nil, ""},
		{"cesu-8 repaired", "data=" + url.QueryEscape(cesu), "", `{"name":"Zoë 日本 🚀!"}`, "base64", url.Values{}, ""},
		{"empty base64 decodes to nothing", "data=%3D%3D", "", "", "", nil, "data is not valid base64: unexpected padding at offset 0"},
		{"illegal character", "data=eyJhIjox!fQ", "", "", "", nil, "data is not valid base64: illegal character at offset 8"},
		{"illegal character tab", "data=eyJh%09", "", "", "", nil, "data is not valid base64: illegal character at offset 4"},
		{"truncated", "data=eyJhI", "", "", "", nil, "data is not valid base64: truncated at offset 5 (incomplete last group)"},
		{"data after padding", "data=QQ%3D%3DQQ%3D%3D", "", "", "", nil, "data is not valid base64: data after padding at offset 4"},
		{"padding too early", "data=QUJD%3D", "", "", "", nil, "data is not valid base64: unexpected padding at offset 4"},
		{"padding then line break", "data=QQ%3D%3D%0A", "", "A", "base64", url.Values{}, ""},
		{"short padding accepted", "data=QQ%3D", "", "A", "base64", url.Values{}, ""},
		{"empty data field", "data=", "", "", "", nil, "data is empty"},
		{"blank data field and query", "data=%20", "data=", "", "", nil, "data is empty"},
		{"no data", "", "", "", "", nil, "no data: send a data= form field, a data= query parameter or a JSON body"},
		{"form without data", "verbose=1&ip=1", "ip=1", "", "", nil, "no data: send a data= form field"},
		{"text body", "hello world", "", "", "", nil, "no data: send a data= form field"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ExtractPayload([]byte(tt.body), q)
			if tt.err != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				checkErrorText(t, err)
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if string(p.Data) != tt.data || p.Encoding != tt.enc {
				t.Fatalf("got %q (%s), want %q (%s)", p.Data, p.Encoding, tt.data, tt.enc)
			}
			if (p.Form == nil) != (tt.form == nil) || !reflect.DeepEqual(p.Form, tt.form) && len(tt.form) > 0 {
				t.Fatalf("form %v, want %v", p.Form, tt.form)
			}
		})
	}
}

func TestExtractPayloadTooManyFields(t *testing.T) {
	body := strings.Repeat("a=1&", maxFormFields) + "data=e30"
	if _, err := ExtractPayload([]byte(body), nil); err == nil || err.Error() != "form body has more than 1000 fields" {
		t.Fatalf("error %v", err)
	}
	body = strings.Repeat("a=1&", maxFormFields-1) + "data=e30"
	if p, err := ExtractPayload([]byte(body), nil); err != nil || string(p.Data) != "{}" {
		t.Fatalf("got %q, %v", p.Data, err)
	}
}

// ---- RepairCESU8 ----

func TestRepairCESU8(t *testing.T) {
	const rocketCESU = "\xed\xa0\xbd\xed\xba\x80"
	const highOnly = "\xed\xa0\xbd"
	const lowOnly = "\xed\xba\x80"
	tests := []struct{ name, in, want string }{
		{"rocket", rocketCESU, "🚀"},
		{"mixed with BMP text", "Zoë üß 日本 " + rocketCESU + " end", "Zoë üß 日本 🚀 end"},
		{"two pairs adjacent", rocketCESU + rocketCESU, "🚀🚀"},
		{"max code point", "\xed\xaf\xbf\xed\xbf\xbf", "\U0010FFFF"},
		{"min supplementary", "\xed\xa0\x80\xed\xb0\x80", "\U00010000"},
		{"ascii", `{"a":"b"}`, `{"a":"b"}`},
		{"utf-8 already", "🚀 日本", "🚀 日本"},
		{"hangul uses ED too", "한국어 \xed\x9f\xbb", "한국어 \xed\x9f\xbb"},
		{"truncated pair", rocketCESU[:5], rocketCESU[:5]},
		{"truncated pair at end", "ab" + rocketCESU[:4], "ab" + rocketCESU[:4]},
		{"lone high", highOnly + "x", highOnly + "x"},
		{"lone low", lowOnly + "x", lowOnly + "x"},
		{"low then high", lowOnly + highOnly, lowOnly + highOnly},
		{"high high low", highOnly + rocketCESU, highOnly + "🚀"},
		{"bad continuation", "\xed\xa0\x3d\xed\xba\x80", "\xed\xa0\x3d\xed\xba\x80"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		in := []byte(tt.in)
		got := RepairCESU8(in)
		if string(got) != tt.want {
			t.Errorf("%s: got % x, want % x", tt.name, got, tt.want)
		}
		if string(in) != tt.in {
			t.Errorf("%s: input modified", tt.name)
		}
		if tt.in == tt.want && len(in) > 0 && &got[0] != &in[0] {
			t.Errorf("%s: copied although nothing to repair", tt.name)
		}
	}
}

// ---- ParseItems ----

func obj(kv ...any) event.Value {
	v := event.Value{Kind: event.Object}
	for i := 0; i < len(kv); i += 2 {
		v.Fields = append(v.Fields, event.Field{Key: kv[i].(string), Value: kv[i+1].(event.Value)})
	}
	return v
}

func TestParseItems(t *testing.T) {
	s, n, b := event.StringValue, event.NumberValue, event.BoolValue
	arr := func(vs ...event.Value) event.Value { return event.Value{Kind: event.Array, Items: vs} }
	type want struct {
		v          event.Value
		size, line int
	}
	tests := []struct {
		name  string
		in    string
		opts  ParseOptions
		items []want
		err   string
	}{
		{"object", `{"event":"a","properties":{"n":1}}`, ParseOptions{},
			[]want{{obj("event", s("a"), "properties", obj("n", n(1))), 34, 1}}, ""},
		{"object with whitespace", " \n {\"a\" : [ true , false , null ] }\n", ParseOptions{},
			[]want{{obj("a", arr(b(true), b(false), event.Value{})), 32, 2}}, ""},
		{"array", "[{\"a\":1},\n {\"b\":2} ,\n\n{}]", ParseOptions{},
			[]want{{obj("a", n(1)), 7, 1}, {obj("b", n(2)), 7, 2}, {obj(), 2, 4}}, ""},
		{"array of scalars", `[1,"x",null]`, ParseOptions{},
			[]want{{n(1), 1, 1}, {s("x"), 3, 1}, {event.Value{}, 4, 1}}, ""},
		{"empty array", ` [ ] `, ParseOptions{}, []want{}, ""},
		{"scalar", `"x"`, ParseOptions{}, []want{{s("x"), 3, 1}}, ""},
		{"ndjson", "{\"a\":1}\n{\"b\":2}\r\n\n  \n{\"c\":[3]}\n", ParseOptions{NDJSON: true},
			[]want{{obj("a", n(1)), 7, 1}, {obj("b", n(2)), 7, 2}, {obj("c", arr(n(3))), 9, 5}}, ""},
		{"ndjson single object", `{"a":1}`, ParseOptions{NDJSON: true}, []want{{obj("a", n(1)), 7, 1}}, ""},
		{"ndjson single array", "\n[{\"a\":1},{\"b\":2}]\n", ParseOptions{NDJSON: true},
			[]want{{obj("a", n(1)), 7, 2}, {obj("b", n(2)), 7, 2}}, ""},
		{"ndjson lines of arrays", "[1]\n[2,3]", ParseOptions{NDJSON: true},
			[]want{{arr(n(1)), 3, 1}, {arr(n(2), n(3)), 5, 2}}, ""},
		{"ndjson value spanning lines", "{\n\"a\":1}\n{\"b\":2}", ParseOptions{NDJSON: true},
			[]want{{obj("a", n(1)), 8, 1}, {obj("b", n(2)), 7, 3}}, ""},
		{"duplicate keys: last wins at first position", `{"a":1,"b":2,"a":3}`, ParseOptions{},
			[]want{{obj("a", n(3), "b", n(2)), 19, 1}}, ""},
		{"escapes", `["\"\\\/\b\f\n\r\t\u00e9\u20AC\ud83d\ude80"]`, ParseOptions{},
			[]want{{s("\"\\/\b\f\n\r\té€🚀"), 42, 1}}, ""},
		{"lone surrogates", `["\ud83d", "\ude80x", "\ud83d\u0041", "\ud83d\ud83d\ude80"]`, ParseOptions{},
			[]want{{s("\uFFFD"), 8, 1}, {s("\uFFFDx"), 9, 1}, {s("\uFFFDA"), 14, 1}, {s("\uFFFD🚀"), 20, 1}}, ""},
		{"invalid utf-8", "[\"a\xffb\", \"\xed\xa0\x80\", \"\xc3\"]", ParseOptions{},
			[]want{{s("a\uFFFDb"), 5, 1}, {s("\uFFFD\uFFFD\uFFFD"), 5, 1}, {s("\uFFFD"), 3, 1}}, ""},
		{"numbers", `[0,-0,1.5,-2.25e2,1E-3,1795376173.909,12345678901234567890,0.1,1e22,5e-324]`, ParseOptions{},
			[]want{{n(0), 1, 1}, {n(0), 2, 1}, {n(1.5), 3, 1}, {n(-225), 7, 1}, {n(0.001), 4, 1}, {n(1795376173.909), 14, 1},
				{n(12345678901234567890), 20, 1}, {n(0.1), 3, 1}, {n(1e22), 4, 1}, {n(5e-324), 6, 1}}, ""},
		{"depth 32 is fine", strings.Repeat("[", 32) + strings.Repeat("]", 32), ParseOptions{},
			[]want{{nest(31), 62, 1}}, ""},

		{"empty", "", ParseOptions{}, nil, "empty payload"},
		{"blank", " \n\t\r ", ParseOptions{NDJSON: true}, nil, "empty payload"},
		{"too deep", strings.Repeat("[", 33) + strings.Repeat("]", 33), ParseOptions{}, nil,
			"JSON nesting deeper than 32 levels at line 1, column 33"},
		{"too deep objects", strings.Repeat(`{"a":`, 5) + "1" + strings.Repeat("}", 5), ParseOptions{MaxDepth: 4}, nil,
			"JSON nesting deeper than 4 levels at line 1, column 21"},
		{"too many items", `[{},{},{}]`, ParseOptions{MaxItems: 2}, nil, "batch has more than 2 records"},
		{"max items exactly", `[{},{}]`, ParseOptions{MaxItems: 2}, []want{{obj(), 2, 1}, {obj(), 2, 1}}, ""},
		{"too many ndjson items", "{}\n{}\n{}", ParseOptions{MaxItems: 2, NDJSON: true}, nil, "batch has more than 2 records"},
		{"trailing comma", "{\"a\":1,\n\"b\":2,\n             }", ParseOptions{}, nil,
			`invalid JSON at line 3, column 14: unexpected '}', expected '"' to start an object key`},
		{"trailing comma array", `[1,]`, ParseOptions{}, nil, `invalid JSON at line 1, column 4: unexpected ']', expected a value`},
		{"truncated", `[{"a":1}`, ParseOptions{}, nil, `invalid JSON at line 1, column 9: unexpected end of input, expected ',' or ']'`},
		{"truncated string", `{"a":"bcd`, ParseOptions{}, nil, `invalid JSON at line 1, column 6: unterminated string`},
		{"truncated escape", `{"a":"b\`, ParseOptions{}, nil, `invalid JSON at line 1, column 6: unterminated string`},
		{"missing colon", `{"a" 1}`, ParseOptions{}, nil, `invalid JSON at line 1, column 6: unexpected digit, expected ':' after an object key`},
		{"missing comma", `{"a":1 "b":2}`, ParseOptions{}, nil, `invalid JSON at line 1, column 8: unexpected '"', expected ',' or '}'`},
		{"unquoted key", `{secret:1}`, ParseOptions{}, nil, `invalid JSON at line 1, column 2: unexpected letter, expected '"' to start an object key`},
		{"single quotes", `{'a':1}`, ParseOptions{}, nil, `invalid JSON at line 1, column 2: unexpected "'", expected '"' to start an object key`},
		{"bad literal", `[tru]`, ParseOptions{}, nil, `invalid JSON at line 1, column 2: invalid literal, expected true`},
		{"NaN", `[NaN]`, ParseOptions{}, nil, `invalid JSON at line 1, column 2: unexpected letter, expected a value`},
		{"leading zero", `[01]`, ParseOptions{}, nil, `invalid JSON at line 1, column 3: invalid number: leading zero`},
		{"bare minus", `[-]`, ParseOptions{}, nil, `invalid JSON at line 1, column 3: invalid number: expected a digit`},
		{"dot without digits", `[1.]`, ParseOptions{}, nil, `invalid JSON at line 1, column 4: invalid number: expected a digit after '.'`},
		{"exponent without digits", `[1e+]`, ParseOptions{}, nil, `invalid JSON at line 1, column 5: invalid number: expected a digit in the exponent`},
		{"plus sign", `[+1]`, ParseOptions{}, nil, `invalid JSON at line 1, column 2: unexpected '+', expected a value`},
		{"out of range", "[1,\n -1e400]", ParseOptions{}, nil, `number out of range at line 2, column 2`},
		{"control character", "[\"a\tb\"]", ParseOptions{}, nil, `invalid JSON at line 1, column 4: control character U+0009 in string (escape it)`},
		{"control character after escape", "[\"\\n\x01\"]", ParseOptions{}, nil, `invalid JSON at line 1, column 5: control character U+0001 in string (escape it)`},
		{"bad escape", `["a\x"]`, ParseOptions{}, nil, `invalid JSON at line 1, column 4: invalid escape sequence in string`},
		{"bad unicode escape", `["\u12G4"]`, ParseOptions{}, nil, `invalid JSON at line 1, column 3: invalid \u escape in string, expected 4 hex digits`},
		{"trailing garbage", `{"a":1} x`, ParseOptions{}, nil, `invalid JSON at line 1, column 9: unexpected letter after the top-level value`},
		{"two values without ndjson", "{}\n{}", ParseOptions{}, nil, `invalid JSON at line 2, column 1: unexpected '{' after the top-level value`},
		{"ndjson values on one line", "{} {}", ParseOptions{NDJSON: true}, nil,
			`invalid JSON at line 1, column 4: unexpected '{' after a value; NDJSON needs one value per line`},
		{"ndjson bad line", "{}\n{]\n", ParseOptions{NDJSON: true}, nil,
			`invalid JSON at line 2, column 2: unexpected ']', expected '"' to start an object key`},
		{"non-ascii outside string", "[\xc3\xa9]", ParseOptions{}, nil, `invalid JSON at line 1, column 2: unexpected non-ASCII character, expected a value`},
		{"byte order mark", "\xef\xbb\xbf{}", ParseOptions{}, nil, `invalid JSON at line 1, column 1: unexpected non-ASCII character, expected a value`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, err := ParseItems([]byte(tt.in), tt.opts)
			if tt.err != "" {
				if err == nil || err.Error() != tt.err {
					t.Fatalf("error %v\n want %s", err, tt.err)
				}
				checkErrorText(t, err)
				return
			}
			if err != nil {
				t.Fatalf("error %v", err)
			}
			if len(items) != len(tt.items) || items == nil {
				t.Fatalf("%d items, want %d", len(items), len(tt.items))
			}
			for i, w := range tt.items {
				got := items[i]
				if !got.Value.Equal(w.v) || got.Size != w.size || got.Line != w.line {
					t.Errorf("item %d: %s size %d line %d; want %s size %d line %d", i,
						got.Value.AppendJSON(nil), got.Size, got.Line, w.v.AppendJSON(nil), w.size, w.line)
				}
			}
			if tt.opts.NDJSON {
				return
			}
			checkAgainstStdlib(t, []byte(tt.in))
		})
	}
}

func nest(depth int) event.Value {
	v := event.Value{Kind: event.Array}
	for range depth - 1 {
		v = event.Value{Kind: event.Array, Items: []event.Value{v}}
	}
	return v
}

// TestParseItemsSharesInput checks the zero-copy promise: strings without
// escapes point into one copy of the input, and the caller's buffer may be
// reused at once.
func TestParseItemsSharesInput(t *testing.T) {
	data := []byte(`[{"event":"a","properties":{"k":"v"}}]`)
	items, err := ParseItems(data, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = 'X'
	}
	if got := string(items[0].Value.AppendJSON(nil)); got != `{"event":"a","properties":{"k":"v"}}` {
		t.Fatalf("values changed with the input buffer: %s", got)
	}
	// Appending to a parsed object must not clobber its neighbour.
	props := items[0].Value.Fields[1].Value.Fields
	_ = append(props, event.Field{Key: "new"})
	if items[0].Value.Fields[1].Value.Fields[0].Key != "k" || len(items) != 1 {
		t.Fatal("append overwrote parsed data")
	}
}

func TestParseItemsArenaIsolation(t *testing.T) {
	// Many small objects share arena chunks; appending to one must copy.
	items, err := ParseItems([]byte(`[{"a":1},{"b":2},{"c":3}]`), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := items[0].Value.Fields
	if cap(f) != len(f) {
		t.Fatalf("cap %d len %d", cap(f), len(f))
	}
	f = append(f, event.Field{Key: "z"})
	if items[1].Value.Fields[0].Key != "b" {
		t.Fatal("append into neighbour")
	}
	_ = f
}

func TestParseItemsLargeObject(t *testing.T) {
	// More keys than an arena chunk, with duplicates, and an array bigger than one.
	var b strings.Builder
	b.WriteString("{")
	for i := range 3000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + string(rune('a'+i%26)) + strings.Repeat("x", i%100) + `":[` + strings.Repeat("1,", i%50) + `0]`)
	}
	b.WriteString("}")
	checkAgainstStdlib(t, []byte(b.String()))
}

// ---- captured traffic ----

type capturedRequest struct {
	Name            string          `json:"name"`
	Method          string          `json:"method"`
	ContentType     string          `json:"content_type"`
	ContentEncoding string          `json:"content_encoding"`
	RawQuery        string          `json:"raw_query"`
	Body            string          `json:"body"`
	BodyB64         string          `json:"body_b64"`
	Want            json.RawMessage `json:"want"`
}

// TestCapturedRequests decodes real SDK requests (browser form and
// sendBeacon bodies, Go JSON and gzip bodies, Node query strings) end to
// end and compares with what the capture server decoded.
func TestCapturedRequests(t *testing.T) {
	f, err := os.Open("testdata/requests.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	seen := map[string]bool{}
	for sc.Scan() {
		var r capturedRequest
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatal(err)
		}
		t.Run(r.Name, func(t *testing.T) {
			body := []byte(r.Body)
			if r.BodyB64 != "" {
				body, _ = base64.StdEncoding.DecodeString(r.BodyB64)
			}
			body, err := ReadBody(bytes.NewReader(body), r.ContentEncoding, 10<<20)
			if err != nil {
				t.Fatal(err)
			}
			q, _ := url.ParseQuery(r.RawQuery)
			p, err := ExtractPayload(body, q)
			if err != nil {
				t.Fatal(err)
			}
			seen[p.Encoding] = true
			items, err := ParseItems(p.Data, ParseOptions{MaxItems: 2000})
			if err != nil {
				t.Fatal(err)
			}
			var want any
			if err := json.Unmarshal(r.Want, &want); err != nil {
				t.Fatal(err)
			}
			if where, ok := sameAny(want, itemsAny(items, firstByte(p.Data) == '[')); !ok {
				t.Fatalf("differs at %s", where)
			}
		})
	}
	if !seen["base64"] || !seen["json"] || !seen["body"] {
		t.Errorf("captures did not cover every encoding: %v", seen)
	}
}

func TestBrowserBatchData(t *testing.T) {
	data, err := os.ReadFile("testdata/browser_batch_data.json")
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstStdlib(t, data)
	items, _ := ParseItems(data, ParseOptions{})
	if len(items) != 7 {
		t.Fatalf("%d items", len(items))
	}
	// The same batch as the browser sends it: form, base64, then parsed.
	body := "data=" + url.QueryEscape(base64.StdEncoding.EncodeToString(data))
	p, err := ExtractPayload([]byte(body), url.Values{"verbose": {"1"}})
	if err != nil || !bytes.Equal(p.Data, data) {
		t.Fatalf("extract: %v", err)
	}
}

func TestBenchBatchIsBrowserShaped(t *testing.T) {
	data := browserBatch(50)
	items, err := ParseItems(data, ParseOptions{MaxItems: 2000})
	if err != nil || len(items) != 50 {
		t.Fatalf("%d items, %v", len(items), err)
	}
	props, _ := event.Get(items[0].Value.Fields, "properties")
	if len(props.Fields) < 25 || !utf8.Valid(data) {
		t.Fatalf("%d properties", len(props.Fields))
	}
	checkAgainstStdlib(t, data)
}

// TestSpecialBytes checks the word-at-a-time string scan against the
// byte table: the first flagged byte must be the first non-plain one.
func TestSpecialBytes(t *testing.T) {
	first := func(w uint64) int {
		for i := range 8 {
			if !strPlain[byte(w>>(8*i))] {
				return i
			}
		}
		return 8
	}
	check := func(w uint64) {
		m := specialBytes(w)
		got := 8
		if m != 0 {
			got = bits.TrailingZeros64(m) >> 3
		}
		if want := first(w); got != want {
			t.Fatalf("word %016x: first special byte %d, want %d", w, got, want)
		}
	}
	const plain = 0x6161616161616161 // "aaaaaaaa"
	for c := range 256 {
		for pos := range 8 {
			w := plain&^(0xFF<<(8*pos)) | uint64(c)<<(8*pos)
			check(w)
			check(w &^ (0xFF << (8 * ((pos + 3) % 8)))) // and a NUL elsewhere
		}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		check(rng.Uint64())
		check(rng.Uint64() & 0x7F7F7F7F7F7F7F7F)
	}
}

func TestStoredGzip(t *testing.T) {
	for _, n := range []int{0, 1, 0xffff, 0x10000, 200000} {
		data := bytes.Repeat([]byte("x"), n)
		zr, err := gzip.NewReader(bytes.NewReader(storedGzip(data)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
}

func TestExtractPayloadFormWhitespace(t *testing.T) {
	p, err := ExtractPayload([]byte("\r\ndata=e30%3D&verbose=1\n"), nil)
	if err != nil || string(p.Data) != "{}" || p.Form.Get("verbose") != "1" {
		t.Fatalf("got %q %v, %v", p.Data, p.Form, err)
	}
}
