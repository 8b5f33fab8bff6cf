// Package webtest drives the search page (package web) in headless
// Chromium for tests, through github.com/chromedp/chromedp: start the
// browser, run actions, read the result grid. Tests import it; the binary
// does not.
//
// The browser is Debian's chromium (scripts/setup-browser.sh). Without it
// a test skips under a bare `go test` and fails under
// LOOKALIKE_REQUIRE_COMPONENTS=1 (internal/testenv).
package webtest

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"lookalike/internal/testenv"
)

// Browser starts headless Chromium for t (stopped by t.Cleanup) and
// returns a context for chromedp's actions with a deadline of two
// minutes. An uncaught JavaScript exception on the page fails t; the
// page's console errors are logged.
func Browser(t *testing.T) context.Context {
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

// Do runs actions, failing t with what the page shows (status line and
// error) when one fails.
func Do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		shown, _ := chromedp.Run(sctx, chromedp.Evaluate[string](
			`'status ' + JSON.stringify(document.getElementById('status')?.textContent) + ', error ' + JSON.stringify(document.getElementById('error')?.textContent)`))
		t.Fatalf("%s: %v (page: %s)", what, err, shown)
	}
}

// Get runs one action that returns a value.
func Get[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// HitIDs reads the ids of the result grid, best first.
func HitIDs(t *testing.T, ctx context.Context) []string {
	t.Helper()
	return Get(t, ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#results .hit')].map(b => b.dataset.id)`))
}

// WaitFirstHit waits for a grid of n hits whose first is id, the search
// finished.
func WaitFirstHit(id string, n int) chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => {
		const h = document.querySelectorAll('#results .hit');
		return h.length === %d && h[0].dataset.id === %q && !document.querySelector('#results[aria-busy]');
	})()`, n, id), chromedp.WithPollingTimeout(30*time.Second))
}

// WaitThumbnails waits until every hit's thumbnail has loaded (an image
// with pixels; a failed one is replaced by the id's initial and never
// counts).
func WaitThumbnails() chromedp.Action[chromedp.Void] {
	return chromedp.Poll[chromedp.Void](`(() => {
		const h = [...document.querySelectorAll('#results .hit')];
		return h.length > 0 && h.every(b => { const i = b.querySelector('img'); return i && i.complete && i.naturalWidth > 0; });
	})()`, chromedp.WithPollingTimeout(30*time.Second))
}

// Screenshot saves the viewport as PNG at path.
func Screenshot(t *testing.T, ctx context.Context, path string) {
	t.Helper()
	png := Get(t, ctx, chromedp.CaptureScreenshot())
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// ScreenshotFromEnv saves a screenshot at $LOOKALIKE_WEB_SCREENSHOT when
// it is set (how docs/img/web.png is made).
func ScreenshotFromEnv(t *testing.T, ctx context.Context) {
	t.Helper()
	if p := os.Getenv("LOOKALIKE_WEB_SCREENSHOT"); p != "" {
		Screenshot(t, ctx, p)
	}
}

// PNG draws picture i, 96×96: a disc and a bar in colours of their own
// on a light background, so that every file differs.
func PNG(i int) []byte {
	const s = 96
	img := image.NewRGBA(image.Rect(0, 0, s, s))
	bg := color.RGBA{245, 245, 250, 255}
	fg := color.RGBA{uint8(40 + 53*i%200), uint8(90 + 71*i%160), uint8(200 - 37*i%180), 255}
	bar := color.RGBA{uint8(220 - 29*i%150), uint8(60 + 17*i%120), uint8(30 + 43*i%200), 255}
	cx, cy, r := 30+3*i%40, 40+5*i%30, 14+i%12
	for y := 0; y < s; y++ {
		for x := 0; x < s; x++ {
			c := bg
			if (x-cx)*(x-cx)+(y-cy)*(y-cy) <= r*r {
				c = fg
			} else if y > 70 && x > 10+2*i%30 && x < 60+3*i%30 {
				c = bar
			}
			img.Set(x, y, c)
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		panic(err)
	}
	return b.Bytes()
}
