package meta

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"

	"lookalike/ivf"
)

// CommandType is the first byte of a Raft log entry. The numbers are part of
// the log format: append only, never reuse or renumber one.
type CommandType uint8

// Command types.
const (
	TypeRegisterNode     CommandType = 1
	TypeCreateCollection CommandType = 2
	TypeDropCollection   CommandType = 3
	TypeAllocateIDs      CommandType = 4
	TypePutBlobChunk     CommandType = 5
	TypeBeginTraining    CommandType = 6
	TypeCommitTraining   CommandType = 7
	TypeAbortTraining    CommandType = 8
	TypeSetShardMap      CommandType = 9
	TypeMoveLists        CommandType = 10
	TypeGCBlobs          CommandType = 11
	TypeRetireBuffer     CommandType = 12
	TypeSetReplicas      CommandType = 13
)

// bodyVersion is the second byte of every entry: the version of the body
// encoding of that command type. Version 1: JSON, except PutBlobChunk
// (binary). See docs/format/raft.md.
const bodyVersion = 1

// createVersionModelHash is CreateCollection's body version 2: version 1
// plus "model_hash". Encode writes it only for a collection that records
// a model hash, so every other entry stays readable by version-1 code;
// Decode reads both (a version-1 body may not carry model_hash).
const createVersionModelHash = 2

// createVersionDirectory is CreateCollection's body version 3: version 2
// with "id_directory" (true) and model_hash optional. Encode writes it
// only for a collection created with its id directory.
const createVersionDirectory = 3

// MaxChunkSize is the largest PutBlobChunk payload: 512 KiB. Every chunk of
// a blob but the last has exactly this size.
const MaxChunkSize = 512 << 10

// MaxAllocate is the largest range one AllocateIDs hands out.
const MaxAllocate = 1 << 24

// Command is a typed change to the Table.
type Command interface {
	Type() CommandType
}

// RegisterNode adds a node or updates its addresses and state.
type RegisterNode struct {
	ID       string    `json:"id"`
	RaftAddr string    `json:"raft_addr"`
	HTTPAddr string    `json:"http_addr"`
	State    NodeState `json:"state"` // 0 means NodeUp
}

// CreateCollection creates an untrained collection with its flat buffer
// shards placed on the live nodes.
type CreateCollection struct {
	Name     string     `json:"name"`
	Dim      int        `json:"dim"`
	Metric   ivf.Metric `json:"metric"`
	NList    int        `json:"nlist"`    // 0 = auto
	Replicas int        `json:"replicas"` // 0 = 1
	Model    string     `json:"model,omitempty"`
	Shards   int        `json:"shards"` // flat buffer shards; 0 = one per live node
	// ModelHash is the identity of Model (the hex SHA-256 of its ONNX
	// file): nodes refuse to embed for the collection with another.
	// Body version 2 or 3.
	ModelHash string `json:"model_hash,omitempty"`
	// IDDirectory also creates the collection's id directory (decision
	// 10): one partition per live node, each the untrained collection
	// DirName(Name, p) of one buffer shard with the same replica count,
	// placed round-robin, whose items are directory entries (a user id's
	// partition is BufferShard(id, partitions)). Body version 3 only.
	IDDirectory bool `json:"id_directory,omitempty"`
}

// DropCollection removes a collection. Its centroid blob becomes garbage
// for GCBlobs.
type DropCollection struct {
	Name string `json:"name"`
}

// AllocateIDs hands out N consecutive internal ids, unique in the cluster
// (decision 10). Collection, when set, must exist; the range is global.
// Result: IDRange.
type AllocateIDs struct {
	Collection string `json:"collection,omitempty"`
	N          uint64 `json:"n"`
}

// PutBlobChunk stores chunk Index of the blob with hash Hash, size Size and
// Chunks chunks. Result: BlobStatus.
type PutBlobChunk struct {
	Hash   Hash
	Size   uint64
	Chunks uint32
	Index  uint32
	Data   []byte
}

// BeginTraining marks a collection as training. Epoch must be its current
// epoch.
type BeginTraining struct {
	Collection string `json:"collection"`
	Epoch      uint64 `json:"epoch"`
}

// CommitTraining installs trained centroids (a complete blob) and the shard
// map of NList lists, and bumps the collection's epoch. Result: the new
// epoch (uint64).
type CommitTraining struct {
	Collection string   `json:"collection"`
	Epoch      uint64   `json:"epoch"`
	Centroids  BlobRef  `json:"centroids"`
	NList      int      `json:"nlist"`
	Shards     ShardMap `json:"shards"` // shard epochs are ignored: set to the new epoch
}

// AbortTraining returns a training collection to its previous state.
type AbortTraining struct {
	Collection string `json:"collection"`
	Epoch      uint64 `json:"epoch"`
}

// SetShardMap replaces a trained collection's shard map (resharding,
// replica changes). Shards that differ get the new epoch. Result: the new
// collection epoch (uint64).
type SetShardMap struct {
	Collection string   `json:"collection"`
	Epoch      uint64   `json:"epoch"`
	Shards     ShardMap `json:"shards"`
}

// MoveLists reassigns Lists to shard To. Result: the new collection epoch
// (uint64).
type MoveLists struct {
	Collection string   `json:"collection"`
	Epoch      uint64   `json:"epoch"`
	Lists      []uint32 `json:"lists"`
	To         uint32   `json:"to"`
}

// GCBlobs removes every blob that no collection references, except those
// in Keep (uploads in progress). Result: the number removed (int).
type GCBlobs struct {
	Keep []Hash `json:"keep,omitempty"`
}

// RetireBuffer removes the flat buffer shards of a trained collection once
// the nodes have moved the buffered vectors to their lists.
type RetireBuffer struct {
	Collection string `json:"collection"`
	Epoch      uint64 `json:"epoch"`
}

// SetReplicas changes one shard's in-sync replica set and primary without
// moving lists, so the collection epoch stays: a failed replica leaves the
// set (the leader when gossip declares its node dead, or the primary
// before it acknowledges a write its backup did not take), a failed
// primary is replaced by an in-sync backup. Buffer selects a flat buffer
// shard instead of a list shard. Result: nil.
type SetReplicas struct {
	Collection string   `json:"collection"`
	Buffer     bool     `json:"buffer,omitempty"`
	Shard      uint32   `json:"shard"`
	Replicas   []string `json:"replicas"`
	Primary    string   `json:"primary"`
	// Joining replaces the shard's joining nodes (being copied to).
	Joining []string `json:"joining,omitempty"`
	// From and FromJoining are the replica and joining sets the proposer
	// saw: the command fails with ErrStaleShard when the shard has
	// changed since, so two proposers racing on one shard cannot undo
	// each other.
	From        []string `json:"from"`
	FromJoining []string `json:"from_joining,omitempty"`
}

// IDRange is the half-open range [First, First+N) of internal ids.
type IDRange struct {
	First uint64 `json:"first"`
	N     uint64 `json:"n"`
}

// BlobStatus is the result of PutBlobChunk.
type BlobStatus struct {
	Received uint32 `json:"received"`
	Complete bool   `json:"complete"`
}

func (RegisterNode) Type() CommandType     { return TypeRegisterNode }
func (CreateCollection) Type() CommandType { return TypeCreateCollection }
func (DropCollection) Type() CommandType   { return TypeDropCollection }
func (AllocateIDs) Type() CommandType      { return TypeAllocateIDs }
func (PutBlobChunk) Type() CommandType     { return TypePutBlobChunk }
func (BeginTraining) Type() CommandType    { return TypeBeginTraining }
func (CommitTraining) Type() CommandType   { return TypeCommitTraining }
func (AbortTraining) Type() CommandType    { return TypeAbortTraining }
func (SetShardMap) Type() CommandType      { return TypeSetShardMap }
func (MoveLists) Type() CommandType        { return TypeMoveLists }
func (GCBlobs) Type() CommandType          { return TypeGCBlobs }
func (RetireBuffer) Type() CommandType     { return TypeRetireBuffer }
func (SetReplicas) Type() CommandType      { return TypeSetReplicas }

// newCommand returns a pointer to a zero command of type t, or nil.
func newCommand(t CommandType) Command {
	switch t {
	case TypeRegisterNode:
		return &RegisterNode{}
	case TypeCreateCollection:
		return &CreateCollection{}
	case TypeDropCollection:
		return &DropCollection{}
	case TypeAllocateIDs:
		return &AllocateIDs{}
	case TypePutBlobChunk:
		return &PutBlobChunk{}
	case TypeBeginTraining:
		return &BeginTraining{}
	case TypeCommitTraining:
		return &CommitTraining{}
	case TypeAbortTraining:
		return &AbortTraining{}
	case TypeSetShardMap:
		return &SetShardMap{}
	case TypeMoveLists:
		return &MoveLists{}
	case TypeGCBlobs:
		return &GCBlobs{}
	case TypeRetireBuffer:
		return &RetireBuffer{}
	case TypeSetReplicas:
		return &SetReplicas{}
	}
	return nil
}

// chunkHeader is Hash(32) Size(8) Chunks(4) Index(4), little endian.
const chunkHeader = 32 + 8 + 4 + 4

// Encode returns the log entry of c: type byte, body version byte, body.
// The encoding is deterministic. c may be a command value or a pointer to
// one.
func Encode(c Command) []byte {
	c = deref(c)
	if pc, ok := c.(PutBlobChunk); ok {
		b := make([]byte, 2+chunkHeader, 2+chunkHeader+len(pc.Data))
		b[0], b[1] = byte(TypePutBlobChunk), bodyVersion
		copy(b[2:], pc.Hash[:])
		binary.LittleEndian.PutUint64(b[34:], pc.Size)
		binary.LittleEndian.PutUint32(b[42:], pc.Chunks)
		binary.LittleEndian.PutUint32(b[46:], pc.Index)
		return append(b, pc.Data...)
	}
	body, err := json.Marshal(c)
	if err != nil {
		// Command types hold only strings, numbers, slices and Hash: they
		// always marshal.
		panic(fmt.Sprintf("meta: encode %T: %v", c, err))
	}
	version := byte(bodyVersion)
	if cc, ok := c.(CreateCollection); ok && cc.IDDirectory {
		version = createVersionDirectory
	} else if ok && cc.ModelHash != "" {
		version = createVersionModelHash
	}
	return append([]byte{byte(c.Type()), version}, body...)
}

// deref turns a pointer to a command into the command value.
func deref(c Command) Command {
	switch p := c.(type) {
	case *RegisterNode:
		return *p
	case *CreateCollection:
		return *p
	case *DropCollection:
		return *p
	case *AllocateIDs:
		return *p
	case *PutBlobChunk:
		return *p
	case *BeginTraining:
		return *p
	case *CommitTraining:
		return *p
	case *AbortTraining:
		return *p
	case *SetShardMap:
		return *p
	case *MoveLists:
		return *p
	case *GCBlobs:
		return *p
	case *RetireBuffer:
		return *p
	case *SetReplicas:
		return *p
	}
	return c
}

// Decode parses a log entry written by Encode. It returns a command value
// (not a pointer). Unknown types, versions, fields and trailing bytes are
// errors: a replica must never apply a command it does not fully understand.
func Decode(b []byte) (Command, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorruptCommand, len(b))
	}
	t := CommandType(b[0])
	c := newCommand(t)
	if c == nil {
		return nil, fmt.Errorf("%w: %d", ErrUnknownCommand, t)
	}
	if b[1] != bodyVersion && !(t == TypeCreateCollection && (b[1] == createVersionModelHash || b[1] == createVersionDirectory)) {
		return nil, fmt.Errorf("%w: type %d body version %d", ErrCorruptCommand, t, b[1])
	}
	body := b[2:]
	if t == TypePutBlobChunk {
		if len(body) < chunkHeader {
			return nil, fmt.Errorf("%w: chunk header of %d bytes", ErrCorruptCommand, len(body))
		}
		var pc PutBlobChunk
		copy(pc.Hash[:], body)
		pc.Size = binary.LittleEndian.Uint64(body[32:])
		pc.Chunks = binary.LittleEndian.Uint32(body[40:])
		pc.Index = binary.LittleEndian.Uint32(body[44:])
		pc.Data = bytes.Clone(body[chunkHeader:]) // the caller may reuse b
		return pc, nil
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%w: type %d: %v", ErrCorruptCommand, t, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: type %d: trailing data", ErrCorruptCommand, t)
	}
	if cc, ok := c.(*CreateCollection); ok {
		bad := false
		switch b[1] {
		case bodyVersion:
			bad = cc.ModelHash != "" || cc.IDDirectory
		case createVersionModelHash:
			bad = cc.ModelHash == "" || cc.IDDirectory
		case createVersionDirectory:
			bad = !cc.IDDirectory
		}
		if bad {
			return nil, fmt.Errorf("%w: type %d body version %d with model_hash %q, id_directory %t", ErrCorruptCommand, t, b[1], cc.ModelHash, cc.IDDirectory)
		}
	}
	return deref(c), nil
}
