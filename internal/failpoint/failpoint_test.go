package failpoint

import (
	"maps"
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		in   string
		want map[string]bool
	}{
		{"", map[string]bool{}},
		{"a", map[string]bool{"a": true}},
		{" a , b,,", map[string]bool{"a": true, "b": true}},
	} {
		if got := parse(c.in); !maps.Equal(got, c.want) {
			t.Errorf("parse(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}
