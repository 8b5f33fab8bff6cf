//go:build faiss

package faiss

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"lookalike/bench"
	"lookalike/ivf"
)

// AVX2Engine is the name of FAISS built with AVX2 kernels.
const AVX2Engine = "faiss-avx2"

// Remote is an engine served by another process through the faiss-serve
// protocol: the faiss-avx2 binary, whose FAISS cannot be linked into the
// same binary as Debian's. Like every Engine it is used from one goroutine.
//
// A search crosses two pipes and wakes two processes (20 µs for a bare
// round trip here, 50–170 µs with a search in between on a busy 2-vCPU VM;
// see docs/faiss.md), so the server times each search itself around its
// engine's Search call and Remote reports that as LastSearchNanos: Remote
// implements bench.SelfTimer, and the harness uses it instead of its own
// clock.
type Remote struct {
	name   string
	cfg    bench.EngineConfig
	c      *wire
	w      io.Closer // the child's stdin
	cmd    *exec.Cmd // nil for NewRemote
	nanos  int64
	trainT time.Duration
	addT   time.Duration
	err    error // sticky: the stream broke
}

var (
	_ bench.Engine                         = (*Remote)(nil)
	_ interface{ LastSearchNanos() int64 } = (*Remote)(nil) // bench.SelfTimer
	_ interface {
		BuildTimes() (train, add time.Duration)
	} = (*Remote)(nil) // bench.BuildTimer
)

// AVX2Binary is the path of the faiss-avx2 binary: $LOOKALIKE_FAISS_AVX2_BIN,
// or <cache>/faiss-avx2/lookalike-faiss-avx2 where <cache> is
// $LOOKALIKE_CACHE or ~/.cache/lookalike, as scripts/build-faiss-avx2.sh
// writes it.
func AVX2Binary() string {
	if p := os.Getenv("LOOKALIKE_FAISS_AVX2_BIN"); p != "" {
		return p
	}
	cache := os.Getenv("LOOKALIKE_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = "."
		}
		cache = filepath.Join(home, ".cache", "lookalike")
	}
	return filepath.Join(cache, "faiss-avx2", "lookalike-faiss-avx2")
}

// StartRemote starts `bin bench faiss-serve` and configures the engine
// name it serves with cfg. The child's stderr is this process's.
func StartRemote(name, bin string, cfg bench.EngineConfig) (*Remote, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%w: %v (build it with scripts/build-faiss-avx2.sh or set LOOKALIKE_FAISS_AVX2_BIN)", ErrNoBinary, err)
	}
	return StartCommand(name, exec.Command(bin, "bench", "faiss-serve"), cfg)
}

// StartCommand starts cmd, which must run ServeEngine on its stdin and
// stdout, and configures the engine name it serves with cfg.
func StartCommand(name string, cmd *exec.Cmd, cfg bench.EngineConfig) (*Remote, error) {
	if cmd.Stderr == nil {
		cmd.Stderr = os.Stderr
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("faiss: %s: %w", name, err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("faiss: %s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("faiss: %s: start %s: %w", name, cmd.Path, err)
	}
	r, err := newRemote(name, stdout, stdin, cmd, cfg)
	if err != nil {
		stdin.Close()
		waitOrKill(cmd, 5*time.Second)
		return nil, err
	}
	return r, nil
}

// NewRemote talks the faiss-serve protocol over r and w (from and to a
// ServeEngine) and configures the engine name with cfg. Close closes w.
func NewRemote(name string, r io.Reader, w io.WriteCloser, cfg bench.EngineConfig) (*Remote, error) {
	return newRemote(name, r, w, nil, cfg)
}

func newRemote(name string, r io.Reader, w io.WriteCloser, cmd *exec.Cmd, cfg bench.EngineConfig) (*Remote, error) {
	e := &Remote{name: name, cfg: cfg, c: newWire(r, w), w: w, cmd: cmd}
	c := e.c
	magic := string(c.read(len(protoMagic)))
	version := c.u16()
	served := c.str(false)
	if c.err != nil {
		return nil, fmt.Errorf("faiss: %s: no hello from the server (does it have the `bench faiss-serve` subcommand?): %w", name, c.err)
	}
	if magic != protoMagic || version != protoVersion {
		return nil, fmt.Errorf("%w: %s: hello %q version %d, want %q version %d", ErrProtocol, name, magic, version, protoMagic, protoVersion)
	}
	if served != name {
		return nil, fmt.Errorf("%w: %s: the server runs %q", ErrProtocol, name, served)
	}
	c.putU8(opConfig)
	c.putU32(uint32(cfg.Dim))
	c.putU32(uint32(cfg.NList))
	c.putU8(byte(cfg.Metric))
	c.putI64(cfg.Seed)
	c.putU32(uint32(cfg.Refine))
	if err := e.roundTrip(); err != nil {
		e.Close()
		return nil, err
	}
	return e, nil
}

// roundTrip flushes the request and reads the status; on an engine error
// it reads the message and returns it wrapped in ErrRemote.
func (e *Remote) roundTrip() error {
	c := e.c
	c.flush()
	status := c.u8()
	if status == statusErr {
		msg := c.str(true)
		if c.err == nil {
			return fmt.Errorf("%w %s: %s", ErrRemote, e.name, msg)
		}
	}
	if c.err == nil && status != statusOK {
		c.err = fmt.Errorf("%w: status %d", ErrProtocol, status)
	}
	if c.err != nil {
		e.err = fmt.Errorf("faiss: %s: %w", e.name, c.err)
		return e.err
	}
	return nil
}

// Name is the name given to StartRemote or NewRemote.
func (e *Remote) Name() string { return e.name }

// Build sends train and base to the server, which builds its engine.
func (e *Remote) Build(train, base []float32) error {
	if e.err != nil {
		return e.err
	}
	c := e.c
	c.putU8(opBuild)
	c.putU64(uint64(len(train)))
	c.putFloats(train)
	c.putU64(uint64(len(base)))
	c.putFloats(base)
	if err := e.roundTrip(); err != nil {
		return err
	}
	tr, ad := c.i64(), c.i64()
	if c.err != nil {
		e.err = fmt.Errorf("faiss: %s: %w", e.name, c.err)
		return e.err
	}
	e.trainT, e.addT = time.Duration(tr), time.Duration(ad)
	return nil
}

// BuildTimes are the server engine's train and add durations, without the
// process start and the transfer of the vectors that Build's wall time
// includes; Remote implements bench.BuildTimer.
func (e *Remote) BuildTimes() (train, add time.Duration) { return e.trainT, e.addT }

// Search asks the server for the k nearest base rows of q. The server's
// own time for the search is then LastSearchNanos.
func (e *Remote) Search(q []float32, k, nprobe int) ([]int64, error) {
	if e.err != nil {
		return nil, e.err
	}
	switch {
	case len(q) != e.cfg.Dim:
		return nil, fmt.Errorf("faiss: %w: got %d components, want %d", ivf.ErrDimension, len(q), e.cfg.Dim)
	case k < 1 || k > ivf.MaxK:
		return nil, fmt.Errorf("faiss: %w: got %d", ivf.ErrBadK, k)
	case nprobe < 1 || nprobe > e.cfg.NList:
		return nil, fmt.Errorf("faiss: %w: got %d for nlist %d", ivf.ErrBadNProbe, nprobe, e.cfg.NList)
	}
	c := e.c
	c.putU8(opSearch)
	c.putU32(uint32(k))
	c.putU32(uint32(nprobe))
	c.putU32(uint32(len(q)))
	c.putFloats(q)
	if err := e.roundTrip(); err != nil {
		return nil, err
	}
	nanos := c.i64()
	n := c.u32()
	if c.err == nil && n > uint32(k) {
		c.err = fmt.Errorf("%w: %d ids for k %d", ErrProtocol, n, k)
	}
	ids := make([]int64, 0, n)
	for range n {
		if c.err != nil {
			break
		}
		ids = append(ids, c.i64())
	}
	if c.err != nil {
		e.err = fmt.Errorf("faiss: %s: %w", e.name, c.err)
		return nil, e.err
	}
	e.nanos = nanos
	return ids, nil
}

// LastSearchNanos is how long the server's engine took for the last
// successful Search, pipe excluded.
func (e *Remote) LastSearchNanos() int64 { return e.nanos }

// MemoryBytes is the server engine's MemoryBytes, or 0 when the stream is
// broken.
func (e *Remote) MemoryBytes() int64 {
	if e.err != nil {
		return 0
	}
	e.c.putU8(opMemory)
	if e.roundTrip() != nil {
		return 0
	}
	m := e.c.i64()
	if e.c.err != nil {
		e.err = fmt.Errorf("faiss: %s: %w", e.name, e.c.err)
		return 0
	}
	return m
}

// Close tells the server to quit, closes its input and waits for the child
// process (killing it after 5 s). It is safe to call more than once.
func (e *Remote) Close() error {
	if e.w == nil {
		return nil
	}
	var err error
	if e.err == nil {
		e.c.putU8(opQuit)
		err = e.roundTrip()
		e.err = ErrClosed
	}
	if cerr := e.w.Close(); err == nil {
		err = cerr
	}
	e.w = nil
	if e.cmd != nil {
		if werr := waitOrKill(e.cmd, 5*time.Second); err == nil && werr != nil {
			err = fmt.Errorf("faiss: %s: %w", e.name, werr)
		}
	}
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	return err
}

// waitOrKill waits for cmd to exit, killing it after d.
func waitOrKill(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("killed after %v: it did not exit", d)
	}
}
