package e2e

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"lookalike/proto"
)

// The node that trains a collection (the buffer's primary) dies while it
// moves the buffered vectors to their list shards: the buffer's backup
// becomes its primary, finishes the move and retires the buffer, and no
// item is lost.
func TestClusterTrainerDiesDuringMove(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	const n = 40000
	nodes, victim, other := trainerCluster(t, "mv", "m", n, 8, 16, 5)
	// Kill the trainer once the centroids are committed (epoch 2) and
	// the move has begun, before the buffer is retired.
	deadline := time.Now().Add(30 * time.Second)
	for {
		var col proto.Collection
		st, _ := cdCall(other.server, 5*time.Second, "GET", "/v1/collections/mv", nil, &col)
		if st == 200 && col.Epoch >= 2 {
			if col.State == proto.Ready {
				t.Skipf("the move ended before it could be interrupted (%d vectors); nothing to test on this machine", n)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("training did not commit: %+v", col)
		}
		time.Sleep(5 * time.Millisecond)
	}
	victim.kill9()
	t.Logf("killed the trainer %s during the move", victim.id)
	col := cdWaitReady(t, other, "mv", 60*time.Second)
	if col.Count != n {
		t.Fatalf("after the move: count %d, want %d", col.Count, n)
	}
	var cu proto.Cluster
	if _, _, err := other.call("GET", "/v1/cluster", "", nil, &cu); err != nil {
		t.Fatal(err)
	}
	for _, s := range cu.Shards {
		if strings.Contains(s.Shard, "/buffer/") {
			t.Fatalf("buffer not retired: %+v", cu.Shards)
		}
		if slices.Contains(s.InSync, victim.id) {
			t.Fatalf("the dead trainer still in sync: %+v", s)
		}
	}
	if missing := missingItems(other, "mv", "m", n, 37); missing > 0 {
		t.Fatalf("%d sampled items missing after the move", missing)
	}
	if !strings.Contains(logOf(nodes, victim), "resuming the move of the buffer") {
		t.Fatal("no surviving node says it resumed the move")
	}
}

// trainerCluster starts three nodes, creates collection name (replicas
// 2) with n vectors of dim (ids prefix0…, seeded by seed, seed+1) and
// asks a node other than the buffer's primary (the trainer: victim) to
// train it.
func trainerCluster(t *testing.T, name, prefix string, n, dim, nlist int, seed uint64) (nodes []*clusterNode, victim, other *clusterNode) {
	t.Helper()
	nodes = cdStartCluster(t, 3, "--auto-train-at", "-1")
	cdLogTails(t, nodes, 40)
	cdWaitFormed(t, nodes)
	time.Sleep(1500 * time.Millisecond) // the node table fills in
	body, _ := json.Marshal(map[string]any{"name": name, "metric": "l2", "dim": dim, "nlist": nlist, "replicas": 2})
	if st, err := cdRetry(nodes[0].server, 10*time.Second, "POST", "/v1/collections", body, nil); st != 201 {
		t.Fatalf("create: %d %v", st, err)
	}
	r := rand.New(rand.NewPCG(seed, seed+1))
	for b := 0; b < n; b += 2000 {
		var items []map[string]any
		for i := b; i < b+2000; i++ {
			items = append(items, map[string]any{"id": fmt.Sprintf("%s%d", prefix, i), "vector": vec(r, dim)})
		}
		body, _ := json.Marshal(map[string]any{"items": items})
		if st, err := cdRetry(nodes[b/2000%3].server, 20*time.Second, "POST", "/v1/collections/"+name+"/vectors", body, nil); st != 200 {
			t.Fatalf("insert: %d %v", st, err)
		}
	}
	var cu proto.Cluster
	if _, _, err := nodes[0].call("GET", "/v1/cluster", "", nil, &cu); err != nil {
		t.Fatal(err)
	}
	var trainer string
	for _, s := range cu.Shards {
		if strings.Contains(s.Shard, name+"/buffer/") {
			trainer = s.Primary
		}
	}
	for _, c := range nodes {
		switch {
		case c.id == trainer:
			victim = c
		case other == nil:
			other = c
		}
	}
	if victim == nil {
		t.Fatalf("no buffer primary in %+v", cu.Shards)
	}
	if st, err := cdCall(other.server, 10*time.Second, "POST", "/v1/collections/"+name+"/train", []byte(`{}`), nil); st != 202 {
		t.Fatalf("train: %d %v", st, err)
	}
	return nodes, victim, other
}

// missingItems counts the items prefix0, prefix<step>, … below n that c
// does not find in collection name.
func missingItems(c *clusterNode, name, prefix string, n, step int) int {
	missing := 0
	for i := 0; i < n; i += step {
		if st, _ := cdCall(c.server, 10*time.Second, "GET", fmt.Sprintf("/v1/collections/%s/items/%s%d", name, prefix, i), nil, nil); st != 200 {
			missing++
		}
	}
	return missing
}

// logOf joins the logs of the nodes other than skip.
func logOf(nodes []*clusterNode, skip *clusterNode) string {
	var b strings.Builder
	for _, c := range nodes {
		if c != skip && c.log != nil {
			b.WriteString(c.log.String())
		}
	}
	return b.String()
}

// The trainer (the buffer's primary) dies during k-means, before its
// centroids are committed: the buffer's backup, now its primary, trains
// the collection again, and no item is lost. (Until 2026-11-27 nobody
// did: the table said "training" for good, and a train request was
// refused as "training".)
func TestClusterTrainerDiesDuringKMeans(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	// 40,000 32-d vectors in 1,024 lists: k-means of about a second or
	// more, well past the moment the train request is answered.
	const n = 40000
	nodes, victim, other := trainerCluster(t, "km", "k", n, 32, 1024, 7)
	victim.kill9()
	var col proto.Collection
	if st, err := cdCall(other.server, 10*time.Second, "GET", "/v1/collections/km", nil, &col); st != 200 || col.Epoch != 1 {
		t.Skipf("the trainer committed before it was killed (%d %v %+v); nothing to test on this machine", st, err, col)
	}
	t.Logf("killed the trainer %s during k-means", victim.id)
	col = cdWaitReady(t, other, "km", 90*time.Second)
	if col.Count != n {
		t.Fatalf("after training: count %d, want %d", col.Count, n)
	}
	if missing := missingItems(other, "km", "k", n, 97); missing > 0 {
		t.Fatalf("%d sampled items missing after training", missing)
	}
	if !strings.Contains(logOf(nodes, victim), "no node trains: training here") {
		t.Fatal("no surviving node says it took the training over")
	}
}
