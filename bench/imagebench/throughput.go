package imagebench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"lookalike/bench"
	"lookalike/embed"
)

// ThroughputOptions configure RunThroughput. Zero fields take the
// defaults their comments give.
type ThroughputOptions struct {
	// Images are encoded image files; each configuration embeds each of
	// them once. Required.
	Images [][]byte
	// Runner is the model and Hash its identity (embed.Model.Hash).
	// Required.
	Runner embed.Runner
	Hash   string
	// Clients are the concurrent clients of the first part, each sending
	// one image at a time through a Pipeline with the pipeline's default
	// MaxBatch; default 1 and 8. One client calling Runner.Run directly
	// (no pipeline: batch size 1, as a bare feature server does) is
	// measured first, as the baseline.
	Clients []int
	// Batches is the sweep of the second part: MaxBatch values; default
	// 1, 2, 4, 8, 16, 32. Negative values: no sweep.
	Batches []int
	// SweepClients are the concurrent single-image clients of the sweep;
	// default the largest of Batches, so that every batch size can fill.
	SweepClients int
	// Workers is the pipeline's Workers (runs in flight); default the
	// pipeline's default, 1, as `lookalike serve` runs it.
	Workers int
	// Lane is the lane the clients use; default Bulk (an import).
	Lane embed.Lane
	// Limits for Prepare; zero fields take embed's defaults. Callers
	// that measure embedding alone set ThumbSide −1 (no thumbnails).
	Limits embed.Limits
	// Rounds is how many times each part is run, its configurations
	// taking turns; default 3. Rows report the median throughput.
	Rounds int
	// JSON prints one JSON object per row instead of a table.
	JSON bool
}

// EnsureDefaults sets every zero field to its default.
func (o *ThroughputOptions) EnsureDefaults() {
	if len(o.Clients) == 0 {
		o.Clients = []int{1, 8}
	}
	if len(o.Batches) == 0 {
		o.Batches = []int{1, 2, 4, 8, 16, 32}
	}
	if o.SweepClients == 0 {
		for _, b := range o.Batches {
			o.SweepClients = max(o.SweepClients, b)
		}
	}
	if o.Rounds == 0 {
		o.Rounds = 3
	}
	o.Limits.EnsureDefaults()
}

// Validate reports every problem with o at once.
func (o ThroughputOptions) Validate() error {
	var probs []string
	if len(o.Images) == 0 {
		probs = append(probs, "no images")
	}
	if o.Runner == nil || o.Hash == "" {
		probs = append(probs, "a runner and its hash are required")
	}
	for _, c := range o.Clients {
		if c < 1 || c > 1024 {
			probs = append(probs, fmt.Sprintf("clients %d, want 1..1024", c))
		}
	}
	for _, b := range o.Batches {
		if b == 0 || b > 4096 {
			probs = append(probs, fmt.Sprintf("batch %d, want 1..4096", b))
		}
	}
	if o.SweepClients < 0 || o.SweepClients > 1024 {
		probs = append(probs, fmt.Sprintf("sweep clients %d, want 1..1024", o.SweepClients))
	}
	if o.Rounds < 1 || o.Rounds > 100 {
		probs = append(probs, fmt.Sprintf("rounds %d, want 1..100", o.Rounds))
	}
	if o.Workers < 0 {
		probs = append(probs, fmt.Sprintf("workers %d, want ≥ 0", o.Workers))
	}
	if err := o.Limits.Validate(); err != nil {
		probs = append(probs, err.Error())
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("imagebench: invalid throughput options: %v", probs)
}

// ThroughputRow is one configuration, over every round. Latency is per
// image, from the encoded bytes to the vector (Prepare and Embed, as a
// client of the embedder sees it), pooled over the rounds.
type ThroughputRow struct {
	Part      string    `json:"part"` // "clients" or "batch"
	Mode      string    `json:"mode"` // "direct" (Runner.Run of one image) or "pipeline"
	Clients   int       `json:"clients"`
	MaxBatch  int       `json:"max_batch"` // 1 for direct
	Images    int       `json:"images"`    // per round
	PerSec    float64   `json:"images_per_s"`
	Rounds    []float64 `json:"rounds_images_per_s"` // each round's; PerSec is their median
	P50ms     float64   `json:"p50_ms"`
	P99ms     float64   `json:"p99_ms"`
	MeanBatch float64   `json:"mean_batch"` // images per model run
	Load1     float64   `json:"load1"`      // 1-minute load average, mean of the rounds' ends
}

// ThroughputSummary compares the clients part's rows.
type ThroughputSummary struct {
	Part   string  `json:"part"` // "summary"
	Direct float64 `json:"direct_1_client_images_per_s"`
	// Pipeline is the pipeline's throughput at Clients, the most clients
	// of the clients part; Ratio is Pipeline / Direct.
	Pipeline float64 `json:"pipeline_images_per_s"`
	Clients  int     `json:"clients"`
	Ratio    float64 `json:"ratio"`
}

// config is one configuration to measure.
type config struct {
	part, mode        string
	clients, maxBatch int
}

// measured is one round of a configuration.
type measured struct {
	lat       []time.Duration
	took      time.Duration
	meanBatch float64
	load      float64
}

// RunThroughput measures the clients part, then the batch sweep, each
// Rounds times with the configurations taking turns (so that a change in
// the machine's load falls on all of them), and prints a row per
// configuration to out (a table, or JSON lines) and a summary. Notes go
// to log.
func RunThroughput(ctx context.Context, o ThroughputOptions, out, log io.Writer) ([]ThroughputRow, ThroughputSummary, error) {
	o.EnsureDefaults()
	var sum ThroughputSummary
	if err := o.Validate(); err != nil {
		return nil, sum, err
	}
	cfg := o.Runner.Config()
	// ONNX Runtime allocates on a new input shape: run each batch size
	// once before timing anything.
	warm := map[int]bool{1: true}
	for _, c := range o.Clients {
		warm[min(c, 32)] = true
	}
	for _, b := range o.Batches {
		if b > 0 {
			warm[b] = true
		}
	}
	img, err := embed.Prepare(o.Images[0], cfg, o.Limits)
	if err != nil {
		return nil, sum, fmt.Errorf("imagebench: image 0: %w", err)
	}
	for n := range warm {
		batch := make([]float32, 0, n*len(img.Tensor))
		for range n {
			batch = append(batch, img.Tensor...)
		}
		if _, err := o.Runner.Run(batch, n); err != nil {
			return nil, sum, fmt.Errorf("imagebench: warm-up run of %d: %w", n, err)
		}
	}
	workers := o.Workers
	if workers == 0 {
		workers = 1 // embed.PipelineOptions' default, as lookalike serve runs
	}
	fmt.Fprintf(log, "%d images, model %s, pipeline workers %d, lane %v, %d rounds, load %.2f at the start\n",
		len(o.Images), cfg.Name, workers, laneName(o.Lane), o.Rounds, LoadAvg())

	// The clients part runs the pipeline's default batch sizes.
	po := embed.PipelineOptions{}
	po.EnsureDefaults()
	defBatch := po.MaxBatch
	if o.Lane == embed.Query {
		defBatch = po.QueryMaxBatch
	}
	var rows []ThroughputRow
	emit := func(r ThroughputRow) {
		if r.MaxBatch == 0 {
			r.MaxBatch = defBatch
		}
		if len(rows) == 0 && !o.JSON {
			fmt.Fprintf(out, "%-8s %-9s %7s %9s %6s %9s %-22s %8s %8s %10s %6s\n",
				"part", "mode", "clients", "max batch", "images", "images/s", "rounds", "p50 ms", "p99 ms", "mean batch", "load")
		}
		rows = append(rows, r)
		if o.JSON {
			b, _ := json.Marshal(r)
			fmt.Fprintf(out, "%s\n", b)
			return
		}
		var rs []string
		for _, x := range r.Rounds {
			rs = append(rs, fmt.Sprintf("%.1f", x))
		}
		fmt.Fprintf(out, "%-8s %-9s %7d %9d %6d %9.1f %-22s %8.1f %8.1f %10.2f %6.2f\n",
			r.Part, r.Mode, r.Clients, r.MaxBatch, r.Images, r.PerSec, strings.Join(rs, " "), r.P50ms, r.P99ms, r.MeanBatch, r.Load1)
	}
	measure := func(configs []config) error {
		res := make([][]measured, len(configs))
		for round := range o.Rounds {
			for i, c := range configs {
				var m measured
				var err error
				if c.mode == "direct" {
					m, err = runDirect(ctx, o)
				} else {
					m, err = runPipeline(ctx, o, c.clients, c.maxBatch)
				}
				if err != nil {
					return err
				}
				m.load = LoadAvg()
				res[i] = append(res[i], m)
				fmt.Fprintf(log, "round %d: %s %s, %d clients, max batch %d: %.1f images/s (load %.2f)\n",
					round+1, c.part, c.mode, c.clients, c.maxBatch, float64(len(m.lat))/m.took.Seconds(), m.load)
			}
		}
		for i, c := range configs {
			emit(aggregate(c, res[i]))
		}
		return nil
	}

	clientsPart := []config{{"clients", "direct", 1, 1}}
	for _, c := range o.Clients {
		clientsPart = append(clientsPart, config{"clients", "pipeline", c, 0})
	}
	if err := measure(clientsPart); err != nil {
		return nil, sum, err
	}
	sum = ThroughputSummary{Part: "summary", Direct: rows[0].PerSec}
	for _, r := range rows[1:] {
		if r.Clients >= sum.Clients {
			sum.Pipeline, sum.Clients = r.PerSec, r.Clients
		}
	}
	sum.Ratio = sum.Pipeline / sum.Direct
	var sweep []config
	for _, b := range o.Batches {
		if b > 0 {
			sweep = append(sweep, config{"batch", "pipeline", o.SweepClients, b})
		}
	}
	if err := measure(sweep); err != nil {
		return nil, sum, err
	}
	if o.JSON {
		b, _ := json.Marshal(sum)
		fmt.Fprintf(out, "%s\n", b)
	} else {
		fmt.Fprintf(out, "pipeline at %d clients %.1f images/s vs one client calling the model directly %.1f images/s: %.2f×\n",
			sum.Clients, sum.Pipeline, sum.Direct, sum.Ratio)
	}
	return rows, sum, nil
}

// aggregate makes one row of a configuration's rounds: the median
// throughput, latency percentiles over all of them.
func aggregate(c config, ms []measured) ThroughputRow {
	r := ThroughputRow{Part: c.part, Mode: c.mode, Clients: c.clients, MaxBatch: c.maxBatch}
	var lat []time.Duration
	var batch, load float64
	for _, m := range ms {
		r.Images = len(m.lat)
		r.Rounds = append(r.Rounds, float64(len(m.lat))/m.took.Seconds())
		lat = append(lat, m.lat...)
		batch += m.meanBatch
		load += m.load
	}
	s := slices.Clone(r.Rounds)
	slices.Sort(s)
	r.PerSec = s[len(s)/2]
	if len(s)%2 == 0 {
		r.PerSec = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	l := bench.LatencyStats(lat)
	r.P50ms, r.P99ms = msOf(l.P50), msOf(l.P99)
	r.MeanBatch, r.Load1 = batch/float64(len(ms)), load/float64(len(ms))
	return r
}

func laneName(l embed.Lane) string {
	if l == embed.Query {
		return "query"
	}
	return "bulk"
}

// runDirect is one client, one image at a time, calling Runner.Run with
// a batch of one: no pipeline, no waiting for a batch to fill.
func runDirect(ctx context.Context, o ThroughputOptions) (measured, error) {
	cfg := o.Runner.Config()
	lat := make([]time.Duration, len(o.Images))
	start := time.Now()
	for i, data := range o.Images {
		if err := ctx.Err(); err != nil {
			return measured{}, err
		}
		t := time.Now()
		img, err := embed.Prepare(data, cfg, o.Limits)
		if err != nil {
			return measured{}, fmt.Errorf("imagebench: image %d: %w", i, err)
		}
		if _, err := o.Runner.Run(img.Tensor, 1); err != nil {
			return measured{}, fmt.Errorf("imagebench: image %d: %w", i, err)
		}
		lat[i] = time.Since(t)
	}
	return measured{lat: lat, took: time.Since(start), meanBatch: 1}, nil
}

// runPipeline is clients goroutines sending single images through a new
// Pipeline with MaxBatch maxBatch (0: the pipeline's default).
func runPipeline(ctx context.Context, o ThroughputOptions, clients, maxBatch int) (measured, error) {
	var runs, batched atomic.Int64
	p, err := embed.NewPipeline(o.Runner, embed.PipelineOptions{
		Workers: o.Workers, MaxBatch: maxBatch, QueryMaxBatch: maxBatch, Limits: o.Limits, Hash: o.Hash,
		OnBatch: func(b embed.BatchInfo) { runs.Add(1); batched.Add(int64(b.Size)) },
	})
	if err != nil {
		return measured{}, err
	}
	defer p.Close()
	lat := make([]time.Duration, len(o.Images))
	var next atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	start := time.Now()
	for range clients {
		g.Go(func() error {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(o.Images) {
					return nil
				}
				t := time.Now()
				img, err := p.Prepare(o.Images[i])
				if err != nil {
					return fmt.Errorf("imagebench: image %d: %w", i, err)
				}
				if _, err := p.Embed(gctx, o.Lane, []*embed.Prepared{img}); err != nil {
					return fmt.Errorf("imagebench: image %d: %w", i, err)
				}
				lat[i] = time.Since(t)
			}
		})
	}
	if err := g.Wait(); err != nil {
		return measured{}, err
	}
	took := time.Since(start)
	mean := 0.0
	if n := runs.Load(); n > 0 {
		mean = float64(batched.Load()) / float64(n)
	}
	return measured{lat: lat, took: took, meanBatch: mean}, nil
}

func msOf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
