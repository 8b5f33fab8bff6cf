// Package failpoint injects faults at named points of the server, for the
// tests that run the real binary (node/e2e) and must reach a state that
// only a crash at one exact moment leaves: the environment variable
// LOOKALIKE_FAILPOINTS, a comma-separated list of names, turns those
// points on in a process, read once at its start. Off (the default) a
// point costs a bool test.
//
// The points (each documented where it is checked):
//
//	exit-before-evict  node: a gateway exits (status 3) after an upsert is
//	                   written and before its old copies are evicted, as
//	                   if killed there (node/directory.go, evictListed)
//
// The idea is TiKV's fail-rs and etcd's gofail, without their code
// generation or runtime configuration, which no test here needs.
package failpoint

import (
	"os"
	"strings"
)

// Env is the environment variable that lists the points turned on.
const Env = "LOOKALIKE_FAILPOINTS"

var on = parse(os.Getenv(Env))

func parse(s string) map[string]bool {
	m := map[string]bool{}
	for _, name := range strings.Split(s, ",") {
		if name = strings.TrimSpace(name); name != "" {
			m[name] = true
		}
	}
	return m
}

// Enabled reports whether the point name is turned on in this process.
func Enabled(name string) bool { return on[name] }
