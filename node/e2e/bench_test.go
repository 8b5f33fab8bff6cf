package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"lookalike/ivf"
	"lookalike/node"
	"lookalike/node/store"
	"lookalike/proto"
)

// BenchmarkIngest measures the ingest target through a real
// server: 128-d vectors, fsync on, a trained collection, 4 concurrent
// clients, batches of 1,000, for 10 s per format. Run it with
//
//	go test -run '^$' -bench Ingest -benchtime 1x ./node/e2e
func BenchmarkIngest(b *testing.B) {
	for _, format := range []string{"bulk", "json"} {
		for _, mode := range []string{"new", "upsert"} {
			b.Run(format+"/"+mode, func(b *testing.B) { benchIngest(b, format == "bulk", mode == "new") })
		}
	}
}

// benchIngest: with fresh, every request carries 1,000 ids never seen
// before (the clients write a request number into fixed-width ids of
// pre-encoded bodies, and renew the bulk CRC); without, the clients cycle
// through 64 bodies, so past the first 64 requests every item is an
// upsert of an existing id.
func benchIngest(b *testing.B, bulk, fresh bool) {
	s := startServerB(b, "--auto-train-at", "-1", "--quiet", "--model", "none")
	const d, batch, clients = 128, 1000, 4
	s.must("POST", "/v1/collections", map[string]any{"name": "i", "metric": "l2", "dim": d, "nlist": 256}, 201, nil)
	r := rand.New(rand.NewPCG(1, 1))
	body := func(prefix string, n int, bulk bool) ([]byte, string) {
		items := make([]proto.InsertItem, n)
		for i := range items {
			items[i] = proto.InsertItem{ID: fmt.Sprintf("%s%012d", prefix, i), Vector: vec(r, d)}
		}
		if bulk {
			var buf bytes.Buffer
			proto.EncodeBulk(&buf, items, true)
			return buf.Bytes(), proto.BulkContentType
		}
		buf, _ := json.Marshal(proto.Insert{Items: items})
		return buf, proto.JSONContentType
	}
	// Train on 20,000 vectors first (steady state is a trained collection).
	for i := 0; i < 20; i++ {
		bb, ct := body(fmt.Sprintf("seed%d-", i), batch, true)
		if st, _, err := s.call("POST", "/v1/collections/i/vectors", ct, bb, nil); st != 200 {
			b.Fatal(err)
		}
	}
	s.must("POST", "/v1/collections/i/train", nil, 202, nil)
	s.waitReady("i")
	// Pre-encode the request bodies so the clients measure the server.
	bodies := make([][]byte, 64)
	var ctype string
	for i := range bodies {
		bodies[i], ctype = body(fmt.Sprintf("b%02d-", i), batch, bulk)
	}
	// Where each body's ids are, for the fresh mode's renaming.
	var offs [][]int
	if fresh {
		offs = make([][]int, len(bodies))
		for bi, bb := range bodies {
			for i := 0; i < batch; i++ {
				id := []byte(fmt.Sprintf("b%02d-%012d", bi, i))
				at := bytes.Index(bb, id)
				if at < 0 || bytes.Count(bb, id) != 1 {
					b.Fatalf("id %s not found once in body %d", id, bi)
				}
				offs[bi] = append(offs[bi], at+4)
			}
		}
	}
	var n, reqs atomic.Int64
	var lat []time.Duration
	var mu sync.Mutex
	stop := time.Now().Add(10 * time.Second)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			hc := &http.Client{}
			var own []byte
			for i := c; time.Now().Before(stop); i += clients {
				bi := i % len(bodies)
				bb := bodies[bi]
				if fresh {
					own = append(own[:0], bb...)
					req := reqs.Add(1)
					for j, at := range offs[bi] {
						x := uint64(req)*batch + uint64(j)
						for k := 11; k >= 0; k-- {
							own[at+k] = byte('0' + x%10)
							x /= 10
						}
					}
					if bulk {
						binary.LittleEndian.PutUint32(own[len(own)-4:], crc32.Checksum(own[:len(own)-4], crc32.MakeTable(crc32.Castagnoli)))
					}
					bb = own
				}
				t0 := time.Now()
				resp, err := hc.Post("http://"+s.http+"/v1/collections/i/vectors", ctype, bytes.NewReader(bb))
				if err != nil || resp.StatusCode != 200 {
					b.Error(err, resp)
					return
				}
				resp.Body.Close()
				mu.Lock()
				lat = append(lat, time.Since(t0))
				mu.Unlock()
				n.Add(batch)
			}
		}(c)
	}
	wg.Wait()
	el := time.Since(start)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(n.Load())/el.Seconds(), "vectors/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-batch-ms")
	var st proto.Collection
	s.must("GET", "/v1/collections/i", nil, 200, &st)
	b.Logf("%d vectors in %v: %.0f vectors/s, batch p50 %v p99 %v; collection holds %d", n.Load(), el.Round(time.Millisecond),
		float64(n.Load())/el.Seconds(), lat[len(lat)/2], lat[len(lat)*99/100], st.Count)
	s.stop()
}

// BenchmarkSearch measures search over HTTP against the same index
// searched in process, and the cold start of a restarted server. N is
// LOOKALIKE_BENCH_N vectors (default 100,000) of 128-d from a seeded
// Gaussian mixture; queries are 1,000 perturbed base vectors, sent by one
// client in a closed loop (offered load: one query at a time).
//
//	LOOKALIKE_BENCH_N=100000 go test -run '^$' -bench Search -benchtime 1x -timeout 30m ./node/e2e
func BenchmarkSearch(b *testing.B) {
	nb := 100_000
	if v := os.Getenv("LOOKALIKE_BENCH_N"); v != "" {
		fmt.Sscan(v, &nb)
	}
	const d, nprobe, k, nq = 128, 16, 10, 1000
	s := startServerB(b, "--auto-train-at", "-1", "--quiet", "--model", "none")
	s.must("POST", "/v1/collections", map[string]any{"name": "s", "metric": "l2", "dim": d}, 201, nil)
	r := rand.New(rand.NewPCG(7, 7))
	centres := make([][]float32, 64)
	for i := range centres {
		centres[i] = vec(r, d)
		for j := range centres[i] {
			centres[i][j] *= 4
		}
	}
	point := func() []float32 {
		c := centres[r.IntN(len(centres))]
		v := make([]float32, d)
		for j := range v {
			v[j] = c[j] + float32(r.NormFloat64())
		}
		return v
	}
	var queries [][]float32
	base := make([]float32, 0, nb*d)
	ingest := time.Now()
	for done := 0; done < nb; {
		n := min(10_000, nb-done)
		items := make([]proto.InsertItem, n)
		for i := range items {
			items[i] = proto.InsertItem{ID: fmt.Sprintf("v%d", done+i), Vector: point()}
			base = append(base, items[i].Vector...)
			if len(queries) < nq && r.IntN(max(1, nb/nq)) == 0 {
				q := append([]float32(nil), items[i].Vector...)
				for j := range q {
					q[j] += 0.1 * float32(r.NormFloat64())
				}
				queries = append(queries, q)
			}
		}
		var buf bytes.Buffer
		proto.EncodeBulk(&buf, items, true)
		if st, _, err := s.call("POST", "/v1/collections/s/vectors", proto.BulkContentType, buf.Bytes(), nil); st != 200 {
			b.Fatal(err)
		}
		done += n
	}
	b.Logf("ingested %d vectors (one client, batches of 10,000) in %v", nb, time.Since(ingest).Round(time.Millisecond))
	trainStart := time.Now()
	s.must("POST", "/v1/collections/s/train", nil, 202, nil)
	c := s.waitReadyFor("s", 30*time.Minute)
	b.Logf("trained nlist %d and moved %d vectors in %v", c.TrainedNList, nb, time.Since(trainStart).Round(time.Millisecond))
	// Steady state: training leaves flushes, compactions and the index
	// save running for a while; the latency asked about is the serving
	// one, so wait until the server is idle, then warm up.
	idle := waitIdle(b, s.cmd.Process.Pid, 2*time.Minute)
	b.Logf("server idle after %v", idle.Round(time.Millisecond))
	hc := &http.Client{}
	// search returns the hits and the latency to the answer being in
	// (decoding it is the client's time).
	search := func(q []float32) ([]string, time.Duration) {
		body, _ := json.Marshal(map[string]any{"vector": q, "k": k, "nprobe": nprobe})
		t0 := time.Now()
		resp, err := hc.Post("http://"+s.http+"/v1/collections/s/search", proto.JSONContentType, bytes.NewReader(body))
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err, resp)
		}
		raw, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		lat := time.Since(t0)
		var res proto.SearchResult
		if err == nil {
			err = json.Unmarshal(raw, &res)
		}
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]string, len(res.Hits))
		for i, h := range res.Hits {
			ids[i] = h.ID
		}
		return ids, lat
	}
	for i := 0; i < 200; i++ {
		search(queries[i%len(queries)])
	}
	// Each query is sent `rounds` times, one at a time (closed loop); the
	// last round's hits give recall.
	const rounds = 5
	httpLat := make([]time.Duration, 0, rounds*len(queries))
	httpHits := make([][]string, len(queries))
	for round := 0; round < rounds; round++ {
		for i, q := range queries {
			ids, lat := search(q)
			httpLat = append(httpLat, lat)
			httpHits[i] = ids
		}
	}
	// Recall@k of the HTTP answers against brute force.
	flat := make([]float32, 0, len(queries)*d)
	for _, q := range queries {
		flat = append(flat, q...)
	}
	truth, err := ivf.BruteForce(ivf.L2, d, base, flat, k, 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	found := 0
	for i, tr := range truth {
		want := map[string]bool{}
		for _, h := range tr {
			want[fmt.Sprintf("v%d", h.ID)] = true
		}
		for _, id := range httpHits[i] {
			if want[id] {
				found++
			}
		}
	}
	recall := float64(found) / float64(len(queries)*k)
	b.Logf("recall@%d through HTTP at nprobe %d: %.4f", k, nprobe, recall)
	b.ReportMetric(recall, "recall")
	s.stop()
	// The same index, in process: the one the server saved at shutdown.
	st, err := node.OpenPebble(filepath.Join(s.dir, "store"), store.Options{})
	if err != nil {
		b.Fatal(err)
	}
	ix, err := st.LoadIndex("s", ivf.Options{})
	if err != nil || ix == nil {
		b.Fatal("load index: ", err)
	}
	inLat := make([]time.Duration, 0, rounds*len(queries))
	for round := 0; round < rounds; round++ {
		for _, q := range queries {
			t0 := time.Now()
			if _, err := ix.Search(q, ivf.SearchOptions{K: k, NProbe: nprobe}); err != nil {
				b.Fatal(err)
			}
			inLat = append(inLat, time.Since(t0))
		}
	}
	st.Close()
	pct := func(l []time.Duration, p int) time.Duration {
		sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
		return l[len(l)*p/100]
	}
	b.Logf("search nprobe %d k %d, %d queries × %d: HTTP p50 %v p99 %v p99.9 %v; in-process p50 %v p99 %v p99.9 %v",
		nprobe, k, len(queries), rounds, pct(httpLat, 50), pct(httpLat, 99), pctMille(httpLat, 999), pct(inLat, 50), pct(inLat, 99), pctMille(inLat, 999))
	b.ReportMetric(float64(pct(httpLat, 99).Microseconds())/1000, "http-p99-ms")
	b.ReportMetric(float64(pct(inLat, 99).Microseconds())/1000, "inproc-p99-ms")
	// Cold start: restart and time the first answered query.
	t0 := time.Now()
	s.restart()
	body, _ := json.Marshal(map[string]any{"vector": queries[0], "k": k, "nprobe": nprobe})
	if st, _, err := s.call("POST", "/v1/collections/s/search", proto.JSONContentType, body, nil); st != 200 {
		b.Fatal(err)
	}
	cold := time.Since(t0)
	b.Logf("cold start: first query answered %v after the process started (healthy after %v)", cold.Round(time.Millisecond), s.startDur.Round(time.Millisecond))
	b.ReportMetric(cold.Seconds(), "cold-start-s")
	s.stop()
}

// pctMille is the p/1000 quantile of sorted l.
func pctMille(l []time.Duration, p int) time.Duration { return l[len(l)*p/1000] }

// waitIdle waits until process pid has used under 5% of a core for a
// second (or until limit) and says how long that took.
func waitIdle(b *testing.B, pid int, limit time.Duration) time.Duration {
	cpu := func() time.Duration { return procCPU(b, pid) }
	start := time.Now()
	prev := cpu()
	for time.Since(start) < limit {
		time.Sleep(time.Second)
		cur := cpu()
		if cur-prev < 50*time.Millisecond {
			break
		}
		prev = cur
	}
	return time.Since(start)
}

// procCPU is the CPU time (user and system) process pid has used so far,
// from /proc (Linux).
func procCPU(b testing.TB, pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	var ut, st int64
	fmt.Sscan(f[11], &ut)                               // utime, field 14 of stat
	fmt.Sscan(f[12], &st)                               // stime, field 15
	return time.Duration(ut+st) * 10 * time.Millisecond // USER_HZ = 100
}
