package wire

import (
	"bytes"
	"errors"
	"fmt"
	"net/url"
)

// Payload is what a request carries.
type Payload struct {
	// Data is the JSON text: one value, an array of values, or NDJSON lines.
	// It may share memory with the body passed to ExtractPayload.
	Data []byte
	// Encoding says how Data arrived: "base64" or "json" for a data field,
	// "body" for a raw JSON or NDJSON body.
	Encoding string
	// Form holds the fields of a form body other than data (api_key,
	// verbose, ...). It is nil when the body was not read as a form.
	Form url.Values
}

// The ways data can arrive, as reported in Payload.Encoding.
const (
	EncodingBase64 = "base64"
	EncodingJSON   = "json"
	EncodingBody   = "body"
)

// maxFormFields bounds the fields of a form body: SDKs send one or two, and
// each field costs a map entry.
const maxFormFields = 1000

var (
	errNoData    = errors.New("no data: send a data= form field, a data= query parameter or a JSON body")
	errDataEmpty = errors.New("data is empty")
)

// ExtractPayload finds the payload of a request in its body and query.
//
//   - A body whose first non-whitespace byte is '{' or '[' is JSON (or NDJSON).
//   - Otherwise a non-empty body is read as application/x-www-form-urlencoded,
//     whatever the Content-Type says (sendBeacon sends text/plain), and its
//     data field is used. Malformed %-escapes are kept literally, as browsers do.
//   - Failing that, the data query parameter is used.
//
// A data value starting with '{' or '[' (after whitespace) is JSON. Anything
// else is base64: standard or URL-safe alphabet, padded or not, spaces read
// as '+' (an unencoded '+' in a form becomes a space), line breaks ignored.
// Decoded base64 has its CESU-8 surrogate pairs repaired (see RepairCESU8).
func ExtractPayload(body []byte, query url.Values) (Payload, error) {
	return ExtractPayloadBuf(nil, body, query)
}

// ExtractPayloadBuf is ExtractPayload decoding base64 into buf when it is
// large enough, so that a server can reuse one buffer across requests. The
// returned Data may then share memory with buf as well as with body.
func ExtractPayloadBuf(buf, body []byte, query url.Values) (Payload, error) {
	start := skipSpace(body)
	if start < len(body) && (body[start] == '{' || body[start] == '[') {
		return Payload{Data: body, Encoding: EncodingBody}, nil
	}
	var form url.Values
	var data []byte
	found, blank := false, false
	if start < len(body) {
		var err error
		form, data, found, err = parseForm(trimSpace(body[start:]))
		if err != nil {
			return Payload{}, err
		}
		blank = found && isBlank(data, true)
	}
	if found && !blank {
		p, err := decodeData(buf, data, true)
		if err != nil {
			return Payload{}, err
		}
		p.Form = form
		return p, nil
	}
	if vs := query["data"]; len(vs) > 0 {
		v := []byte(vs[0])
		if isBlank(v, false) {
			return Payload{}, errDataEmpty
		}
		p, err := decodeData(buf, v, false)
		if err != nil {
			return Payload{}, err
		}
		p.Form = form
		return p, nil
	}
	if blank {
		return Payload{}, errDataEmpty
	}
	return Payload{}, errNoData
}

// decodeData interprets the value of a data field: JSON or base64 of JSON.
// With form set, v is still form-encoded: base64 is decoded from it in one
// pass, sparing a copy of the whole value.
func decodeData(buf, v []byte, form bool) (Payload, error) {
	if c, _ := firstNonSpace(v, form); c == '{' || c == '[' {
		if form {
			v = formUnescape(v)
		}
		return Payload{Data: v, Encoding: EncodingJSON}, nil
	}
	b, err := decodeBase64(buf, v, form)
	if err != nil {
		return Payload{}, err
	}
	return Payload{Data: repairCESU8InPlace(b), Encoding: EncodingBase64}, nil
}

// firstNonSpace returns the first byte of v that is not JSON whitespace,
// decoding %-escapes and '+' first if form is set, and whether there is one.
func firstNonSpace(v []byte, form bool) (byte, bool) {
	for i := 0; i < len(v); i++ {
		c := v[i]
		if form {
			switch {
			case c == '+':
				c = ' '
			case c == '%' && i+2 < len(v) && unhex(v[i+1])|unhex(v[i+2]) < 16:
				c = unhex(v[i+1])<<4 | unhex(v[i+2])
				i += 2
			}
		}
		if !isSpace(c) {
			return c, true
		}
	}
	return 0, false
}

func isBlank(v []byte, form bool) bool {
	_, ok := firstNonSpace(v, form)
	return !ok
}

// trimSpace removes trailing JSON whitespace (a form body's newline).
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte) int {
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// parseForm splits a form body into its data field (the first one, if any,
// still form-encoded) and the other fields. Decoding follows the WHATWG URL standard that browsers
// use: '+' is a space and a '%' not followed by two hex digits stays as is.
func parseForm(body []byte) (form url.Values, data []byte, found bool, err error) {
	form = url.Values{}
	fields := 0
	for len(body) > 0 {
		pair := body
		if i := bytes.IndexByte(body, '&'); i >= 0 {
			pair, body = body[:i], body[i+1:]
		} else {
			body = nil
		}
		if len(pair) == 0 {
			continue
		}
		if fields++; fields > maxFormFields {
			return nil, nil, false, fmt.Errorf("form body has more than %d fields", maxFormFields)
		}
		key, val := pair, []byte(nil)
		if i := bytes.IndexByte(pair, '='); i >= 0 {
			key, val = pair[:i], pair[i+1:]
		}
		k := formUnescape(key)
		if string(k) == "data" {
			if !found {
				data, found = val, true // decoded later, with the base64
			}
			continue
		}
		ks := string(k)
		form[ks] = append(form[ks], string(formUnescape(val)))
	}
	return form, data, found, nil
}

// formUnescape decodes one form key or value. It returns b itself when there
// is nothing to decode.
func formUnescape(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] != '%' && b[i] != '+' {
		i++
	}
	if i == len(b) {
		return b
	}
	out := make([]byte, i, len(b))
	copy(out, b[:i])
	for ; i < len(b); i++ {
		switch c := b[i]; c {
		case '+':
			out = append(out, ' ')
		case '%':
			if i+2 < len(b) {
				if hi, lo := unhex(b[i+1]), unhex(b[i+2]); hi|lo < 16 {
					out = append(out, hi<<4|lo)
					i += 2
					continue
				}
			}
			out = append(out, c)
		default:
			out = append(out, c)
		}
	}
	return out
}

// unhex returns the value of a hex digit, or 0xFF.
func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10
	}
	return 0xFF
}

// Special entries of b64Table; valid digits are below 64.
const (
	b64Bad  = 0xFF
	b64Skip = 0xFE // '\n' and '\r' are ignored (MIME line breaks)
	b64Pad  = 0xFD // '='
)

// b64Table maps a byte to its base64 digit, accepting both the standard and
// the URL-safe alphabet, and ' ' as '+'.
var b64Table = func() (t [256]byte) {
	for i := range t {
		t[i] = b64Bad
	}
	const std = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	for i := 0; i < len(std); i++ {
		t[std[i]] = byte(i)
	}
	t['-'], t['_'], t[' '] = 62, 63, 62
	t['\n'], t['\r'] = b64Skip, b64Skip
	t['='] = b64Pad
	return t
}()

// decodeBase64 decodes src leniently (see ExtractPayload) into buf, or a new
// slice if buf is too small. With form set, src is form-encoded and
// %-escapes are decoded on the way. Offsets in errors count bytes of the
// data value after form decoding.
func decodeBase64(buf, src []byte, form bool) ([]byte, error) {
	dst := buf[:0]
	if need := (len(src) + 3) / 4 * 3; cap(dst) >= need {
		dst = dst[:need]
	} else {
		dst = make([]byte, need)
	}
	t := &b64Table
	n, i := 0, 0
	off := 0       // offset of src[i] in the form-decoded value
	var acc uint32 // pending digits of an incomplete group
	k := 0         // how many
	padded := false
	for {
		if k == 0 && !padded { // fast path: whole groups of 4 plain digits
			for i+4 <= len(src) && n+3 <= len(dst) {
				a, b, c, d := t[src[i]], t[src[i+1]], t[src[i+2]], t[src[i+3]]
				if a|b|c|d >= 64 {
					break
				}
				v := uint32(a)<<18 | uint32(b)<<12 | uint32(c)<<6 | uint32(d)
				dst[n], dst[n+1], dst[n+2] = byte(v>>16), byte(v>>8), byte(v)
				n += 3
				i += 4
				off += 4
			}
		}
		if i >= len(src) {
			break
		}
		c, w := src[i], 1
		if form && c == '%' && i+2 < len(src) && unhex(src[i+1])|unhex(src[i+2]) < 16 {
			c, w = unhex(src[i+1])<<4|unhex(src[i+2]), 3
		}
		switch d := t[c]; {
		case d == b64Skip:
		case padded && d != b64Pad:
			return nil, fmt.Errorf("data is not valid base64: data after padding at offset %d", off)
		case d < 64:
			acc = acc<<6 | uint32(d)
			if k++; k == 4 {
				dst[n], dst[n+1], dst[n+2] = byte(acc>>16), byte(acc>>8), byte(acc)
				n += 3
				k, acc = 0, 0
			}
		case d == b64Pad:
			if k < 2 && !padded {
				return nil, fmt.Errorf("data is not valid base64: unexpected padding at offset %d", off)
			}
			padded = true
		default:
			return nil, fmt.Errorf("data is not valid base64: illegal character at offset %d", off)
		}
		i += w
		off++
	}
	switch k {
	case 1:
		return nil, fmt.Errorf("data is not valid base64: truncated at offset %d (incomplete last group)", off)
	case 2:
		dst[n] = byte(acc >> 4)
		n++
	case 3:
		dst[n], dst[n+1] = byte(acc>>10), byte(acc>>2)
		n += 2
	}
	return dst[:n], nil
}
