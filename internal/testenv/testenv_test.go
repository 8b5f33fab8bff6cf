package testenv

import (
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"testing"
)

// recorder is a testing.TB that records Fatalf and Skipf instead of
// stopping the goroutine.
type recorder struct {
	testing.TB
	failed, skipped string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failed = fmt.Sprintf(format, args...)
}
func (r *recorder) Skipf(format string, args ...any) {
	r.skipped = fmt.Sprintf(format, args...)
}

func TestRequire(t *testing.T) {
	for _, tc := range []struct {
		name, env  string
		ok         bool
		fail, skip bool
	}{
		{"present", "", true, false, false},
		{"present required", "1", true, false, false},
		{"missing", "", false, false, true},
		{"missing other value", "0", false, false, true},
		{"missing required", "1", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(RequireEnv, tc.env)
			r := &recorder{TB: t}
			Require(r, "the widget", "apt-get install widget", tc.ok)
			if (r.failed != "") != tc.fail || (r.skipped != "") != tc.skip {
				t.Fatalf("failed=%q skipped=%q, want fail=%v skip=%v", r.failed, r.skipped, tc.fail, tc.skip)
			}
		})
	}
}

func TestRequireFile(t *testing.T) {
	t.Setenv(RequireEnv, "")
	r := &recorder{TB: t}
	RequireFile(r, t.TempDir(), "a dir", "mkdir it")
	if r.skipped != "" || r.failed != "" {
		t.Fatalf("existing dir: skipped=%q failed=%q", r.skipped, r.failed)
	}
	RequireFile(r, filepath.Join(t.TempDir(), "nope"), "a file", "touch it")
	if r.skipped == "" {
		t.Fatal("missing file did not skip")
	}
}

// FreeAddr hands out distinct, bindable loopback ports below the
// ephemeral range (where it is known).
func TestFreeAddr(t *testing.T) {
	lo, hi := belowEphemeral()
	seen := map[string]bool{}
	for range 50 {
		a := FreeAddr(t)
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		_, ps, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := strconv.Atoi(ps)
		if hi > lo && (p < lo || p >= hi) {
			t.Fatalf("port %d outside [%d, %d)", p, lo, hi)
		}
		l, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s not bindable: %v", a, err)
		}
		l.Close()
	}
}
