package node_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"mime/multipart"
	"net/http/httptest"
	"strings"
	"testing"

	"lookalike/embed"
	"lookalike/embed/embedtest"
	"lookalike/node"
	"lookalike/node/nodetest"
	"lookalike/node/store"
	"lookalike/proto"
)

// randomPNG encodes a w×h image of seeded noise.
func randomPNG(t testing.TB, seed uint64, w, h int) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 2))
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = byte(r.Uint32())
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// pngHeader is a PNG signature and IHDR chunk of w×h pixels, and nothing
// else: a decompression bomb's header.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 0, 17)
	ihdr = append(ihdr, "IHDR"...)
	ihdr = binary.BigEndian.AppendUint32(ihdr, w)
	ihdr = binary.BigEndian.AppendUint32(ihdr, h)
	ihdr = append(ihdr, 8, 2, 0, 0, 0) // 8-bit RGB
	b = binary.BigEndian.AppendUint32(b, 13)
	b = append(b, ihdr...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(ihdr))
}

// form is a multipart body: pairs of (name, value); a name "file:NAME"
// makes a file part with file name NAME.
func form(t testing.TB, pairs ...string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i < len(pairs); i += 2 {
		var pw io.Writer
		var err error
		if fn, ok := strings.CutPrefix(pairs[i], "file:"); ok {
			pw, err = w.CreateFormFile("file", fn)
		} else {
			pw, err = w.CreateFormField(pairs[i])
		}
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, pairs[i+1])
	}
	w.Close()
	return b.Bytes(), w.FormDataContentType()
}

type imageAPI struct {
	client
	n  *node.Node
	st *nodetest.Store
	e  *embedtest.Embedder
}

func newImageAPI(t *testing.T, o node.APIOptions) imageAPI {
	st := nodetest.NewStore()
	e := embedtest.New("fake", 16)
	n := open(t, nodetest.NewMeta(), st, node.Options{Embedders: map[string]embed.Embedder{"fake": e}})
	srv := httptest.NewServer(n.Handler(o))
	t.Cleanup(srv.Close)
	return imageAPI{client{t: t, base: srv.URL}, n, st, e}
}

// post sends a multipart body and checks the status (and code, if set).
func (c imageAPI) post(path string, status int, code proto.Code, pairs ...string) []byte {
	c.t.Helper()
	body, ct := form(c.t, pairs...)
	got, b, _ := c.do("POST", path, ct, body)
	if got != status {
		c.t.Fatalf("POST %s: status %d, want %d: %s", path, got, status, b)
	}
	if code != "" {
		var e proto.ErrorBody
		if err := json.Unmarshal(b, &e); err != nil || e.Error == nil || e.Error.Code != code {
			c.t.Fatalf("POST %s: %s, want code %s", path, b, code)
		}
	}
	return b
}

func (c imageAPI) count(name string) int64 {
	c.t.Helper()
	var col proto.Collection
	json.Unmarshal(c.want("GET", "/v1/collections/"+name, "", 200, ""), &col)
	return col.Count
}

func TestImageCollectionCreate(t *testing.T) {
	c := newImageAPI(t, node.APIOptions{})
	b := c.want("POST", "/v1/collections", `{"name":"i","metric":"cosine","model":"nope"}`, 400, proto.BadRequest)
	if !strings.Contains(string(b), `model \"nope\": unknown; this server knows fake`) {
		t.Errorf("unknown model: %s", b)
	}
	b = c.want("POST", "/v1/collections", `{"name":"i","metric":"cosine","model":"fake","dim":8}`, 400, proto.BadRequest)
	if !strings.Contains(string(b), "gives vectors of 16") {
		t.Errorf("dim mismatch: %s", b)
	}
	var col proto.Collection
	json.Unmarshal(c.want("POST", "/v1/collections", `{"name":"i","metric":"cosine","model":"fake"}`, 201, ""), &col)
	if col.Dim != 16 || col.Model != "fake" || col.ModelHash != c.e.ModelHash() {
		t.Fatalf("created %+v", col)
	}
	c.want("POST", "/v1/collections", `{"name":"j","metric":"l2","model":"fake","dim":16}`, 201, "")
	json.Unmarshal(c.want("GET", "/v1/collections/i", "", 200, ""), &col)
	if col.Model != "fake" || col.ModelHash != c.e.ModelHash() {
		t.Fatalf("described %+v", col)
	}

	// A server without models says how to get one.
	c2, _ := newAPI(t, node.APIOptions{})
	b = c2.want("POST", "/v1/collections", `{"name":"i","metric":"cosine","model":"fake"}`, 400, proto.BadRequest)
	if !strings.Contains(string(b), "--model") {
		t.Errorf("no models: %s", b)
	}
}

func TestImageUploadAndSearch(t *testing.T) {
	c := newImageAPI(t, node.APIOptions{})
	c.want("POST", "/v1/collections", `{"name":"i","metric":"cosine","model":"fake"}`, 201, "")
	imgs := make([][]byte, 4)
	for i := range imgs {
		imgs[i] = randomPNG(t, uint64(i), 40+i, 30)
	}
	var ins proto.Inserted
	json.Unmarshal(c.post("/v1/collections/i/images", 200, "",
		"file:a.png", string(imgs[0]), "id", "a", "meta", `{"tag":"x"}`, "source", "/pics/a.png",
		"file:b.png", string(imgs[1]), "id", "b",
		"keep_original", "true",
		"file:c.png", string(imgs[2]),
	), &ins)
	if ins.Inserted != 3 || len(ins.IDs) != 3 || ins.IDs[0] != "a" || ins.IDs[1] != "b" || len(ins.IDs[2]) != 32 {
		t.Fatalf("inserted %+v", ins)
	}
	if c.count("i") != 3 {
		t.Fatalf("count %d", c.count("i"))
	}

	var it proto.Item
	json.Unmarshal(c.want("GET", "/v1/collections/i/items/a", "", 200, ""), &it)
	if it.Source != "/pics/a.png" || it.Format != "png" || it.Width != 40 || it.Height != 30 || !it.Original || string(it.Meta) != `{"tag":"x"}` {
		t.Fatalf("item a: %+v", it)
	}
	it = proto.Item{}
	json.Unmarshal(c.want("GET", "/v1/collections/i/items/"+ins.IDs[2], "", 200, ""), &it)
	if it.Source != "" || it.Format != "png" {
		t.Fatalf("item c: %+v", it)
	}

	st, body, h := c.do("GET", "/v1/collections/i/items/b/thumbnail", "", nil)
	if st != 200 || h.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("thumbnail: %d %s", st, h)
	}
	if _, err := jpeg.Decode(bytes.NewReader(body)); err != nil {
		t.Fatalf("thumbnail is not a JPEG: %v", err)
	}
	c.want("GET", "/v1/collections/i/items/zz/thumbnail", "", 404, proto.NotFound)
	var lk proto.LookupResult
	json.Unmarshal(c.want("POST", "/v1/collections/i/items/lookup", `{"ids":["a","zz","b"]}`, 200, ""), &lk)
	if fmt.Sprint(lk.Found) != "[true false true]" {
		t.Fatalf("lookup: %v", lk.Found)
	}

	// By image: the same file is its own best hit.
	var res proto.SearchResult
	json.Unmarshal(c.post("/v1/collections/i/search", 200, "", "file:q.png", string(imgs[1]), "k", "2"), &res)
	if len(res.Hits) != 2 || res.Hits[0].ID != "b" || res.Hits[0].Score < 0.999 {
		t.Fatalf("search by image: %+v", res)
	}
	// By id, as for vectors.
	json.Unmarshal(c.want("POST", "/v1/collections/i/search", `{"id":"a","k":1}`, 200, ""), &res)
	if len(res.Hits) != 1 || res.Hits[0].ID != "a" || string(res.Hits[0].Meta) != `{"tag":"x"}` {
		t.Fatalf("search by id: %+v", res)
	}
	lanes, n := c.e.Lanes()
	if fmt.Sprint(lanes) != fmt.Sprint([]embed.Lane{embed.Bulk, embed.Query}) || n != 4 {
		t.Fatalf("lanes %v, %d images", lanes, n)
	}

	// An upsert by id replaces the image record; a delete removes it.
	c.post("/v1/collections/i/images", 200, "", "file:a2.png", string(imgs[3]), "id", "a", "source", "/pics/a2.png")
	it = proto.Item{}
	json.Unmarshal(c.want("GET", "/v1/collections/i/items/a", "", 200, ""), &it)
	if it.Source != "/pics/a2.png" || it.Original || it.Width != 43 {
		t.Fatalf("upserted a: %+v", it)
	}
	c.want("DELETE", "/v1/collections/i/items/a", "", 204, "")
	c.want("GET", "/v1/collections/i/items/a/thumbnail", "", 404, proto.NotFound)
	if c.count("i") != 2 {
		t.Fatalf("count %d", c.count("i"))
	}
}

func TestImageBadInput(t *testing.T) {
	c := newImageAPI(t, node.APIOptions{Limits: proto.Limits{MaxBodyBytes: 1 << 20, MaxImageBytes: 256 << 10}})
	c.want("POST", "/v1/collections", `{"name":"i","metric":"cosine","model":"fake"}`, 201, "")
	c.want("POST", "/v1/collections", `{"name":"v","metric":"l2","dim":16}`, 201, "")
	good := randomPNG(t, 1, 20, 20)
	for _, tc := range []struct {
		name   string
		status int
		code   proto.Code
		want   string
		pairs  []string
	}{
		{"not an image", 400, proto.BadRequest, `file[1] ("notes.txt"): embed: not an image`, []string{"file:ok.png", string(good), "file:notes.txt", "hello, world"}},
		{"truncated", 400, proto.BadRequest, `file[0] ("cut.png"): embed: truncated`, []string{"file:cut.png", string(good[:len(good)/2])}},
		{"unsupported", 400, proto.BadRequest, `embed: unsupported image format`, []string{"file:x.tif", "II*\x00\x08\x00\x00\x00rest"}},
		{"30000x30000", 413, proto.TooLarge, `file[0] ("bomb.png"): embed: image too large`, []string{"file:bomb.png", string(pngHeader(30000, 30000))}},
		{"empty", 400, proto.BadRequest, `file[0] ("empty.png"): empty file`, []string{"file:empty.png", ""}},
		{"file over the limit", 413, proto.TooLarge, `over 262144 bytes`, []string{"file:big.png", strings.Repeat("x", 300<<10)}},
		{"body over the limit", 413, proto.TooLarge, `body limit`, []string{"file:1.png", strings.Repeat("x", 200<<10), "file:2.png", strings.Repeat("x", 200<<10), "file:3.png", strings.Repeat("x", 200<<10), "file:4.png", strings.Repeat("x", 200<<10), "file:5.png", strings.Repeat("x", 200<<10), "file:6.png", strings.Repeat("x", 200<<10)}},
		{"no file", 400, proto.BadRequest, `no file part`, []string{"keep_original", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e proto.ErrorBody
			json.Unmarshal(c.post("/v1/collections/i/images", tc.status, tc.code, tc.pairs...), &e)
			if !strings.Contains(e.Error.Message, tc.want) {
				t.Errorf("%q, want %q in the message", e.Error.Message, tc.want)
			}
		})
	}
	if n := c.count("i"); n != 0 {
		t.Fatalf("%d items stored by bad requests", n)
	}
	if _, n := c.e.Lanes(); n != 0 {
		t.Fatalf("%d images embedded for bad requests", n)
	}
	// A JSON body to the images endpoint.
	c.want("POST", "/v1/collections/i/images", `{"items":[]}`, 400, proto.BadRequest)
	// Images to a vector collection, vectors to an image collection.
	b := c.post("/v1/collections/v/images", 400, proto.BadRequest, "file:ok.png", string(good))
	if !strings.Contains(string(b), "vector collection") {
		t.Errorf("images to a vector collection: %s", b)
	}
	b = c.post("/v1/collections/v/search", 400, proto.BadRequest, "file:ok.png", string(good))
	if !strings.Contains(string(b), "vector collection") {
		t.Errorf("search by image in a vector collection: %s", b)
	}
	vec := `{"items":[{"vector":[` + strings.TrimSuffix(strings.Repeat("1,", 16), ",") + `]}]}`
	b = c.want("POST", "/v1/collections/i/vectors", vec, 400, proto.BadRequest)
	if !strings.Contains(string(b), "image collection") {
		t.Errorf("vectors to an image collection: %s", b)
	}
	// A bad search image.
	c.post("/v1/collections/i/search", 400, proto.BadRequest, "file:q.txt", "not an image")
	if c.count("i") != 0 || c.count("v") != 0 {
		t.Fatal("something was stored")
	}
	// The server keeps serving.
	c.want("GET", "/healthz", "", 200, "")
	c.post("/v1/collections/i/images", 200, "", "file:ok.png", string(good))
	if c.count("i") != 1 {
		t.Fatal("a good upload after the bad ones was not stored")
	}
}

// A node whose embedder for the collection's model has another hash
// refuses to embed for it.
func TestImageModelMismatch(t *testing.T) {
	meta, st := nodetest.NewMeta(), nodetest.NewStore()
	e := embedtest.New("m", 8)
	n1 := open(t, meta, st, node.Options{Embedders: map[string]embed.Embedder{"m": e}})
	if _, err := n1.CreateCollection(t.Context(), node.CollectionMeta{Name: "i", Metric: 3, Model: "m"}); err != nil {
		t.Fatal(err)
	}
	if _, err := n1.InsertImages(t.Context(), "i", []node.ImageItem{{Label: "a", Data: randomPNG(t, 1, 8, 8), UserID: "a"}}, false); err != nil {
		t.Fatal(err)
	}
	n1.Close()

	other := embedtest.New("m", 8)
	other.Hash = strings.Repeat("ab", 32)
	n2 := open(t, meta, st, node.Options{Embedders: map[string]embed.Embedder{"m": other}})
	srv := httptest.NewServer(n2.Handler(node.APIOptions{}))
	t.Cleanup(srv.Close)
	c := imageAPI{client: client{t: t, base: srv.URL}, e: other}
	b := c.post("/v1/collections/i/images", 409, proto.Conflict, "file:b.png", string(randomPNG(t, 2, 8, 8)))
	if !strings.Contains(string(b), "was created with model") || !strings.Contains(string(b), e.ModelHash()) {
		t.Errorf("mismatch message: %s", b)
	}
	c.post("/v1/collections/i/search", 409, proto.Conflict, "file:b.png", string(randomPNG(t, 2, 8, 8)))
	// What needs no embedding still works.
	c.want("POST", "/v1/collections/i/search", `{"id":"a","k":1}`, 200, "")
	c.want("GET", "/v1/collections/i/items/a/thumbnail", "", 200, "")
	if _, n := other.Lanes(); n != 0 {
		t.Fatalf("the mismatched model embedded %d images", n)
	}

	// A node without the model: unavailable, not a client error.
	n3 := open(t, meta, st, node.Options{})
	srv3 := httptest.NewServer(n3.Handler(node.APIOptions{}))
	t.Cleanup(srv3.Close)
	c3 := imageAPI{client: client{t: t, base: srv3.URL}}
	c3.post("/v1/collections/i/images", 503, proto.Unavailable, "file:b.png", string(randomPNG(t, 2, 8, 8)))
}

func TestImageRecord(t *testing.T) {
	for _, r := range []node.ImageRecord{
		{Format: "png", Width: 40, Height: 30, Thumb: []byte{0xff, 0xd8, 1, 2}, Source: "/a/b.png"},
		{Format: "jpeg", Width: 1, Height: 1, Thumb: []byte{1}, Original: []byte("orig")},
		{Original: []byte{}},
		{},
	} {
		b := r.Encode()
		got, err := node.DecodeImageRecord(b)
		if err != nil {
			t.Fatal(err)
		}
		if got.Format != r.Format || got.Width != r.Width || got.Height != r.Height || !bytes.Equal(got.Thumb, r.Thumb) ||
			got.Source != r.Source || !bytes.Equal(got.Original, r.Original) || (got.Original == nil) != (r.Original == nil) {
			t.Fatalf("%+v → %+v", r, got)
		}
		for i := range len(b) {
			if _, err := node.DecodeImageRecord(b[:i]); err == nil {
				t.Fatalf("%+v: a prefix of %d bytes decoded", r, i)
			}
		}
		if _, err := node.DecodeImageRecord(append(b, 0)); err == nil {
			t.Fatal("trailing byte accepted")
		}
	}
}

func FuzzDecodeImageRecord(f *testing.F) {
	f.Add((&node.ImageRecord{Format: "png", Width: 4, Height: 3, Thumb: []byte{1, 2}, Source: "s", Original: []byte("o")}).Encode())
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := node.DecodeImageRecord(b)
		if err != nil {
			return
		}
		r2, err := node.DecodeImageRecord(r.Encode())
		if err != nil || r2.Format != r.Format || r2.Width != r.Width || r2.Height != r.Height || r2.Source != r.Source ||
			!bytes.Equal(r2.Thumb, r.Thumb) || !bytes.Equal(r2.Original, r.Original) || (r2.Original == nil) != (r.Original == nil) {
			t.Fatalf("%x: %+v does not survive a round trip: %+v, %v", b, r, r2, err)
		}
	})
}

// Over the real store: image records are written with their items, kept
// across a restart and through training's move, and deleted with them.
func TestImagesOverPebble(t *testing.T) {
	dir := t.TempDir()
	meta := nodetest.NewMeta()
	e := embedtest.New("fake", 8)
	opts := node.Options{NodeID: "n1", AutoTrainAt: -1, Embedders: map[string]embed.Embedder{"fake": e}}
	st, err := node.OpenPebble(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Open(opts, meta, st)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: "i", Metric: 3, Model: "fake", NList: 2}); err != nil {
		t.Fatal(err)
	}
	var its []node.ImageItem
	for i := range 100 {
		its = append(its, node.ImageItem{Label: fmt.Sprint(i), Data: randomPNG(t, uint64(i), 10, 10), UserID: fmt.Sprintf("p%d", i), Source: fmt.Sprintf("/src/%d.png", i)})
	}
	if _, err := n.InsertImages(ctx, "i", its, true); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Train(ctx, "i", 2); err != nil {
		t.Fatal(err)
	}
	waitState(t, n, "i", node.Ready)
	if err := n.Delete(ctx, "i", "p1"); err != nil {
		t.Fatal(err)
	}
	n.Close()
	st.Close()

	st, err = node.OpenPebble(dir, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err = node.Open(opts, meta, st)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	rec, err := n.Image(ctx, "i", "p7")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Source != "/src/7.png" || !bytes.Equal(rec.Original, its[7].Data) || len(rec.Thumb) == 0 || rec.Format != "png" {
		t.Fatalf("record of p7 after training and a restart: %+v", rec)
	}
	if _, err := n.Image(ctx, "i", "p1"); !errors.Is(err, node.ErrNoItem) {
		t.Fatalf("deleted p1: %v", err)
	}
	res, err := n.SearchImage(ctx, "i", "q", its[42].Data, node.SearchRequest{K: 1, NProbe: 2})
	if err != nil || len(res.Hits) != 1 || res.Hits[0].UserID != "p42" {
		t.Fatalf("search by image: %+v %v", res, err)
	}
}
