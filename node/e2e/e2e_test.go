package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"lookalike/proto"
)

func vec(r *rand.Rand, d int) []float32 {
	v := make([]float32, d)
	for i := range v {
		v[i] = r.Float32()*2 - 1
	}
	return v
}

func readNodeID(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestServeLifecycle: create, insert (JSON and bulk), search, train, the
// admin CLI, then a restart that keeps collections, centroids and the node
// id.
func TestServeLifecycle(t *testing.T) {
	s := startServer(t, "--auto-train-at", "-1", "--quiet")
	id := readNodeID(t, s.dir)
	if out, err := s.ctl("create", "c", "--dim", "16", "--metric", "l2", "--nlist", "8"); err != nil || !strings.Contains(out, "created c") {
		t.Fatalf("ctl create: %v: %s", err, out)
	}
	r := rand.New(rand.NewPCG(1, 2))
	const d = 16
	vecs := map[string][]float32{}
	var ins proto.Insert
	for i := 0; i < 200; i++ {
		id := fmt.Sprintf("v%d", i)
		vecs[id] = vec(r, d)
		ins.Items = append(ins.Items, proto.InsertItem{ID: id, Vector: vecs[id], Meta: []byte(fmt.Sprintf(`{"i":%d}`, i))})
	}
	var got proto.Inserted
	s.must("POST", "/v1/collections/c/vectors", ins, 200, &got)
	if got.Inserted != 200 || got.IDs[7] != "v7" {
		t.Fatalf("insert: %+v", got)
	}
	var bulk bytes.Buffer
	var items []proto.InsertItem
	for i := 0; i < 400; i++ {
		id := fmt.Sprintf("b%d", i)
		vecs[id] = vec(r, d)
		items = append(items, proto.InsertItem{ID: id, Vector: vecs[id]})
	}
	if err := proto.EncodeBulk(&bulk, items, true); err != nil {
		t.Fatal(err)
	}
	if st, _, err := s.call("POST", "/v1/collections/c/vectors", proto.BulkContentType, bulk.Bytes(), &got); st != 200 || got.Inserted != 400 {
		t.Fatalf("bulk insert: %d %v %+v", st, err, got)
	}
	search := func(body map[string]any, want string) proto.SearchResult {
		t.Helper()
		var res proto.SearchResult
		s.must("POST", "/v1/collections/c/search", body, 200, &res)
		if len(res.Hits) == 0 || res.Hits[0].ID != want {
			t.Fatalf("search %v: got %+v, want %s first", body, res.Hits, want)
		}
		seen := map[string]bool{}
		for _, h := range res.Hits {
			if seen[h.ID] {
				t.Fatalf("duplicate hit %s", h.ID)
			}
			seen[h.ID] = true
		}
		return res
	}
	res := search(map[string]any{"vector": vecs["v5"], "k": 3}, "v5")
	if res.Hits[0].Score > 1e-4 || string(res.Hits[0].Meta) != `{"i":5}` {
		t.Fatalf("exact hit: %+v", res.Hits[0])
	}
	search(map[string]any{"id": "b7", "k": 5}, "b7")
	var it proto.Item
	s.must("GET", "/v1/collections/c/items/v9?vector=true", nil, 200, &it)
	if len(it.Vector) != d || it.Vector[3] != vecs["v9"][3] {
		t.Fatalf("item: %+v", it)
	}
	if out, err := s.ctl("train", "c"); err != nil || !strings.Contains(out, "epoch 2") {
		t.Fatalf("ctl train: %v: %s", err, out)
	}
	c := s.waitReady("c")
	if c.TrainedNList != 8 || c.Epoch != 2 || c.Count != 600 {
		t.Fatalf("after training: %+v", c)
	}
	search(map[string]any{"vector": vecs["v5"], "k": 3, "nprobe": 8, "refine": 4}, "v5")
	search(map[string]any{"id": "b300", "k": 3, "nprobe": 8, "refine": 4}, "b300")
	// Upsert v5 elsewhere and delete v6: v5 is found once, at its new
	// vector; v6 never again (also after the restart below).
	old5 := vecs["v5"]
	vecs["v5"] = vec(r, d)
	s.must("POST", "/v1/collections/c/vectors", proto.Insert{Items: []proto.InsertItem{{ID: "v5", Vector: vecs["v5"]}}}, 200, nil)
	s.must("DELETE", "/v1/collections/c/items/v6", nil, 204, nil)
	upserted := func() {
		t.Helper()
		search(map[string]any{"vector": vecs["v5"], "k": 10, "nprobe": 8, "refine": 4}, "v5")
		var res proto.SearchResult
		s.must("POST", "/v1/collections/c/search", map[string]any{"vector": old5, "k": 10, "nprobe": 8, "refine": 4}, 200, &res)
		for _, h := range res.Hits {
			if h.ID == "v5" || h.ID == "v6" {
				t.Fatalf("old copy of v5 or deleted v6 found: %+v", res.Hits)
			}
		}
		res = proto.SearchResult{}
		s.must("POST", "/v1/collections/c/search", map[string]any{"vector": vecs["v6"], "k": 10, "nprobe": 8, "refine": 4}, 200, &res)
		for _, h := range res.Hits {
			if h.ID == "v6" {
				t.Fatalf("deleted v6 found: %+v", res.Hits)
			}
		}
		if st, _, _ := s.call("GET", "/v1/collections/c/items/v6", "", nil, nil); st != 404 {
			t.Fatalf("deleted v6: GET status %d", st)
		}
	}
	upserted()
	if out, err := s.ctl("collections"); err != nil || !strings.Contains(out, "ready") {
		t.Fatalf("ctl collections: %v: %s", err, out)
	}
	if out, err := s.ctl("status"); err != nil || !strings.Contains(out, id) {
		t.Fatalf("ctl status: %v: %s", err, out)
	}

	s.stop()
	s.restart()
	if got := readNodeID(t, s.dir); got != id {
		t.Fatalf("node id %q after restart, was %q", got, id)
	}
	c = s.collection("c")
	if c.State != proto.Ready || c.TrainedNList != 8 || c.Epoch != 2 || c.Count != 599 {
		t.Fatalf("after restart: %+v", c)
	}
	upserted()
	// And after a crash, from the log.
	s.must("DELETE", "/v1/collections/c/items/v8", nil, 204, nil)
	s.kill9()
	s.restart()
	upserted()
	if st, _, _ := s.call("GET", "/v1/collections/c/items/v8", "", nil, nil); st != 404 {
		t.Fatalf("v8 deleted before kill -9: GET status %d", st)
	}
	var cl proto.Cluster
	s.must("GET", "/v1/cluster", nil, 200, &cl)
	if cl.Leader != id || len(cl.Nodes) != 1 {
		t.Fatalf("cluster: %+v", cl)
	}
	// A different --node-id than the persisted one is refused.
	s.stop()
	out, err := runBin("serve", "--data", s.dir, "--http", s.http, "--raft", s.raft, "--node-id", "other")
	if err == nil || !strings.Contains(out, "keeps its id") {
		t.Fatalf("serve with another node id: %v: %s", err, out)
	}
	s.restart()
	if out, err := s.ctl("drop", "c"); err != nil {
		t.Fatalf("ctl drop: %v: %s", err, out)
	}
	if st, code, _ := s.call("GET", "/v1/collections/c", "", nil, nil); st != 404 || code != proto.NotFound {
		t.Fatalf("dropped collection: %d %s", st, code)
	}
	s.stop()
}

// TestKill9DuringInserts kills the server while writers stream
// acknowledged inserts and training runs (it starts at 1,500 vectors):
// after a restart every acknowledged id is present and searchable, once.
func TestKill9DuringInserts(t *testing.T) {
	s := startServer(t, "--auto-train-at", "1500", "--quiet")
	s.must("POST", "/v1/collections", map[string]any{"name": "k", "metric": "l2", "dim": 64}, 201, nil)
	const d = 64
	var (
		mu    sync.Mutex
		acked = map[string][]float32{}
		wg    sync.WaitGroup
	)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w), 3))
			for b := 0; ; b++ {
				var ins proto.Insert
				for i := 0; i < 25; i++ {
					ins.Items = append(ins.Items, proto.InsertItem{ID: fmt.Sprintf("w%d-%d-%d", w, b, i), Vector: vec(r, d)})
				}
				body, _ := jsonBytes(ins)
				if st, _, _ := s.call("POST", "/v1/collections/k/vectors", proto.JSONContentType, body, nil); st != 200 {
					return // the server died
				}
				mu.Lock()
				for _, it := range ins.Items {
					acked[it.ID] = it.Vector
				}
				mu.Unlock()
			}
		}(w)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		if n >= 1600 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.kill9()
	wg.Wait()
	if len(acked) < 1500 {
		t.Fatalf("only %d inserts acknowledged before the kill", len(acked))
	}
	s.restart()
	t.Logf("%d inserts acknowledged before kill -9; state after restart: %s", len(acked), s.collection("k").State)
	c := s.waitReady("k")
	if c.Count < int64(len(acked)) {
		t.Fatalf("count %d after restart, %d acknowledged", c.Count, len(acked))
	}
	for id := range acked {
		var it proto.Item
		s.must("GET", "/v1/collections/k/items/"+id, nil, 200, &it)
	}
	n := 0
	for id, v := range acked {
		if n++; n > 200 {
			break
		}
		var res proto.SearchResult
		s.must("POST", "/v1/collections/k/search", map[string]any{"vector": v, "k": 5, "nprobe": c.TrainedNList, "refine": 8}, 200, &res)
		if len(res.Hits) == 0 || res.Hits[0].ID != id || res.Hits[0].Score > 1e-4 {
			t.Fatalf("search for %s: %+v", id, res.Hits)
		}
		for _, h := range res.Hits[1:] {
			if h.ID == id {
				t.Fatalf("%s found twice: %+v", id, res.Hits)
			}
		}
	}
	s.stop()
}

// TestBadInput: each bad request gets its documented 4xx and error code,
// and nothing is stored.
func TestBadInput(t *testing.T) {
	s := startServer(t, "--max-body-bytes", "65536", "--quiet")
	s.must("POST", "/v1/collections", map[string]any{"name": "b", "metric": "cosine", "dim": 4}, 201, nil)
	goodBulk := func(mut func([]byte) []byte) []byte {
		var b bytes.Buffer
		proto.EncodeBulk(&b, []proto.InsertItem{{ID: "x", Vector: []float32{1, 2, 3, 4}}, {ID: "y", Vector: []float32{4, 3, 2, 1}}}, true)
		return mut(b.Bytes())
	}
	var wrongDim bytes.Buffer
	proto.EncodeBulk(&wrongDim, []proto.InsertItem{{ID: "x", Vector: []float32{1, 2, 3}}}, true)
	long := strings.Repeat("é", 129)
	for _, tc := range []struct {
		name, method, path, ctype, body string
		status                          int
		code                            proto.Code
	}{
		{"wrong dim", "POST", "/v1/collections/b/vectors", "", `{"items":[{"id":"x","vector":[1,2,3,4]},{"id":"y","vector":[1,2,3]}]}`, 400, proto.BadRequest},
		{"non-finite", "POST", "/v1/collections/b/vectors", "", `{"items":[{"id":"x","vector":[1,2,3,1e39]}]}`, 400, proto.BadRequest},
		{"NaN", "POST", "/v1/collections/b/vectors", "", `{"items":[{"id":"x","vector":[1,2,3,NaN]}]}`, 400, proto.BadRequest},
		{"zero vector under cosine", "POST", "/v1/collections/b/vectors", "", `{"items":[{"id":"x","vector":[0,0,0,0]}]}`, 400, proto.BadRequest},
		{"malformed JSON", "POST", "/v1/collections/b/vectors", "", `{"items":[{"id":"x","vector":[1,2,3,4]}`, 400, proto.BadRequest},
		{"unknown field", "POST", "/v1/collections/b/vectors", "", `{"items":[{"id":"x","vector":[1,2,3,4],"colour":1}]}`, 400, proto.BadRequest},
		{"empty batch", "POST", "/v1/collections/b/vectors", "", `{"items":[]}`, 400, proto.BadRequest},
		{"id over 256 bytes", "POST", "/v1/collections/b/vectors", "", `{"items":[{"id":"` + long + `","vector":[1,2,3,4]}]}`, 400, proto.BadRequest},
		{"oversized body", "POST", "/v1/collections/b/vectors", "", `{"items":[{"id":"x","vector":[1,2,3,4],"meta":{"a":"` + strings.Repeat("x", 70000) + `"}}]}`, 413, proto.TooLarge},
		{"unknown collection", "POST", "/v1/collections/nope/vectors", "", `{"items":[{"id":"x","vector":[1,2,3,4]}]}`, 404, proto.NotFound},
		{"duplicate collection", "POST", "/v1/collections", "", `{"name":"b","metric":"l2","dim":4}`, 409, proto.Conflict},
		{"bad collection name", "POST", "/v1/collections", "", `{"name":"B!","metric":"l2","dim":4}`, 400, proto.BadRequest},
		{"k 0", "POST", "/v1/collections/b/search", "", `{"vector":[1,2,3,4],"k":0}`, 400, proto.BadRequest},
		{"k 1025", "POST", "/v1/collections/b/search", "", `{"vector":[1,2,3,4],"k":1025}`, 400, proto.BadRequest},
		{"k -1", "POST", "/v1/collections/b/search", "", `{"vector":[1,2,3,4],"k":-1}`, 400, proto.BadRequest},
		{"search wrong dim", "POST", "/v1/collections/b/search", "", `{"vector":[1,2,3]}`, 400, proto.BadRequest},
		{"search by absent id", "POST", "/v1/collections/b/search", "", `{"id":"nobody"}`, 404, proto.NotFound},
		{"bulk bad magic", "POST", "/v1/collections/b/vectors", proto.BulkContentType, string(goodBulk(func(b []byte) []byte { b[0] = 'X'; return b })), 400, proto.BadRequest},
		{"bulk truncated", "POST", "/v1/collections/b/vectors", proto.BulkContentType, string(goodBulk(func(b []byte) []byte { return b[:len(b)-9] })), 400, proto.BadRequest},
		{"bulk bad crc", "POST", "/v1/collections/b/vectors", proto.BulkContentType, string(goodBulk(func(b []byte) []byte { b[len(b)-1] ^= 1; return b })), 400, proto.BadRequest},
		{"bulk flipped float", "POST", "/v1/collections/b/vectors", proto.BulkContentType, string(goodBulk(func(b []byte) []byte { b[30] ^= 0x40; return b })), 400, proto.BadRequest},
		{"bulk trailing bytes", "POST", "/v1/collections/b/vectors", proto.BulkContentType, string(goodBulk(func(b []byte) []byte { return append(b, 0) })), 400, proto.BadRequest},
		{"bulk wrong dim", "POST", "/v1/collections/b/vectors", proto.BulkContentType, wrongDim.String(), 400, proto.BadRequest},
		{"bulk empty", "POST", "/v1/collections/b/vectors", proto.BulkContentType, "", 400, proto.BadRequest},
	} {
		st, code, err := s.call(tc.method, tc.path, tc.ctype, []byte(tc.body), nil)
		if st != tc.status || code != tc.code {
			t.Errorf("%s: got %d %s (%v), want %d %s", tc.name, st, code, err, tc.status, tc.code)
		}
	}
	c := s.collection("b")
	if c.Count != 0 {
		t.Fatalf("%d items stored by bad requests", c.Count)
	}
	for _, id := range []string{"x", "y"} {
		if st, _, _ := s.call("GET", "/v1/collections/b/items/"+id, "", nil, nil); st != 404 {
			t.Fatalf("item %s: status %d after bad requests", id, st)
		}
	}
	s.stop()
}

// TestKeys: --api-key guards writes, --read-key reads; /healthz is open.
func TestKeys(t *testing.T) {
	s := startServer(t, "--api-key", "admin-key", "--read-key", "read-key", "--quiet")
	for _, tc := range []struct {
		method, path, key, body string
		status                  int
	}{
		{"POST", "/v1/collections", "", `{"name":"c","metric":"l2","dim":2}`, 401},
		{"POST", "/v1/collections", "read-key", `{"name":"c","metric":"l2","dim":2}`, 401},
		{"POST", "/v1/collections", "admin-key", `{"name":"c","metric":"l2","dim":2}`, 201},
		{"GET", "/v1/collections", "", "", 401},
		{"GET", "/v1/collections", "wrong", "", 401},
		{"GET", "/v1/collections", "read-key", "", 200},
		{"GET", "/v1/collections", "admin-key", "", 200},
		{"POST", "/v1/collections/c/vectors", "read-key", `{"items":[{"vector":[1,2]}]}`, 401},
		{"POST", "/v1/collections/c/vectors", "admin-key", `{"items":[{"vector":[1,2]}]}`, 200},
		{"POST", "/v1/collections/c/search", "read-key", `{"vector":[1,2]}`, 200},
		{"GET", "/healthz", "", "", 200},
	} {
		st, err := callKey(s, tc.method, tc.path, tc.key, tc.body)
		if st != tc.status {
			t.Errorf("%s %s with key %q: %d (%v), want %d", tc.method, tc.path, tc.key, st, err, tc.status)
		}
	}
	s.stop()
}

// TestKill9DuringTraining kills the server while it trains or moves the
// buffer into lists: after a restart the collection answers, and every
// acknowledged vector is found exactly once.
func TestKill9DuringTraining(t *testing.T) {
	s := startServer(t, "--auto-train-at", "-1", "--quiet")
	const d, nb = 32, 20000
	s.must("POST", "/v1/collections", map[string]any{"name": "t", "metric": "l2", "dim": d, "nlist": 128}, 201, nil)
	r := rand.New(rand.NewPCG(9, 9))
	vecs := make([][]float32, nb)
	for b := 0; b < nb; b += 10000 {
		items := make([]proto.InsertItem, 10000)
		for i := range items {
			vecs[b+i] = vec(r, d)
			items[i] = proto.InsertItem{ID: fmt.Sprintf("t%d", b+i), Vector: vecs[b+i]}
		}
		var buf bytes.Buffer
		proto.EncodeBulk(&buf, items, false)
		if st, _, err := s.call("POST", "/v1/collections/t/vectors", proto.BulkContentType, buf.Bytes(), nil); st != 200 {
			t.Fatal(err)
		}
	}
	s.must("POST", "/v1/collections/t/train", nil, 202, nil)
	time.Sleep(150 * time.Millisecond)
	state := s.collection("t").State
	s.kill9()
	s.restart()
	c := s.waitReady("t")
	t.Logf("killed while %s; after restart: %+v", state, c)
	if c.Count != nb {
		t.Fatalf("count %d after restart, want %d", c.Count, nb)
	}
	for i := 0; i < nb; i += 97 {
		id := fmt.Sprintf("t%d", i)
		var res proto.SearchResult
		s.must("POST", "/v1/collections/t/search", map[string]any{"vector": vecs[i], "k": 5, "nprobe": 128, "refine": 8}, 200, &res)
		if len(res.Hits) == 0 || res.Hits[0].ID != id {
			t.Fatalf("search for %s: %+v", id, res.Hits)
		}
		for _, h := range res.Hits[1:] {
			if h.ID == id {
				t.Fatalf("%s found twice: %+v", id, res.Hits)
			}
		}
	}
	s.stop()
}

// TestEnvAndConfig: settings come from LOOKALIKE_* variables and the
// --config file; the command line wins over the environment, which wins
// over the file.
func TestEnvAndConfig(t *testing.T) {
	s := newServer(t, "--quiet")
	cfg := filepath.Join(t.TempDir(), "lookalike.conf")
	os.WriteFile(cfg, []byte("# keys\napi-key = file-admin\nread-key = \"file-read\"\nmax-items = 2\n"), 0o600)
	s.args = append(s.args, "--config", cfg, "--max-items", "3")
	s.env = []string{"LOOKALIKE_READ_KEY=env-read"}
	s.start()
	for _, tc := range []struct {
		method, path, key, body string
		status                  int
	}{
		{"POST", "/v1/collections", "file-admin", `{"name":"c","metric":"l2","dim":1}`, 201},
		{"GET", "/v1/collections", "file-read", "", 401}, // the environment wins over the file
		{"GET", "/v1/collections", "env-read", "", 200},
		{"POST", "/v1/collections/c/vectors", "file-admin", `{"items":[{"vector":[1]},{"vector":[2]},{"vector":[3]}]}`, 200}, // the flag wins
		{"POST", "/v1/collections/c/vectors", "file-admin", `{"items":[{"vector":[1]},{"vector":[2]},{"vector":[3]},{"vector":[4]}]}`, 413},
	} {
		if st, err := callKey(s, tc.method, tc.path, tc.key, tc.body); st != tc.status {
			t.Errorf("%s %s with key %q: %d (%v), want %d", tc.method, tc.path, tc.key, st, err, tc.status)
		}
	}
	s.stop()
	if out, err := runBin("serve", "--data", s.dir, "--http", s.http, "--raft", s.raft, "--config", filepath.Join(s.dir, "nope.conf")); err == nil {
		t.Fatalf("serve with a missing config file: %s", out)
	}
	bad := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(bad, []byte("colour = blue\n"), 0o600)
	if out, err := runBin("serve", "--data", s.dir, "--http", s.http, "--raft", s.raft, "--config", bad); err == nil || !strings.Contains(out, "unknown setting") {
		t.Fatalf("serve with an unknown setting: %v: %s", err, out)
	}
}
