//go:build !cuda

package cuda

import (
	"errors"
	"testing"
)

func TestNewScannerWithoutTag(t *testing.T) {
	s, err := NewScanner(Options{})
	if !errors.Is(err, ErrNotBuilt) || s != nil {
		t.Fatalf("NewScanner without the cuda tag: %v, %v", s, err)
	}
}
