package meta_test

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
)

// must applies cmds in order and fails the test on any error.
func must(t testing.TB, tb *meta.Table, cmds ...meta.Command) *meta.Table {
	t.Helper()
	for _, c := range cmds {
		var err error
		tb, _, err = tb.Apply(c)
		if err != nil {
			t.Fatalf("%T: %v", c, err)
		}
	}
	return tb
}

func blobChunks(data []byte) []meta.Command {
	h := meta.HashOf(data)
	n := (len(data) + meta.MaxChunkSize - 1) / meta.MaxChunkSize
	var out []meta.Command
	for i := 0; i < n; i++ {
		end := min(len(data), (i+1)*meta.MaxChunkSize)
		out = append(out, meta.PutBlobChunk{Hash: h, Size: uint64(len(data)), Chunks: uint32(n), Index: uint32(i), Data: data[i*meta.MaxChunkSize : end]})
	}
	return out
}

func oneShard(nlist int, node string) meta.ShardMap {
	return meta.ShardMap{ListShard: make([]uint32, nlist), Shards: []meta.Shard{{ID: 0, Replicas: []string{node}, Primary: node}}}
}

// base is a table with two nodes, a collection "c" (dim 4, l2) and a
// complete 1 MB blob.
func base(t testing.TB) (*meta.Table, meta.BlobRef) {
	blob := bytes.Repeat([]byte("centroids"), 60000) // two chunks
	tb := must(t, meta.New(),
		meta.RegisterNode{ID: "n1", RaftAddr: "127.0.0.1:1", HTTPAddr: "127.0.0.1:2"},
		meta.RegisterNode{ID: "n2", RaftAddr: "127.0.0.1:3"},
		meta.CreateCollection{Name: "c", Dim: 4, Metric: ivf.L2})
	tb = must(t, tb, blobChunks(blob)...)
	return tb, meta.BlobRef{Hash: meta.HashOf(blob), Size: uint64(len(blob))}
}

func TestApplyErrors(t *testing.T) {
	tb, ref := base(t)
	training := must(t, tb, meta.BeginTraining{Collection: "c", Epoch: 1})
	ready := must(t, training, meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 4, Shards: oneShard(4, "n1")})
	h := meta.HashOf([]byte("x"))
	cases := []struct {
		name string
		tb   *meta.Table
		cmd  meta.Command
		want error
	}{
		{"node without id", tb, meta.RegisterNode{RaftAddr: "a"}, meta.ErrBadNode},
		{"node without addr", tb, meta.RegisterNode{ID: "x"}, meta.ErrBadNode},
		{"node bad state", tb, meta.RegisterNode{ID: "x", RaftAddr: "a", State: 9}, meta.ErrBadNode},
		{"bad name", tb, meta.CreateCollection{Name: "a b", Dim: 4, Metric: ivf.L2}, meta.ErrBadName},
		{"empty name", tb, meta.CreateCollection{Name: "", Dim: 4, Metric: ivf.L2}, meta.ErrBadName},
		{"bad dim", tb, meta.CreateCollection{Name: "d", Dim: 0, Metric: ivf.L2}, meta.ErrBadDim},
		{"huge dim", tb, meta.CreateCollection{Name: "d", Dim: meta.MaxDim + 1, Metric: ivf.L2}, meta.ErrBadDim},
		{"bad metric", tb, meta.CreateCollection{Name: "d", Dim: 4, Metric: 7}, meta.ErrBadMetric},
		{"bad nlist", tb, meta.CreateCollection{Name: "d", Dim: 4, Metric: ivf.L2, NList: -1}, meta.ErrBadNList},
		{"bad replicas", tb, meta.CreateCollection{Name: "d", Dim: 4, Metric: ivf.L2, Replicas: -1}, meta.ErrBadReplicas},
		{"bad shards", tb, meta.CreateCollection{Name: "d", Dim: 4, Metric: ivf.L2, Shards: -2}, meta.ErrBadShards},
		{"too many replicas", tb, meta.CreateCollection{Name: "d", Dim: 4, Metric: ivf.L2, Replicas: 3}, meta.ErrNotEnoughNodes},
		{"no nodes", meta.New(), meta.CreateCollection{Name: "d", Dim: 4, Metric: ivf.L2}, meta.ErrNotEnoughNodes},
		{"duplicate", tb, meta.CreateCollection{Name: "c", Dim: 4, Metric: ivf.L2}, meta.ErrCollectionExists},
		{"model hash without model", tb, meta.CreateCollection{Name: "d", Dim: 4, Metric: ivf.L2, ModelHash: strings.Repeat("a", 64)}, meta.ErrBadModel},
		{"bad model hash", tb, meta.CreateCollection{Name: "d", Dim: 4, Metric: ivf.L2, Model: "m", ModelHash: strings.Repeat("A", 64)}, meta.ErrBadModel},
		{"drop unknown", tb, meta.DropCollection{Name: "zz"}, meta.ErrUnknownCollection},
		{"allocate zero", tb, meta.AllocateIDs{N: 0}, meta.ErrBadCount},
		{"allocate too many", tb, meta.AllocateIDs{N: meta.MaxAllocate + 1}, meta.ErrBadCount},
		{"allocate unknown", tb, meta.AllocateIDs{Collection: "zz", N: 1}, meta.ErrUnknownCollection},
		{"chunk zero hash", tb, meta.PutBlobChunk{Size: 1, Chunks: 1, Data: []byte("x")}, meta.ErrBadChunk},
		{"chunk count", tb, meta.PutBlobChunk{Hash: h, Size: 1, Chunks: 2, Data: []byte("x")}, meta.ErrBadChunk},
		{"chunk index", tb, meta.PutBlobChunk{Hash: h, Size: 1, Chunks: 1, Index: 1, Data: []byte("x")}, meta.ErrBadChunk},
		{"chunk length", tb, meta.PutBlobChunk{Hash: h, Size: 2, Chunks: 1, Data: []byte("x")}, meta.ErrBadChunk},
		{"chunk hash", tb, meta.PutBlobChunk{Hash: h, Size: 1, Chunks: 1, Data: []byte("y")}, meta.ErrBlobHash},
		{"chunk header differs", tb, meta.PutBlobChunk{Hash: ref.Hash, Size: 1, Chunks: 1, Data: []byte("y")}, meta.ErrBadChunk},
		{"begin stale", tb, meta.BeginTraining{Collection: "c", Epoch: 7}, meta.ErrStaleEpoch},
		{"begin unknown", tb, meta.BeginTraining{Collection: "zz", Epoch: 1}, meta.ErrUnknownCollection},
		{"begin twice", training, meta.BeginTraining{Collection: "c", Epoch: 1}, meta.ErrBadState},
		{"commit not training", tb, meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 4, Shards: oneShard(4, "n1")}, meta.ErrBadState},
		{"commit stale", training, meta.CommitTraining{Collection: "c", Epoch: 2, Centroids: ref, NList: 4, Shards: oneShard(4, "n1")}, meta.ErrStaleEpoch},
		{"commit unknown blob", training, meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: meta.BlobRef{Hash: h, Size: 1}, NList: 4, Shards: oneShard(4, "n1")}, meta.ErrUnknownBlob},
		{"commit bad nlist", training, meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 0, Shards: oneShard(0, "n1")}, meta.ErrBadNList},
		{"commit short map", training, meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 4, Shards: oneShard(3, "n1")}, meta.ErrBadShardMap},
		{"commit unknown node", training, meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 4, Shards: oneShard(4, "n9")}, meta.ErrUnknownNode},
		{"commit primary not replica", training, meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 1, Shards: meta.ShardMap{ListShard: []uint32{0}, Shards: []meta.Shard{{Replicas: []string{"n1"}, Primary: "n2"}}}}, meta.ErrBadShardMap},
		{"commit list off map", training, meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 1, Shards: meta.ShardMap{ListShard: []uint32{1}, Shards: []meta.Shard{{Replicas: []string{"n1"}, Primary: "n1"}}}}, meta.ErrBadShardMap},
		{"abort not training", tb, meta.AbortTraining{Collection: "c", Epoch: 1}, meta.ErrBadState},
		{"abort stale", training, meta.AbortTraining{Collection: "c", Epoch: 3}, meta.ErrStaleEpoch},
		{"set map untrained", tb, meta.SetShardMap{Collection: "c", Epoch: 1, Shards: oneShard(4, "n1")}, meta.ErrBadState},
		{"set map stale", ready, meta.SetShardMap{Collection: "c", Epoch: 1, Shards: oneShard(4, "n1")}, meta.ErrStaleEpoch},
		{"set map wrong nlist", ready, meta.SetShardMap{Collection: "c", Epoch: 2, Shards: oneShard(5, "n1")}, meta.ErrBadShardMap},
		{"move to missing shard", ready, meta.MoveLists{Collection: "c", Epoch: 2, Lists: []uint32{0}, To: 1}, meta.ErrBadShardMap},
		{"move missing list", ready, meta.MoveLists{Collection: "c", Epoch: 2, Lists: []uint32{9}, To: 0}, meta.ErrBadShardMap},
		{"move nothing", ready, meta.MoveLists{Collection: "c", Epoch: 2, To: 0}, meta.ErrBadShardMap},
		{"retire untrained", tb, meta.RetireBuffer{Collection: "c", Epoch: 1}, meta.ErrBadState},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before, _ := c.tb.MarshalBinary()
			got, res, err := c.tb.Apply(c.cmd)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			if got != c.tb || res != nil {
				t.Fatalf("a failed command returned a new table or a result %v", res)
			}
			after, _ := c.tb.MarshalBinary()
			if !bytes.Equal(before, after) {
				t.Fatal("a failed command changed the table")
			}
		})
	}
}

func TestLifecycle(t *testing.T) {
	tb, ref := base(t)
	c, _ := tb.Collection("c")
	if c.State != meta.Untrained || c.Epoch != 1 || c.Replicas != 1 || len(c.Buffer) != 2 || c.Buffer[1].Primary != "n2" {
		t.Fatalf("created: %+v", c)
	}
	v0 := tb.Version()
	tb1, res, err := tb.Apply(meta.AllocateIDs{Collection: "c", N: 100})
	if err != nil || res.(meta.IDRange) != (meta.IDRange{First: 1, N: 100}) || tb1.Version() != v0+1 {
		t.Fatalf("allocate: %v %v", res, err)
	}
	_, res, _ = tb1.Apply(meta.AllocateIDs{N: 5})
	if res.(meta.IDRange).First != 101 {
		t.Fatalf("second range %v", res)
	}
	tb = must(t, tb1, meta.BeginTraining{Collection: "c", Epoch: 1})
	// Abort goes back to untrained.
	ab := must(t, tb, meta.AbortTraining{Collection: "c", Epoch: 1})
	if c, _ := ab.Collection("c"); c.State != meta.Untrained {
		t.Fatalf("aborted: %v", c.State)
	}
	sm := meta.ShardMap{ListShard: []uint32{0, 0, 1, 1}, Shards: meta.PlaceShards(2, 1, []string{"n1", "n2"}, 0)}
	tb, res, err = tb.Apply(meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 4, Shards: sm})
	if err != nil || res.(uint64) != 2 {
		t.Fatalf("commit: %v %v", res, err)
	}
	c, _ = tb.Collection("c")
	if c.State != meta.Ready || c.TrainedNList != 4 || c.Shards.Shards[1].Epoch != 2 || len(c.Buffer) != 2 {
		t.Fatalf("committed: %+v", c)
	}
	// MoveLists bumps both shards.
	tb, res, err = tb.Apply(meta.MoveLists{Collection: "c", Epoch: 2, Lists: []uint32{1}, To: 1})
	if err != nil || res.(uint64) != 3 {
		t.Fatal(res, err)
	}
	c, _ = tb.Collection("c")
	if got := c.Shards.Lists(1); len(got) != 3 || c.Shards.Shards[0].Epoch != 3 {
		t.Fatalf("moved: %v %+v", got, c.Shards)
	}
	// SetShardMap keeps the epoch of unchanged shards.
	sm2 := meta.ShardMap{ListShard: []uint32{0, 1, 1, 1}, Shards: []meta.Shard{c.Shards.Shards[0], {ID: 1, Replicas: []string{"n1"}, Primary: "n1"}}}
	tb = must(t, tb, meta.SetShardMap{Collection: "c", Epoch: 3, Shards: sm2})
	c, _ = tb.Collection("c")
	if c.Epoch != 4 || c.Shards.Shards[0].Epoch != 3 || c.Shards.Shards[1].Epoch != 4 {
		t.Fatalf("set map epochs: %+v", c.Shards.Shards)
	}
	// SetReplicas: a failover changes one shard's set and primary, not
	// the epoch; a proposal from a stale view fails.
	tb = must(t, tb, meta.SetReplicas{Collection: "c", Buffer: true, Shard: 1, Replicas: []string{"n2"}, Primary: "n2", From: c.Buffer[1].Replicas})
	c, _ = tb.Collection("c")
	if c.Epoch != 4 || c.Buffer[1].Primary != "n2" || len(c.Buffer[1].Replicas) != 1 {
		t.Fatalf("set replicas: %+v", c)
	}
	for _, bad := range []struct {
		cmd  meta.SetReplicas
		want error
	}{
		{meta.SetReplicas{Collection: "c", Shard: 0, Replicas: []string{"n1"}, Primary: "n1", From: []string{"n9"}}, meta.ErrStaleShard},
		{meta.SetReplicas{Collection: "c", Shard: 0, Replicas: []string{"n2"}, Primary: "n1", From: c.Shards.Shards[0].Replicas}, meta.ErrBadShardMap},
		{meta.SetReplicas{Collection: "c", Shard: 0, Replicas: []string{"n7"}, Primary: "n7", From: c.Shards.Shards[0].Replicas}, meta.ErrUnknownNode},
		{meta.SetReplicas{Collection: "c", Shard: 5, Replicas: []string{"n1"}, Primary: "n1", From: nil}, meta.ErrBadShardMap},
		{meta.SetReplicas{Collection: "x", Replicas: []string{"n1"}, Primary: "n1"}, meta.ErrUnknownCollection},
	} {
		if _, _, err := tb.Apply(bad.cmd); !errors.Is(err, bad.want) {
			t.Fatalf("%+v: %v, want %v", bad.cmd, err, bad.want)
		}
	}
	tb = must(t, tb, meta.RetireBuffer{Collection: "c", Epoch: 4})
	if c, _ := tb.Collection("c"); c.Buffer != nil {
		t.Fatal("buffer kept")
	}
	// Retraining a ready collection keeps its centroids; abort returns to ready.
	tr := must(t, tb, meta.BeginTraining{Collection: "c", Epoch: 4}, meta.AbortTraining{Collection: "c", Epoch: 4})
	if c, _ := tr.Collection("c"); c.State != meta.Ready {
		t.Fatal(c.State)
	}
	// GC keeps the referenced blob, removes others.
	other := []byte("other blob")
	tb = must(t, tb, blobChunks(other)...)
	tb, res, _ = tb.Apply(meta.GCBlobs{})
	if res.(int) != 1 || len(tb.Blobs()) != 1 {
		t.Fatalf("gc removed %v, %d left", res, len(tb.Blobs()))
	}
	// Dropping unreferences the centroids.
	tb = must(t, tb, meta.DropCollection{Name: "c"})
	tb, res, _ = tb.Apply(meta.GCBlobs{})
	if res.(int) != 1 || len(tb.Collections()) != 0 {
		t.Fatal(res)
	}
}

func TestBlobChunks(t *testing.T) {
	data := make([]byte, 3*meta.MaxChunkSize+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	cmds := blobChunks(data)
	tb := meta.New()
	// Out of order, with a retry.
	for _, i := range []int{3, 1, 1, 0} {
		var res any
		var err error
		tb, res, err = tb.Apply(cmds[i])
		if err != nil || res.(meta.BlobStatus).Complete {
			t.Fatal(i, res, err)
		}
	}
	b, _ := tb.Blob(meta.HashOf(data))
	if b.Complete() || b.Bytes() != nil || b.Received() != 3 {
		t.Fatal("incomplete blob looks complete")
	}
	// Keep protects an upload in progress from GC.
	kept := must(t, tb, meta.GCBlobs{Keep: []meta.Hash{meta.HashOf(data)}})
	if len(kept.Blobs()) != 1 {
		t.Fatal("gc removed a kept upload")
	}
	tb, res, err := tb.Apply(cmds[2])
	if err != nil || !res.(meta.BlobStatus).Complete {
		t.Fatal(res, err)
	}
	b, _ = tb.Blob(meta.HashOf(data))
	if !bytes.Equal(b.Bytes(), data) {
		t.Fatal("blob content differs")
	}
	// A retried chunk of a complete blob is a no-op, a different one an error.
	if again, _, err := tb.Apply(cmds[0]); err != nil || again != tb {
		t.Fatal("retry changed the table", err)
	}
	bad := cmds[0].(meta.PutBlobChunk)
	bad.Data = bytes.Repeat([]byte{1}, len(bad.Data))
	if _, _, err := tb.Apply(bad); !errors.Is(err, meta.ErrBlobHash) {
		t.Fatal(err)
	}
}

func TestRegisterNodeUpdates(t *testing.T) {
	tb := must(t, meta.New(), meta.RegisterNode{ID: "a", RaftAddr: "x"}, meta.RegisterNode{ID: "a", RaftAddr: "y", State: meta.NodeDown})
	n, _ := tb.Node("a")
	if n.RaftAddr != "y" || n.State != meta.NodeDown || len(tb.Nodes()) != 1 {
		t.Fatalf("%+v", n)
	}
	if _, _, err := tb.Apply(meta.CreateCollection{Name: "c", Dim: 1, Metric: ivf.IP}); !errors.Is(err, meta.ErrNotEnoughNodes) {
		t.Fatal("a down node got a shard", err)
	}
}

func TestImmutable(t *testing.T) {
	tb, ref := base(t)
	before, _ := tb.MarshalBinary()
	next := must(t, tb, meta.BeginTraining{Collection: "c", Epoch: 1},
		meta.CommitTraining{Collection: "c", Epoch: 1, Centroids: ref, NList: 4, Shards: oneShard(4, "n1")},
		meta.MoveLists{Collection: "c", Epoch: 2, Lists: []uint32{1}, To: 0},
		meta.AllocateIDs{N: 9}, meta.DropCollection{Name: "c"}, meta.GCBlobs{})
	after, _ := tb.MarshalBinary()
	if !bytes.Equal(before, after) || next.Version() != tb.Version()+6 {
		t.Fatal("transitions modified the old table")
	}
}

// A node joins a shard (being copied to), then becomes a replica; a
// proposer that did not see it joining cannot promote it.
func TestSetReplicasJoining(t *testing.T) {
	tb, _ := base(t)
	tb = must(t, tb, meta.CreateCollection{Name: "r", Dim: 4, Metric: ivf.L2, Replicas: 2, Shards: 2})
	c, _ := tb.Collection("r")
	tb = must(t, tb, meta.SetReplicas{Collection: "r", Buffer: true, Shard: 1, Replicas: []string{"n2"}, Primary: "n2", From: c.Buffer[1].Replicas})
	if c, _ = tb.Collection("r"); c.Buffer[1].Added != 0 {
		t.Fatalf("a replica taken out set added: %+v", c.Buffer[1])
	}
	// A node joins (being copied to), then becomes a replica. Joining
	// sets added (a delete routed before it missed the joiner);
	// becoming a replica from joining does not.
	tb = must(t, tb, meta.SetReplicas{Collection: "r", Buffer: true, Shard: 1, Replicas: []string{"n2"}, Primary: "n2", Joining: []string{"n1"}, From: []string{"n2"}})
	c, _ = tb.Collection("r")
	if !slices.Equal(c.Buffer[1].Joining, []string{"n1"}) {
		t.Fatalf("joining: %+v", c.Buffer[1])
	}
	if c.Buffer[1].Added != tb.Version() || c.Buffer[0].Added != 0 {
		t.Fatalf("joining: added %d (want the table's version %d), the other shard's %d (want 0)", c.Buffer[1].Added, tb.Version(), c.Buffer[0].Added)
	}
	joinedAt := tb.Version()
	if _, _, err := tb.Apply(meta.SetReplicas{Collection: "r", Buffer: true, Shard: 1, Replicas: []string{"n2", "n1"}, Primary: "n2", From: []string{"n2"}}); !errors.Is(err, meta.ErrStaleShard) {
		t.Fatalf("promotion from a view without the joining node: %v", err)
	}
	tb = must(t, tb, meta.SetReplicas{Collection: "r", Buffer: true, Shard: 1, Replicas: []string{"n2", "n1"}, Primary: "n2", From: []string{"n2"}, FromJoining: []string{"n1"}})
	c, _ = tb.Collection("r")
	if len(c.Buffer[1].Joining) != 0 || len(c.Buffer[1].Replicas) != 2 || c.Buffer[1].Added != joinedAt {
		t.Fatalf("promoted: %+v (added want %d)", c.Buffer[1], joinedAt)
	}
	if _, _, err := tb.Apply(meta.SetReplicas{Collection: "r", Buffer: true, Shard: 1, Replicas: []string{"n2", "n1"}, Primary: "n2", Joining: []string{"n1"}, From: c.Buffer[1].Replicas}); !errors.Is(err, meta.ErrBadShardMap) {
		t.Fatalf("a node both replica and joining: %v", err)
	}
}

// A replica taken out of a shard is away until the shard has its full
// count again; a replica or joining node that is away stays away only
// while it is not back in sync.
func TestSetReplicasAway(t *testing.T) {
	tb, _ := base(t)
	tb = must(t, tb, meta.CreateCollection{Name: "r", Dim: 4, Metric: ivf.L2, Replicas: 2, Shards: 1})
	c, _ := tb.Collection("r")
	s := c.Buffer[0]
	if len(s.Replicas) != 2 || len(s.Away) != 0 {
		t.Fatalf("created: %+v", s)
	}
	gone, stays := s.Replicas[0], s.Replicas[1]
	shard := func() meta.Shard {
		c, _ := tb.Collection("r")
		return c.Buffer[0]
	}
	// The first replica fails: away.
	tb = must(t, tb, meta.SetReplicas{Collection: "r", Buffer: true, Replicas: []string{stays}, Primary: stays, From: s.Replicas})
	if got := shard().Away; !slices.Equal(got, []string{gone}) {
		t.Fatalf("after %s left: away %v", gone, got)
	}
	// It joins again to catch up: still away (a failed copy leaves it a
	// candidate).
	tb = must(t, tb, meta.SetReplicas{Collection: "r", Buffer: true, Replicas: []string{stays}, Primary: stays, Joining: []string{gone}, From: []string{stays}})
	if got := shard().Away; !slices.Equal(got, []string{gone}) {
		t.Fatalf("joining again: away %v", got)
	}
	tb = must(t, tb, meta.SetReplicas{Collection: "r", Buffer: true, Replicas: []string{stays}, Primary: stays, From: []string{stays}, FromJoining: []string{gone}})
	if got := shard().Away; !slices.Equal(got, []string{gone}) {
		t.Fatalf("copy dropped: away %v", got)
	}
	// Back in sync: the shard is whole, nobody is away.
	tb = must(t, tb, meta.SetReplicas{Collection: "r", Buffer: true, Replicas: []string{stays, gone}, Primary: stays, From: []string{stays}})
	if got := shard(); len(got.Away) != 0 || len(got.Replicas) != 2 {
		t.Fatalf("back in sync: %+v", got)
	}
	// The table round-trips Away through its snapshot encoding.
	tb = must(t, tb, meta.SetReplicas{Collection: "r", Buffer: true, Replicas: []string{gone}, Primary: gone, From: []string{stays, gone}})
	back := snapshotRoundTrip(t, tb)
	if c, _ := back.Collection("r"); !slices.Equal(c.Buffer[0].Away, []string{stays}) {
		t.Fatalf("after a snapshot round trip: %+v", c.Buffer[0])
	}
}

// A collection created with its id directory gets one partition per live
// node, each an untrained collection of one shard with the same replicas,
// their primaries on distinct nodes; dropping the collection drops them;
// a partition can be neither dropped on its own nor trained.
func TestIDDirectory(t *testing.T) {
	tb := must(t, meta.New(),
		meta.RegisterNode{ID: "n1", RaftAddr: "r1"}, meta.RegisterNode{ID: "n2", RaftAddr: "r2"}, meta.RegisterNode{ID: "n3", RaftAddr: "r3"},
		meta.CreateCollection{Name: "c", Dim: 4, Metric: ivf.Cosine, Replicas: 2, Shards: 1, IDDirectory: true},
		meta.CreateCollection{Name: "plain", Dim: 4, Metric: ivf.L2})
	if p, _ := tb.Collection("plain"); p.IDPartitions != 0 {
		t.Fatal("a collection created without a directory has one")
	}
	c, _ := tb.Collection("c")
	if c.IDPartitions != 3 {
		t.Fatalf("%d partitions, want 3", c.IDPartitions)
	}
	primaries := map[string]bool{}
	for p := range 3 {
		d, ok := tb.Collection(meta.DirName("c", p))
		if !ok {
			t.Fatalf("no partition %d", p)
		}
		if d.Dim != 1 || d.Metric != ivf.L2 || d.Replicas != 2 || d.State != meta.Untrained || len(d.Buffer) != 1 ||
			d.Buffer[0].ID != 0 || len(d.Buffer[0].Replicas) != 2 {
			t.Fatalf("partition %d: %+v", p, d)
		}
		primaries[d.Buffer[0].Primary] = true
		if name, part, ok := meta.DirOf(d.Name); !ok || name != "c" || part != p {
			t.Fatalf("DirOf(%q) = %q, %d, %t", d.Name, name, part, ok)
		}
		if meta.ValidName(d.Name) {
			t.Fatalf("a collection could be named %q", d.Name)
		}
	}
	if len(primaries) != 3 {
		t.Fatalf("partition primaries %v, want 3 nodes", primaries)
	}
	for _, name := range []string{"c", "c~ids", "c~ids~x", "c~ids~-1"} {
		if _, _, ok := meta.DirOf(name); ok {
			t.Fatalf("DirOf(%q) says a partition", name)
		}
	}
	rt := snapshotRoundTrip(t, tb)
	if c2, _ := rt.Collection("c"); c2.IDPartitions != 3 || len(rt.Collections()) != 5 {
		t.Fatalf("after a snapshot round trip: %d partitions, %d collections", c2.IDPartitions, len(rt.Collections()))
	}
	d := meta.DirName("c", 1)
	if _, _, err := tb.Apply(meta.DropCollection{Name: d}); !errors.Is(err, meta.ErrBadName) {
		t.Fatalf("drop of a partition alone: %v", err)
	}
	if _, _, err := tb.Apply(meta.BeginTraining{Collection: d, Epoch: 1}); !errors.Is(err, meta.ErrBadState) {
		t.Fatalf("training a partition: %v", err)
	}
	tb = must(t, tb, meta.DropCollection{Name: "c"})
	if len(tb.Collections()) != 1 {
		t.Fatalf("collections after the drop: %d, want 1 (plain)", len(tb.Collections()))
	}
}

// Created is the table version a collection's creation produced: the
// same for its id directory's partitions, larger for a collection of the
// same name created again after a drop, and kept by snapshots.
func TestCreatedVersion(t *testing.T) {
	tb := must(t, meta.New(),
		meta.RegisterNode{ID: "n1", RaftAddr: "r1"}, meta.RegisterNode{ID: "n2", RaftAddr: "r2"},
		meta.CreateCollection{Name: "c", Dim: 4, Metric: ivf.L2, IDDirectory: true})
	c, _ := tb.Collection("c")
	if c.Created == 0 || c.Created != tb.Version() {
		t.Fatalf("created %d, table version %d after the create", c.Created, tb.Version())
	}
	for p := range c.IDPartitions {
		if d, _ := tb.Collection(meta.DirName("c", p)); d.Created != c.Created {
			t.Fatalf("partition %d created %d, its collection %d", p, d.Created, c.Created)
		}
	}
	tb = must(t, tb, meta.BeginTraining{Collection: "c", Epoch: 1})
	if c2, _ := tb.Collection("c"); c2.Created != c.Created {
		t.Fatalf("created changed from %d to %d by a later command", c.Created, c2.Created)
	}
	tb = must(t, tb, meta.DropCollection{Name: "c"}, meta.CreateCollection{Name: "c", Dim: 4, Metric: ivf.L2})
	again, _ := tb.Collection("c")
	if again.Created <= c.Created {
		t.Fatalf("created again: %d, the first %d", again.Created, c.Created)
	}
	if back, _ := snapshotRoundTrip(t, tb).Collection("c"); back.Created != again.Created {
		t.Fatalf("after a snapshot round trip: created %d, want %d", back.Created, again.Created)
	}
}

// snapshotRoundTrip encodes tb as a snapshot and decodes it back.
func snapshotRoundTrip(t *testing.T, tb *meta.Table) *meta.Table {
	t.Helper()
	var buf bytes.Buffer
	if err := tb.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	back, err := meta.DecodeTable(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return back
}
