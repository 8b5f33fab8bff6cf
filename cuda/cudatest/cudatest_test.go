package cudatest

import (
	"testing"

	"lookalike/ivf"
)

func TestCompareHits(t *testing.T) {
	h := func(id uint64, d float32) ivf.Hit { return ivf.Hit{ID: id, Dist: d} }
	want := []ivf.Hit{h(1, 10), h(2, 20), h(3, 30), h(4, 30)}
	for _, c := range []struct {
		name string
		got  []ivf.Hit
		ok   bool
	}{
		{"equal", []ivf.Hit{h(1, 10), h(2, 20), h(3, 30), h(4, 30)}, true},
		{"rounding", []ivf.Hit{h(1, 10.0001), h(2, 20), h(3, 30), h(4, 30.002)}, true},
		{"tie at k-th swapped", []ivf.Hit{h(1, 10), h(2, 20), h(3, 30), h(9, 30)}, true},
		{"order within rounding", []ivf.Hit{h(1, 10), h(2, 20), h(4, 30), h(3, 30.001)}, true},
		{"wrong id", []ivf.Hit{h(1, 10), h(7, 20), h(3, 30), h(4, 30)}, false},
		{"distance off", []ivf.Hit{h(1, 10), h(2, 20.1), h(3, 30), h(4, 30)}, false},
		{"short", []ivf.Hit{h(1, 10), h(2, 20), h(3, 30)}, false},
	} {
		if err := CompareHits(c.got, want, 1e-4); (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	if err := CompareHits(nil, nil, 1e-4); err != nil {
		t.Error(err)
	}
}

func TestCheckSorted(t *testing.T) {
	h := func(id uint64, d float32) ivf.Hit { return ivf.Hit{ID: id, Dist: d} }
	if err := CheckSorted([]ivf.Hit{h(5, 1), h(2, 2), h(3, 2)}); err != nil {
		t.Error(err)
	}
	for _, bad := range [][]ivf.Hit{{h(1, 2), h(2, 1)}, {h(3, 1), h(2, 1)}, {h(3, 1), h(3, 1)}} {
		if CheckSorted(bad) == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestProbesAreNearestFirst(t *testing.T) {
	for _, m := range []ivf.Metric{ivf.L2, ivf.Cosine} {
		ix, data := Build(t, m, 600, 9, 8, 1)
		q, probes := Probes(ix, data[:3*9], 5)
		if len(q) != 27 || len(probes) != 3 {
			t.Fatalf("%d floats, %d probe lists", len(q), len(probes))
		}
		for i, ps := range probes {
			if len(ps) != 5 {
				t.Fatalf("query %d: %d probes", i, len(ps))
			}
			for j := 1; j < len(ps); j++ {
				if ps[j].Dist < ps[j-1].Dist {
					t.Fatalf("query %d: probes out of order %v", i, ps)
				}
			}
			// The query's own list (it is a stored vector) comes first.
			lists, err := ix.Assign(data[i*9 : (i+1)*9])
			if err != nil {
				t.Fatal(err)
			}
			if ps[0].List != lists[0] {
				t.Errorf("%v query %d: nearest probe %d, assigned to %d", m, i, ps[0].List, lists[0])
			}
		}
	}
}

func TestFashionMNIST(t *testing.T) {
	train, test, dir, ok, err := FashionMNIST()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Skipf("Fashion-MNIST not found in %v", FashionMNISTDirs())
	}
	if len(train) != 60000*784 || len(test) != 10000*784 {
		t.Fatalf("%s: %d and %d floats", dir, len(train), len(test))
	}
	var sum float64
	for _, x := range test {
		if x < 0 || x > 255 {
			t.Fatalf("pixel %v", x)
		}
		sum += float64(x)
	}
	if mean := sum / float64(len(test)); mean < 50 || mean > 100 {
		t.Errorf("mean pixel %.1f: not Fashion-MNIST", mean)
	}
}
