package node_test

import (
	"strings"
	"testing"

	"lookalike/node"
	"lookalike/proto"
)

// TestPage: every node serves the search page and its assets with no key,
// even when reads need one; the API calls still do.
func TestPage(t *testing.T) {
	c, _ := newAPI(t, node.APIOptions{APIKey: "w", ReadKey: "r"})
	for path, ct := range map[string]string{
		"/":              "text/html; charset=utf-8",
		"/web/app.js":    "text/javascript; charset=utf-8",
		"/web/style.css": "text/css; charset=utf-8",
		"/web/icon.svg":  "image/svg+xml",
	} {
		st, b, h := c.do("GET", path, "", nil)
		if st != 200 || h.Get("Content-Type") != ct || len(b) == 0 {
			t.Errorf("GET %s: %d %q (%d bytes), want 200 %q", path, st, h.Get("Content-Type"), len(b), ct)
		}
	}
	if st, b, _ := c.do("HEAD", "/", "", nil); st != 200 || len(b) != 0 {
		t.Errorf("HEAD /: %d with %d bytes", st, len(b))
	}
	if _, b, _ := c.do("GET", "/", "", nil); !strings.Contains(string(b), `src="web/app.js?v=`) {
		t.Errorf("GET /: the page does not load its script: %.300s", b)
	}
	c.want("GET", "/web/missing.js", "", 404, proto.NotFound)
	c.want("POST", "/", "", 404, proto.NotFound)
	c.want("GET", "/v1/collections", "", 401, proto.Unauthorized)
	c.key = "r"
	c.want("GET", "/v1/collections", "", 200, "")
}
