package imagebench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"lookalike/bench"
	"lookalike/embed"
)

// Shape is a pipeline's batching settings, written WORKERSxMAXBATCH
// ("2x32").
type Shape struct {
	Workers, MaxBatch int
}

func (s Shape) String() string { return fmt.Sprintf("%dx%d", s.Workers, s.MaxBatch) }

// ParseShapes parses a comma-separated list of WORKERSxMAXBATCH.
func ParseShapes(s string) ([]Shape, error) {
	var out []Shape
	for _, f := range strings.Split(s, ",") {
		w, b, ok := strings.Cut(strings.TrimSpace(f), "x")
		wi, err1 := strconv.Atoi(w)
		bi, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || wi < 1 || bi < 1 {
			return nil, fmt.Errorf("%q: want WORKERSxMAXBATCH, such as 2x32", f)
		}
		out = append(out, Shape{wi, bi})
	}
	return out, nil
}

// LanesOptions configure RunLanes. Zero fields take the defaults their
// comments give.
type LanesOptions struct {
	// Images are encoded image files: the bulk load cycles through the
	// first ones, the queries through the others (the last eighth, at
	// least one). Required: at least 2.
	Images [][]byte
	Runner embed.Runner
	Hash   string
	// Shapes are the pipelines compared; default 2x32 (lookalike serve's
	// defaults on 2 cores), 1x32, 1x8.
	Shapes []Shape
	// BulkClients each send BulkBatch images per Embed call on the Bulk
	// lane, without pause (an import's requests); default 4 and 16, as
	// `lookalike import`.
	BulkClients, BulkBatch int
	// Every is the pause between one query's answer and the next query
	// (one client on the Query lane); default 20 ms.
	Every time.Duration
	// Duration is how long queries are measured per shape and round,
	// after Warmup of bulk load alone; default 20 s and 2 s.
	Duration, Warmup time.Duration
	// Rounds: the shapes take turns this many times; default 2.
	Rounds int
	Limits embed.Limits
	JSON   bool
}

// LanesRow is one shape's result over its rounds.
type LanesRow struct {
	Part       string  `json:"part"` // "lanes"
	Workers    int     `json:"workers"`
	MaxBatch   int     `json:"max_batch"`
	Queries    int     `json:"queries"`
	P50ms      float64 `json:"query_p50_ms"`
	P99ms      float64 `json:"query_p99_ms"`
	BulkPerSec float64 `json:"bulk_images_per_s"` // mean of the rounds
	Load1      float64 `json:"load1"`             // mean of the rounds' ends
}

// RunLanes measures the Query lane's latency while the Bulk lane is kept
// busy, for each pipeline shape: what a visitor's search waits for during
// an import, in process, and what the import gets meanwhile.
func RunLanes(ctx context.Context, o LanesOptions, out, log io.Writer) ([]LanesRow, error) {
	if len(o.Shapes) == 0 {
		o.Shapes = []Shape{{2, 32}, {1, 32}, {1, 8}}
	}
	if o.BulkClients == 0 {
		o.BulkClients = 4
	}
	if o.BulkBatch == 0 {
		o.BulkBatch = 16
	}
	if o.Every == 0 {
		o.Every = 20 * time.Millisecond
	}
	if o.Duration == 0 {
		o.Duration = 20 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 2 * time.Second
	}
	if o.Rounds == 0 {
		o.Rounds = 2
	}
	if len(o.Images) < 2 || o.Runner == nil || o.Hash == "" || o.BulkClients < 1 || o.BulkBatch < 1 || o.Rounds < 1 {
		return nil, fmt.Errorf("imagebench: lanes: want 2 or more images, a runner and its hash, and positive counts")
	}
	nq := max(len(o.Images)/8, 1)
	bulkImgs, queries := o.Images[:len(o.Images)-nq], o.Images[len(o.Images)-nq:]
	lat := make([][]time.Duration, len(o.Shapes))
	rates := make([]float64, len(o.Shapes))
	loads := make([]float64, len(o.Shapes))
	for round := range o.Rounds {
		for si, s := range o.Shapes {
			l, rate, err := runLanes(ctx, o, s, bulkImgs, queries)
			if err != nil {
				return nil, err
			}
			lat[si] = append(lat[si], l...)
			rates[si] += rate / float64(o.Rounds)
			load := LoadAvg()
			loads[si] += load / float64(o.Rounds)
			st := bench.LatencyStats(l)
			fmt.Fprintf(log, "round %d: %v: %d queries, p50 %.1f ms, p99 %.1f ms; bulk %.1f images/s (load %.2f)\n",
				round+1, s, st.N, msOf(st.P50), msOf(st.P99), rate, load)
		}
	}
	var rows []LanesRow
	if !o.JSON {
		fmt.Fprintf(out, "%7s %9s %7s %12s %12s %14s %6s\n", "workers", "max batch", "queries", "query p50 ms", "query p99 ms", "bulk images/s", "load")
	}
	for si, s := range o.Shapes {
		st := bench.LatencyStats(lat[si])
		r := LanesRow{Part: "lanes", Workers: s.Workers, MaxBatch: s.MaxBatch, Queries: st.N, P50ms: msOf(st.P50), P99ms: msOf(st.P99),
			BulkPerSec: rates[si], Load1: loads[si]}
		rows = append(rows, r)
		if o.JSON {
			b, _ := json.Marshal(r)
			fmt.Fprintf(out, "%s\n", b)
			continue
		}
		fmt.Fprintf(out, "%7d %9d %7d %12.1f %12.1f %14.1f %6.2f\n", r.Workers, r.MaxBatch, r.Queries, r.P50ms, r.P99ms, r.BulkPerSec, r.Load1)
	}
	return rows, nil
}

// runLanes is one round of one shape.
func runLanes(ctx context.Context, o LanesOptions, s Shape, bulkImgs, queries [][]byte) ([]time.Duration, float64, error) {
	p, err := embed.NewPipeline(o.Runner, embed.PipelineOptions{Workers: s.Workers, MaxBatch: s.MaxBatch, Hash: o.Hash, Limits: o.Limits})
	if err != nil {
		return nil, 0, err
	}
	defer p.Close()
	bctx, stop := context.WithCancel(ctx)
	defer stop()
	var bulk atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for c := range o.BulkClients {
		wg.Go(func() {
			for i := c * o.BulkBatch; bctx.Err() == nil; i += o.BulkClients * o.BulkBatch {
				prep := make([]*embed.Prepared, o.BulkBatch)
				for j := range prep {
					x, err := p.Prepare(bulkImgs[(i+j)%len(bulkImgs)])
					if err != nil {
						once.Do(func() { firstErr = err })
						stop()
						return
					}
					prep[j] = x
				}
				if _, err := p.Embed(bctx, embed.Bulk, prep); err == nil {
					bulk.Add(int64(len(prep)))
				}
			}
		})
	}
	var lat []time.Duration
	var start time.Time
	select {
	case <-time.After(o.Warmup):
		start = time.Now()
		from := bulk.Load()
		for i := 0; time.Since(start) < o.Duration && bctx.Err() == nil; i++ {
			t := time.Now()
			x, err := p.Prepare(queries[i%len(queries)])
			if err == nil {
				_, err = p.Embed(bctx, embed.Query, []*embed.Prepared{x})
			}
			if err != nil {
				once.Do(func() { firstErr = err })
				break
			}
			lat = append(lat, time.Since(t))
			time.Sleep(o.Every)
		}
		rate := float64(bulk.Load()-from) / time.Since(start).Seconds()
		stop()
		wg.Wait()
		if firstErr != nil {
			return nil, 0, firstErr
		}
		return lat, rate, ctx.Err()
	case <-bctx.Done():
		wg.Wait()
		if firstErr != nil {
			return nil, 0, firstErr
		}
		return nil, 0, ctx.Err()
	}
}
