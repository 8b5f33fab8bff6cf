package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
)

func TestRunRouting(t *testing.T) {
	o := RoutingOptions{N: 20_000, Dim: 32, Clusters: 200, Queries: 300, Nodes: []int{6, 12}, NProbe: []int{4, 16}, ShardsPerNode: 2, Replicas: 2, JSON: true}
	var out bytes.Buffer
	rows, err := RunRouting(context.Background(), o, &out, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2*2*len(Groupings) {
		t.Fatalf("%d rows", len(rows))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != len(rows) {
		t.Fatalf("%d JSON lines for %d rows", len(lines), len(rows))
	}
	var first RoutingRow
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first != rows[0] {
		t.Fatalf("JSON %q: %+v, %v", lines[0], first, err)
	}
	for i := 0; i < len(rows); i += 3 {
		cl, rnd, bc := rows[i], rows[i+1], rows[i+2]
		if cl.Grouping != "clustered" || rnd.Grouping != "random" || bc.Grouping != "broadcast" {
			t.Fatalf("order: %v %v %v", cl.Grouping, rnd.Grouping, bc.Grouping)
		}
		if bc.NodesMean != float64(bc.Nodes) || bc.NodesMax != bc.Nodes {
			t.Fatalf("broadcast missed nodes: %+v", bc)
		}
		if cl.NodesMean > 0.6*rnd.NodesMean {
			t.Errorf("%d nodes, nprobe %d: clustered %.2f nodes per query, random %.2f", cl.Nodes, cl.NProbe, cl.NodesMean, rnd.NodesMean)
		}
		if cl.NodesMax > cl.NProbe || cl.Shards != 2*cl.Nodes || cl.Replicas != 2 || cl.Policy != "affinity" {
			t.Fatalf("row %+v", cl)
		}
	}
	// Deterministic: the same options give the same rows.
	again, err := RunRouting(context.Background(), o, io.Discard, io.Discard)
	if err != nil || !reflect.DeepEqual(again, rows) {
		t.Fatalf("second run differs: %v", err)
	}

	bad := RoutingOptions{Nodes: []int{0, 2}, Replicas: 3, NProbe: []int{0}, TrainPoints: 5}
	if _, err := RunRouting(context.Background(), bad, io.Discard, io.Discard); err == nil ||
		!strings.Contains(err.Error(), "nodes 0") || !strings.Contains(err.Error(), "nprobe 0") || !strings.Contains(err.Error(), "train points 5") {
		t.Fatalf("bad options: %v", err)
	}
}
