package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/proto"
)

// The cluster data plane, with real processes: a trained collection's
// lists are sharded over the nodes with replicas, every node answers
// writes, searches and reads, and kill -9 of a node (then of the Raft
// leader) loses no acknowledged write and fails no search.

// cdStartCluster is startCluster (n nodes, --bootstrap-expect n, no gossip
// key) with extra serve flags on every node.
// Every node also serves Go's profiler on a loopback port (--debug-addr),
// so that a failed test can show where each node's goroutines were.
func cdStartCluster(t *testing.T, n int, extra ...string) []*clusterNode {
	t.Helper()
	nodes := startClusterWith(t, n, n, "", func() []string { return append([]string{"--debug-addr", freeAddr(t)}, extra...) })
	return nodes
}

// cdLogTails logs, when the test has failed, the end of each node's log
// and the goroutines of each node still running (pprof's debug=1 form:
// one entry per distinct stack, with its count): a stall shows there.
//
// Under $LOOKALIKE_E2E_LOG_DIR every node's whole log (restarts
// included) is written there, failed or not.
func cdLogTails(t *testing.T, nodes []*clusterNode, lines int) {
	t.Cleanup(func() {
		if dir := os.Getenv("LOOKALIKE_E2E_LOG_DIR"); dir != "" {
			stamp := time.Now().Format("150405")
			for _, c := range nodes {
				f := filepath.Join(dir, fmt.Sprintf("%s-%s-%s.log", strings.ReplaceAll(t.Name(), "/", "_"), stamp, c.id))
				if err := os.WriteFile(f, []byte(c.fullLog()), 0o644); err != nil {
					t.Logf("log of %s: %v", c.id, err)
				}
			}
		}
		if !t.Failed() {
			return
		}
		hc := &http.Client{Timeout: 5 * time.Second}
		for _, c := range nodes {
			if c.log == nil {
				continue
			}
			l := strings.Split(strings.TrimSpace(c.fullLog()), "\n")
			t.Logf("--- last %d log lines of %s ---\n%s", min(lines, len(l)), c.id, strings.Join(l[max(0, len(l)-lines):], "\n"))
			addr := c.debugAddr()
			if addr == "" || c.cmd == nil || c.cmd.ProcessState != nil {
				continue
			}
			resp, err := hc.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
			if err != nil {
				t.Logf("--- goroutines of %s: %v", c.id, err)
				continue
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			g := strings.Split(strings.TrimSpace(string(raw)), "\n")
			const most = 400
			t.Logf("--- goroutines of %s (first %d of %d lines) ---\n%s", c.id, min(most, len(g)), len(g), strings.Join(g[:min(most, len(g))], "\n"))
		}
	})
}

// cdStallDump returns a load's onStall for nodes: twice, 3 s apart, it
// fetches every running node's goroutines (pprof debug=2, with how long
// each has waited) and its view of the cluster, writes them and every
// node's log so far in a new folder under $LOOKALIKE_E2E_DUMP_DIR (kept)
// or the system's temporary one (kept when the test fails) and, when the
// test fails, logs the goroutines in debug=1 form.
func cdStallDump(t *testing.T, nodes []*clusterNode) func(what string) {
	var (
		mu     sync.Mutex
		report []string
	)
	t.Cleanup(func() {
		mu.Lock()
		defer mu.Unlock()
		if t.Failed() && len(report) > 0 {
			t.Logf("--- taken during the stall ---\n%s", strings.Join(report, "\n"))
		}
	})
	return func(what string) {
		parent := os.Getenv("LOOKALIKE_E2E_DUMP_DIR")
		dir, err := os.MkdirTemp(parent, "lookalike-stall-"+strings.ReplaceAll(t.Name(), "/", "_")+"-")
		if err != nil {
			t.Logf("stall dump: %v", err)
			return
		}
		if parent == "" {
			// Kept when the test fails, or always under the variable.
			t.Cleanup(func() {
				if !t.Failed() {
					os.RemoveAll(dir)
				}
			})
		}
		t.Logf("%s: dumping every node's goroutines into %s", what, dir)
		hc := &http.Client{Timeout: 5 * time.Second}
		get := func(url string) string {
			resp, err := hc.Get(url)
			if err != nil {
				return err.Error()
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return string(b)
		}
		for round := 1; round <= 2; round++ {
			if round > 1 {
				time.Sleep(3 * time.Second)
			}
			for _, c := range nodes {
				if c.log != nil {
					_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%d.log", c.id, round)), []byte(c.fullLog()), 0o644)
				}
				addr := c.debugAddr()
				if addr == "" || c.cmd == nil || c.cmd.ProcessState != nil {
					continue
				}
				at := time.Now().Format("15:04:05.000")
				full := get("http://" + addr + "/debug/pprof/goroutine?debug=2")
				view := get(c.url("/v1/cluster"))
				name := fmt.Sprintf("%s-%d", c.id, round)
				_ = os.WriteFile(filepath.Join(dir, name+".goroutines"), []byte(full), 0o644)
				_ = os.WriteFile(filepath.Join(dir, name+".cluster.json"), []byte(view), 0o644)
				short := strings.Split(strings.TrimSpace(get("http://"+addr+"/debug/pprof/goroutine?debug=1")), "\n")
				mu.Lock()
				report = append(report, fmt.Sprintf("--- %s, dump %d at %s (%s): goroutines, first %d of %d lines ---\n%s\n--- its view ---\n%s",
					c.id, round, at, what, min(300, len(short)), len(short), strings.Join(short[:min(300, len(short))], "\n"), view))
				mu.Unlock()
			}
		}
	}
}

// cdWaitFormed waits until every node sees one leader, len(nodes) voters
// and every member alive; it returns the last node's view.
func cdWaitFormed(t *testing.T, nodes []*clusterNode) proto.Cluster {
	t.Helper()
	return cdWaitFormedWithin(t, nodes, 20*time.Second)
}

// cdWaitFormedWithin is cdWaitFormed with a limit per node.
func cdWaitFormedWithin(t *testing.T, nodes []*clusterNode, limit time.Duration) proto.Cluster {
	t.Helper()
	var cu proto.Cluster
	for _, c := range nodes {
		cu = waitCluster(t, c, limit, "cluster formed", func(cu proto.Cluster) bool {
			v, _ := roles(cu)
			alive := 0
			for _, n := range cu.Nodes {
				if n.State == "alive" {
					alive++
				}
			}
			return cu.Leader != "" && len(v) == len(nodes) && alive == len(nodes)
		})
	}
	return cu
}

// cdPoll polls c's /v1/cluster until ok holds or limit passes (no
// failure: the caller decides).
func cdPoll(c *clusterNode, limit time.Duration, ok func(proto.Cluster) bool) (proto.Cluster, bool) {
	deadline := time.Now().Add(limit)
	var last proto.Cluster
	for {
		cu, err := c.cluster()
		if err == nil {
			if ok(cu) {
				return cu, true
			}
			last = cu
		}
		if time.Now().After(deadline) {
			return last, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cdCall does one request with its own timeout and decodes a 2xx JSON
// answer into out; a non-2xx answer's body is in the error.
func cdCall(s *server, timeout time.Duration, method, path string, body []byte, out any) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.url(path), bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", proto.JSONContentType)
	}
	resp, err := s.hc().Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if resp.StatusCode >= 300 {
		return resp.StatusCode, fmt.Errorf("%d: %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %q: %v", b, err)
		}
	}
	return resp.StatusCode, nil
}

// cdRetry is cdCall that retries 503 and 429 (a leader not ready yet, a
// failover) until limit.
func cdRetry(s *server, limit time.Duration, method, path string, body []byte, out any) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		st, err := cdCall(s, 30*time.Second, method, path, body, out)
		if st >= 200 && st < 300 {
			return st, nil
		}
		if (st != 503 && st != 429) || time.Now().After(deadline) {
			return st, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cdWaitCollection waits until every node describes collection name (a
// create through one node reaches the others' tables).
func cdWaitCollection(t *testing.T, nodes []*clusterNode, name string) {
	t.Helper()
	cdWaitCollectionDim(t, nodes, name, 0)
}

// cdWaitCollectionDim is cdWaitCollection for a collection of dimension
// dim (any when 0): a node replaying its Raft log after a restart
// describes an earlier collection of the same name first.
func cdWaitCollectionDim(t *testing.T, nodes []*clusterNode, name string, dim int) {
	t.Helper()
	for _, c := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for {
			var col proto.Collection
			st, err := cdCall(c.server, 10*time.Second, "GET", "/v1/collections/"+name, nil, &col)
			if st == 200 && (dim == 0 || col.Dim == dim) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("collection %s (dim %d) not on %s within 10 s: %d %v, dim %d", name, dim, c.id, st, err, col.Dim)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// cdWaitReady waits until c describes collection name as ready; a node
// that has just restarted may answer 404 until its table catches up.
func cdWaitReady(t *testing.T, c *clusterNode, name string, limit time.Duration) proto.Collection {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var col proto.Collection
		st, err := cdCall(c.server, 10*time.Second, "GET", "/v1/collections/"+name, nil, &col)
		if st == 200 && col.State == proto.Ready {
			return col
		}
		if time.Now().After(deadline) {
			t.Fatalf("collection %s not ready on %s within %v: %d %v %+v", name, c.id, limit, st, err, col)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// cdListShards returns the list shards (lists > 0) of collection coll.
func cdListShards(cu proto.Cluster, coll string) []proto.ClusterShard {
	var out []proto.ClusterShard
	for _, s := range cu.Shards {
		if s.Collection == coll && s.Lists > 0 {
			out = append(out, s)
		}
	}
	return out
}

// cdDirShards returns the shards of coll's id directory (name/ids/p).
func cdDirShards(cu proto.Cluster, coll string) []proto.ClusterShard {
	var out []proto.ClusterShard
	for _, s := range cu.Shards {
		if s.Collection == coll && strings.HasPrefix(s.Shard, coll+"/ids/") {
			out = append(out, s)
		}
	}
	return out
}

// cdDataShards returns coll's list shards and its id directory's
// partitions: what must have its replicas back before another node may
// go (a write needs both its list's shard and its id's partition).
func cdDataShards(cu proto.Cluster, coll string) []proto.ClusterShard {
	return append(cdListShards(cu, coll), cdDirShards(cu, coll)...)
}

func cdSumLists(cu proto.Cluster, coll string) int {
	n := 0
	for _, s := range cdListShards(cu, coll) {
		n += s.Lists
	}
	return n
}

func cdNodeState(cu proto.Cluster, id string) string {
	for _, n := range cu.Nodes {
		if n.ID == id {
			return n.State
		}
	}
	return ""
}

func cdShardsString(shards []proto.ClusterShard) string {
	var b strings.Builder
	for _, s := range shards {
		fmt.Fprintf(&b, "\n  %s lists %d epoch %d primary %s replicas %v in_sync %v", s.Shard, s.Lists, s.Epoch, s.Primary, s.Replicas, s.InSync)
		if len(s.Away) > 0 {
			fmt.Fprintf(&b, " away %v", s.Away)
		}
	}
	return b.String()
}

// cdHits is hits as "id score" pairs.
func cdHits(hits []proto.Hit) string {
	var b strings.Builder
	for _, h := range hits {
		fmt.Fprintf(&b, "%s %.5f, ", h.ID, h.Score)
	}
	return strings.TrimSuffix(b.String(), ", ")
}

// cdInsertBody is the JSON insert of vecs under ids, meta {"i":first+j}.
func cdInsertBody(ids []string, vecs [][]float32, first int) []byte {
	var ins proto.Insert
	for j := range ids {
		ins.Items = append(ins.Items, proto.InsertItem{ID: ids[j], Vector: vecs[j], Meta: []byte(fmt.Sprintf(`{"i":%d}`, first+j))})
	}
	b, _ := json.Marshal(ins)
	return b
}

func cdMetrics(s *server) (string, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(s.url("/metrics"))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("/metrics: status %d", resp.StatusCode)
	}
	return string(b), err
}

// TestClusterRecallEqualsOneNode: the same 6,000 vectors inserted and
// trained on one node and on a three-node cluster (replicas 2) give the
// same top-10 through every cluster node: same ids in the same order,
// same scores, never partial. Training is deterministic (ivf's seed, 1 by
// default on every node, and the same rows in the same order), so both
// indexes have the same centroids and lists.
func TestClusterRecallEqualsOneNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four server processes")
	}
	begin := time.Now()
	const (
		d, n, nlist, batch = 32, 6000, 16, 500
		nq, k, nprobe      = 200, 10, 4
		name               = "rc"
	)
	// --auto-train-at -1: a fixed nlist would train by itself at 39×16
	// vectors, at a moment that depends on timing.
	single := startServer(t, "--model", "none", "--auto-train-at", "-1", "--quiet")
	nodes := cdStartCluster(t, 3, "--auto-train-at", "-1")
	cdLogTails(t, nodes, 40)
	cu := cdWaitFormed(t, nodes)
	t.Logf("cluster formed in %v, leader %s", time.Since(begin).Round(time.Millisecond), cu.Leader)

	single.must("POST", "/v1/collections", map[string]any{"name": name, "metric": "l2", "dim": d, "nlist": nlist}, 201, nil)
	create(t, nodes[0], fmt.Sprintf(`{"name":%q,"metric":"l2","dim":%d,"nlist":%d,"replicas":2}`, name, d, nlist))
	cdWaitCollection(t, nodes, name)

	r := rand.New(rand.NewPCG(11, 12))
	ids := make([]string, n)
	vecs := make([][]float32, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("item-%d", i)
		vecs[i] = vec(r, d)
	}
	insStart := time.Now()
	for b := 0; b < n; b += batch {
		body := cdInsertBody(ids[b:b+batch], vecs[b:b+batch], b)
		var got proto.Inserted
		if st, _, err := single.call("POST", "/v1/collections/"+name+"/vectors", proto.JSONContentType, body, &got); st != 200 || got.Inserted != batch {
			t.Fatalf("single node insert %d: %d %v %+v", b, st, err, got.Inserted)
		}
		c := nodes[(b/batch)%len(nodes)] // every node is a gateway
		got = proto.Inserted{}
		if st, err := cdRetry(c.server, 10*time.Second, "POST", "/v1/collections/"+name+"/vectors", body, &got); st != 200 || got.Inserted != batch {
			t.Fatalf("cluster insert %d through %s: %d %v %+v", b, c.id, st, err, got.Inserted)
		}
	}
	t.Logf("inserted %d vectors on each in %v", n, time.Since(insStart).Round(time.Millisecond))
	// Untrained, a user id's copy can only be in its buffer shard, which
	// the write replaced: no eviction call (docs/node.md, "The id
	// directory").
	if d := cdDeleteCalls(t, nodes); d != 0 {
		t.Errorf("%v delete calls served while inserting new ids into the untrained collection, want 0", d)
	}
	// Gets by id before training read the id's buffer shard alone, not
	// the id directory (no entry exists yet): at most one get call each,
	// none where the gateway holds the buffer shard.
	cu = waitCluster(t, nodes[0], 15*time.Second, "buffer shards of "+name, func(cu proto.Cluster) bool {
		return len(cdBufferShards(cu, name)) > 0
	})
	bufs := cdBufferShards(cu, name)
	gets0, remote := cdServed(t, nodes, "get"), 0
	for i := 0; i < n; i += 97 {
		c := nodes[i%len(nodes)]
		if st, _, err := c.call("GET", "/v1/collections/"+name+"/items/"+ids[i], "", nil, nil); st != 200 {
			t.Fatalf("untrained: GET %s through %s: %d %v", ids[i], c.id, st, err)
		}
		if !slices.Contains(bufs[meta.BufferShard(ids[i], len(bufs))].InSync, c.id) {
			remote++
		}
	}
	if st, _, _ := nodes[1].call("GET", "/v1/collections/"+name+"/items/no-such-id", "", nil, nil); st != 404 {
		t.Errorf("untrained: GET of an absent id: %d, want 404", st)
	}
	if g := cdServed(t, nodes, "get") - gets0; g > float64(remote+1) {
		t.Errorf("untrained: the gets served %v get calls, want at most %d (one per id whose buffer shard is not on its gateway)", g, remote+1)
	}

	trainStart := time.Now()
	single.must("POST", "/v1/collections/"+name+"/train", nil, 202, nil)
	if st, err := cdRetry(nodes[1].server, 10*time.Second, "POST", "/v1/collections/"+name+"/train", nil, nil); st != 202 {
		t.Fatalf("cluster train through %s: %d %v", nodes[1].id, st, err)
	}
	sc := single.waitReady(name)
	for _, c := range nodes {
		cc := c.waitReadyFor(name, 60*time.Second)
		if cc.TrainedNList != nlist {
			t.Errorf("%s describes %+v, want trained_nlist %d", c.id, cc, nlist)
		}
		if cc.Count != n {
			t.Logf("%s describes count %d once ready, want %d (checked again at the end)", c.id, cc.Count, n)
		}
	}
	t.Logf("trained, ready on every node %v after POST train (single node: %+v)", time.Since(trainStart).Round(time.Millisecond), sc)

	// The shard map: the 16 lists in shards of 2 replicas, primaries on
	// at least two nodes.
	cu = waitCluster(t, nodes[0], 15*time.Second, "list shards of "+name+" covering every list", func(cu proto.Cluster) bool {
		return cdSumLists(cu, name) == nlist
	})
	shards := cdListShards(cu, name)
	t.Logf("list shards of %s:%s", name, cdShardsString(shards))
	primaries := map[string]bool{}
	for _, s := range shards {
		primaries[s.Primary] = true
		rs := slices.Clone(s.Replicas)
		slices.Sort(rs)
		if len(rs) != 2 || rs[0] == rs[1] || !slices.Contains(rs, s.Primary) {
			t.Errorf("shard %s: primary %s, replicas %v: want 2 distinct replicas, the primary among them", s.Shard, s.Primary, s.Replicas)
		}
	}
	if len(primaries) < 2 {
		t.Errorf("list shards have %d distinct primaries (%v), want ≥ 2", len(primaries), primaries)
	}

	// Same queries: same answers through every node.
	search := func(c *clusterNode, body []byte, want proto.SearchResult) string {
		var got proto.SearchResult
		st, err := cdCall(c.server, 30*time.Second, "POST", "/v1/collections/"+name+"/search", body, &got)
		switch {
		case st != 200:
			return fmt.Sprintf("%d %v", st, err)
		case got.Partial || len(got.MissingShards) > 0:
			return fmt.Sprintf("partial, missing %v", got.MissingShards)
		case len(got.Hits) != len(want.Hits):
			return fmt.Sprintf("%d hits, single node %d", len(got.Hits), len(want.Hits))
		}
		for i := range got.Hits {
			g, w := got.Hits[i], want.Hits[i]
			if g.ID != w.ID || math.Abs(float64(g.Score-w.Score)) > 1e-4 || string(g.Meta) != string(w.Meta) {
				return fmt.Sprintf("hit %d is %s %.6f %s, single node %s %.6f %s\ncluster: %v\nsingle:  %v", i, g.ID, g.Score, g.Meta, w.ID, w.Score, w.Meta, cdHits(got.Hits), cdHits(want.Hits))
			}
		}
		return ""
	}
	type badQuery struct {
		q    int
		c    *clusterNode
		body []byte
		want proto.SearchResult
	}
	var bad []badQuery
	qr := rand.New(rand.NewPCG(21, 22))
	searchStart := time.Now()
	for q := 0; q < nq; q++ {
		body, _ := json.Marshal(map[string]any{"vector": vec(qr, d), "k": k, "nprobe": nprobe})
		var want proto.SearchResult
		if st, _, err := single.call("POST", "/v1/collections/"+name+"/search", proto.JSONContentType, body, &want); st != 200 || len(want.Hits) != k {
			t.Fatalf("single node query %d: %d %v, %d hits", q, st, err, len(want.Hits))
		}
		for _, c := range nodes {
			if diff := search(c, body, want); diff != "" {
				if bad = append(bad, badQuery{q, c, body, want}); len(bad) <= 10 {
					t.Errorf("query %d through %s (%v after ready): %s", q, c.id, time.Since(searchStart).Round(time.Millisecond), diff)
				}
			}
		}
	}
	if len(bad) > 0 {
		// Diagnosis: do the same queries answer right a little later?
		time.Sleep(2 * time.Second)
		still := 0
		for _, b := range bad {
			if search(b.c, b.body, b.want) != "" {
				still++
			}
		}
		t.Errorf("%d of %d cluster answers differ from the single node's; asked again 2 s later, %d still differ", len(bad), nq*len(nodes), still)
	} else {
		t.Logf("%d queries × %d nodes equal to the single node's answers (%v)", nq, len(nodes), time.Since(searchStart).Round(time.Millisecond))
	}

	// Reads through every node.
	gr := rand.New(rand.NewPCG(31, 32))
	for j := 0; j < 50; j++ {
		i := gr.IntN(n)
		for _, c := range nodes {
			var it proto.Item
			st, err := cdCall(c.server, 30*time.Second, "GET", "/v1/collections/"+name+"/items/"+ids[i]+"?vector=true", nil, &it)
			if st != 200 {
				t.Fatalf("GET %s through %s: %d %v", ids[i], c.id, st, err)
			}
			if it.ID != ids[i] || !slices.Equal(it.Vector, vecs[i]) || string(it.Meta) != fmt.Sprintf(`{"i":%d}`, i) {
				t.Fatalf("GET %s through %s: %+v, want vector %v", ids[i], c.id, it, vecs[i])
			}
		}
	}

	// The id directory: one partition per node live at the creation (the
	// third may not be in the table yet when the cluster has formed), with
	// the collection's replicas, the primaries on distinct nodes.
	parts := cdDirShards(cu, name)
	partPrimaries := map[string]bool{}
	for _, s := range parts {
		partPrimaries[s.Primary] = true
	}
	t.Logf("id directory partitions:%s", cdShardsString(parts))
	if len(parts) < 2 || len(parts) > len(nodes) || len(partPrimaries) != len(parts) {
		t.Errorf("id directory partitions %s, want 2 to %d with distinct primaries", cdShardsString(parts), len(nodes))
	}
	for _, s := range parts {
		if len(s.InSync) != 2 {
			t.Errorf("id directory partition %s: in sync %v, want 2 replicas", s.Shard, s.InSync)
		}
	}
	// New ids into the trained collection: the directory knows them as
	// new, so no eviction call goes anywhere.
	const nn = 500
	nids, nvecs := make([]string, nn), make([][]float32, nn)
	for i := range nids {
		nids[i], nvecs[i] = fmt.Sprintf("new-%d", i), vec(r, d)
	}
	before := cdDeleteCalls(t, nodes)
	for b := 0; b < nn; b += batch / 2 {
		body := cdInsertBody(nids[b:b+batch/2], nvecs[b:b+batch/2], 2*n+b)
		if st, _, err := single.call("POST", "/v1/collections/"+name+"/vectors", proto.JSONContentType, body, nil); st != 200 {
			t.Fatalf("single node insert of new ids %d: %d %v", b, st, err)
		}
		if st, err := cdRetry(nodes[b/(batch/2)%len(nodes)].server, 10*time.Second, "POST", "/v1/collections/"+name+"/vectors", body, nil); st != 200 {
			t.Fatalf("cluster insert of new ids %d: %d %v", b, st, err)
		}
	}
	if d := cdDeleteCalls(t, nodes) - before; d != 0 {
		t.Errorf("%v delete calls served while inserting new ids into the trained collection, want 0", d)
	}
	for _, i := range []int{0, nn / 2, nn - 1} {
		var it proto.Item
		if st, err := cdCall(nodes[i%len(nodes)].server, 30*time.Second, "GET", "/v1/collections/"+name+"/items/"+nids[i]+"?vector=true", nil, &it); st != 200 || !slices.Equal(it.Vector, nvecs[i]) {
			t.Fatalf("GET %s: %d %v %+v", nids[i], st, err, it)
		}
	}
	if st, err := cdCall(nodes[0].server, 30*time.Second, "GET", "/v1/collections/"+name+"/items/never-written", nil, nil); st != 404 {
		t.Fatalf("GET of an id never written: %d %v, want 404", st, err)
	}
	// The importer's resume check through every node: ids from before and
	// after training, and ids never written.
	var look []string
	var want []bool
	for i := range 40 {
		look, want = append(look, ids[i*(n/40)], nids[i*(nn/40)], fmt.Sprintf("absent-%d", i)), append(want, true, true, false)
	}
	lb, _ := json.Marshal(proto.Lookup{IDs: look})
	for _, c := range nodes {
		var lr proto.LookupResult
		if st, err := cdCall(c.server, 30*time.Second, "POST", "/v1/collections/"+name+"/items/lookup", lb, &lr); st != 200 || !slices.Equal(lr.Found, want) {
			t.Fatalf("lookup through %s: %d %v %v, want %v", c.id, st, err, lr.Found, want)
		}
	}

	// Upserts of existing ids with new vectors: most land in another
	// shard, whose primary is often another node, and the old copies must
	// go from every replica (the eviction after an upsert). A copy left
	// behind would answer queries at its old vector, which the single
	// node no longer does, and count twice.
	ur := rand.New(rand.NewPCG(41, 42))
	const nu, ubatch = 300, 100
	moved := ur.Perm(n)[:nu]
	uids, uvecs, olds := make([]string, nu), make([][]float32, nu), make([][]float32, nu)
	for j, i := range moved {
		uids[j], uvecs[j], olds[j] = ids[i], vec(ur, d), vecs[i]
	}
	for b := 0; b < nu; b += ubatch {
		body := cdInsertBody(uids[b:b+ubatch], uvecs[b:b+ubatch], n+b)
		var got proto.Inserted
		if st, _, err := single.call("POST", "/v1/collections/"+name+"/vectors", proto.JSONContentType, body, &got); st != 200 || got.Inserted != ubatch {
			t.Fatalf("single node upsert %d: %d %v %+v", b, st, err, got.Inserted)
		}
		c := nodes[(b/ubatch)%len(nodes)]
		got = proto.Inserted{}
		if st, err := cdRetry(c.server, 10*time.Second, "POST", "/v1/collections/"+name+"/vectors", body, &got); st != 200 || got.Inserted != ubatch {
			t.Fatalf("cluster upsert %d through %s: %d %v %+v", b, c.id, st, err, got.Inserted)
		}
	}
	upBad := 0
	for j := range 100 {
		for _, v := range [][]float32{olds[j], uvecs[j]} {
			body, _ := json.Marshal(map[string]any{"vector": v, "k": k, "nprobe": nprobe})
			var want proto.SearchResult
			if st, _, err := single.call("POST", "/v1/collections/"+name+"/search", proto.JSONContentType, body, &want); st != 200 || len(want.Hits) != k {
				t.Fatalf("single node query after upsert %d: %d %v, %d hits", j, st, err, len(want.Hits))
			}
			for _, c := range nodes {
				if diff := search(c, body, want); diff != "" {
					if upBad++; upBad <= 5 {
						t.Errorf("after the upserts, query at the old or new vector of %s through %s: %s", uids[j], c.id, diff)
					}
				}
			}
		}
	}
	for j := 0; j < nu; j += 7 {
		for _, c := range nodes {
			var it proto.Item
			st, err := cdCall(c.server, 30*time.Second, "GET", "/v1/collections/"+name+"/items/"+uids[j]+"?vector=true", nil, &it)
			if st != 200 || !slices.Equal(it.Vector, uvecs[j]) || string(it.Meta) != fmt.Sprintf(`{"i":%d}`, n+j) {
				t.Fatalf("GET %s through %s after its upsert: %d %v %+v, want vector %v", uids[j], c.id, st, err, it, uvecs[j])
			}
		}
	}
	if upBad == 0 {
		t.Logf("%d ids upserted to new vectors: 200 queries at their old and new vectors × %d nodes equal the single node's", nu, len(nodes))
	}

	// Every node counts the whole collection, the upserted ids once.
	for _, c := range nodes {
		if cc := c.collection(name); cc.Count != n+nn {
			t.Errorf("%s describes count %d, want %d: %+v", c.id, cc.Count, n+nn, cc)
		}
	}

	// The fan-out histogram.
	found := false
	for _, c := range nodes {
		m, err := cdMetrics(c.server)
		if err != nil {
			t.Fatalf("%s: %v", c.id, err)
		}
		if strings.Contains(m, "lookalike_search_nodes_contacted") {
			found = true
			var lines []string
			for _, l := range strings.Split(m, "\n") {
				if strings.HasPrefix(l, "lookalike_search_nodes_contacted") {
					lines = append(lines, l)
				}
			}
			t.Logf("%s /metrics:\n%s", c.id, strings.Join(lines, "\n"))
			break
		}
	}
	if !found {
		t.Fatalf("no node's /metrics has lookalike_search_nodes_contacted")
	}
	t.Logf("whole test %v", time.Since(begin).Round(time.Millisecond))
}

// cdTargets is the set of nodes the load goes to: round robin, and
// remove waits until no request to the node is in flight (so that a
// request never meets a node the test kills).
type cdTargets struct {
	mu   sync.Mutex
	idle *sync.Cond
	live []*clusterNode
	busy map[*clusterNode]int
	next int
}

func newCDTargets(nodes []*clusterNode) *cdTargets {
	ts := &cdTargets{live: slices.Clone(nodes), busy: map[*clusterNode]int{}}
	ts.idle = sync.NewCond(&ts.mu)
	return ts
}

// acquire picks the next live node, another than avoid when it can.
func (ts *cdTargets) acquire(avoid *clusterNode) *clusterNode {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	c := ts.live[ts.next%len(ts.live)]
	ts.next++
	if c == avoid && len(ts.live) > 1 {
		c = ts.live[ts.next%len(ts.live)]
		ts.next++
	}
	ts.busy[c]++
	return c
}

func (ts *cdTargets) release(c *clusterNode) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.busy[c]--; ts.busy[c] == 0 {
		ts.idle.Broadcast()
	}
}

func (ts *cdTargets) remove(c *clusterNode) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.live = slices.DeleteFunc(ts.live, func(x *clusterNode) bool { return x == c })
	for ts.busy[c] > 0 {
		ts.idle.Wait()
	}
}

func (ts *cdTargets) add(c *clusterNode) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.live = append(ts.live, c)
}

func (ts *cdTargets) nodes() []*clusterNode {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return slices.Clone(ts.live)
}

// cdLoad counts what the writers and searchers saw.
type cdLoad struct {
	mu         sync.Mutex
	acked      map[string]bool
	batches    int           // write batches acknowledged
	writeErrs  int           // failed write attempts (retried)
	gaveUp     int           // batches still failing after the give-up time
	maxWait    time.Duration // longest a batch took to be acknowledged, retries included
	searches   int
	searchFail int
	partial    int
	short      int // fewer than k hits, not partial
	maxSearch  time.Duration
	samples    []string // first errors seen
	probes     int      // probe batches sent

	// A write in flight longer than stallAfter calls onStall once (set
	// by the test: it dumps every node's goroutines while the stall
	// lasts; a dump at the test's end comes too late).
	inflight  map[int]time.Time
	nextWrite int
	onStall   func(what string)
	stalled   bool
}

const stallAfter = 8 * time.Second

// begin registers a write in flight since from; end removes it.
func (l *cdLoad) begin(from time.Time) (end func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight == nil {
		l.inflight = map[int]time.Time{}
	}
	l.nextWrite++
	id := l.nextWrite
	l.inflight[id] = from
	return func() {
		l.mu.Lock()
		delete(l.inflight, id)
		l.mu.Unlock()
	}
}

// watch calls onStall once a write has been in flight over stallAfter,
// until ctx ends.
func (l *cdLoad) watch(ctx context.Context) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		l.mu.Lock()
		var oldest time.Time
		for _, from := range l.inflight {
			if oldest.IsZero() || from.Before(oldest) {
				oldest = from
			}
		}
		fire := !l.stalled && l.onStall != nil && !oldest.IsZero() && time.Since(oldest) > stallAfter
		if fire {
			l.stalled = true
		}
		l.mu.Unlock()
		if fire {
			l.onStall(fmt.Sprintf("a write in flight for %v", time.Since(oldest).Round(time.Millisecond)))
		}
	}
}

func (l *cdLoad) sample(format string, args ...any) {
	if len(l.samples) < 12 {
		l.samples = append(l.samples, time.Now().Format("15:04:05.000 ")+fmt.Sprintf(format, args...))
	}
}

// cdRunLoad starts the load of the cluster tests through targets: two
// writers (batches of 50 new ids; a failed batch is retried through
// another node until acknowledged, or counted as given up after giveUp)
// and two searchers (k, nprobe; failures, partial and short answers
// counted), seeded from seed. stop ends them and waits.
func cdRunLoad(load *cdLoad, targets *cdTargets, path string, d, k, nprobe int, giveUp time.Duration, seed uint64) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		load.watch(ctx)
	}()
	sleep := func(dur time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(dur):
			return true
		}
	}
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed+uint64(w), 1))
			for b := 0; ctx.Err() == nil; b++ {
				ids := make([]string, 50)
				vecs := make([][]float32, 50)
				for j := range ids {
					ids[j] = fmt.Sprintf("w%d-%d-%d", w, b, j)
					vecs[j] = vec(r, d)
				}
				body := cdInsertBody(ids, vecs, 0)
				first := time.Now()
				end := load.begin(first)
				var last *clusterNode
				for {
					c := targets.acquire(last)
					st, err := cdCall(c.server, 15*time.Second, "POST", path+"/vectors", body, nil)
					targets.release(c)
					load.mu.Lock()
					if st == 200 {
						for _, id := range ids {
							load.acked[id] = true
						}
						load.batches++
						load.maxWait = max(load.maxWait, time.Since(first))
						load.mu.Unlock()
						break
					}
					load.writeErrs++
					load.sample("write w%d-%d through %s: %d %v", w, b, c.id, st, err)
					if time.Since(first) > giveUp {
						load.gaveUp++
						load.sample("write w%d-%d: gave up after %v", w, b, time.Since(first).Round(time.Millisecond))
						load.mu.Unlock()
						break
					}
					load.mu.Unlock()
					last = c
					if !sleep(100 * time.Millisecond) {
						end()
						return // stopped: the batch is not acknowledged
					}
				}
				end()
				if !sleep(150 * time.Millisecond) {
					return
				}
			}
		}(w)
	}
	for s := 0; s < 2; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed+100+uint64(s), 2))
			for ctx.Err() == nil {
				body, _ := json.Marshal(map[string]any{"vector": vec(r, d), "k": k, "nprobe": nprobe})
				c := targets.acquire(nil)
				t0 := time.Now()
				var res proto.SearchResult
				st, err := cdCall(c.server, 30*time.Second, "POST", path+"/search", body, &res)
				took := time.Since(t0)
				targets.release(c)
				load.mu.Lock()
				load.searches++
				load.maxSearch = max(load.maxSearch, took)
				switch {
				case st != 200:
					load.searchFail++
					load.sample("search through %s: %d %v", c.id, st, err)
				case res.Partial || len(res.MissingShards) > 0:
					load.partial++
					load.sample("search through %s: partial, missing %v", c.id, res.MissingShards)
				case len(res.Hits) != k:
					load.short++
					load.sample("search through %s: %d hits", c.id, len(res.Hits))
				}
				load.mu.Unlock()
				sleep(10 * time.Millisecond)
			}
		}(s)
	}
	return func() {
		cancel()
		wg.Wait()
	}
}

// probe writes batches of 200 new vectors (they reach every list, so
// every shard) through the nodes in rotation until one is acknowledged
// (its ids join the acknowledged ones), and returns the time since from;
// an error once writes have been refused for 30 s since from (after what).
func (l *cdLoad) probe(targets *cdTargets, path string, d int, seed uint64, from time.Time, after string) (time.Duration, error) {
	defer l.begin(from)()
	for {
		l.mu.Lock()
		l.probes++
		n := l.probes
		l.mu.Unlock()
		pr := rand.New(rand.NewPCG(seed+uint64(n), 3))
		ids := make([]string, 200)
		vecs := make([][]float32, 200)
		for j := range ids {
			ids[j] = fmt.Sprintf("probe-%d-%d", n, j)
			vecs[j] = vec(pr, d)
		}
		c := targets.acquire(nil)
		st, err := cdCall(c.server, 15*time.Second, "POST", path+"/vectors", cdInsertBody(ids, vecs, 0), nil)
		targets.release(c)
		if st == 200 {
			l.mu.Lock()
			for _, id := range ids {
				l.acked[id] = true
			}
			l.mu.Unlock()
			return time.Since(from), nil
		}
		if time.Since(from) > 30*time.Second {
			return time.Since(from), fmt.Errorf("writes still refused %v after %s: last through %s %d %v", time.Since(from).Round(time.Millisecond), after, c.id, st, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// summary logs the load's counts and samples and returns the
// acknowledged ids, sorted.
func (l *cdLoad) summary(t *testing.T) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("load: %d write batches acknowledged (%d ids in all), %d failed attempts retried, %d batches given up, longest acknowledgement %v; %d searches, %d failed, %d partial, %d short, slowest %v",
		l.batches, len(l.acked), l.writeErrs, l.gaveUp, l.maxWait.Round(time.Millisecond),
		l.searches, l.searchFail, l.partial, l.short, l.maxSearch.Round(time.Millisecond))
	for _, s := range l.samples {
		t.Logf("  %s", s)
	}
	acked := make([]string, 0, len(l.acked))
	for id := range l.acked {
		acked = append(acked, id)
	}
	slices.Sort(acked)
	return acked
}

// cdReadAll reads every id through each node (16 at a time) and reports
// those not found there.
func cdReadAll(t *testing.T, nodes []*clusterNode, path string, ids []string) {
	t.Helper()
	for _, c := range nodes {
		var (
			mu      sync.Mutex
			missing []string
			rwg     sync.WaitGroup
			work    = make(chan string)
		)
		for range 16 {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				for id := range work {
					var it proto.Item
					st, err := cdCall(c.server, 30*time.Second, "GET", path+"/items/"+id, nil, &it)
					if st != 200 || it.ID != id {
						mu.Lock()
						missing = append(missing, fmt.Sprintf("%s (%d %v)", id, st, err))
						mu.Unlock()
					}
				}
			}()
		}
		for _, id := range ids {
			work <- id
		}
		close(work)
		rwg.Wait()
		if len(missing) > 0 {
			slices.Sort(missing)
			t.Errorf("%d of %d acknowledged ids not read through %s, e.g. %v", len(missing), len(ids), c.id, missing[:min(10, len(missing))])
		}
	}
}

// cdSeedTrained creates a collection of replicas 2 through nodes[0],
// inserts nbase vectors (ids base-0…, batches of 500 round-robin over the
// nodes, from a generator seeded with seed), trains it and waits until
// every node serves it trained. The load it returns holds the inserted ids
// as acknowledged.
func cdSeedTrained(t *testing.T, nodes []*clusterNode, name string, d, nlist, nbase int, seed uint64) *cdLoad {
	t.Helper()
	load := cdSeedUntrained(t, nodes, name, d, nlist, nbase, seed)
	if st, err := cdRetry(nodes[0].server, 10*time.Second, "POST", "/v1/collections/"+name+"/train", nil, nil); st != 202 {
		t.Fatalf("train: %d %v", st, err)
	}
	for _, c := range nodes {
		c.waitReadyFor(name, 60*time.Second)
	}
	return load
}

// cdSeedUntrained is cdSeedTrained without the training: the items stay
// in the buffer shards.
func cdSeedUntrained(t *testing.T, nodes []*clusterNode, name string, d, nlist, nbase int, seed uint64) *cdLoad {
	t.Helper()
	path := "/v1/collections/" + name
	create(t, nodes[0], fmt.Sprintf(`{"name":%q,"metric":"l2","dim":%d,"nlist":%d,"replicas":2}`, name, d, nlist))
	cdWaitCollection(t, nodes, name)

	load := &cdLoad{acked: map[string]bool{}, onStall: cdStallDump(t, nodes)}
	r := rand.New(rand.NewPCG(seed, seed+1))
	for b := 0; b < nbase; b += 500 {
		ids := make([]string, 500)
		vecs := make([][]float32, 500)
		for j := range ids {
			ids[j] = fmt.Sprintf("base-%d", b+j)
			vecs[j] = vec(r, d)
		}
		c := nodes[(b/500)%len(nodes)]
		if st, err := cdRetry(c.server, 10*time.Second, "POST", path+"/vectors", cdInsertBody(ids, vecs, b), nil); st != 200 {
			t.Fatalf("insert %d through %s: %d %v", b, c.id, st, err)
		}
		for _, id := range ids {
			load.acked[id] = true
		}
	}
	return load
}

// TestClusterKill9Replicated: with two writers and two searchers running
// against a three-node cluster (replicas 2, trained), kill -9 a node that
// is not the Raft leader and is a primary: writes are accepted again
// within 15 s; restart it, wait until every shard has two in-sync
// replicas again (the restarted node caught up: what it held is not sent
// again, and the deletes and upserts made while it was down read right
// through every node), kill -9 the Raft leader: a new leader within 10 s.
// At the end every acknowledged id is read through every live node, and
// no search failed or was partial; the dead leader's shards wait
// --restore-delay for it, then are copied to the other live node.
func TestClusterKill9Replicated(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes and kills two")
	}
	begin := time.Now()
	const (
		d, nlist, nbase, k, nprobe = 16, 8, 3000, 10, 4
		name                       = "kv"
		path                       = "/v1/collections/" + name
	)
	// Long enough for the first victim's restart (5 s down, a few more
	// under the race detector), short enough to see the dead leader's
	// shards copied elsewhere.
	const restoreDelay = 10 * time.Second
	nodes := cdStartCluster(t, 3, "--auto-train-at", "-1", "--restore-delay", restoreDelay.String())
	cdLogTails(t, nodes, 60)
	byID := map[string]*clusterNode{}
	for _, c := range nodes {
		byID[c.id] = c
	}
	cu := cdWaitFormed(t, nodes)
	load := cdSeedTrained(t, nodes, name, d, nlist, nbase, 41)
	cu = waitCluster(t, nodes[0], 15*time.Second, "list shards of "+name+" covering every list", func(cu proto.Cluster) bool {
		return cdSumLists(cu, name) == nlist && cu.Leader != ""
	})
	t.Logf("trained, ready on every node %v after start; leader %s; shards:%s", time.Since(begin).Round(time.Millisecond), cu.Leader, cdShardsString(cdListShards(cu, name)))

	// The victim: not the leader, a primary of as many list shards as can be.
	var victim *clusterNode
	best := -1
	for _, c := range nodes {
		if c.id == cu.Leader {
			continue
		}
		p := 0
		for _, s := range cdListShards(cu, name) {
			if s.Primary == c.id {
				p++
			}
		}
		if p > best {
			victim, best = c, p
		}
	}
	if best == 0 {
		t.Fatalf("no node but the leader %s is a primary of a list shard:%s", cu.Leader, cdShardsString(cdListShards(cu, name)))
	}

	// The load.
	targets := newCDTargets(nodes)
	stopLoad := cdRunLoad(load, targets, path, d, k, nprobe, 15*time.Second, 100)
	defer stopLoad()
	probe := func(from time.Time) time.Duration {
		t.Helper()
		took, err := load.probe(targets, path, d, 300, from, "the kill")
		if err != nil {
			t.Fatal(err)
		}
		return took
	}

	time.Sleep(2 * time.Second) // the load runs on the whole cluster first
	if w0 := probe(time.Now()); w0 > 5*time.Second {
		t.Fatalf("a write took %v before any kill", w0)
	}

	// 1. kill -9 a non-leader primary.
	var survivor *clusterNode // a node that stays up through phase 1
	for _, c := range nodes {
		if c.id == cu.Leader {
			survivor = c
		}
	}
	targets.remove(victim)
	killed := time.Now()
	victim.kill9()
	t.Logf("kill -9 %s (primary of %d list shards) at %v", victim.id, best, killed.Sub(begin).Round(time.Millisecond))
	recovered := probe(killed)
	t.Logf("writes to every shard accepted again %v after kill -9 of %s", recovered.Round(time.Millisecond), victim.id)
	if recovered > 15*time.Second {
		t.Errorf("writes accepted again only %v after kill -9 of %s, want ≤ 15 s", recovered.Round(time.Millisecond), victim.id)
	}
	cu, ok := cdPoll(survivor, 15*time.Second, func(cu proto.Cluster) bool {
		for _, s := range cdListShards(cu, name) {
			if s.Primary == victim.id || slices.Contains(s.Replicas, victim.id) {
				return false
			}
		}
		return cdNodeState(cu, victim.id) == "dead"
	})
	if !ok {
		t.Errorf("15 s after kill -9, %s is still a primary or replica (or not dead) in %s's view: %s dead=%q%s", victim.id, survivor.id, victim.id, cdNodeState(cu, victim.id), cdShardsString(cdListShards(cu, name)))
	} else {
		t.Logf("%v after the kill: %s dead, shards:%s", time.Since(killed).Round(time.Millisecond), victim.id, cdShardsString(cdListShards(cu, name)))
	}
	// While it is down, delete some base items and upsert others (new
	// vectors, so most move to another list): the victim's copies of
	// them are stale when it comes back, and its catch-up must drop or
	// replace them (checked through the victim at the end, once the
	// leader's death leaves it the only replica of some shards).
	deleted, upserted := cdChangeBase(t, load, survivor, path, d, 60, 42)
	shardGauge := func(c *clusterNode, state string) float64 {
		return cdCounter(t, c.server, `lookalike_cluster_shards{collection="`+name+`",state="`+state+`"}`)
	}
	if away, under := shardGauge(survivor, "away"), shardGauge(survivor, "under_replicated"); away == 0 || under == 0 {
		t.Errorf("with %s dead, %s's metrics say %v shards away and %v under-replicated", victim.id, survivor.id, away, under)
	}
	time.Sleep(time.Until(killed.Add(5 * time.Second)))

	// 2. Restart it; wait until every shard has two in-sync replicas on
	// live nodes again (else killing the leader could leave a shard
	// without a copy). The shards it held waited for it (--restore-delay)
	// and catch it up: what it still held is not sent again.
	restartAt := time.Now()
	victim.restart()
	waitCluster(t, survivor, 20*time.Second, victim.id+" alive again", func(cu proto.Cluster) bool {
		return cdNodeState(cu, victim.id) == "alive"
	})
	cdWaitReady(t, victim, name, 20*time.Second)
	// In every node's view: a replica whose table does not show its
	// promotion yet refuses reads, and a leader killed before it heard
	// the commit leaves it so until the next leader (searches partial).
	var viewer *clusterNode
	whole := func(cu proto.Cluster) bool {
		shards := cdDataShards(cu, name)
		if cdSumLists(cu, name) != nlist || cu.Leader == "" {
			return false
		}
		for _, s := range shards {
			if len(s.InSync) < 2 || cdNodeState(cu, s.Primary) != "alive" {
				return false
			}
			for _, id := range s.InSync {
				if cdNodeState(cu, id) != "alive" {
					return false
				}
			}
		}
		return true
	}
	for _, viewer = range nodes {
		if cu, ok = cdPoll(viewer, 30*time.Second, whole); !ok {
			break
		}
	}
	if !ok {
		t.Fatalf("30 s after %s restarted, not every list shard has 2 in-sync live replicas in %s's view (killing the leader now would lose data):%s\nnodes: %+v", victim.id, viewer.id, cdShardsString(cdListShards(cu, name)), cu.Nodes)
	}
	t.Logf("%s restarted; every shard 2 in-sync replicas %v later:%s", victim.id, time.Since(restartAt).Round(time.Millisecond), cdShardsString(cdListShards(cu, name)))
	sent, kept := cdCopyItems(t, nodes)
	t.Logf("copies to the restarted %s: %.0f items sent, %.0f it held already", victim.id, sent, kept)
	if kept == 0 {
		t.Errorf("the restarted %s was copied its shards in full (%.0f items sent), not caught up", victim.id, sent)
	}
	for _, c := range nodes {
		if away, under := shardGauge(c, "away"), shardGauge(c, "under_replicated"); away != 0 || under != 0 {
			t.Errorf("after the catch-up, %s's metrics say %v shards away and %v under-replicated", c.id, away, under)
		}
	}
	// Every node, the caught-up one included, has the deletes and
	// upserts made while it was down (each reads its own copy first).
	cdCheckChanged(t, nodes, path, deleted, upserted)
	targets.add(victim)

	// 3. kill -9 the Raft leader.
	leader := byID[cu.Leader]
	var other *clusterNode // the observer: the node that never died, if the leader is not it
	for _, c := range nodes {
		if c != leader && c != victim {
			other = c
		}
	}
	if other == nil {
		other = survivor
		if other == leader {
			other = victim
		}
	}
	targets.remove(leader)
	killed2 := time.Now()
	leader.kill9()
	cu = waitCluster(t, other, 10*time.Second, "a new leader after kill -9 of the leader", func(cu proto.Cluster) bool {
		return cu.Leader != "" && cu.Leader != leader.id
	})
	t.Logf("kill -9 leader %s: new leader %s %v later", leader.id, cu.Leader, time.Since(killed2).Round(time.Millisecond))
	recovered2 := probe(killed2)
	t.Logf("writes to every shard accepted again %v after kill -9 of the leader %s", recovered2.Round(time.Millisecond), leader.id)
	if recovered2 > 15*time.Second {
		t.Errorf("writes accepted again only %v after kill -9 of the leader %s, want ≤ 15 s", recovered2.Round(time.Millisecond), leader.id)
	}
	time.Sleep(time.Until(killed2.Add(5 * time.Second)))
	stopLoad()
	if cu, ok := cdPoll(other, 5*time.Second, func(cu proto.Cluster) bool {
		for _, s := range cdListShards(cu, name) {
			if s.Primary == leader.id {
				return false
			}
		}
		return true
	}); ok {
		t.Logf("shards after the leader's death:%s", cdShardsString(cdListShards(cu, name)))
	} else {
		t.Errorf("the dead leader %s is still a primary:%s", leader.id, cdShardsString(cdListShards(cu, name)))
	}

	acked := load.summary(t)

	// Every acknowledged id, through every live node.
	readStart := time.Now()
	cdReadAll(t, targets.nodes(), path, acked)
	t.Logf("read %d acknowledged ids through each of %d live nodes in %v", len(acked), len(targets.nodes()), time.Since(readStart).Round(time.Millisecond))

	cdCheckChanged(t, targets.nodes(), path, deleted, upserted)

	// The dead leader does not come back: once the delay has passed, its
	// shards are copied to the live node that lacks them.
	cu, ok = cdPoll(other, restoreDelay+30*time.Second, func(cu proto.Cluster) bool {
		for _, s := range cdDataShards(cu, name) {
			if len(s.InSync) < 2 || slices.Contains(s.InSync, leader.id) || len(s.Away) > 0 {
				return false
			}
		}
		return cdSumLists(cu, name) == nlist
	})
	restored := time.Since(killed2)
	switch {
	case !ok:
		t.Errorf("%v after kill -9 of the leader %s, its shards are not on two live nodes:%s", restored.Round(time.Millisecond), leader.id, cdShardsString(cdListShards(cu, name)))
	case restored < restoreDelay:
		t.Errorf("the dead leader's shards were copied elsewhere %v after its death, before --restore-delay %v", restored.Round(time.Millisecond), restoreDelay)
	default:
		t.Logf("the dead leader's shards on two live nodes again %v after its death (--restore-delay %v):%s", restored.Round(time.Millisecond), restoreDelay, cdShardsString(cdListShards(cu, name)))
	}

	if load.searchFail > 0 || load.partial > 0 || load.short > 0 {
		t.Errorf("searches: %d failed, %d partial, %d short of %d", load.searchFail, load.partial, load.short, load.searches)
	}
	if load.gaveUp > 0 {
		t.Errorf("%d write batches still refused after 15 s of retries", load.gaveUp)
	}
	t.Logf("whole test %v", time.Since(begin).Round(time.Millisecond))
}

// cdUpsertMeta is the metadata counter an upsert by cdChangeBase starts
// from: an item whose "i" is at least this was upserted.
const cdUpsertMeta = 1_000_000

// cdChangeBase deletes n base items (base-0 …) and upserts n others
// (base-1000 …, new vectors, metadata "i" from cdUpsertMeta) through s,
// and takes the deleted ones out of load's acknowledged ids.
func cdChangeBase(t *testing.T, load *cdLoad, s *clusterNode, path string, d, n int, seed uint64) (deleted, upserted []string) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("base-%d", i)
		if st, err := cdRetry(s.server, 15*time.Second, "DELETE", path+"/items/"+id, nil, nil); st != 204 {
			t.Fatalf("delete %s through %s: %d %v", id, s.id, st, err)
		}
		deleted = append(deleted, id)
	}
	r := rand.New(rand.NewPCG(seed, seed+1))
	vecs := make([][]float32, n)
	for i := range n {
		upserted = append(upserted, fmt.Sprintf("base-%d", 1000+i))
		vecs[i] = vec(r, d)
	}
	if st, err := cdRetry(s.server, 15*time.Second, "POST", path+"/vectors", cdInsertBody(upserted, vecs, cdUpsertMeta), nil); st != 200 {
		t.Fatalf("upsert through %s: %d %v", s.id, st, err)
	}
	load.mu.Lock()
	for _, id := range deleted {
		delete(load.acked, id)
	}
	load.mu.Unlock()
	t.Logf("deleted %d base items and upserted %d others through %s", n, n, s.id)
	return deleted, upserted
}

// cdCheckChanged checks through every node that the deleted ids are gone
// and the upserted ones carry their new metadata.
func cdCheckChanged(t *testing.T, nodes []*clusterNode, path string, deleted, upserted []string) {
	t.Helper()
	for _, c := range nodes {
		var bad []string
		for _, id := range deleted {
			if st, err := cdCall(c.server, 30*time.Second, "GET", path+"/items/"+id, nil, nil); st != 404 {
				bad = append(bad, fmt.Sprintf("deleted %s: %d %v", id, st, err))
			}
		}
		for _, id := range upserted {
			var it proto.Item
			var m struct{ I int }
			st, err := cdCall(c.server, 30*time.Second, "GET", path+"/items/"+id, nil, &it)
			if st == 200 {
				err = json.Unmarshal(it.Meta, &m)
			}
			if st != 200 || err != nil || m.I < cdUpsertMeta {
				bad = append(bad, fmt.Sprintf("upserted %s: %d %v meta %s", id, st, err, it.Meta))
			}
		}
		if len(bad) > 0 {
			t.Errorf("through %s, %d of %d changed ids read wrong; first: %s", c.id, len(bad), len(deleted)+len(upserted), strings.Join(bad[:min(5, len(bad))], "; "))
		}
	}
}

// cdCopyItems sums lookalike_copy_items_total over nodes: the items
// their copies sent, and those the joiners held already (per process: a
// node restarted since has lost its counts).
func cdCopyItems(t *testing.T, nodes []*clusterNode) (sent, kept float64) {
	t.Helper()
	for _, c := range nodes {
		sent += cdCounter(t, c.server, `lookalike_copy_items_total{result="sent"}`)
		kept += cdCounter(t, c.server, `lookalike_copy_items_total{result="kept"}`)
	}
	return sent, kept
}

// cdDeleteCalls sums the delete calls the nodes served.
func cdDeleteCalls(t *testing.T, nodes []*clusterNode) float64 { return cdServed(t, nodes, "delete") }

// cdServed sums the internal calls of op the nodes served.
func cdServed(t *testing.T, nodes []*clusterNode, op string) float64 {
	t.Helper()
	sum := 0.0
	for _, c := range nodes {
		sum += cdCounter(t, c.server, `lookalike_rpc_served_total{op="`+op+`"}`)
	}
	return sum
}

// cdBufferShards returns coll's flat buffer shards (name/buffer/N), in
// shard order.
func cdBufferShards(cu proto.Cluster, coll string) []proto.ClusterShard {
	var out []proto.ClusterShard
	for i := 0; ; i++ {
		at := slices.IndexFunc(cu.Shards, func(s proto.ClusterShard) bool { return s.Shard == fmt.Sprintf("%s/buffer/%d", coll, i) })
		if at < 0 {
			return out
		}
		out = append(out, cu.Shards[at])
	}
}

// cdCounter reads one sample of s's /metrics (0 when absent).
func cdCounter(t *testing.T, s *server, sample string) float64 {
	t.Helper()
	m, err := cdMetrics(s)
	if err != nil {
		t.Errorf("metrics of %s: %v", s.url(""), err)
		return 0
	}
	for _, line := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Errorf("metrics of %s: %q: %v", s.url(""), line, err)
			}
			return f
		}
	}
	return 0
}
