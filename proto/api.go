package proto

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Content types of request bodies.
const (
	JSONContentType = "application/json"
	BulkContentType = "application/x-lookalike-bulk" // see docs/format/bulk.md
)

// Metric is a similarity measure by its API name. Package ivf has the
// numeric one; the node converts with ivf.ParseMetric(string(m)).
type Metric string

// Metrics. The API accepts these spellings only.
const (
	L2     Metric = "l2"     // squared Euclidean distance; smaller is closer
	IP     Metric = "ip"     // inner product; larger is closer
	Cosine Metric = "cosine" // cosine similarity; larger is closer
)

// Valid reports whether m is l2, ip or cosine.
func (m Metric) Valid() bool { return m == L2 || m == IP || m == Cosine }

// State is a collection's training state.
type State string

// States of a collection (decision 5).
const (
	Untrained State = "untrained" // vectors sit in flat buffer shards, searched exactly
	Training  State = "training"  // k-means is running or lists are moving; searches still answer
	Ready     State = "ready"     // trained: searches scan the probed lists
)

// NList is the number of IVF lists of a collection: 1..MaxNList, or
// NListAuto (0), which the JSON spells "auto": chosen at training time from
// the count. It marshals as a number or "auto" and unmarshals from either;
// a JSON 0 or a number out of range is refused.
type NList int

// NListAuto lets training choose nlist from the number of vectors.
const NListAuto NList = 0

// MarshalJSON writes "auto" for NListAuto, the number otherwise.
func (n NList) MarshalJSON() ([]byte, error) {
	if n == NListAuto {
		return []byte(`"auto"`), nil
	}
	return strconv.AppendInt(nil, int64(n), 10), nil
}

// UnmarshalJSON reads an integer 1..MaxNList or "auto".
func (n *NList) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if string(b) == `"auto"` {
		*n = NListAuto
		return nil
	}
	v, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || v < 1 || v > MaxNList {
		return &fieldError{msg: fmt.Sprintf("got %s, want an integer 1..%d or \"auto\"", clip(string(b), 40), MaxNList)}
	}
	*n = NList(v)
	return nil
}

func (n NList) String() string {
	if n == NListAuto {
		return "auto"
	}
	return strconv.Itoa(int(n))
}

// CreateCollection is the body of POST /v1/collections.
type CreateCollection struct {
	// Name: 1..64 bytes of a-z, 0-9, '_' and '-', starting with a letter or
	// digit (see ValidName). Required.
	Name string `json:"name"`
	// Metric: l2, ip or cosine. Required.
	Metric Metric `json:"metric"`
	// Dim: 1..MaxDim. Required without Model; with Model it may be left
	// out (0) and comes from the model, or must equal the model's.
	Dim int `json:"dim,omitempty"`
	// NList: lists of the trained index, or NListAuto (the default).
	NList NList `json:"nlist"`
	// Replicas: copies of each shard, 1..MaxReplicas; 0 (absent): the
	// server's default, 1 on one or two nodes, 2 from three nodes on.
	Replicas int `json:"replicas,omitempty"`
	// Model: the embedding model of an image collection, 1..128 bytes of
	// a-z, A-Z, 0-9, '.', '_' and '-'. Empty for a vector collection. The
	// server checks that it knows the model.
	Model string `json:"model,omitempty"`
}

// Collection describes a collection: the body of GET /v1/collections/{c}
// and of the 201 answer to CreateCollection.
type Collection struct {
	Name     string `json:"name"`
	Dim      int    `json:"dim"`
	Metric   Metric `json:"metric"`
	NList    NList  `json:"nlist"` // as created: a number or "auto"
	Replicas int    `json:"replicas"`
	Model    string `json:"model"` // "" for a vector collection
	// ModelHash is the model's identity (hex SHA-256 of its ONNX file),
	// recorded at creation; "" for a vector collection.
	ModelHash string `json:"model_hash,omitempty"`
	Count     int64  `json:"count"` // live items
	State     State  `json:"state"`
	// TrainedNList is the number of lists of the current trained index
	// (0 while untrained).
	TrainedNList int `json:"trained_nlist"`
	// Epoch is the collection's table epoch; it grows at each training.
	Epoch uint64 `json:"epoch"`
	// Partial is true when, on a cluster, some shards had no replica
	// answering their count: Count then sums the others only, and
	// MissingShards names the missing ones (as a search's do).
	Partial       bool     `json:"partial,omitempty"`
	MissingShards []string `json:"missing_shards,omitempty"`
}

// Collections is the body of GET /v1/collections, sorted by name.
type Collections struct {
	Collections []Collection `json:"collections"`
}

// Insert is the body of POST /v1/collections/{c}/vectors, JSON or bulk.
type Insert struct {
	Items []InsertItem `json:"items"`
}

// InsertItem is one item of an Insert.
type InsertItem struct {
	// ID: 1..256 bytes of valid UTF-8, or "" for an id the server
	// generates. (In JSON, leave "id" out for that; "" is refused.) An
	// existing id is overwritten (upsert).
	ID string `json:"id,omitempty"`
	// Vector: the collection's dim finite float32 values.
	Vector []float32 `json:"vector"`
	// Meta: a JSON object of at most Limits.MaxMetaBytes, or nil.
	Meta json.RawMessage `json:"meta,omitempty"`
}

// Inserted answers an Insert: the ids of the items, in request order
// (generated ones included).
type Inserted struct {
	Inserted int      `json:"inserted"`
	IDs      []string `json:"ids"`
}

// Search is the body of POST /v1/collections/{c}/search: by vector or by
// the id of a stored item, exactly one of the two.
type Search struct {
	Vector []float32 `json:"vector,omitempty"`
	ID     string    `json:"id,omitempty"`
	// K: hits wanted, 1..MaxK. Default DefaultK.
	K int `json:"k"`
	// NProbe: lists scanned, ≥ 1 (the server checks ≤ nlist). 0 (absent):
	// the server's default.
	NProbe int `json:"nprobe,omitempty"`
	// Refine: re-rank the best K×Refine candidates by exact distance,
	// 0..MaxRefine; 0 and 1 are off.
	Refine int `json:"refine,omitempty"`
}

// SearchResult answers a Search.
type SearchResult struct {
	// Hits, best first: at most K.
	Hits []Hit `json:"hits"`
	// TookMS is the server-side time in milliseconds.
	TookMS float64 `json:"took_ms"`
	// Partial is true when some shards had no live replica: Hits then
	// come from the others only, and MissingShards names the missing ones.
	Partial       bool     `json:"partial"`
	MissingShards []string `json:"missing_shards,omitempty"`
}

// Hit is one search result. Score is the metric's own value: squared L2
// distance (smaller is closer), inner product or cosine similarity (larger
// is closer).
type Hit struct {
	ID    string          `json:"id"`
	Score float32         `json:"score"`
	Meta  json.RawMessage `json:"meta,omitempty"`
}

// Item is the body of GET /v1/collections/{c}/items/{id}; Vector only with
// ?vector=true.
type Item struct {
	ID   string          `json:"id"`
	Meta json.RawMessage `json:"meta,omitempty"`
	// Source, Format, Width, Height and Original describe the image of an
	// item of an image collection: where it came from (as uploaded), its
	// format and size, and whether its original bytes are kept.
	Source   string    `json:"source,omitempty"`
	Format   string    `json:"format,omitempty"`
	Width    int       `json:"width,omitempty"`
	Height   int       `json:"height,omitempty"`
	Original bool      `json:"original,omitempty"`
	Vector   []float32 `json:"vector,omitempty"`
}

// Train is the optional body of POST /v1/collections/{c}/train; an empty
// body means all defaults.
type Train struct {
	// NList overrides the collection's nlist for this training; NListAuto
	// (absent) keeps it.
	NList NList `json:"nlist"`
}

// TrainAccepted is the 202 answer to Train.
type TrainAccepted struct {
	Collection string `json:"collection"`
	State      State  `json:"state"`
	// Epoch the training will commit (the current one + 1).
	Epoch uint64 `json:"epoch"`
}

// Cluster is the body of GET /v1/cluster.
type Cluster struct {
	// Leader is the node id of the Raft leader, "" when there is none.
	Leader string        `json:"leader"`
	Nodes  []ClusterNode `json:"nodes"`
	// Shards is the shard map, by collection then shard.
	Shards []ClusterShard `json:"shards"`
}

// ClusterNode is a member of the cluster.
type ClusterNode struct {
	ID   string `json:"id"`
	Addr string `json:"addr"` // HTTP address
	// State: "alive", "suspect" or "dead" (membership's view).
	State string `json:"state"`
	Voter bool   `json:"voter"` // a Raft voter
	// RaftAddr and GossipAddr are its Raft and memberlist addresses
	// (GossipAddr empty on a one-node cluster).
	RaftAddr   string `json:"raft_addr,omitempty"`
	GossipAddr string `json:"gossip_addr,omitempty"`
	// Raft is its place in the Raft configuration: "voter", "nonvoter",
	// or "" while the leader has not added it yet.
	Raft string `json:"raft,omitempty"`
}

// ClusterShard is one shard of the shard map.
type ClusterShard struct {
	Collection string   `json:"collection"`
	Shard      string   `json:"shard"` // the name SearchResult.MissingShards uses
	Epoch      uint64   `json:"epoch"`
	Lists      int      `json:"lists"` // IVF lists it holds; 0 for a flat buffer shard
	Primary    string   `json:"primary"`
	Replicas   []string `json:"replicas"` // node ids, the primary included
	InSync     []string `json:"in_sync"`  // node ids of the in-sync replicas
	// Joining are nodes being copied to (not yet in sync), with the
	// copy's progress where this node is the primary.
	Joining []string `json:"joining,omitempty"`
	// Away are nodes taken out of the shard (dead, or drained at
	// shutdown) that it waits for, up to --restore-delay, to catch up.
	Away []string `json:"away,omitempty"`
}
