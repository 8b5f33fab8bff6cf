package node_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"lookalike/ivf"
	"lookalike/node"
	"lookalike/node/nodetest"
	"lookalike/node/store"
	"lookalike/proto"
)

// The joiner's side of a catch-up (node/copy.go) over the real store: it
// holds what it stored, answers an offer with the ids it lacks (never
// held, or deleted since), and at the end drops what it held that was
// never offered, unless the stream wrote the user id meanwhile. An id
// stored but missing from the lists in memory is answered missing, so
// that the copy writes it again.
func TestCatchUpJoiner(t *testing.T) {
	ctx := context.Background()
	n, st := openPebbleNode(t, node.Options{NodeID: "n1", AutoTrainAt: -1})
	const d, nb, nlist = 8, 400, 4
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: nlist}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(5, 6))
	if _, err := n.Insert(ctx, "c", items("v", randVecs(r, nb, d), d)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Train(ctx, "c", nlist); err != nil {
		t.Fatal(err)
	}
	waitState(t, n, "c", node.Ready)

	lists := []int32{0, 1, 2, 3}
	var ids []uint64
	listOf := map[uint64]int32{}
	for _, l := range lists {
		got, err := st.ListIDs("c", l)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range got {
			listOf[id] = l
		}
		ids = append(ids, got...)
	}
	slices.Sort(ids)
	if len(ids) != nb {
		t.Fatalf("%d ids stored in the lists, want %d", len(ids), nb)
	}
	user := func(id uint64) string {
		it, err := st.Item("c", id)
		if err != nil {
			t.Fatal(err)
		}
		return it.UserID
	}

	cu, held, err := node.BeginCatchUp(n, "c", lists)
	if err != nil || held != nb {
		t.Fatalf("begin: held %d, %v; want %d", held, err, nb)
	}
	// The primary holds all but the last five, and one id never held.
	offered, unoffered := ids[:nb-5], ids[nb-5:]
	const fresh = 1 << 50
	missing, err := cu.Offer(append(slices.Clone(offered[:100]), fresh))
	if err != nil || !slices.Equal(missing, []uint64{fresh}) {
		t.Fatalf("offer: missing %v, %v; want only the id never held", missing, err)
	}
	// A held id deleted since Begin is missing when offered.
	gone := offered[100]
	if err := n.Delete(ctx, "c", user(gone)); err != nil {
		t.Fatal(err)
	}
	if missing, err = cu.Offer(offered[100:]); err != nil || !slices.Equal(missing, []uint64{gone}) {
		t.Fatalf("offer after a delete: missing %v, %v; want [%d]", missing, err, gone)
	}
	// The stream writes the user id of one unoffered item: it stays.
	touchedUser := user(unoffered[0])
	cu.Touch(touchedUser)
	var droppedUsers []string
	for _, id := range unoffered[1:] {
		droppedUsers = append(droppedUsers, user(id))
	}
	if err := cu.End(); err != nil {
		t.Fatal(err)
	}
	for _, u := range droppedUsers {
		if _, err := n.Get(ctx, "c", u, false); !errors.Is(err, node.ErrNoItem) {
			t.Errorf("%s, held but never offered, still there after the end: %v", u, err)
		}
	}
	if _, err := n.Get(ctx, "c", touchedUser, false); err != nil {
		t.Errorf("%s, written by the stream during the copy, dropped: %v", touchedUser, err)
	}
	if s, err := n.Describe("c"); err != nil || s.Count != nb-1-4 {
		t.Errorf("count after the catch-up %d (%v), want %d", s.Count, err, nb-1-4)
	}

	// A stored id missing from the lists in memory is answered missing.
	kept := offered[0]
	if err := node.DropFromLists(n, "c", kept, listOf[kept]); err != nil {
		t.Fatal(err)
	}
	cu, held, err = node.BeginCatchUp(n, "c", lists)
	if err != nil || held != nb-5 {
		t.Fatalf("second begin: held %d, %v; want %d", held, err, nb-5)
	}
	if missing, err = cu.Offer(offered[:10]); err != nil || !slices.Equal(missing, []uint64{kept}) {
		t.Fatalf("offer of an id stored but not in the lists: missing %v, %v; want [%d]", missing, err, kept)
	}

	// An id in memory under another list than the one it is stored
	// under (the lists are compared one at a time) is held once and
	// indexed: an offer of it is not answered missing.
	moved := offered[1]
	to := (listOf[moved] + 1) % nlist
	if err := node.MoveInLists(n, "c", moved, listOf[moved], to); err != nil {
		t.Fatal(err)
	}
	cu, held, err = node.BeginCatchUp(n, "c", lists)
	if err != nil || held != nb-5 {
		t.Fatalf("third begin: held %d, %v; want %d", held, err, nb-5)
	}
	if missing, err = cu.Offer(offered[1:10]); err != nil || len(missing) != 0 {
		t.Fatalf("offer of an id in memory under another list: missing %v, %v; want none", missing, err)
	}
}

// openPebbleNode opens a node over a Pebble store in a temporary folder,
// with in-memory metadata; both close when the test ends.
// Dropping buffered copies (once the buffer is retired) is no write of
// their user ids: a copy coming in meanwhile must still apply their moved
// copies, which keep the internal id. When it counted as one, a node back
// during the move skipped a list shard's moved items and was made in sync
// without them (TestClusterChaosTraining). A delete by the user still
// counts.
func TestBufferDropIsNoWrite(t *testing.T) {
	ctx := context.Background()
	n, st := openPebbleNode(t, node.Options{NodeID: "n1", AutoTrainAt: -1})
	const d = 8
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 4}); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(8, 9))
	if _, err := n.Insert(ctx, "c", items("b", randVecs(r, 3, d), d)); err != nil {
		t.Fatal(err)
	}
	cu, _, err := node.BeginCatchUp(n, "c", []int32{0})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := node.EvictBuffered(n, "c", []string{"b0", "b1"}); err != nil || got != 2 {
		t.Fatalf("buffer drop removed %d, %v; want 2", got, err)
	}
	if _, err := st.Get("c", "b0"); !errors.Is(err, node.ErrNoItem) {
		t.Fatalf("b0 after the buffer drop: %v", err)
	}
	if cu.Touched("b0") || cu.Touched("b1") {
		t.Fatal("the buffer drop counted as a write of its user ids: their moved copies would be skipped")
	}
	if err := n.Delete(ctx, "c", "b2"); err != nil {
		t.Fatal(err)
	}
	if !cu.Touched("b2") {
		t.Fatal("a delete did not count as a write for the copy coming in")
	}
}

func openPebbleNode(t *testing.T, opts node.Options) (*node.Node, *node.PebbleStorage) {
	t.Helper()
	st, err := node.OpenPebble(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(opts, nodetest.NewMeta(), st)
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.Close()
		st.Close()
	})
	return n, st
}

// openPartition opens a Pebble node holding the id directory partition
// dir with nb entries, u0 … u(nb-1), each naming one list.
func openPartition(t *testing.T, dir string, nb int) (*node.Node, *node.PebbleStorage, []string) {
	t.Helper()
	n, st := openPebbleNode(t, node.Options{NodeID: "n1", AutoTrainAt: -1})
	if _, err := n.CreateCollection(context.Background(), node.CollectionMeta{Name: dir, Dim: 1, Metric: ivf.L2}); err != nil {
		t.Fatal(err)
	}
	users := make([]string, nb)
	lists := make([][]int32, nb)
	for i := range users {
		users[i], lists[i] = fmt.Sprint("u", i), []int32{int32(i % 7)}
	}
	if _, err := n.DirApply(dir, proto.DirAdd, users, lists, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	return n, st, users
}

// The joiner's side of a catch-up on an id directory partition, whose
// entries are stored as entries (found by user id, no lists): the
// internal id of an entry names its version, so one replaced since
// Begin is missing when offered, and one held but never offered is
// dropped at the end unless the stream wrote its user id.
func TestCatchUpPartition(t *testing.T) {
	const dir, nb = "c~ids~0", 50
	n, st, users := openPartition(t, dir, nb)
	idOf := map[string]uint64{}
	var ids []uint64
	if err := st.Entries(dir, func(e node.Entry) error { idOf[e.UserID] = e.ID; ids = append(ids, e.ID); return nil }); err != nil {
		t.Fatal(err)
	}
	slices.Sort(ids)
	if len(ids) != nb {
		t.Fatalf("%d entries stored, want %d", len(ids), nb)
	}

	cu, held, err := node.BeginCatchUp(n, dir, nil)
	if err != nil || held != nb {
		t.Fatalf("begin: held %d, %v; want %d", held, err, nb)
	}
	// u0 is written again (a new version, a new id) after Begin.
	if _, err := n.DirApply(dir, proto.DirAdd, []string{"u0"}, [][]int32{{9}}, time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	const fresh = 1 << 50
	offer, offerUsers := []uint64{idOf["u0"], fresh}, []string{"u0", "u-new"}
	for i := 1; i < 40; i++ {
		offer, offerUsers = append(offer, idOf[users[i]]), append(offerUsers, users[i])
	}
	missing, err := cu.OfferEntries(offer, offerUsers)
	slices.Sort(missing)
	if err != nil || !slices.Equal(missing, []uint64{idOf["u0"], fresh}) {
		t.Fatalf("offer: missing %v, %v; want u0's old version and the id never held", missing, err)
	}
	// An offer without user ids (a primary built before they were sent)
	// is answered missing whole: the primary sends it all again.
	if missing, err := cu.Offer(offer[2:5]); err != nil || !slices.Equal(missing, offer[2:5]) {
		t.Fatalf("offer without user ids: missing %v, %v; want all of %v", missing, err, offer[2:5])
	}
	// u40..u49 are never offered; the stream writes u40.
	cu.Touch("u40")
	if err := cu.End(); err != nil {
		t.Fatal(err)
	}
	for i := 41; i < nb; i++ {
		if _, err := st.Entry(dir, users[i]); !errors.Is(err, node.ErrNoItem) {
			t.Errorf("%s, held but never offered, still there after the end: %v", users[i], err)
		}
	}
	for _, u := range []string{"u0", "u1", "u39", "u40"} {
		if _, err := st.Entry(dir, u); err != nil {
			t.Errorf("%s dropped: %v", u, err)
		}
	}
	if s, err := n.Describe(dir); err != nil || s.Count != 41 {
		t.Errorf("count after the catch-up %d (%v), want 41", s.Count, err)
	}
}

// A partition the node no longer holds is purged a part at a time: every
// entry goes, over more than one part, and the count with them.
func TestPurgePartition(t *testing.T) {
	const dir, nb = "c~ids~0", 10_000 // more than one part of 4,096
	n, st, _ := openPartition(t, dir, nb)
	if s, err := n.Describe(dir); err != nil || s.Count != nb {
		t.Fatalf("count before %d (%v), want %d", s.Count, err, nb)
	}
	if err := node.PurgeEntries(n, dir); err != nil {
		t.Fatal(err)
	}
	left := 0
	if err := st.Entries(dir, func(node.Entry) error { left++; return nil }); err != nil {
		t.Fatal(err)
	}
	if s, err := n.Describe(dir); left != 0 || err != nil || s.Count != 0 {
		t.Fatalf("after the purge: %d entries stored, count %d (%v); want none", left, s.Count, err)
	}
}
