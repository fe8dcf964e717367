package collector

import (
	"context"
	"strings"

	"github.com/veil-analytics/veil/internal/event"
	"github.com/veil-analytics/veil/internal/wire"
)

// Profile operations, in the order they apply when one update carries
// several (Mixpanel documents one per update; some clients send more).
var profileOps = []string{"$set_once", "$set", "$add", "$union", "$append", "$remove", "$unset", "$delete"}

// groupOps are the operations /groups accepts: Mixpanel has no $append for groups.
var groupOps = map[string]bool{"$set": true, "$set_once": true, "$add": true, "$union": true, "$remove": true, "$unset": true, "$delete": true}

// profileModifiers are the other top-level keys an update may carry.
var profileModifiers = map[string]bool{
	"$token": true, "$distinct_id": true, "$group_key": true, "$group_id": true,
	"$ip": true, "$time": true, "$ignore_time": true, "$ignore_alias": true,
	"$latitude": true, "$longitude": true, "$device_id": true, "$user_id": true,
}

// profiles validates /engage and /groups records into b.Profiles.
func (in *intake) profiles(ctx context.Context, items []wire.Item, b *event.Batch) *requestError {
	b.Profiles = make([]event.ProfileUpdate, 0, len(items))
	for idx, it := range items {
		u, ok, err := in.profile(ctx, idx, it)
		if err != nil {
			return err
		}
		if ok {
			in.count(u.Project)
			b.Profiles = append(b.Profiles, u)
		}
	}
	return nil
}

func truthy(v event.Value) bool {
	switch v.Kind {
	case event.Bool:
		return v.Bool
	case event.String:
		return strings.EqualFold(v.Str, "true") || v.Str == "1"
	case event.Number:
		return v.Num != 0
	}
	return false
}

func (in *intake) profile(ctx context.Context, idx int, it wire.Item) (event.ProfileUpdate, bool, *requestError) {
	var u event.ProfileUpdate
	what := "profile update"
	if in.ep == epGroups {
		what = "group update"
	}
	if it.Value.Kind != event.Object {
		in.refuse(idx, "", "", reasonInvalid, "record %d is a JSON %s, not a %s object", idx, it.Value.Kind, what)
		return u, false, nil
	}
	if it.Size > in.c.cfg.MaxRecordBytes {
		in.refuse(idx, "", "", reasonTooLarge, "%s is %d bytes; the limit is %d bytes", what, it.Size, in.c.cfg.MaxRecordBytes)
		return u, false, nil
	}
	fields := it.Value.Fields
	tok, ok := event.Get(fields, "$token")
	if !ok || tok.Kind != event.String || tok.Str == "" {
		in.refuse(idx, "", "$token", reasonNoToken, "$token is required: the project token")
		return u, false, nil
	}
	if len(tok.Str) > maxTokenLen {
		in.refuse(idx, "", "$token", reasonUnknownToken, "$token is not the token of any project")
		return u, false, nil
	}
	id, found, err := in.project(ctx, tok.Str)
	if err != nil {
		return u, false, err
	}
	if !found {
		in.refuse(idx, "", "$token", reasonUnknownToken, "$token is not the token of any project")
		return u, false, nil
	}
	u.Project = id

	if in.ep == epGroups {
		key, _ := event.Get(fields, "$group_key")
		if key.Kind != event.String || key.Str == "" {
			in.refuse(idx, "", "$group_key", reasonInvalid, "$group_key must be a non-empty string")
			return u, false, nil
		}
		gid, ok := event.Get(fields, "$group_id")
		s, isID := idString(gid)
		if !ok || !isID || s == "" {
			in.refuse(idx, "", "$group_id", reasonInvalid, "$group_id must be a non-empty string or number")
			return u, false, nil
		}
		u.GroupKey, u.GroupID = key.Str, s
	} else {
		var did string
		for _, k := range []string{"$distinct_id", "$user_id"} {
			if v, ok := event.Get(fields, k); ok {
				if did, ok = idString(v); ok && did != "" {
					break
				}
			}
		}
		if did == "" {
			if v, ok := event.Get(fields, "$device_id"); ok {
				if s, ok := idString(v); ok && s != "" {
					did = "$device:" + s
				}
			}
		}
		if did == "" {
			in.refuse(idx, "", "$distinct_id", reasonInvalid, "$distinct_id must be a non-empty string or number")
			return u, false, nil
		}
		u.DistinctID = did
	}

	u.Received = in.now.UnixMilli()
	u.Time = u.Received
	if tv, ok := event.Get(fields, "$time"); ok && tv.Kind != event.Null {
		t, ok := timeMS(tv)
		if !ok {
			in.refuse(idx, "", "$time", reasonBadTime, "$time must be seconds or milliseconds since epoch")
			return u, false, nil
		}
		u.Time = min(t, u.Received)
	}
	if v, ok := event.Get(fields, "$ignore_time"); ok {
		u.IgnoreTime = truthy(v)
	}
	if v, ok := event.Get(fields, "$ignore_alias"); ok {
		u.IgnoreAlias = truthy(v)
	}

	for _, f := range fields {
		if !profileModifiers[f.Key] && !isProfileOp(f.Key) && strings.HasPrefix(f.Key, "$") {
			in.refuse(idx, "", fieldName(f.Key), reasonInvalid, "%s is not a known operation: use one of %s", fieldName(f.Key), strings.Join(profileOps, ", "))
			return u, false, nil
		}
	}
	if v, ok := event.Get(fields, "$delete"); ok {
		// $delete removes the whole profile; other operations beside it are moot.
		u.Ops = []event.ProfileOp{{Op: "$delete", Value: v}}
		return u, true, nil
	}
	for _, op := range profileOps {
		v, ok := event.Get(fields, op)
		if !ok {
			continue
		}
		if in.ep == epGroups && !groupOps[op] {
			in.refuse(idx, "", op, reasonInvalid, "%s is not supported on group profiles", op)
			return u, false, nil
		}
		if msg := in.checkOp(op, v); msg != "" {
			in.refuse(idx, "", op, reasonInvalid, "%s%s", op, msg)
			return u, false, nil
		}
		u.Ops = append(u.Ops, event.ProfileOp{Op: op, Value: v})
	}
	if len(u.Ops) == 0 {
		in.refuse(idx, "", "", reasonInvalid, "%s has no operation: use one of %s", what, strings.Join(profileOps, ", "))
		return u, false, nil
	}
	return u, true, nil
}

func isProfileOp(k string) bool {
	for _, op := range profileOps {
		if op == k {
			return true
		}
	}
	return false
}

// checkOp validates an operation's value and returns a message, or "".
func (in *intake) checkOp(op string, v event.Value) string {
	if op == "$unset" {
		if v.Kind != event.Array || len(v.Items) == 0 {
			return " must be a non-empty list of property names"
		}
		for _, it := range v.Items {
			if it.Kind != event.String {
				return " must list property names as strings"
			}
		}
		return ""
	}
	if v.Kind != event.Object {
		return " must be an object of properties, not a JSON " + v.Kind.String()
	}
	if len(v.Fields) > maxProfileProps {
		return " sets more than 2000 properties"
	}
	for _, f := range v.Fields {
		if msg := validKey(f.Key); msg != "" {
			return " has a bad " + msg
		}
		name := fieldName(f.Key)
		switch op {
		case "$add":
			if f.Value.Kind != event.Number {
				return "." + name + " must be a number, not a JSON " + f.Value.Kind.String()
			}
		case "$union":
			if f.Value.Kind != event.Array {
				return "." + name + " must be a list, not a JSON " + f.Value.Kind.String()
			}
		}
		if msg := in.checkValue(f.Value, maxProfileObjBytes); msg != "" {
			return "." + name + " " + msg
		}
	}
	return ""
}
