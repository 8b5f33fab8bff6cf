package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/embed"
	"lookalike/ivf"
	"lookalike/node/web"
	"lookalike/proto"
)

// APIOptions configure the HTTP API. The zero value of each field means
// its default, as documented on the field.
type APIOptions struct {
	// APIKey, when set, is required (Authorization: Bearer KEY) by writes
	// and admin calls. It also authorises reads.
	APIKey string
	// ReadKey, when set, is required by searches and reads (the APIKey
	// works too). Unset: reads are open, as a public search page wants.
	ReadKey string
	// Limits bound request bodies (proto.Limits defaults).
	Limits proto.Limits
	// MaxWrites is how many write requests run at once; MaxReads the same
	// for reads. Defaults 16 and 256.
	MaxWrites, MaxReads int
	// QueueWrites and QueueReads are how many more may wait for a slot;
	// beyond that a request gets 429 with Retry-After. Defaults 64 and 1024.
	QueueWrites, QueueReads int
	// WriteWait and ReadWait bound how long a request waits in its queue:
	// then it gets 429 too. An answer that comes later than this is worth
	// less than the client's retry elsewhere, and a queue bounded in
	// length only grew to seconds of wait under overload
	// (docs/benchmarks.md, "Overload"). Defaults 10 s and 1 s.
	WriteWait, ReadWait time.Duration
	// RetryAfter is the Retry-After of a 429. Default 1 s.
	RetryAfter time.Duration
}

// EnsureDefaults fills zero fields with their defaults.
func (o *APIOptions) EnsureDefaults() {
	o.Limits.EnsureDefaults()
	if o.MaxWrites <= 0 {
		o.MaxWrites = 16
	}
	if o.MaxReads <= 0 {
		o.MaxReads = 256
	}
	if o.QueueWrites <= 0 {
		o.QueueWrites = 64
	}
	if o.QueueReads <= 0 {
		o.QueueReads = 1024
	}
	if o.RetryAfter <= 0 {
		o.RetryAfter = time.Second
	}
	if o.WriteWait <= 0 {
		o.WriteWait = 10 * time.Second
	}
	if o.ReadWait <= 0 {
		o.ReadWait = time.Second
	}
}

// api serves HTTP API v1 over a Node.
type api struct {
	n       *Node
	o       APIOptions
	writes  *limiter
	reads   *limiter
	metrics *metrics
}

// Handler returns the HTTP API v1 of DESIGN.md over n, with /healthz and
// /metrics.
func (n *Node) Handler(o APIOptions) http.Handler {
	o.EnsureDefaults()
	a := &api{n: n, o: o, writes: newLimiter(o.MaxWrites, o.QueueWrites, o.WriteWait), reads: newLimiter(o.MaxReads, o.QueueReads, o.ReadWait)}
	a.metrics = newMetrics(n)
	mux := http.NewServeMux()
	route := func(pattern string, class accessClass, h func(w http.ResponseWriter, r *http.Request) error) {
		mux.Handle(pattern, a.wrap(pattern, class, h))
	}
	route("GET /healthz", open, a.healthz)
	mux.Handle("GET /metrics", a.metrics.handler())
	route("GET /{$}", open, web.Serve) // the search page: public, its API calls carry the key
	route("GET /web/{file}", open, web.Serve)
	route("POST /v1/collections", write, a.createCollection)
	route("GET /v1/collections", read, a.listCollections)
	route("GET /v1/collections/{c}", read, a.getCollection)
	route("DELETE /v1/collections/{c}", write, a.dropCollection)
	route("POST /v1/collections/{c}/vectors", write, a.insert)
	route("POST /v1/collections/{c}/images", write, a.insertImages)
	route("GET /v1/collections/{c}/items/{id}/thumbnail", read, a.thumbnail)
	route("POST /v1/collections/{c}/items/lookup", read, a.lookup)
	route("POST /v1/collections/{c}/search", search, a.search)
	route("GET /v1/collections/{c}/items/{id}", read, a.getItem)
	route("DELETE /v1/collections/{c}/items/{id}", write, a.deleteItem)
	route("POST /v1/collections/{c}/train", write, a.train)
	route("GET /v1/cluster", status, a.cluster)
	route("POST "+forwardPath, internal, a.raftApply) // a follower's proposal, forwarded to the leader (forward.go): node to node, no queue
	route("POST "+rpcPrefix+"{op}", internal, a.rpc)  // the data plane between nodes (rpc.go)
	route("/", open, func(w http.ResponseWriter, r *http.Request) error {
		return proto.Errorf(proto.NotFound, "no route %s %s", r.Method, r.URL.Path)
	})
	return mux
}

type accessClass int

const (
	open accessClass = iota
	read
	search // a read, shed first under overload (sched.go): status and item reads still pass
	status // the cluster's status: a read of this node's table, never queued behind searches
	write
	internal // node to node: the API key, no queue (a queued internal call could wait on the very requests that wait on it)
)

// wrap adds authentication, the bounded queues, the latency histogram and
// the error mapping to a route.
func (a *api) wrap(route string, class accessClass, h func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		err := a.serve(sw, r, class, h)
		if err != nil {
			a.writeError(sw, err)
		}
		a.metrics.observe(route, sw.status, time.Since(start))
	})
}

func (a *api) serve(w http.ResponseWriter, r *http.Request, class accessClass, h func(w http.ResponseWriter, r *http.Request) error) error {
	if err := a.authorize(r, class); err != nil {
		return err
	}
	r.Body = http.MaxBytesReader(w, r.Body, a.o.Limits.MaxBodyBytes)
	var l *limiter
	switch class {
	case search:
		if shed, q := a.n.shed.shed(); shed {
			return fmt.Errorf("%w: this node's processors are saturated (%.0f goroutines waiting per processor)", ErrOverloaded, q)
		}
		l = a.reads
	case read:
		l = a.reads
	case write:
		l = a.writes
	}
	if l != nil {
		release, err := l.acquire(r.Context())
		if err != nil {
			return err
		}
		defer release()
	}
	return h(w, r)
}

func (a *api) authorize(r *http.Request, class accessClass) error {
	var keys []string
	switch {
	case (class == write || class == internal) && a.o.APIKey != "":
		keys = []string{a.o.APIKey}
	case (class == read || class == search || class == status) && a.o.ReadKey != "":
		keys = []string{a.o.ReadKey, a.o.APIKey}
	default:
		return nil
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if ok {
		for _, k := range keys {
			if k != "" && subtle.ConstantTimeCompare([]byte(got), []byte(k)) == 1 {
				return nil
			}
		}
	}
	return ErrUnauthorized
}

// apiError is the one mapping of errors to the API's codes.
func apiError(err error) *proto.Error {
	var pe *proto.Error
	if errors.As(err, &pe) {
		return proto.ToError(err)
	}
	code := proto.Internal
	switch {
	case errors.Is(err, ErrNoCollection), errors.Is(err, ErrNoItem):
		code = proto.NotFound
	case errors.Is(err, ErrExists), errors.Is(err, ErrBadState), errors.Is(err, ErrTooFewVectors),
		errors.Is(err, ErrModelMismatch):
		code = proto.Conflict
	case errors.Is(err, ErrImageTooLarge):
		code = proto.TooLarge
	case errors.Is(err, ErrBadImage):
		code = proto.BadRequest
	case errors.Is(err, ErrNoEmbedder), errors.Is(err, embed.ErrClosed):
		code = proto.Unavailable
	case errors.Is(err, ErrInvalid), errors.Is(err, ivf.ErrBadNProbe), errors.Is(err, ivf.ErrBadK),
		errors.Is(err, ivf.ErrDimension), errors.Is(err, ivf.ErrNotFinite), errors.Is(err, ivf.ErrZeroVector),
		errors.Is(err, ivf.ErrBadOptions):
		code = proto.BadRequest
	case errors.Is(err, ErrUnauthorized):
		code = proto.Unauthorized
	case errors.Is(err, ErrOverloaded):
		code = proto.Overloaded
	case errors.Is(err, ErrStaleEpoch), errors.Is(err, ErrClosed), errors.Is(err, ErrNotLeader),
		errors.Is(err, ErrNotPrimary), errors.Is(err, ErrUnavailable), errors.Is(err, ErrCutOff),
		errors.Is(err, context.DeadlineExceeded):
		code = proto.Unavailable
	}
	return &proto.Error{Code: code, Message: err.Error()}
}

func (a *api) writeError(w http.ResponseWriter, err error) {
	e := apiError(err)
	if e.Code == proto.Overloaded {
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int(a.o.RetryAfter.Round(time.Second)/time.Second))))
	}
	if e.Code == proto.Unauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lookalike"`)
	}
	if e.Code == proto.Internal {
		a.n.log.Error("internal error", "err", err)
	}
	writeJSON(w, e.Code.HTTPStatus(), proto.ErrorBody{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", proto.JSONContentType)
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(p)
}

// limiter bounds the requests running (slots) and waiting (queue): a
// request that finds the queue full is refused at once with ErrOverloaded,
// one that waited wait without a slot is refused then.
type limiter struct {
	tickets chan struct{} // running + waiting
	slots   chan struct{} // running
	wait    time.Duration
}

func newLimiter(running, queue int, wait time.Duration) *limiter {
	return &limiter{tickets: make(chan struct{}, running+queue), slots: make(chan struct{}, running), wait: wait}
}

func (l *limiter) acquire(ctx context.Context) (func(), error) {
	select {
	case l.tickets <- struct{}{}:
	default:
		return nil, fmt.Errorf("%w: %d requests running and %d waiting", ErrOverloaded, cap(l.slots), cap(l.tickets)-cap(l.slots))
	}
	if err := takeSlot(ctx, l.slots, l.wait, nil); err != nil {
		<-l.tickets
		if errors.Is(err, errNoSlot) {
			return nil, fmt.Errorf("%w: no slot within %v", ErrOverloaded, l.wait)
		}
		return nil, err
	}
	return func() { <-l.slots; <-l.tickets }, nil
}

func (a *api) healthz(w http.ResponseWriter, r *http.Request) error {
	a.n.mu.RLock()
	closed := a.n.closed
	a.n.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	return writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": a.n.opts.NodeID})
}

// collectionName reads and checks the {c} path segment.
func collectionName(r *http.Request) (string, error) {
	c := r.PathValue("c")
	if err := proto.ValidName(c); err != nil {
		return "", proto.Errorf(proto.BadRequest, "collection: %v", err)
	}
	return c, nil
}

func toProto(s CollectionStatus) proto.Collection {
	return proto.Collection{
		Name: s.Name, Dim: s.Dim, Metric: proto.Metric(s.Metric.String()), NList: proto.NList(s.NList),
		Replicas: s.Replicas, Model: s.Model, ModelHash: s.ModelHash, Count: s.Count, State: proto.State(s.State.String()),
		TrainedNList: s.TrainedNList, Epoch: s.Epoch, Partial: s.CountMissing != nil, MissingShards: s.CountMissing,
	}
}

func (a *api) createCollection(w http.ResponseWriter, r *http.Request) error {
	req, err := proto.DecodeCreateCollection(r.Body, a.o.Limits)
	if err != nil {
		return err
	}
	m, err := ivf.ParseMetric(string(req.Metric))
	if err != nil {
		return proto.Errorf(proto.BadRequest, "metric: %v", err)
	}
	s, err := a.n.CreateCollection(r.Context(), CollectionMeta{Name: req.Name, Dim: req.Dim, Metric: m, NList: int(req.NList), Replicas: req.Replicas, Model: req.Model})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, toProto(s))
}

func (a *api) listCollections(w http.ResponseWriter, r *http.Request) error {
	out := proto.Collections{Collections: []proto.Collection{}}
	for _, s := range a.n.Collections() {
		if s.CountErr != nil {
			return s.CountErr // this node cut off: no stale listing
		}
		out.Collections = append(out.Collections, toProto(s))
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *api) getCollection(w http.ResponseWriter, r *http.Request) error {
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	s, err := a.n.Describe(c)
	if err == nil {
		err = s.CountErr
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toProto(s))
}

func (a *api) dropCollection(w http.ResponseWriter, r *http.Request) error {
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	if err := a.n.DropCollection(r.Context(), c); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) insert(w http.ResponseWriter, r *http.Request) error {
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	s, err := a.n.describe(c, false)
	if err != nil {
		return err
	}
	if s.Model != "" {
		return proto.Errorf(proto.BadRequest, "collection %q is an image collection (model %q): send images to /v1/collections/%s/images", c, s.Model, c)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var req proto.Insert
	// The bulk format by its content type; anything else must be JSON
	// (curl sends form-urlencoded by default: the body decides).
	if ct == proto.BulkContentType {
		req, err = proto.DecodeBulk(r.Body, a.o.Limits)
	} else {
		req, err = proto.DecodeInsert(r.Body, a.o.Limits)
	}
	if err != nil {
		return err
	}
	if err := req.ValidateVectors(s.Dim, proto.Metric(s.Metric.String())); err != nil {
		return err
	}
	items := make([]WriteItem, len(req.Items))
	for i, it := range req.Items {
		items[i] = WriteItem{UserID: it.ID, Vector: it.Vector, Meta: it.Meta}
	}
	ids, err := a.n.Insert(r.Context(), c, items)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, proto.Inserted{Inserted: len(ids), IDs: ids})
}

func (a *api) search(w http.ResponseWriter, r *http.Request) error {
	start := time.Now()
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	s, err := a.n.describe(c, false)
	if err != nil {
		return err
	}
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == proto.MultipartContentType {
		return a.searchImage(w, r, c, start)
	}
	req, err := proto.DecodeSearch(r.Body, a.o.Limits)
	if err != nil {
		return err
	}
	if err := req.ValidateVector(s.Dim, proto.Metric(s.Metric.String())); err != nil {
		return err
	}
	res, err := a.n.Search(r.Context(), c, SearchRequest{Vector: req.Vector, UserID: req.ID, K: req.K, NProbe: req.NProbe, Refine: req.Refine})
	if err != nil {
		return err
	}
	return writeSearchResult(w, res, start)
}

func writeSearchResult(w http.ResponseWriter, res *SearchResult, start time.Time) error {
	out := proto.SearchResult{Hits: make([]proto.Hit, len(res.Hits)), Partial: res.Partial, MissingShards: res.MissingShards}
	for i, h := range res.Hits {
		out.Hits[i] = proto.Hit{ID: h.UserID, Score: h.Score, Meta: h.Meta}
	}
	out.TookMS = float64(time.Since(start).Microseconds()) / 1000
	return writeJSON(w, http.StatusOK, out)
}

func itemID(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := proto.ValidID(id); err != nil {
		return "", proto.Errorf(proto.BadRequest, "id: %v", err)
	}
	return id, nil
}

func (a *api) getItem(w http.ResponseWriter, r *http.Request) error {
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	id, err := itemID(r)
	if err != nil {
		return err
	}
	withVec := false
	switch v := r.URL.Query().Get("vector"); v {
	case "", "false", "0":
	case "true", "1":
		withVec = true
	default:
		return proto.Errorf(proto.BadRequest, "vector=%q: want true or false", v)
	}
	s, err := a.n.describe(c, false)
	if err != nil {
		return err
	}
	// An image collection's items carry their image record.
	it, err := a.n.getItem(r.Context(), c, id, withVec, s.Model != "")
	if err != nil {
		return err
	}
	out := proto.Item{ID: it.UserID, Meta: it.Meta, Vector: it.Vector}
	if len(it.Attachment) > 0 {
		rec, err := DecodeImageRecord(it.Attachment)
		if err != nil {
			return err
		}
		out.Source, out.Format, out.Width, out.Height, out.Original = rec.Source, rec.Format, rec.Width, rec.Height, rec.Original != nil
	}
	return writeJSON(w, http.StatusOK, out)
}

func (a *api) deleteItem(w http.ResponseWriter, r *http.Request) error {
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	id, err := itemID(r)
	if err != nil {
		return err
	}
	if err := a.n.Delete(r.Context(), c, id); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *api) train(w http.ResponseWriter, r *http.Request) error {
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	req, err := proto.DecodeTrain(r.Body, a.o.Limits)
	if err != nil {
		return err
	}
	epoch, err := a.n.Train(r.Context(), c, int(req.NList))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusAccepted, proto.TrainAccepted{Collection: c, State: proto.Training, Epoch: epoch})
}

func (a *api) cluster(w http.ResponseWriter, r *http.Request) error {
	ci := a.n.Cluster()
	out := proto.Cluster{Leader: ci.Leader, Nodes: []proto.ClusterNode{}, Shards: []proto.ClusterShard{}}
	for _, nd := range ci.Nodes {
		out.Nodes = append(out.Nodes, proto.ClusterNode{ID: nd.ID, Addr: nd.HTTPAddr, State: nd.State, Voter: nd.Voter,
			RaftAddr: nd.RaftAddr, GossipAddr: nd.GossipAddr, Raft: nd.Raft})
	}
	if p, ok := a.n.meta.(placer); ok {
		// The table's shard map: list shards, then the flat buffer's
		// shards while a collection has one. The replica sets are the
		// in-sync sets (a replica that fails leaves them). A collection's
		// id directory shows as its shards name/ids/N.
		for _, c := range p.table().Collections() {
			if owner, part, dir := meta.DirOf(c.Name); dir {
				for _, s := range c.Buffer {
					out.Shards = append(out.Shards, proto.ClusterShard{Collection: owner, Shard: fmt.Sprintf("%s/ids/%d", owner, part),
						Epoch: s.Epoch, Primary: s.Primary, Replicas: holders(s), InSync: s.Replicas, Joining: s.Joining, Away: s.Away})
				}
				continue
			}
			for _, s := range c.Shards.Shards {
				out.Shards = append(out.Shards, proto.ClusterShard{Collection: c.Name, Shard: fmt.Sprintf("%s/%d", c.Name, s.ID),
					Epoch: s.Epoch, Lists: len(c.Shards.Lists(s.ID)), Primary: s.Primary, Replicas: holders(s),
					InSync: s.Replicas, Joining: s.Joining, Away: s.Away})
			}
			for _, s := range c.Buffer {
				out.Shards = append(out.Shards, proto.ClusterShard{Collection: c.Name, Shard: fmt.Sprintf("%s/buffer/%d", c.Name, s.ID),
					Epoch: s.Epoch, Primary: s.Primary, Replicas: holders(s), InSync: s.Replicas, Joining: s.Joining, Away: s.Away})
			}
		}
		return writeJSON(w, http.StatusOK, out)
	}
	for _, s := range a.n.Collections() {
		sh := proto.ClusterShard{Collection: s.Name, Shard: fmt.Sprintf("%s/0", s.Name), Epoch: s.Epoch, Lists: s.Lists,
			Primary: a.n.opts.NodeID, Replicas: []string{a.n.opts.NodeID}, InSync: []string{a.n.opts.NodeID}}
		out.Shards = append(out.Shards, sh)
	}
	return writeJSON(w, http.StatusOK, out)
}
