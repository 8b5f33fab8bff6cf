package node

import (
	"context"

	"lookalike/ivf"
)

// State is a collection's lifecycle state (decision 5).
type State uint8

// Collection states; the numbers match coordinator/meta's.
const (
	Untrained State = 1 // vectors in the flat buffer, scanned exactly
	Training  State = 2 // k-means running or buffered vectors moving to lists
	Ready     State = 3 // centroids committed, vectors in their lists
)

func (s State) String() string {
	switch s {
	case Untrained:
		return "untrained"
	case Training:
		return "training"
	case Ready:
		return "ready"
	}
	return "unknown"
}

// CollectionMeta is the coordinator's record of a collection, as the node
// reads it.
type CollectionMeta struct {
	Name     string
	Dim      int
	Metric   ivf.Metric
	NList    int // requested; 0 = auto, chosen at training time
	Replicas int
	Model    string
	// ModelHash is the identity of Model's weights, recorded at creation
	// (embed.Embedder.ModelHash); "" for a vector collection.
	ModelHash string

	State        State
	Epoch        uint64 // bumped by each training commit
	TrainedNList int
	// Buffered: the table still routes to the flat buffer shards (until
	// RetireBuffer after the move).
	Buffered bool
	// IDDirectory (CreateCollection): create the collection with its id
	// directory (a cluster's collections; docs/node.md, "The id
	// directory").
	IDDirectory bool
	// Created tells this collection from an earlier one of the same name
	// (meta.Collection.Created): larger for a later one; 0 for a
	// collection created before it was recorded.
	Created uint64
}

// ClusterInfo is the coordinator's view of the cluster.
type ClusterInfo struct {
	Leader    string
	RaftState string // leader, follower, candidate, shutdown
	Nodes     []ClusterNode
}

// ClusterNode is one member.
type ClusterNode struct {
	ID, RaftAddr, HTTPAddr, State string
	Voter                         bool
	// GossipAddr is its memberlist address ("" on one node); Raft its
	// place in the Raft configuration: "voter", "nonvoter" or "" (not in
	// it yet).
	GossipAddr, Raft string
}

// Metadata is what a node needs of the coordinator (the Raft FSM of the
// cluster metadata). Writes are proposals: they return once committed and
// applied, with the domain error of the command if it failed. Reads see
// the latest applied table.
type Metadata interface {
	// TableVersion is the version of the table that reads see, or an
	// earlier one: a collection created at or before it (Created ≤ the
	// version) that a read after it does not show has been dropped.
	TableVersion() uint64
	Collections() []CollectionMeta
	Collection(name string) (CollectionMeta, bool)
	CreateCollection(ctx context.Context, c CollectionMeta) error
	DropCollection(ctx context.Context, name string) error
	// BeginTraining moves an untrained collection at epoch to Training.
	BeginTraining(ctx context.Context, name string, epoch uint64) error
	// AbortTraining moves a Training collection back to Untrained.
	AbortTraining(ctx context.Context, name string, epoch uint64) error
	// CommitTraining stores the centroids (an ivf file of the trained,
	// empty index: centroids and SQ8 parameters) and makes the collection
	// Ready at epoch+1 with nlist lists. sizes, when set, estimates the
	// vectors each list will hold (a cluster balances its shards by them).
	CommitTraining(ctx context.Context, name string, epoch uint64, nlist int, centroids []byte, sizes []int64) error
	// RetireBuffer records that the buffered vectors of a Ready
	// collection at epoch have all moved to their lists, so routing stops
	// calling the flat buffer shards.
	RetireBuffer(ctx context.Context, name string, epoch uint64) error
	// Centroids returns the blob committed by CommitTraining.
	Centroids(name string) ([]byte, error)
	// AllocateIDs reserves n internal ids, unique in the cluster, and
	// returns the first; they are first..first+n-1.
	AllocateIDs(ctx context.Context, n uint64) (uint64, error)
	Cluster() ClusterInfo
}

// BufferList is the list number of an item in an untrained collection's
// flat buffer.
const BufferList int32 = -1

// Item is a stored item.
type Item struct {
	ID     uint64 // internal id
	UserID string
	List   int32 // ivf list, or BufferList
	Vector []float32
	Meta   []byte // JSON object or nil
	// Attachment is an opaque per-item blob stored with the item (an
	// image item's ImageRecord), or nil. Apply writes it with the item;
	// reads return it only where they say so.
	Attachment []byte
}

// Batch is one atomic write to a collection. Puts upsert by user id: a
// user id that holds an item now loses it (the store removes the old copy,
// wherever it is). Deletes name user ids.
type Batch struct {
	Collection string
	Dim        int
	Puts       []Item
	Deletes    []string
	// DeleteIDs delete items by internal id (an absent id is skipped): a
	// cluster node dropping the copies of a shard it no longer holds,
	// whatever their user ids name now.
	DeleteIDs []uint64
	// Moves re-list stored items by internal id, keeping everything else
	// (training's move step); an absent id is skipped.
	Moves []Move
}

// Move re-lists the stored item ID into List.
type Move struct {
	ID   uint64
	List int32
}

// Removed is a copy that Apply removed: the old copy of an upserted user
// id, or a deleted item. The node drops it from memory.
type Removed struct {
	ID   uint64
	List int32
}

// Entry is a record of an id directory partition (directory.go): the
// user id's entry, a few bytes, with the internal id it was written
// under. Partitions keep entries, not items: no vector, list, index or
// write log (store record 0x0b, docs/format/keys.md).
type Entry struct {
	UserID string
	ID     uint64
	Value  []byte // non-empty
}

// EntryDelete deletes a user id's entry; with ID set, only while the
// stored entry has that internal id.
type EntryDelete struct {
	UserID string
	ID     uint64
}

// EntryView is a view of a partition's entries as of its opening
// (Storage.OpenEntries). A copy opens one under the partition's lock and
// reads it part by part after releasing it, sending each part before it
// reads the next. Not safe for concurrent use.
type EntryView interface {
	// Next returns the next entries in user-id order, at most n (at
	// least 1); none once all were returned.
	Next(n int) ([]Entry, error)
	Close()
}

// eachEntry calls fn for every entry of coll, from one view.
func eachEntry(st Storage, coll string, fn func(Entry) error) error {
	return eachEntryPart(st, coll, func(part []Entry) error {
		for _, e := range part {
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// eachEntryPart calls fn for the entries of coll 4,096 at a time, from
// one view.
func eachEntryPart(st Storage, coll string, fn func([]Entry) error) error {
	v, err := st.OpenEntries(coll)
	if err != nil {
		return err
	}
	defer v.Close()
	for {
		part, err := v.Next(4096)
		if err != nil || len(part) == 0 {
			return err
		}
		if err := fn(part); err != nil {
			return err
		}
	}
}

// AsyncStorage is a Storage that can split Apply at the point where a
// batch's order is fixed: ApplyAsync returns the removed copies once the
// batch is ordered and visible, and wait blocks until it is durable (the
// acknowledgement). Writers apply their in-memory changes in commit order
// under their lock and wait for the disk after releasing it, so that
// concurrent batches share one sync. wait must be called exactly once.
type AsyncStorage interface {
	Storage
	ApplyAsync(b *Batch) (removed []Removed, wait func() error, err error)
}

// Storage is the node's durable layer (Pebble). Apply commits a whole
// batch in one synced write: when it returns nil the batch survives a
// crash, and no crash leaves part of it visible. It must be safe for
// concurrent use.
type Storage interface {
	// Apply commits b and returns the copies it removed.
	Apply(b *Batch) ([]Removed, error)
	// Get returns the live item of a user id, or an error wrapping
	// ErrNoItem.
	Get(coll, userID string) (Item, error)
	// Item returns the user id and metadata of the live item with that
	// internal id (other fields may be left zero), or an error wrapping
	// ErrNoItem.
	Item(coll string, id uint64) (Item, error)
	// Attachment returns the attachment of the item with that internal
	// id: nil when it has none, an error wrapping ErrNoItem when the item
	// is absent.
	Attachment(coll string, id uint64) ([]byte, error)
	// Vectors writes the floats of ids, in order, into dst.
	Vectors(coll string, ids []uint64, dst []float32) error
	// Scan calls fn for every live item of coll.
	Scan(coll string, fn func(Item) error) error
	// Drop deletes everything of coll.
	Drop(coll string) error
	// Incarnation is the Created of the collection whose data the store
	// holds under the name coll (SetIncarnation), 0 when none was set.
	Incarnation(coll string) (uint64, error)
	// SetIncarnation records it, durably; Drop forgets it.
	SetIncarnation(coll string, created uint64) error
	// Incarnations returns the recorded incarnation of every collection
	// name the store holds data of, leaving out those with none.
	Incarnations() (map[string]uint64, error)
	// SaveIndex persists ix as coll's index. The caller guarantees that ix
	// holds every batch applied to coll when SaveIndex is called.
	SaveIndex(coll string, ix *ivf.Index) error
	// Checkpoint names the batches applied to coll so far, for a save
	// that runs later: SaveIndexAt(coll, ix, cp) persists ix as covering
	// them (ix must hold them; it may hold later ones too). A save older
	// than one already done is skipped.
	Checkpoint(coll string) (uint64, error)
	SaveIndexAt(coll string, ix *ivf.Index, cp uint64) error
	// LoadIndex returns the last saved index brought up to date with the
	// batches applied after it was saved, or (nil, nil) when there is none.
	LoadIndex(coll string, opts ivf.Options) (*ivf.Index, error)
	// ApplyEntries puts and deletes entries of coll (an id directory
	// partition, which holds entries and never items) in one synced
	// write, puts first. Like AsyncStorage.ApplyAsync it returns once the
	// write is ordered and visible, and wait blocks until it is durable;
	// wait must be called exactly once. added and removed count the user
	// ids that gained or lost their entry.
	ApplyEntries(coll string, puts []Entry, dels []EntryDelete) (added, removed int, wait func() error, err error)
	// Entry returns a user id's entry, or an error wrapping ErrNoItem.
	Entry(coll, userID string) (Entry, error)
	// OpenEntries opens a view of coll's entries fixed as of the call:
	// entries written later are not in it.
	OpenEntries(coll string) (EntryView, error)
	Close() error
}
