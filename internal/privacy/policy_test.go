package privacy

import (
	"strings"
	"testing"
)

func TestDefaultPolicyIsValidAndStrict(t *testing.T) {
	p := DefaultPolicy()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range classNames {
		if p.Classes[c] != Redact {
			t.Errorf("class %s defaults to %q, want redact", c, p.Classes[c])
		}
	}
	if p.Geo != GeoCountry || p.DropBots {
		t.Errorf("geo %q, drop bots %v", p.Geo, p.DropBots)
	}
}

func TestParsePolicy(t *testing.T) {
	f := func(in, wantErr string) {
		t.Helper()
		_, err := ParsePolicy([]byte(in))
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("ParsePolicy(%s): %v", in, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("ParsePolicy(%s) = %v, want error containing %q", in, err, wantErr)
		}
	}
	f(`{}`, "")
	f(`{"geo":"city","classes":{"email":"pseudonymize","phone":"drop_event","ipv4":"redact","ipv6":"redact","card":"drop_property","iban":"redact","jwt":"redact","secret_key":"drop_event","bearer_token":"redact","url_credential":"redact"}}`, "")
	f(`{"geo":"street"}`, `geo: "street" is not one of`)
	f(`{"classes":{"email":"shred"}}`, `unknown action "shred"`)
	f(`{"classes":{"dna":"redact"}}`, `unknown class "dna"`)
	f(`{"classes":{}}`, "") // classes merge into the defaults
	f(`{"identifers":["x"]}`, `unknown field "identifers"`)
	f(`{"drop":[""]}`, `drop[0]: empty name`)
	f(`{"contract":{"events":{}}}`, "declares no events")
	f(`{"contract":{"events":{"signup":{"properties":{"plan":"text"}}}}}`, `unknown type "text"`)
	f(`{} {}`, "trailing data")
	p, err := ParsePolicy([]byte(`{"drop_bots":true}`))
	if err != nil || !p.DropBots || p.Classes["email"] != Redact {
		t.Errorf("partial policy did not keep defaults: %+v %v", p, err)
	}
	back, err := ParsePolicy(p.JSON())
	if err != nil || !back.DropBots || len(back.Drop) != len(p.Drop) {
		t.Errorf("JSON round trip: %v", err)
	}
}

func TestValidateNeedsEveryClass(t *testing.T) {
	p := DefaultPolicy()
	delete(p.Classes, "iban")
	if err := p.Validate(); err == nil || !strings.Contains(err.Error(), `no action for "iban"`) {
		t.Fatalf("Validate = %v", err)
	}
}
