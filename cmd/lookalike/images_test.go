package main

import (
	"bytes"
	"image"
	"image/png"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lookalike/embed"
	"lookalike/embed/embedtest"
	"lookalike/node"
	"lookalike/node/nodetest"
)

func writePNG(t *testing.T, path string, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 3))
	img := image.NewRGBA(image.Rect(0, 0, 12, 9))
	for i := range img.Pix {
		img.Pix[i] = byte(r.Uint32())
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// imageTree: a/1.png a/2.png b/c/3.png, bad.png (text), notes.txt,
// link.png → a/1.png, loop → . (a directory loop), dangling → nowhere.
func imageTree(t *testing.T) string {
	dir := t.TempDir()
	writePNG(t, filepath.Join(dir, "a", "1.png"), 1)
	writePNG(t, filepath.Join(dir, "a", "2.png"), 2)
	writePNG(t, filepath.Join(dir, "b", "c", "3.png"), 3)
	os.WriteFile(filepath.Join(dir, "bad.png"), []byte("not a png"), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("hello"), 0o644)
	for link, target := range map[string]string{"link.png": "a/1.png", "loop": ".", "b/up": "..", "dangling": "nowhere"} {
		if err := os.Symlink(target, filepath.Join(dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestWalkImages(t *testing.T) {
	dir := imageTree(t)
	res, err := walkImages(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range res.files {
		ids = append(ids, f.id)
	}
	if got := strings.Join(ids, " "); got != "a/1.png a/2.png b/c/3.png bad.png link.png" {
		t.Fatalf("ids %q", got)
	}
	if res.skipped != 1 || len(res.problems) != 3 { // notes.txt; loop, b/up, dangling
		t.Fatalf("skipped %d, problems %q", res.skipped, res.problems)
	}
}

func TestImportAndSearch(t *testing.T) {
	e := embedtest.New(defaultImageModel, 8)
	n, err := node.Open(node.Options{NodeID: "n1", AutoTrainAt: -1, Embedders: map[string]embed.Embedder{defaultImageModel: e}}, nodetest.NewMeta(), nodetest.NewStore())
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	srv := httptest.NewServer(n.Handler(node.APIOptions{}))
	defer srv.Close()
	dir := imageTree(t)

	code, out, stderr := runCLI(t, "import", "--server", srv.URL, "--collection", "imgs", "--quiet", dir)
	if code == 0 || !strings.Contains(stderr, "does not exist (--create makes it)") {
		t.Fatalf("without --create: exit %d: %s %s", code, out, stderr)
	}
	code, out, stderr = runCLI(t, "import", "--server", srv.URL, "--collection", "imgs", "--create", "--quiet", "--batch", "2", "--concurrency", "2", dir)
	if code != 0 {
		t.Fatalf("import: exit %d: %s %s", code, out, stderr)
	}
	if !strings.Contains(out, "5 images found; 4 imported, 0 already present, 1 bad, 0 unreadable; 1 other files and 3 paths skipped") {
		t.Fatalf("summary: %s", out)
	}
	if !strings.Contains(stderr, "bad image "+filepath.Join(dir, "bad.png")) {
		t.Fatalf("bad file not reported: %s", stderr)
	}
	// Resumed: nothing is sent again but the bad file.
	_, before := e.Lanes()
	code, out, _ = runCLI(t, "import", "--server", srv.URL, "--collection", "imgs", "--quiet", dir)
	if code != 0 || !strings.Contains(out, "0 imported, 4 already present, 1 bad") {
		t.Fatalf("second run: exit %d: %s", code, out)
	}
	if _, after := e.Lanes(); after != before {
		t.Fatalf("the second run embedded %d images", after-before)
	}

	code, out, stderr = runCLI(t, "search", "--server", srv.URL, "--collection", "imgs", "--k", "2", filepath.Join(dir, "b", "c", "3.png"))
	if code != 0 {
		t.Fatalf("search: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "1\t1.0000\tb/c/3.png\t"+filepath.Join(dir, "b", "c", "3.png")) {
		t.Fatalf("search output %q", out)
	}

	// A vector collection is refused.
	runCLI(t, "ctl", "--addr", srv.URL, "create", "vecs", "--dim", "8")
	if code, _, stderr := runCLI(t, "import", "--server", srv.URL, "--collection", "vecs", "--quiet", dir); code == 0 || !strings.Contains(stderr, "vector collection") {
		t.Fatalf("import into a vector collection: exit %d: %s", code, stderr)
	}
}
