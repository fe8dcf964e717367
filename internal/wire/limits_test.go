package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestParseLimits(t *testing.T) {
	_, err := ParseItems([]byte("[1,2,3]"), ParseOptions{MaxItems: 2})
	var tm *TooManyItemsError
	if !errors.As(err, &tm) || tm.Max != 2 {
		t.Errorf("MaxItems: %v", err)
	}
	big := `[{"x":[` + strings.Repeat("0,", 300) + `0]}]`
	if _, err := ParseItems([]byte(big), ParseOptions{MaxMembers: 255}); err == nil || !strings.Contains(err.Error(), "more than 255 members") {
		t.Errorf("MaxMembers array: %v", err)
	}
	obj := `{"properties":{` + strings.Repeat(`"a":1,`, 300) + `"b":2}}`
	if _, err := ParseItems([]byte(obj), ParseOptions{MaxMembers: 255}); err == nil || !strings.Contains(err.Error(), "more than 255 members") {
		t.Errorf("MaxMembers object: %v", err)
	}
	if _, err := ParseItems([]byte(big), ParseOptions{MaxValues: 100}); err == nil || !strings.Contains(err.Error(), "too many JSON values") {
		t.Errorf("MaxValues: %v", err)
	}
	if items, err := ParseItems([]byte(big), ParseOptions{MaxMembers: 301, MaxValues: 400}); err != nil || len(items) != 1 {
		t.Errorf("within limits: %v", err)
	}
}
