package node_test

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"lookalike/coordinator"
	"lookalike/ivf"
	"lookalike/node"
	"lookalike/node/store"
)

// TestRaftMetadata runs the collection lifecycle with the real
// coordinator (in-memory Raft) and the real store.
func TestRaftMetadata(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, trans := raft.NewInmemTransport("solo")
	cs, err := coordinator.Open(ctx, coordinator.Options{
		NodeID: "solo", InMemory: true, Transport: trans, Bootstrap: true, LogOutput: io.Discard,
		HeartbeatTimeout: 50 * time.Millisecond, ElectionTimeout: 50 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	st, err := node.OpenPebble(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	md := node.NewRaftMetadata(cs)
	n, err := node.Open(node.Options{NodeID: "solo", AutoTrainAt: -1}, md, st)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	const d = 8
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2, NList: 4}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "c", Dim: d, Metric: ivf.L2}); !errors.Is(err, node.ErrExists) {
		t.Fatalf("duplicate: %v", err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	vecs := randVecs(r, 400, d)
	if _, err := n.Insert(ctx, "c", items("v", vecs, d)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Train(ctx, "c", 0); err != nil {
		t.Fatal(err)
	}
	s := waitState(t, n, "c", node.Ready)
	if s.Epoch != 2 || s.TrainedNList != 4 || s.Count != 400 {
		t.Fatalf("after training: %+v", s)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		m, _ := md.Collection("c")
		if m.State == node.Ready && m.Epoch == 2 && !m.Buffered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("table: %+v", m)
		}
	}
	if c, _ := cs.Table().Collection("c"); len(c.Buffer) != 0 || len(c.Shards.ListShard) != 4 || c.Centroids.IsZero() {
		t.Fatalf("meta collection: %+v", c)
	}
	res, err := n.Search(ctx, "c", node.SearchRequest{Vector: vecs[9*d : 10*d], K: 1, NProbe: 4, Refine: 2})
	if err != nil || res.Hits[0].UserID != "v9" {
		t.Fatalf("search: %+v %v", res, err)
	}
	if ci := n.Cluster(); ci.Leader != "solo" || ci.RaftState != "leader" || len(ci.Nodes) != 1 {
		t.Fatalf("cluster: %+v", ci)
	}
	if err := n.DropCollection(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Describe("c"); !errors.Is(err, node.ErrNoCollection) {
		t.Fatalf("after drop: %v", err)
	}
}
