package meta

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"lookalike/ivf"
)

// Limits checked by Apply.
const (
	MaxNameLen = 128     // collection name bytes
	MaxDim     = 1 << 16 // vector dimension
	MaxNList   = 1 << 20 // lists per collection
	MaxShards  = 1 << 12 // shards per collection
)

type applyFunc func(t *Table, c Command) (*Table, any, error)

// appliers is the dispatch table of Apply, indexed by CommandType.
var appliers = map[CommandType]applyFunc{
	TypeRegisterNode:     applyRegisterNode,
	TypeCreateCollection: applyCreateCollection,
	TypeDropCollection:   applyDropCollection,
	TypeAllocateIDs:      applyAllocateIDs,
	TypePutBlobChunk:     applyPutBlobChunk,
	TypeBeginTraining:    applyBeginTraining,
	TypeCommitTraining:   applyCommitTraining,
	TypeAbortTraining:    applyAbortTraining,
	TypeSetShardMap:      applySetShardMap,
	TypeMoveLists:        applyMoveLists,
	TypeGCBlobs:          applyGCBlobs,
	TypeRetireBuffer:     applyRetireBuffer,
	TypeSetReplicas:      applySetReplicas,
}

// Apply returns the table after c and the command's result (nil, IDRange,
// BlobStatus, uint64 epoch or int, as each command documents). On a domain
// error it returns t itself, unchanged, and the error. Apply is
// deterministic and never modifies t.
func (t *Table) Apply(c Command) (*Table, any, error) {
	c = deref(c)
	f := appliers[c.Type()]
	if f == nil {
		return t, nil, fmt.Errorf("%w: %d", ErrUnknownCommand, c.Type())
	}
	n, res, err := f(t, c)
	if err != nil {
		return t, nil, err
	}
	if n != t { // a no-op (a retried chunk) returns t itself
		n.version = t.version + 1
	}
	return n, res, nil
}

func applyRegisterNode(t *Table, c Command) (*Table, any, error) {
	r := c.(RegisterNode)
	if r.ID == "" || len(r.ID) > MaxNameLen || r.RaftAddr == "" {
		return nil, nil, fmt.Errorf("%w: id %q raft address %q", ErrBadNode, r.ID, r.RaftAddr)
	}
	st := r.State
	if st == 0 {
		st = NodeUp
	}
	if st > NodeLeft {
		return nil, nil, fmt.Errorf("%w: state %d", ErrBadNode, st)
	}
	n := t.clone()
	n.nodes[r.ID] = &Node{ID: r.ID, RaftAddr: r.RaftAddr, HTTPAddr: r.HTTPAddr, State: st}
	return n, nil, nil
}

// ValidName reports whether s is a valid collection name: 1 to MaxNameLen
// bytes of ASCII letters, digits, '_', '-' and '.', not starting with '.'.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen || s[0] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

func applyCreateCollection(t *Table, c Command) (*Table, any, error) {
	r := c.(CreateCollection)
	switch {
	case !ValidName(r.Name):
		return nil, nil, fmt.Errorf("%w: %q", ErrBadName, r.Name)
	case r.Dim < 1 || r.Dim > MaxDim:
		return nil, nil, fmt.Errorf("%w: %d (want 1..%d)", ErrBadDim, r.Dim, MaxDim)
	case r.Metric != ivf.L2 && r.Metric != ivf.IP && r.Metric != ivf.Cosine:
		return nil, nil, fmt.Errorf("%w: %d", ErrBadMetric, r.Metric)
	case r.NList < 0 || r.NList > MaxNList:
		return nil, nil, fmt.Errorf("%w: %d (want 0 for auto or 1..%d)", ErrBadNList, r.NList, MaxNList)
	case r.Replicas < 0 || r.Replicas > 16:
		return nil, nil, fmt.Errorf("%w: %d (want 1..16)", ErrBadReplicas, r.Replicas)
	case r.Shards < 0 || r.Shards > MaxShards:
		return nil, nil, fmt.Errorf("%w: %d", ErrBadShards, r.Shards)
	case r.ModelHash != "" && r.Model == "":
		return nil, nil, fmt.Errorf("%w: model hash without a model", ErrBadModel)
	case r.ModelHash != "" && !validModelHash(r.ModelHash):
		return nil, nil, fmt.Errorf("%w: model hash %q, want 64 lower-case hex digits", ErrBadModel, r.ModelHash)
	}
	if _, ok := t.colls[r.Name]; ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrCollectionExists, r.Name)
	}
	replicas := max(r.Replicas, 1)
	live := t.LiveNodes()
	if len(live) < replicas {
		return nil, nil, fmt.Errorf("%w: %d live, %d replicas wanted", ErrNotEnoughNodes, len(live), replicas)
	}
	shards := r.Shards
	if shards == 0 {
		shards = len(live)
	}
	col := &Collection{
		Name: r.Name, Dim: r.Dim, Metric: r.Metric, NList: r.NList, Replicas: replicas, Model: r.Model, ModelHash: r.ModelHash,
		State: Untrained, Epoch: 1,
		Buffer:  PlaceShards(shards, replicas, live, 1),
		Created: t.version + 1, // Apply gives the new table this version
	}
	n := t.clone()
	n.colls[r.Name] = col
	if r.IDDirectory {
		// One partition per live node, each an untrained collection of
		// one shard (the entries are tiny: one float per entry stands in
		// for a vector), placed round-robin as buffer shards are.
		parts := PlaceShards(len(live), replicas, live, 1)
		col.IDPartitions = len(parts)
		for p, s := range parts {
			s.ID = 0
			name := DirName(r.Name, p)
			n.colls[name] = &Collection{Name: name, Dim: 1, Metric: ivf.L2, Replicas: replicas, State: Untrained, Epoch: 1, Buffer: []Shard{s}, Created: col.Created}
		}
	}
	return n, nil, nil
}

// dirInfix joins a collection's name and a partition number in the name
// of a partition of its id directory. '~' is not allowed in collection
// names (ValidName), so such a name never collides with a collection's.
const dirInfix = "~ids~"

// DirName is the name of partition p of the id directory of collection
// name (decision 10; docs/node.md, "The id directory").
func DirName(name string, p int) string { return name + dirInfix + strconv.Itoa(p) }

// DirOf returns the collection and partition whose id directory
// partition name is, and whether name is one.
func DirOf(name string) (coll string, part int, ok bool) {
	i := strings.LastIndex(name, dirInfix)
	if i < 0 {
		return "", 0, false
	}
	p, err := strconv.Atoi(name[i+len(dirInfix):])
	if err != nil || p < 0 {
		return "", 0, false
	}
	return name[:i], p, true
}

// PlaceShards places n shards of the given replica count round-robin on
// nodes (which must hold at least replicas ids): shard i goes to nodes
// i, i+1, ... (mod len(nodes)), the first being its primary. Every shard
// gets the given epoch.
func PlaceShards(n, replicas int, nodes []string, epoch uint64) []Shard {
	out := make([]Shard, n)
	for i := range out {
		reps := make([]string, replicas)
		for j := range reps {
			reps[j] = nodes[(i+j)%len(nodes)]
		}
		out[i] = Shard{ID: uint32(i), Replicas: reps, Primary: reps[0], Epoch: epoch}
	}
	return out
}

func applyDropCollection(t *Table, c Command) (*Table, any, error) {
	r := c.(DropCollection)
	if _, ok := t.colls[r.Name]; !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownCollection, r.Name)
	}
	if _, _, dir := DirOf(r.Name); dir {
		return nil, nil, fmt.Errorf("%w: %q is a partition of an id directory: drop its collection", ErrBadName, r.Name)
	}
	n := t.clone()
	for p := range t.colls[r.Name].IDPartitions {
		delete(n.colls, DirName(r.Name, p))
	}
	delete(n.colls, r.Name)
	return n, nil, nil
}

func applyAllocateIDs(t *Table, c Command) (*Table, any, error) {
	r := c.(AllocateIDs)
	if r.N == 0 || r.N > MaxAllocate {
		return nil, nil, fmt.Errorf("%w: %d (want 1..%d)", ErrBadCount, r.N, MaxAllocate)
	}
	if r.Collection != "" {
		if _, ok := t.colls[r.Collection]; !ok {
			return nil, nil, fmt.Errorf("%w: %q", ErrUnknownCollection, r.Collection)
		}
	}
	if t.nextID > math.MaxUint64-r.N {
		return nil, nil, ErrIDSpaceExhausted
	}
	n := *t // maps unchanged: share them
	res := IDRange{First: t.nextID, N: r.N}
	n.nextID += r.N
	return &n, res, nil
}

func applyPutBlobChunk(t *Table, c Command) (*Table, any, error) {
	r := c.(PutBlobChunk)
	want := (r.Size + MaxChunkSize - 1) / MaxChunkSize
	switch {
	case r.Hash.IsZero():
		return nil, nil, fmt.Errorf("%w: zero hash", ErrBadChunk)
	case r.Size == 0 || want != uint64(r.Chunks):
		return nil, nil, fmt.Errorf("%w: size %d in %d chunks (want %d)", ErrBadChunk, r.Size, r.Chunks, want)
	case r.Index >= r.Chunks:
		return nil, nil, fmt.Errorf("%w: index %d of %d", ErrBadChunk, r.Index, r.Chunks)
	}
	wantLen := uint64(MaxChunkSize)
	if r.Index == r.Chunks-1 {
		wantLen = r.Size - uint64(r.Chunks-1)*MaxChunkSize
	}
	if uint64(len(r.Data)) != wantLen {
		return nil, nil, fmt.Errorf("%w: chunk %d has %d bytes, want %d", ErrBadChunk, r.Index, len(r.Data), wantLen)
	}
	old, ok := t.blobs[r.Hash]
	var b Blob
	if ok {
		if old.Size != r.Size || old.Chunks != r.Chunks {
			return nil, nil, fmt.Errorf("%w: blob %s is %d bytes in %d chunks", ErrBadChunk, r.Hash, old.Size, old.Chunks)
		}
		if old.data[r.Index] != nil { // retried chunk: idempotent
			if !bytes.Equal(old.data[r.Index], r.Data) {
				return nil, nil, fmt.Errorf("%w: chunk %d differs from the one stored", ErrBlobHash, r.Index)
			}
			return t, BlobStatus{Received: old.have, Complete: old.Complete()}, nil
		}
		b = *old
		b.data = slices.Clone(old.data)
	} else {
		b = Blob{Hash: r.Hash, Size: r.Size, Chunks: r.Chunks, data: make([][]byte, r.Chunks)}
	}
	b.data[r.Index] = r.Data
	b.have++
	if b.Complete() {
		h := sha256.New()
		for _, d := range b.data {
			h.Write(d)
		}
		if Hash(h.Sum(nil)) != r.Hash {
			// Some chunk was wrong. The table keeps the incomplete upload
			// (a domain error changes nothing); GCBlobs removes it.
			return nil, nil, fmt.Errorf("%w: %s", ErrBlobHash, r.Hash)
		}
	}
	n := t.clone()
	n.blobs[r.Hash] = &b
	return n, BlobStatus{Received: b.have, Complete: b.Complete()}, nil
}

// collectionAt returns the named collection if its epoch is epoch.
func (t *Table) collectionAt(name string, epoch uint64) (*Collection, error) {
	col, ok := t.colls[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownCollection, name)
	}
	if col.Epoch != epoch {
		return nil, fmt.Errorf("%w: %q is at epoch %d, command says %d", ErrStaleEpoch, name, col.Epoch, epoch)
	}
	return col, nil
}

func (t *Table) withCollection(col *Collection) *Table {
	n := t.clone()
	n.colls[col.Name] = col
	return n
}

func applyBeginTraining(t *Table, c Command) (*Table, any, error) {
	r := c.(BeginTraining)
	col, err := t.collectionAt(r.Collection, r.Epoch)
	if err != nil {
		return nil, nil, err
	}
	if col.State == Training {
		return nil, nil, fmt.Errorf("%w: %q is already training", ErrBadState, col.Name)
	}
	if _, _, dir := DirOf(col.Name); dir {
		return nil, nil, fmt.Errorf("%w: %q is an id directory, never trained", ErrBadState, col.Name)
	}
	nc := col.clone()
	nc.State = Training
	return t.withCollection(nc), nil, nil
}

func applyAbortTraining(t *Table, c Command) (*Table, any, error) {
	r := c.(AbortTraining)
	col, err := t.collectionAt(r.Collection, r.Epoch)
	if err != nil {
		return nil, nil, err
	}
	if col.State != Training {
		return nil, nil, fmt.Errorf("%w: %q is %s, not training", ErrBadState, col.Name, col.State)
	}
	nc := col.clone()
	nc.State = Untrained
	if !nc.Centroids.IsZero() {
		nc.State = Ready
	}
	return t.withCollection(nc), nil, nil
}

// validShardMap checks m against a collection of nlist lists and the node
// table.
func (t *Table) validShardMap(m ShardMap, nlist, replicas int) error {
	if len(m.ListShard) != nlist {
		return fmt.Errorf("%w: %d lists mapped, nlist is %d", ErrBadShardMap, len(m.ListShard), nlist)
	}
	if len(m.Shards) == 0 || len(m.Shards) > MaxShards {
		return fmt.Errorf("%w: %d shards", ErrBadShardMap, len(m.Shards))
	}
	for l, s := range m.ListShard {
		if int(s) >= len(m.Shards) {
			return fmt.Errorf("%w: list %d on shard %d of %d", ErrBadShardMap, l, s, len(m.Shards))
		}
	}
	for i, s := range m.Shards {
		if s.ID != uint32(i) {
			return fmt.Errorf("%w: shard %d has id %d", ErrBadShardMap, i, s.ID)
		}
		if len(s.Replicas) == 0 || len(s.Replicas) > replicas {
			return fmt.Errorf("%w: shard %d has %d replicas (collection wants %d)", ErrBadShardMap, i, len(s.Replicas), replicas)
		}
		for j, id := range s.Replicas {
			if _, ok := t.nodes[id]; !ok {
				return fmt.Errorf("%w: shard %d replica %q", ErrUnknownNode, i, id)
			}
			if slices.Index(s.Replicas, id) != j {
				return fmt.Errorf("%w: shard %d lists replica %q twice", ErrBadShardMap, i, id)
			}
		}
		if !slices.Contains(s.Replicas, s.Primary) {
			return fmt.Errorf("%w: shard %d primary %q is not a replica", ErrBadShardMap, i, s.Primary)
		}
	}
	return nil
}

func applyCommitTraining(t *Table, c Command) (*Table, any, error) {
	r := c.(CommitTraining)
	col, err := t.collectionAt(r.Collection, r.Epoch)
	if err != nil {
		return nil, nil, err
	}
	if col.State != Training {
		return nil, nil, fmt.Errorf("%w: %q is %s, not training", ErrBadState, col.Name, col.State)
	}
	if r.NList < 1 || r.NList > MaxNList || (col.NList != 0 && r.NList > col.NList) {
		return nil, nil, fmt.Errorf("%w: trained nlist %d (requested %d)", ErrBadNList, r.NList, col.NList)
	}
	b, ok := t.blobs[r.Centroids.Hash]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %s", ErrUnknownBlob, r.Centroids.Hash)
	}
	if !b.Complete() {
		return nil, nil, fmt.Errorf("%w: %s has %d of %d chunks", ErrIncompleteBlob, b.Hash, b.have, b.Chunks)
	}
	if b.Size != r.Centroids.Size {
		return nil, nil, fmt.Errorf("%w: %s is %d bytes, reference says %d", ErrUnknownBlob, b.Hash, b.Size, r.Centroids.Size)
	}
	if err := t.validShardMap(r.Shards, r.NList, col.Replicas); err != nil {
		return nil, nil, err
	}
	nc := col.clone()
	nc.Epoch++
	nc.State = Ready
	nc.TrainedNList = r.NList
	nc.Centroids = r.Centroids
	nc.Shards = r.Shards.clone()
	for i := range nc.Shards.Shards {
		nc.Shards.Shards[i].Epoch = nc.Epoch
	}
	return t.withCollection(nc), nc.Epoch, nil
}

func (t *Table) readyAt(name string, epoch uint64) (*Collection, error) {
	col, err := t.collectionAt(name, epoch)
	if err != nil {
		return nil, err
	}
	if col.Centroids.IsZero() {
		return nil, fmt.Errorf("%w: %q is not trained", ErrBadState, name)
	}
	return col, nil
}

func applySetShardMap(t *Table, c Command) (*Table, any, error) {
	r := c.(SetShardMap)
	col, err := t.readyAt(r.Collection, r.Epoch)
	if err != nil {
		return nil, nil, err
	}
	if err := t.validShardMap(r.Shards, col.TrainedNList, col.Replicas); err != nil {
		return nil, nil, err
	}
	nc := col.clone()
	nc.Epoch++
	nc.Shards = r.Shards.clone()
	old := col.Shards
	for i := range nc.Shards.Shards {
		s := &nc.Shards.Shards[i]
		if i < len(old.Shards) && slices.Equal(old.Shards[i].Replicas, s.Replicas) && old.Shards[i].Primary == s.Primary &&
			slices.Equal(old.Lists(uint32(i)), nc.Shards.Lists(uint32(i))) {
			s.Epoch = old.Shards[i].Epoch
		} else {
			s.Epoch = nc.Epoch
		}
	}
	return t.withCollection(nc), nc.Epoch, nil
}

func applyMoveLists(t *Table, c Command) (*Table, any, error) {
	r := c.(MoveLists)
	col, err := t.readyAt(r.Collection, r.Epoch)
	if err != nil {
		return nil, nil, err
	}
	if int(r.To) >= len(col.Shards.Shards) {
		return nil, nil, fmt.Errorf("%w: shard %d of %d", ErrBadShardMap, r.To, len(col.Shards.Shards))
	}
	if len(r.Lists) == 0 {
		return nil, nil, fmt.Errorf("%w: no lists to move", ErrBadShardMap)
	}
	nc := col.clone()
	nc.Epoch++
	nc.Shards.Shards[r.To].Epoch = nc.Epoch
	for _, l := range r.Lists {
		if int(l) >= len(nc.Shards.ListShard) {
			return nil, nil, fmt.Errorf("%w: list %d of %d", ErrBadShardMap, l, len(nc.Shards.ListShard))
		}
		from := nc.Shards.ListShard[l]
		nc.Shards.Shards[from].Epoch = nc.Epoch
		nc.Shards.ListShard[l] = r.To
	}
	return t.withCollection(nc), nc.Epoch, nil
}

func applyGCBlobs(t *Table, c Command) (*Table, any, error) {
	r := c.(GCBlobs)
	used := map[Hash]bool{}
	for _, col := range t.colls {
		used[col.Centroids.Hash] = true
	}
	for _, h := range r.Keep {
		used[h] = true
	}
	n := t.clone()
	removed := 0
	for h := range t.blobs { // deletion only: order does not matter
		if !used[h] {
			delete(n.blobs, h)
			removed++
		}
	}
	return n, removed, nil
}

func applyRetireBuffer(t *Table, c Command) (*Table, any, error) {
	r := c.(RetireBuffer)
	col, err := t.readyAt(r.Collection, r.Epoch)
	if err != nil {
		return nil, nil, err
	}
	if col.State != Ready {
		return nil, nil, fmt.Errorf("%w: %q is %s", ErrBadState, col.Name, col.State)
	}
	nc := col.clone()
	nc.Buffer = nil
	return t.withCollection(nc), nil, nil
}

func applySetReplicas(t *Table, c Command) (*Table, any, error) {
	r := c.(SetReplicas)
	col, ok := t.colls[r.Collection]
	if !ok {
		return nil, nil, fmt.Errorf("%w: %q", ErrUnknownCollection, r.Collection)
	}
	shards := col.Shards.Shards
	if r.Buffer {
		shards = col.Buffer
	}
	if int(r.Shard) >= len(shards) {
		return nil, nil, fmt.Errorf("%w: shard %d of %d", ErrBadShardMap, r.Shard, len(shards))
	}
	old := shards[r.Shard]
	if !slices.Equal(old.Replicas, r.From) || !slices.Equal(old.Joining, r.FromJoining) {
		return nil, nil, fmt.Errorf("%w: shard %d has replicas %v joining %v, the proposer saw %v joining %v",
			ErrStaleShard, r.Shard, old.Replicas, old.Joining, r.From, r.FromJoining)
	}
	if len(r.Replicas) == 0 || len(r.Replicas) > col.Replicas {
		return nil, nil, fmt.Errorf("%w: %d replicas (collection wants %d)", ErrBadShardMap, len(r.Replicas), col.Replicas)
	}
	for j, id := range r.Replicas {
		if _, ok := t.nodes[id]; !ok {
			return nil, nil, fmt.Errorf("%w: replica %q", ErrUnknownNode, id)
		}
		if slices.Index(r.Replicas, id) != j {
			return nil, nil, fmt.Errorf("%w: replica %q twice", ErrBadShardMap, id)
		}
	}
	if !slices.Contains(r.Replicas, r.Primary) {
		return nil, nil, fmt.Errorf("%w: primary %q is not a replica", ErrBadShardMap, r.Primary)
	}
	for j, id := range r.Joining {
		if _, ok := t.nodes[id]; !ok {
			return nil, nil, fmt.Errorf("%w: joining %q", ErrUnknownNode, id)
		}
		if slices.Index(r.Joining, id) != j || slices.Contains(r.Replicas, id) {
			return nil, nil, fmt.Errorf("%w: joining %q twice, or also a replica", ErrBadShardMap, id)
		}
	}
	if len(r.Replicas)+len(r.Joining) > col.Replicas {
		return nil, nil, fmt.Errorf("%w: %d replicas and %d joining (collection wants %d)", ErrBadShardMap, len(r.Replicas), len(r.Joining), col.Replicas)
	}
	nc := col.clone()
	var target *Shard
	if r.Buffer {
		target = &nc.Buffer[r.Shard]
	} else {
		target = &nc.Shards.Shards[r.Shard]
	}
	target.Replicas = slices.Clone(r.Replicas)
	target.Primary = r.Primary
	target.Joining = slices.Clone(r.Joining)
	target.Away = awayAfter(old, r.Replicas, col.Replicas)
	for _, id := range append(slices.Clone(r.Replicas), r.Joining...) {
		if !slices.Contains(old.Replicas, id) && !slices.Contains(old.Joining, id) {
			target.Added = t.version + 1 // Apply gives the new table this version
		}
	}
	return t.withCollection(nc), nil, nil
}

// awayAfter is a shard's Away set once its in-sync set becomes replicas:
// the old away nodes and the replicas taken out, less the replicas, in
// that order; none once the shard has want replicas.
func awayAfter(old Shard, replicas []string, want int) []string {
	if len(replicas) >= want {
		return nil
	}
	var away []string
	for _, id := range append(slices.Clone(old.Away), old.Replicas...) {
		if !slices.Contains(replicas, id) && !slices.Contains(away, id) {
			away = append(away, id)
		}
	}
	return away
}

// validModelHash reports whether h is a hex SHA-256: 64 lower-case hex
// digits.
func validModelHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := range len(h) {
		if c := h[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
