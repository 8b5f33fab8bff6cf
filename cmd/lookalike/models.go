package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"lookalike/embed"
	"lookalike/node"
)

// servedModels are the image models a node embeds with.
type servedModels struct {
	embedders map[string]embed.Embedder
	closers   []func() error
}

func (s *servedModels) Close() error {
	var errs []error
	for i := len(s.closers) - 1; i >= 0; i-- {
		errs = append(errs, s.closers[i]())
	}
	return errors.Join(errs...)
}

// openModels opens each model directory (embed.Open) behind a batching
// pipeline (embed.NewPipeline), by model name. Without dirs it tries the
// default model in the cache (embed.ModelsDir()/mobilenet_v2_mid): when
// it is absent or its files are unusable, the node serves without image
// models and the log says what to run; a named directory that fails is an
// error. "none" serves no model.
//
// The default model is loaded into ONNX Runtime in the background (2 s
// and more on a busy machine): the node serves vectors at once, and the
// first image request waits for the load. Named directories load before
// the node starts, so that a bad one stops it with a clear error.
func openModels(dirs []string, maxImageBytes int, log *slog.Logger) (*servedModels, error) {
	s := &servedModels{embedders: map[string]embed.Embedder{}}
	if len(dirs) == 1 && dirs[0] == "none" {
		log.Info("no image model (--model none): image collections are unavailable")
		return s, nil
	}
	explicit := len(dirs) > 0
	if !explicit {
		def := filepath.Join(embed.ModelsDir(), embed.DefaultModel)
		if _, err := os.Stat(filepath.Join(def, embed.ConfigFile)); err != nil {
			log.Info("no image model: image collections are unavailable; run `lookalike model fetch` (and scripts/fetch-ort.sh for ONNX Runtime), or pass --model DIR", "looked_in", def)
			return s, nil
		}
		e, err := openModelBackground(def, maxImageBytes, log)
		if err != nil {
			log.Warn("the default image model cannot be used: image collections are unavailable (`lookalike model fetch` fetches it)", "dir", def, "err", err)
			return s, nil
		}
		s.closers = append(s.closers, e.Close)
		s.embedders[e.ModelName()] = e
		log.Info("image model (loading in the background)", "name", e.ModelName(), "dim", e.Dim(), "hash", e.ModelHash(), "dir", def)
		return s, nil
	}
	for _, dir := range dirs {
		e, closeFn, err := openModel(dir, maxImageBytes)
		if err != nil {
			if !explicit {
				log.Warn("the default image model cannot be used: image collections are unavailable (scripts/fetch-ort.sh fetches ONNX Runtime; `lookalike model fetch` the model)", "dir", dir, "err", err)
				return s, nil
			}
			s.Close()
			return nil, fmt.Errorf("--model %s: %w", dir, err)
		}
		s.closers = append(s.closers, closeFn)
		if _, dup := s.embedders[e.ModelName()]; dup {
			s.Close()
			return nil, fmt.Errorf("--model %s: a second model named %q", dir, e.ModelName())
		}
		s.embedders[e.ModelName()] = e
		log.Info("image model", "name", e.ModelName(), "dim", e.Dim(), "hash", e.ModelHash(), "dir", dir)
	}
	return s, nil
}

func openModel(dir string, maxImageBytes int) (embed.Embedder, func() error, error) {
	m, err := embed.Open(dir, embed.ModelOptions{})
	if err != nil {
		return nil, nil, err
	}
	p, err := embed.NewPipeline(m, embed.PipelineOptions{
		Hash:   m.Hash(),
		Limits: embed.Limits{MaxBytes: int64(maxImageBytes)},
	})
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return p, func() error { return errors.Join(p.Close(), m.Close()) }, nil
}

// lazyEmbedder is a model whose identity is known (model.json and the
// ONNX file's hash) while ONNX Runtime loads it in the background; Prepare
// and Embed wait for the load, and fail with its error if it failed.
type lazyEmbedder struct {
	name, hash string
	dim        int
	ready      chan struct{}
	e          embed.Embedder // set before ready is closed
	err        error
	closeFn    func() error
}

func openModelBackground(dir string, maxImageBytes int, log *slog.Logger) (*lazyEmbedder, error) {
	cfg, err := embed.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	onnx, err := os.ReadFile(filepath.Join(dir, cfg.File))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", embed.ErrNoModel, err)
	}
	l := &lazyEmbedder{name: cfg.Name, hash: embed.Hash(onnx), dim: cfg.Dim, ready: make(chan struct{})}
	go func() {
		defer close(l.ready)
		t0 := time.Now()
		e, closeFn, err := openModel(dir, maxImageBytes)
		switch {
		case err != nil:
			l.err = fmt.Errorf("%w: image model %s failed to load: %w", node.ErrNoEmbedder, cfg.Name, err)
			log.Warn("the image model failed to load: image requests will fail", "dir", dir, "err", err)
		case e.ModelHash() != l.hash:
			l.err = fmt.Errorf("%w: image model %s changed on disk while loading", node.ErrNoEmbedder, cfg.Name)
			_ = closeFn()
		default:
			l.e, l.closeFn = e, closeFn
			log.Info("image model loaded", "name", cfg.Name, "took", time.Since(t0).Round(time.Millisecond))
		}
	}()
	return l, nil
}

func (l *lazyEmbedder) wait(ctx context.Context) error {
	select {
	case <-l.ready:
		return l.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *lazyEmbedder) Prepare(data []byte) (*embed.Prepared, error) {
	if err := l.wait(context.Background()); err != nil {
		return nil, err
	}
	return l.e.Prepare(data)
}

func (l *lazyEmbedder) Embed(ctx context.Context, lane embed.Lane, imgs []*embed.Prepared) ([][]float32, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.e.Embed(ctx, lane, imgs)
}

func (l *lazyEmbedder) ModelName() string { return l.name }
func (l *lazyEmbedder) ModelHash() string { return l.hash }
func (l *lazyEmbedder) Dim() int          { return l.dim }

// Close waits for the load and closes what it opened.
func (l *lazyEmbedder) Close() error {
	<-l.ready
	if l.closeFn != nil {
		return l.closeFn()
	}
	return nil
}
