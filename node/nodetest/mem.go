// Package nodetest holds in-memory versions of node's Metadata and
// Storage, for tests of the node runtime that need neither Raft nor
// Pebble. They keep everything in maps and survive nothing.
package nodetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"lookalike/ivf"
	"lookalike/node"
)

// Meta is an in-memory node.Metadata: one node, always leader.
type Meta struct {
	mu      sync.Mutex
	colls   map[string]node.CollectionMeta
	blobs   map[string][]byte
	nextID  uint64
	created uint64 // the last Created given
	NodeID  string
	retired int // RetireBuffer calls
	// CommitErr, when set, is returned by CommitTraining after the commit
	// was applied (a proposal that timed out but committed).
	CommitErr error
}

// Retired is the number of successful RetireBuffer calls.
func (m *Meta) Retired() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.retired
}

// NewMeta returns an empty table.
func NewMeta() *Meta {
	return &Meta{colls: map[string]node.CollectionMeta{}, blobs: map[string][]byte{}, nextID: 1, NodeID: "test"}
}

// TableVersion is the last Created given: this table's versions count
// creates.
func (m *Meta) TableVersion() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.created
}

func (m *Meta) Collections() []node.CollectionMeta {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]node.CollectionMeta, 0, len(m.colls))
	for _, c := range m.colls {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (m *Meta) Collection(name string) (node.CollectionMeta, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.colls[name]
	return c, ok
}

func (m *Meta) CreateCollection(_ context.Context, c node.CollectionMeta) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.colls[c.Name]; ok {
		return node.ErrExists
	}
	c.Buffered = true
	m.created++
	c.Created = m.created
	m.colls[c.Name] = c
	return nil
}

func (m *Meta) DropCollection(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.colls[name]; !ok {
		return node.ErrNoCollection
	}
	delete(m.colls, name)
	delete(m.blobs, name)
	return nil
}

func (m *Meta) transition(name string, epoch uint64, from node.State, f func(*node.CollectionMeta)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.colls[name]
	if !ok {
		return node.ErrNoCollection
	}
	if c.Epoch != epoch {
		return node.ErrStaleEpoch
	}
	if c.State != from {
		return fmt.Errorf("%w: %v", node.ErrBadState, c.State)
	}
	f(&c)
	m.colls[name] = c
	return nil
}

func (m *Meta) BeginTraining(_ context.Context, name string, epoch uint64) error {
	return m.transition(name, epoch, node.Untrained, func(c *node.CollectionMeta) { c.State = node.Training })
}

func (m *Meta) AbortTraining(_ context.Context, name string, epoch uint64) error {
	return m.transition(name, epoch, node.Training, func(c *node.CollectionMeta) { c.State = node.Untrained })
}

func (m *Meta) CommitTraining(_ context.Context, name string, epoch uint64, nlist int, blob []byte, _ []int64) error {
	err := m.transition(name, epoch, node.Training, func(c *node.CollectionMeta) {
		c.State, c.Epoch, c.TrainedNList = node.Ready, epoch+1, nlist
		m.blobs[name] = bytes.Clone(blob)
	})
	if err == nil {
		m.mu.Lock()
		err = m.CommitErr
		m.mu.Unlock()
	}
	return err
}

// RetireBuffer counts the calls (Retired).
func (m *Meta) RetireBuffer(_ context.Context, name string, epoch uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c, ok := m.colls[name]
	if !ok {
		return node.ErrNoCollection
	}
	if c.Epoch != epoch || c.State != node.Ready {
		return node.ErrStaleEpoch
	}
	m.retired++
	c.Buffered = false
	m.colls[name] = c
	return nil
}

func (m *Meta) Centroids(name string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.blobs[name]
	if !ok {
		return nil, errors.New("nodetest: no centroids")
	}
	return b, nil
}

func (m *Meta) AllocateIDs(_ context.Context, n uint64) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.nextID
	m.nextID += n
	return f, nil
}

func (m *Meta) Cluster() node.ClusterInfo {
	return node.ClusterInfo{Leader: m.NodeID, RaftState: "leader", Nodes: []node.ClusterNode{{ID: m.NodeID, State: "alive", Voter: true}}}
}

// Store is an in-memory node.Storage.
type Store struct {
	mu      sync.Mutex
	items   map[string]map[uint64]node.Item
	dir     map[string]map[string]uint64
	index   map[string][]byte
	stale   map[string]bool
	applied map[string]uint64 // batches per collection
	savedAt map[string]uint64
	created map[string]uint64 // SetIncarnation
	entries map[string]map[string]node.Entry
	Applies int // batches applied
	// FailApply, when set, fails every Apply with it.
	FailApply error
	// BeforeApply, when set, is called at the start of every Apply,
	// without the store's lock (a test blocks writes with it).
	BeforeApply func()
	// BeforeGet, likewise, at the start of every Get (a test blocks
	// item reads with it).
	BeforeGet func()
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{items: map[string]map[uint64]node.Item{}, dir: map[string]map[string]uint64{}, index: map[string][]byte{}, stale: map[string]bool{},
		applied: map[string]uint64{}, savedAt: map[string]uint64{}, created: map[string]uint64{},
		entries: map[string]map[string]node.Entry{}}
}

func (s *Store) Apply(b *node.Batch) ([]node.Removed, error) {
	if s.BeforeApply != nil {
		s.BeforeApply()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailApply != nil {
		return nil, s.FailApply
	}
	if s.items[b.Collection] == nil {
		s.items[b.Collection] = map[uint64]node.Item{}
		s.dir[b.Collection] = map[string]uint64{}
	}
	items, dir := s.items[b.Collection], s.dir[b.Collection]
	var removed []node.Removed
	drop := func(u string) {
		if id, ok := dir[u]; ok {
			removed = append(removed, node.Removed{ID: id, List: items[id].List})
			delete(items, id)
			delete(dir, u)
		}
	}
	for _, it := range b.Puts {
		drop(it.UserID)
		it.Vector = append([]float32(nil), it.Vector...)
		it.Attachment = bytes.Clone(it.Attachment)
		items[it.ID] = it
		dir[it.UserID] = it.ID
	}
	for _, u := range b.Deletes {
		drop(u)
	}
	for _, id := range b.DeleteIDs {
		if it, ok := items[id]; ok {
			removed = append(removed, node.Removed{ID: id, List: it.List})
			delete(items, id)
			if dir[it.UserID] == id {
				delete(dir, it.UserID)
			}
		}
	}
	for _, mv := range b.Moves {
		if it, ok := items[mv.ID]; ok {
			removed = append(removed, node.Removed{ID: mv.ID, List: it.List})
			it.List = mv.List
			items[mv.ID] = it
		}
	}
	s.stale[b.Collection] = true
	s.applied[b.Collection]++
	s.Applies++
	return removed, nil
}

func (s *Store) Get(coll, userID string) (node.Item, error) {
	if s.BeforeGet != nil {
		s.BeforeGet()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.dir[coll][userID]
	if !ok {
		return node.Item{}, node.ErrNoItem
	}
	return s.items[coll][id], nil
}

func (s *Store) Item(coll string, id uint64) (node.Item, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[coll][id]
	if !ok {
		return node.Item{}, node.ErrNoItem
	}
	return it, nil
}

func (s *Store) Attachment(coll string, id uint64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	it, ok := s.items[coll][id]
	if !ok {
		return nil, node.ErrNoItem
	}
	return it.Attachment, nil
}

func (s *Store) Vectors(coll string, ids []uint64, dst []float32) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, id := range ids {
		it, ok := s.items[coll][id]
		if !ok {
			return fmt.Errorf("nodetest: no item %d", id)
		}
		copy(dst[i*len(it.Vector):], it.Vector)
	}
	return nil
}

func (s *Store) Scan(coll string, fn func(node.Item) error) error {
	s.mu.Lock()
	items := make([]node.Item, 0, len(s.items[coll]))
	for _, it := range s.items[coll] {
		items = append(items, it)
	}
	s.mu.Unlock()
	sort.Slice(items, func(i, j int) bool { return items[i].ID < items[j].ID })
	for _, it := range items {
		if err := fn(it); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) Drop(coll string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.items, coll)
	delete(s.dir, coll)
	delete(s.index, coll)
	delete(s.stale, coll)
	delete(s.applied, coll)
	delete(s.savedAt, coll)
	delete(s.created, coll)
	delete(s.entries, coll)
	return nil
}

// ApplyEntries implements node.Storage.
func (s *Store) ApplyEntries(coll string, puts []node.Entry, dels []node.EntryDelete) (int, int, func() error, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.FailApply != nil {
		return 0, 0, nil, s.FailApply
	}
	for _, e := range puts {
		if e.UserID == "" || e.ID == 0 || len(e.Value) == 0 {
			return 0, 0, nil, fmt.Errorf("%w: entry %+v", node.ErrInvalid, e)
		}
	}
	m := s.entries[coll]
	if m == nil {
		m = map[string]node.Entry{}
		s.entries[coll] = m
	}
	added, removed := 0, 0
	for _, e := range puts {
		if _, ok := m[e.UserID]; !ok {
			added++
		}
		e.Value = bytes.Clone(e.Value)
		m[e.UserID] = e
	}
	for _, d := range dels {
		if e, ok := m[d.UserID]; ok && (d.ID == 0 || d.ID == e.ID) {
			delete(m, d.UserID)
			removed++
		}
	}
	s.Applies++
	return added, removed, func() error { return nil }, nil
}

// Entry implements node.Storage.
func (s *Store) Entry(coll, userID string) (node.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.entries[coll][userID]
	if !ok {
		return node.Entry{}, fmt.Errorf("%w: %q", node.ErrNoItem, userID)
	}
	e.Value = bytes.Clone(e.Value)
	return e, nil
}

// OpenEntries implements node.Storage: the view is a copy.
func (s *Store) OpenEntries(coll string) (node.EntryView, error) {
	s.mu.Lock()
	out := make(entryView, 0, len(s.entries[coll]))
	for _, e := range s.entries[coll] {
		e.Value = bytes.Clone(e.Value)
		out = append(out, e)
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].UserID < out[j].UserID })
	return &out, nil
}

// entryView is the rest of a view's entries.
type entryView []node.Entry

func (v *entryView) Next(n int) ([]node.Entry, error) {
	k := min(max(n, 1), len(*v))
	part := (*v)[:k:k]
	*v = (*v)[k:]
	return part, nil
}

func (*entryView) Close() {}

func (s *Store) Incarnation(coll string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created[coll], nil
}

func (s *Store) Incarnations() (map[string]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]uint64, len(s.created))
	for name, v := range s.created {
		if v != 0 {
			out[name] = v
		}
	}
	return out, nil
}

func (s *Store) SetIncarnation(coll string, created uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.created[coll] = created
	return nil
}

func (s *Store) SaveIndex(coll string, ix *ivf.Index) error {
	cp, _ := s.Checkpoint(coll)
	return s.SaveIndexAt(coll, ix, cp)
}

// Checkpoint is the number of batches applied to coll.
func (s *Store) Checkpoint(coll string) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied[coll], nil
}

// SaveIndexAt keeps ix's file; LoadIndex uses it only if no batch was
// applied after cp.
func (s *Store) SaveIndexAt(coll string, ix *ivf.Index, cp uint64) error {
	var b bytes.Buffer
	if _, err := ix.WriteTo(&b); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cp < s.savedAt[coll] {
		return nil
	}
	s.index[coll] = b.Bytes()
	s.savedAt[coll] = cp
	s.stale[coll] = s.applied[coll] != cp
	return nil
}

func (s *Store) LoadIndex(coll string, opts ivf.Options) (*ivf.Index, error) {
	s.mu.Lock()
	b, ok := s.index[coll]
	stale := s.stale[coll]
	s.mu.Unlock()
	if !ok || stale {
		return nil, nil
	}
	return ivf.Load(bytes.NewReader(b), opts)
}

func (s *Store) Close() error { return nil }
