package node_test

import (
	"bytes"
	"encoding/gob"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"lookalike/node"
	"lookalike/node/nodetest"
	"lookalike/proto"
)

type client struct {
	t    *testing.T
	base string
	key  string
}

func (c client) do(method, path, ctype string, body []byte) (int, []byte, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func (c client) want(method, path, body string, status int, code proto.Code) []byte {
	c.t.Helper()
	got, b, _ := c.do(method, path, proto.JSONContentType, []byte(body))
	if got != status {
		c.t.Fatalf("%s %s %.80s: status %d, want %d: %s", method, path, body, got, status, b)
	}
	if code != "" {
		var e proto.ErrorBody
		if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Code != code || e.Error.Message == "" {
			c.t.Fatalf("%s %s: body %s, want error code %s", method, path, b, code)
		}
	}
	return b
}

func newAPI(t *testing.T, o node.APIOptions) (client, *nodetest.Store) {
	st := nodetest.NewStore()
	n := open(t, nodetest.NewMeta(), st, node.Options{})
	srv := httptest.NewServer(n.Handler(o))
	t.Cleanup(srv.Close)
	return client{t: t, base: srv.URL}, st
}

func TestHTTPAPI(t *testing.T) {
	c, _ := newAPI(t, node.APIOptions{Limits: proto.Limits{MaxBodyBytes: 4096}})
	c.want("GET", "/healthz", "", 200, "")
	c.want("POST", "/v1/collections", `{"name":"c","metric":"l2","dim":2}`, 201, "")
	c.want("POST", "/v1/collections", `{"name":"c","metric":"l2","dim":2}`, 409, proto.Conflict)
	c.want("POST", "/v1/collections/c/vectors", `{"items":[{"id":"a","vector":[1,2]},{"id":"b","vector":[3,4],"meta":{"x":1}}]}`, 200, "")
	var bulk bytes.Buffer
	if err := proto.EncodeBulk(&bulk, []proto.InsertItem{{ID: "d", Vector: []float32{5, 6}}}, true); err != nil {
		t.Fatal(err)
	}
	if st, b, _ := c.do("POST", "/v1/collections/c/vectors", proto.BulkContentType, bulk.Bytes()); st != 200 {
		t.Fatalf("bulk: %d %s", st, b)
	}
	corrupt := bytes.Clone(bulk.Bytes())
	corrupt[len(corrupt)-1] ^= 0xff
	if st, b, _ := c.do("POST", "/v1/collections/c/vectors", proto.BulkContentType, corrupt); st != 400 {
		t.Fatalf("corrupt bulk: %d %s", st, b)
	}
	b := c.want("POST", "/v1/collections/c/search", `{"vector":[3,4.1],"k":2}`, 200, "")
	var res proto.SearchResult
	json.Unmarshal(b, &res)
	if len(res.Hits) != 2 || res.Hits[0].ID != "b" || string(res.Hits[0].Meta) != `{"x":1}` {
		t.Fatalf("search: %s", b)
	}
	c.want("POST", "/v1/collections/c/search", `{"id":"d","k":1}`, 200, "")
	c.want("GET", "/v1/collections/c/items/b?vector=true", "", 200, "")
	c.want("DELETE", "/v1/collections/c/items/b", "", 204, "")
	c.want("GET", "/v1/collections/c/items/b", "", 404, proto.NotFound)
	b = c.want("GET", "/v1/collections/c", "", 200, "")
	var col proto.Collection
	json.Unmarshal(b, &col)
	if col.Count != 2 || col.State != proto.Untrained {
		t.Fatalf("collection: %s", b)
	}
	// An id with a slash, percent-encoded in the path.
	c.want("POST", "/v1/collections/c/vectors", `{"items":[{"id":"a/b c","vector":[7,7]}]}`, 200, "")
	if b := c.want("GET", "/v1/collections/c/items/a%2Fb%20c", "", 200, ""); !bytes.Contains(b, []byte(`"a/b c"`)) {
		t.Fatalf("percent-encoded id: %s", b)
	}
	c.want("DELETE", "/v1/collections/c/items/a%2Fb%20c", "", 204, "")
	c.want("POST", "/v1/collections/c/train", "", 202, "")
	c.want("GET", "/v1/cluster", "", 200, "")
	c.want("GET", "/v1/collections", "", 200, "")
	// Bad input: every one a 4xx with the documented code, nothing stored.
	for _, tc := range []struct {
		path, body string
		status     int
		code       proto.Code
	}{
		{"/v1/collections/c/vectors", `{"items":[{"id":"x","vector":[1,2,3]}]}`, 400, proto.BadRequest},
		{"/v1/collections/c/vectors", `{"items":[{"id":"x","vector":[1,2]},{"id":"y","vector":[1]}]}`, 400, proto.BadRequest},
		{"/v1/collections/c/vectors", `{"items":[{"id":"x","vector":[1,NaN]}]}`, 400, proto.BadRequest},
		{"/v1/collections/c/vectors", `{"items":[{"id":"x","vector":[1,2]}`, 400, proto.BadRequest},
		{"/v1/collections/c/vectors", `{"items":[]}`, 400, proto.BadRequest},
		{"/v1/collections/c/vectors", `{"items":[{"id":"` + strings.Repeat("x", 257) + `","vector":[1,2]}]}`, 400, proto.BadRequest},
		{"/v1/collections/c/vectors", `{"items":[{"id":"x","vector":[1,2],"meta":"` + strings.Repeat("x", 5000) + `"}]}`, 413, proto.TooLarge},
		{"/v1/collections/nope/vectors", `{"items":[{"id":"x","vector":[1,2]}]}`, 404, proto.NotFound},
		{"/v1/collections/c/search", `{"vector":[1,2],"k":0}`, 400, proto.BadRequest},
		{"/v1/collections/c/search", `{"vector":[1,2],"k":1025}`, 400, proto.BadRequest},
		{"/v1/collections/c/search", `{"vector":[1,2,3]}`, 400, proto.BadRequest},
		{"/v1/collections/BAD/search", `{"vector":[1,2]}`, 400, proto.BadRequest},
	} {
		c.want("POST", tc.path, tc.body, tc.status, tc.code)
	}
	c.want("GET", "/v1/collections/c/items/x", "", 404, proto.NotFound)
	c.want("GET", "/nowhere", "", 404, proto.NotFound)
	c.want("DELETE", "/v1/collections/c", "", 204, "")
	c.want("GET", "/v1/collections/c", "", 404, proto.NotFound)
	if st, b, _ := c.do("GET", "/metrics", "", nil); st != 200 || !bytes.Contains(b, []byte("lookalike_http_request_duration_seconds_bucket")) {
		t.Fatalf("metrics: %d %.300s", st, b)
	}
}

func TestHTTPKeys(t *testing.T) {
	c, _ := newAPI(t, node.APIOptions{APIKey: "admin", ReadKey: "reader"})
	c.want("POST", "/v1/collections", `{"name":"c","metric":"l2","dim":2}`, 401, proto.Unauthorized)
	c.key = "reader"
	c.want("POST", "/v1/collections", `{"name":"c","metric":"l2","dim":2}`, 401, proto.Unauthorized)
	c.want("GET", "/v1/collections", "", 200, "")
	c.key = "admin"
	c.want("POST", "/v1/collections", `{"name":"c","metric":"l2","dim":2}`, 201, "")
	c.want("GET", "/v1/collections", "", 200, "")
	c.key = ""
	c.want("GET", "/v1/collections", "", 401, proto.Unauthorized)
	c.want("GET", "/healthz", "", 200, "")
}

// TestHTTPOverload: one write running and room for one queued: of three
// writes, one gets 429 with Retry-After at once; reads still pass; the
// other two finish when the store lets them.
func TestHTTPOverload(t *testing.T) {
	c, st := newAPI(t, node.APIOptions{MaxWrites: 1, QueueWrites: 1})
	c.want("POST", "/v1/collections", `{"name":"c","metric":"l2","dim":1}`, 201, "")
	release := make(chan struct{})
	entered := make(chan struct{}, 4)
	st.BeforeApply = func() {
		entered <- struct{}{}
		<-release
	}
	type answer struct {
		status int
		body   []byte
		h      http.Header
	}
	done := make(chan answer, 3)
	write := func() {
		st, b, h := c.do("POST", "/v1/collections/c/vectors", proto.JSONContentType, []byte(`{"items":[{"vector":[1]}]}`))
		done <- answer{st, b, h}
	}
	go write()
	<-entered // the first write holds the only slot
	go write()
	go write()
	a := <-done // one of the other two was refused at once
	if a.status != 429 || a.h.Get("Retry-After") == "" || !bytes.Contains(a.body, []byte(`"overloaded"`)) {
		t.Fatalf("first answer: %d %v %s, want 429 overloaded with Retry-After", a.status, a.h, a.body)
	}
	c.want("GET", "/v1/collections/c", "", 200, "")
	close(release)
	for i := 0; i < 2; i++ {
		if a := <-done; a.status != 200 {
			t.Fatalf("queued write: %d %s", a.status, a.body)
		}
	}
}

// TestHTTPStatusNotQueued: with the one read slot taken and no room to
// queue, an item read gets 429 at once, and the cluster's status still
// answers: it is never queued behind reads and searches.
func TestHTTPStatusNotQueued(t *testing.T) {
	c, st := newAPI(t, node.APIOptions{MaxReads: 1, QueueReads: 1, ReadWait: 1})
	c.want("POST", "/v1/collections", `{"name":"c","metric":"l2","dim":1}`, 201, "")
	c.want("POST", "/v1/collections/c/vectors", `{"items":[{"id":"a","vector":[1]}]}`, 200, "")
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // also when the test fails: the server's close waits for the read
	entered := make(chan struct{}, 4)
	st.BeforeGet = func() {
		entered <- struct{}{}
		<-release
	}
	done := make(chan int, 1)
	go func() {
		status, _, _ := c.do("GET", "/v1/collections/c/items/a", "", nil)
		done <- status
	}()
	<-entered // the read holds the only slot
	c.want("GET", "/v1/collections/c/items/a", "", 429, proto.Overloaded)
	c.want("GET", "/v1/cluster", "", 200, "")
	unblock()
	if status := <-done; status != 200 {
		t.Fatalf("the first read: %d", status)
	}
}

// TestRPCBinaryBody: the internal write path's binary calls are read
// whole before they are decoded (readBody). A whole call decodes (and is
// then refused: this node is not in a cluster); a call cut short, an
// empty one and one over the body limit are refused as invalid. Each
// gets the internal RPC's error reply (409, a gob RPCError), not a panic.
func TestRPCBinaryBody(t *testing.T) {
	c, _ := newAPI(t, node.APIOptions{Limits: proto.Limits{MaxBodyBytes: 4096}})
	call := &proto.RPCReplicate{Collection: "nope", Version: 1, From: "n2", Stream: 3, Seq: 1,
		Items: []proto.RPCItem{{UserID: "a", ID: 7, List: 0, Vector: proto.VectorView([]float32{1, 2})}}}
	whole, err := call.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	big := &proto.RPCReplicate{Collection: "nope", Version: 1, From: "n2", Stream: 3, Seq: 1}
	for i := range 100 {
		big.Items = append(big.Items, proto.RPCItem{UserID: fmt.Sprint("u", i), ID: uint64(i + 1), Vector: proto.VectorView(make([]float32, 16))})
	}
	over, err := big.MarshalBinary()
	if err != nil || len(over) <= 4096 {
		t.Fatalf("a call over the limit: %d bytes, %v", len(over), err)
	}
	for _, tc := range []struct {
		name, msg string
		body      []byte
	}{
		{"whole", "not a cluster node", whole},
		{"cut short", "replicate call: truncated or corrupt", whole[:len(whole)-3]},
		{"empty", "replicate call: truncated or corrupt", nil},
		{"over the limit", "too large", over},
	} {
		req, _ := http.NewRequest("POST", c.base+"/v1/internal/shard/"+proto.OpReplicate, bytes.NewReader(tc.body))
		req.Header.Set("Content-Type", proto.RPCBinaryContentType)
		req.Header.Set(proto.RPCHeader, proto.RPCVersion)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e proto.RPCError
		derr := gob.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != http.StatusConflict || derr != nil || e.Code != "invalid" || !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: status %d, %+v (%v), want 409 invalid: ...%s...", tc.name, resp.StatusCode, e, derr, tc.msg)
		}
	}
}

// TestRPCGetBinary: a get call in the binary layout is answered in it
// (found, and not found), and one in gob still in gob.
func TestRPCGetBinary(t *testing.T) {
	c, _ := newAPI(t, node.APIOptions{})
	c.want("POST", "/v1/collections", `{"name":"c","metric":"l2","dim":2}`, 201, "")
	c.want("POST", "/v1/collections/c/vectors", `{"items":[{"id":"b","vector":[3,4],"meta":{"x":1}}]}`, 200, "")
	post := func(ctype string, body []byte) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", c.base+"/v1/internal/shard/"+proto.OpGet, bytes.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set(proto.RPCHeader, proto.RPCVersion)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	for _, tc := range []struct {
		user  string
		found bool
	}{{"b", true}, {"nope", false}} {
		call, err := (&proto.RPCGet{Collection: "c", UserID: tc.user, WithVector: true}).MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		resp := post(proto.RPCBinaryContentType, call)
		raw, _ := io.ReadAll(resp.Body)
		var r proto.RPCGetReply
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != proto.RPCBinaryContentType {
			t.Fatalf("binary get of %s: status %d, %s: %q", tc.user, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
		}
		if err := r.UnmarshalBinary(raw); err != nil || r.Found != tc.found {
			t.Fatalf("binary get of %s: %+v %v, want found %t", tc.user, r, err, tc.found)
		}
		if tc.found {
			if v, _ := proto.UnpackVector(r.Item.Vector); r.Item.UserID != "b" || string(r.Item.Meta) != `{"x":1}` || !slices.Equal(v, []float32{3, 4}) {
				t.Fatalf("binary get of b: %+v (vector %v)", r.Item, v)
			}
		}
	}
	var g bytes.Buffer
	if err := gob.NewEncoder(&g).Encode(&proto.RPCGet{Collection: "c", UserID: "b"}); err != nil {
		t.Fatal(err)
	}
	resp := post(proto.RPCContentType, g.Bytes())
	var r proto.RPCGetReply
	if err := gob.NewDecoder(resp.Body).Decode(&r); resp.StatusCode != 200 || err != nil || !r.Found || r.Item.UserID != "b" || r.Item.Vector != nil {
		t.Fatalf("gob get of b: status %d, %+v %v", resp.StatusCode, r, err)
	}
}

// TestRPCEmptyReply: the empty reply written from a buffer made once is
// what a fresh gob encoder writes, and a caller that decodes it (one
// older than the skip in peers.call) reads an empty struct and nothing
// more.
func TestRPCEmptyReply(t *testing.T) {
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(&struct{}{}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(node.EmptyGob, b.Bytes()) || len(node.EmptyGob) == 0 {
		t.Fatalf("empty reply %x, a fresh encoder writes %x", node.EmptyGob, b.Bytes())
	}
	r := bytes.NewReader(node.EmptyGob)
	dec := gob.NewDecoder(r)
	if err := dec.Decode(&struct{}{}); err != nil {
		t.Fatalf("an older caller's decode: %v", err)
	}
	if err := dec.Decode(&struct{}{}); err != io.EOF {
		t.Fatalf("after the reply: %v, want EOF", err)
	}
}
