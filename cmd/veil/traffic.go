package main

import (
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"strconv"
)

// browserTraffic builds request bodies shaped like mixpanel-browser 2.83's
// batch mode (captured in shared/research/wire): a form body
// data=<urlencoded base64(JSON array)> of events with about 22 properties.
type browserTraffic struct {
	token string
	users int
	// mixed puts a different user on every event of a batch; by default a
	// batch is one browser's, as the SDK sends it: one user, many pages.
	mixed bool
	rng   *rand.Rand
	json  []byte
	b64   []byte
	body  []byte
}

func newBrowserTraffic(token string, users int, seed uint64) *browserTraffic {
	return &browserTraffic{token: token, users: users, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

var (
	demoEvents = []string{"$mp_web_page_view", "$mp_web_page_view", "$mp_web_page_view", "signup_started", "api_key_created", "checkout", "search", "docs_viewed"}
	demoPaths  = []string{"/", "/pricing", "/docs/quickstart", "/docs/api", "/blog/privacy", "/signup", "/dashboard"}
)

const idAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789"

func (t *browserTraffic) appendInsertID(b []byte) []byte {
	for range 16 {
		b = append(b, idAlphabet[t.rng.IntN(len(idAlphabet))])
	}
	return b
}

func (t *browserTraffic) appendDeviceID(b []byte, user int) []byte {
	return fmt.Appendf(b, "%08x-a810-4131-be6a-%012x", uint32(user), uint64(user)*2654435761)
}

// appendEvent appends one event of user as the browser SDK sends it.
func (t *browserTraffic) appendEvent(b []byte, nowMS int64, user int) []byte {
	name := demoEvents[t.rng.IntN(len(demoEvents))]
	path := demoPaths[t.rng.IntN(len(demoPaths))]
	b = append(b, `{"event":"`...)
	b = append(b, name...)
	b = append(b, `","properties":{"$os":"Linux","$browser":"Chrome","$current_url":"https://app.example.com`...)
	b = append(b, path...)
	b = append(b, `?utm_source=newsletter","$browser_version":156,"$screen_height":1080,"$screen_width":1920,"mp_lib":"web","$lib_version":"2.83.0","$insert_id":"`...)
	b = t.appendInsertID(b)
	b = append(b, `","time":`...)
	ms := nowMS - int64(t.rng.IntN(5000))
	b = strconv.AppendInt(b, ms/1000, 10)
	b = append(b, '.')
	b = fmt.Appendf(b, "%03d", ms%1000)
	b = append(b, `,"distinct_id":"$device:`...)
	b = t.appendDeviceID(b, user)
	b = append(b, `","$device_id":"`...)
	b = t.appendDeviceID(b, user)
	b = append(b, `","$initial_referrer":"$direct","$initial_referring_domain":"$direct","token":"`...)
	b = append(b, t.token...)
	b = append(b, `","mp_sent_by_lib_version":"2.83.0","$mp_autocapture":true,"current_domain":"app.example.com","current_page_title":"Example app","current_url_path":"`...)
	b = append(b, path...)
	b = append(b, `","current_url_protocol":"https:","current_url_search":"?utm_source=newsletter","utm_source":"newsletter","plan":"`...)
	b = append(b, [...]string{"free", "pro", "team"}[user%3]...)
	b = append(b, `","amount":`...)
	b = strconv.AppendInt(b, int64(t.rng.IntN(10000)), 10)
	return append(b, `}}`...)
}

// batchJSON returns a JSON array of n events.
func (t *browserTraffic) batchJSON(n int, nowMS int64) []byte {
	b := append(t.json[:0], '[')
	user := t.rng.IntN(t.users)
	for i := range n {
		if i > 0 {
			b = append(b, ',')
		}
		if t.mixed {
			user = t.rng.IntN(t.users)
		}
		b = t.appendEvent(b, nowMS, user)
	}
	t.json = append(b, ']')
	return t.json
}

// formBody returns data=<urlencoded base64(JSON)>, as the browser posts it.
func (t *browserTraffic) formBody(n int, nowMS int64) []byte {
	js := t.batchJSON(n, nowMS)
	t.b64 = base64.StdEncoding.AppendEncode(t.b64[:0], js)
	need := len("data=") + 3*len(t.b64)
	if cap(t.body) < need {
		t.body = make([]byte, need)
	}
	b := t.body[:need]
	j := copy(b, "data=")
	for _, c := range t.b64 {
		if c == '+' || c == '/' || c == '=' {
			b[j], b[j+1], b[j+2] = '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15]
			j += 3
			continue
		}
		b[j] = c
		j++
	}
	return b[:j]
}
