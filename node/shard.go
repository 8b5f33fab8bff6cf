package node

import (
	"context"

	"lookalike/ivf"
)

// Shard is the internal interface between a gateway and the shards of a
// collection (decision 9). Every call carries the collection's table
// epoch as the caller routed it; a shard at another epoch refuses with
// ErrStaleEpoch and the gateway re-reads the table and retries. On one
// node the gateway calls the local shard in process; the cluster issue
// puts the same calls on the network.
type Shard interface {
	Upsert(ctx context.Context, call *UpsertCall) error
	Delete(ctx context.Context, call *DeleteCall) (int, error)
	Search(ctx context.Context, call *SearchCall) (*SearchReply, error)
	Get(ctx context.Context, call *GetCall) (*Item, error)
}

// UpsertCall stores items (user ids already assigned).
type UpsertCall struct {
	Collection string
	Epoch      uint64
	Items      []WriteItem
}

// DeleteCall deletes user ids.
type DeleteCall struct {
	Collection string
	Epoch      uint64
	UserIDs    []string
}

// SearchCall asks a shard for its local top-K.
type SearchCall struct {
	Collection string
	Epoch      uint64
	Vector     []float32
	K          int
	NProbe     int
	Refine     int
}

// SearchReply is a shard's top-K, best first, with each hit's user id and
// metadata so the gateway needs no second round trip.
type SearchReply struct {
	Hits []ShardHit
}

// ShardHit is one hit of a shard.
type ShardHit struct {
	ID     uint64
	Dist   float32 // internal distance (ivf.Hit)
	UserID string
	Meta   []byte
}

// GetCall reads one item by user id.
type GetCall struct {
	Collection string
	Epoch      uint64
	UserID     string
	WithVector bool
	// WithAttachment reads the item's attachment too.
	WithAttachment bool
}

// localShard serves the collections of this node in process.
type localShard struct{ n *Node }

func (s localShard) coll(name string, epoch uint64) (*collection, error) {
	c, err := s.n.collection(name)
	if err != nil {
		return nil, err
	}
	return c, c.checkEpoch(epoch)
}

func (s localShard) Upsert(ctx context.Context, call *UpsertCall) error {
	c, err := s.coll(call.Collection, call.Epoch)
	if err != nil {
		return err
	}
	return c.upsert(ctx, call.Items)
}

func (s localShard) Delete(ctx context.Context, call *DeleteCall) (int, error) {
	c, err := s.coll(call.Collection, call.Epoch)
	if err != nil {
		return 0, err
	}
	return c.remove(ctx, call.UserIDs)
}

func (s localShard) Search(ctx context.Context, call *SearchCall) (*SearchReply, error) {
	c, err := s.coll(call.Collection, call.Epoch)
	if err != nil {
		return nil, err
	}
	release, err := s.n.scans.enter(ctx)
	if err != nil {
		return nil, err
	}
	hits, err := c.search(call.Vector, call.K, call.NProbe, call.Refine)
	release()
	if err != nil {
		return nil, err
	}
	out := &SearchReply{Hits: make([]ShardHit, 0, len(hits))}
	for _, h := range hits {
		it, err := s.n.store.Item(call.Collection, h.ID)
		if err != nil {
			// Deleted between the scan and this read: the delete wins.
			continue
		}
		out.Hits = append(out.Hits, ShardHit{ID: h.ID, Dist: h.Dist, UserID: it.UserID, Meta: it.Meta})
	}
	return out, nil
}

func (s localShard) Get(ctx context.Context, call *GetCall) (*Item, error) {
	c, err := s.coll(call.Collection, call.Epoch)
	if err != nil {
		return nil, err
	}
	it, err := c.stored(call.UserID)
	if err != nil {
		return nil, err
	}
	if !call.WithVector {
		it.Vector = nil
	}
	it.Attachment = nil
	if call.WithAttachment && !c.dir { // an entry has none
		if it.Attachment, err = s.n.store.Attachment(c.meta.Name, it.ID); err != nil {
			return nil, err
		}
	}
	return &it, nil
}

// Hit is a gateway's merged hit.
type Hit struct {
	UserID string
	Score  float32 // the metric's own value
	Meta   []byte
}

// SearchResult is a gateway's answer.
type SearchResult struct {
	Hits          []Hit
	Partial       bool
	MissingShards []string
}

// mergeShardHits merges shard replies into the global top k without
// duplicate ids (ivf.MergeTopK) and converts distances to scores.
func mergeShardHits(metric ivf.Metric, k int, replies []*SearchReply) []Hit {
	byID := map[uint64]ShardHit{}
	lists := make([][]ivf.Hit, 0, len(replies))
	for _, r := range replies {
		l := make([]ivf.Hit, len(r.Hits))
		for i, h := range r.Hits {
			l[i] = ivf.Hit{ID: h.ID, Dist: h.Dist}
			byID[h.ID] = h
		}
		lists = append(lists, l)
	}
	merged := ivf.MergeTopK(k, lists...)
	out := make([]Hit, len(merged))
	for i, h := range merged {
		sh := byID[h.ID]
		out[i] = Hit{UserID: sh.UserID, Score: metric.Score(h.Dist), Meta: sh.Meta}
	}
	return out
}
