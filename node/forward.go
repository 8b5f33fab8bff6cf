package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"lookalike/coordinator"
	"lookalike/coordinator/meta"
)

// Leader forwarding: a follower's proposal (an encoded meta.Command) goes
// to the leader's HTTP API, POST /v1/internal/raft/apply with the entry as
// the body; the leader applies it (coordinator.Server.ApplyEntry) and
// answers with forwardReply. The leader's HTTP address comes from gossip
// (its Raft id → its member's metadata), else from the node table.

// forwardPath is the internal route of a forwarded proposal.
const forwardPath = "/v1/internal/raft/apply"

// forwardReply is the leader's answer: the command's result (JSON of the
// type package meta documents for it) or its error, with the name of the
// sentinel it wraps.
type forwardReply struct {
	Value    json.RawMessage `json:"value,omitempty"`
	Sentinel string          `json:"sentinel,omitempty"`
	Error    string          `json:"error,omitempty"`
	// Version is the leader's table version (meta.Table.Version, the
	// same sequence on every replica) after the entry: the follower waits
	// until its own table is as new, so that the caller reads its own
	// write on the node it asked.
	Version uint64 `json:"version,omitempty"`
}

// forwardSentinels are the errors a forwarded proposal can fail with,
// by the name they travel under. Append-only.
var forwardSentinels = map[string]error{
	"not_leader": coordinator.ErrNotLeader, "no_leader": coordinator.ErrNoLeader, "closed": coordinator.ErrClosed,
	"timeout":         coordinator.ErrTimeout,
	"unknown_command": meta.ErrUnknownCommand, "corrupt_command": meta.ErrCorruptCommand,
	"bad_name": meta.ErrBadName, "bad_dim": meta.ErrBadDim, "bad_metric": meta.ErrBadMetric, "bad_nlist": meta.ErrBadNList,
	"bad_replicas": meta.ErrBadReplicas, "bad_shards": meta.ErrBadShards, "bad_model": meta.ErrBadModel,
	"collection_exists": meta.ErrCollectionExists, "unknown_collection": meta.ErrUnknownCollection,
	"bad_node": meta.ErrBadNode, "unknown_node": meta.ErrUnknownNode, "not_enough_nodes": meta.ErrNotEnoughNodes,
	"bad_count": meta.ErrBadCount, "id_space_exhausted": meta.ErrIDSpaceExhausted, "stale_epoch": meta.ErrStaleEpoch,
	"bad_state": meta.ErrBadState, "bad_shard_map": meta.ErrBadShardMap, "bad_chunk": meta.ErrBadChunk,
	"blob_hash": meta.ErrBlobHash, "stale_shard": meta.ErrStaleShard, "unknown_blob": meta.ErrUnknownBlob, "incomplete_blob": meta.ErrIncompleteBlob,
}

func encodeForwardReply(v any, err error) forwardReply {
	if err != nil {
		r := forwardReply{Error: err.Error()}
		for name, s := range forwardSentinels {
			if errors.Is(err, s) {
				r.Sentinel = name
				break
			}
		}
		return r
	}
	if v == nil {
		return forwardReply{}
	}
	b, jerr := json.Marshal(v)
	if jerr != nil {
		return forwardReply{Error: fmt.Sprintf("node: encode result %T: %v", v, jerr)}
	}
	return forwardReply{Value: b}
}

// decodeForwardReply turns a reply to cmd back into what Propose returns.
func decodeForwardReply(cmd meta.Command, r forwardReply) (any, error) {
	if r.Error != "" || r.Sentinel != "" {
		if s, ok := forwardSentinels[r.Sentinel]; ok {
			return nil, fmt.Errorf("%w (at the leader: %s)", s, r.Error)
		}
		return nil, fmt.Errorf("node: at the leader: %s", r.Error)
	}
	var out any
	switch cmd.(type) {
	case meta.AllocateIDs:
		out = new(meta.IDRange)
	case meta.PutBlobChunk:
		out = new(meta.BlobStatus)
	case meta.CommitTraining, meta.SetShardMap, meta.MoveLists:
		out = new(uint64)
	case meta.GCBlobs:
		out = new(int)
	default:
		return nil, nil
	}
	if err := json.Unmarshal(r.Value, out); err != nil {
		return nil, fmt.Errorf("node: forwarded result of %T: %w", cmd, err)
	}
	switch v := out.(type) {
	case *meta.IDRange:
		return *v, nil
	case *meta.BlobStatus:
		return *v, nil
	case *uint64:
		return *v, nil
	case *int:
		return *v, nil
	}
	return nil, nil
}

// forwarder is the coordinator's Forward hook over HTTP.
type forwarder struct {
	httpAddr func(leaderID string) string // "" when unknown
	// waitVersion waits until this replica's table reaches version
	// (bounded by ctx).
	waitVersion func(ctx context.Context, version uint64) error
	scheme      string
	apiKey      string
	client      *http.Client
}

func (f *forwarder) forward(ctx context.Context, leader coordinator.Peer, entry []byte) (any, error) {
	cmd, err := meta.Decode(entry)
	if err != nil {
		return nil, err
	}
	addr := f.httpAddr(leader.ID)
	if addr == "" {
		return nil, fmt.Errorf("%w: leader %q has no known HTTP address", coordinator.ErrNoLeader, leader.ID)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.scheme+"://"+addr+forwardPath, bytes.NewReader(entry))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if f.apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+f.apiKey)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: forward to leader %s at %s: %v", coordinator.ErrNoLeader, leader.ID, addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%w: forward to leader %s: %v", coordinator.ErrNoLeader, leader.ID, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: leader %s answered %d: %s", coordinator.ErrNoLeader, leader.ID, resp.StatusCode, bytes.TrimSpace(body))
	}
	var r forwardReply
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("node: forwarded reply: %w", err)
	}
	v, err := decodeForwardReply(cmd, r)
	if r.Version > 0 && f.waitVersion != nil {
		if werr := f.waitVersion(ctx, r.Version); werr != nil && err == nil {
			err = fmt.Errorf("%w: committed at the leader, not yet applied here: %v", coordinator.ErrTimeout, werr)
		}
	}
	return v, err
}

// entryApplier is what the leader side of forwarding needs.
type entryApplier interface {
	ApplyEntry(ctx context.Context, entry []byte) (any, error)
}

// raftApply serves forwardPath: the leader applies a follower's entry.
// A node that is not the leader answers the error (not_leader), and the
// follower retries through whoever leads next.
func (a *api) raftApply(w http.ResponseWriter, r *http.Request) error {
	rm, ok := a.n.meta.(*RaftMetadata)
	if !ok {
		return fmt.Errorf("%w: no Raft coordinator here", ErrNoCollection)
	}
	entry, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	var ap entryApplier = rm.s
	v, err := ap.ApplyEntry(r.Context(), entry)
	reply := encodeForwardReply(v, err)
	reply.Version = rm.s.Table().Version()
	return writeJSON(w, http.StatusOK, reply)
}
