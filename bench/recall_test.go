package bench

import (
	"math"
	"testing"
	"time"
)

func TestRecall(t *testing.T) {
	gt := [][]int32{{1, 2, 3, 4}, {5, 6, 7, 8}}
	for _, tc := range []struct {
		name string
		got  [][]int64
		k    int
		want float64
	}{
		{"perfect", [][]int64{{1, 2, 3, 4}, {5, 6, 7, 8}}, 4, 1},
		{"order does not matter", [][]int64{{4, 3, 2, 1}, {8, 7, 6, 5}}, 4, 1},
		{"half", [][]int64{{1, 2, 9, 9}, {0, 0, 7, 8}}, 4, 0.5},
		{"only the first k count", [][]int64{{9, 1, 2}, {5, 6}}, 2, 0.75}, // {1} of {1,2}, {5,6} of {5,6}
		{"duplicates count once", [][]int64{{1, 1, 1, 1}, {}}, 4, 0.125},
		{"missing rows count zero", [][]int64{{1, 2, 3, 4}}, 4, 0.5},
		{"k=1", [][]int64{{1, 2}, {6, 5}}, 1, 0.5},
		{"k beyond gt", [][]int64{{1, 2, 3, 4, 5}, {5, 6, 7, 8, 9}}, 10, 1},
		{"k=0", [][]int64{{1}}, 0, 0},
	} {
		if got := Recall(tc.got, gt, tc.k); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := Recall(nil, nil, 10); got != 0 {
		t.Errorf("no queries: %v", got)
	}
}

func TestLatencyStats(t *testing.T) {
	if (LatencyStats(nil) != Latency{}) {
		t.Fatal("empty input: non-zero result")
	}
	// 1..100 ms, shuffled: nearest rank gives exactly p ms.
	d := make([]time.Duration, 100)
	for i := range d {
		d[i] = time.Duration((i*37)%100+1) * time.Millisecond
	}
	first := d[0]
	s := LatencyStats(d)
	want := Latency{N: 100, Mean: 50500 * time.Microsecond, P50: 50 * time.Millisecond, P95: 95 * time.Millisecond,
		P99: 99 * time.Millisecond, Min: time.Millisecond, Max: 100 * time.Millisecond}
	if s != want {
		t.Errorf("got %+v\nwant %+v", s, want)
	}
	if d[0] != first {
		t.Error("input was sorted in place")
	}
	// Nearest rank on few values: p99 of 3 values is the largest, p50 the
	// second.
	s = LatencyStats([]time.Duration{3, 1, 2})
	if s.P50 != 2 || s.P95 != 3 || s.P99 != 3 || s.Min != 1 {
		t.Errorf("three values: %+v", s)
	}
	if s := LatencyStats([]time.Duration{7}); s.P50 != 7 || s.P99 != 7 || s.Mean != 7 {
		t.Errorf("one value: %+v", s)
	}
}
