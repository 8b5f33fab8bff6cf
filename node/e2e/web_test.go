package e2e

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

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
