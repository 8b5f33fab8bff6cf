package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"

	"lookalike/coordinator/meta"
)

// Server is one Raft peer holding the cluster table.
type Server struct {
	opts  Options
	raft  *raft.Raft
	fsm   *FSM
	trans raft.Transport
	id    string
	addr  string

	closers   []io.Closer // closed in order by Close
	closeOnce sync.Once
	closeErr  error
}

// Open starts a Raft peer with opts. See Options.Bootstrap for what happens
// on an empty data directory. ctx bounds the one-node leadership wait and
// self-registration; the server itself runs until Close.
func Open(ctx context.Context, opts Options) (*Server, error) {
	o := opts
	o.Peers = append([]Peer(nil), opts.Peers...)
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	s := &Server{opts: o, fsm: NewFSM(), id: o.NodeID}
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	logger := hclog.New(&hclog.LoggerOptions{
		Name:   "raft",
		Output: o.LogOutput,
		Level:  hclog.LevelFromString(o.LogLevel),
	})

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if o.InMemory {
		st := raft.NewInmemStore()
		logs, stable, snaps = st, st, raft.NewInmemSnapshotStore()
	} else {
		dir := filepath.Join(o.DataDir, "raft")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("coordinator: %w", err)
		}
		bolt, err := raftboltdb.New(raftboltdb.Options{Path: filepath.Join(dir, "raft.db")})
		if err != nil {
			return nil, fmt.Errorf("coordinator: open raft log: %w", err)
		}
		s.closers = append(s.closers, bolt)
		logs, stable = bolt, bolt
		fs, err := raft.NewFileSnapshotStoreWithLogger(dir, o.SnapshotRetain, logger)
		if err != nil {
			return nil, fmt.Errorf("coordinator: open snapshot store: %w", err)
		}
		snaps = fs
	}

	if o.Transport != nil {
		s.trans = o.Transport
	} else {
		var adv net.Addr
		if o.Advertise != "" {
			a, err := net.ResolveTCPAddr("tcp", o.Advertise)
			if err != nil {
				return nil, fmt.Errorf("coordinator: advertise: %w", err)
			}
			adv = a
		}
		tcp, err := raft.NewTCPTransportWithLogger(o.RaftAddr, adv, 3, 10*time.Second, logger)
		if err != nil {
			return nil, fmt.Errorf("coordinator: raft transport: %w", err)
		}
		s.trans = tcp
		s.closers = append([]io.Closer{tcp}, s.closers...) // before the stores
	}
	s.addr = string(s.trans.LocalAddr())

	conf := raft.DefaultConfig()
	conf.LocalID = raft.ServerID(o.NodeID)
	conf.HeartbeatTimeout = o.HeartbeatTimeout
	conf.ElectionTimeout = o.ElectionTimeout
	conf.LeaderLeaseTimeout = o.LeaderLeaseTimeout
	conf.CommitTimeout = o.CommitTimeout
	conf.SnapshotThreshold = o.SnapshotThreshold
	conf.SnapshotInterval = o.SnapshotInterval
	conf.TrailingLogs = o.TrailingLogs
	conf.Logger = logger

	existing, err := raft.HasExistingState(logs, stable, snaps)
	if err != nil {
		return nil, fmt.Errorf("coordinator: %w", err)
	}
	r, err := raft.NewRaft(conf, s.fsm, logs, stable, snaps, s.trans)
	if err != nil {
		return nil, fmt.Errorf("coordinator: start raft: %w", err)
	}
	s.raft = r
	if o.Bootstrap && !existing {
		cfg := raft.Configuration{Servers: []raft.Server{{ID: conf.LocalID, Address: s.trans.LocalAddr()}}}
		for _, p := range o.Peers {
			cfg.Servers = append(cfg.Servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr)})
		}
		if err := r.BootstrapCluster(cfg).Error(); err != nil {
			return nil, fmt.Errorf("coordinator: bootstrap: %w", err)
		}
	}
	if o.Bootstrap && len(o.Peers) == 0 {
		if err := s.WaitLeader(ctx); err != nil {
			return nil, err
		}
		if err := s.Register(ctx); err != nil {
			return nil, err
		}
	}
	ok = true
	return s, nil
}

// ID returns this node's id; Addr its Raft address.
func (s *Server) ID() string   { return s.id }
func (s *Server) Addr() string { return s.addr }

// Table returns the current table of this replica (immutable).
func (s *Server) Table() *meta.Table { return s.fsm.Table() }

// Watch returns a channel of tables, sent after each change, latest wins;
// see FSM.Watch.
func (s *Server) Watch() (<-chan *meta.Table, func()) { return s.fsm.Watch() }

// IsLeader reports whether this server is the Raft leader.
func (s *Server) IsLeader() bool { return s.raft.State() == raft.Leader }

// LastContact is how long ago this server last heard from a leader: 0 on
// the leader (which steps down once it loses a quorum for its leader
// lease), -1 when it never has.
func (s *Server) LastContact() time.Duration {
	if s.raft.State() == raft.Leader {
		return 0
	}
	t := s.raft.LastContact()
	if t.IsZero() {
		return -1
	}
	return time.Since(t)
}

// Leader returns the leader as this server knows it; zero when unknown.
func (s *Server) Leader() Peer {
	addr, id := s.raft.LeaderWithID()
	return Peer{ID: string(id), Addr: string(addr)}
}

// WaitLeader polls until a leader is known or ctx ends.
func (s *Server) WaitLeader(ctx context.Context) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.Leader().ID != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: %v", ErrNoLeader, ctx.Err())
		case <-tick.C:
		}
	}
}

// Register records this node (id, Raft and HTTP address, up) in the table
// unless it is already there as such. On the leader it first waits for the
// log to be applied (a Raft barrier), so that a restarted node sees its
// replayed table before deciding.
func (s *Server) Register(ctx context.Context) error {
	if s.IsLeader() {
		timeout := s.opts.ApplyTimeout
		if dl, ok := ctx.Deadline(); ok {
			timeout = time.Until(dl)
		}
		if err := s.raft.Barrier(timeout).Error(); err != nil {
			return raftError(err)
		}
	}
	want := meta.Node{ID: s.id, RaftAddr: s.addr, HTTPAddr: s.opts.HTTPAddr, State: meta.NodeUp}
	if n, ok := s.Table().Node(s.id); ok && *n == want {
		return nil
	}
	_, err := s.Propose(ctx, meta.RegisterNode{ID: want.ID, RaftAddr: want.RaftAddr, HTTPAddr: want.HTTPAddr, State: want.State})
	return err
}

// Propose replicates cmd and returns its result once applied on this
// server (the leader): the value package meta documents for the command,
// or its domain error. The context's deadline (or Options.ApplyTimeout)
// bounds the wait. On a follower it calls Options.Forward, or fails with
// ErrNotLeader when that hook is unset.
func (s *Server) Propose(ctx context.Context, cmd meta.Command) (any, error) {
	entry := meta.Encode(cmd)
	switch s.raft.State() {
	case raft.Leader:
		return s.apply(ctx, entry)
	case raft.Shutdown:
		return nil, ErrClosed
	}
	// A follower or candidate: the hook for the cluster issue.
	leader := s.Leader()
	if s.opts.Forward != nil && leader.ID != "" {
		return s.opts.Forward(ctx, leader, entry)
	}
	return nil, fmt.Errorf("%w: leader is %q at %q", ErrNotLeader, leader.ID, leader.Addr)
}

// ApplyEntry is Propose for an entry already encoded (meta.Encode), as the
// leader receives it from a forwarding follower.
func (s *Server) ApplyEntry(ctx context.Context, entry []byte) (any, error) {
	if _, err := meta.Decode(entry); err != nil {
		return nil, err // never let a bad entry into the log: Apply would panic
	}
	return s.apply(ctx, entry)
}

func (s *Server) apply(ctx context.Context, entry []byte) (any, error) {
	timeout := s.opts.ApplyTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("%w: %v", ErrTimeout, context.DeadlineExceeded)
	}
	f := s.raft.Apply(entry, timeout)
	done := make(chan error, 1)
	go func() { done <- f.Error() }() // ends when Raft resolves the future (commit, leadership loss or shutdown)
	select {
	case err := <-done:
		if err != nil {
			return nil, raftError(err)
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	res, ok := f.Response().(*Result)
	if !ok {
		return nil, fmt.Errorf("coordinator: unexpected FSM response %T", f.Response())
	}
	return res.Value, res.Err
}

func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return fmt.Errorf("coordinator: %w", err)
}

// PutBlob stores data as a content-addressed blob through Raft, in chunks
// of at most meta.MaxChunkSize (one log entry each), skipping chunks the
// table already holds, and returns its reference once complete. Reference
// it (CommitTraining) before the next GCBlobs, or pass its hash in
// GCBlobs.Keep while uploading.
func (s *Server) PutBlob(ctx context.Context, data []byte) (meta.BlobRef, error) {
	ref := meta.BlobRef{Hash: meta.HashOf(data), Size: uint64(len(data))}
	if len(data) == 0 {
		return meta.BlobRef{}, fmt.Errorf("%w: empty blob", meta.ErrBadChunk)
	}
	chunks := uint32((len(data) + meta.MaxChunkSize - 1) / meta.MaxChunkSize)
	for i := uint32(0); i < chunks; i++ {
		if b, ok := s.Table().Blob(ref.Hash); ok && (b.Complete() || b.Chunk(i) != nil) {
			if b.Complete() {
				return ref, nil
			}
			continue
		}
		end := min(len(data), int(i+1)*meta.MaxChunkSize)
		_, err := s.Propose(ctx, meta.PutBlobChunk{Hash: ref.Hash, Size: ref.Size, Chunks: chunks, Index: i, Data: data[int(i)*meta.MaxChunkSize : end]})
		if err != nil {
			return meta.BlobRef{}, fmt.Errorf("coordinator: put blob %s chunk %d of %d: %w", ref.Hash, i, chunks, err)
		}
	}
	if b, ok := s.Table().Blob(ref.Hash); !ok || !b.Complete() {
		return meta.BlobRef{}, fmt.Errorf("%w: %s after upload", meta.ErrIncompleteBlob, ref.Hash)
	}
	return ref, nil
}

// Snapshot asks Raft for a snapshot now (tests, admin).
func (s *Server) Snapshot() error {
	return s.raft.Snapshot().Error()
}

// Stats is the Raft view for /metrics.
type Stats struct {
	State        string // Leader, Follower, Candidate, Shutdown
	Leader       string // leader id; "" when unknown
	Term         uint64
	LastIndex    uint64
	AppliedIndex uint64
	TableVersion uint64
}

// Stats returns the server's Raft state.
func (s *Server) Stats() Stats {
	return Stats{
		State:        s.raft.State().String(),
		Leader:       s.Leader().ID,
		Term:         s.raft.CurrentTerm(),
		LastIndex:    s.raft.LastIndex(),
		AppliedIndex: s.raft.AppliedIndex(),
		TableVersion: s.Table().Version(),
	}
}

// Close shuts Raft down and closes the transport and stores. It is safe to
// call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.raft != nil {
			if err := s.raft.Shutdown().Error(); err != nil {
				errs = append(errs, err)
			}
		}
		for _, c := range s.closers {
			if err := c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
