package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"lookalike/coordinator"
	"lookalike/coordinator/meta"
	"lookalike/ivf"
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
		Created: c.Created,
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

func (m *RaftMetadata) TableVersion() uint64 { return m.s.Table().Version() }

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

// The placer side (dist.go).

func (m *RaftMetadata) table() *meta.Table { return m.s.Table() }

func (m *RaftMetadata) self() string { return m.nodeID }

func (m *RaftMetadata) waitVersion(ctx context.Context, v uint64) error {
	return waitTableVersion(ctx, m.s, v)
}

// waitTableVersion waits until s's table reaches version v, polling
// every 2 ms, or ctx ends.
func waitTableVersion(ctx context.Context, s *coordinator.Server, v uint64) error {
	for s.Table().Version() < v {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// alive says whether gossip sees the node (this node always; without
// gossip, only this node).
func (m *RaftMetadata) alive(id string) bool {
	if id == m.nodeID {
		return true
	}
	if m.cluster == nil {
		return false
	}
	_, ok := m.cluster.liveMember(id)
	return ok
}

// leaseDuration is how long a node of a cluster keeps serving after it
// last heard from the Raft leader (decision 14): then it refuses reads
// and writes (ErrCutOff) until it hears from one again. A primary that
// takes a failed backup out of a shard waits this long before it
// acknowledges the write without it, so the backup, if it is cut off
// and still thinks it is in the set, has stopped answering by then.
const leaseDuration = 2 * time.Second

// lease says whether this node may serve: it leads, or heard from the
// leader within leaseDuration. A node outside a cluster always may.
func (m *RaftMetadata) lease() error {
	if m.cluster == nil {
		return nil
	}
	switch d := m.s.LastContact(); {
	case d < 0:
		return fmt.Errorf("%w: no contact with a Raft leader yet", ErrCutOff)
	case d > leaseDuration:
		return fmt.Errorf("%w: no contact with the Raft leader for %v (lease %v)", ErrCutOff, d.Round(time.Millisecond), leaseDuration)
	}
	return nil
}

// LiveNodes returns the nodes the table has up.
func (m *RaftMetadata) LiveNodes() []string { return m.s.Table().LiveNodes() }

func (m *RaftMetadata) propose(ctx context.Context, cmd meta.Command) (any, error) {
	v, err := m.s.Propose(ctx, cmd)
	return v, metaErr(err)
}

func (m *RaftMetadata) CreateCollection(ctx context.Context, c CollectionMeta) error {
	// One flat buffer shard (with its replicas): training runs where it
	// lives, on all of the collection's vectors (docs/node.md, "Shards on
	// several nodes").
	_, err := m.propose(ctx, meta.CreateCollection{Name: c.Name, Dim: c.Dim, Metric: c.Metric, NList: c.NList, Replicas: c.Replicas, Model: c.Model, ModelHash: c.ModelHash, Shards: 1, IDDirectory: c.IDDirectory})
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
// commits them with the collection's shard map: on one node, one shard
// here holding every list; on several, the lists grouped into one shard
// per live node by a balanced clustering of the centroids
// (meta.GroupLists), the shards placed with the collection's replicas,
// balanced (meta.PlaceByWeight).
func (m *RaftMetadata) CommitTraining(ctx context.Context, name string, epoch uint64, nlist int, centroids []byte, sizes []int64) error {
	ref, err := m.s.PutBlob(ctx, centroids)
	if err != nil {
		return metaErr(err)
	}
	sm := meta.ShardMap{
		ListShard: make([]uint32, nlist),
		Shards:    []meta.Shard{{ID: 0, Replicas: []string{m.nodeID}, Primary: m.nodeID}},
	}
	t := m.s.Table()
	col, ok := t.Collection(name)
	if !ok {
		return fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	if live := t.LiveNodes(); len(live) > 1 && m.cluster != nil {
		if sm, err = placeLists(centroids, col, live, sizes); err != nil {
			return err
		}
	}
	_, err = m.propose(ctx, meta.CommitTraining{Collection: name, Epoch: epoch, Centroids: ref, NList: nlist, Shards: sm})
	return err
}

// placeLists is the shard map of a trained collection on several nodes:
// the lists grouped by a balanced clustering of their centroids, balanced
// by vector count when sizes (one estimate per list) is given, else by
// list count, and the shards placed balanced by the same weights.
func placeLists(centroids []byte, col *meta.Collection, live []string, sizes []int64) (meta.ShardMap, error) {
	ix, err := ivf.Load(bytes.NewReader(centroids), ivf.Options{Dim: col.Dim, Metric: col.Metric})
	if err != nil {
		return meta.ShardMap{}, fmt.Errorf("node: place lists: %w", err)
	}
	nl := ix.NList()
	cents := make([]float32, 0, nl*col.Dim)
	for l := 0; l < nl; l++ {
		cents = append(cents, ix.Centroid(l)...)
	}
	shards := min(len(live), nl)
	var listWeights []float64
	if len(sizes) == nl {
		// One more than the estimate: a list estimated empty still costs
		// something (its centroid is probed), and a zero total weight would
		// leave nothing to balance.
		listWeights = make([]float64, nl)
		for l, s := range sizes {
			listWeights[l] = float64(max(s, 0) + 1)
		}
	}
	listShard, err := meta.GroupLists(cents, col.Dim, shards, meta.GroupOptions{Seed: 1, Weights: listWeights})
	if err != nil {
		return meta.ShardMap{}, fmt.Errorf("node: group lists: %w", err)
	}
	weights := make([]float64, shards)
	for l, s := range listShard {
		if listWeights != nil {
			weights[s] += listWeights[l]
		} else {
			weights[s]++
		}
	}
	placed, err := meta.PlaceByWeight(weights, min(max(col.Replicas, 1), len(live)), live, 0)
	if err != nil {
		return meta.ShardMap{}, fmt.Errorf("node: place shards: %w", err)
	}
	return meta.ShardMap{ListShard: listShard, Shards: placed}, nil
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
