package embed

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"lookalike/internal/fsutil"
)

// ConfigFile is the name of a model directory's config.
const ConfigFile = "model.json"

// CacheDir is where lookalike keeps fetched components: $LOOKALIKE_CACHE,
// else $XDG_CACHE_HOME/lookalike, else ~/.cache/lookalike, else (no home
// directory) lookalike-cache under the temporary directory. The same rule
// as the benchmarks' cache (bench.DefaultCacheDir) and the scripts'.
func CacheDir() string {
	if d := os.Getenv("LOOKALIKE_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "lookalike")
	}
	if h, err := os.UserHomeDir(); err == nil && h != "" {
		return filepath.Join(h, ".cache", "lookalike")
	}
	return filepath.Join(os.TempDir(), "lookalike-cache")
}

// ModelsDir is where `lookalike model fetch` writes models: one directory
// per model name under CacheDir()/models.
func ModelsDir() string { return filepath.Join(CacheDir(), "models") }

// DefaultLibrary is the ONNX Runtime library Open loads when
// ModelOptions.Library is empty: $LOOKALIKE_ORT_LIB, else
// CacheDir()/ort/libonnxruntime.so.1, where scripts/fetch-ort.sh puts it.
func DefaultLibrary() string {
	if l := os.Getenv("LOOKALIKE_ORT_LIB"); l != "" {
		return l
	}
	return filepath.Join(CacheDir(), "ort", "libonnxruntime.so.1")
}

// ModelOptions configure Open.
type ModelOptions struct {
	// Library is the ONNX Runtime shared library. Default:
	// $LOOKALIKE_ORT_LIB, else CacheDir()/ort/libonnxruntime.so.1 (where
	// scripts/fetch-ort.sh puts it). The first Open of the process loads
	// the library; later Opens must name the same one.
	Library string
	// IntraOpThreads is the number of threads ONNX Runtime uses inside
	// one run. Default 0: ONNX Runtime's own default (one per core).
	IntraOpThreads int
	// Sessions is the number of ONNX Runtime sessions, each a copy of the
	// model in memory; Run calls beyond it wait for a free one. Default 1.
	Sessions int
}

// EnsureDefaults fills in the defaults documented on each field.
func (o *ModelOptions) EnsureDefaults() {
	if o.Library == "" {
		o.Library = DefaultLibrary()
	}
	if o.Sessions == 0 {
		o.Sessions = 1
	}
}

// Validate reports every problem with o at once.
func (o ModelOptions) Validate() error {
	var probs []string
	if o.IntraOpThreads < 0 || o.IntraOpThreads > 1024 {
		probs = append(probs, fmt.Sprintf("intra-op threads %d, want 0..1024", o.IntraOpThreads))
	}
	if o.Sessions < 1 || o.Sessions > 256 {
		probs = append(probs, fmt.Sprintf("sessions %d, want 1..256", o.Sessions))
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("embed: invalid model options: %v", probs)
}

// LoadConfig reads and validates dir/model.json. A missing file is
// ErrNoModel; an unreadable or invalid one is ErrBadModel.
func LoadConfig(dir string) (Config, error) {
	p := filepath.Join(dir, ConfigFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Config{}, fmt.Errorf("%w: %s does not exist (run `lookalike model fetch` for the default model)", ErrNoModel, p)
	}
	if err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	var c Config
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("%w: %s: %v", ErrBadModel, p, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, fmt.Errorf("%w: %s: %v", ErrBadModel, p, err)
	}
	if filepath.IsAbs(c.File) || !filepath.IsLocal(c.File) {
		return Config{}, fmt.Errorf("%w: %s: file %q must be a path inside the model directory", ErrBadModel, p, c.File)
	}
	return c, nil
}

// EncodeConfig is model.json's content for c: indented JSON and a newline,
// the same bytes for the same config.
func EncodeConfig(c Config) []byte {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		panic(err) // a Config always marshals
	}
	return append(b, '\n')
}

// Hash is a model's identity: the hex SHA-256 of its ONNX bytes.
func Hash(onnx []byte) string {
	s := sha256.Sum256(onnx)
	return hex.EncodeToString(s[:])
}

// Model is an ONNX image model loaded into ONNX Runtime: a pool of
// sessions over the same bytes. It implements Runner; Run is safe for
// concurrent use, up to Sessions runs at a time.
type Model struct {
	cfg      Config
	hash     string
	dir      string
	perBatch int // the model's fixed batch size, or 0 when dynamic

	pool   chan *session
	done   chan struct{} // closed by Close
	closed atomic.Bool
	once   sync.Once
	n      int // sessions
}

// Open loads the model in dir (model.json and the ONNX file it names)
// into ONNX Runtime. Errors wrap ErrNoModel (no such model: run `lookalike
// model fetch`), ErrNoRuntime (no ONNX Runtime library: run
// scripts/fetch-ort.sh) or ErrBadModel (a file that is not ONNX, or whose
// input or output does not match model.json).
func Open(dir string, o ModelOptions) (*Model, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	p := filepath.Join(dir, cfg.File)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist (run `lookalike model fetch` for the default model)", ErrNoModel, p)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	if err := initRuntime(o.Library); err != nil {
		return nil, err
	}
	perBatch, err := checkModel(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, p, err)
	}
	m := &Model{cfg: cfg, hash: Hash(data), dir: dir, perBatch: perBatch, n: o.Sessions,
		pool: make(chan *session, o.Sessions), done: make(chan struct{})}
	for range o.Sessions {
		s, err := newSession(data, cfg, o.IntraOpThreads)
		if err != nil {
			m.destroy()
			return nil, fmt.Errorf("%w: %s: %v", ErrBadModel, p, err)
		}
		m.pool <- s
	}
	return m, nil
}

// Config returns the model's config.
func (m *Model) Config() Config { return m.cfg }

// Hash returns the hex SHA-256 of the model's ONNX bytes.
func (m *Model) Hash() string { return m.hash }

// Dir returns the directory the model was opened from.
func (m *Model) Dir() string { return m.dir }

// Run takes n images of Size² × 3 float32 each, in the config's layout,
// already normalised, and returns n × Dim float32 (not normalised). It
// blocks while all sessions are busy, and returns ErrClosed once Close
// has begun.
func (m *Model) Run(batch []float32, n int) ([]float32, error) {
	per := m.cfg.Size * m.cfg.Size * 3
	if n < 1 || len(batch) != n*per {
		return nil, fmt.Errorf("embed: run: %d floats for %d images of %d", len(batch), n, per)
	}
	var s *session
	select {
	case s = <-m.pool:
	case <-m.done:
		return nil, ErrClosed
	}
	defer func() { m.pool <- s }()
	if m.closed.Load() {
		return nil, ErrClosed
	}
	if m.perBatch == 0 {
		return s.run(batch, n)
	}
	// A model with a fixed batch dimension (1) runs one image at a time.
	out := make([]float32, 0, n*m.cfg.Dim)
	for i := range n {
		o, err := s.run(batch[i*per:(i+1)*per], 1)
		if err != nil {
			return nil, err
		}
		out = append(out, o...)
	}
	return out, nil
}

// Close waits for runs in progress and frees the sessions. Later Runs
// return ErrClosed. The process's ONNX Runtime environment stays.
func (m *Model) Close() error {
	m.once.Do(func() {
		m.closed.Store(true)
		close(m.done)
		// Collect every session: each Run returns its own before Close
		// can take it.
		for range m.n {
			s := <-m.pool
			s.destroy()
		}
	})
	return nil
}

// destroy frees the sessions made so far (Open's failure path).
func (m *Model) destroy() {
	for {
		select {
		case s := <-m.pool:
			s.destroy()
		default:
			return
		}
	}
}

// WriteModel writes a model directory, dir/model.json and dir/c.File,
// atomically: into a temporary sibling directory, synced, then renamed
// into place, replacing an existing dir. A reader sees the old model or
// the new one, never half of one.
func WriteModel(dir string, c Config, onnx []byte) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if !filepath.IsLocal(c.File) || filepath.Dir(c.File) != "." {
		return fmt.Errorf("embed: write model: file %q must be a plain file name", c.File)
	}
	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("embed: write model: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("embed: write model: %w", err)
	}
	defer os.RemoveAll(tmp) // after the rename, nothing is left there
	for _, f := range []struct {
		name string
		data []byte
	}{{c.File, onnx}, {ConfigFile, EncodeConfig(c)}} {
		if err := writeSynced(filepath.Join(tmp, f.name), f.data); err != nil {
			return fmt.Errorf("embed: write model: %w", err)
		}
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("embed: write model: %w", err)
	}
	if err := fsutil.SyncDir(tmp); err != nil {
		return fmt.Errorf("embed: write model: %w", err)
	}
	// A directory cannot be renamed over a non-empty one: move the old
	// one aside first.
	old := ""
	if _, err := os.Stat(dir); err == nil {
		old = tmp + ".old"
		if err := os.Rename(dir, old); err != nil {
			return fmt.Errorf("embed: write model: %w", err)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		if old != "" {
			os.Rename(old, dir)
		}
		return fmt.Errorf("embed: write model: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	if err := fsutil.SyncDir(parent); err != nil {
		return fmt.Errorf("embed: write model: %w", err)
	}
	return nil
}

func writeSynced(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// CheckModelFiles reports whether dir holds model m as ConvertNSFWJS
// makes it: the same config and ONNX bytes of the pinned hash. Nothing is
// loaded into ONNX Runtime.
func CheckModelFiles(dir string, m ConvertedModel) error {
	c, err := LoadConfig(dir)
	if err != nil {
		return err
	}
	if c != m.Config {
		return fmt.Errorf("%w: %s: config %+v, want %+v", ErrBadModel, dir, c, m.Config)
	}
	b, err := os.ReadFile(filepath.Join(dir, c.File))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s lacks %s", ErrNoModel, dir, c.File)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadModel, err)
	}
	if h := Hash(b); h != m.Hash {
		return fmt.Errorf("%w: %s: %s has SHA-256 %s, want %s", ErrBadModel, dir, c.File, h, m.Hash)
	}
	return nil
}
