package main

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"lookalike/embed"
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
// it is absent or cannot be opened, the node serves without image models
// and the log says what to run; a named directory that fails is an error.
func openModels(dirs []string, maxImageBytes int, log *slog.Logger) (*servedModels, error) {
	s := &servedModels{embedders: map[string]embed.Embedder{}}
	explicit := len(dirs) > 0
	if !explicit {
		def := filepath.Join(embed.ModelsDir(), embed.DefaultModel)
		if _, err := os.Stat(filepath.Join(def, embed.ConfigFile)); err != nil {
			log.Info("no image model: image collections are unavailable; run `lookalike model fetch` (and scripts/fetch-ort.sh for ONNX Runtime), or pass --model DIR", "looked_in", def)
			return s, nil
		}
		dirs = []string{def}
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
