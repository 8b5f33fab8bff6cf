//go:build cuda

// GPU tests of a whole node: `lookalike serve --gpu` beside a plain node on
// the same data. They need an NVIDIA GPU and a binary built with -tags
// cuda: `go test -tags cuda -run GPU ./node/e2e` on a GPU machine with Go,
// or `make gpu-test` here and bin/gpu-test.sh there (docs/cuda.md).

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lookalike/cuda/cudatest"
	"lookalike/ivf/ivftest"
	"lookalike/proto"
)

func init() { buildTags = append(buildTags, "cuda") }

// gpuFlags start a node with one image model fewer and no automatic
// training, so that both nodes train the same rows at the same moment.
var gpuFlags = []string{"--model", "none", "--auto-train-at", "-1", "--quiet"}

// gpuSmall (LOOKALIKE_GPU_TEST_SMALL=1) shrinks TestGPUServeMatchesCPU
// to one collection of 2,000 rows and 20 queries a phase, for
// compute-sanitizer's racecheck, under which the full test did not end
// in 5 minutes (scripts/gpu-test.sh sanitize racecheck sets it).
var gpuSmall = os.Getenv("LOOKALIKE_GPU_TEST_SMALL") == "1"

// gpuPair starts a plain node and a --gpu node.
func gpuPair(t testing.TB) (cpu, gpu *server) {
	cpu = startServerB(t, gpuFlags...)
	gpu = startServerB(t, append(slices.Clone(gpuFlags), "--gpu", "--gpu-memory", strconv.Itoa(4<<30))...)
	return cpu, gpu
}

// gpuScannerMetrics reads the --gpu node's lookalike_scanner_* figures.
func gpuScannerMetrics(t testing.TB, s *server) map[string]float64 {
	t.Helper()
	text, err := cdMetrics(s)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		name, val, ok := strings.Cut(line, " ")
		if !ok || !strings.HasPrefix(name, "lookalike_scanner_") {
			continue
		}
		v, err := strconv.ParseFloat(val, 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		m[strings.TrimPrefix(name, "lookalike_scanner_")] = v
	}
	if len(m) == 0 {
		t.Fatalf("the --gpu node exports no lookalike_scanner_ figures")
	}
	return m
}

// gpuBulk encodes rows of vecs (d floats each) under ids as bulk bodies
// of batch rows; counts[i] is body i's rows.
func gpuBulk(t testing.TB, ids []string, vecs []float32, d, batch int) (bodies [][]byte, counts []int) {
	t.Helper()
	for b := 0; b < len(ids); b += batch {
		e := min(b+batch, len(ids))
		items := make([]proto.InsertItem, e-b)
		for i := range items {
			items[i] = proto.InsertItem{ID: ids[b+i], Vector: vecs[(b+i)*d : (b+i+1)*d]}
		}
		var buf bytes.Buffer
		if err := proto.EncodeBulk(&buf, items, true); err != nil {
			t.Fatal(err)
		}
		bodies, counts = append(bodies, buf.Bytes()), append(counts, len(items))
	}
	return bodies, counts
}

// gpuLoad inserts rows of vecs (d floats each) under ids, in bulk batches.
func gpuLoad(t testing.TB, s *server, coll string, ids []string, vecs []float32, d int) {
	t.Helper()
	const batch = 5000
	bodies, counts := gpuBulk(t, ids, vecs, d, batch)
	for j, body := range bodies {
		b, e := j*batch, j*batch+counts[j]
		var got proto.Inserted
		if st, _, err := s.call("POST", "/v1/collections/"+coll+"/vectors", proto.BulkContentType, body, &got); st != 200 || got.Inserted != counts[j] {
			t.Fatalf("insert %d..%d into %s: %d %v, inserted %d", b, e, coll, st, err, got.Inserted)
		}
	}
}

// gpuSameHits says how got (the GPU node's answer) differs from want (the
// CPU node's), "" when it does not. The two sum a distance's terms in
// different orders, so scores may differ by float rounding: within 1e-4 of
// the query's score scale (its largest |score|, at least 1); ids may differ
// only where scores tie within that tolerance, at the k-th score.
func gpuSameHits(got, want []proto.Hit) string {
	if len(got) != len(want) {
		return fmt.Sprintf("%d hits, CPU node %d", len(got), len(want))
	}
	if len(want) == 0 {
		return ""
	}
	scale := 1.0
	for _, h := range want {
		scale = max(scale, math.Abs(float64(h.Score)))
	}
	tol := 1e-4 * scale
	wantIDs := map[string]bool{}
	for _, h := range want {
		wantIDs[h.ID] = true
	}
	seen := map[string]bool{}
	kth := float64(want[len(want)-1].Score)
	for i, g := range got {
		if d := math.Abs(float64(g.Score - want[i].Score)); d > tol {
			return fmt.Sprintf("hit %d: score %.6f, CPU node %.6f (tolerance %.2g)\ngpu: %s\ncpu: %s", i, g.Score, want[i].Score, tol, cdHits(got), cdHits(want))
		}
		if seen[g.ID] {
			return fmt.Sprintf("id %s twice: %s", g.ID, cdHits(got))
		}
		seen[g.ID] = true
		if !wantIDs[g.ID] && math.Abs(float64(g.Score)-kth) > tol {
			return fmt.Sprintf("hit %d: %s (%.6f) is not among the CPU node's hits and not at the k-th score %.6f\ngpu: %s\ncpu: %s", i, g.ID, g.Score, kth, cdHits(got), cdHits(want))
		}
	}
	return ""
}

// TestGPUServeMatchesCPU: a node started with --gpu answers like a plain
// node on the same data, for L2 and cosine at a dimension that is not a
// multiple of 16: after training, right after inserts, deletes and
// upserts (read-your-writes through the scanner's CPU tails and deleted
// bitmaps), and after a restart that reloads the index. /metrics shows
// that the node preloaded every list, that the GPU did the scanning and
// that no list fell back to the CPU.
func TestGPUServeMatchesCPU(t *testing.T) {
	const d, k, nprobe = 100, 10, 8
	n, nlist, clusters, nq := 20_000, 32, 64, 200
	more, dels, upserts := 3000, 300, 300
	metrics := []string{"l2", "cosine"}
	if gpuSmall {
		n, nlist, clusters, nq = 2_000, 8, 16, 20
		more, dels, upserts = 300, 30, 30
		metrics = metrics[:1]
	}
	cpu, gpu := gpuPair(t)
	data := ivftest.Clustered(n+more+upserts, d, clusters, 5)
	ids := make([]string, n+more)
	for i := range ids {
		ids[i] = fmt.Sprintf("v%d", i)
	}
	r := rand.New(rand.NewPCG(3, 4))
	queries := make([][]float32, nq)
	for i := range queries {
		j := r.IntN(n)
		q := slices.Clone(data[j*d : (j+1)*d])
		for c := range q {
			q[c] += 0.3 * float32(r.NormFloat64())
		}
		queries[i] = q
	}
	searchBody := func(q []float32) []byte {
		b, _ := json.Marshal(map[string]any{"vector": q, "k": k, "nprobe": nprobe})
		return b
	}
	for _, m := range metrics {
		for _, s := range []*server{cpu, gpu} {
			s.must("POST", "/v1/collections", map[string]any{"name": "g-" + m, "metric": m, "dim": d, "nlist": nlist}, 201, nil)
			gpuLoad(t, s, "g-"+m, ids[:n], data[:n*d], d)
			s.must("POST", "/v1/collections/g-"+m+"/train", nil, 202, nil)
		}
	}
	for _, m := range metrics {
		for _, s := range []*server{cpu, gpu} {
			if c := s.waitReadyFor("g-"+m, 5*time.Minute); c.TrainedNList != nlist || c.Count != int64(n) {
				t.Fatalf("%s after training: %+v", "g-"+m, c)
			}
		}
	}
	compare := func(phase string) int {
		t.Helper()
		searched := 0
		for _, m := range metrics {
			bad := 0
			for i, q := range queries {
				body := searchBody(q)
				var want, got proto.SearchResult
				if st, _, err := cpu.call("POST", "/v1/collections/g-"+m+"/search", proto.JSONContentType, body, &want); st != 200 {
					t.Fatalf("%s: CPU node, %s query %d: %d %v", phase, m, i, st, err)
				}
				if st, _, err := gpu.call("POST", "/v1/collections/g-"+m+"/search", proto.JSONContentType, body, &got); st != 200 {
					t.Fatalf("%s: GPU node, %s query %d: %d %v", phase, m, i, st, err)
				}
				searched++
				if len(want.Hits) != k {
					t.Fatalf("%s: CPU node, %s query %d: %d hits", phase, m, i, len(want.Hits))
				}
				if diff := gpuSameHits(got.Hits, want.Hits); diff != "" {
					if bad++; bad <= 3 {
						t.Errorf("%s: %s query %d: %s", phase, m, i, diff)
					}
				}
			}
			if bad > 0 {
				t.Errorf("%s: %s: %d of %d queries differ", phase, m, bad, len(queries))
			}
		}
		return searched
	}
	checkGPU := func(phase string, before map[string]float64, searched int) map[string]float64 {
		t.Helper()
		after := gpuScannerMetrics(t, gpu)
		t.Logf("%s: scanner %v", phase, after)
		if q := after["queries_total"] - before["queries_total"]; q < float64(searched) {
			t.Errorf("%s: the scanner saw %.0f queries of %d searched", phase, q, searched)
		}
		if after["gpu_rows_total"] <= before["gpu_rows_total"] {
			t.Errorf("%s: no rows scanned on the GPU", phase)
		}
		for _, name := range []string{"cpu_list_scans_total", "cpu_queries_total", "alloc_failures_total", "evictions_total"} {
			if after[name] != before[name] {
				t.Errorf("%s: %s went from %.0f to %.0f: lists or queries left the GPU under a 4 GiB budget", phase, name, before[name], after[name])
			}
		}
		return after
	}

	// The node preloads a trained index: every list is on the device
	// before the first search probes it.
	waitResident := func(phase string) {
		t.Helper()
		want := float64(len(metrics) * nlist)
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			st := gpuScannerMetrics(t, gpu)
			if st["resident_lists"] == want {
				t.Logf("%s: %v lists resident, %.0f bytes", phase, want, st["resident_bytes"])
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: %v lists resident after a minute, want %v", phase, st["resident_lists"], want)
			}
		}
	}
	waitResident("trained")
	st := checkGPU("trained", map[string]float64{}, compare("trained"))

	// Writes, then searches at once: new rows are a CPU tail or already
	// uploaded, deleted and replaced rows must be gone from the answers.
	for _, m := range metrics {
		for _, s := range []*server{cpu, gpu} {
			gpuLoad(t, s, "g-"+m, ids[n:], data[n*d:(n+more)*d], d)
			for i := 0; i < dels; i++ {
				s.must("DELETE", "/v1/collections/g-"+m+"/items/"+ids[i*7], nil, 204, nil)
			}
			up := make([]string, upserts)
			for i := range up {
				up[i] = ids[i*7+3]
			}
			gpuLoad(t, s, "g-"+m, up, data[(n+more)*d:], d)
		}
	}
	st = checkGPU("after writes", st, compare("after writes"))
	// A deleted item's own vector, and an upserted item's new one: the
	// deleted id is never a hit, the upserted one is the first.
	for _, m := range metrics {
		for i := 0; i < 20; i++ {
			var got proto.SearchResult
			gpu.must("POST", "/v1/collections/g-"+m+"/search", json.RawMessage(searchBody(data[i*7*d:(i*7+1)*d])), 200, &got)
			for _, h := range got.Hits {
				if h.ID == ids[i*7] {
					t.Errorf("%s: deleted %s is a hit: %s", m, h.ID, cdHits(got.Hits))
				}
			}
			got = proto.SearchResult{}
			gpu.must("POST", "/v1/collections/g-"+m+"/search", json.RawMessage(searchBody(data[(n+more+i)*d:(n+more+i+1)*d])), 200, &got)
			if len(got.Hits) == 0 || got.Hits[0].ID != ids[i*7+3] {
				t.Errorf("%s: search by upserted %s's new vector: %s", m, ids[i*7+3], cdHits(got.Hits))
			}
		}
	}
	// The idle refresh uploads tails and bitmaps; the answers stay the same.
	time.Sleep(500 * time.Millisecond)
	st = checkGPU("after the idle refresh", st, compare("after the idle refresh"))
	if st["tomb_uploads_total"] == 0 {
		t.Errorf("no deleted bitmap was uploaded after %d deletes and %d upserts", dels, upserts)
	}

	// A restart: the node reloads its indexes and uploads them again.
	gpu.restart()
	for _, m := range metrics {
		gpu.waitReadyFor("g-"+m, time.Minute)
	}
	waitResident("after a restart")
	checkGPU("after a restart", map[string]float64{}, compare("after a restart"))
}

// TestGPUClusterMatchesCPU: a three-node cluster (replicas 2) whose nodes
// all scan on the one GPU answers through every node like a plain single
// node on the same data: the same hits (within gpuSameHits' tolerance),
// never partial. Every node scanned its parts on the GPU and none fell
// back to the CPU.
func TestGPUClusterMatchesCPU(t *testing.T) {
	const (
		d, n, nlist, clusters, batch = 64, 12_000, 16, 32, 1000
		nq, k, nprobe                = 100, 10, 4
		name                         = "gc"
	)
	single := startServer(t, gpuFlags...)
	nodes := cdStartCluster(t, 3, "--auto-train-at", "-1", "--gpu", "--gpu-memory", strconv.Itoa(1<<30))
	cdLogTails(t, nodes, 40)
	cdWaitFormed(t, nodes)
	single.must("POST", "/v1/collections", map[string]any{"name": name, "metric": "l2", "dim": d, "nlist": nlist}, 201, nil)
	create(t, nodes[0], fmt.Sprintf(`{"name":%q,"metric":"l2","dim":%d,"nlist":%d,"replicas":2}`, name, d, nlist))
	cdWaitCollection(t, nodes, name)

	data := ivftest.Clustered(n+nq, d, clusters, 9)
	ids := make([]string, n)
	vecs := make([][]float32, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("item-%d", i)
		vecs[i] = data[i*d : (i+1)*d]
	}
	// The same batches in the same order on both, so that both train on
	// the same rows (TestClusterRecallEqualsOneNode).
	for b := 0; b < n; b += batch {
		body := cdInsertBody(ids[b:b+batch], vecs[b:b+batch], b)
		var got proto.Inserted
		if st, _, err := single.call("POST", "/v1/collections/"+name+"/vectors", proto.JSONContentType, body, &got); st != 200 || got.Inserted != batch {
			t.Fatalf("single node insert %d: %d %v", b, st, err)
		}
		c := nodes[(b/batch)%len(nodes)]
		got = proto.Inserted{}
		if st, err := cdRetry(c.server, 10*time.Second, "POST", "/v1/collections/"+name+"/vectors", body, &got); st != 200 || got.Inserted != batch {
			t.Fatalf("cluster insert %d through %s: %d %v", b, c.id, st, err)
		}
	}
	single.must("POST", "/v1/collections/"+name+"/train", nil, 202, nil)
	if st, err := cdRetry(nodes[1].server, 10*time.Second, "POST", "/v1/collections/"+name+"/train", nil, nil); st != 202 {
		t.Fatalf("cluster train: %d %v", st, err)
	}
	single.waitReady(name)
	for _, c := range nodes {
		c.waitReadyFor(name, time.Minute)
	}
	waitCluster(t, nodes[0], 15*time.Second, "list shards of "+name+" covering every list", func(cu proto.Cluster) bool {
		return cdSumLists(cu, name) == nlist
	})

	bad := 0
	for q := 0; q < nq; q++ {
		body, _ := json.Marshal(map[string]any{"vector": data[(n+q)*d : (n+q+1)*d], "k": k, "nprobe": nprobe})
		var want proto.SearchResult
		if st, _, err := single.call("POST", "/v1/collections/"+name+"/search", proto.JSONContentType, body, &want); st != 200 || len(want.Hits) != k {
			t.Fatalf("single node query %d: %d %v, %d hits", q, st, err, len(want.Hits))
		}
		for _, c := range nodes {
			var got proto.SearchResult
			st, err := cdCall(c.server, 30*time.Second, "POST", "/v1/collections/"+name+"/search", body, &got)
			diff := ""
			switch {
			case st != 200:
				diff = fmt.Sprintf("%d %v", st, err)
			case got.Partial || len(got.MissingShards) > 0:
				diff = fmt.Sprintf("partial, missing %v", got.MissingShards)
			default:
				diff = gpuSameHits(got.Hits, want.Hits)
			}
			if diff != "" {
				if bad++; bad <= 3 {
					t.Errorf("query %d through %s: %s", q, c.id, diff)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d answers differ from the single node's", bad, nq*len(nodes))
	}
	for _, c := range nodes {
		st := gpuScannerMetrics(t, c.server)
		t.Logf("%s: scanner %v", c.id, st)
		if st["gpu_rows_total"] == 0 {
			t.Errorf("%s scanned no rows on the GPU", c.id)
		}
		for _, m := range []string{"cpu_list_scans_total", "cpu_queries_total", "alloc_failures_total"} {
			if st[m] != 0 {
				t.Errorf("%s: %s %v", c.id, m, st[m])
			}
		}
	}
}

// gpuBench is the search benchmarks' data: Fashion-MNIST (60,000 × 784,
// nlist 256, nprobe 16, as BenchmarkGPUScan) when installed, else 100,000
// clustered 128-d rows (nlist 1024, nprobe 32); bodies are JSON searches
// for k hits.
type gpuBench struct {
	name             string
	d, nlist, nprobe int
	base             []float32
	bodies           [][]byte
	ids              []string
}

func gpuBenchLoad(k int) gpuBench {
	g := gpuBench{name: "clustered-100k-128d", d: 128, nlist: 1024, nprobe: 32}
	var qs []float32
	if train, test, _, ok, err := cudatest.FashionMNIST(); err == nil && ok {
		g.name, g.d, g.nlist, g.nprobe = "fmnist", 784, 256, 16
		g.base, qs = train, test[:2000*784]
	} else {
		data := ivftest.Clustered(102_000, g.d, 1000, 42)
		g.base, qs = data[:100_000*g.d], data[100_000*g.d:]
	}
	g.bodies = make([][]byte, len(qs)/g.d)
	for i := range g.bodies {
		g.bodies[i], _ = json.Marshal(map[string]any{"vector": qs[i*g.d : (i+1)*g.d], "k": k, "nprobe": g.nprobe})
	}
	g.ids = make([]string, len(g.base)/g.d)
	for i := range g.ids {
		g.ids[i] = strconv.Itoa(i)
	}
	return g
}

// gpuClosedLoop sends single-query searches of coll from `clients`
// goroutines for dur, query i to targets[i % len(targets)], and returns
// the queries answered, their latencies (sorted; a query refused with 429
// is tried again after a millisecond, and its latency counts from its
// first try) and the refusals.
func gpuClosedLoop(b *testing.B, hc *http.Client, targets []*server, coll string, bodies [][]byte, k, clients int, dur time.Duration) (int, []time.Duration, int64) {
	var (
		mu      sync.Mutex
		lats    []time.Duration
		next    atomic.Int64
		refused atomic.Int64
		wg      sync.WaitGroup
	)
	stop := time.Now().Add(dur)
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			defer func() {
				mu.Lock()
				lats = append(lats, mine...)
				mu.Unlock()
			}()
			for time.Now().Before(stop) {
				i := int(next.Add(1))
				body := bodies[i%len(bodies)]
				t0 := time.Now()
				for {
					resp, err := hc.Post(targets[i%len(targets)].url("/v1/collections/"+coll+"/search"), proto.JSONContentType, bytes.NewReader(body))
					if err != nil {
						b.Error(err)
						return
					}
					if resp.StatusCode == http.StatusTooManyRequests {
						io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						refused.Add(1)
						if time.Now().After(stop.Add(10 * time.Second)) {
							b.Errorf("searches refused (429) for 10 s past the loop's end")
							return
						}
						time.Sleep(time.Millisecond)
						continue
					}
					var res proto.SearchResult
					err = json.NewDecoder(resp.Body).Decode(&res)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 || len(res.Hits) != k || res.Partial {
						b.Errorf("search: %d %v, %d hits, partial %v", resp.StatusCode, err, len(res.Hits), res.Partial)
						return
					}
					break
				}
				mine = append(mine, time.Since(t0))
			}
		}()
	}
	wg.Wait()
	slices.Sort(lats)
	return len(lats), lats, refused.Load()
}

// gpuReportLoop runs the closed loop for 3 s after a warm-up and reports
// its rate, latencies and refusals (429) a second.
func gpuReportLoop(b *testing.B, run func(clients int, dur time.Duration) (int, []time.Duration, int64), clients int) {
	run(clients, 300*time.Millisecond) // warm up
	for b.Loop() {
		const dur = 3 * time.Second
		t0 := time.Now()
		nd, lats, refused := run(clients, dur)
		el := time.Since(t0)
		if nd == 0 {
			b.Fatal("no query answered")
		}
		p := func(q int) float64 { return float64(lats[min(len(lats)-1, len(lats)*q/1000)].Microseconds()) / 1000 }
		b.ReportMetric(float64(nd)/el.Seconds(), "queries/s")
		b.ReportMetric(p(500), "p50-ms")
		b.ReportMetric(p(990), "p99-ms")
		b.ReportMetric(float64(refused)/el.Seconds(), "refused/s")
	}
}

// BenchmarkGPUServeSearch: search throughput and latency over HTTP of a
// --gpu node beside a plain one on the same machine and data, by number of
// concurrent clients (each a closed loop of single-query searches). Data:
// Fashion-MNIST (60,000 × 784, nlist 256, nprobe 16, as BenchmarkGPUScan)
// when installed, else 100,000 clustered 128-d rows (nlist 1024, nprobe
// 32). The nodes run one at a time; the client shares the machine with
// them.
//
//	go test -tags cuda -run '^$' -bench GPUServe -benchtime 1x ./node/e2e
func BenchmarkGPUServeSearch(b *testing.B) {
	const k = 10
	data := gpuBenchLoad(k)
	name, d, nlist, nprobe, base, bodies, ids := data.name, data.d, data.nlist, data.nprobe, data.base, data.bodies, data.ids
	nb, nq := len(ids), len(bodies)
	cpu, gpu := gpuPair(b)
	for _, s := range []*server{cpu, gpu} {
		s.must("POST", "/v1/collections", map[string]any{"name": "b", "metric": "l2", "dim": d, "nlist": nlist}, 201, nil)
		gpuLoad(b, s, "b", ids, base, d)
		s.must("POST", "/v1/collections/b/train", nil, 202, nil)
	}
	for _, s := range []*server{cpu, gpu} {
		s.waitReadyFor("b", 10*time.Minute)
		waitIdle(b, s.cmd.Process.Pid, 2*time.Minute)
	}
	b.Logf("%s: %d base vectors, %d queries, nlist %d, nprobe %d, k %d", name, nb, nq, nlist, nprobe, k)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	for _, clients := range []int{1, 8, 64} {
		for _, node := range []struct {
			label string
			s     *server
		}{{"cpu", cpu}, {"gpu", gpu}} {
			b.Run(fmt.Sprintf("%s/clients=%d/%s", name, clients, node.label), func(b *testing.B) {
				var before map[string]float64
				if node.s == gpu {
					before = gpuScannerMetrics(b, gpu)
				}
				gpuReportLoop(b, func(clients int, dur time.Duration) (int, []time.Duration, int64) {
					return gpuClosedLoop(b, hc, []*server{node.s}, "b", bodies, k, clients, dur)
				}, clients)
				if node.s == gpu {
					after := gpuScannerMetrics(b, gpu)
					if nbat := after["batches_total"] - before["batches_total"]; nbat > 0 {
						b.ReportMetric((after["queries_total"]-before["queries_total"])/nbat, "queries/batch")
					}
					if after["cpu_list_scans_total"] != before["cpu_list_scans_total"] {
						b.Errorf("lists scanned on the CPU: %v", after)
					}
				}
			})
		}
	}
}

// BenchmarkGPUClusterSearch: BenchmarkGPUServeSearch's closed loops
// against three-node clusters (replicas 2) on one machine: three plain
// nodes, then three --gpu nodes sharing the one GPU, on the same data,
// the clients' queries spread round-robin over the nodes (each node is a
// gateway and scans its part). The clusters run one at a time.
//
//	go test -tags cuda -run '^$' -bench GPUCluster -benchtime 1x ./node/e2e
func BenchmarkGPUClusterSearch(b *testing.B) {
	const k, replicas = 10, 2
	g := gpuBenchLoad(k)
	b.Logf("%s: %d base vectors, %d queries, nlist %d, nprobe %d, k %d, 3 nodes, replicas %d", g.name, len(g.ids), len(g.bodies), g.nlist, g.nprobe, k, replicas)
	// Bulk bodies of 2,000 rows, posted round-robin over the nodes.
	loads, _ := gpuBulk(b, g.ids, g.base, g.d, 2000)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}
	for _, setup := range []struct {
		label string
		flags []string
	}{
		{"cpu-cluster", nil},
		{"gpu-cluster", []string{"--gpu", "--gpu-memory", strconv.Itoa(4 << 30)}},
	} {
		cn, srvs := cbStartCluster(b, 3, append([]string{"--auto-train-at", "-1", "--quiet"}, setup.flags...)...)
		cbCreateWith(b, srvs, map[string]any{"name": "b", "metric": "l2", "dim": g.d, "nlist": g.nlist, "replicas": replicas})
		cbInsert(b, hc, srvs, srvs, "b", loads, 4)
		tr, _ := cbTrain(b, srvs[0], srvs, "b", int64(len(g.ids)), 10*time.Minute)
		cbWaitShards(b, cn[0], "b", replicas, 2*time.Minute)
		cbNote("[%s] loaded and trained; ready on all nodes %v after the train call; idle after %v", setup.label, tr.Round(time.Millisecond), cbWaitIdle(b, srvs).Round(time.Millisecond))
		gpu := setup.flags != nil
		for _, clients := range []int{1, 8, 64} {
			b.Run(fmt.Sprintf("%s/clients=%d/%s", g.name, clients, setup.label), func(b *testing.B) {
				before := make([]map[string]float64, len(srvs))
				if gpu {
					for i, s := range srvs {
						before[i] = gpuScannerMetrics(b, s)
					}
				}
				gpuReportLoop(b, func(clients int, dur time.Duration) (int, []time.Duration, int64) {
					return gpuClosedLoop(b, hc, srvs, "b", g.bodies, k, clients, dur)
				}, clients)
				if !gpu {
					return
				}
				var queries, batches float64
				for i, s := range srvs {
					after := gpuScannerMetrics(b, s)
					queries += after["queries_total"] - before[i]["queries_total"]
					batches += after["batches_total"] - before[i]["batches_total"]
					if after["gpu_rows_total"] == before[i]["gpu_rows_total"] {
						b.Errorf("node %d scanned no rows on the GPU", i+1)
					}
					for _, m := range []string{"cpu_list_scans_total", "cpu_queries_total", "alloc_failures_total"} {
						if after[m] != before[i][m] {
							b.Errorf("node %d: %s went from %.0f to %.0f", i+1, m, before[i][m], after[m])
						}
					}
				}
				if batches > 0 {
					b.ReportMetric(queries/batches, "queries/batch")
				}
			})
		}
		for _, s := range srvs {
			s.stop()
			os.RemoveAll(s.dir)
		}
		hc.CloseIdleConnections()
	}
}
