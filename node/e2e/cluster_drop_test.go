package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"lookalike/proto"
)

// TestClusterDropAndRecreate: a collection dropped and created again under
// its name starts empty on every node, not only on the node that served
// the drop; and a node that was down meanwhile deletes its data of the
// earlier collection when it comes back, even where the new one has
// another dimension, and its data of a collection dropped meanwhile and
// not created again. (The restarted node here replays the drop from the
// Raft log; node's TestReopenAfterDropAndCreate covers a node that never
// sees it, as after a snapshot.)
func TestClusterDropAndRecreate(t *testing.T) {
	const name, d, n = "dr", 4, 300
	nodes := cdStartCluster(t, 3)
	cdLogTails(t, nodes, 30)
	cdWaitFormed(t, nodes)
	body := fmt.Sprintf(`{"name":%q,"metric":"l2","dim":%d,"replicas":2}`, name, d)
	create(t, nodes[0], body)
	cdWaitCollection(t, nodes, name)
	ids := make([]string, n)
	vecs := make([][]float32, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("old-%d", i)
		vecs[i] = []float32{float32(i), 1, 2, 3}
	}
	if st, err := cdRetry(nodes[0].server, 10*time.Second, "POST", "/v1/collections/"+name+"/vectors", cdInsertBody(ids, vecs, 0), nil); st != 200 {
		t.Fatalf("insert: %d %v", st, err)
	}
	if st, _, err := nodes[0].call("DELETE", "/v1/collections/"+name, "", nil, nil); st != 204 && st != 200 {
		t.Fatalf("drop: %d %v", st, err)
	}
	create(t, nodes[0], body)
	cdWaitCollection(t, nodes, name)
	checkEmpty(t, nodes, name, d)

	// A second collection, which n3 holds a part of (a directory
	// partition at least), is dropped while n3 is down and not created
	// again.
	create(t, nodes[0], `{"name":"gone","metric":"l2","dim":4,"replicas":2}`)
	cdWaitCollection(t, nodes, "gone")
	if st, err := cdRetry(nodes[0].server, 10*time.Second, "POST", "/v1/collections/gone/vectors", cdInsertBody(ids, vecs, 0), nil); st != 200 {
		t.Fatalf("insert into gone: %d %v", st, err)
	}

	// n3 is down while the collection is dropped and created again with
	// another dimension; it comes back with the old data in its store.
	nodes[2].stop()
	live := nodes[:2]
	if st, _, err := nodes[0].call("DELETE", "/v1/collections/gone", "", nil, nil); st != 204 && st != 200 {
		t.Fatalf("drop gone: %d %v", st, err)
	}
	if st, err := cdRetry(nodes[0].server, 10*time.Second, "POST", "/v1/collections/"+name+"/vectors", cdInsertBody(ids, vecs, 0), nil); st != 200 {
		t.Fatalf("insert: %d %v", st, err)
	}
	if st, _, err := nodes[0].call("DELETE", "/v1/collections/"+name, "", nil, nil); st != 204 && st != 200 {
		t.Fatalf("drop: %d %v", st, err)
	}
	const d2 = 8
	create(t, nodes[0], fmt.Sprintf(`{"name":%q,"metric":"l2","dim":%d,"replicas":2}`, name, d2))
	cdWaitCollection(t, live, name)
	nodes[2].start()
	cdWaitCollectionDim(t, nodes, name, d2)
	checkEmpty(t, nodes, name, d2)
	// Written after n3 is back, read through every node.
	newIDs := []string{"new-0", "new-1", "new-2"}
	newVecs := [][]float32{{1, 0, 0, 0, 0, 0, 0, 0}, {0, 1, 0, 0, 0, 0, 0, 0}, {0, 0, 1, 0, 0, 0, 0, 0}}
	if st, err := cdRetry(nodes[2].server, 10*time.Second, "POST", "/v1/collections/"+name+"/vectors", cdInsertBody(newIDs, newVecs, 0), nil); st != 200 {
		t.Fatalf("insert through n3 after its restart: %d %v", st, err)
	}
	for _, c := range nodes {
		for _, id := range newIDs {
			if st, _, err := c.call("GET", "/v1/collections/"+name+"/items/"+id, "", nil, nil); st != 200 {
				t.Errorf("GET %s through %s: %d %v", id, c.id, st, err)
			}
		}
	}
	if strings.Contains(nodes[2].log.String(), "open collection") {
		t.Errorf("n3 failed to open a collection after its restart:\n%s", nodes[2].log.String())
	}
	// n3 deleted its data of gone, which no create claims: as it
	// replays the drop, or, when its table first shows it after the
	// drop, by the sweep of data dropped while it was away (node's
	// TestReopenAfterDrop checks the store itself).
	swept := regexp.MustCompile(`(?m)deleting the data of .*collection=gone( |$)`)
	if !swept.MatchString(nodes[2].log.String()) {
		t.Errorf("n3 did not delete its data of the collection dropped while it was down:\n%s", nodes[2].log.String())
	}
}

// checkEmpty: searches through every node find nothing, and gets of the
// old ids are 404.
func checkEmpty(t *testing.T, nodes []*clusterNode, name string, d int) {
	t.Helper()
	v := make([]float32, d)
	v[0] = 5
	q, _ := json.Marshal(map[string]any{"vector": v, "k": 10})
	for _, c := range nodes {
		var res proto.SearchResult
		if st, err := cdRetry(c.server, 10*time.Second, "POST", "/v1/collections/"+name+"/search", q, &res); st != 200 {
			t.Fatalf("search through %s: %d %v", c.id, st, err)
		}
		if len(res.Hits) > 0 {
			t.Errorf("search through %s after the drop and create: %d hits, first %q", c.id, len(res.Hits), res.Hits[0].ID)
		}
		for _, id := range []string{"old-0", "old-5", "old-299"} {
			if st, _, _ := c.call("GET", "/v1/collections/"+name+"/items/"+id, "", nil, nil); st != 404 {
				t.Errorf("GET %s through %s after the drop and create: %d, want 404", id, c.id, st)
			}
		}
	}
}
