package wire

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// ErrTooLarge is wrapped by ReadBody when the body, before or after gzip
// inflation, exceeds the limit. Callers answer 413, which makes the browser
// SDK split its batch.
var ErrTooLarge = errors.New("body too large")

// ReadBody reads a request body of at most limit bytes.
//
// It inflates gzip when contentEncoding is "gzip" or "x-gzip" (any case), and
// also when the body starts with the gzip magic 1f 8b whatever the header
// says: PostHog-style clients gzip without setting Content-Encoding. ""
// and "identity" mean plain; any other encoding is an error naming it.
//
// At most limit bytes are accepted from r and at most limit bytes are
// produced by inflation. A larger body, or a gzip bomb, is refused with an
// error wrapping ErrTooLarge as soon as byte limit+1 is seen; nothing larger
// than limit+1 bytes is ever buffered. An empty body is returned as is, even
// when it claims to be gzip.
func ReadBody(r io.Reader, contentEncoding string, limit int64) ([]byte, error) {
	return ReadBodyInto(nil, r, contentEncoding, limit, -1)
}

// ReadBodyInto is ReadBody for a server that recycles buffers and knows the
// Content-Length (-1 when not). A plain body is read into buf when it fits
// (the result then aliases buf), else into one buffer of the announced
// size instead of a doubling one. The length is only a hint; the limit
// still holds whatever the body really is.
func ReadBodyInto(buf []byte, r io.Reader, contentEncoding string, limit, contentLength int64) ([]byte, error) {
	gz, err := isGzipEncoding(contentEncoding)
	if err != nil {
		return nil, err
	}
	if limit < 0 {
		limit = 0
	}
	src := &limitedReader{r: r, left: limit}
	if limit < math.MaxInt64 {
		src.left = limit + 1 // one byte more than allowed tells "too large" from "exactly limit"
	}

	// Peek at the first two bytes for the gzip magic.
	var head [2]byte
	n, err := io.ReadFull(src, head[:])
	switch {
	case src.err != nil:
		return nil, fmt.Errorf("reading body: %w", src.err)
	case src.exceeded: // limit < 2
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	case err == io.EOF: // empty body
		return []byte{}, nil
	case err != nil && err != io.ErrUnexpectedEOF:
		return nil, fmt.Errorf("reading body: %w", err)
	}
	if n == 2 && head[0] == 0x1f && head[1] == 0x8b {
		gz = true
	}
	in := io.MultiReader(bytes.NewReader(head[:n]), src)

	if !gz {
		buf = buf[:0]
		if contentLength > 0 && contentLength <= limit && int64(cap(buf)) <= contentLength {
			buf = make([]byte, 0, contentLength+1) // +1 sees EOF without growing
		}
		if cap(buf) == 0 {
			buf = nil
		}
		body, err := readAtMost(in, limit, buf)
		if src.err != nil {
			return nil, fmt.Errorf("reading body: %w", src.err)
		}
		if int64(len(body)) > limit || src.exceeded {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
		}
		if err != nil {
			return nil, fmt.Errorf("reading body: %w", err)
		}
		return body, nil
	}

	body, err := inflate(bufio.NewReader(in), limit)
	switch {
	case src.err != nil:
		return nil, fmt.Errorf("reading body: %w", src.err)
	case src.exceeded:
		return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	case err != nil:
		return nil, gzipError(err)
	case int64(len(body)) > limit:
		return nil, fmt.Errorf("%w: more than %d bytes after gzip inflation", ErrTooLarge, limit)
	}
	return body, nil
}

var errTrailingData = errors.New("unexpected data after the gzip stream")

// inflate decompresses the gzip members in br, stopping once the output
// exceeds limit. br being a ByteReader, the decompressor reads no further
// than the end of each member, so what follows can be checked: another
// member or nothing.
func inflate(br *bufio.Reader, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, err
	}
	var body []byte
	for {
		zr.Multistream(false)
		body, err = readAtMost(zr, limit, body)
		if err != nil || int64(len(body)) > limit {
			return body, err
		}
		next, err := br.Peek(2)
		switch {
		case len(next) == 0 && err == io.EOF:
			return body, nil
		case len(next) == 0:
			return nil, err
		case next[0] != 0x1f || len(next) == 2 && next[1] != 0x8b:
			return nil, errTrailingData
		}
		if err := zr.Reset(br); err != nil {
			return nil, err
		}
	}
}

// isGzipEncoding interprets a Content-Encoding header value.
func isGzipEncoding(enc string) (bool, error) {
	enc = strings.TrimSpace(enc)
	switch {
	case enc == "", strings.EqualFold(enc, "identity"):
		return false, nil
	case strings.EqualFold(enc, "gzip"), strings.EqualFold(enc, "x-gzip"):
		return true, nil
	}
	if len(enc) > 40 { // a header, not payload, but keep error messages short
		enc = enc[:40] + "..."
	}
	return false, fmt.Errorf("unsupported Content-Encoding %q: send gzip or no encoding", enc)
}

// gzipError turns an inflation error into a message fit for API clients.
func gzipError(err error) error {
	var corrupt flate.CorruptInputError
	var msg string
	switch {
	case errors.Is(err, gzip.ErrHeader):
		msg = "invalid gzip header"
	case errors.Is(err, errTrailingData):
		msg = err.Error()
	case errors.Is(err, gzip.ErrChecksum):
		msg = "checksum mismatch"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		msg = "truncated data"
	case errors.As(err, &corrupt):
		msg = fmt.Sprintf("corrupt deflate data at offset %d", int64(corrupt))
	default:
		msg = err.Error()
	}
	return errors.New("body is not valid gzip: " + msg)
}

// errInputLimit is returned by limitedReader once its allowance is used up.
var errInputLimit = errors.New("input limit reached")

// limitedReader passes through at most left bytes. It remembers whether the
// allowance was exhausted and the first real read error of r, so that
// ReadBody can tell them apart from gzip errors, which wrap whatever the
// underlying reader returned.
type limitedReader struct {
	r        io.Reader
	left     int64
	exceeded bool
	err      error
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.exceeded = true
		return 0, errInputLimit
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	if l.left -= int64(n); l.left == 0 {
		l.exceeded = true
	}
	if err != nil && err != io.EOF && l.err == nil {
		l.err = err
	}
	return n, err
}

// readAtMost appends what r yields to buf until EOF or until buf holds more
// than limit bytes, and never grows buf beyond limit+1 bytes. A result
// longer than limit means "too large"; reading stopped there.
func readAtMost(r io.Reader, limit int64, buf []byte) ([]byte, error) {
	hardCap := limit // the most ever held: limit+1, without overflowing
	if limit < math.MaxInt64 {
		hardCap = limit + 1
	}
	if buf == nil {
		buf = make([]byte, 0, min(4<<10, hardCap))
	}
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) > limit {
				return buf, nil
			}
			grow := int64(max(cap(buf), 512)) // double, but stop at limit+1
			if int64(len(buf)) > hardCap-grow {
				grow = hardCap - int64(len(buf))
			}
			nb := make([]byte, len(buf), int64(len(buf))+grow)
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)) > limit {
			return buf, nil
		}
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}
