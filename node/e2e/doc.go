// Package e2e holds the tests of lookalike serve as users run it: real
// processes of the binary, HTTP, SIGTERM and kill -9, restarts over the
// same data directory. It has no non-test code.
package e2e
