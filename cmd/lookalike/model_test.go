package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"lookalike/embed"
	"lookalike/internal/testenv"
)

func TestModelFetchFromTarball(t *testing.T) {
	tgz := filepath.Join(embed.CacheDir(), "npm", embed.NSFWJSTarball)
	testenv.RequireFile(t, tgz, "the "+embed.NSFWJSPackage+" tarball", "run `go run ./cmd/lookalike model fetch`")
	dir := t.TempDir()
	code, out, stderr := runCLI(t, "model", "fetch", "--from", tgz, "--dir", dir, "--name", embed.DefaultModel)
	if code != 0 {
		t.Fatalf("fetch: exit %d: %s", code, stderr)
	}
	m, _ := embed.NSFWJSModel(embed.DefaultModel)
	if !strings.Contains(out, "converted") || !strings.Contains(out, m.Hash) {
		t.Fatalf("fetch said %q", out)
	}
	if err := embed.CheckModelFiles(filepath.Join(dir, embed.DefaultModel), m); err != nil {
		t.Fatal(err)
	}
	// Again: nothing to do, and no tarball needed.
	code, out, stderr = runCLI(t, "model", "fetch", "--from", filepath.Join(dir, "missing.tgz"), "--dir", dir, "--name", embed.DefaultModel)
	if code != 0 || !strings.Contains(out, "already present") {
		t.Fatalf("second fetch: exit %d, %q, %s", code, out, stderr)
	}
	// A damaged model is replaced.
	os.WriteFile(filepath.Join(dir, embed.DefaultModel, "model.onnx"), []byte("junk"), 0o644)
	code, out, stderr = runCLI(t, "model", "fetch", "--from", tgz, "--dir", dir, "--name", embed.DefaultModel)
	if code != 0 || !strings.Contains(out, "replacing") || !strings.Contains(out, "converted") {
		t.Fatalf("repair: exit %d, %q, %s", code, out, stderr)
	}
	code, out, _ = runCLI(t, "model", "list", "--dir", dir)
	if code != 0 || !strings.Contains(out, embed.DefaultModel) || !strings.Contains(out, "1792-d") {
		t.Fatalf("list: exit %d, %q", code, out)
	}
	code, out, _ = runCLI(t, "model", "info", "--dir", dir, "--json", embed.DefaultModel)
	var info struct {
		Config embed.Config `json:"config"`
		SHA256 string       `json:"sha256"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &info) != nil || info.SHA256 != m.Hash || info.Config != m.Config {
		t.Fatalf("info: exit %d, %q", code, out)
	}
}

func TestModelFetchErrors(t *testing.T) {
	dir := t.TempDir()
	if code, _, stderr := runCLI(t, "model", "fetch", "--name", "resnet50", "--dir", dir); code != 2 || !strings.Contains(stderr, "resnet50") {
		t.Fatalf("unknown name: exit %d, %q", code, stderr)
	}
	bad := filepath.Join(dir, "bad.tgz")
	os.WriteFile(bad, []byte("not a tarball"), 0o644)
	code, _, stderr := runCLI(t, "model", "fetch", "--from", bad, "--dir", dir)
	if code != 1 || !strings.Contains(stderr, "SHA-256") {
		t.Fatalf("bad tarball: exit %d, %q", code, stderr)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("a failed fetch left %v", ents)
	}
	code, _, stderr = runCLI(t, "model", "info", "--dir", dir, "nosuch")
	if code != 1 || !strings.Contains(stderr, "lookalike model fetch") {
		t.Fatalf("info of a missing model: exit %d, %q", code, stderr)
	}
}
