package main

import (
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"lookalike/embed"
	"lookalike/node"
	"lookalike/node/nodetest"
)

// categoryTree writes per images of noise into each of the categories'
// folders.
func categoryTree(t *testing.T, cats []string, per int) string {
	dir := t.TempDir()
	for ci, c := range cats {
		for i := range per {
			writePNG(t, filepath.Join(dir, c, fmt.Sprintf("%d.png", i)), uint64(100*ci+i))
		}
	}
	return dir
}

func jsonLines(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		rows = append(rows, m)
	}
	return rows
}

func TestBenchEmbedAndQuality(t *testing.T) {
	model := requireDefaultModel(t)
	dir := categoryTree(t, []string{"a", "b"}, 4)
	code, out, stderr := runCLI(t, "bench", "embed", "--model", model, "--images", dir, "--n", "6",
		"--clients", "1,2", "--batches", "1,2", "--rounds", "1", "--json")
	if code != 0 {
		t.Fatalf("bench embed: exit %d: %s", code, stderr)
	}
	rows := jsonLines(t, out)
	if len(rows) != 6 || rows[0]["mode"] != "direct" || rows[2]["clients"] != 2.0 || rows[4]["max_batch"] != 2.0 || rows[5]["part"] != "summary" {
		t.Fatalf("bench embed printed %s", out)
	}

	code, out, stderr = runCLI(t, "bench", "lanes", "--model", model, "--images", dir, "--n", "8", "--shapes", "1x4",
		"--bulk-clients", "1", "--bulk-batch", "2", "--duration", "300ms", "--rounds", "1", "--json")
	if rows := jsonLines(t, out); code != 0 || len(rows) != 1 || rows[0]["max_batch"] != 4.0 || rows[0]["queries"].(float64) < 1 {
		t.Fatalf("bench lanes: exit %d: %s %s", code, out, stderr)
	}
	if code, _, _ := runCLI(t, "bench", "lanes", "--shapes", "2y3"); code != 2 {
		t.Fatalf("bad --shapes: exit %d", code)
	}

	cache := t.TempDir()
	args := []string{"bench", "quality", "--model", model, "--images", dir, "--k", "2", "--cache", cache, "--json"}
	code, out, stderr = runCLI(t, args...)
	if code != 0 {
		t.Fatalf("bench quality: exit %d: %s", code, stderr)
	}
	rows = jsonLines(t, out)
	if len(rows) != 2 || rows[0]["method"] != embed.DefaultModel || rows[1]["method"] != "pixels-32" ||
		rows[0]["images"] != 8.0 || rows[0]["embedded"] != 8.0 || rows[1]["categories"] != 2.0 {
		t.Fatalf("bench quality printed %s", out)
	}
	p := rows[0]["precision"]
	// Again: everything from the cache, the same figure.
	code, out, stderr = runCLI(t, args...)
	rows = jsonLines(t, out)
	if code != 0 || rows[0]["embedded"] != 0.0 || rows[0]["cached"] != 8.0 || rows[1]["cached"] != 8.0 || rows[0]["precision"] != p {
		t.Fatalf("second run: exit %d: %s %s", code, out, stderr)
	}
}

// bench import against a node in process (--server): the import and
// search paths; starting a server child process is the command's own
// default, measured in docs/benchmarks.md.
func TestBenchImport(t *testing.T) {
	model := requireDefaultModel(t)
	e, closeModel, err := openModel(model, 32<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer closeModel()
	n, err := node.Open(node.Options{NodeID: "n1", AutoTrainAt: -1, Embedders: map[string]embed.Embedder{e.ModelName(): e}}, nodetest.NewMeta(), nodetest.NewStore())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srv := httptest.NewServer(n.Handler(node.APIOptions{}))
	defer srv.Close()
	dir := categoryTree(t, []string{"a", "b"}, 4)
	code, out, stderr := runCLI(t, "bench", "import", "--server", srv.URL, "--model", model, "--images", dir,
		"--n", "3", "--queries", "2", "--batch", "2", "--concurrency", "2", "--rounds", "1", "--json")
	if code != 0 {
		t.Fatalf("bench import: exit %d: %s", code, stderr)
	}
	rows := jsonLines(t, out)
	if len(rows) != 5 || rows[0]["mode"] != "in-process" || rows[1]["mode"] != "server" || rows[1]["images"] != 3.0 ||
		rows[2]["mode"] != "median" || rows[3]["mode"] != "idle" || rows[3]["queries"] != 2.0 || rows[4]["mode"] != "during import" {
		t.Fatalf("bench import printed %s", out)
	}
	if code, _, stderr := runCLI(t, "bench", "import", "--n", "0"); code != 2 {
		t.Fatalf("--n 0: exit %d: %s", code, stderr)
	}
}

func TestLabelledImagesDepth(t *testing.T) {
	dir := t.TempDir()
	for i, p := range []string{"top.png", "a/1.png", "a/x/2.png", "a/x/y/3.png"} {
		writePNG(t, filepath.Join(dir, p), uint64(i))
	}
	for depth, want := range map[int]string{1: "a a a .", 2: "a a/x a/x .", 3: "a a/x a/x/y ."} { // files sorted by path
		files, err := labelledImagesDepth(dir, depth)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, f := range files {
			got = append(got, f.Label)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("depth %d: labels %q, want %q", depth, got, want)
		}
	}
}
