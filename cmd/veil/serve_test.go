package main

import (
	"bytes"
	"testing"
)

func TestRedactAddrs(t *testing.T) {
	for _, in := range []string{
		"http: TLS handshake error from 203.0.113.7:50068: EOF",
		"http: TLS handshake error from [2001:db8::1]:443: EOF",
		"http: Accept error: accept tcp 127.0.0.1:8080: too many open files",
	} {
		var b bytes.Buffer
		redactAddrs{&b}.Write([]byte(in))
		if bytes.Contains(b.Bytes(), []byte("203.0.113.7")) || bytes.Contains(b.Bytes(), []byte("2001:db8")) || bytes.Contains(b.Bytes(), []byte("127.0.0.1")) {
			t.Errorf("address kept: %s", b.String())
		}
		if !bytes.Contains(b.Bytes(), []byte("[client]")) {
			t.Errorf("nothing redacted: %s", b.String())
		}
	}
}
