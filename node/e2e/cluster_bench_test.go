package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lookalike/ivf"
	"lookalike/proto"
)

// The cluster benchmarks compare a 3-node cluster (replicas 2) against one
// node, on the same machine and the same data, in the same run. They
// start server processes (one, then three), so they skip unless asked for
// by name or by LOOKALIKE_BENCH_CLUSTER=1:
//
//	LOOKALIKE_BENCH_N=100000 go test -run '^$' -bench Cluster -benchtime 1x -timeout 30m ./node/e2e
//
// Knobs: LOOKALIKE_BENCH_N (search: vectors, default 100,000),
// LOOKALIKE_BENCH_QPS (search: the open-loop rate, default half the
// one-node closed-loop maximum), LOOKALIKE_BENCH_INGEST_SEED (ingest:
// vectors before training, default 20,000), LOOKALIKE_BENCH_INGEST_N
// (ingest: vectors measured, default 300,000: at 100,000 the one node
// finished in 1.3 s, too short a window: the ratio
// moved by ±0.03 from run to run), LOOKALIKE_BENCH_PROFILE (a folder:
// CPU and allocation profiles and the logs of every server),
// LOOKALIKE_BENCH_PROFILE_SECONDS (the ingest's profile window, default 4),
// LOOKALIKE_BENCH_BATCH (ingest: vectors a request, default 1,000),
// LOOKALIKE_BENCH_SERVE_FLAGS (more flags for every server, e.g.
// "--max-reads 256"), LOOKALIKE_BENCH_CLUSTER_ENV (KEY=VALUE ... added to
// the cluster nodes' environment, e.g. "GOMAXPROCS=1"), LOOKALIKE_BENCH_ROUNDS
// (ingest: rounds of one node then cluster, default 3), LOOKALIKE_BENCH_REPLICAS
// (ingest: the cluster's replicas, default 2; 1 shows what distribution
// costs without the second copy). Progress lines go to
// stderr at once ("cb hh:mm:ss ..."); each benchmark logs a table at its
// end.
//
// All the processes share the machine: on a host with few cores the
// cluster's nodes and the load generator compete for the same CPUs, so
// its figures are a lower bound of what separate hosts would give.

// cbClients is the concurrency of ingest: LOOKALIKE_BENCH_CLIENTS,
// default 4.
var cbClients = cbEnvInt("LOOKALIKE_BENCH_CLIENTS", 4)

// cbBatch is the ingest's batch size: LOOKALIKE_BENCH_BATCH, default 1,000.
var cbBatch = cbEnvInt("LOOKALIKE_BENCH_BATCH", 1000)

// cbSearchClients is the concurrency of the search closed loops, which
// find a setup's maximum: LOOKALIKE_BENCH_CLIENTS, default the number
// of CPUs, at least 4. On 16 cores 4 clients found about half of one
// node's maximum (9,000–11,000 q/s against 20,700 with 16), so the open
// loop offered a quarter of it, not the half the target names
// (docs/benchmarks.md, "On 16 cores again").
var cbSearchClients = cbEnvInt("LOOKALIKE_BENCH_CLIENTS", max(4, runtime.NumCPU()))

const (
	cbDim    = 128
	cbNList  = 256
	cbK      = 10
	cbNProbe = 16
)

// cbSkip skips unless LOOKALIKE_BENCH_CLUSTER=1 or -bench names Cluster,
// and makes the LOOKALIKE_BENCH_PROFILE folder when the benchmark runs
// (without it every profile and log was lost, one error line each).
func cbSkip(b *testing.B) {
	f := flag.Lookup("test.bench")
	if os.Getenv("LOOKALIKE_BENCH_CLUSTER") != "1" && (f == nil || !strings.Contains(f.Value.String(), "Cluster")) {
		b.Skip("starts server processes: run with -bench Cluster or LOOKALIKE_BENCH_CLUSTER=1")
	}
	if cbProfileDir != "" {
		if err := os.MkdirAll(cbProfileDir, 0o755); err != nil {
			b.Fatalf("LOOKALIKE_BENCH_PROFILE: %v", err)
		}
	}
}

func cbEnvInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(strings.ReplaceAll(v, "_", "")); err == nil && n > 0 {
			return n
		}
	}
	return def
}

// cbSaveLogs writes each server's output (its log: Raft's warnings
// included, --quiet keeps the node's own to warnings) to
// LOOKALIKE_BENCH_PROFILE/<name>-<i>.log, when that is set.
func cbSaveLogs(srvs []*server, name string) {
	if cbProfileDir == "" {
		return
	}
	for i, s := range srvs {
		f := fmt.Sprintf("%s/%s-%d.log", cbProfileDir, name, i+1)
		if err := os.WriteFile(f, []byte(s.log.String()), 0o644); err != nil {
			cbNote("log: %v", err)
		}
	}
}

// cbProfileDir is LOOKALIKE_BENCH_PROFILE: when set, every server serves
// /debug/pprof and each closed loop (and the ingest measurement) writes a
// CPU profile per server there, named <setup>-<phase>-<node>.pprof.
var cbProfileDir = os.Getenv("LOOKALIKE_BENCH_PROFILE")

// cbProfileWindow is the ingest's CPU profile window:
// LOOKALIKE_BENCH_PROFILE_SECONDS, default 4 (all of one node's ingest on
// two cores, part of the cluster's; 10 covers the cluster's ingest and
// its compactions, so seconds per vector compare across setups).
var cbProfileWindow = time.Duration(cbEnvInt("LOOKALIKE_BENCH_PROFILE_SECONDS", 4)) * time.Second

// cbDebugFlags gives a server a --debug-addr when profiles are asked for.
func cbDebugFlags(b *testing.B) []string {
	if cbProfileDir == "" {
		return nil
	}
	return []string{"--debug-addr", freeAddr(b)}
}

// cbProfile starts a CPU profile of dur on every server that serves
// /debug/pprof and returns a wait that writes them out.
func cbProfile(hc *http.Client, srvs []*server, name string, dur time.Duration) (wait func()) {
	if cbProfileDir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	for i, s := range srvs {
		addr := s.debugAddr()
		if addr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := hc.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(dur.Seconds())))
			if err != nil {
				cbNote("profile of %s: %v", addr, err)
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			f := fmt.Sprintf("%s/%s-%d.pprof", cbProfileDir, strings.ReplaceAll(name, " ", "_"), i+1)
			if err := os.WriteFile(f, raw, 0o644); err != nil {
				cbNote("profile: %v", err)
			}
			// And what the process allocated since it started.
			if resp, err := hc.Get(fmt.Sprintf("http://%s/debug/pprof/allocs", addr)); err == nil {
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				os.WriteFile(strings.TrimSuffix(f, ".pprof")+"-allocs.pprof", raw, 0o644)
			}
		}()
	}
	return wg.Wait
}

// cbClient is the benchmark's HTTP client: enough idle connections per
// node that an open-loop burst does not churn connections.
func cbClient() *http.Client {
	return &http.Client{
		Timeout:   60 * time.Second,
		Transport: &http.Transport{MaxIdleConns: 2048, MaxIdleConnsPerHost: 1024, IdleConnTimeout: 5 * time.Minute},
	}
}

// cbMixture draws n d-dimensional points of a seeded Gaussian mixture (64
// centres, as BenchmarkSearch), flat.
type cbMixture struct {
	r       *rand.Rand
	centres [][]float32
}

func cbNewMixture(seed uint64) *cbMixture {
	m := &cbMixture{r: rand.New(rand.NewPCG(seed, seed))}
	m.centres = make([][]float32, 64)
	for i := range m.centres {
		m.centres[i] = vec(m.r, cbDim)
		for j := range m.centres[i] {
			m.centres[i][j] *= 4
		}
	}
	return m
}

func (m *cbMixture) point() []float32 {
	c := m.centres[m.r.IntN(len(m.centres))]
	v := make([]float32, cbDim)
	for j := range v {
		v[j] = c[j] + float32(m.r.NormFloat64())
	}
	return v
}

// cbBodies makes n points in bulk bodies of cbBatch items with ids
// prefix<i>, and returns the bodies and the points, flat.
func cbBodies(m *cbMixture, prefix string, n int) ([][]byte, []float32) {
	var bodies [][]byte
	flat := make([]float32, 0, n*cbDim)
	for done := 0; done < n; {
		c := min(cbBatch, n-done)
		items := make([]proto.InsertItem, c)
		for i := range items {
			items[i] = proto.InsertItem{ID: fmt.Sprintf("%s%d", prefix, done+i), Vector: m.point()}
			if prefix == "new" && os.Getenv("LOOKALIKE_BENCH_GENERATED_IDS") == "1" {
				items[i].ID = "" // the server generates them: no eviction of old copies
			}
			flat = append(flat, items[i].Vector...)
		}
		var buf bytes.Buffer
		if err := proto.EncodeBulk(&buf, items, true); err != nil {
			panic(err)
		}
		bodies = append(bodies, buf.Bytes())
		done += c
	}
	return bodies, flat
}

// cbPost posts body and reads the whole answer.
func cbPost(hc *http.Client, url, ctype string, body []byte) (int, []byte, error) {
	resp, err := hc.Post(url, ctype, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	raw, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, raw, err
}

// cbTail is the last n lines of a server's log.
func cbTail(s *server, n int) string {
	lines := strings.Split(strings.TrimRight(s.log.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cbFatal fails with the tails of the servers' logs.
func cbFatal(b *testing.B, srvs []*server, format string, args ...any) {
	b.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, format, args...)
	for i, s := range srvs {
		fmt.Fprintf(&sb, "\n--- log of server %d (%s), last 40 lines:\n%s", i, s.http, cbTail(s, 40))
	}
	b.Fatal(sb.String())
}

// cbStartCluster is startCluster for benchmarks, with extra serve flags,
// and waits until the cluster has a leader and n alive voters.
func cbStartCluster(b *testing.B, n int, extra ...string) ([]*clusterNode, []*server) {
	nodes := make([]*clusterNode, n)
	var seeds []string
	for i := range nodes {
		nodes[i] = &clusterNode{id: fmt.Sprintf("n%d", i+1), gossip: freeAddr(b)}
		seeds = append(seeds, nodes[i].gossip)
	}
	srvs := make([]*server, n)
	for i, c := range nodes {
		args := append([]string{"--model", "none", "--node-id", c.id, "--gossip", c.gossip, "--join", strings.Join(seeds, ","),
			"--bootstrap-expect", fmt.Sprint(n)}, extra...)
		args = append(args, cbDebugFlags(b)...)
		c.server = newServer(b, args...)
		c.server.env = strings.Fields(os.Getenv("LOOKALIKE_BENCH_CLUSTER_ENV"))
		srvs[i] = c.server
	}
	for _, c := range nodes {
		c.start()
	}
	deadline := time.Now().Add(60 * time.Second)
	for _, c := range nodes {
		for {
			cu, err := c.cluster()
			if err == nil && cu.Leader != "" {
				v, _ := roles(cu)
				alive := 0
				for _, nd := range cu.Nodes {
					if nd.State == "alive" {
						alive++
					}
				}
				if len(v) == n && alive == n {
					break
				}
			}
			if time.Now().After(deadline) {
				cbFatal(b, srvs, "cluster not formed within 60 s; %s sees %+v (%v)", c.id, cu, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes, srvs
}

// cbRetry does a JSON call, retrying 503 for up to 20 s.
func cbRetry(b *testing.B, srvs []*server, s *server, method, path string, body any, want int) {
	b.Helper()
	raw, _ := json.Marshal(body)
	if body == nil {
		raw = nil
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _, err := s.call(method, path, proto.JSONContentType, raw, nil)
		if st == want {
			return
		}
		if st != 503 || time.Now().After(deadline) {
			cbFatal(b, srvs, "%s %s: %d %v, want %d", method, path, st, err, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cbCreate creates coll through srvs[0] (retrying 503) and waits until
// every server knows it.
func cbCreate(b *testing.B, srvs []*server, coll string, replicas int) {
	cbCreateWith(b, srvs, map[string]any{"name": coll, "metric": "l2", "dim": cbDim, "nlist": cbNList, "replicas": replicas})
}

// cbCreateWith creates the collection spec describes (its "name"), as
// cbCreate.
func cbCreateWith(b *testing.B, srvs []*server, spec map[string]any) {
	b.Helper()
	coll := spec["name"].(string)
	cbRetry(b, srvs, srvs[0], "POST", "/v1/collections", spec, 201)
	deadline := time.Now().Add(20 * time.Second)
	for i, s := range srvs {
		for {
			st, _, err := s.call("GET", "/v1/collections/"+coll, "", nil, nil)
			if st == 200 {
				break
			}
			if time.Now().After(deadline) {
				cbFatal(b, srvs, "server %d does not know %s 20 s after its creation: %d %v", i, coll, st, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// cbInsert posts the bodies with clients concurrent clients; request i
// goes to targets[i % len(targets)] (round-robin). 503, 429 and transport
// errors are retried (counted); anything else fails. It returns the wall
// time, the per-batch latencies (first try to success) and the retries.
func cbInsert(b *testing.B, hc *http.Client, targets []*server, srvs []*server, coll string, bodies [][]byte, clients int) (time.Duration, []time.Duration, int64) {
	b.Helper()
	var next, retries atomic.Int64
	lat := make([]time.Duration, len(bodies))
	var mu sync.Mutex
	var failure string
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(bodies) {
					return
				}
				url := targets[i%len(targets)].url("/v1/collections/" + coll + "/vectors")
				t0 := time.Now()
				for try := 0; ; try++ {
					st, raw, err := cbPost(hc, url, proto.BulkContentType, bodies[i])
					if st == 200 {
						break
					}
					if (st == 503 || st == 429 || st == 0) && try < 50 {
						retries.Add(1)
						time.Sleep(100 * time.Millisecond)
						continue
					}
					mu.Lock()
					if failure == "" {
						failure = fmt.Sprintf("insert batch %d to %s: status %d %v %.300s", i, url, st, err, raw)
					}
					mu.Unlock()
					next.Store(int64(len(bodies))) // stop the others
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	if failure != "" {
		cbFatal(b, srvs, "%s", failure)
	}
	return el, lat, retries.Load()
}

// cbTrain starts training through s and waits until every server
// reports the collection ready with want items.
func cbTrain(b *testing.B, s *server, srvs []*server, coll string, want int64, limit time.Duration) (time.Duration, proto.Collection) {
	b.Helper()
	t0 := time.Now()
	deadline := t0.Add(20 * time.Second)
	for {
		st, code, err := s.call("POST", "/v1/collections/"+coll+"/train", proto.JSONContentType, nil, nil)
		if st == 202 {
			break
		}
		if st == 409 && code == proto.Conflict { // trained on its own already
			cbNote("train: %v (going on)", err)
			break
		}
		if st != 503 || time.Now().After(deadline) {
			cbFatal(b, srvs, "train %s: %d %v", coll, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cbWaitAll(b, srvs, coll, want, limit), cbAll(b, srvs, coll)
}

// cbAll is s[0]'s description of the collection.
func cbAll(b *testing.B, srvs []*server, coll string) proto.Collection {
	var c proto.Collection
	if st, _, err := srvs[0].call("GET", "/v1/collections/"+coll, "", nil, &c); st != 200 {
		cbFatal(b, srvs, "describe %s: %d %v", coll, st, err)
	}
	return c
}

// cbWaitAll waits until every server says coll is ready with want items,
// and returns how long that took.
func cbWaitAll(b *testing.B, srvs []*server, coll string, want int64, limit time.Duration) time.Duration {
	b.Helper()
	t0 := time.Now()
	deadline := t0.Add(limit)
	for i, s := range srvs {
		for {
			var c proto.Collection
			st, _, err := s.call("GET", "/v1/collections/"+coll, "", nil, &c)
			if st == 200 && c.State == proto.Ready && c.Count == want {
				break
			}
			if time.Now().After(deadline) {
				cbFatal(b, srvs, "server %d: %s not ready with %d items within %v: %d %v %+v", i, coll, want, limit, st, err, c)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return time.Since(t0)
}

// cbWaitShards waits (at most limit, not fatal) until the shard map of
// coll holds only list shards (and id directory partitions) with replicas
// in-sync copies, and logs the map.
func cbWaitShards(b *testing.B, c *clusterNode, coll string, replicas int, limit time.Duration) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for {
		cu, err := c.cluster()
		var mine []proto.ClusterShard
		ok := err == nil
		for _, sh := range cu.Shards {
			if sh.Collection != coll {
				continue
			}
			mine = append(mine, sh)
			// A shard without lists is the buffer, unless it is a partition
			// of the id directory (name/ids/p), which has none for good.
			if sh.Lists == 0 && !strings.Contains(sh.Shard, "/ids/") || len(sh.InSync) < replicas || len(sh.Replicas) < replicas {
				ok = false
			}
		}
		if ok && len(mine) > 0 {
			per := map[string]int{}
			lists := 0
			for _, sh := range mine {
				lists += sh.Lists
				for _, r := range sh.Replicas {
					per[r]++
				}
			}
			cbNote("shard map of %s: %d shards, %d lists, replicas per node %v", coll, len(mine), lists, per)
			return
		}
		if time.Now().After(deadline) {
			cbNote("WARNING: shard map of %s not all list shards with %d in-sync copies after %v: %+v (%v)", coll, replicas, limit, mine, err)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// cbWaitIdle waits for each server process to be idle.
func cbWaitIdle(b *testing.B, srvs []*server) time.Duration {
	t0 := time.Now()
	for _, s := range srvs {
		waitIdle(b, s.cmd.Process.Pid, 2*time.Minute)
	}
	return time.Since(t0)
}

// cbQueries makes nq queries: base points perturbed, and their JSON
// search bodies.
func cbQueries(m *cbMixture, base []float32, nq int) ([]float32, [][]byte) {
	nb := len(base) / cbDim
	flat := make([]float32, 0, nq*cbDim)
	bodies := make([][]byte, nq)
	for i := range bodies {
		j := m.r.IntN(nb)
		q := append([]float32(nil), base[j*cbDim:(j+1)*cbDim]...)
		for x := range q {
			q[x] += 0.1 * float32(m.r.NormFloat64())
		}
		flat = append(flat, q...)
		bodies[i], _ = json.Marshal(map[string]any{"vector": q, "k": cbK, "nprobe": cbNProbe})
	}
	return flat, bodies
}

// cbLoadResult is one load phase's outcome.
type cbLoadResult struct {
	lat     []time.Duration // successful queries, sorted
	fails   int
	partial int
	first   string // first failure
	el      time.Duration
}

func (r *cbLoadResult) pct(p int) time.Duration { // p per 1000
	if len(r.lat) == 0 {
		return 0
	}
	return r.lat[min(len(r.lat)-1, len(r.lat)*p/1000)]
}

func (r *cbLoadResult) qps() float64 { return float64(len(r.lat)) / r.el.Seconds() }

// cbOne sends one search and classifies the answer.
func cbOne(hc *http.Client, url string, body []byte) (ok, partial bool, why string) {
	st, raw, err := cbPost(hc, url, proto.JSONContentType, body)
	if st != 200 || err != nil {
		return false, false, fmt.Sprintf("%s: %d %v %.300s", url, st, err, raw)
	}
	return true, bytes.Contains(raw, []byte(`"partial":true`)), ""
}

func (r *cbLoadResult) add(mu *sync.Mutex, lat time.Duration, ok, partial bool, why string) {
	mu.Lock()
	defer mu.Unlock()
	if !ok {
		r.fails++
		if r.first == "" {
			r.first = why
		}
		return
	}
	r.lat = append(r.lat, lat)
	if partial {
		r.partial++
	}
}

// cbClosedLoop: clients send queries back to back for dur, query i to
// urls[i % len(urls)].
func cbClosedLoop(hc *http.Client, urls []string, queries [][]byte, clients int, dur time.Duration) *cbLoadResult {
	res := &cbLoadResult{}
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	stop := start.Add(dur)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				i := int(next.Add(1) - 1)
				t0 := time.Now()
				ok, partial, why := cbOne(hc, urls[i%len(urls)], queries[i%len(queries)])
				res.add(&mu, time.Since(t0), ok, partial, why)
			}
		}()
	}
	wg.Wait()
	res.el = time.Since(start)
	sort.Slice(res.lat, func(i, j int) bool { return res.lat[i] < res.lat[j] })
	return res
}

// cbOpenLoop sends rate queries a second for dur on a fixed schedule,
// each in its own goroutine, query i to urls[i % len(urls)]; a query's
// latency runs from its scheduled send time, so a server (or client)
// that falls behind is charged for the wait (no coordinated omission).
func cbOpenLoop(hc *http.Client, urls []string, queries [][]byte, rate float64, dur time.Duration) (*cbLoadResult, time.Duration, int64) {
	res := &cbLoadResult{}
	var mu sync.Mutex
	n := int(rate * dur.Seconds())
	interval := time.Duration(float64(time.Second) / rate)
	var wg sync.WaitGroup
	var inflight, maxIn atomic.Int64
	var maxLag time.Duration
	start := time.Now().Add(5 * time.Millisecond)
	for i := range n {
		at := start.Add(time.Duration(i) * interval)
		if d := time.Until(at); d > 0 {
			time.Sleep(d)
		} else if -d > maxLag {
			maxLag = -d
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v := inflight.Add(1); v > maxIn.Load() {
				maxIn.Store(v) // racy max, good enough for a report
			}
			ok, partial, why := cbOne(hc, urls[i%len(urls)], queries[i%len(queries)])
			inflight.Add(-1)
			res.add(&mu, time.Since(at), ok, partial, why)
		}()
	}
	wg.Wait()
	res.el = time.Since(start)
	sort.Slice(res.lat, func(i, j int) bool { return res.lat[i] < res.lat[j] })
	return res, maxLag, maxIn.Load()
}

// cbScrape sums a histogram's _sum and _count over its label sets on
// s's /metrics; ok is false when the metric is absent.
func cbScrape(hc *http.Client, s *server, name string) (sum, count float64, ok bool) {
	resp, err := hc.Get(s.url("/metrics"))
	if err != nil {
		return 0, 0, false
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range strings.Split(string(raw), "\n") {
		var dst *float64
		switch {
		case strings.HasPrefix(line, name+"_sum ") || strings.HasPrefix(line, name+"_sum{"):
			dst = &sum
		case strings.HasPrefix(line, name+"_count ") || strings.HasPrefix(line, name+"_count{"):
			dst = &count
		default:
			continue
		}
		rest := line[len(name):]
		if at := strings.LastIndexByte(rest, '}'); at >= 0 {
			rest = rest[at+1:]
		} else {
			rest = rest[strings.IndexByte(rest, ' '):]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if v, err := strconv.ParseFloat(f[0], 64); err == nil {
			*dst += v
			ok = true
		}
	}
	return sum, count, ok
}

const cbContacted = "lookalike_search_nodes_contacted"

// cbScrapeAll is cbScrape summed over servers; ok when any has it.
func cbScrapeAll(hc *http.Client, srvs []*server) (sum, count float64, ok bool) {
	for _, s := range srvs {
		su, c, o := cbScrape(hc, s, cbContacted)
		sum, count, ok = sum+su, count+c, ok || o
	}
	return
}

// cbRecall searches the first nq queries one at a time (round-robin over
// urls) and returns recall@k against truth.
func cbRecall(b *testing.B, hc *http.Client, srvs []*server, urls []string, queries [][]byte, truth [][]ivf.Hit, prefix string) float64 {
	found := 0
	for i := range truth {
		st, raw, err := cbPost(hc, urls[i%len(urls)], proto.JSONContentType, queries[i])
		var res proto.SearchResult
		if st == 200 && err == nil {
			err = json.Unmarshal(raw, &res)
		}
		if st != 200 || err != nil {
			cbFatal(b, srvs, "recall query %d: %d %v %.300s", i, st, err, raw)
		}
		want := map[string]bool{}
		for _, h := range truth[i] {
			want[fmt.Sprintf("%s%d", prefix, h.ID)] = true
		}
		for _, h := range res.Hits {
			if want[h.ID] {
				found++
			}
		}
	}
	return float64(found) / float64(len(truth)*cbK)
}

// cbNote prints a progress line at once, to stderr (benchmark logs come
// only at the end, trimmed to 10 lines without -v).
func cbNote(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "cb %s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// cbLoad is the machine's load average, as /proc/loadavg gives it.
func cbLoad() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(raw))
	return strings.Join(f[:min(3, len(f))], " ")
}

func cbMs(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// cbPhase holds one setup's search figures.
type cbPhase struct {
	name      string
	open      *cbLoadResult
	closed    *cbLoadResult
	recall    float64
	contacted float64 // -1: metric absent or no searches counted
	hasMetric bool    // the metric is on /metrics
	lag       time.Duration
	maxIn     int64
	// cpu is the servers' CPU time (user and system, all of them) per
	// query answered in the open loop: steadier from run to run than the
	// rates, so two builds compare on it.
	cpu time.Duration
}

// cbSearchSetup loads the data into srvs (targets round-robin), trains,
// waits for ready and idle, checks recall, and runs the load phases; rate
// 0 means: derive the rate from the one node's closed-loop maximum
// (half), which the one node measures before its open loop (the cluster
// after it). It returns the phase and the offered rate.
func cbSearchSetup(b *testing.B, ph *cbPhase, srvs []*server, cn []*clusterNode, replicas int, bodies [][]byte, nb int,
	queries [][]byte, truth [][]ivf.Hit, rate float64, hc *http.Client) float64 {
	cbCreate(b, srvs, "cs", replicas)
	el, _, retries := cbInsert(b, hc, srvs, srvs, "cs", bodies, cbClients)
	cbNote("[%s] ingested %d vectors (%d clients, batches of %d, round-robin over %d nodes) in %v (%d retries)",
		ph.name, nb, cbClients, cbBatch, len(srvs), el.Round(time.Millisecond), retries)
	tr, c := cbTrain(b, srvs[0], srvs, "cs", int64(nb), 30*time.Minute)
	cbNote("[%s] trained nlist %d (epoch %d), ready with %d vectors on all %d nodes %v after the train call",
		ph.name, c.TrainedNList, c.Epoch, c.Count, len(srvs), tr.Round(time.Millisecond))
	if cn != nil {
		cbWaitShards(b, cn[0], "cs", replicas, 2*time.Minute)
	}
	cbNote("[%s] servers idle after %v", ph.name, cbWaitIdle(b, srvs).Round(time.Millisecond))
	urls := make([]string, len(srvs))
	for i, s := range srvs {
		urls[i] = s.url("/v1/collections/cs/search")
	}
	for i := range 300 { // warm up: connections, caches
		if ok, _, why := cbOne(hc, urls[i%len(urls)], queries[i%len(queries)]); !ok {
			cbFatal(b, srvs, "warm-up search: %s", why)
		}
	}
	ph.recall = cbRecall(b, hc, srvs, urls, queries, truth, "v")
	cbNote("[%s] recall@%d of %d queries at nprobe %d: %.4f", ph.name, cbK, len(truth), cbNProbe, ph.recall)
	if ph.name == "one node" {
		prof := cbProfile(hc, srvs, ph.name+"-search", 4*time.Second)
		ph.closed = cbClosedLoop(hc, urls, queries, cbSearchClients, 5*time.Second)
		prof()
		if rate == 0 {
			rate = ph.closed.qps() / 2
		}
		cbNote("[%s] closed loop, %d clients: %.0f q/s, p50 %v p99 %v", ph.name, cbSearchClients, ph.closed.qps(), ph.closed.pct(500), ph.closed.pct(990))
	}
	s0, c0, ok0 := cbScrapeAll(hc, srvs)
	cpu0 := cbCPU(b, srvs)
	ph.open, ph.lag, ph.maxIn = cbOpenLoop(hc, urls, queries, rate, 10*time.Second)
	if n := len(ph.open.lat) + ph.open.fails; n > 0 {
		ph.cpu = (cbCPU(b, srvs) - cpu0) / time.Duration(n)
	}
	s1, c1, ok1 := cbScrapeAll(hc, srvs)
	ph.contacted, ph.hasMetric = -1, ok0 && ok1
	if ok0 && ok1 && c1 > c0 {
		ph.contacted = (s1 - s0) / (c1 - c0)
	}
	cbNote("[%s] open loop %.0f q/s: got %.0f q/s, p50 %v p99 %v p99.9 %v, schedule lag ≤ %v, ≤ %d in flight; servers' CPU %v a query; load %s", ph.name, rate, ph.open.qps(),
		ph.open.pct(500), ph.open.pct(990), ph.open.pct(999), ph.lag, ph.maxIn, ph.cpu.Round(time.Microsecond), cbLoad())
	if ph.closed == nil { // the cluster's own maximum, for information, after the open loop
		prof := cbProfile(hc, srvs, ph.name+"-search", 4*time.Second)
		ph.closed = cbClosedLoop(hc, urls, queries, cbSearchClients, 5*time.Second)
		prof()
		cbNote("[%s] closed loop, %d clients: %.0f q/s, p50 %v p99 %v", ph.name, cbSearchClients, ph.closed.qps(), ph.closed.pct(500), ph.closed.pct(990))
	}
	for _, r := range []*cbLoadResult{ph.open, ph.closed} {
		if r.fails > 0 {
			cbNote("WARNING [%s]: %d failed searches; first: %s", ph.name, r.fails, r.first)
		}
	}
	return rate
}

// BenchmarkClusterSearch: search latency of a 3-node cluster (replicas 2)
// under an open-loop load of half the one-node maximum QPS, against one
// node under the same load. See the top of the file for how to run it.
func BenchmarkClusterSearch(b *testing.B) {
	cbSkip(b)
	load0 := cbLoad()
	nb := cbEnvInt("LOOKALIKE_BENCH_N", 100_000)
	const nq = 1000
	m := cbNewMixture(7)
	bodies, base := cbBodies(m, "v", nb)
	qflat, queries := cbQueries(m, base, nq)
	const nRecall = 200
	truth, err := ivf.BruteForce(ivf.L2, cbDim, base, qflat[:nRecall*cbDim], cbK, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	hc := cbClient()
	flags := append([]string{"--auto-train-at", "-1", "--quiet"}, strings.Fields(os.Getenv("LOOKALIKE_BENCH_SERVE_FLAGS"))...)

	one := &cbPhase{name: "one node"}
	s := startServerB(b, append(append([]string{"--model", "none"}, flags...), cbDebugFlags(b)...)...)
	rate := cbSearchSetup(b, one, []*server{s}, nil, 1, bodies, nb, queries, truth, float64(cbEnvInt("LOOKALIKE_BENCH_QPS", 0)), hc)
	s.stop()
	hc.CloseIdleConnections()

	cl := &cbPhase{name: "3 nodes r2"}
	cn, srvs := cbStartCluster(b, 3, flags...)
	cbSearchSetup(b, cl, srvs, cn, 2, bodies, nb, queries, truth, rate, hc)
	for _, s := range srvs {
		s.stop()
	}
	cbSaveLogs(srvs, "search")

	diff := cl.open.pct(990) - one.open.pct(990)
	b.ReportMetric(one.closed.qps(), "one-max-qps")
	b.ReportMetric(cl.closed.qps(), "cluster-max-qps")
	b.ReportMetric(rate, "offered-qps")
	for _, ph := range []*cbPhase{one, cl} {
		p := "one"
		if ph == cl {
			p = "cluster"
		}
		b.ReportMetric(cbMs(ph.open.pct(500)), p+"-p50-ms")
		b.ReportMetric(cbMs(ph.open.pct(990)), p+"-p99-ms")
		b.ReportMetric(cbMs(ph.open.pct(999)), p+"-p99.9-ms")
		b.ReportMetric(ph.recall, p+"-recall")
		b.ReportMetric(float64(ph.cpu.Nanoseconds())/1000, p+"-cpu-us/query")
		if ph.contacted >= 0 {
			b.ReportMetric(ph.contacted, p+"-nodes/query")
		}
	}
	b.ReportMetric(cbMs(diff), "p99-diff-ms")
	var t strings.Builder
	why := fmt.Sprintf("half the one-node closed-loop max, %d clients", cbSearchClients)
	if os.Getenv("LOOKALIKE_BENCH_QPS") != "" {
		why = "set by LOOKALIKE_BENCH_QPS"
	}
	fmt.Fprintf(&t, "N %d, dim %d, l2, nlist %d, k %d, nprobe %d; open loop %.0f q/s (%s) for 10 s\n",
		nb, cbDim, cbNList, cbK, cbNProbe, rate, why)
	fmt.Fprintf(&t, "%-11s %8s %8s %9s %9s %9s %7s %6s %7s %9s %8s %7s %8s\n",
		"setup", "max-qps", "got-qps", "p50", "p99", "p99.9", "recall", "fails", "partial", "nodes/q", "max-lag", "max-in", "CPU/q")
	for _, ph := range []*cbPhase{one, cl} {
		nq := "absent"
		if ph.hasMetric {
			nq = "0 obs"
		}
		if ph.contacted >= 0 {
			nq = fmt.Sprintf("%.2f", ph.contacted)
		}
		fmt.Fprintf(&t, "%-11s %8.0f %8.0f %9v %9v %9v %7.4f %6d %7d %9s %8v %7d %8v\n", ph.name, ph.closed.qps(), ph.open.qps(),
			ph.open.pct(500).Round(time.Microsecond), ph.open.pct(990).Round(time.Microsecond), ph.open.pct(999).Round(time.Microsecond),
			ph.recall, ph.open.fails+ph.closed.fails, ph.open.partial, nq, ph.lag.Round(time.Microsecond), ph.maxIn, ph.cpu.Round(time.Microsecond))
	}
	fmt.Fprintf(&t, "p99(cluster) - p99(one) = %v; load average %s at start, %s at end", diff.Round(time.Microsecond), load0, cbLoad())
	if !one.hasMetric && !cl.hasMetric {
		fmt.Fprintf(&t, "; %s absent from /metrics: nodes contacted per query not measured", cbContacted)
	}
	b.Logf("\n%s", t.String())
}

// cbCPU is the CPU time the servers have used so far.
func cbCPU(b *testing.B, srvs []*server) time.Duration {
	var t time.Duration
	for _, s := range srvs {
		t += procCPU(b, s.cmd.Process.Pid)
	}
	return t
}

// cbIngestSetup seeds and trains a collection on srvs, then times the
// ingest of meas. It returns the rate, the batches' latencies, the
// retries, and the servers' CPU time per vector ingested: from the first
// batch until the servers are idle again, so the flushes and compactions
// the ingest caused count. That cost moves much less than the rate with
// what else the machine runs (a few percent on a busy VM).
func cbIngestSetup(b *testing.B, name string, srvs []*server, cn []*clusterNode, replicas int, seed, meas [][]byte, nSeed, nMeas int, hc *http.Client) (float64, []time.Duration, int64, time.Duration) {
	cbCreate(b, srvs, "ci", replicas)
	cbInsert(b, hc, srvs, srvs, "ci", seed, cbClients)
	tr, c := cbTrain(b, srvs[0], srvs, "ci", int64(nSeed), 10*time.Minute)
	cbNote("[%s] seeded %d, trained nlist %d, ready on all nodes %v after the train call", name, nSeed, c.TrainedNList, tr.Round(time.Millisecond))
	if cn != nil {
		cbWaitShards(b, cn[0], "ci", replicas, 2*time.Minute)
	}
	cbNote("[%s] servers idle after %v", name, cbWaitIdle(b, srvs).Round(time.Millisecond))
	prof := cbProfile(hc, srvs, name+"-ingest", cbProfileWindow)
	cpu0 := cbCPU(b, srvs)
	el, lat, retries := cbInsert(b, hc, srvs, srvs, "ci", meas, cbClients)
	prof()
	rate := float64(nMeas) / el.Seconds()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	// Every write was acknowledged after all replicas applied it; the
	// count should say so at once.
	settle := cbWaitAll(b, srvs, "ci", int64(nSeed+nMeas), 2*time.Minute)
	idle := cbWaitIdle(b, srvs)
	perVec := (cbCPU(b, srvs) - cpu0) / time.Duration(nMeas)
	cbNote("[%s] %d new vectors in %v: %.0f vectors/s, batch p50 %v p99 %v, %d retries; all nodes count %d after %v; servers' CPU %v a vector (idle %v after)",
		name, nMeas, el.Round(time.Millisecond), rate, lat[len(lat)/2], lat[len(lat)*99/100], retries, nSeed+nMeas, settle.Round(time.Millisecond),
		perVec.Round(10*time.Nanosecond), idle.Round(time.Second))
	cbSaveLogs(srvs, strings.ReplaceAll(name, " ", "_")+"-ingest")
	return rate, lat, retries, perVec
}

// BenchmarkClusterIngest: new-id ingest rate into a trained collection,
// 4 clients × batches of 1,000, on one node (replicas 1) and on a 3-node
// cluster with replicas 2 (LOOKALIKE_BENCH_REPLICAS; requests round-robin over the nodes), in
// LOOKALIKE_BENCH_ROUNDS rounds (default 3).
func BenchmarkClusterIngest(b *testing.B) {
	cbSkip(b)
	load0 := cbLoad()
	nSeed := cbEnvInt("LOOKALIKE_BENCH_INGEST_SEED", 20_000)
	nMeas := cbEnvInt("LOOKALIKE_BENCH_INGEST_N", 300_000)
	m := cbNewMixture(11)
	seed, _ := cbBodies(m, "seed", nSeed)
	meas, _ := cbBodies(m, "new", nMeas)
	hc := cbClient()
	flags := append([]string{"--auto-train-at", "-1", "--quiet"}, strings.Fields(os.Getenv("LOOKALIKE_BENCH_SERVE_FLAGS"))...)

	// Rounds of one node then the cluster, each on fresh servers: the
	// machine's speed drifts by ±15 % over minutes, so each round's ratio
	// pairs neighbours in time, and the medians are reported.
	rounds := cbEnvInt("LOOKALIKE_BENCH_ROUNDS", 3)
	replicas := cbEnvInt("LOOKALIKE_BENCH_REPLICAS", 2)
	var ones, cls, ratios, oneP99s, clP99s, oneCPUs, clCPUs, cpuRatios []float64
	var t strings.Builder
	fmt.Fprintf(&t, "ingest of %d new ids into a trained collection (seeded %d), %d clients × %d, dim %d, %d rounds; CPU: the servers' µs a vector:\n%-6s %12s %12s %10s %10s %10s %8s %8s %9s  %s\n",
		nMeas, nSeed, cbClients, cbBatch, cbDim, rounds, "round", "one v/s", "cluster v/s", "ratio", "one p99", "clust p99", "one CPU", "clu CPU", "CPU ratio", "load")
	for r := range rounds {
		s := startServerB(b, append(append([]string{"--model", "none"}, flags...), cbDebugFlags(b)...)...)
		oneRate, oneLat, _, oneCPU := cbIngestSetup(b, fmt.Sprintf("one node r%d", r+1), []*server{s}, nil, 1, seed, meas, nSeed, nMeas, hc)
		s.stop()
		os.RemoveAll(s.dir) // its dirty pages go with it, not into the next phase's fsyncs
		hc.CloseIdleConnections()

		cn, srvs := cbStartCluster(b, 3, flags...)
		clRate, clLat, _, clCPU := cbIngestSetup(b, fmt.Sprintf("3 nodes r%d r%d", replicas, r+1), srvs, cn, replicas, seed, meas, nSeed, nMeas, hc)
		for _, s := range srvs {
			s.stop()
			os.RemoveAll(s.dir)
		}
		hc.CloseIdleConnections()
		onep, clp := oneLat[len(oneLat)*99/100], clLat[len(clLat)*99/100]
		ones, cls, ratios = append(ones, oneRate), append(cls, clRate), append(ratios, clRate/oneRate)
		oneP99s, clP99s = append(oneP99s, cbMs(onep)), append(clP99s, cbMs(clp))
		oneUS, clUS := float64(oneCPU)/1e3, float64(clCPU)/1e3
		oneCPUs, clCPUs, cpuRatios = append(oneCPUs, oneUS), append(clCPUs, clUS), append(cpuRatios, clUS/oneUS)
		fmt.Fprintf(&t, "%-6d %12.0f %12.0f %10.3f %10v %10v %8.1f %8.1f %9.2f  %s\n", r+1, oneRate, clRate, clRate/oneRate,
			onep.Round(time.Microsecond), clp.Round(time.Microsecond), oneUS, clUS, clUS/oneUS, cbLoad())
	}
	med := func(v []float64) float64 {
		v = slices.Clone(v)
		slices.Sort(v)
		return v[len(v)/2]
	}
	b.ReportMetric(med(ones), "one-vectors/s")
	b.ReportMetric(med(cls), "cluster-vectors/s")
	b.ReportMetric(med(ratios), "cluster/one")
	b.ReportMetric(med(oneP99s), "one-p99-batch-ms")
	b.ReportMetric(med(clP99s), "cluster-p99-batch-ms")
	b.ReportMetric(med(oneCPUs), "one-cpu-us/vector")
	b.ReportMetric(med(clCPUs), "cluster-cpu-us/vector")
	fmt.Fprintf(&t, "%-6s %12.0f %12.0f %10.3f %10.1fms %8.1fms %8.1f %8.1f %9.2f\ncluster/one: median of the rounds' ratios %.3f, ratio of the medians %.3f; load average %s at start",
		"median", med(ones), med(cls), med(ratios), med(oneP99s), med(clP99s), med(oneCPUs), med(clCPUs), med(cpuRatios), med(ratios), med(cls)/med(ones), load0)
	b.Logf("\n%s", t.String())
}
