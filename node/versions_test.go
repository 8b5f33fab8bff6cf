package node_test

import (
	"context"
	"testing"

	"lookalike/ivf"
	"lookalike/node"
)

// On a collection with an id directory an internal id versions a user
// id's copies (dist.go, "Versions"): a copy is superseded by a higher id
// held here or kept by an eviction, never by a lower one; without a
// directory any other id supersedes a preset one (the buffer's move).
func TestVersionsSupersede(t *testing.T) {
	ctx := context.Background()
	n, st := openPebbleNode(t, node.Options{NodeID: "n1", AutoTrainAt: -1})
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: 2, Metric: ivf.L2}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Insert(ctx, "c", []node.WriteItem{{UserID: "u", Vector: []float32{1, 2}}}); err != nil {
		t.Fatal(err)
	}
	it, err := st.Get("c", "u")
	if err != nil {
		t.Fatal(err)
	}
	cur := it.ID
	check := func(user string, id uint64, versioned, want bool) {
		t.Helper()
		got, err := node.Superseded(n, "c", user, id, versioned)
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("superseded(%s, %d, versioned %t) = %t, want %t (held: %d)", user, id, versioned, got, want, cur)
		}
	}
	check("u", cur-1, true, true)  // older than the copy held
	check("u", cur, true, false)   // the copy itself: applied again
	check("u", cur+1, true, false) // newer: replaces it
	check("v", 1, true, false)     // nothing held
	check("u", cur, false, false)
	check("u", cur+1, false, true) // without versions, another id is newer
	// An eviction that kept a higher version: older writes arriving
	// after it lose, the kept one and newer ones do not.
	if err := node.NoteEvicted(n, "c", "v", 100); err != nil {
		t.Fatal(err)
	}
	check("v", 99, true, true)
	check("v", 100, true, false)
	check("v", 101, true, false)
	check("v", 99, false, false) // a collection without versions ignores it
	// A later eviction keeping a lower version does not lower the mark.
	if err := node.NoteEvicted(n, "c", "v", 50); err != nil {
		t.Fatal(err)
	}
	check("v", 99, true, true)
}
