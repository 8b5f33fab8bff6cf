package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"lookalike/embed"
	"lookalike/embed/embedtest"
	"lookalike/node"
	"lookalike/node/nodetest"
	"lookalike/node/web/webtest"
)

// TestPageImages drives the page in headless Chromium over an image
// collection of an in-process node behind a read key, whose model is
// embedtest's fake (a vector is a function of the file's bytes, so a
// search with a stored file finds that item first): pick a file, drop
// one, paste one, see the grid with its thumbnails loaded (fetched with
// the key), click a result and get new results with it first. node/e2e's TestWebPageImages does the same with the real
// binary and the real model.
func TestPageImages(t *testing.T) {
	ctx := webtest.Browser(t)
	n, err := node.Open(node.Options{NodeID: "n1", AutoTrainAt: -1,
		Embedders: map[string]embed.Embedder{"fake": embedtest.New("fake", 32)}}, nodetest.NewMeta(), nodetest.NewStore())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	srv := httptest.NewServer(n.Handler(node.APIOptions{ReadKey: "rk"})) // thumbnails then come as blobs fetched with the key
	t.Cleanup(srv.Close)

	post := func(path, ctype string, body []byte) {
		t.Helper()
		resp, err := http.Post(srv.URL+path, ctype, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b.String())
		}
	}
	post("/v1/collections", "application/json", []byte(`{"name":"pics","metric":"cosine","model":"fake"}`))
	const total, k = 16, 6
	dir := t.TempDir()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i := 0; i < total; i++ {
		p := webtest.PNG(i)
		name := fmt.Sprintf("pic-%02d.png", i)
		if err := os.WriteFile(filepath.Join(dir, name), p, 0o644); err != nil {
			t.Fatal(err)
		}
		fw, _ := mw.CreateFormFile("file", name)
		fw.Write(p)
		mw.WriteField("id", strings.TrimSuffix(name, ".png"))
	}
	mw.Close()
	post("/v1/collections/pics/images", mw.FormDataContentType(), body.Bytes())

	webtest.Do(t, ctx, "open the page, enter the read key",
		chromedp.Navigate(srv.URL+"/"),
		chromedp.SendKeys(chromedp.ID("key"), "rk"),
		chromedp.Blur(chromedp.ID("key")),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`document.querySelector('[data-stat=items]')?.textContent === '%d'`, total)),
		chromedp.SetValue(chromedp.ID("k"), fmt.Sprint(k)))

	webtest.Do(t, ctx, "choose a file",
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{filepath.Join(dir, "pic-05.png")}),
		webtest.WaitFirstHit("pic-05", k),
		webtest.WaitThumbnails(),
		chromedp.Poll[chromedp.Void](`(() => { const q = document.getElementById('query-img'); return !q.hidden && q.naturalWidth > 0; })()`))
	first := webtest.HitIDs(t, ctx)
	if src := webtest.Get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#results .hit img').src`)); !strings.HasPrefix(src, "blob:") {
		t.Errorf("thumbnail src %q: with a read key it must be fetched with the key (a blob)", src)
	}
	if status := webtest.Get(t, ctx, chromedp.Text(chromedp.ID("status"))); !strings.HasPrefix(status, fmt.Sprintf("%d results in ", k)) {
		t.Errorf("status %q", status)
	}
	alt := webtest.Get(t, ctx, chromedp.Evaluate[string](`document.querySelector('#results .hit img').alt`))
	if alt != "Thumbnail of pic-05" {
		t.Errorf("first thumbnail's alt %q", alt)
	}

	clicked := first[3]
	webtest.Do(t, ctx, "click the fourth hit",
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`#results .hit[data-id=%q]`, clicked))),
		webtest.WaitFirstHit(clicked, k),
		webtest.WaitThumbnails())
	if got := webtest.HitIDs(t, ctx); strings.Join(got, " ") == strings.Join(first, " ") {
		t.Fatalf("after clicking %s: the same hits %v", clicked, got)
	}

	// Drop and paste, as the browser delivers them: events carrying a
	// DataTransfer with the file.
	deliver := func(i int, event string) chromedp.Action[chromedp.Void] {
		js := fmt.Sprintf(`(() => {
			const b = Uint8Array.from(atob(%q), c => c.charCodeAt(0));
			const dt = new DataTransfer();
			dt.items.add(new File([b], 'pic.png', {type: 'image/png'}));
			const target = document.getElementById('drop');
			const ev = %q === 'drop'
				? new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true})
				: new ClipboardEvent('paste', {clipboardData: dt, bubbles: true, cancelable: true});
			target.dispatchEvent(ev);
			return true;
		})()`, base64.StdEncoding.EncodeToString(webtest.PNG(i)), event)
		ev := chromedp.Evaluate[bool](js)
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := ev(ctx, tg)
			return chromedp.Void{}, err
		}
	}
	webtest.Do(t, ctx, "drop a file", deliver(9, "drop"), webtest.WaitFirstHit("pic-09", k), webtest.WaitThumbnails())
	webtest.Do(t, ctx, "paste an image", deliver(12, "paste"), webtest.WaitFirstHit("pic-12", k), webtest.WaitThumbnails())
	webtest.ScreenshotFromEnv(t, ctx)
}
