package node

import (
	"fmt"
	"testing"
)

func TestUserFilter(t *testing.T) {
	f := newUserFilter(10000)
	for i := range 10000 {
		f.add(fmt.Sprint("in-", i))
	}
	for i := range 10000 {
		if !f.mayHave(fmt.Sprint("in-", i)) {
			t.Fatalf("in-%d added but absent", i)
		}
	}
	fp := 0
	for i := range 100000 {
		if f.mayHave(fmt.Sprint("out-", i)) {
			fp++
		}
	}
	if fp > 2000 { // 1 % expected at 10 bits an id
		t.Fatalf("%d false positives in 100,000", fp)
	}
	if f.full() {
		t.Fatal("full at its expected size")
	}
	for i := range f.limit {
		f.add(fmt.Sprint("more-", i))
	}
	if !f.full() {
		t.Fatal("not full past its limit")
	}
}
