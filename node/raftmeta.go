package node

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"lookalike/coordinator"
	"lookalike/coordinator/meta"
)

// RaftMetadata is Metadata over the Raft coordinator (package
// coordinator): reads come from the replicated table, writes are
// proposals. On one node the node is the only voter and the leader.
type RaftMetadata struct {
	s       *coordinator.Server
	nodeID  string
	cluster *clusterRuntime // nil on one node; set before serving
}

// NewRaftMetadata wraps an open coordinator server.
func NewRaftMetadata(s *coordinator.Server) *RaftMetadata {
	return &RaftMetadata{s: s, nodeID: s.ID()}
}

// Server returns the coordinator server.
func (m *RaftMetadata) Server() *coordinator.Server { return m.s }

func fromMeta(c *meta.Collection) CollectionMeta {
	return CollectionMeta{
		Name: c.Name, Dim: c.Dim, Metric: c.Metric, NList: c.NList, Replicas: c.Replicas, Model: c.Model, ModelHash: c.ModelHash,
		State: State(c.State), Epoch: c.Epoch, TrainedNList: c.TrainedNList, Buffered: len(c.Buffer) > 0,
	}
}

// metaErr maps the coordinator's errors to the node's sentinels, keeping
// the message.
func metaErr(err error) error {
	var s error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, meta.ErrCollectionExists):
		s = ErrExists
	case errors.Is(err, meta.ErrUnknownCollection):
		s = ErrNoCollection
	case errors.Is(err, meta.ErrBadState):
		s = ErrBadState
	case errors.Is(err, meta.ErrStaleEpoch):
		s = ErrStaleEpoch
	case errors.Is(err, coordinator.ErrNotLeader), errors.Is(err, coordinator.ErrNoLeader),
		errors.Is(err, coordinator.ErrTimeout), errors.Is(err, meta.ErrNotEnoughNodes):
		s = ErrNotLeader
	case errors.Is(err, coordinator.ErrClosed):
		s = ErrClosed
	case errors.Is(err, meta.ErrBadName), errors.Is(err, meta.ErrBadDim), errors.Is(err, meta.ErrBadMetric),
		errors.Is(err, meta.ErrBadNList), errors.Is(err, meta.ErrBadReplicas), errors.Is(err, meta.ErrBadModel):
		s = ErrInvalid
	default:
		return err
	}
	return fmt.Errorf("%w: %v", s, err)
}

func (m *RaftMetadata) Collections() []CollectionMeta {
	cs := m.s.Table().Collections()
	out := make([]CollectionMeta, len(cs))
	for i, c := range cs {
		out[i] = fromMeta(c)
	}
	return out
}

func (m *RaftMetadata) Collection(name string) (CollectionMeta, bool) {
	c, ok := m.s.Table().Collection(name)
	if !ok {
		return CollectionMeta{}, false
	}
	return fromMeta(c), true
}

func (m *RaftMetadata) propose(ctx context.Context, cmd meta.Command) (any, error) {
	v, err := m.s.Propose(ctx, cmd)
	return v, metaErr(err)
}

func (m *RaftMetadata) CreateCollection(ctx context.Context, c CollectionMeta) error {
	_, err := m.propose(ctx, meta.CreateCollection{Name: c.Name, Dim: c.Dim, Metric: c.Metric, NList: c.NList, Replicas: c.Replicas, Model: c.Model, ModelHash: c.ModelHash})
	return err
}

func (m *RaftMetadata) DropCollection(ctx context.Context, name string) error {
	_, err := m.propose(ctx, meta.DropCollection{Name: name})
	return err
}

func (m *RaftMetadata) BeginTraining(ctx context.Context, name string, epoch uint64) error {
	_, err := m.propose(ctx, meta.BeginTraining{Collection: name, Epoch: epoch})
	return err
}

func (m *RaftMetadata) AbortTraining(ctx context.Context, name string, epoch uint64) error {
	_, err := m.propose(ctx, meta.AbortTraining{Collection: name, Epoch: epoch})
	return err
}

// CommitTraining uploads the centroids as a chunked blob (decision 13) and
// commits them with a shard map of one shard, on this node, holding every
// list.
func (m *RaftMetadata) CommitTraining(ctx context.Context, name string, epoch uint64, nlist int, centroids []byte) error {
	ref, err := m.s.PutBlob(ctx, centroids)
	if err != nil {
		return metaErr(err)
	}
	sm := meta.ShardMap{
		ListShard: make([]uint32, nlist),
		Shards:    []meta.Shard{{ID: 0, Replicas: []string{m.nodeID}, Primary: m.nodeID}},
	}
	_, err = m.propose(ctx, meta.CommitTraining{Collection: name, Epoch: epoch, Centroids: ref, NList: nlist, Shards: sm})
	return err
}

func (m *RaftMetadata) RetireBuffer(ctx context.Context, name string, epoch uint64) error {
	_, err := m.propose(ctx, meta.RetireBuffer{Collection: name, Epoch: epoch})
	return err
}

func (m *RaftMetadata) Centroids(name string) ([]byte, error) {
	t := m.s.Table()
	c, ok := t.Collection(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	b, ok := t.Blob(c.Centroids.Hash)
	if !ok || !b.Complete() {
		return nil, fmt.Errorf("node: centroids of %q: %w", name, meta.ErrIncompleteBlob)
	}
	return b.Bytes(), nil
}

func (m *RaftMetadata) AllocateIDs(ctx context.Context, n uint64) (uint64, error) {
	v, err := m.propose(ctx, meta.AllocateIDs{N: n})
	if err != nil {
		return 0, err
	}
	r, ok := v.(meta.IDRange)
	if !ok || r.N != n {
		return 0, fmt.Errorf("node: allocate ids: unexpected result %v", v)
	}
	return r.First, nil
}

func (m *RaftMetadata) Cluster() ClusterInfo {
	if m.cluster != nil {
		return m.cluster.info()
	}
	st := m.s.Stats()
	ci := ClusterInfo{Leader: st.Leader, RaftState: strings.ToLower(st.State)}
	for _, n := range m.s.Table().Nodes() {
		state := "alive"
		if n.State != meta.NodeUp {
			state = "dead"
		}
		ci.Nodes = append(ci.Nodes, ClusterNode{ID: n.ID, RaftAddr: n.RaftAddr, HTTPAddr: n.HTTPAddr, State: state, Voter: true})
	}
	return ci
}
