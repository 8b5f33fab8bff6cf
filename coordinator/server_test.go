package coordinator_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"go.uber.org/goleak"

	"lookalike/coordinator"
	"lookalike/coordinator/meta"
	"lookalike/internal/testenv"
	"lookalike/ivf"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fast returns options with test timing: elections in tens of
// milliseconds, no log output.
func fast(id string) coordinator.Options {
	return coordinator.Options{
		NodeID:             id,
		HeartbeatTimeout:   50 * time.Millisecond,
		ElectionTimeout:    50 * time.Millisecond,
		LeaderLeaseTimeout: 50 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		ApplyTimeout:       5 * time.Second,
		LogOutput:          io.Discard,
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // -race on a busy 2-core machine: the 20 MB upload takes ~20 s
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 5 ms until it holds or 30 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func encode(t *testing.T, tb *meta.Table) []byte {
	t.Helper()
	b, err := tb.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func freeAddr(t *testing.T) string { return testenv.FreeAddr(t) }

func propose(t *testing.T, s *coordinator.Server, c meta.Command) any {
	t.Helper()
	res, err := s.Propose(ctxT(t), c)
	if err != nil {
		t.Fatalf("%T: %v", c, err)
	}
	return res
}

// train runs the training commit of collection c on s with a blob of n
// bytes and nlist lists on one shard held by node.
func train(t *testing.T, s *coordinator.Server, c string, n, nlist int, node string) meta.BlobRef {
	t.Helper()
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(uint64(n), 1))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	ref, err := s.PutBlob(ctxT(t), data)
	if err != nil {
		t.Fatal(err)
	}
	col, _ := s.Table().Collection(c)
	propose(t, s, meta.BeginTraining{Collection: c, Epoch: col.Epoch})
	sm := meta.ShardMap{ListShard: make([]uint32, nlist), Shards: []meta.Shard{{ID: 0, Replicas: []string{node}, Primary: node}}}
	if e := propose(t, s, meta.CommitTraining{Collection: c, Epoch: col.Epoch, Centroids: ref, NList: nlist, Shards: sm}); e.(uint64) != col.Epoch+1 {
		t.Fatalf("epoch %v", e)
	}
	b, ok := s.Table().Blob(ref.Hash)
	if !ok || !bytes.Equal(b.Bytes(), data) {
		t.Fatal("blob content differs")
	}
	return ref
}

func TestCluster(t *testing.T) {
	ids := []string{"n1", "n2", "n3"}
	trans := connectedTransports(ids)
	srv := make([]*coordinator.Server, 3)
	for i, id := range ids {
		o := fast(id)
		// Raft's default timing, not fast(): three peers on two shared,
		// busy cores (and -race) must not lose leadership mid-test.
		o.HeartbeatTimeout, o.ElectionTimeout, o.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
		o.InMemory, o.Transport = true, trans[i]
		if id == "n3" { // n3 forwards in process, as the cluster issue will over the network
			o.Forward = func(ctx context.Context, leader coordinator.Peer, entry []byte) (any, error) {
				for _, s := range srv {
					if s != nil && s.ID() == leader.ID {
						return s.ApplyEntry(ctx, entry)
					}
				}
				return nil, coordinator.ErrNoLeader
			}
		}
		if i == 0 {
			o.Bootstrap = true
			o.Peers = []coordinator.Peer{{ID: "n2", Addr: "n2"}, {ID: "n3", Addr: "n3"}}
		}
		s, err := coordinator.Open(ctxT(t), o)
		if err != nil {
			t.Fatal(err)
		}
		srv[i] = s
		defer s.Close()
	}
	for _, tr := range trans {
		defer tr.Close()
	}
	leader := func(among []*coordinator.Server) *coordinator.Server {
		var l *coordinator.Server
		eventually(t, "a leader", func() bool {
			for _, s := range among {
				if s.IsLeader() {
					l = s
					return true
				}
			}
			return false
		})
		return l
	}
	l := leader(srv)
	var follower *coordinator.Server
	for _, s := range srv {
		if s != l {
			follower = s
		}
	}
	watch, stop := follower.Watch()
	defer stop()

	for _, s := range srv {
		propose(t, l, meta.RegisterNode{ID: s.ID(), RaftAddr: s.Addr()})
	}
	propose(t, l, meta.CreateCollection{Name: "c", Dim: 8, Metric: ivf.Cosine, Replicas: 3})
	if _, err := l.Propose(ctxT(t), meta.CreateCollection{Name: "c", Dim: 8, Metric: ivf.L2}); !errors.Is(err, meta.ErrCollectionExists) {
		t.Fatalf("duplicate: %v", err)
	}
	// A follower forwards to the leader it knows: wait until each knows
	// it (a loaded machine can delay the first heartbeat after the
	// election past the proposals above).
	eventually(t, "followers know the leader", func() bool {
		for _, s := range srv {
			if s.Leader().ID != l.ID() {
				return false
			}
		}
		return true
	})
	for _, s := range srv {
		if s == l {
			continue
		}
		res, err := s.Propose(ctxT(t), meta.AllocateIDs{N: 1})
		if s.ID() == "n3" && (err != nil || res.(meta.IDRange).N != 1) {
			t.Fatalf("forwarded proposal: %v %v", res, err)
		}
		if s.ID() != "n3" && !errors.Is(err, coordinator.ErrNotLeader) {
			t.Fatalf("follower proposal: %v", err)
		}
	}
	train(t, l, "c", 3*meta.MaxChunkSize+5, 16, l.ID())
	want := encode(t, l.Table())
	eventually(t, "replicated tables", func() bool {
		for _, s := range srv {
			if !bytes.Equal(encode(t, s.Table()), want) {
				return false
			}
		}
		return true
	})
	// The follower's watch delivers the latest table.
	select {
	case tb := <-watch:
		if tb.Version() != l.Table().Version() {
			t.Fatalf("watch got version %d, want %d", tb.Version(), l.Table().Version())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("watch did not fire")
	}

	// Leader loss: the others elect a new leader, the table survives and
	// takes new commands.
	l.Close()
	var rest []*coordinator.Server
	for i, s := range srv {
		if s != l {
			rest = append(rest, s)
			trans[i].Disconnect(raft.ServerAddress(l.ID()))
		}
	}
	l2 := leader(rest)
	if !bytes.Equal(encode(t, l2.Table()), want) {
		t.Fatal("new leader's table differs")
	}
	r := propose(t, l2, meta.AllocateIDs{Collection: "c", N: 10}).(meta.IDRange)
	if r.N != 10 || r.First < 1 || r.First > 2 { // 1 id went to n3's forwarded proposal unless n3 led
		t.Fatalf("range %+v", r)
	}
	if r.First != l2.Table().NextID()-10 {
		t.Fatalf("range %+v", r)
	}
	want = encode(t, l2.Table())
	eventually(t, "replicated after failover", func() bool {
		return bytes.Equal(encode(t, rest[0].Table()), want) && bytes.Equal(encode(t, rest[1].Table()), want)
	})
}

func TestRestartKeepsState(t *testing.T) {
	dir := t.TempDir()
	o := fast("solo")
	o.DataDir, o.RaftAddr, o.Bootstrap, o.HTTPAddr = dir, freeAddr(t), true, "127.0.0.1:8080"
	s, err := coordinator.Open(ctxT(t), o)
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := s.Table().Node("solo"); !ok || n.HTTPAddr != "127.0.0.1:8080" || n.RaftAddr != o.RaftAddr {
		t.Fatalf("self registration: %+v", n)
	}
	propose(t, s, meta.CreateCollection{Name: "img", Dim: 1792, Metric: ivf.Cosine, Model: "mobilenet"})
	r1 := propose(t, s, meta.AllocateIDs{N: 1000}).(meta.IDRange)
	// 20 MB of centroids (4096 lists × 1280 dims × 4 bytes) go through 40 chunks.
	ref := train(t, s, "img", 20<<20, 4096, "solo")
	st := s.Stats()
	if st.State != "Leader" || st.Leader != "solo" || st.Term == 0 || st.LastIndex < 40 || st.TableVersion != s.Table().Version() {
		t.Fatalf("stats %+v", st)
	}
	want := encode(t, s.Table())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.Close() // idempotent

	// Reopen: the same table from the log, no second bootstrap.
	s, err = coordinator.Open(ctxT(t), o)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "log replay", func() bool { t.Logf("%+v", s.Stats()); return bytes.Equal(encode(t, s.Table()), want) })
	if col, _ := s.Table().Collection("img"); col.Centroids != ref || col.State != meta.Ready {
		t.Fatalf("after restart: %+v", col)
	}
	r2 := propose(t, s, meta.AllocateIDs{N: 1}).(meta.IDRange)
	if r2.First != r1.First+r1.N {
		t.Fatalf("ids after restart start at %d, want %d", r2.First, r1.First+r1.N)
	}
	// PutBlob of a blob already present proposes nothing.
	before := s.Stats().LastIndex
	b, _ := s.Table().Blob(ref.Hash)
	if again, err := s.PutBlob(ctxT(t), b.Bytes()); err != nil || again != ref || s.Stats().LastIndex != before {
		t.Fatalf("re-put: %v %v", again, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotRestore(t *testing.T) {
	dir := t.TempDir()
	o := fast("solo")
	o.DataDir, o.RaftAddr, o.Bootstrap = dir, freeAddr(t), true
	o.SnapshotThreshold, o.TrailingLogs = 4, 1
	s, err := coordinator.Open(ctxT(t), o)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		propose(t, s, meta.CreateCollection{Name: fmt.Sprintf("c%d", i), Dim: 4 + i, Metric: ivf.L2})
	}
	train(t, s, "c3", meta.MaxChunkSize+1, 8, "solo")
	if err := s.Snapshot(); err != nil {
		t.Fatal(err)
	}
	propose(t, s, meta.DropCollection{Name: "c0"}) // one entry after the snapshot
	want := encode(t, s.Table())
	s.Close()
	snaps, _ := filepath.Glob(filepath.Join(dir, "raft", "snapshots", "*", "state.bin"))
	if len(snaps) == 0 {
		t.Fatal("no snapshot written")
	}
	s, err = coordinator.Open(ctxT(t), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	eventually(t, "restore", func() bool { return bytes.Equal(encode(t, s.Table()), want) })
}

// memSink is a raft.SnapshotSink in memory.
type memSink struct{ bytes.Buffer }

func (*memSink) ID() string                    { return "mem" }
func (*memSink) Cancel() error                 { return nil }
func (*memSink) Close() error                  { return nil }
func (m *memSink) Write(p []byte) (int, error) { return m.Buffer.Write(p) }

func TestFSMSnapshotIdentity(t *testing.T) {
	f := coordinator.NewFSM()
	data := bytes.Repeat([]byte{7}, meta.MaxChunkSize+3)
	h := meta.HashOf(data)
	cmds := []meta.Command{
		meta.RegisterNode{ID: "a", RaftAddr: "x"},
		meta.CreateCollection{Name: "c", Dim: 3, Metric: ivf.IP},
		meta.PutBlobChunk{Hash: h, Size: uint64(len(data)), Chunks: 2, Index: 1, Data: data[meta.MaxChunkSize:]}, // incomplete
		meta.AllocateIDs{N: 77},
		meta.DropCollection{Name: "nope"}, // domain error
	}
	for i, c := range cmds {
		res := f.Apply(&raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: meta.Encode(c)}).(*coordinator.Result)
		if (res.Err != nil) != (i == 4) {
			t.Fatalf("%T: %v", c, res.Err)
		}
	}
	snap, _ := f.Snapshot()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	g := coordinator.NewFSM()
	watch, stop := g.Watch()
	defer stop()
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()))); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(t, f.Table()), encode(t, g.Table())) {
		t.Fatal("snapshot → restore is not the identity")
	}
	if tb := <-watch; tb != g.Table() {
		t.Fatal("restore did not notify")
	}
	if err := g.Restore(io.NopCloser(bytes.NewReader(sink.Bytes()[:20]))); !errors.Is(err, meta.ErrCorruptTable) {
		t.Fatalf("truncated snapshot: %v", err)
	}
	// Non-command entries are ignored; an undecodable command panics.
	if f.Apply(&raft.Log{Type: raft.LogNoop}) != nil {
		t.Fatal("noop returned a result")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("garbage entry did not panic")
		}
	}()
	f.Apply(&raft.Log{Type: raft.LogCommand, Data: []byte{250, 1}})
}

func TestOptions(t *testing.T) {
	var o coordinator.Options
	o.EnsureDefaults()
	if o.DataDir != "data" || o.RaftAddr != coordinator.DefaultRaftAddr || o.ApplyTimeout != 10*time.Second || o.SnapshotRetain != 2 {
		t.Fatalf("defaults: %+v", o)
	}
	if err := o.Validate(); !errors.Is(err, coordinator.ErrBadOptions) {
		t.Fatalf("missing node id: %v", err)
	}
	o.NodeID, o.RaftAddr, o.Advertise, o.LogLevel = "a", "nope", "0.0.0.0:1", "loud"
	err := o.Validate()
	for _, want := range []string{"raft address", "advertise", "log level"} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Fatalf("Validate missed %s: %v", want, err)
		}
	}
	if _, err := coordinator.Open(context.Background(), coordinator.Options{}); !errors.Is(err, coordinator.ErrBadOptions) {
		t.Fatal(err)
	}
}

func TestProposeDeadline(t *testing.T) {
	o := fast("solo")
	o.InMemory, o.Bootstrap = true, true
	_, tr := raft.NewInmemTransport("solo")
	defer tr.Close()
	o.Transport = tr
	s, err := coordinator.Open(ctxT(t), o)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Propose(ctx, meta.AllocateIDs{N: 1}); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if _, err := s.ApplyEntry(ctxT(t), []byte{1}); !errors.Is(err, meta.ErrCorruptCommand) {
		t.Fatalf("bad entry: %v", err)
	}
	res, err := s.ApplyEntry(ctxT(t), meta.Encode(meta.AllocateIDs{N: 2}))
	if err != nil || res.(meta.IDRange).N != 2 {
		t.Fatal(res, err)
	}
	s.Close()
	if _, err := s.Propose(ctxT(t), meta.AllocateIDs{N: 1}); !errors.Is(err, coordinator.ErrClosed) {
		t.Fatalf("proposal after close: %v", err)
	}
}

// connectedTransports returns an in-memory Raft transport per id, each
// connected to all the others.
func connectedTransports(ids []string) []*raft.InmemTransport {
	trans := make([]*raft.InmemTransport, len(ids))
	for i := range trans {
		_, trans[i] = raft.NewInmemTransport(raft.ServerAddress(ids[i]))
	}
	for i := range trans {
		for j := range trans {
			if i != j {
				trans[i].Connect(trans[j].LocalAddr(), trans[j])
			}
		}
	}
	return trans
}
