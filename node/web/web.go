// Package web is the search page that every node serves at /: plain HTML,
// CSS and JavaScript embedded in the binary, with no build step and
// nothing fetched at run time. The page talks to HTTP API v1 of the node
// that served it (docs/node.md, "Web page").
//
// The page itself is public; the API calls it makes carry the read key
// that the user types into it.
//
// Caching: index.html refers to each asset as web/NAME?v=HASH, HASH being
// a prefix of the SHA-256 of the asset's bytes, so an asset fetched with
// its current HASH is cached for a year (immutable) and a new binary's
// page fetches new assets. The page itself and an asset asked for without
// its current HASH are revalidated on every load (no-cache, ETag).
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"strings"
	"time"

	"lookalike/proto"
)

//go:embed index.html app.js style.css icon.svg
var files embed.FS

// asset is one file as served.
type asset struct {
	body  []byte
	ctype string
	hash  string // hex SHA-256 prefix: the ?v= and the ETag
}

// assets by URL path: "/" and "/web/NAME".
var assets = load()

// types are the content types of the files' extensions, spelled out
// rather than taken from the system's MIME tables.
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// csp lets the page load only its own files and talk only to its own
// node; blob: is for thumbnails fetched with a key and for the preview of
// the query image.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func hashOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func load() map[string]*asset {
	out := map[string]*asset{}
	ents, err := files.ReadDir(".")
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	var index []byte
	for _, e := range ents {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			panic(err)
		}
		if e.Name() == "index.html" {
			index = b
			continue
		}
		ct, ok := types[path.Ext(e.Name())]
		if !ok {
			panic("web: no content type for " + e.Name())
		}
		out["/web/"+e.Name()] = &asset{body: b, ctype: ct, hash: hashOf(b)}
	}
	for p, a := range out {
		ref := `"` + strings.TrimPrefix(p, "/") + `"`
		index = bytes.ReplaceAll(index, []byte(ref), []byte(ref[:len(ref)-1]+"?v="+a.hash+`"`))
	}
	out["/"] = &asset{body: index, ctype: types[".html"], hash: hashOf(index)}
	return out
}

// Serve answers GET and HEAD of / and /web/NAME; any other path is
// not_found. Its signature is the API's route handlers'.
func Serve(w http.ResponseWriter, r *http.Request) error {
	a, ok := assets[r.URL.Path]
	if !ok {
		return proto.Errorf(proto.NotFound, "no file %s", r.URL.Path)
	}
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", fmt.Sprintf(`"%s"`, a.hash))
	h.Set("X-Content-Type-Options", "nosniff")
	if r.URL.Path != "/" && r.URL.Query().Get("v") == a.hash {
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		h.Set("Cache-Control", "no-cache")
	}
	if r.URL.Path == "/" {
		h.Set("Content-Security-Policy", csp)
		h.Set("Referrer-Policy", "same-origin")
	}
	// ServeContent answers If-None-Match (304), HEAD and ranges.
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
	return nil
}
