package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"lookalike/proto"
)

// TestClusterChaos: writers upsert and delete ids of their own while
// searchers run and the nodes are killed with kill -9 and restarted, one
// at a time, the Raft leader among them, each kill meeting whatever
// requests are in flight through the victim (a gateway dies in the middle
// of a write). Once every shard has two in-sync replicas again, the
// history decides what each id may read as: the state its last
// acknowledged operation left, or that of an operation whose outcome the
// writer never learnt (an attempt that failed may still have been
// applied, at any time after it was sent, as in Jepsen's model). Through
// every node:
//   - every id reads as one of its allowed states (vector and metadata),
//     and one that is present is found by a search at its vector;
//   - no older vector of an id finds it (no copy left behind by an
//     upsert that moved it to another shard, nor by a delete);
//   - no search answer names an id twice;
//   - the count is the base items plus the ids present;
//   - all of that again once the entries have settled and the directory
//     sweep (every 2 s here) has run on them (sweepRecheck).
//
// The kill after every third comes as soon as the node killed before it
// answers again, while that node may still be catching up. LOOKALIKE_CHAOS_CYCLES sets
// the number of kills (default 6), for a longer soak by hand, and
// LOOKALIKE_CHAOS_TERM=1 makes every other one a SIGTERM (chaosRun).
func TestClusterChaos(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes and kills them in turn")
	}
	chaosRun(t, chaosOpts{trainAt: -1, nbase: 1000, sweepCheck: true})
}

// TestClusterChaosPartition is TestClusterChaos with network partitions
// instead of kills: each node runs in a network namespace of its own,
// and each cycle cuts one off from the other two (both ways; the test
// still reaches it) for 4 s, past its lease, then heals the cut. The
// load keeps using every node, the one cut off included: there a write
// must be refused or time out, never be acknowledged and then lost, and
// a read must not answer from a stale replica once the lease has ended.
func TestClusterChaosPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes in network namespaces")
	}
	chaosRun(t, chaosOpts{trainAt: -1, nbase: 1000, partition: true})
}

// TestClusterChaosRestore is TestClusterChaos with --restore-delay
// negative: when a node dies, the leader copies its shards at once to the
// live node that lacks them (a full copy, under the writers' load) instead
// of waiting for it to come back, and the node that comes back finds its
// shards whole without it and drops its copies (purgeUnheld), until a
// later kill makes it the only node to copy them to again. So the full
// copies, the purges and the directory partitions' copies run under the
// kills, where TestClusterChaos (60 s) only ever catches a node up.
func TestClusterChaosRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes and kills them in turn")
	}
	chaosRun(t, chaosOpts{trainAt: -1, nbase: 1000, restoreDelay: -time.Second})
}

// TestClusterChaosTraining is TestClusterChaos on a collection that
// starts untrained, 20,000 items in its buffer shards (8,000 when the
// servers are race-built), trained just
// before the first kill: k-means and the move of the buffer to the list
// shards (about 3 s here) run under the kills, the writers' upserts and
// deletes, and the catch-up of the nodes that come back. Every base item
// counts as an acknowledged write. Before the fix in evictBuffered, 8 of
// 11 runs lost 3,000–10,600 base items: a node back during the move
// dropped its buffer while catching up a list shard, and the drop made
// it skip that shard's moved items.
func TestClusterChaosTraining(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes and kills them in turn")
	}
	nbase := 20_000
	if os.Getenv("LOOKALIKE_E2E_RACE") != "" {
		// Race-built servers take about a minute to catch up a restarted
		// node of 20,000 items here, and the test 6.5 minutes.
		nbase = 8_000
	}
	chaosRun(t, chaosOpts{trainAt: 0, nbase: nbase})
}

// chaosOpts is what a chaos test varies.
type chaosOpts struct {
	// trainAt ≥ 0: the collection starts untrained (the base items in the
	// buffer shards), and the train call goes just before kill number
	// trainAt: k-means and the move of the buffer to the lists run under
	// the kills and the writers' upserts and deletes.
	trainAt int
	// nbase is the base items (a multiple of 500).
	nbase int
	// partition: the faults are network partitions
	// (TestClusterChaosPartition), not kills.
	partition bool
	// restoreDelay is the servers' --restore-delay; 0 means 60 s, longer
	// than any node stays down, so a shard is only ever caught up.
	restoreDelay time.Duration
	// sweepCheck: once the checks have passed, wait until every entry
	// the chaos left has settled and the directory sweep (every 2 s
	// here) has run on it, and check again.
	sweepCheck bool
}

// chaosRun is TestClusterChaos as o says. For soaks by hand:
// LOOKALIKE_CHAOS_TERM=1 makes every other stop (the second, fourth, …) a
// SIGTERM, the load leaving the node first, as behind a load balancer;
// LOOKALIKE_CHAOS_RESTORE_DELAY sets o.restoreDelay (the training or
// partition chaos with restores); LOOKALIKE_CHAOS_SEED (a number) picks
// other victims and another load than CI's runs.
func chaosRun(t *testing.T, o chaosOpts) {
	trainAt, nbase, partition := o.trainAt, o.nbase, o.partition
	begin := time.Now()
	term := os.Getenv("LOOKALIKE_CHAOS_TERM") != ""
	const (
		d, nlist      = 16, 8
		writers, perW = 3, 60
		name          = "chaos"
		path          = "/v1/collections/" + name
	)
	cycles := 6
	if s := os.Getenv("LOOKALIKE_CHAOS_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("LOOKALIKE_CHAOS_CYCLES=%q: want a positive number", s)
		}
		cycles = n
	}
	// seed varies the victims and the load (0: the runs CI makes).
	var seed uint64
	if s := os.Getenv("LOOKALIKE_CHAOS_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("LOOKALIKE_CHAOS_SEED=%q: want a number", s)
		}
		seed = n
		t.Logf("seed %d", seed)
	}
	if s := os.Getenv("LOOKALIKE_CHAOS_RESTORE_DELAY"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d == 0 {
			t.Fatalf("LOOKALIKE_CHAOS_RESTORE_DELAY=%q: want a non-zero duration", s)
		}
		o.restoreDelay = d
	}
	if o.restoreDelay == 0 {
		o.restoreDelay = 60 * time.Second
	}
	// The directory sweep every 2 s (1 min by default): sweepCheck.
	flags := []string{"--auto-train-at", "-1", "--restore-delay", o.restoreDelay.String(), "--dir-sweep", "2s"}
	var net *nsNet
	var nodes []*clusterNode
	if partition {
		net = nsSetup(t, 3)
		nodes = nsStartNodes(t, net, flags...)
		nsLogTails(t, net, nodes, 60)
		cdWaitFormedWithin(t, nodes, 30*time.Second)
		time.Sleep(1500 * time.Millisecond) // the leader's node table complete
	} else {
		nodes = cdStartCluster(t, 3, flags...)
		cdLogTails(t, nodes, 60)
		cdWaitFormed(t, nodes)
	}
	if trainAt < 0 {
		cdSeedTrained(t, nodes, name, d, nlist, nbase, 71)
		waitCluster(t, nodes[0], 15*time.Second, "list shards of "+name+" covering every list", func(cu proto.Cluster) bool {
			return cdSumLists(cu, name) == nlist && cu.Leader != ""
		})
		t.Logf("trained and ready %v after start", time.Since(begin).Round(time.Millisecond))
	} else {
		cdSeedUntrained(t, nodes, name, d, nlist, nbase, 71)
		t.Logf("%d items in the buffer %v after start; training before kill %d", nbase, time.Since(begin).Round(time.Millisecond), trainAt)
	}
	// wantLists is the lists a whole collection covers: 0 (any) until it
	// is trained.
	wantLists := nlist
	if trainAt >= 0 {
		wantLists = 0
	}
	placed := &chaosPlaced{coll: name}
	placed.see(chaosWaitWhole(t, nodes, name, wantLists, 60*time.Second))

	h := newChaosHistory(begin)
	live := &chaosLive{nodes: slices.Clone(nodes)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			chaosWriter(h, live, stop, path, d, w, perW, uint64(w)+900+seed*1000)
		}()
	}
	if trainAt >= 0 {
		// When the training's steps happen, as one live node sees them.
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(960, 3))
			last := proto.Untrained
			for {
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
				var col proto.Collection
				c := live.pick(r)
				if st, _ := cdCall(c.server, 2*time.Second, "GET", path, nil, &col); st == 200 && col.State != last {
					t.Logf("%s through %s at %v (epoch %d)", col.State, c.id, h.since(), col.Epoch)
					last = col.State
				}
			}
		}()
	}
	var searches, searchFail, searchDup int
	var searchWhy []string
	var smu sync.Mutex
	for s := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(s)+950+seed*1000, 3))
			for {
				select {
				case <-stop:
					return
				case <-time.After(10 * time.Millisecond):
				}
				body, _ := json.Marshal(map[string]any{"vector": vec(r, d), "k": 10, "nprobe": nlist})
				var res proto.SearchResult
				c := live.pick(r)
				st, err := cdCall(c.server, 10*time.Second, "POST", path+"/search", body, &res)
				smu.Lock()
				searches++
				if st != 200 {
					searchFail++
					if len(searchWhy) < 6 {
						searchWhy = append(searchWhy, fmt.Sprintf("at %v through %s: %d %.200v", h.since(), c.id, st, err))
					}
				} else if dup := chaosDup(res.Hits); dup != "" {
					searchDup++
					h.mu.Lock()
					if len(h.dups) < 8 {
						h.dups = append(h.dups, fmt.Sprintf("at %v a search through %s named %s twice: %+v", h.since(), c.id, dup, res.Hits))
					}
					h.mu.Unlock()
				}
				smu.Unlock()
			}
		}()
	}

	// The kills: a random node each time, the leader on the second.
	r := rand.New(rand.NewPCG(77+seed, 78))
	for cycle := range cycles {
		time.Sleep(1500 * time.Millisecond) // writes run on the whole cluster first
		cu, err := nodes[r.IntN(len(nodes))].cluster()
		if err != nil {
			t.Fatalf("cycle %d: /v1/cluster: %v", cycle, err)
		}
		if cycle == trainAt {
			c := live.pick(r)
			if st, err := cdRetry(c.server, 30*time.Second, "POST", path+"/train", nil, nil); st != 202 {
				t.Fatalf("train through %s: %d %v", c.id, st, err)
			}
			t.Logf("cycle %d: train called through %s at %v", cycle, c.id, h.since())
			time.Sleep(time.Duration(r.IntN(400)) * time.Millisecond) // the kill lands in k-means or in the move
		}
		victim := nodes[r.IntN(len(nodes))]
		if cycle == 1 {
			for _, c := range nodes {
				if c.id == cu.Leader {
					victim = c
				}
			}
		}
		role := "follower"
		if victim.id == cu.Leader {
			role = "leader"
		}
		if partition {
			vi := slices.Index(nodes, victim) + 1
			net.partition(vi)
			cut := time.Now()
			t.Logf("cycle %d: %s (%s) cut off at %v; %d operations acknowledged so far", cycle, victim.id, role, cut.Sub(begin).Round(time.Millisecond), h.acks())
			time.Sleep(4 * time.Second) // past the lease: the cut-off side stops serving
			net.heal(vi)
			t.Logf("cycle %d: %s healed at %v", cycle, victim.id, h.since())
			if cycle%3 == 2 {
				t.Logf("cycle %d: the next cut does not wait for %s to catch up", cycle, victim.id)
				continue
			}
			placed.see(chaosWaitWhole(t, nodes, name, wantLists, 60*time.Second))
			t.Logf("cycle %d: every shard whole again %v after the cut", cycle, time.Since(cut).Round(time.Millisecond))
			continue
		}
		how := "kill -9"
		if term && cycle%2 == 1 {
			// As a load balancer would, the load leaves the node first.
			how = "SIGTERM"
			live.remove(victim)
			victim.stop()
		} else {
			victim.kill9()
		}
		killed := time.Now()
		live.remove(victim)
		t.Logf("cycle %d: %s %s (%s) at %v; %d operations acknowledged so far", cycle, how, victim.id, role, killed.Sub(begin).Round(time.Millisecond), h.acks())
		time.Sleep(3 * time.Second)
		victim.restart()
		t.Logf("cycle %d: %s restarted at %v", cycle, victim.id, h.since())
		if trainAt < 0 {
			cdWaitReady(t, victim, name, 30*time.Second)
		} else {
			chaosWaitServing(t, victim, name, 30*time.Second) // trained or not yet
		}
		live.add(victim)
		if cycle%3 == 2 {
			// The next kill comes while this node may still be catching
			// up: a shard can be down to one in-sync replica, or none.
			t.Logf("cycle %d: %s back %v after the kill; the next kill does not wait for it to catch up", cycle, victim.id, time.Since(killed).Round(time.Millisecond))
			continue
		}
		placed.see(chaosWaitWhole(t, nodes, name, wantLists, 60*time.Second))
		t.Logf("cycle %d: %s back and every shard whole again %v after the kill; %d shard moves so far", cycle, victim.id, time.Since(killed).Round(time.Millisecond), placed.moved)
	}
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	if trainAt >= 0 {
		for _, c := range nodes {
			cdWaitReady(t, c, name, 90*time.Second)
		}
		t.Logf("trained and ready on every node at %v", h.since())
	}
	placed.see(chaosWaitWhole(t, nodes, name, nlist, 60*time.Second))
	t.Logf("chaos over at %v: %s; searches %d, %d failed, %d naming an id twice; %d times a shard was found whole on another pair of nodes",
		time.Since(begin).Round(time.Millisecond), h.summary(), searches, searchFail, searchDup, placed.moved)
	if o.restoreDelay < 0 && placed.moved == 0 {
		t.Errorf("no shard was ever restored on another node: the test did not exercise what it is for")
	}
	if len(searchWhy) > 0 {
		t.Logf("failed searches, the first %d: %s", len(searchWhy), strings.Join(searchWhy, "; "))
	}
	if h.gaveUp > 0 {
		t.Errorf("%d operations still refused after 30 s of retries; first notes: %s", h.gaveUp, strings.Join(h.notes, "; "))
	}

	// The checks, through every node.
	checkStart := time.Now()
	present := h.check(t, nodes, path, nlist)
	chaosCheckBase(t, nodes, path, nbase)
	chaosCheckCount(t, nodes, path, nbase+present, fmt.Sprintf("%d base items and the %d chaos ids present", nbase, present))
	t.Logf("checked %d ids (%d present) and %d older vectors through %d nodes in %v; whole test %v",
		len(h.ids), present, h.olderChecked, len(nodes), time.Since(checkStart).Round(time.Millisecond), time.Since(begin).Round(time.Millisecond))
	if searchDup > 0 {
		t.Errorf("%d of %d searches during the chaos named an id twice:\n  %s", searchDup, searches, strings.Join(h.dups, "\n  "))
	}
	if o.sweepCheck && !t.Failed() {
		sweepRecheck(t, nodes, path, nlist, nbase, h)
	}
}

// chaosCheckCount checks that the collection's count through every node
// is want (what says what it counts).
func chaosCheckCount(t *testing.T, nodes []*clusterNode, path string, want int, what string) {
	t.Helper()
	for _, c := range nodes {
		var col proto.Collection
		if st, err := cdRetry(c.server, 30*time.Second, "GET", path, nil, &col); st != 200 {
			t.Errorf("GET %s through %s: %d %v", path, c.id, st, err)
		} else if col.Count != int64(want) {
			t.Errorf("through %s the count is %d, want %d (%s)", c.id, col.Count, want, what)
		}
	}
}

// sweepDone sums lookalike_dir_sweep_entries_total over the nodes, by
// outcome.
func sweepDone(t *testing.T, nodes []*clusterNode) map[string]float64 {
	t.Helper()
	done := map[string]float64{}
	re := regexp.MustCompile(`(?m)^lookalike_dir_sweep_entries_total\{outcome="(\w+)"\} (\S+)$`)
	for _, c := range nodes {
		m, err := cdMetrics(c.server)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range re.FindAllStringSubmatch(m, -1) {
			v, _ := strconv.ParseFloat(s[2], 64)
			done[s[1]] += v
		}
	}
	return done
}

// sweepRecheck waits until the entries written up to now have settled
// (the settle time, 50 s, then two sweeps at 2 s) and checks every id
// and the counts again through every node: whatever the directory sweep
// did, each id must still read as one of its allowed states, once. It
// logs what the sweeps did (lookalike_dir_sweep_entries_total) and
// returns the entries they settled, all outcomes but skipped.
//
// With race-built servers (LOOKALIKE_E2E_RACE) it checks nothing and
// returns -1: the wait and the checks cost CI's race-built pass about
// three minutes, and TestClusterDirSweep runs the sweep race-built.
func sweepRecheck(t *testing.T, nodes []*clusterNode, path string, nlist, nbase int, h *chaosHistory) int {
	t.Helper()
	if os.Getenv("LOOKALIKE_E2E_RACE") != "" {
		t.Log("race-built servers: no recheck after the sweeps")
		return -1
	}
	time.Sleep(55 * time.Second)
	present := h.check(t, nodes, path, nlist)
	chaosCheckCount(t, nodes, path, nbase+present, "after the sweeps")
	done := sweepDone(t, nodes)
	t.Logf("after the sweeps: %d ids present, checked again; entries settled: %.0f evicted, %.0f pruned, %.0f skipped",
		present, done["evicted"], done["pruned"], done["skipped"])
	return int(done["evicted"] + done["pruned"])
}

// chaosLive is the nodes that are up, for the load to pick from.
type chaosLive struct {
	mu    sync.Mutex
	nodes []*clusterNode
}

func (l *chaosLive) pick(r *rand.Rand) *clusterNode {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.nodes[r.IntN(len(l.nodes))]
}

func (l *chaosLive) remove(c *clusterNode) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = slices.DeleteFunc(l.nodes, func(x *clusterNode) bool { return x == c })
}

func (l *chaosLive) add(c *clusterNode) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.nodes = append(l.nodes, c)
}

// chaosState is what an operation leaves an id as: absent (a delete, or
// nothing yet), or present with a vector and metadata {"i": seq}.
type chaosState struct {
	seq    int // 0: absent
	vector []float32
}

// chaosID is one id's history: its operations run one after another.
type chaosID struct {
	acked chaosState   // the last acknowledged operation's state
	maybe []chaosState // operations with an attempt of unknown outcome
	seen  []chaosState // every state ever written (for the older-vector check)
	log   []string     // what happened to it, for a failure's message
}

type chaosHistory struct {
	mu       sync.Mutex
	ids      map[string]*chaosID
	nAcks    int
	attempts int
	failed   int
	gaveUp   int
	notes    []string
	dups     []string
	begin    time.Time
	// set by check
	olderChecked int
}

func newChaosHistory(begin time.Time) *chaosHistory {
	return &chaosHistory{ids: map[string]*chaosID{}, begin: begin}
}

// since is the time since the test began, for the logs.
func (h *chaosHistory) since() time.Duration { return time.Since(h.begin).Round(time.Millisecond) }

func (h *chaosHistory) acks() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.nAcks
}

func (h *chaosHistory) summary() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	indeterminate := 0
	for _, c := range h.ids {
		if len(c.maybe) > 0 {
			indeterminate++
		}
	}
	return fmt.Sprintf("%d operations acknowledged, %d attempts, %d failed (%d ids with an operation of unknown outcome), %d given up",
		h.nAcks, h.attempts, h.failed, indeterminate, h.gaveUp)
}

// chaosWriter upserts (batches of 1–8 ids) and deletes (one id) the ids
// c<w>-0 … c<w>-<perW-1> until stop, each operation retried through
// another live node until acknowledged or 30 s have passed.
func chaosWriter(h *chaosHistory, live *chaosLive, stop chan struct{}, path string, d, w, perW int, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 5))
	seq := w * 10_000_000
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(10+r.IntN(20)) * time.Millisecond):
		}
		var ids []string
		var states []chaosState
		var method, url string
		var body []byte
		if r.IntN(5) == 0 {
			ids = []string{fmt.Sprintf("c%d-%d", w, r.IntN(perW))}
			states = []chaosState{{}}
			method, url = "DELETE", path+"/items/"+ids[0]
		} else {
			for _, i := range r.Perm(perW)[:1+r.IntN(8)] {
				seq++
				ids = append(ids, fmt.Sprintf("c%d-%d", w, i))
				states = append(states, chaosState{seq: seq, vector: vec(r, d)})
			}
			var ins proto.Insert
			for j, id := range ids {
				ins.Items = append(ins.Items, proto.InsertItem{ID: id, Vector: states[j].vector, Meta: []byte(fmt.Sprintf(`{"i":%d}`, states[j].seq))})
			}
			body, _ = json.Marshal(ins)
			method, url = "POST", path+"/vectors"
		}
		h.mu.Lock()
		for j, id := range ids {
			c := h.ids[id]
			if c == nil {
				c = &chaosID{}
				h.ids[id] = c
			}
			if states[j].seq != 0 {
				c.seen = append(c.seen, states[j])
			}
		}
		h.mu.Unlock()
		first := time.Now()
		unknown := false
		for {
			sent := h.since()
			via := live.pick(r)
			st, err := cdCall(via.server, 15*time.Second, method, url, body, nil)
			ok := st == 200 || st == 204 || (method == "DELETE" && st == 404)
			h.mu.Lock()
			h.attempts++
			for j, id := range ids {
				c := h.ids[id]
				if len(c.log) < 200 {
					c.log = append(c.log, fmt.Sprintf("%v–%v %s write %d through %s: %d", sent, h.since(), method, states[j].seq, via.id, st))
				}
			}
			if ok {
				h.nAcks++
				for j, id := range ids {
					h.ids[id].acked = states[j]
				}
				h.mu.Unlock()
				break
			}
			h.failed++
			if !unknown {
				unknown = true // this operation may yet take effect, at any time
				for j, id := range ids {
					h.ids[id].maybe = append(h.ids[id].maybe, states[j])
				}
			}
			if len(h.notes) < 8 {
				h.notes = append(h.notes, fmt.Sprintf("%s %s: %d %v", method, url, st, err))
			}
			if st >= 400 && st < 500 && st != 404 && st != 408 && st != 429 {
				h.gaveUp++ // the request itself is wrong: retrying will not help
				h.mu.Unlock()
				return
			}
			if time.Since(first) > 30*time.Second {
				h.gaveUp++
				h.mu.Unlock()
				break
			}
			h.mu.Unlock()
			select {
			case <-stop:
				return // the operation's outcome stays unknown
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// chaosDup returns an id named twice in hits, or "".
func chaosDup(hits []proto.Hit) string {
	seen := map[string]bool{}
	for _, h := range hits {
		if seen[h.ID] {
			return h.ID
		}
		seen[h.ID] = true
	}
	return ""
}

// chaosGhost is the squared distance under which a hit is the query's own
// vector. Random vectors of this test's dimension are about 10 apart and
// a query's nearest other item about 4 away; SQ8 clamps a residual
// outside the range it was trained on (1,000 base vectors), and a search
// at an item's own vector was seen to score it 0.057.
const chaosGhost = 0.5

// check reads every id through every node and returns how many are
// present (the same on every node, or the test fails). An id with more
// than chaosOlderCap vectors in its history (a long chaos, or a
// race-built one, writes dozens an id) is searched at its last
// chaosOlderCap/2 and at as many others drawn at random, and always at
// the one it reads as: the race-built training chaos spent 7 of its 10.6
// minutes searching at 12,041 older vectors through each node.
func (h *chaosHistory) check(t *testing.T, nodes []*clusterNode, path string, nlist int) int {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	ids := make([]string, 0, len(h.ids))
	for id := range h.ids {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	// The vectors each id is searched at, the same through every node.
	r := rand.New(rand.NewPCG(uint64(len(ids)), 53))
	vectors := make(map[string][]chaosState, len(ids))
	for _, id := range ids {
		seen := h.ids[id].seen
		if len(seen) > chaosOlderCap {
			keep := slices.Clone(seen[len(seen)-chaosOlderCap/2:])
			for _, i := range r.Perm(len(seen) - chaosOlderCap/2)[:chaosOlderCap/2] {
				keep = append(keep, seen[i])
			}
			seen = keep
		}
		vectors[id] = seen
	}
	search := func(c *clusterNode, v []float32) ([]proto.Hit, error) {
		body, _ := json.Marshal(map[string]any{"vector": v, "k": 5, "nprobe": nlist})
		var res proto.SearchResult
		st, err := cdCall(c.server, 30*time.Second, "POST", path+"/search", body, &res)
		if st != 200 {
			return nil, fmt.Errorf("search through %s: %d %v", c.id, st, err)
		}
		if res.Partial {
			return nil, fmt.Errorf("search through %s: partial, missing %v", c.id, res.MissingShards)
		}
		if dup := chaosDup(res.Hits); dup != "" {
			return nil, fmt.Errorf("search through %s names %s twice: %+v", c.id, dup, res.Hits)
		}
		return res.Hits, nil
	}
	var bad []string
	fail := func(format string, args ...any) {
		bad = append(bad, fmt.Sprintf(format, args...))
	}
	present := -1
	for _, c := range nodes {
		n := 0
		for _, id := range ids {
			hist := h.ids[id]
			allowed := append([]chaosState{hist.acked}, hist.maybe...)
			var it proto.Item
			st, err := cdCall(c.server, 30*time.Second, "GET", path+"/items/"+id+"?vector=true", nil, &it)
			var got chaosState
			switch st {
			case 404:
			case 200:
				var m struct{ I int }
				if err := json.Unmarshal(it.Meta, &m); err != nil || m.I == 0 {
					fail("%s through %s: metadata %s", id, c.id, it.Meta)
					continue
				}
				got = chaosState{seq: m.I, vector: it.Vector}
			default:
				fail("GET %s through %s: %d %v", id, c.id, st, err)
				continue
			}
			history := func() string {
				return "; its last operations:\n    " + strings.Join(hist.log[max(0, len(hist.log)-6):], "\n    ")
			}
			i := slices.IndexFunc(allowed, func(s chaosState) bool { return s.seq == got.seq })
			switch {
			case i < 0:
				fail("%s through %s reads as write %d; allowed: the acknowledged %d, or of unknown outcome %v%s", id, c.id, got.seq, hist.acked.seq, seqs(hist.maybe), history())
				continue
			case got.seq != 0 && !slices.Equal(got.vector, allowed[i].vector):
				fail("%s through %s: write %d's metadata with another vector", id, c.id, got.seq)
				continue
			}
			// Search at the vector it has, and at older ones.
			at := vectors[id]
			if got.seq != 0 && !slices.ContainsFunc(at, func(s chaosState) bool { return s.seq == got.seq }) {
				at = append(slices.Clone(at), allowed[i])
			}
			for _, s := range at {
				hits, err := search(c, s.vector)
				if err != nil {
					fail("%s: %v", id, err)
					break
				}
				if c == nodes[0] {
					h.olderChecked++
				}
				hit := slices.IndexFunc(hits, func(x proto.Hit) bool { return x.ID == id && x.Score < chaosGhost })
				switch {
				case s.seq == got.seq && (hit < 0 || hits[0].Score > chaosGhost):
					fail("%s through %s: a search at its vector (write %d) does not find it first: %s%s", id, c.id, s.seq, cdHits(hits), history())
				case s.seq != got.seq && hit >= 0:
					fail("%s through %s: a search at its older vector (write %d; it reads as %d) finds it at %.4f: a copy left behind%s", id, c.id, s.seq, got.seq, hits[hit].Score, history())
				}
			}
			if got.seq != 0 {
				n++
			}
		}
		if present >= 0 && n != present {
			fail("%d ids present through %s, %d through %s", n, c.id, present, nodes[0].id)
		}
		present = n
	}
	if len(bad) > 0 {
		t.Errorf("%d wrong reads; first: %s", len(bad), strings.Join(bad[:min(8, len(bad))], "\n  "))
	}
	return present
}

// chaosOlderCap bounds the vectors of its history an id is searched at
// (check).
const chaosOlderCap = 24

func seqs(states []chaosState) []int {
	out := make([]int, len(states))
	for i, s := range states {
		out[i] = s.seq
	}
	return out
}

// chaosWaitWhole waits until every node sees a leader, every node alive
// and every shard of coll (lists, buffer and id directory) with two
// in-sync replicas on live nodes, covering nlist lists (any when 0).
func chaosWaitWhole(t *testing.T, nodes []*clusterNode, coll string, nlist int, limit time.Duration) proto.Cluster {
	t.Helper()
	whole := func(cu proto.Cluster) bool {
		if nlist > 0 && cdSumLists(cu, coll) != nlist || cu.Leader == "" {
			return false
		}
		for _, c := range nodes {
			if cdNodeState(cu, c.id) != "alive" {
				return false
			}
		}
		for _, s := range cdDataShards(cu, coll) {
			if len(s.InSync) < 2 || len(s.Away) > 0 {
				return false
			}
		}
		return true
	}
	var cu proto.Cluster
	for _, c := range nodes {
		var ok bool
		if cu, ok = cdPoll(c, limit, whole); !ok {
			t.Fatalf("not whole within %v in %s's view:%s\nnodes: %+v", limit, c.id, cdShardsString(cu.Shards), cu.Nodes)
		}
	}
	return cu
}

// chaosPlaced tracks where the shards of a collection are: moved counts
// the shards found on another pair of nodes than when last seen whole
// (a copy restored the replication factor elsewhere).
type chaosPlaced struct {
	coll  string
	at    map[string]string // shard → its replicas, sorted
	moved int
}

func (p *chaosPlaced) see(cu proto.Cluster) {
	if p.at == nil {
		p.at = map[string]string{}
	}
	for _, s := range cdDataShards(cu, p.coll) {
		rs := fmt.Sprint(slices.Sorted(slices.Values(s.Replicas)))
		if was, ok := p.at[s.Shard]; ok && was != rs {
			p.moved++
		}
		p.at[s.Shard] = rs
	}
}

// chaosWaitServing waits until c describes coll in a state that answers
// searches: any, trained or not.
func chaosWaitServing(t *testing.T, c *clusterNode, coll string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var col proto.Collection
		st, err := cdCall(c.server, 10*time.Second, "GET", "/v1/collections/"+coll, nil, &col)
		if st == 200 && (col.State == proto.Ready || col.State == proto.Untrained || col.State == proto.Training) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("collection %s not served by %s within %v: %d %v %+v", coll, c.id, limit, st, err, col)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// chaosCheckBase reads one in 40 of the base items (never written again)
// through every node, and fails naming those missing.
func chaosCheckBase(t *testing.T, nodes []*clusterNode, path string, nbase int) {
	t.Helper()
	for _, c := range nodes {
		var missing []string
		for i := 0; i < nbase; i += 40 {
			id := fmt.Sprintf("base-%d", i)
			if st, err := cdCall(c.server, 30*time.Second, "GET", path+"/items/"+id, nil, nil); st != 200 {
				why := fmt.Sprint(st)
				if st == 0 {
					why = fmt.Sprint(err)
				}
				missing = append(missing, id+" ("+why+")")
			}
		}
		if len(missing) > 0 {
			t.Errorf("through %s, %d of %d base items read are missing, e.g. %s", c.id, len(missing), (nbase+39)/40, strings.Join(missing[:min(8, len(missing))], ", "))
		}
	}
}

// TestClusterConcurrentUpserts: eight clients upsert (and now and then
// delete) the same 40 user ids at once through all three nodes for 20 s,
// with no fault at all; then every id must read alike through every
// node, as one of the writes made of it or absent, be found by a search
// at that vector and at none of its older ones, and the counts must
// agree. Before copies were versioned (docs/node.md, "Concurrent upserts
// of one user id") two upserts of one id to lists of different shards,
// each finding the other's list already named in the id's entry, evicted
// each other's new copy, each on the nodes its eviction reached before
// or after the other's write: in 2 of 3 runs an acknowledged id read as
// absent through one node and present through another (4 to 11 wrong
// reads a run). Then, with the directory sweep every 2 s, it waits for
// the entries to settle and checks again (sweepRecheck): the upserts
// leave entries naming lists that hold no copy, which the sweep must
// prune (some entry settled) without changing a read.
func TestClusterConcurrentUpserts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	const (
		d, nlist, nbase = 16, 8, 1000
		name            = "concurrent"
		path            = "/v1/collections/" + name
		ids, writers    = 40, 8
	)
	nodes := cdStartCluster(t, 3, "--auto-train-at", "-1", "--dir-sweep", "2s")
	cdLogTails(t, nodes, 60)
	cdWaitFormed(t, nodes)
	cdSeedTrained(t, nodes, name, d, nlist, nbase, 71)
	chaosWaitWhole(t, nodes, name, nlist, 60*time.Second)
	h := newChaosHistory(time.Now())
	stop := time.Now().Add(20 * time.Second)
	seq, failed := 0, 0
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(w)+500, 9))
			for time.Now().Before(stop) {
				id := fmt.Sprintf("s-%d", r.IntN(ids))
				del := r.IntN(5) == 0
				h.mu.Lock()
				c := h.ids[id]
				if c == nil {
					c = &chaosID{}
					h.ids[id] = c
				}
				s := chaosState{}
				if !del {
					seq++
					s = chaosState{seq: seq, vector: vec(r, d)}
					c.seen = append(c.seen, s)
				}
				h.mu.Unlock()
				via := nodes[r.IntN(len(nodes))]
				sent := h.since()
				var st int
				if del {
					st, _ = cdCall(via.server, 15*time.Second, "DELETE", path+"/items/"+id, nil, nil)
				} else {
					body, _ := json.Marshal(proto.Insert{Items: []proto.InsertItem{{ID: id, Vector: s.vector, Meta: []byte(fmt.Sprintf(`{"i":%d}`, s.seq))}}})
					st, _ = cdCall(via.server, 15*time.Second, "POST", path+"/vectors", body, nil)
				}
				h.mu.Lock()
				if st != 200 && st != 204 && !(del && st == 404) {
					failed++
				}
				what := fmt.Sprintf("write %d", s.seq)
				if del {
					what = "delete"
				}
				// The last 200: a divergence shows at the end.
				c.log = append(c.log, fmt.Sprintf("%v–%v %s through %s: %d", sent, h.since(), what, via.id, st))
				if len(c.log) > 400 {
					c.log = slices.Clone(c.log[len(c.log)-200:])
				}
				h.mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("%d upserts of %d ids, %d upserts or deletes failed", seq, ids, failed)
	if failed > 0 {
		t.Errorf("%d upserts or deletes failed, with no fault", failed)
	}
	// Concurrent writes may end in any order: an id may read as any of
	// them, or absent as its acknowledged state says (but alike through
	// every node, and with one copy).
	for _, c := range h.ids {
		c.maybe = slices.Clone(c.seen)
	}
	present := h.check(t, nodes, path, nlist)
	readAll := func() map[string]string {
		reads := map[string]string{}
		for _, c := range nodes {
			for id := range h.ids {
				var it proto.Item
				st, _ := cdCall(c.server, 30*time.Second, "GET", path+"/items/"+id, nil, &it)
				got := fmt.Sprintf("%d %s", st, it.Meta)
				if was, ok := reads[id]; ok && was != got {
					l := h.ids[id].log
					t.Errorf("%s reads as %q through %s, %q through %s; its last operations:\n    %s", id, got, c.id, was, nodes[0].id, strings.Join(l[max(0, len(l)-8):], "\n    "))
				}
				reads[id] = got
			}
		}
		return reads
	}
	chaosCheckCount(t, nodes, path, nbase+present, "the ids present")
	before := readAll()
	if t.Failed() {
		return
	}
	// The concurrent upserts leave entries naming lists that hold no
	// copy (each spared the other's list): the directory sweep prunes
	// them, and no read may change.
	if settled := sweepRecheck(t, nodes, path, nlist, nbase, h); settled == 0 {
		t.Errorf("the directory sweep settled no entry after the concurrent upserts")
	}
	for id, got := range readAll() {
		if before[id] != got {
			t.Errorf("%s read as %q before the sweeps, as %q after", id, before[id], got)
		}
	}
}
