package privacy

import (
	"github.com/veil-analytics/veil/internal/privacy/pii"
	"github.com/veil-analytics/veil/internal/privacy/urlclean"
)

// Reasons the stage gives for a change. They are stable: `veil privacy
// report` groups by them and operators alert on them.
const (
	ReasonPseudonymized       = "pseudonymized"             // an identity became its keyed pseudonym
	ReasonPersonalField       = "dropped_personal_field"    // the property is on the policy's drop list
	ReasonPIIInKey            = "dropped_pii_in_key"        // the property's name held personal data
	ReasonNotScalarIdentifier = "dropped_identifier_object" // an identifier held an object
	ReasonUserAgent           = "user_agent_reduced"        // a raw user agent became family and version
	ReasonBot                 = "dropped_bot"               // the event came from a bot and the policy drops bots
	ReasonUndeclaredEvent     = "contract_undeclared_event" // the contract does not declare the event
	ReasonUndeclaredProperty  = "contract_undeclared_property"
	ReasonWrongType           = "contract_wrong_type"
	ReasonGeo                 = "ip_geolocated_and_dropped" // an IP address became a location
	ReasonTooDeep             = "dropped_too_deep"          // nesting beyond what the stage inspects
)

// piiReasons[class][action] is "pii_<class>_<action>", built once so the
// hot path does not concatenate.
var piiReasons = func() (r [16]map[Action]string) {
	for _, c := range pii.Classes() {
		r[c] = map[Action]string{}
		for _, a := range []Action{Redact, Pseudonymize, DropProperty, DropEvent} {
			r[c][a] = "pii_" + c.String() + "_" + string(a)
		}
	}
	return r
}()

// urlReasons names each urlclean change bit as "url_<reason>".
var urlReasons = func() (r [8]string) {
	for i := range r {
		if names := urlclean.Change(1 << i).Reasons(); len(names) == 1 {
			r[i] = "url_" + names[0]
		}
	}
	return r
}()
