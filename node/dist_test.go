package node

import (
	"encoding/json"
	"fmt"
	"testing"

	"lookalike/ivf"
	"lookalike/proto"
)

// TestNameHits: a merged answer names each user id once, at its best
// score, fills k from the hits after a duplicate or a deleted item, and
// names this node's own hits from its store only as far as it needs.
func TestNameHits(t *testing.T) {
	// Internal ids 1–3 answered named by a called node; 10–13 are this
	// node's own part. User "a" has two copies (1 and 11: an upsert
	// between its write and its eviction), 12 was deleted since the
	// scan.
	named := map[uint64]proto.RPCHit{
		1: {ID: 1, UserID: "a", Meta: json.RawMessage(`{"v":"new"}`)},
		2: {ID: 2, UserID: "b"},
		3: {ID: 3, UserID: "c"},
	}
	local := map[uint64]Item{10: {UserID: "x"}, 11: {UserID: "a", Meta: json.RawMessage(`{"v":"old"}`)}, 13: {UserID: "y"}}
	var looked []uint64
	item := func(id uint64) (Item, error) {
		looked = append(looked, id)
		if it, ok := local[id]; ok {
			return it, nil
		}
		return Item{}, fmt.Errorf("internal id %d: %w", id, ErrNoItem)
	}
	merged := ivf.MergeTopK(8,
		[]ivf.Hit{{ID: 1, Dist: 0.1}, {ID: 2, Dist: 0.4}, {ID: 3, Dist: 0.7}},
		[]ivf.Hit{{ID: 10, Dist: 0.2}, {ID: 11, Dist: 0.3}, {ID: 12, Dist: 0.5}, {ID: 13, Dist: 0.6}})
	got := nameHits(merged, 4, ivf.L2, false, named, item)
	want := []string{"a", "x", "b", "y"}
	if len(got) != len(want) {
		t.Fatalf("%d hits %+v, want %v", len(got), got, want)
	}
	for i, h := range got {
		if h.UserID != want[i] {
			t.Fatalf("hit %d is %q, want %q: %+v", i, h.UserID, want[i], got)
		}
	}
	if string(got[0].Meta) != `{"v":"new"}` || got[0].Score != 0.1 {
		t.Errorf("a is named with %s at %v, want its best copy's metadata and score (0.1)", got[0].Meta, got[0].Score)
	}
	// 10, 11 (a duplicate, dropped), 12 (gone), 13; never 3, past k.
	if fmt.Sprint(looked) != "[10 11 12 13]" {
		t.Errorf("looked up %v, want [10 11 12 13]", looked)
	}
	if got := nameHits(merged, 2, ivf.IP, false, named, item); len(got) != 2 || got[0].Score != -0.1 {
		t.Errorf("k 2, inner product: %+v, want 2 hits, the first scored -0.1", got)
	}
}

// TestNameHitsVersioned: on a collection with an id directory, of two
// copies of a user id the newer (the higher internal id) is named, at its
// own score and rank, though the older scored better; without versions,
// the better scored.
func TestNameHitsVersioned(t *testing.T) {
	named := map[uint64]proto.RPCHit{
		20: {ID: 20, UserID: "a", Meta: json.RawMessage(`{"v":"new"}`)},
		2:  {ID: 2, UserID: "b"},
		3:  {ID: 3, UserID: "c"},
	}
	local := map[uint64]Item{10: {UserID: "x"}, 11: {UserID: "a", Meta: json.RawMessage(`{"v":"old"}`)}}
	item := func(id uint64) (Item, error) {
		if it, ok := local[id]; ok {
			return it, nil
		}
		return Item{}, fmt.Errorf("internal id %d: %w", id, ErrNoItem)
	}
	merged := ivf.MergeTopK(8,
		[]ivf.Hit{{ID: 20, Dist: 0.35}, {ID: 2, Dist: 0.4}, {ID: 3, Dist: 0.7}},
		[]ivf.Hit{{ID: 11, Dist: 0.1}, {ID: 10, Dist: 0.2}})
	show := func(hs []Hit) string {
		var b []string
		for _, h := range hs {
			b = append(b, fmt.Sprintf("%s%s@%g", h.UserID, h.Meta, h.Score))
		}
		return fmt.Sprint(b)
	}
	if got, want := show(nameHits(merged, 3, ivf.L2, true, named, item)), `[x@0.2 a{"v":"new"}@0.35 b@0.4]`; got != want {
		t.Errorf("versioned: %s, want %s", got, want)
	}
	if got, want := show(nameHits(merged, 3, ivf.L2, false, named, item)), `[a{"v":"old"}@0.1 x@0.2 b@0.4]`; got != want {
		t.Errorf("not versioned: %s, want %s", got, want)
	}
	// The older copy after the newer: skipped either way.
	merged = ivf.MergeTopK(8, []ivf.Hit{{ID: 20, Dist: 0.05}, {ID: 2, Dist: 0.4}}, []ivf.Hit{{ID: 11, Dist: 0.1}, {ID: 10, Dist: 0.2}})
	if got, want := show(nameHits(merged, 3, ivf.L2, true, named, item)), `[a{"v":"new"}@0.05 x@0.2 b@0.4]`; got != want {
		t.Errorf("versioned, newer first: %s, want %s", got, want)
	}
}
