//go:build faiss

package faiss

import (
	"errors"
	"fmt"
	"io"
	"time"

	"lookalike/bench"
	"lookalike/ivf"
)

// ServeEngine serves this binary's NativeEngine over r (requests) and w
// (responses) with the faiss-serve protocol (see protocol.go) until the
// client sends quit or closes r; it is the body of the hidden subcommand
// `lookalike bench faiss-serve`, which passes os.Stdin, os.Stdout and
// NativeEngine. name must be NativeEngine: a binary serves only the FAISS
// it links. Engine errors go back to the client and serving goes on; a
// broken stream ends it with an error. Nothing else may write to w.
func ServeEngine(r io.Reader, w io.Writer, name string) error {
	if name != NativeEngine {
		return fmt.Errorf("faiss: serve %q: this binary links %q (build with -tags 'faiss faiss_avx2' for faiss-avx2, see docs/faiss.md)", name, NativeEngine)
	}
	s := &server{c: newWire(r, w), name: name}
	defer func() {
		if s.eng != nil {
			s.eng.Close()
		}
	}()
	c := s.c
	c.put([]byte(protoMagic))
	c.putU16(protoVersion)
	c.putU16(uint16(len(name)))
	c.put([]byte(name))
	if err := c.flush(); err != nil {
		return fmt.Errorf("faiss: serve: hello: %w", err)
	}
	for {
		op := c.u8()
		if c.err != nil {
			if errors.Is(c.err, io.EOF) {
				return nil // the client went away between requests
			}
			return fmt.Errorf("faiss: serve: %w", c.err)
		}
		done, err := s.handle(op)
		if err != nil {
			return fmt.Errorf("faiss: serve: %w", err)
		}
		if done {
			return nil
		}
	}
}

type server struct {
	c    *wire
	name string
	cfg  bench.EngineConfig
	eng  *Engine
	q    []float32
}

// handle reads one request's body and answers it; done is true after quit.
// err is a broken stream, never an engine error.
func (s *server) handle(op byte) (done bool, err error) {
	c := s.c
	var reply func()
	var opErr error
	switch op {
	case opConfig:
		cfg := bench.EngineConfig{Dim: int(c.u32()), NList: int(c.u32()), Metric: ivf.Metric(c.u8())}
		cfg.Seed = c.i64()
		cfg.Refine = int(c.u32())
		if c.err != nil {
			break
		}
		if s.eng != nil {
			s.eng.Close()
			s.eng = nil
		}
		s.eng, opErr = New(s.name, cfg, Options{})
	case opBuild:
		train := c.floats(nil, c.u64())
		base := c.floats(nil, c.u64())
		if c.err != nil {
			break
		}
		if s.eng == nil {
			opErr = errors.New("faiss: build before config")
			break
		}
		if opErr = s.eng.Build(train, base); opErr == nil {
			tr, ad := s.eng.BuildTimes()
			reply = func() {
				c.putI64(tr.Nanoseconds())
				c.putI64(ad.Nanoseconds())
			}
		}
	case opSearch:
		k, nprobe := int(c.u32()), int(c.u32())
		s.q = c.floats(s.q, uint64(c.u32()))
		if c.err != nil {
			break
		}
		if s.eng == nil {
			opErr = errors.New("faiss: search before config")
			break
		}
		t0 := time.Now()
		ids, err := s.eng.Search(s.q, k, nprobe)
		ns := time.Since(t0).Nanoseconds()
		opErr = err
		reply = func() {
			c.putI64(ns)
			c.putU32(uint32(len(ids)))
			for _, id := range ids {
				c.putI64(id)
			}
		}
	case opMemory:
		var m int64
		if s.eng != nil {
			m = s.eng.MemoryBytes()
		}
		reply = func() { c.putI64(m) }
	case opQuit:
		done = true
	default:
		return false, fmt.Errorf("%w: unknown request %q", ErrProtocol, op)
	}
	if c.err != nil {
		return false, c.err
	}
	if opErr != nil {
		msg := opErr.Error()
		c.putU8(statusErr)
		c.putU32(uint32(len(msg)))
		c.put([]byte(msg))
	} else {
		c.putU8(statusOK)
		if reply != nil {
			reply()
		}
	}
	return done, c.flush()
}
