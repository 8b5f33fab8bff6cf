package meta

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"lookalike/ivf"
)

// State is a collection's lifecycle state. The numbers are part of the
// command and snapshot encodings: append only.
type State uint8

// Collection states.
const (
	Untrained State = 1 // vectors live in flat buffer shards, hashed by id, scanned in full
	Training  State = 2 // the leader is training; queries still use the previous layout
	Ready     State = 3 // centroids committed; vectors live in their lists' shards
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
	return fmt.Sprintf("state(%d)", uint8(s))
}

// NodeState is a node's membership state. Append only.
type NodeState uint8

// Node states.
const (
	NodeUp   NodeState = 1 // serving; may hold replicas
	NodeDown NodeState = 2 // unreachable; keeps its replicas until the coordinator moves them
	NodeLeft NodeState = 3 // left the cluster for good
)

func (s NodeState) String() string {
	switch s {
	case NodeUp:
		return "up"
	case NodeDown:
		return "down"
	case NodeLeft:
		return "left"
	}
	return fmt.Sprintf("nodestate(%d)", uint8(s))
}

// Hash is a SHA-256 content hash. It encodes as 64 lower-case hex digits in
// JSON.
type Hash [32]byte

// HashOf returns the SHA-256 of data.
func HashOf(data []byte) Hash { return sha256.Sum256(data) }

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// IsZero reports whether h is the zero hash (no blob).
func (h Hash) IsZero() bool { return h == Hash{} }

// MarshalText implements encoding.TextMarshaler.
func (h Hash) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: exactly 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("%w: hash has %d hex digits, want 64", ErrCorruptCommand, len(b))
	}
	if _, err := hex.Decode(h[:], b); err != nil {
		return fmt.Errorf("%w: hash: %v", ErrCorruptCommand, err)
	}
	return nil
}

// BlobRef names a complete content-addressed blob.
type BlobRef struct {
	Hash Hash   `json:"hash"`
	Size uint64 `json:"size"`
}

// IsZero reports whether r refers to no blob.
func (r BlobRef) IsZero() bool { return r.Hash.IsZero() && r.Size == 0 }

// Shard is a group of lists (or, for an untrained collection, a hash bucket
// of ids) and its replica set. Replicas[0] need not be the primary; Primary
// is always one of Replicas.
type Shard struct {
	ID       uint32   `json:"id"`
	Replicas []string `json:"replicas"`
	Primary  string   `json:"primary"`
	Epoch    uint64   `json:"epoch"` // the collection epoch at which this shard last changed
	// Joining are nodes being copied to: they get the primary's writes
	// but serve no reads and count for no acknowledgement until the copy
	// ends and SetReplicas makes them replicas.
	Joining []string `json:"joining,omitempty"`
	// Away are nodes taken out of the in-sync set (dead, drained at
	// shutdown, or a failed backup) since the shard last had all its
	// replicas: their copy is behind but may be caught up, which costs
	// less than a copy to another node. SetReplicas maintains it: a
	// removed replica is added, a replica is not away, and a shard with
	// its full count of replicas has none.
	Away []string `json:"away,omitempty"`
	// Added is the table version at which a node last joined the shard's
	// holders (its replicas and joining nodes; SetReplicas), 0 if none
	// has since tables recorded it (2026-11-27). A delete is sent by its
	// gateway to every holder; one routed by an older table missed that
	// node, so a holder refuses it (node/dist.go, deleteLocal).
	Added uint64 `json:"added,omitempty"`
}

func (s Shard) clone() Shard {
	s.Replicas = slices.Clone(s.Replicas)
	s.Joining = slices.Clone(s.Joining)
	s.Away = slices.Clone(s.Away)
	return s
}

// ShardMap places the lists of a trained collection: ListShard[list] is the
// shard holding that list, Shards[id] the shard with that id.
type ShardMap struct {
	ListShard []uint32 `json:"list_shard"`
	Shards    []Shard  `json:"shards"`
}

func (m ShardMap) clone() ShardMap {
	out := ShardMap{ListShard: slices.Clone(m.ListShard), Shards: make([]Shard, len(m.Shards))}
	for i, s := range m.Shards {
		out.Shards[i] = s.clone()
	}
	return out
}

// Lists returns the lists of shard s, ascending.
func (m ShardMap) Lists(s uint32) []uint32 {
	var out []uint32
	for l, sh := range m.ListShard {
		if sh == s {
			out = append(out, uint32(l))
		}
	}
	return out
}

// Collection is one collection's metadata. Read-only once in a Table.
type Collection struct {
	Name     string     `json:"name"`
	Dim      int        `json:"dim"`
	Metric   ivf.Metric `json:"metric"`
	NList    int        `json:"nlist"` // requested; 0 = auto, chosen at training time (AutoNList)
	Replicas int        `json:"replicas"`
	Model    string     `json:"model,omitempty"`
	// ModelHash identifies Model's weights (hex SHA-256 of the ONNX file);
	// "" for a vector collection.
	ModelHash string `json:"model_hash,omitempty"`

	State State  `json:"state"`
	Epoch uint64 `json:"epoch"` // bumped whenever routing changes (training commit, resharding)

	TrainedNList int      `json:"trained_nlist,omitempty"`
	Centroids    BlobRef  `json:"centroids"` // centroids + SQ8 parameters, in the ivf format; zero until trained
	Shards       ShardMap `json:"shards"`    // lists → shards; empty until trained

	// Buffer holds the flat buffer shards of an untrained collection (items
	// hashed by id, BufferShard). It stays after the training commit until
	// the nodes have moved the buffered vectors (RetireBuffer).
	Buffer []Shard `json:"buffer,omitempty"`

	// IDPartitions is the number of partitions of the collection's id
	// directory (decision 10): the collections DirName(Name, 0…), each
	// untrained, of one buffer shard, holding the entries of the user ids
	// that BufferShard(id, IDPartitions) sends there. 0: none (created
	// without one).
	IDPartitions int `json:"id_partitions,omitempty"`

	// Created is the table version the collection's CreateCollection
	// produced: unique among the collections ever created, and larger for
	// a later one, so that a node can tell its store's data of an earlier
	// collection of the same name (dropped while the node was away) from
	// this one's. 0 for a collection created before it was recorded.
	Created uint64 `json:"created,omitempty"`
}

func (c *Collection) clone() *Collection {
	n := *c
	n.Shards = c.Shards.clone()
	n.Buffer = make([]Shard, len(c.Buffer))
	for i, s := range c.Buffer {
		n.Buffer[i] = s.clone()
	}
	if c.Buffer == nil {
		n.Buffer = nil
	}
	return &n
}

// Node is a member of the cluster. Read-only once in a Table.
type Node struct {
	ID       string    `json:"id"`
	RaftAddr string    `json:"raft_addr"`
	HTTPAddr string    `json:"http_addr"`
	State    NodeState `json:"state"`
}

// Blob is a content-addressed blob, complete or being uploaded in chunks.
// Read-only once in a Table: chunk slices are shared between tables.
type Blob struct {
	Hash   Hash
	Size   uint64
	Chunks uint32
	data   [][]byte // data[i] == nil: chunk i not received yet
	have   uint32
}

// Complete reports whether every chunk arrived (and the hash was verified).
func (b *Blob) Complete() bool { return b.have == b.Chunks }

// Received returns the number of chunks received.
func (b *Blob) Received() uint32 { return b.have }

// Ref returns the blob's reference.
func (b *Blob) Ref() BlobRef { return BlobRef{Hash: b.Hash, Size: b.Size} }

// Bytes returns the content of a complete blob as one new slice, or nil.
func (b *Blob) Bytes() []byte {
	if !b.Complete() {
		return nil
	}
	out := make([]byte, 0, b.Size)
	for _, c := range b.data {
		out = append(out, c...)
	}
	return out
}

// Chunk returns chunk i (shared; do not modify), or nil if it is missing.
func (b *Blob) Chunk(i uint32) []byte {
	if i >= b.Chunks {
		return nil
	}
	return b.data[i]
}

// Table is the replicated cluster metadata. It is immutable: Apply returns a
// new Table. The zero value is not usable; start from New.
type Table struct {
	version uint64 // number of successful transitions
	nextID  uint64 // next internal id to hand out; 0 is never handed out
	nodes   map[string]*Node
	colls   map[string]*Collection
	blobs   map[Hash]*Blob
}

// New returns the empty table.
func New() *Table {
	return &Table{nextID: 1, nodes: map[string]*Node{}, colls: map[string]*Collection{}, blobs: map[Hash]*Blob{}}
}

// Version is the number of successful transitions applied so far: it
// changes whenever anything in the table changes.
func (t *Table) Version() uint64 { return t.version }

// NextID is the first internal id that AllocateIDs has not handed out.
func (t *Table) NextID() uint64 { return t.nextID }

// Collection returns the named collection.
func (t *Table) Collection(name string) (*Collection, bool) {
	c, ok := t.colls[name]
	return c, ok
}

// Collections returns the collections sorted by name.
func (t *Table) Collections() []*Collection {
	return sortedValues(t.colls, func(c *Collection) string { return c.Name })
}

// Node returns the node with that id.
func (t *Table) Node(id string) (*Node, bool) {
	n, ok := t.nodes[id]
	return n, ok
}

// Nodes returns the nodes sorted by id.
func (t *Table) Nodes() []*Node { return sortedValues(t.nodes, func(n *Node) string { return n.ID }) }

// Blob returns the blob with that hash, complete or not.
func (t *Table) Blob(h Hash) (*Blob, bool) {
	b, ok := t.blobs[h]
	return b, ok
}

// Blobs returns the blobs sorted by hash.
func (t *Table) Blobs() []*Blob {
	return sortedValues(t.blobs, func(b *Blob) string { return string(b.Hash[:]) })
}

func sortedValues[K comparable, V any](m map[K]V, key func(V) string) []V {
	out := make([]V, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b V) int { return strings.Compare(key(a), key(b)) })
	return out
}

// clone returns a shallow copy whose maps may be modified; the values they
// hold are shared and must be replaced, never modified.
func (t *Table) clone() *Table {
	n := *t
	n.nodes = cloneMap(t.nodes)
	n.colls = cloneMap(t.colls)
	n.blobs = cloneMap(t.blobs)
	return &n
}

func cloneMap[K comparable, V any](m map[K]V) map[K]V {
	out := make(map[K]V, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// LiveNodes returns the ids of nodes in state NodeUp, sorted: the nodes
// that CreateCollection places buffer shards on, and what a shard map
// built for CommitTraining (PlaceShards) should use.
func (t *Table) LiveNodes() []string {
	var ids []string
	for _, n := range t.Nodes() {
		if n.State == NodeUp {
			ids = append(ids, n.ID)
		}
	}
	return ids
}
