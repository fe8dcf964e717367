package privacy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/veil-analytics/veil/internal/privacy/pii"
)

// Action is what the stage does with a value that holds personal data.
type Action string

// The actions a policy may choose per class of personal data.
const (
	Redact       Action = "redact"        // replace the match with a placeholder such as "[email]"
	Pseudonymize Action = "pseudonymize"  // replace each match with its keyed pseudonym
	DropProperty Action = "drop_property" // remove the property
	DropEvent    Action = "drop_event"    // drop the whole event
)

func (a Action) valid() bool {
	switch a {
	case Redact, Pseudonymize, DropProperty, DropEvent:
		return true
	}
	return false
}

// GeoLevel is how precise the location derived from an IP address may be.
type GeoLevel string

// Geo levels; the IP itself is never kept.
const (
	GeoOff     GeoLevel = "off"
	GeoCountry GeoLevel = "country"
	GeoRegion  GeoLevel = "region"
	GeoCity    GeoLevel = "city"
)

// Policy is one project's privacy policy: what the stage pseudonymises,
// drops, redacts and derives. The zero value is not valid; start from
// DefaultPolicy, the strict default.
type Policy struct {
	// Epoch selects the pseudonym key epoch for new data (key rotation).
	Epoch uint32 `json:"epoch"`
	// Identifiers are property names whose values are identities and are
	// replaced by keyed pseudonyms, like distinct_id itself.
	Identifiers []string `json:"identifiers"`
	// GroupKeys are group key properties (Mixpanel group analytics, e.g.
	// "company"); their values, group ids, are pseudonymised too.
	GroupKeys []string `json:"group_keys"`
	// Drop are property names removed outright (compared case-insensitively).
	Drop []string `json:"drop"`
	// Classes says per class of detected personal data what to do.
	Classes map[string]Action `json:"classes"`
	// Geo is the precision of IP geolocation.
	Geo GeoLevel `json:"geo"`
	// DropBots drops events whose user agent is a bot.
	DropBots bool `json:"drop_bots"`
	// URLProperties are cleaned as URLs (query, fragment, userinfo, ids);
	// any other string that is an absolute URL is cleaned too.
	URLProperties []string `json:"url_properties"`
	// ReferrerProperties are reduced to their host.
	ReferrerProperties []string `json:"referrer_properties"`
	// AllowParams are the query parameters URLs keep ("utm_*" is a prefix).
	AllowParams []string `json:"allow_params"`
	// Contract, when set, is an allow-list: undeclared events and
	// properties are dropped.
	Contract *Contract `json:"contract,omitempty"`
}

// Contract declares the events a project sends and their properties.
type Contract struct {
	Events map[string]EventSchema `json:"events"`
	// Common are properties allowed on every declared event, such as the
	// SDK's own ($current_url, $browser, ...), with their types.
	Common map[string]string `json:"common_properties,omitempty"`
}

// EventSchema lists an event's properties and their JSON types
// ("string", "number", "boolean", "array", "object", or "any").
type EventSchema struct {
	Properties map[string]string `json:"properties"`
}

// classNames are the classes of personal data the scanner knows, in its order.
var classNames = func() []string {
	var out []string
	for _, c := range pii.Classes() {
		out = append(out, c.String())
	}
	return out
}()

// DefaultPolicy is the strict default every project starts with.
func DefaultPolicy() Policy {
	classes := make(map[string]Action, len(classNames))
	for _, c := range classNames {
		classes[c] = Redact
	}
	return Policy{
		Identifiers: []string{
			"$device_id", "$user_id", "$anon_id", "$anon_distinct_id", "$identified_id", "alias",
			"$distinct_ids", "$distinct_id_before_identity", "user_id", "userid",
			"customer_id", "$group_id",
		},
		// Mixpanel group keys in common use: the property holds group ids
		// (an organization's id), pseudonymised in the group's domain so
		// events, user profiles and /groups profiles agree.
		GroupKeys: []string{
			"company", "company_id", "organization", "organization_id", "org", "org_id",
			"account", "account_id", "team", "team_id", "workspace", "workspace_id",
		},
		Drop: []string{
			"$email", "$name", "$first_name", "$last_name", "$phone", "$avatar",
			"email", "e-mail", "mail", "name", "full_name", "fullname", "first_name", "firstname",
			"last_name", "lastname", "surname", "phone", "phone_number", "mobile", "telephone",
			"address", "street", "street_address", "postcode", "zip", "zip_code", "ip", "$ip",
			"ip_address", "$latitude", "$longitude", "latitude", "longitude", "birthday",
			"date_of_birth", "dob", "ssn", "password", "passwd", "$raw_user_agent", "user_agent",
			"useragent", "$city", "$region",
		},
		Classes:            classes,
		Geo:                GeoCountry,
		URLProperties:      []string{"$current_url", "current_url_search", "current_url_path", "url", "$url", "href"},
		ReferrerProperties: []string{"$referrer", "$initial_referrer", "referrer", "mp_keyword"},
		AllowParams:        []string{"utm_*", "ref", "source"},
	}
}

// Validate checks a policy and returns an error naming the first problem.
func (p *Policy) Validate() error {
	for c, a := range p.Classes {
		if !knownClass(c) {
			return fmt.Errorf("classes: unknown class %q (known: %s)", c, strings.Join(classNames, ", "))
		}
		if !a.valid() {
			return fmt.Errorf("classes.%s: unknown action %q (use redact, pseudonymize, drop_property or drop_event)", c, a)
		}
	}
	for _, c := range classNames {
		if _, ok := p.Classes[c]; !ok {
			return fmt.Errorf("classes: no action for %q", c)
		}
	}
	switch p.Geo {
	case GeoOff, GeoCountry, GeoRegion, GeoCity:
	default:
		return fmt.Errorf("geo: %q is not one of off, country, region, city", p.Geo)
	}
	for field, list := range map[string][]string{
		"identifiers": p.Identifiers, "group_keys": p.GroupKeys, "drop": p.Drop,
		"url_properties": p.URLProperties, "referrer_properties": p.ReferrerProperties, "allow_params": p.AllowParams,
	} {
		for i, s := range list {
			if strings.TrimSpace(s) == "" {
				return fmt.Errorf("%s[%d]: empty name", field, i)
			}
		}
	}
	if p.Contract != nil {
		if len(p.Contract.Events) == 0 {
			return errors.New("contract: declares no events (omit the contract to allow everything)")
		}
		for name, ev := range p.Contract.Events {
			for prop, typ := range ev.Properties {
				if !knownType(typ) {
					return fmt.Errorf("contract.events[%q].properties[%q]: unknown type %q (use string, number, boolean, array, object or any)", name, prop, typ)
				}
			}
		}
		for prop, typ := range p.Contract.Common {
			if !knownType(typ) {
				return fmt.Errorf("contract.common_properties[%q]: unknown type %q (use string, number, boolean, array, object or any)", prop, typ)
			}
		}
	}
	return nil
}

func knownType(t string) bool {
	switch t {
	case "string", "number", "boolean", "array", "object", "any":
		return true
	}
	return false
}

func knownClass(c string) bool {
	for _, k := range classNames {
		if k == c {
			return true
		}
	}
	return false
}

// ParsePolicy decodes a policy from JSON. Fields left out keep their
// strict defaults, so a file may say only what it changes; unknown
// fields are refused so a typo cannot silently weaken the policy.
func ParsePolicy(b []byte) (Policy, error) {
	p := DefaultPolicy()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	if dec.More() {
		return Policy{}, errors.New("policy: trailing data after the JSON object")
	}
	if err := p.Validate(); err != nil {
		return Policy{}, fmt.Errorf("policy: %w", err)
	}
	return p, nil
}

// JSON encodes p, indented, with sorted lists for stable diffs.
func (p Policy) JSON() []byte {
	for _, l := range [][]string{p.Identifiers, p.GroupKeys, p.Drop, p.URLProperties, p.ReferrerProperties, p.AllowParams} {
		sort.Strings(l)
	}
	b, _ := json.MarshalIndent(p, "", "  ")
	return append(b, '\n')
}
