package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"lookalike/proto"
)

// TestClusterDirSweep: a gateway that dies between an upsert's write and
// its eviction (the failpoint exit-before-evict, package
// internal/failpoint) leaves two copies of each id the upsert moved to a
// list of another shard: the old vector still finds the id and the count
// is too high. Reads by id must answer the upsert's write through every
// node at once (dirGet answers the newest copy of those the entry's
// shards hold). The directory sweep (node/sweep.go) must then remove the
// older copies, once the entries' lists have settled (about 50 s with
// the default call timeout), so that through every node each id reads as
// the upsert's write, is found at its new vector and not at its old one,
// and the count is right again.
func TestClusterDirSweep(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	const (
		d, nlist, nbase = 16, 8, 1000
		seed            = 73
		moved           = 60
		name            = "sweep"
		path            = "/v1/collections/" + name
	)
	begin := time.Now()
	nodes := cdStartCluster(t, 3, "--auto-train-at", "-1", "--dir-sweep", "1s")
	cdLogTails(t, nodes, 80)
	cdWaitFormed(t, nodes)
	cdSeedTrained(t, nodes, name, d, nlist, nbase, seed)
	chaosWaitWhole(t, nodes, name, nlist, 60*time.Second)
	// The base vectors, as cdSeedUntrained drew them.
	r := rand.New(rand.NewPCG(seed, seed+1))
	old := make([][]float32, nbase)
	for i := range old {
		old[i] = vec(r, d)
	}

	// The gateway, restarted with the failpoint.
	gw := nodes[2]
	gw.kill9()
	gw.env = []string{"LOOKALIKE_FAILPOINTS=exit-before-evict"}
	gw.restart()
	chaosWaitWhole(t, nodes, name, nlist, 60*time.Second)
	cdWaitReady(t, gw, name, 60*time.Second) // caught up with the leader's table: serving
	ids := make([]string, moved)
	vecs := make([][]float32, moved)
	r = rand.New(rand.NewPCG(seed, 2))
	for i := range ids {
		ids[i] = fmt.Sprintf("base-%d", i)
		vecs[i] = vec(r, d)
	}
	st, err := cdCall(gw.server, 30*time.Second, "POST", path+"/vectors", cdInsertBody(ids, vecs, 5000), nil)
	select {
	case exit := <-gw.done:
		t.Logf("the upsert through %s: %d %v; it exited (%v) %v after the start", gw.id, st, err, exit, time.Since(begin).Round(time.Millisecond))
	case <-time.After(30 * time.Second):
		t.Fatalf("the upsert through %s answered %d %v, and the server did not exit at the failpoint", gw.id, st, err)
	}
	gw.env = nil
	gw.restart()
	wrote := time.Now()

	// Two copies now: the old vectors find the ids.
	search := func(c *clusterNode, v []float32) []proto.Hit {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"vector": v, "k": 5, "nprobe": nlist})
		var res proto.SearchResult
		if st, err := cdRetry(c.server, 30*time.Second, "POST", path+"/search", body, &res); st != 200 || res.Partial {
			t.Fatalf("search through %s: %d %v (partial %t)", c.id, st, err, res.Partial)
		}
		return res.Hits
	}
	at := func(hits []proto.Hit, id string) bool {
		return slices.ContainsFunc(hits, func(h proto.Hit) bool { return h.ID == id && h.Score < chaosGhost })
	}
	twice := 0
	for i, id := range ids {
		if at(search(nodes[0], old[i]), id) {
			twice++
		}
	}
	count := func(c *clusterNode) int64 {
		var col proto.Collection
		if st, err := cdRetry(c.server, 30*time.Second, "GET", path, nil, &col); st != 200 {
			t.Fatalf("GET %s through %s: %d %v", path, c.id, st, err)
		}
		return col.Count
	}
	n0 := count(nodes[0])
	t.Logf("%v after the write: %d of the %d ids upserted found at their old vector; count %d (%d items)", time.Since(wrote).Round(time.Millisecond), twice, moved, n0, nbase)
	if twice == 0 {
		t.Fatalf("the failpoint left no id with two copies (none found at its old vector; count %d): the test exercises nothing", n0)
	}

	// Reads by id answer the newest copy through every node already
	// (dirGet reads every shard the entry names).
	readsNewest := func(when string) {
		t.Helper()
		for _, c := range nodes {
			for i, id := range ids {
				var it proto.Item
				if st, err := cdRetry(c.server, 30*time.Second, "GET", path+"/items/"+id+"?vector=true", nil, &it); st != 200 {
					t.Errorf("%s: GET %s through %s: %d %v", when, id, c.id, st, err)
				} else if want := fmt.Sprintf(`{"i":%d}`, 5000+i); string(it.Meta) != want || !slices.Equal(it.Vector, vecs[i]) {
					t.Errorf("%s: %s through %s reads as %s, want the upsert's %s", when, id, c.id, it.Meta, want)
				}
			}
		}
	}
	readsNewest("before the sweep")

	// The sweep settles them.
	settled := func() string {
		for _, c := range nodes {
			if n := count(c); n != nbase {
				return fmt.Sprintf("count %d through %s", n, c.id)
			}
		}
		for _, c := range nodes {
			for i, id := range ids {
				if at(search(c, old[i]), id) {
					return fmt.Sprintf("%s found at its old vector through %s", id, c.id)
				}
			}
		}
		return ""
	}
	deadline := time.Now().Add(4 * time.Minute)
	for {
		why := settled()
		if why == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the write: %s", time.Since(wrote).Round(time.Second), why)
		}
		time.Sleep(2 * time.Second)
	}
	t.Logf("the count is %d and no id is found at its old vector through every node %v after the write", nbase, time.Since(wrote).Round(time.Millisecond))
	readsNewest("after the sweep")
	for _, c := range nodes {
		for i, id := range ids {
			if !at(search(c, vecs[i]), id) {
				t.Errorf("%s through %s: not found at its new vector", id, c.id)
			}
			if at(search(c, old[i]), id) {
				t.Errorf("%s through %s: still found at its old vector", id, c.id)
			}
		}
	}
	// The nodes' metrics count what the sweeps did.
	evicted := sweepDone(t, nodes)["evicted"]
	t.Logf("sweeps evicted older copies of %.0f ids; whole test %v", evicted, time.Since(begin).Round(time.Millisecond))
	if evicted < float64(twice) {
		t.Errorf("the sweeps report %.0f ids evicted, want at least the %d found twice", evicted, twice)
	}
}
