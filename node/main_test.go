package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// Every goroutine the node starts (training, Pebble's, Raft's) must be
// gone when the tests that started them have closed what they opened.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
