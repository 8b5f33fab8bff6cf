package web

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"lookalike/proto"
)

func get(t *testing.T, target string, hdr ...string) (*httptest.ResponseRecorder, error) {
	t.Helper()
	r := httptest.NewRequest("GET", target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	return w, Serve(w, r)
}

// TestServe: the page and each asset it names, with their content types,
// ETags, revalidation and caching.
func TestServe(t *testing.T) {
	w, err := get(t, "/")
	if err != nil || w.Code != 200 {
		t.Fatalf("GET /: %d %v", w.Code, err)
	}
	if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Fatalf("GET /: Content-Type %q", ct)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
		t.Fatalf("GET /: Cache-Control %q", cc)
	}
	if !strings.Contains(w.Header().Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /: no CSP: %v", w.Header())
	}
	page := w.Body.String()
	if !strings.Contains(page, "<title>lookalike</title>") {
		t.Fatalf("GET /: not the page: %.200s", page)
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Fatal("the page refers to another site; it must load nothing from outside")
	}
	refs := regexp.MustCompile(`"web/([a-z]+\.[a-z]+)\?v=([0-9a-f]{16})"`).FindAllStringSubmatch(page, -1)
	want := map[string]string{"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8", "icon.svg": "image/svg+xml"}
	seen := map[string]bool{}
	for _, m := range refs {
		name, v := m[1], m[2]
		seen[name] = true
		w, err := get(t, "/web/"+name+"?v="+v)
		if err != nil || w.Code != 200 || w.Body.Len() == 0 {
			t.Fatalf("GET /web/%s: %d %v", name, w.Code, err)
		}
		if ct := w.Header().Get("Content-Type"); ct != want[name] {
			t.Errorf("GET /web/%s: Content-Type %q, want %q", name, ct, want[name])
		}
		if cc := w.Header().Get("Cache-Control"); !strings.Contains(cc, "immutable") {
			t.Errorf("GET /web/%s?v=current: Cache-Control %q, want immutable", name, cc)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET /web/%s: no nosniff", name)
		}
		etag := w.Header().Get("ETag")
		if etag != `"`+v+`"` {
			t.Errorf("GET /web/%s: ETag %q, want the ?v= hash", name, etag)
		}
		// Without the current hash (an old page, a hand-typed URL): revalidated.
		w, _ = get(t, "/web/"+name+"?v=0000")
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET /web/%s?v=old: Cache-Control %q, want no-cache", name, cc)
		}
		w, _ = get(t, "/web/"+name, "If-None-Match", etag)
		if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
			t.Errorf("GET /web/%s If-None-Match: %d with %d bytes, want 304 and none", name, w.Code, w.Body.Len())
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("the page does not name web/%s with its hash", name)
		}
	}
	for _, p := range []string{"/web/nope.js", "/web/", "/index.html", "/web/web.go"} {
		if _, err := get(t, p); err == nil {
			t.Errorf("GET %s: served, want not_found", p)
		} else if e := (*proto.Error)(nil); !errors.As(err, &e) || e.Code != proto.NotFound {
			t.Errorf("GET %s: %v, want not_found", p, err)
		}
	}
}
