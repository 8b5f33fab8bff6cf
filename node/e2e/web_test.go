package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lookalike/internal/testenv"
	"lookalike/proto"
)

// The web page's tests drive headless Chromium (Debian's chromium,
// installed by scripts/setup-browser.sh) through chromedp against a real
// `lookalike serve`.

// browser starts headless Chromium for t and returns a context for
// chromedp's actions, with a deadline. A JavaScript exception on the page
// fails the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	var exe string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	testenv.Require(t, "headless Chromium (chromium on PATH)", "run scripts/setup-browser.sh", exe != "")
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests run as root here, where Chromium's sandbox refuses to start
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1200, 900),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	if err := chromedp.Do(bctx); err != nil { // starts the browser, with no deadline (it would stop it)
		t.Fatalf("start %s: %v", exe, err)
	}
	// The page's console: an exception fails the test, errors are logged.
	msgs := chromedp.Console(bctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for m, err := range msgs {
			if err != nil {
				return // the browser is gone: the test is over
			}
			switch {
			case m.IsException():
				t.Errorf("page: %s", m)
			case m.Type == chromedp.ConsoleError:
				t.Logf("page: %s", m)
			}
		}
	}()
	t.Cleanup(func() { cancelBrowser(); <-watched }) // runs before the one above
	ctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// do runs chromedp actions, failing t with what the page shows on error.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		shown, _ := chromedp.Run(sctx, chromedp.Evaluate[string](
			`'status ' + JSON.stringify(document.getElementById('status').textContent) + ', error ' + JSON.stringify(document.getElementById('error').textContent)`))
		t.Fatalf("%s: %v (page: %s)", what, err, shown)
	}
}

// get runs one chromedp action that returns a value.
func get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// hitIDs reads the ids of the result grid, best first.
func hitIDs(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#results .hit')].map(b => b.dataset.id)`))
}

// waitFirstHit waits for a grid of n hits whose first is id.
func waitFirstHit(id string, n int) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => {
		const h = document.querySelectorAll('#results .hit');
		return h.length === %d && h[0].dataset.id === %q && !document.querySelector('#results[aria-busy]');
	})()`, n, id), chromedp.WithPollingTimeout(30*time.Second))
}

// TestWebPageVectors drives the page over a vector collection, with a read
// key: the key field, the error display, the stats, search by id, a click
// on a result, the address that keeps the query, and the key kept across
// a reload.
func TestWebPageVectors(t *testing.T) {
	ctx := browser(t)
	s := startServer(t, "--auto-train-at", "-1", "--quiet", "--read-key", "rk")
	s.must("POST", "/v1/collections", map[string]any{"name": "vecs", "metric": "l2", "dim": 8}, 201, nil)
	r := rand.New(rand.NewPCG(3, 4))
	var ins proto.Insert
	for i := 0; i < 120; i++ {
		ins.Items = append(ins.Items, proto.InsertItem{ID: fmt.Sprintf("v%03d", i), Vector: vec(r, 8)})
	}
	s.must("POST", "/v1/collections/vecs/vectors", ins, 200, nil)

	do(t, ctx, "open the page without the key",
		chromedp.Navigate(s.url("/")),
		chromedp.WaitVisible(chromedp.ID("error")))
	errText := get(t, ctx, chromedp.Text(chromedp.ID("error")))
	if !strings.Contains(errText, "unauthorized") || !strings.Contains(errText, "Read key") {
		t.Fatalf("error shown without the key: %q, want unauthorized and a hint", errText)
	}

	do(t, ctx, "enter the key",
		chromedp.SendKeys(chromedp.ID("key"), "rk"),
		chromedp.Blur(chromedp.ID("key")), // change event: the page reloads its lists with the key
		chromedp.WaitNotVisible(chromedp.ID("error")),
		chromedp.Poll[chromedp.Void](`document.querySelector('[data-stat=items]')?.textContent === '120'`, chromedp.WithPollingTimeout(10*time.Second)))

	const k = 7
	do(t, ctx, "search by id",
		chromedp.SetValue(chromedp.ID("k"), fmt.Sprint(k)),
		chromedp.SendKeys(chromedp.ID("id"), "v042"),
		chromedp.Click(chromedp.CSS("#by-id button")),
		waitFirstHit("v042", k))
	ids := hitIDs(t, ctx)
	status := get(t, ctx, chromedp.Text(chromedp.ID("status")))
	if !strings.Contains(status, fmt.Sprintf("%d results in", k)) || !strings.HasSuffix(status, " ms") {
		t.Errorf("status %q, want the hit count and took_ms", status)
	}
	if loc := get(t, ctx, chromedp.Location()); !strings.HasSuffix(loc, "#c=vecs&id=v042&k=7") {
		t.Errorf("address %q does not keep the query", loc)
	}

	third := ids[2]
	do(t, ctx, "click the third hit",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#results .hit[data-id=%q]`, third))),
		waitFirstHit(third, k))
	if got := hitIDs(t, ctx); slicesEqual(got, ids) {
		t.Fatalf("after clicking %s: the same hits %v", third, got)
	}
	do(t, ctx, "back to the first query",
		chromedp.NavigateBack(),
		waitFirstHit("v042", k))

	do(t, ctx, "reload: the key and the query are kept",
		chromedp.Reload(),
		waitFirstHit("v042", k))
	if key := get(t, ctx, chromedp.Value(chromedp.ID("key"))); key != "rk" {
		t.Errorf("key after reload %q, want rk (kept in localStorage)", key)
	}

	do(t, ctx, "an unknown id shows the API's error",
		chromedp.SetValue(chromedp.ID("id"), "nope"),
		chromedp.Click(chromedp.CSS("#by-id button")),
		chromedp.WaitVisible(chromedp.ID("error")))
	if errText := get(t, ctx, chromedp.Text(chromedp.ID("error"))); !strings.HasPrefix(errText, "not_found:") {
		t.Errorf("error %q, want the code not_found first", errText)
	}
	if shot := os.Getenv("LOOKALIKE_WEB_SCREENSHOT"); shot != "" {
		screenshot(t, ctx, shot)
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, "\x00") == strings.Join(b, "\x00") }

// screenshot saves the viewport as PNG at path (LOOKALIKE_WEB_SCREENSHOT).
func screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png := get(t, ctx, chromedp.CaptureScreenshot())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}
