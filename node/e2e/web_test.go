package e2e

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"mime/multipart"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lookalike/embed"
	"lookalike/embed/embedtest"
	"lookalike/node/web/webtest"
	"lookalike/proto"
)

// The web page's tests drive headless Chromium through package
// node/web/webtest against a real `lookalike serve`.

// TestWebPageVectors drives the page over a vector collection, with a read
// key: the key field, the error display, the stats, search by id, a click
// on a result, the address that keeps the query, and the key kept across
// a reload.
func TestWebPageVectors(t *testing.T) {
	ctx := webtest.Browser(t)
	s := startServer(t, "--auto-train-at", "-1", "--quiet", "--read-key", "rk")
	s.must("POST", "/v1/collections", map[string]any{"name": "vecs", "metric": "l2", "dim": 8}, 201, nil)
	r := rand.New(rand.NewPCG(3, 4))
	var ins proto.Insert
	for i := 0; i < 120; i++ {
		ins.Items = append(ins.Items, proto.InsertItem{ID: fmt.Sprintf("v%03d", i), Vector: vec(r, 8)})
	}
	s.must("POST", "/v1/collections/vecs/vectors", ins, 200, nil)

	webtest.Do(t, ctx, "open the page without the key",
		chromedp.Navigate(s.url("/")),
		chromedp.WaitVisible(chromedp.ID("error")))
	errText := webtest.Get(t, ctx, chromedp.Text(chromedp.ID("error")))
	if !strings.Contains(errText, "unauthorized") || !strings.Contains(errText, "Read key") {
		t.Fatalf("error shown without the key: %q, want unauthorized and a hint", errText)
	}

	webtest.Do(t, ctx, "enter the key",
		chromedp.SendKeys(chromedp.ID("key"), "rk"),
		chromedp.Blur(chromedp.ID("key")), // change event: the page reloads its lists with the key
		chromedp.WaitNotVisible(chromedp.ID("error")),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-stat=items]')?.textContent === '120'`, chromedp.WithPollingTimeout(10*time.Second)))

	const k = 7
	webtest.Do(t, ctx, "search by id",
		chromedp.SetValue(chromedp.ID("k"), fmt.Sprint(k)),
		chromedp.SendKeys(chromedp.ID("id"), "v042"),
		chromedp.Click(chromedp.CSS("#by-id button")),
		webtest.WaitFirstHit("v042", k))
	ids := webtest.HitIDs(t, ctx)
	status := webtest.Get(t, ctx, chromedp.Text(chromedp.ID("status")))
	if !strings.Contains(status, fmt.Sprintf("%d results in", k)) || !strings.HasSuffix(status, " ms") {
		t.Errorf("status %q, want the hit count and took_ms", status)
	}
	if loc := webtest.Get(t, ctx, chromedp.Location()); !strings.HasSuffix(loc, "#c=vecs&id=v042&k=7") {
		t.Errorf("address %q does not keep the query", loc)
	}

	third := ids[2]
	webtest.Do(t, ctx, "click the third hit",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#results .hit[data-id=%q]`, third))),
		webtest.WaitFirstHit(third, k))
	if got := webtest.HitIDs(t, ctx); slicesEqual(got, ids) {
		t.Fatalf("after clicking %s: the same hits %v", third, got)
	}
	webtest.Do(t, ctx, "back to the first query",
		chromedp.NavigateBack(),
		webtest.WaitFirstHit("v042", k))

	webtest.Do(t, ctx, "reload: the key and the query are kept",
		chromedp.Reload(),
		webtest.WaitFirstHit("v042", k))
	if key := webtest.Get(t, ctx, chromedp.Value(chromedp.ID("key"))); key != "rk" {
		t.Errorf("key after reload %q, want rk (kept in localStorage)", key)
	}

	webtest.Do(t, ctx, "an unknown id shows the API's error",
		chromedp.SetValue(chromedp.ID("id"), "nope"),
		chromedp.Click(chromedp.CSS("#by-id button")),
		chromedp.WaitVisible(chromedp.ID("error")))
	if errText := webtest.Get(t, ctx, chromedp.Text(chromedp.ID("error"))); !strings.HasPrefix(errText, "not_found:") {
		t.Errorf("error %q, want the code not_found first", errText)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

// webImages picks the test's images: per category of Debian's
// openclipart-png (public domain), the first perCat PNGs by name with
// distinct bytes, ids "category/file.png"; without the package,
// generated pictures.
func webImages(t *testing.T, cats []string, perCat int) (ids, paths []string) {
	t.Helper()
	const root = "/usr/share/openclipart/png"
	seen := map[[32]byte]bool{}
	for _, c := range cats {
		files, _ := filepath.Glob(filepath.Join(root, c, "*.png"))
		sort.Strings(files)
		n := 0
		for _, f := range files {
			b, err := os.ReadFile(f) // follows a symlink
			if err != nil || len(b) == 0 || len(b) > 1<<20 {
				continue
			}
			if h := sha256.Sum256(b); !seen[h] {
				seen[h] = true
				ids, paths = append(ids, c+"/"+filepath.Base(f)), append(paths, f)
				if n++; n == perCat {
					break
				}
			}
		}
	}
	if len(ids) >= 2*perCat {
		return ids, paths
	}
	t.Logf("openclipart-png is not installed (scripts/setup-browser.sh installs it): generated pictures instead")
	ids, paths = nil, nil
	dir := t.TempDir()
	for i := 0; i < len(cats)*perCat; i++ {
		p := filepath.Join(dir, fmt.Sprintf("pic-%02d.png", i))
		if err := os.WriteFile(p, webtest.PNG(i), 0o644); err != nil {
			t.Fatal(err)
		}
		ids, paths = append(ids, fmt.Sprintf("generated/pic-%02d.png", i)), append(paths, p)
	}
	return ids, paths
}

// TestWebPageImages is the user's story end to end: `lookalike serve`
// with the real default model, an image collection with a few dozen
// pictures, the page in headless Chromium: choose a file, see the grid
// (that picture first, every thumbnail loaded), click a result and see
// new results with it first. It needs ONNX Runtime
// (scripts/fetch-ort.sh) and the default model (`lookalike model fetch`).
func TestWebPageImages(t *testing.T) {
	ctx := webtest.Browser(t)
	embedtest.RequireDefaultModel(t)

	s := startServer(t, "--quiet")
	s.must("POST", "/v1/collections", map[string]any{"name": "clipart", "metric": "cosine", "model": embed.DefaultModel}, 201, nil)
	ids, paths := webImages(t, []string{"animals", "food", "buildings", "transportation"}, 9)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fw, _ := mw.CreateFormFile("file", filepath.Base(p))
		fw.Write(b)
		mw.WriteField("id", ids[i])
		mw.WriteField("source", p)
	}
	mw.Close()
	var ins proto.Inserted
	if st, _, err := s.call("POST", "/v1/collections/clipart/images", mw.FormDataContentType(), body.Bytes(), &ins); st != 200 || ins.Inserted != len(ids) {
		t.Fatalf("import %d images: %d %v %+v", len(ids), st, err, ins)
	}

	const k = 12
	query := 4 // the fifth picture of the first category
	webtest.Do(t, ctx, "open the page",
		chromedp.Navigate(s.url("/")),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('[data-stat=items]')?.textContent === '%d'`, len(ids))),
		chromedp.SetValue(chromedp.ID("k"), fmt.Sprint(k)))
	webtest.Do(t, ctx, "choose an image",
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{paths[query]}),
		webtest.WaitFirstHit(ids[query], k),
		webtest.WaitThumbnails())
	first := webtest.HitIDs(t, ctx)
	score := webtest.Get(t, ctx, chromedp.Text(chromedp.CSS("#results .hit .score")))
	if score != "similarity 1.0000" && score != "similarity 0.9999" {
		t.Errorf("the uploaded picture itself scores %q, want similarity 1", score)
	}
	clicked := first[2]
	webtest.Do(t, ctx, "click the third result",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#results .hit[data-id=%q]`, clicked))),
		webtest.WaitFirstHit(clicked, k),
		webtest.WaitThumbnails())
	if got := webtest.HitIDs(t, ctx); slicesEqual(got, first) {
		t.Fatalf("after clicking %s: the same hits %v", clicked, got)
	}
	t.Logf("query %s: %v; clicked %s", ids[query], first, clicked)
	webtest.ScreenshotFromEnv(t, ctx)
}
