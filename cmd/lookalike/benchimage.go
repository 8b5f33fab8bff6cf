package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"lookalike/bench"
	"lookalike/bench/imagebench"
	"lookalike/embed"
)

// The image benchmarks join `lookalike bench` through extraCommands, so
// that bench.go does not need to know them.
func init() {
	extraCommands = append(extraCommands, func(root *cobra.Command) {
		for _, c := range root.Commands() {
			if c.Name() == "bench" {
				c.AddCommand(newBenchEmbedCmd(), newBenchQualityCmd(), newBenchImportCmd(), newBenchLanesCmd())
			}
		}
	})
}

// openclipartDir is where Debian's openclipart-png puts its pictures: 22
// category folders.
const openclipartDir = "/usr/share/openclipart/png"

// labelledImages lists the image files under dir (as `lookalike import`
// finds them: recursive, symlinks followed, no directory entered twice),
// each labelled by its top-level folder.
func labelledImages(dir string) ([]imagebench.File, error) { return labelledImagesDepth(dir, 1) }

// labelledImagesDepth labels each file by the first depth folders of its
// path below dir (as far as it has them).
func labelledImagesDepth(dir string, depth int) ([]imagebench.File, error) {
	found, err := walkImages(dir)
	if err != nil {
		return nil, fmt.Errorf("%w (Debian's openclipart-png: apt-get install openclipart-png)", err)
	}
	if len(found.files) == 0 {
		return nil, fmt.Errorf("no image files under %s", dir)
	}
	files := make([]imagebench.File, len(found.files))
	for i, f := range found.files {
		parts := strings.Split(f.id, "/")
		label := strings.Join(parts[:min(depth, len(parts)-1)], "/")
		if label == "" {
			label = "."
		}
		files[i] = imagebench.File{Path: f.path, Label: label}
	}
	return files, nil
}

// modelFlags are the flags that open the model in the image benchmarks.
type modelFlags struct {
	model    string
	lib      string
	sessions int
	threads  int
}

func (m *modelFlags) add(c *cobra.Command) {
	f := c.Flags()
	f.StringVar(&m.model, "model", embed.DefaultModel, "model directory, or the name of a model in $LOOKALIKE_CACHE/models")
	f.StringVar(&m.lib, "ort-lib", "", "ONNX Runtime library (default $LOOKALIKE_ORT_LIB or the cache's ort/libonnxruntime.so.1)")
	f.IntVar(&m.sessions, "sessions", 1, "ONNX Runtime sessions (as lookalike serve: 1)")
	f.IntVar(&m.threads, "threads", 0, "ONNX Runtime intra-op threads per session (0: one per core, as lookalike serve)")
}

func (m *modelFlags) open() (*embed.Model, error) {
	return embed.Open(modelDir(m.model), embed.ModelOptions{Library: m.lib, Sessions: m.sessions, IntraOpThreads: m.threads})
}

// openTelling is open, then a line on w with the runtime's version and
// the sessions and threads the run uses.
func (m *modelFlags) openTelling(w io.Writer) (*embed.Model, error) {
	model, err := m.open()
	if err == nil {
		fmt.Fprintf(w, "ONNX Runtime %s: %d session(s), intra-op threads %s\n", embed.RuntimeVersion(), m.sessions, threadsName(m.threads))
	}
	return model, err
}

func newBenchEmbedCmd() *cobra.Command {
	var (
		o                imagebench.ThroughputOptions
		mf               modelFlags
		dir              string
		n                int
		seed             uint64
		clients, batches string
		lane             string
		thumbs           bool
	)
	c := &cobra.Command{
		Use:   "embed",
		Short: "Embedding throughput and latency: one client against many through the micro-batcher, and a batch-size sweep",
		Long: `Measure embedding throughput and per-image latency (decode and embed, from
the file's bytes to the vector) with the real model on a seeded sample of
image files (default: Debian's openclipart-png), read into memory first.

The clients part runs one client calling the model directly, one image at a
time (batch size 1, no pipeline: what a bare feature server does), then
--clients concurrent clients each sending one image at a time through
embed.Pipeline with its default MaxBatch. The batch part sweeps the
pipeline's MaxBatch over --batches with --sweep-clients concurrent clients.

ONNX Runtime uses every core in all of them: one session whose intra-op
thread pool has one thread per core (--sessions, --threads change that), and
the pipeline runs one batch at a time (--workers), as lookalike
serve does. Thumbnails are not made unless --thumbnails.`,
		Example: `  lookalike bench embed
  lookalike bench embed --n 100 --clients 1,2,4,8 --batches 1,8,32 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var err error
			if o.Clients, err = bench.ParseInts(clients); err != nil {
				return usageError{fmt.Errorf("--clients: %w", err)}
			}
			if batches == "" || batches == "none" {
				o.Batches = []int{-1}
			} else if o.Batches, err = bench.ParseInts(batches); err != nil {
				return usageError{fmt.Errorf("--batches: %w", err)}
			}
			switch lane {
			case "bulk":
				o.Lane = embed.Bulk
			case "query":
				o.Lane = embed.Query
			default:
				return usageError{fmt.Errorf("--lane %q: bulk or query", lane)}
			}
			if n < 1 {
				return usageError{fmt.Errorf("--n %d, want ≥ 1", n)}
			}
			files, err := labelledImages(dir)
			if err != nil {
				return err
			}
			files = imagebench.Sample(files, n, seed)
			if o.Images, err = imagebench.ReadAll(files); err != nil {
				return err
			}
			m, err := mf.openTelling(c.ErrOrStderr())
			if err != nil {
				return err
			}
			defer m.Close()
			o.Runner, o.Hash = m, m.Hash()
			if !thumbs {
				o.Limits.ThumbSide = -1
			}
			_, _, err = imagebench.RunThroughput(c.Context(), o, c.OutOrStdout(), c.ErrOrStderr())
			return err
		},
	}
	mf.add(c)
	f := c.Flags()
	f.StringVar(&dir, "images", openclipartDir, "directory of image files (recursive)")
	f.IntVar(&n, "n", 200, "images in the sample; each configuration embeds each once")
	f.Uint64Var(&seed, "seed", 1, "seed of the sample")
	f.StringVar(&clients, "clients", "1,8", "concurrent clients of the pipeline in the clients part")
	f.StringVar(&batches, "batches", "1,2,4,8,16,32", "MaxBatch values of the sweep (none: no sweep)")
	f.IntVar(&o.SweepClients, "sweep-clients", 0, "concurrent clients in the sweep (default: the largest batch)")
	f.IntVar(&o.Workers, "workers", 0, "pipeline workers, runs in flight (default 1, as lookalike serve)")
	f.StringVar(&lane, "lane", "bulk", "lane the clients use: bulk or query")
	f.BoolVar(&thumbs, "thumbnails", false, "make thumbnails too, as a node does on import")
	f.IntVar(&o.Rounds, "rounds", 3, "times each part runs, its configurations taking turns (rows give the median)")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object per row")
	return c
}

func threadsName(n int) string {
	if n == 0 {
		return "ONNX Runtime's default (one per core)"
	}
	return fmt.Sprint(n)
}

func newBenchQualityCmd() *cobra.Command {
	var (
		o      imagebench.QualityOptions
		mf     modelFlags
		dir    string
		limit  int
		seed   uint64
		pixels int
		batch  int
		depth  int
		noCach bool
	)
	c := &cobra.Command{
		Use:   "quality",
		Short: "Retrieval quality: precision@k among images of the same category, the model against raw pixels",
		Long: `Measure precision@k on a labelled image set (default: Debian's
openclipart-png, whose top-level folders are the labels): every image queries
all the others by exact search over the cosine of L2-normalised vectors,
itself excluded, and scores the fraction of its k nearest that share its
folder. The model is compared with a raw-pixel baseline measured the same
way: the image composited over white, resized to --pixels × --pixels by the
same preprocessing, RGB, L2-normalised.

Vectors are cached in the cache directory by model hash (and a fingerprint
of the preprocessing) and file content, so a rerun embeds nothing and a run
over more files embeds only the new ones. --limit takes a seeded sample (a
prefix of the same permutation for every limit). precision is the mean over
all query images; macro is the mean of the categories' means.

Copies of one picture under two names count as they are found: a copy in
the same folder is a relevant hit for both methods. --dedupe keeps one file
per content instead (the smallest path).`,
		Example: `  lookalike bench quality
  lookalike bench quality --limit 2000 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if pixels < 1 || pixels > 256 || batch < 1 || limit < 0 || depth < 1 {
				return usageError{fmt.Errorf("--pixels 1..256, --batch ≥ 1, --limit ≥ 0, --label-depth ≥ 1")}
			}
			files, err := labelledImagesDepth(dir, depth)
			if err != nil {
				return err
			}
			o.Files = imagebench.Sample(files, limit, seed)
			m, err := mf.open()
			if err != nil {
				return err
			}
			defer m.Close()
			p, err := embed.NewPipeline(m, embed.PipelineOptions{MaxBatch: batch, Hash: m.Hash(), Limits: embed.Limits{ThumbSide: -1}})
			if err != nil {
				return err
			}
			defer p.Close()
			fp, err := imagebench.PrepareFingerprint(m.Config())
			if err != nil {
				return err
			}
			px, err := imagebench.PixelMethod(pixels)
			if err != nil {
				return err
			}
			o.Methods = []imagebench.Method{imagebench.ModelMethod(p, fp, 2*batch), px}
			if noCach {
				o.CacheDir = ""
			} else if o.CacheDir == "" {
				o.CacheDir = filepath.Join(embed.CacheDir(), "vectors")
			}
			_, err = imagebench.RunQuality(c.Context(), o, c.OutOrStdout(), c.ErrOrStderr())
			return err
		},
	}
	mf.add(c)
	f := c.Flags()
	f.StringVar(&dir, "images", openclipartDir, "directory of image files whose top-level folders are the categories")
	f.IntVar(&limit, "limit", 0, "use a seeded sample of this many files (0: all)")
	f.Uint64Var(&seed, "seed", 1, "seed of the sample")
	f.IntVar(&o.K, "k", 10, "k of precision@k")
	f.IntVar(&depth, "label-depth", 1, "folders of a file's path that make its category (1: the top-level folder)")
	f.IntVar(&pixels, "pixels", 32, "side of the raw-pixel baseline")
	f.IntVar(&batch, "batch", 32, "largest batch given to the model")
	f.StringVar(&o.CacheDir, "cache", "", "vector cache directory (default $LOOKALIKE_CACHE/vectors or ~/.cache/lookalike/vectors)")
	f.BoolVar(&noCach, "no-cache", false, "neither read nor write the vector cache")
	f.BoolVar(&o.Dedupe, "dedupe", false, "leave out files whose content a file with a smaller path has (openclipart holds about 1,200 copies)")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object per method")
	return c
}

func newBenchLanesCmd() *cobra.Command {
	var (
		o      imagebench.LanesOptions
		mf     modelFlags
		dir    string
		n      int
		seed   uint64
		shapes string
	)
	c := &cobra.Command{
		Use:   "lanes",
		Short: "Search latency on the Query lane while the Bulk lane is busy, by pipeline workers and MaxBatch",
		Long: `Measure, in process with the real model, what a search waits for during an
import: --bulk-clients goroutines keep the pipeline's Bulk lane busy with
calls of --bulk-batch images (lookalike import's 4 × 16), while one client
embeds single images on the Query lane, pausing --every between them, for
--duration per pipeline shape. Shapes are WORKERSxMAXBATCH; 2x32 is what
lookalike serve ran on 2 cores before this benchmark (Workers = GOMAXPROCS, MaxBatch 32; now 1 × 8). The
shapes take turns --rounds times; rows give the query latency over all
rounds and the Bulk lane's mean throughput meanwhile.`,
		Example: `  lookalike bench lanes
  lookalike bench lanes --shapes 2x32,1x32,1x8,1x4 --duration 10s --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var err error
			if o.Shapes, err = imagebench.ParseShapes(shapes); err != nil {
				return usageError{fmt.Errorf("--shapes: %w", err)}
			}
			if n < 2 || o.BulkClients < 1 || o.BulkBatch < 1 || o.Rounds < 1 || o.Duration <= 0 || o.Every < 0 {
				return usageError{fmt.Errorf("--n ≥ 2, --bulk-clients, --bulk-batch, --rounds ≥ 1, --duration > 0")}
			}
			files, err := labelledImages(dir)
			if err != nil {
				return err
			}
			if o.Images, err = imagebench.ReadAll(imagebench.Sample(files, n, seed)); err != nil {
				return err
			}
			m, err := mf.openTelling(c.ErrOrStderr())
			if err != nil {
				return err
			}
			defer m.Close()
			o.Runner, o.Hash = m, m.Hash()
			o.Limits.ThumbSide = -1
			_, err = imagebench.RunLanes(c.Context(), o, c.OutOrStdout(), c.ErrOrStderr())
			return err
		},
	}
	mf.add(c)
	f := c.Flags()
	f.StringVar(&dir, "images", openclipartDir, "directory of image files (recursive)")
	f.IntVar(&n, "n", 300, "images in the sample (the last eighth are the queries)")
	f.Uint64Var(&seed, "seed", 1, "seed of the sample")
	f.StringVar(&shapes, "shapes", "2x32,1x32,1x8", "pipelines compared, WORKERSxMAXBATCH")
	f.IntVar(&o.BulkClients, "bulk-clients", 4, "concurrent Bulk callers")
	f.IntVar(&o.BulkBatch, "bulk-batch", 16, "images per Bulk call")
	f.DurationVar(&o.Every, "every", 20*time.Millisecond, "pause between queries")
	f.DurationVar(&o.Duration, "duration", 20*time.Second, "queries measured per shape and round")
	f.IntVar(&o.Rounds, "rounds", 2, "times the shapes take turns")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object per shape")
	return c
}
