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

// reasonID is a reason as the hot path records it: a small number, so
// counting an event's changes hashes property names only.
type reasonID uint8

// reasonNames[id] is the reason's stable name.
var reasonNames []string

func intern(name string) reasonID {
	reasonNames = append(reasonNames, name)
	return reasonID(len(reasonNames) - 1)
}

var (
	rPseudonymized       = intern(ReasonPseudonymized)
	rPersonalField       = intern(ReasonPersonalField)
	rPIIInKey            = intern(ReasonPIIInKey)
	rNotScalarIdentifier = intern(ReasonNotScalarIdentifier)
	rUserAgent           = intern(ReasonUserAgent)
	rBot                 = intern(ReasonBot)
	rUndeclaredEvent     = intern(ReasonUndeclaredEvent)
	rUndeclaredProperty  = intern(ReasonUndeclaredProperty)
	rWrongType           = intern(ReasonWrongType)
	rGeo                 = intern(ReasonGeo)
	rTooDeep             = intern(ReasonTooDeep)
)

var actions = [...]Action{Redact, Pseudonymize, DropProperty, DropEvent}

// piiReasons[class][action] is "pii_<class>_<action>".
var piiReasons = func() (r [16]map[Action]reasonID) {
	for _, c := range pii.Classes() {
		r[c] = map[Action]reasonID{}
		for _, a := range actions {
			r[c][a] = intern("pii_" + c.String() + "_" + string(a))
		}
	}
	return r
}()

// urlReasons names each urlclean change bit as "url_<reason>".
var urlReasons = func() (r [8]reasonID) {
	for i := range r {
		if names := urlclean.Change(1 << i).Reasons(); len(names) == 1 {
			r[i] = intern("url_" + names[0])
		}
	}
	return r
}()
