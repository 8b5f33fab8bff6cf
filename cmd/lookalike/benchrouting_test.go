package main

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestBenchRouting(t *testing.T) {
	code, stdout, stderr := runCLI(t, "bench", "routing", "--n", "8000", "--dim", "16", "--clusters", "100",
		"--queries", "200", "--nodes", "4,8", "--nprobe", "8", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 6 {
		t.Fatalf("want 6 JSON lines, got %q", stdout)
	}
	var row struct {
		Nodes     int     `json:"nodes"`
		Grouping  string  `json:"grouping"`
		NodesMean float64 `json:"nodes_mean"`
	}
	if err := json.Unmarshal([]byte(lines[5]), &row); err != nil {
		t.Fatal(err)
	}
	if row.Nodes != 8 || row.Grouping != "broadcast" || row.NodesMean != 8 {
		t.Fatalf("last row %+v", row)
	}
	for _, args := range [][]string{
		{"bench", "routing", "--nodes", "4,x"},
		{"bench", "routing", "--policy", "nearest"},
		{"bench", "routing", "--data", "nosuch"},
		{"bench", "routing", "--nodes", "2", "--replicas", "3"},
	} {
		if code, _, stderr := runCLI(t, args...); code != 2 || !strings.HasPrefix(stderr, "lookalike: ") {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 with a message", args, code, stderr)
		}
	}
}
