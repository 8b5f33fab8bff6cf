package meta_test

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"lookalike/coordinator/meta"
)

func nodeIDs(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("n%02d", i)
	}
	return out
}

func TestPlaceByWeight(t *testing.T) {
	// An exact case: largest first onto the least loaded node; at equal
	// load the node with fewer shards.
	got, err := meta.PlaceByWeight([]float64{5, 3, 2, 2}, 1, []string{"a", "b"}, 7)
	if err != nil {
		t.Fatal(err)
	}
	want := []meta.Shard{
		{ID: 0, Replicas: []string{"a"}, Primary: "a", Epoch: 7},
		{ID: 1, Replicas: []string{"b"}, Primary: "b", Epoch: 7},
		{ID: 2, Replicas: []string{"b"}, Primary: "b", Epoch: 7},
		{ID: 3, Replicas: []string{"a"}, Primary: "a", Epoch: 7},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	r := rand.New(rand.NewPCG(1, 1))
	skewed := make([]float64, 200)
	for i := range skewed {
		skewed[i] = math.Floor(math.Exp(1.5*r.NormFloat64()) * 1000)
	}
	equal := make([]float64, 36)
	for i := range equal {
		equal[i] = 100
	}
	for _, c := range []struct {
		name     string
		weights  []float64
		replicas int
		nodes    int
	}{
		{"one shard per node", equal[:12], 1, 12},
		{"equal r2", equal, 2, 12},
		{"equal r3 on 3 nodes", equal[:9], 3, 3},
		{"skewed r1", skewed, 1, 12},
		{"skewed r2", skewed, 2, 24},
		{"skewed r3", skewed, 3, 48},
		{"fewer shards than nodes", skewed[:5], 2, 12},
		{"zero weights", make([]float64, 10), 2, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			nodes := nodeIDs(c.nodes)
			shards, err := meta.PlaceByWeight(c.weights, c.replicas, nodes, 3)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := meta.PlaceByWeight(slices.Clone(c.weights), c.replicas, slices.Clone(nodes), 3)
			if !reflect.DeepEqual(shards, again) {
				t.Fatal("not deterministic")
			}
			load := map[string]float64{}
			lead := map[string]int{}
			total, maxW := 0.0, 0.0
			for i, s := range shards {
				total += c.weights[i]
				maxW = max(maxW, c.weights[i])
				if s.ID != uint32(i) || s.Epoch != 3 || len(s.Replicas) != c.replicas {
					t.Fatalf("shard %d: %+v", i, s)
				}
				if !slices.IsSorted(s.Replicas) || len(slices.Compact(slices.Clone(s.Replicas))) != c.replicas {
					t.Fatalf("shard %d replicas not distinct and in node order: %v", i, s.Replicas)
				}
				if !slices.Contains(s.Replicas, s.Primary) {
					t.Fatalf("shard %d primary %q not a replica", i, s.Primary)
				}
				for _, n := range s.Replicas {
					load[n] += c.weights[i]
				}
				lead[s.Primary]++
			}
			// Each node: at most R·W/(N−R+1) + w_max.
			n, rr := float64(c.nodes), float64(c.replicas)
			bound := rr*total/(n-rr+1) + maxW
			for _, id := range nodes {
				if load[id] > bound+1e-9 {
					t.Fatalf("node %s holds %v, bound %v (mean %v)", id, load[id], bound, rr*total/n)
				}
			}
			if c.name == "equal r2" { // 36 equal shards, 12 nodes: 6 copies and 3 primaries each
				for _, id := range nodes {
					if load[id] != 600 || lead[id] != 3 {
						t.Fatalf("node %s: load %v, primary of %d", id, load[id], lead[id])
					}
				}
				// Not mirrored pairs: each node's other copies lie on
				// several nodes.
				partners := map[string]map[string]bool{}
				for _, s := range shards {
					a, b := s.Replicas[0], s.Replicas[1]
					if partners[a] == nil {
						partners[a] = map[string]bool{}
					}
					if partners[b] == nil {
						partners[b] = map[string]bool{}
					}
					partners[a][b], partners[b][a] = true, true
				}
				for _, id := range nodes {
					if len(partners[id]) < 3 { // mirrors: 1
						t.Fatalf("node %s shares its shards with only %d nodes", id, len(partners[id]))
					}
				}
			}
		})
	}

	for _, bad := range []struct {
		weights  []float64
		replicas int
		nodes    []string
		want     error
	}{
		{nil, 1, []string{"a"}, meta.ErrBadShards},
		{[]float64{1}, 0, []string{"a"}, meta.ErrBadReplicas},
		{[]float64{1}, 2, []string{"a"}, meta.ErrNotEnoughNodes},
		{[]float64{1}, 1, []string{"a", "a"}, meta.ErrBadNode},
		{[]float64{1}, 1, []string{""}, meta.ErrBadNode},
		{[]float64{-1}, 1, []string{"a"}, meta.ErrBadShardMap},
		{[]float64{math.NaN()}, 1, []string{"a"}, meta.ErrBadShardMap},
	} {
		if _, err := meta.PlaceByWeight(bad.weights, bad.replicas, bad.nodes, 1); !errors.Is(err, bad.want) {
			t.Errorf("PlaceByWeight(%v, %d, %q) = %v, want %v", bad.weights, bad.replicas, bad.nodes, err, bad.want)
		}
	}
}

func TestGroupRandom(t *testing.T) {
	a, err := meta.GroupRandom(1000, 48, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := meta.GroupRandom(1000, 48, 5)
	c, _ := meta.GroupRandom(1000, 48, 6)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatal("not a function of the seed")
	}
	count := make([]int, 48)
	for _, s := range a {
		count[s]++
	}
	if slices.Min(count) != 1000/48 || slices.Max(count) != 1000/48+1 {
		t.Fatalf("unbalanced: %v", count)
	}
	if _, err := meta.GroupRandom(10, 0, 1); err == nil {
		t.Fatal("accepted 0 shards")
	}
}
