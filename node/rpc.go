package node

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding"
	"encoding/gob"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"lookalike/proto"
)

// The data plane between nodes: a gateway's calls to the nodes holding a
// collection's shards, and a primary's calls to its backups, as HTTP POSTs
// of gob values on the node's own API (docs/format/rpc.md).

// rpcPrefix is the route of the internal calls; the op follows.
const rpcPrefix = "/v1/internal/shard/"

// rpcCodes name the errors a call can fail with, by the code they
// travel under. Append only.
var rpcCodes = []struct {
	code string
	err  error
}{
	{"stale_epoch", ErrStaleEpoch}, {"not_primary", ErrNotPrimary}, {"unavailable", ErrUnavailable},
	{"invalid", ErrInvalid}, {"no_collection", ErrNoCollection}, {"no_item", ErrNoItem},
	{"closed", ErrClosed}, {"bad_state", ErrBadState}, {"too_few_vectors", ErrTooFewVectors},
	{"not_leader", ErrNotLeader}, {"overloaded", ErrOverloaded}, {"cut_off", ErrCutOff},
}

func rpcErrorOf(err error) *proto.RPCError {
	for _, c := range rpcCodes {
		if errors.Is(err, c.err) {
			return &proto.RPCError{Code: c.code, Message: err.Error()}
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return &proto.RPCError{Code: "unavailable", Message: err.Error()}
	}
	return &proto.RPCError{Code: "internal", Message: err.Error()}
}

// rpcErr turns a callee's error back into one wrapping the same sentinel.
func rpcErr(node string, e *proto.RPCError) error {
	for _, c := range rpcCodes {
		if c.code == e.Code {
			return fmt.Errorf("%w (node %s: %s)", c.err, node, e.Message)
		}
	}
	return fmt.Errorf("node %s: %s", node, e.Message)
}

// rpc serves POST /v1/internal/shard/{op}.
func (a *api) rpc(w http.ResponseWriter, r *http.Request) error {
	if v := r.Header.Get(proto.RPCHeader); v != proto.RPCVersion {
		return proto.Errorf(proto.BadRequest, "internal RPC version %q, this node speaks %q", v, proto.RPCVersion)
	}
	// A binary body (the write path's calls, get) says so in its content type;
	// the search call is binary whatever its content type (it has been
	// since version 1 began). The reply comes back in the format of the
	// call.
	op := r.PathValue("op")
	binBody := r.Header.Get("Content-Type") == proto.RPCBinaryContentType || op == proto.OpSearch
	dec := gob.NewDecoder(r.Body)
	decode := func(v any) error {
		u, ok := v.(encoding.BinaryUnmarshaler)
		if !binBody || !ok {
			return dec.Decode(v)
		}
		body, err := readBody(r, a.o.Limits.MaxBodyBytes)
		if err == nil {
			err = u.UnmarshalBinary(body)
		}
		if err != nil {
			return fmt.Errorf("%w: %v", ErrInvalid, err)
		}
		return nil
	}
	var reply any
	var err error
	n := a.n
	ctx := r.Context()
	switch op {
	case proto.OpSearch:
		var c proto.RPCSearch
		if err = decode(&c); err == nil {
			reply, err = n.searchPart(ctx, &c)
		}
	case proto.OpWrite:
		var c proto.RPCWrite
		if err = decode(&c); err == nil {
			reply, err = n.primaryWrite(ctx, &c)
		}
	case proto.OpReplicate:
		var c proto.RPCReplicate
		if err = decode(&c); err == nil {
			err = n.applyReplica(ctx, &c)
			reply = &struct{}{}
		}
	case proto.OpGet:
		var c proto.RPCGet
		if err = decode(&c); err == nil {
			reply, err = n.getLocal(&c)
		}
	case proto.OpDelete:
		var c proto.RPCDelete
		if err = decode(&c); err == nil {
			var removed int
			removed, err = n.deleteLocal(ctx, &c)
			reply = &proto.RPCDeleteReply{Removed: removed}
		}
	case proto.OpCopy:
		var c proto.RPCCopy
		if err = dec.Decode(&c); err == nil {
			reply, err = n.applyCopy(ctx, &c)
		}
	case proto.OpCount:
		var c proto.RPCCount
		if err = dec.Decode(&c); err == nil {
			var v int64
			v, err = n.countLocal(&c)
			reply = &proto.RPCCountReply{Count: v}
		}
	case proto.OpVersion:
		var c struct{}
		if err = dec.Decode(&c); err == nil {
			var v uint64
			v, err = n.leaderVersion()
			reply = &proto.RPCVersionReply{Version: v}
		}
	case proto.OpTrain:
		var c proto.RPCTrain
		if err = dec.Decode(&c); err == nil {
			var e uint64
			e, err = n.trainLocal(ctx, c.Collection, c.NList)
			reply = &proto.RPCTrainReply{Epoch: e}
		}
	default:
		return proto.Errorf(proto.NotFound, "no internal op %q", op)
	}
	n.rpcServed.WithLabelValues(op).Inc()
	w.Header().Set("Content-Type", proto.RPCContentType)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("%w: truncated call: %v", ErrInvalid, err)
		}
		w.WriteHeader(http.StatusConflict)
		return gob.NewEncoder(w).Encode(rpcErrorOf(err))
	}
	if m, ok := reply.(encoding.BinaryMarshaler); ok && binBody {
		b, err := m.MarshalBinary()
		if err != nil {
			return err
		}
		w.Header().Set("Content-Type", proto.RPCBinaryContentType)
		w.WriteHeader(http.StatusOK)
		_, err = w.Write(b)
		return err
	}
	w.WriteHeader(http.StatusOK)
	if _, ok := reply.(*struct{}); ok {
		_, err := w.Write(emptyGob) // what a fresh encoder writes, made once
		return err
	}
	return gob.NewEncoder(w).Encode(reply)
}

// emptyGob is a gob stream of one empty struct: a callee's empty reply,
// which newer callers skip and older ones decode.
var emptyGob = func() []byte {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(&struct{}{}); err != nil {
		panic(err)
	}
	return b.Bytes()
}()

// rpcPrealloc is the longest body readBody allocates whole before it
// arrives: a write call of 1,000 128-d vectors is about 600 KB.
const rpcPrealloc = 8 << 20

// readBody reads a call's whole body. A body whose length is known and
// within limit is read into one buffer of that length: io.ReadAll grows
// its buffer step by step, allocating, clearing and copying several
// times the body (a write call carries hundreds of KB of vectors; these
// reads were a tenth of a cluster node's allocation during ingest). The
// buffer is the caller's: a decoded call keeps views into it. A longer
// body is read as it comes, so that a caller's headers alone cannot make
// the node allocate more than rpcPrealloc.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	n := r.ContentLength
	if n < 0 || n > min(limit, rpcPrealloc) {
		return io.ReadAll(r.Body) // chunked, or long: r.Body stops it at limit
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r.Body, b); err != nil {
		return nil, err
	}
	return b, nil
}

// peers calls other nodes.
type peers struct {
	scheme string
	apiKey string
	client *http.Client
	addr   func(id string) string // the node's HTTP address, "" when unknown

	// Calls to a node end as soon as gossip declares it dead: a node cut
	// off by the network leaves connections that no reset ends, and a
	// call would otherwise wait for its whole deadline.
	mu   sync.Mutex
	dead map[string]bool
	live map[string]*peerLife
}

type peerLife struct {
	ctx    context.Context
	cancel context.CancelFunc
}

// setDead records the nodes gossip declares dead: calls in flight to
// them end now, and new calls fail at once until they are alive again.
func (p *peers) setDead(dead map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id := range dead {
		if l := p.live[id]; l != nil {
			l.cancel()
			delete(p.live, id)
		}
	}
	p.dead = dead
}

// life returns the context that ends when node is declared dead, or nil
// when it is dead now.
func (p *peers) life(node string) context.Context {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dead[node] {
		return nil
	}
	if p.live == nil {
		p.live = map[string]*peerLife{}
	}
	l := p.live[node]
	if l == nil {
		ctx, cancel := context.WithCancel(context.Background())
		l = &peerLife{ctx, cancel}
		p.live[node] = l
	}
	return l.ctx
}

func newPeers(tlsConf *tls.Config, apiKey string, addr func(string) string) *peers {
	scheme, tr := peerTransport(tlsConf)
	p := &peers{scheme: scheme, apiKey: apiKey, addr: addr}
	tr.MaxIdleConnsPerHost = 64
	tr.IdleConnTimeout = 90 * time.Second
	p.client = &http.Client{Transport: tr}
	return p
}

// peerTransport is the scheme and a fresh transport for calls to other
// nodes: HTTPS with tlsConf when set, else HTTP.
func peerTransport(tlsConf *tls.Config) (string, *http.Transport) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if tlsConf == nil {
		return "http", tr
	}
	tr.TLSClientConfig = tlsConf.Clone()
	return "https", tr
}

// call sends req to node's op and decodes the reply into resp. Transport
// failures wrap ErrUnavailable; the callee's errors come back wrapping
// their sentinels.
func (p *peers) call(ctx context.Context, node, op string, req, resp any) error {
	addr := p.addr(node)
	if addr == "" {
		return fmt.Errorf("%w: node %s has no known address", ErrUnavailable, node)
	}
	life := p.life(node)
	if life == nil {
		return fmt.Errorf("%w: node %s is dead (gossip)", ErrUnavailable, node)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(life, cancel)
	defer stop()
	var body []byte
	ctype := proto.RPCContentType
	if m, ok := req.(encoding.BinaryMarshaler); ok {
		b, err := m.MarshalBinary()
		if err != nil {
			return fmt.Errorf("node: encode %s call: %w", op, err)
		}
		body, ctype = b, proto.RPCBinaryContentType
	} else {
		var g bytes.Buffer
		if err := gob.NewEncoder(&g).Encode(req); err != nil {
			return fmt.Errorf("node: encode %s call: %w", op, err)
		}
		body = g.Bytes()
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, p.scheme+"://"+addr+rpcPrefix+op, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hr.Header.Set("Content-Type", ctype)
	hr.Header.Set(proto.RPCHeader, proto.RPCVersion)
	if p.apiKey != "" {
		hr.Header.Set("Authorization", "Bearer "+p.apiKey)
	}
	res, err := p.client.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w: %s to node %s: %v", ErrUnavailable, op, node, ctx.Err())
		}
		return fmt.Errorf("%w: %s to node %s: %v", ErrUnavailable, op, node, err)
	}
	defer res.Body.Close()
	if u, ok := resp.(encoding.BinaryUnmarshaler); ok && res.StatusCode == http.StatusOK && res.Header.Get("Content-Type") == proto.RPCBinaryContentType {
		b, err := io.ReadAll(res.Body)
		if err == nil {
			err = u.UnmarshalBinary(b)
		}
		if err != nil {
			return fmt.Errorf("%w: %s reply of node %s: %v", ErrUnavailable, op, node, err)
		}
		return nil
	}
	if res.Header.Get("Content-Type") != proto.RPCContentType {
		b, _ := io.ReadAll(io.LimitReader(res.Body, 4096))
		return fmt.Errorf("%w: %s to node %s: status %d: %s", ErrUnavailable, op, node, res.StatusCode, bytes.TrimSpace(b))
	}
	if res.StatusCode != http.StatusOK {
		var e proto.RPCError
		if err := gob.NewDecoder(res.Body).Decode(&e); err != nil {
			return fmt.Errorf("%w: %s to node %s: status %d", ErrUnavailable, op, node, res.StatusCode)
		}
		return rpcErr(node, &e)
	}
	if _, ok := resp.(*struct{}); ok {
		// An empty reply (replicate's) says nothing its status did not:
		// decoding it would cost a gob decoder, which reads and compiles
		// the value's type afresh for every call (about 13 µs on the
		// 2-vCPU VM, and a backup answers several calls a write).
		_, err := io.Copy(io.Discard, io.LimitReader(res.Body, 4096))
		if err != nil {
			return fmt.Errorf("%w: %s reply of node %s: %v", ErrUnavailable, op, node, err)
		}
		return nil
	}
	if err := gob.NewDecoder(res.Body).Decode(resp); err != nil {
		return fmt.Errorf("%w: %s reply of node %s: %v", ErrUnavailable, op, node, err)
	}
	return nil
}
