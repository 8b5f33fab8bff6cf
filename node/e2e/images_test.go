package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lookalike/embed"
	"lookalike/embed/embedtest"
	"lookalike/internal/testenv"
	"lookalike/proto"
)

// requireModel is embedtest.RequireDefaultModel.
var requireModel = embedtest.RequireDefaultModel

// shapesDir writes n PNGs of distinct shapes and colours into a new
// directory, two levels deep, and returns it.
func shapesDir(t *testing.T, n int) string {
	dir := t.TempDir()
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 96, 64))
		bg := color.RGBA{uint8(40 * i), uint8(255 - 25*i), uint8(90 + 13*i), 255}
		fg := color.RGBA{uint8(255 - 20*i), uint8(30 * i), uint8(200 - 15*i), 255}
		for y := range 64 {
			for x := range 96 {
				c := bg
				if (x/(4+i))%2 == (y/(3+i))%2 {
					c = fg
				}
				img.Set(x, y, c)
			}
		}
		var b bytes.Buffer
		png.Encode(&b, img)
		p := filepath.Join(dir, []string{"a", "b/c"}[i%2], string(rune('a'+i))+".png")
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// upload posts one multipart request of (file name, bytes) pairs.
func upload(t *testing.T, s *server, path string, files ...string) (int, proto.Code, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for i := 0; i+1 < len(files); i += 2 {
		fw, _ := mw.CreateFormFile("file", files[i])
		io.WriteString(fw, files[i+1])
	}
	mw.Close()
	st, code, err := s.call("POST", path, mw.FormDataContentType(), body.Bytes(), nil)
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	return st, code, msg
}

// TestImagesEndToEnd: lookalike serve with the real default model;
// import a directory, import it again (nothing re-sent), search by an
// image from the command line; bad uploads of every kind get their 4xx
// and store nothing; a node serving another model under the same name is
// refused with 409.
func TestImagesEndToEnd(t *testing.T) {
	modelDir := requireModel(t)
	s := startServer(t, "--quiet", "--model", modelDir, "--max-body-bytes", "4000000", "--max-image-bytes", "1000000")
	var col proto.Collection
	s.must("POST", "/v1/collections", map[string]any{"name": "img", "metric": "cosine", "model": embed.DefaultModel}, 201, &col)
	if col.Dim != 1792 || len(col.ModelHash) != 64 {
		t.Fatalf("created %+v", col)
	}
	st, code, err := s.call("POST", "/v1/collections", proto.JSONContentType, []byte(`{"name":"x","metric":"cosine","model":"resnet50"}`), nil)
	if st != 400 || code != proto.BadRequest || !strings.Contains(err.Error(), "this server knows "+embed.DefaultModel) {
		t.Fatalf("unknown model: %d %s %v", st, code, err)
	}
	s.must("POST", "/v1/collections", map[string]any{"name": "vec", "metric": "l2", "dim": 4}, 201, nil)

	dir := shapesDir(t, 8)
	out, err := runBin("import", "--server", s.http, "--collection", "img", "--quiet", "--batch", "3", dir)
	if err != nil || !strings.Contains(out, "8 images found; 8 imported, 0 already present, 0 bad") {
		t.Fatalf("import: %v\n%s", err, out)
	}
	out, err = runBin("import", "--server", s.http, "--collection", "img", "--quiet", dir)
	if err != nil || !strings.Contains(out, "0 imported, 8 already present") {
		t.Fatalf("import again: %v\n%s", err, out)
	}
	q := filepath.Join(dir, "b", "c", "d.png")
	out, err = runBin("search", "--server", s.http, "--collection", "img", "--k", "3", q)
	if err != nil || !strings.HasPrefix(out, "1\t1.0000\tb/c/d.png\t"+q) && !strings.HasPrefix(out, "1\t0.9999\tb/c/d.png\t"+q) {
		t.Fatalf("search: %v\n%s", err, out)
	}
	if st, _, _ := s.call("GET", "/v1/collections/img/items/b%2Fc%2Fd.png/thumbnail", "", nil, nil); st != 200 {
		t.Fatalf("thumbnail: %d", st)
	}

	good, _ := os.ReadFile(q)
	bomb := []byte("\x89PNG\r\n\x1a\n")
	ihdr := binary.BigEndian.AppendUint32([]byte("IHDR"), 30000)
	ihdr = append(binary.BigEndian.AppendUint32(ihdr, 30000), 8, 2, 0, 0, 0)
	bomb = binary.BigEndian.AppendUint32(bomb, 13)
	bomb = binary.BigEndian.AppendUint32(append(bomb, ihdr...), crc32.ChecksumIEEE(ihdr))
	for _, tc := range []struct {
		name   string
		files  []string
		status int
		want   string
	}{
		{"not an image", []string{"ok.png", string(good), "notes.txt", "just text"}, 400, `file[1] ("notes.txt")`},
		{"truncated", []string{"cut.png", string(good[:len(good)/2])}, 400, "truncated"},
		{"unsupported", []string{"x.tif", "II*\x00\x08\x00\x00\x00" + strings.Repeat("\x00", 64)}, 400, "unsupported"},
		{"30000x30000", []string{"bomb.png", string(bomb)}, 413, "too large"},
		{"empty", []string{"empty.png", ""}, 400, "empty file"},
		{"huge file", []string{"huge.png", strings.Repeat("x", 1500000)}, 413, "over 1000000 bytes"},
		{"huge upload", []string{"1.png", strings.Repeat("x", 900000), "2.png", strings.Repeat("x", 900000), "3.png", strings.Repeat("x", 900000), "4.png", strings.Repeat("x", 900000), "5.png", strings.Repeat("x", 900000)}, 413, "body limit"},
	} {
		st, _, msg := upload(t, s, "/v1/collections/img/images", tc.files...)
		if st != tc.status || !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, st, msg, tc.status, tc.want)
		}
	}
	if st, _, msg := upload(t, s, "/v1/collections/vec/images", "ok.png", string(good)); st != 400 || !strings.Contains(msg, "vector collection") {
		t.Errorf("image to a vector collection: %d %s", st, msg)
	}
	if st, _, err := s.call("POST", "/v1/collections/img/vectors", proto.JSONContentType, []byte(`{"items":[{"vector":[1,2,3,4]}]}`), nil); st != 400 || !strings.Contains(err.Error(), "image collection") {
		t.Errorf("vectors to an image collection: %d %v", st, err)
	}
	if c := s.collection("img"); c.Count != 8 {
		t.Fatalf("count %d after bad uploads, want 8", c.Count)
	}
	if c := s.collection("vec"); c.Count != 0 {
		t.Fatalf("vector collection count %d", c.Count)
	}
	s.must("GET", "/healthz", nil, 200, nil)

	// Another model under the same name (the NCHW variant, renamed): its
	// hash differs, so the node refuses to embed for the collection.
	s.stop()
	alt := t.TempDir()
	nchw := filepath.Join(embed.ModelsDir(), embed.DefaultModel+"_nchw")
	testenv.RequireFile(t, filepath.Join(nchw, embed.ConfigFile), "the NCHW variant of the default model", "run `lookalike model fetch`")
	var cfg map[string]any
	b, _ := os.ReadFile(filepath.Join(nchw, embed.ConfigFile))
	json.Unmarshal(b, &cfg)
	cfg["name"] = embed.DefaultModel
	b, _ = json.Marshal(cfg)
	os.WriteFile(filepath.Join(alt, embed.ConfigFile), b, 0o644)
	onnx, _ := os.ReadFile(filepath.Join(nchw, cfg["file"].(string)))
	os.WriteFile(filepath.Join(alt, cfg["file"].(string)), onnx, 0o644)
	s.args = []string{"--quiet", "--model", alt}
	s.restart()
	if st, code, msg := upload(t, s, "/v1/collections/img/images", "ok.png", string(good)); st != 409 || code != proto.Conflict || !strings.Contains(msg, col.ModelHash) {
		t.Fatalf("upload with another model: %d %s %s", st, code, msg)
	}
	if st, _, _ := upload(t, s, "/v1/collections/img/search", "q.png", string(good)); st != 409 {
		t.Fatalf("search with another model: %d", st)
	}
	// Search by id needs no model.
	s.must("POST", "/v1/collections/img/search", map[string]any{"id": "a/a.png", "k": 1}, 200, nil)
}
