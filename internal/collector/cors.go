package collector

import (
	"net/http"
	"net/netip"
	"strings"
)

// setCORS allows the browser SDK on any site: it sends XHRs with
// credentials, so the Origin must be echoed (a "*" would be refused).
func setCORS(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Expose-Headers", "X-Veil-Accepted, X-Veil-Dropped, X-Veil-Error, Retry-After")
	h.Add("Vary", "Origin")
}

// preflight answers OPTIONS. The browser SDK's /flags calls send
// Authorization and traceparent, so requested headers are allowed as asked.
func preflight(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
		h.Set("Access-Control-Allow-Headers", req)
	} else {
		h.Set("Access-Control-Allow-Headers", "Content-Type, Content-Encoding, Authorization, traceparent")
	}
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusOK)
}

// clientIP is the request's client address: the peer, or, when the peer is
// a trusted proxy, the nearest untrusted hop of X-Forwarded-For.
func clientIP(r *http.Request, trusted []netip.Prefix) netip.Addr {
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	ip := peer.Addr().Unmap()
	if !isTrusted(ip, trusted) {
		return ip
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return ip
		}
		ip = a.Unmap()
		if !isTrusted(ip, trusted) {
			return ip
		}
	}
	return ip
}

func isTrusted(ip netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
