package ivf

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"
)

// Splitting a query's probes over indexes that each hold only some lists
// and merging their answers gives exactly what one index holding every
// list gives: what a cluster's recall rests on.
func TestSearchProbesSplitEqualsSearch(t *testing.T) {
	for _, metric := range []Metric{L2, IP, Cosine} {
		const d, n, nlist, parts = 16, 4000, 32, 3
		r := rand.New(rand.NewPCG(1, 2))
		data := make([]float32, n*d)
		for i := range data {
			data[i] = float32(r.NormFloat64())
		}
		opts := Options{Dim: d, Metric: metric, NList: nlist, Seed: 7}
		whole, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := whole.Train(data); err != nil {
			t.Fatal(err)
		}
		var empty bytes.Buffer // the trained index before any Add: centroids only
		if _, err := whole.WriteTo(&empty); err != nil {
			t.Fatal(err)
		}
		ids := make([]uint64, n)
		for i := range ids {
			ids[i] = uint64(i + 1)
		}
		if err := whole.Add(ids, data); err != nil {
			t.Fatal(err)
		}
		labels, err := whole.Assign(data)
		if err != nil {
			t.Fatal(err)
		}
		// Part p holds the lists l with l%parts == p, and only their rows.
		var shards [parts]*Index
		for p := range shards {
			if shards[p], err = Load(bytes.NewReader(empty.Bytes()), opts); err != nil {
				t.Fatal(err)
			}
			var pids []uint64
			var pvecs []float32
			for i, l := range labels {
				if int(l)%parts == p {
					pids = append(pids, ids[i])
					pvecs = append(pvecs, data[i*d:(i+1)*d]...)
				}
			}
			if err := shards[p].Add(pids, pvecs); err != nil {
				t.Fatal(err)
			}
		}
		for qi := 0; qi < 50; qi++ {
			q := data[qi*d : (qi+1)*d]
			want, err := whole.Search(q, SearchOptions{K: 10, NProbe: 8})
			if err != nil {
				t.Fatal(err)
			}
			probes, err := whole.Probes(q, 8)
			if err != nil {
				t.Fatal(err)
			}
			var split [parts][]Probe
			for _, pr := range probes {
				split[pr.List%parts] = append(split[pr.List%parts], pr)
			}
			var answers [][]Hit
			for p := range shards {
				h, err := shards[p].SearchProbes(q, split[p], SearchOptions{K: 10})
				if err != nil {
					t.Fatal(err)
				}
				answers = append(answers, h)
			}
			got := MergeTopK(10, answers...)
			if !slices.Equal(got, want) {
				t.Fatalf("%v query %d: split %v, whole %v", metric, qi, got, want)
			}
		}
	}
}

// AddToLists with Assign's labels stores exactly what Add stores.
func TestAddToListsEqualsAdd(t *testing.T) {
	const d, n = 8, 2000
	r := rand.New(rand.NewPCG(3, 4))
	data := make([]float32, n*d)
	for i := range data {
		data[i] = float32(r.NormFloat64())
	}
	opts := Options{Dim: d, Metric: Cosine, NList: 16, Seed: 2}
	a, _ := New(opts)
	if _, err := a.Train(data); err != nil {
		t.Fatal(err)
	}
	var blob bytes.Buffer
	if _, err := a.WriteTo(&blob); err != nil {
		t.Fatal(err)
	}
	b, err := Load(bytes.NewReader(blob.Bytes()), opts)
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	if err := a.Add(ids, data); err != nil {
		t.Fatal(err)
	}
	labels, err := b.Assign(data)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.AddToLists(ids, data, labels); err != nil {
		t.Fatal(err)
	}
	for l := 0; l < a.NList(); l++ {
		va, vb := a.List(l).View(), b.List(l).View()
		if !slices.Equal(va.IDs(), vb.IDs()) || !bytes.Equal(va.Codes(), vb.Codes()) {
			t.Fatalf("list %d differs", l)
		}
	}
	if err := b.AddToLists(ids[:1], data[:d], []int32{16}); err == nil {
		t.Fatal("list 16 of 16 accepted")
	}
}
