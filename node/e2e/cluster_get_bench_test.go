package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"
)

// BenchmarkClusterGet: reads by id (GET /v1/collections/{c}/items/{id},
// no vector) through a 3-node cluster with replicas 2, after an ingest of
// LOOKALIKE_BENCH_N vectors (default 20,000) and a training: each read
// costs the gateway a read of the id's directory entry and one of its
// copy (docs/node.md, "The id directory"), each local or a `get` call.
// LOOKALIKE_BENCH_CLIENTS clients (4) read random ids in a closed loop
// for 10 s, round-robin over the nodes. It reports the rate, the
// latencies and the servers' CPU time a read; compare builds with
// LOOKALIKE_E2E_BIN, taking turns.
func BenchmarkClusterGet(b *testing.B) {
	cbSkip(b)
	nb := cbEnvInt("LOOKALIKE_BENCH_N", 20_000)
	const coll = "cg"
	bodies, _ := cbBodies(cbNewMixture(11), "v", nb)
	hc := cbClient()
	cn, srvs := cbStartCluster(b, 3, "--auto-train-at", "-1", "--quiet")
	defer func() {
		for _, s := range srvs {
			s.stop()
		}
	}()
	cbCreate(b, srvs, coll, 2)
	cbInsert(b, hc, srvs, srvs, coll, bodies, cbClients)
	cbTrain(b, srvs[0], srvs, coll, int64(nb), 10*time.Minute)
	cbWaitShards(b, cn[0], coll, 2, 2*time.Minute)
	cbWaitIdle(b, srvs)

	const dur = 10 * time.Second
	var mu sync.Mutex
	var lat []time.Duration
	var failure string
	cpu0 := cbCPU(b, srvs)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range cbClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 5))
			var mine []time.Duration
			for i := c; time.Since(start) < dur; i++ {
				url := srvs[i%len(srvs)].url(fmt.Sprintf("/v1/collections/%s/items/v%d", coll, r.IntN(nb)))
				t0 := time.Now()
				resp, err := hc.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					mu.Lock()
					if failure == "" {
						failure = fmt.Sprintf("GET %s: %v %v", url, err, resp)
					}
					mu.Unlock()
					return
				}
				mine = append(mine, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cpu := cbCPU(b, srvs) - cpu0
	if failure != "" {
		cbFatal(b, srvs, "%s", failure)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	n := len(lat)
	perRead := cpu / time.Duration(n)
	b.ReportMetric(float64(n)/el.Seconds(), "reads/s")
	b.ReportMetric(cbMs(lat[n/2]), "p50-ms")
	b.ReportMetric(cbMs(lat[n*99/100]), "p99-ms")
	b.ReportMetric(float64(perRead.Nanoseconds())/1000, "cpu-us/read")
	b.Logf("%d items, %d clients: %d reads in %v, %.0f reads/s, p50 %v p99 %v, servers' CPU %v a read; load average %s",
		nb, cbClients, n, el.Round(time.Millisecond), float64(n)/el.Seconds(), lat[n/2], lat[n*99/100], perRead.Round(100*time.Nanosecond), cbLoad())
}
