package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the node starts (training, Pebble's, Raft's) must be
// gone when the tests that started them have closed what they opened.
func TestMain(m *testing.M) {
	// The run-queue watcher lives as long as the process (sched.go).
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("lookalike/node.sampleRunQueue"))
}
