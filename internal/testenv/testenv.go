// Package testenv lets tests depend on components that a bare checkout may
// lack (the Debian Fashion-MNIST dataset, ONNX Runtime, the default model,
// FAISS).
//
// Under a bare `go test` a test whose component is missing skips with a
// message saying how to install it. Under `make test`, which installs every
// component and sets LOOKALIKE_REQUIRE_COMPONENTS=1, the same test fails
// instead, so that a broken setup cannot pass by skipping.
//
// It also holds what benchmarks of several packages share: CPUTime.
package testenv

import (
	"os"
	"testing"
)

// RequireEnv is the environment variable that turns skips into failures
// when set to "1".
const RequireEnv = "LOOKALIKE_REQUIRE_COMPONENTS"

// Required reports whether missing components fail tests rather than skip
// them.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Require skips t, or fails it when components are required, unless ok.
// what names the component ("the Fashion-MNIST dataset"); hint says how to
// install it ("sudo apt-get install dataset-fashion-mnist").
func Require(t testing.TB, what, hint string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if Required() {
		t.Fatalf("%s is missing and %s=1: %s", what, RequireEnv, hint)
		return
	}
	t.Skipf("%s is missing (skipping; set %s=1 to fail instead): %s", what, RequireEnv, hint)
}

// RequireFile is Require for a component that is a file or directory at
// path.
func RequireFile(t testing.TB, path, what, hint string) {
	t.Helper()
	_, err := os.Stat(path)
	Require(t, what+" ("+path+")", hint, err == nil)
}
