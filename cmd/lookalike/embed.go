package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"lookalike/embed"
)

func init() {
	extraCommands = append(extraCommands, func(root *cobra.Command) { root.AddCommand(newEmbedCmd()) })
}

// modelDir resolves --model: a bare name is a model in the models
// directory (embed.ModelsDir()), anything with a path separator is a
// directory.
func modelDir(nameOrDir string) string {
	if nameOrDir == "" {
		nameOrDir = embed.DefaultModel
	}
	if !strings.ContainsRune(nameOrDir, filepath.Separator) && nameOrDir != "." && nameOrDir != ".." {
		return filepath.Join(embed.ModelsDir(), nameOrDir)
	}
	return nameOrDir
}

// embedLine is one line of `lookalike embed`'s output.
type embedLine struct {
	File   string    `json:"file"`
	Dim    int       `json:"dim"`
	Vector []float32 `json:"vector"`
}

// embedFiles embeds files with p and writes one JSON line per embedded
// file to out, in the order of files. Up to inFlight files are read,
// prepared and queued at once (each an Embed call of its own, which the
// pipeline gathers into batches); at most GOMAXPROCS of them decode at a
// time. A file that cannot be read, decoded or embedded is reported on
// errw and does not stop the others; the result counts them.
func embedFiles(ctx context.Context, p *embed.Pipeline, files []string, inFlight int, out, errw io.Writer) (failed int, err error) {
	type result struct {
		vec  []float32
		err  error
		done chan struct{}
	}
	res := make([]result, len(files))
	for i := range res {
		res[i].done = make(chan struct{})
	}
	slots := make(chan struct{}, max(inFlight, 1))
	decoders := make(chan struct{}, runtime.GOMAXPROCS(0))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for i, f := range files {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				for j := i; j < len(files); j++ {
					res[j].err = ctx.Err()
					close(res[j].done)
				}
				return
			}
			wg.Go(func() {
				defer func() { <-slots }()
				defer close(res[i].done)
				decoders <- struct{}{}
				var img *embed.Prepared
				data, err := os.ReadFile(f)
				if err == nil {
					img, err = p.Prepare(data)
				}
				<-decoders
				if err != nil {
					res[i].err = err
					return
				}
				vecs, err := p.Embed(ctx, embed.Bulk, []*embed.Prepared{img})
				if err != nil {
					res[i].err = err
					return
				}
				res[i].vec = vecs[0]
			})
		}
	})
	enc := json.NewEncoder(out)
	for i, f := range files {
		<-res[i].done
		if e := res[i].err; e != nil {
			if ctx.Err() != nil {
				return failed, ctx.Err()
			}
			failed++
			fmt.Fprintf(errw, "lookalike: embed %s: %v\n", f, e)
			continue
		}
		if err := enc.Encode(embedLine{File: f, Dim: len(res[i].vec), Vector: res[i].vec}); err != nil {
			return failed, err
		}
		res[i].vec = nil
	}
	return failed, nil
}

func newEmbedCmd() *cobra.Command {
	var (
		model  string
		lib    string
		batch  int
		thread int
	)
	c := &cobra.Command{
		Use:   "embed [--model DIR|NAME] IMAGE...",
		Short: "Print the model's vector of each image file as a JSON line",
		Long: `Embed image files with an image model and print one JSON line per image,
in the order given:

  {"file":"cat.jpg","dim":1792,"vector":[0.0123,...]}

Vectors are L2-normalised, exactly as a node stores them for an image
collection. --model is a model directory (model.json + the ONNX file) or the
name of one in the models directory (` + "`lookalike model list`" + `); the default is
` + embed.DefaultModel + `. Files are decoded on all cores and embedded in batches of up
to --batch images (ONNX Runtime uses all cores for each batch).

A file that cannot be read or is not a usable image is reported on stderr
and the others go on; the exit status is then 1.`,
		Example: `  lookalike embed photo.jpg
  lookalike embed --model mobilenet_v2_mid_nchw --batch 16 images/*.png > vectors.jsonl`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError{errors.New("no image files given")}
			}
			return nil
		},
		RunE: func(c *cobra.Command, files []string) error {
			if batch < 1 || batch > 256 {
				return usageError{fmt.Errorf("--batch %d, want 1..256", batch)}
			}
			if thread < 0 {
				return usageError{fmt.Errorf("--threads %d, want ≥ 0", thread)}
			}
			m, err := embed.Open(modelDir(model), embed.ModelOptions{Library: lib, IntraOpThreads: thread})
			if err != nil {
				return err
			}
			defer m.Close()
			// One worker: ONNX Runtime spreads each run over the cores
			// and the model has one session.
			p, err := embed.NewPipeline(m, embed.PipelineOptions{Workers: 1, MaxBatch: batch, Hash: m.Hash()})
			if err != nil {
				return err
			}
			defer p.Close()
			failed, err := embedFiles(c.Context(), p, files, 2*batch, c.OutOrStdout(), c.ErrOrStderr())
			if err != nil {
				return err
			}
			if failed > 0 {
				return errors.New(plural(failed, "image") + " of " + fmt.Sprint(len(files)) + " could not be embedded")
			}
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&model, "model", embed.DefaultModel, "model directory, or the name of a model in $LOOKALIKE_CACHE/models")
	f.IntVar(&batch, "batch", 16, "largest batch given to the model")
	f.IntVar(&thread, "threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	f.StringVar(&lib, "ort-lib", "", "ONNX Runtime library (default $LOOKALIKE_ORT_LIB or the cache's ort/libonnxruntime.so.1)")
	return c
}

// plural is "1 image" or "n images".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
