package embedtest

import (
	"path/filepath"
	"testing"

	"lookalike/embed"
	"lookalike/internal/testenv"
)

// RequireDefaultModel skips the test (or, under
// LOOKALIKE_REQUIRE_COMPONENTS=1, fails it) without the ONNX Runtime
// library (embed.DefaultLibrary) and the default model, and returns the
// model's directory.
func RequireDefaultModel(t testing.TB) string {
	t.Helper()
	testenv.RequireFile(t, embed.DefaultLibrary(), "ONNX Runtime", "run scripts/fetch-ort.sh")
	dir := filepath.Join(embed.ModelsDir(), embed.DefaultModel)
	testenv.RequireFile(t, filepath.Join(dir, embed.ConfigFile), "the default model", "run `lookalike model fetch`")
	return dir
}
