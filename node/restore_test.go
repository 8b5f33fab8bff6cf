package node

import (
	"slices"
	"testing"
	"time"

	"lookalike/coordinator/meta"
)

// The leader's choice of the node a short shard is copied to: a node
// that held it and is back first, a wait for one that may come back, then
// the node holding the fewest copies.
func TestRestoreTarget(t *testing.T) {
	const delay = 30 * time.Second
	held := map[string]int{"n1": 2, "n2": 1, "n3": 3, "n4": 0}
	short := meta.Shard{ID: 1, Primary: "n1", Replicas: []string{"n1"}}
	away := func(ids ...string) meta.Shard {
		s := short
		s.Away = ids
		return s
	}
	for _, tc := range []struct {
		name     string
		s        meta.Shard
		live     []string
		shortFor time.Duration
		delay    time.Duration
		want     string
		returned bool // the away nodes were seen dead or leaving since
	}{
		{"nobody away: the least loaded live node", short, []string{"n1", "n2", "n3", "n4"}, 0, delay, "n4", false},
		{"an away node that is back, though it holds more", away("n3"), []string{"n1", "n2", "n3", "n4"}, awayGrace, delay, "n3", false},
		{"an away node alive all along, a moment after it was taken out: not yet", away("n3"), []string{"n1", "n2", "n3", "n4"}, awayGrace / 2, delay, "", false},
		{"an away node back from the dead a moment after: at once", away("n3"), []string{"n1", "n2", "n3", "n4"}, awayGrace / 2, delay, "n3", true},
		{"the first away node that is back", away("n2", "n3"), []string{"n1", "n3", "n4"}, 5 * time.Second, delay, "n3", false},
		{"an away node still down: wait", away("n2"), []string{"n1", "n3", "n4"}, 10 * time.Second, delay, "", false},
		{"an away node down past the delay: another node", away("n2"), []string{"n1", "n3", "n4"}, delay, delay, "n4", false},
		{"no wait with a negative delay", away("n2"), []string{"n1", "n3", "n4"}, 0, -1, "n4", false},
		{"an away node that is already a replica again is not waited for", away("n1"), []string{"n1", "n3"}, 0, delay, "n3", false},
		{"no live node without a copy", short, []string{"n1"}, 0, delay, "", false},
	} {
		returned := map[string]bool{}
		for _, id := range tc.s.Away {
			returned[id] = tc.returned
		}
		if got := restoreTarget(tc.s, tc.live, held, tc.shortFor, tc.delay, returned); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A joiner's answer to an offer counts only for offered ids, once each,
// in offer order (as their places in the offer).
func TestMissingOf(t *testing.T) {
	offer := []uint64{9, 3, 7, 1}
	for _, tc := range []struct {
		answer []uint64
		want   []int
	}{
		{nil, nil},
		{[]uint64{7, 9}, []int{0, 2}},
		{[]uint64{1, 1, 42, 3}, []int{1, 3}}, // a repeat and an id never offered
	} {
		if got := missingOf(offer, tc.answer); !slices.Equal(got, tc.want) {
			t.Errorf("missingOf(%v, %v) = %v, want %v", offer, tc.answer, got, tc.want)
		}
	}
}
