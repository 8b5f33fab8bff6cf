package e2e

import (
	"bytes"
	"image"
	"image/png"
	"strings"
	"testing"

	"lookalike/proto"
)

// TestModelLoadFailure: the default model is found but ONNX Runtime is
// not (a wrong LOOKALIKE_ORT_LIB). The node still starts and serves
// vectors; image collections can be created (the model's identity comes
// from its files), and uploads and image searches answer 503 unavailable
// with the load's error, not a 400 blaming the image.
func TestModelLoadFailure(t *testing.T) {
	requireModel(t)
	s := newServer(t, "--quiet")
	s.env = []string{"LOOKALIKE_ORT_LIB=/nonexistent/libonnxruntime.so.1"}
	s.start()
	s.must("POST", "/v1/collections", map[string]any{"name": "v", "metric": "l2", "dim": 2}, 201, nil)
	s.must("POST", "/v1/collections/v/vectors", map[string]any{"items": []map[string]any{{"id": "a", "vector": []float32{1, 2}}}}, 200, nil)
	s.must("POST", "/v1/collections", map[string]any{"name": "pics", "metric": "cosine", "model": "mobilenet_v2_mid"}, 201, nil)
	var b bytes.Buffer
	png.Encode(&b, image.NewGray(image.Rect(0, 0, 8, 8)))
	st, code, msg := upload(t, s, "/v1/collections/pics/images", "x.png", b.String())
	if st != 503 || code != proto.Unavailable || !strings.Contains(msg, "failed to load") {
		t.Fatalf("upload: %d %s %q, want 503 unavailable naming the load failure", st, code, msg)
	}
	st, code, msg = upload(t, s, "/v1/collections/pics/search", "x.png", b.String())
	if st != 503 || code != proto.Unavailable {
		t.Fatalf("search by image: %d %s %q, want 503 unavailable", st, code, msg)
	}
	s.stop()
}
