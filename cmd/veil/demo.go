package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/veil-analytics/veil/internal/meta"
)

// runDemo runs the server on the embedded store with a demo project, sends
// it sample traffic shaped like the Mixpanel SDKs', and says what to open.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg serveConfig
	fs := newFlagSet("demo", "demo [--data DIR] [--addr HOST:PORT]", stderr)
	cfg.register(fs)
	events := fs.Int("events", 5000, "sample events to send at start")
	exit := fs.Bool("exit", false, "stop after the sample traffic instead of serving until Ctrl-C")
	if err := fs.parse(args); err != nil {
		return err
	}
	if cfg.data == "" {
		cfg.data = filepath.Join(os.TempDir(), "veil-demo")
	}
	logger, err := newLogger(cfg.logLevel, cfg.logFormat, stderr)
	if err != nil {
		return err
	}
	srv, err := startServer(ctx, cfg, logger)
	if err != nil {
		return err
	}
	p, secret, err := demoProject(ctx, srv.db)
	if err != nil {
		srv.http.Close()
		return errors.Join(err, srv.wait(ctx))
	}
	base := srv.URL()
	sent, err := sendDemoTraffic(ctx, base, p.Token, secret, *events)
	if err != nil {
		logger.Error("demo traffic failed", "err", err)
	}
	self, _ := os.Executable()
	importNote := ", and an /import batch with the project secret"
	if secret == "" {
		importNote = " (the project existed: its secret was shown on the first run only, so no /import)"
	}
	fmt.Fprintf(stdout, `
Veil demo is running at %[1]s (data in %[2]s)

  Project %[3]d "%[4]s", token %[5]s
  Sent %[6]d sample events and profile updates%[8]s.

  Health:          %[1]s/healthz
  Metrics:         %[1]s/metrics
  Stored events:   %[7]s events --data %[2]s --project %[3]d --json | head
  Send your own:   curl -s '%[1]s/track?verbose=1' -d 'data={"event":"hello","properties":{"token":"%[5]s","distinct_id":"u1"}}'
  Mixpanel SDKs:   point api_host (browser), ProxyApiLocation (Go) or host (Node) at %[1]s

`, base, cfg.data, p.ID, p.Name, p.Token, sent, self, importNote)
	if *exit {
		srv.http.Close()
		return srv.wait(context.Background())
	}
	fmt.Fprintln(stdout, "Press Ctrl-C to stop.")
	return srv.wait(ctx)
}

// demoProject returns the demo project, creating it on first run. The
// secret is only known when it is created; later runs skip /import.
func demoProject(ctx context.Context, db *meta.DB) (meta.Project, string, error) {
	ps, err := db.Projects(ctx)
	if err != nil {
		return meta.Project{}, "", err
	}
	for _, p := range ps {
		if p.Name == "Demo" {
			return p, "", nil
		}
	}
	return db.CreateProject(ctx, "Demo")
}

// sendDemoTraffic posts browser-shaped batches, profile updates and, when
// the secret is known, an /import batch, the way the SDKs do.
func sendDemoTraffic(ctx context.Context, base, token, secret string, n int) (int, error) {
	t := newBrowserTraffic(token, max(n/20, 1), uint64(time.Now().UnixNano()))
	sent := 0
	post := func(path, contentType string, body []byte, user, pass string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", contentType)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		rb, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %d %s", path, resp.StatusCode, rb)
		}
		return nil
	}
	for sent < n {
		k := min(50, n-sent)
		if err := post("/track/?verbose=1&ip=1", "application/x-www-form-urlencoded", t.formBody(k, time.Now().UnixMilli()), "", ""); err != nil {
			return sent, err
		}
		sent += k
	}
	profiles := fmt.Sprintf(`[{"$token":%q,"$distinct_id":"demo-user-1","$set":{"plan":"pro","$browser":"Chrome"}},`+
		`{"$token":%q,"$distinct_id":"demo-user-1","$add":{"logins":1}}]`, token, token)
	if err := post("/engage", "application/json", []byte(profiles), "", ""); err != nil {
		return sent, err
	}
	if secret != "" {
		now := time.Now().Add(-30 * 24 * time.Hour).Unix()
		var b strings.Builder
		b.WriteString("[")
		for i := range 20 {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"event":"invoice_paid","properties":{"time":%d,"distinct_id":"demo-user-%d","$insert_id":"demo-import-%d","amount":%d}}`, now+int64(i)*3600, i%5, i, 10*i)
		}
		b.WriteString("]")
		if err := post("/import?strict=1", "application/json", []byte(b.String()), secret, ""); err != nil {
			return sent, err
		}
		sent += 20
	}
	return sent, nil
}
