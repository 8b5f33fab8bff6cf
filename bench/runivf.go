package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"lookalike/ivf"
)

// IVFOptions configure `lookalike bench ivf`.
type IVFOptions struct {
	// Data names the data set: "fmnist", "fmnist-rot", or files.
	Data DatasetSpec
	// Metric. Default l2.
	Metric ivf.Metric
	// NList lists. Default 1024; lowered to n/39 on small sets, for every
	// engine alike.
	NList int
	// NProbe values to sweep. Default 1,2,4,8,16,32,64.
	NProbe []int
	// K hits per query. Default 10.
	K int
	// Refine factor for engines that support it (0: off).
	Refine int
	// Queries limits the number of queries (0: all).
	Queries int
	// Compare names other engines to run beside "ivf" ("faiss", "faiss-avx2").
	Compare []string
	// Seed of the training sample and of every engine's k-means. Default 1.
	Seed int64
	// TargetRecall at which QPS is read off each engine's curve. Default 0.95.
	TargetRecall float64
	// JSON prints one JSON object per row instead of a table.
	JSON bool
	// Plot, when set, writes recall-vs-QPS curves to this PNG file.
	Plot string
	// CacheDir holds cached ground truth. Default DefaultCacheDir().
	CacheDir string
}

// EnsureDefaults fills zero fields.
func (o *IVFOptions) EnsureDefaults() {
	if o.Metric == 0 {
		o.Metric = ivf.L2
	}
	if o.NList == 0 {
		o.NList = 1024
	}
	if len(o.NProbe) == 0 {
		o.NProbe = []int{1, 2, 4, 8, 16, 32, 64}
	}
	if o.K == 0 {
		o.K = 10
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.TargetRecall == 0 {
		o.TargetRecall = 0.95
	}
	if o.CacheDir == "" {
		o.CacheDir = DefaultCacheDir()
	}
}

// Validate reports every problem at once.
func (o *IVFOptions) Validate() error {
	var errs []error
	if o.NList < 1 {
		errs = append(errs, fmt.Errorf("nlist %d must be positive", o.NList))
	}
	for _, p := range o.NProbe {
		if p < 1 {
			errs = append(errs, fmt.Errorf("nprobe %d must be positive", p))
		}
	}
	if o.K < 1 || o.K > ivf.MaxK {
		errs = append(errs, fmt.Errorf("k %d outside 1..%d", o.K, ivf.MaxK))
	}
	if o.Refine < 0 || o.Refine > 64 {
		errs = append(errs, fmt.Errorf("refine %d outside 0..64", o.Refine))
	}
	if o.Queries < 0 {
		errs = append(errs, fmt.Errorf("queries %d must not be negative", o.Queries))
	}
	if o.TargetRecall <= 0 || o.TargetRecall > 1 {
		errs = append(errs, fmt.Errorf("target recall %v outside (0, 1]", o.TargetRecall))
	}
	for _, c := range o.Compare {
		if c == "ivf" {
			errs = append(errs, errors.New("--compare ivf: ivf always runs"))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("bench ivf: %w", errors.Join(errs...))
}

// Row is one measured point: an engine at one nprobe. Its JSON form is
// what `bench ivf --json` prints, one object per line.
type Row struct {
	Engine   string  `json:"engine"`
	Dataset  string  `json:"dataset"`
	Metric   string  `json:"metric"`
	N        int     `json:"n"`
	Dim      int     `json:"dim"`
	Queries  int     `json:"queries"`
	NList    int     `json:"nlist"`
	NProbe   int     `json:"nprobe"`
	K        int     `json:"k"`
	Refine   int     `json:"refine"`
	Recall   float64 `json:"recall"`
	QPS      float64 `json:"qps"`
	P50ms    float64 `json:"p50_ms"`
	P95ms    float64 `json:"p95_ms"`
	P99ms    float64 `json:"p99_ms"`
	BuildS   float64 `json:"build_s"`
	TrainS   float64 `json:"train_s,omitempty"`
	AddS     float64 `json:"add_s,omitempty"`
	MemBytes int64   `json:"memory_bytes"`
	// CodeBytes is n × dim: every engine here stores one SQ8 byte per
	// dimension; MemBytes adds ids, centroids and whatever else it holds.
	CodeBytes int64  `json:"code_bytes"`
	Kernel    string `json:"kernel,omitempty"`
}

// Summary is an engine's QPS read off its curve at the target recall.
type Summary struct {
	Engine       string  `json:"engine"`
	TargetRecall float64 `json:"target_recall"`
	QPS          float64 `json:"qps_at_target"` // 0: the curve never reaches the target
	BuildS       float64 `json:"build_s"`
	MemBytes     int64   `json:"memory_bytes"`
}

// RunIVF runs the IVF benchmark: it loads the data set, gets ground truth
// (cached), builds every engine from the same training sample, and for each
// nprobe measures every engine's recall and single-thread latency. Rows go
// to out as they are measured; progress and notes go to log.
func RunIVF(ctx context.Context, o IVFOptions, out, log io.Writer) ([]Row, []Summary, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	ds, err := LoadDataset(o.Data)
	if err != nil {
		return nil, nil, err
	}
	if o.Queries > 0 && o.Queries < ds.NumQueries() {
		ds = ds.FirstQueries(o.Queries)
	}
	n, nq, d := len(ds.Base)/ds.Dim, ds.NumQueries(), ds.Dim
	fmt.Fprintf(log, "data set %s: %d base, %d queries, dim %d, metric %v\n", ds.Name, n, nq, d, o.Metric)
	gt, err := GroundTruth(ds, o.Metric, o.K, o.CacheDir, log)
	if err != nil {
		return nil, nil, err
	}
	nlist := o.NList
	if maxN := n / 39; nlist > maxN {
		nlist = max(1, maxN)
		fmt.Fprintf(log, "nlist %d needs at least %d points; using nlist %d for every engine\n", o.NList, 39*o.NList, nlist)
	}
	train := ivf.TrainingSample(ds.Base, ivf.Options{Dim: d, NList: nlist, Seed: o.Seed})
	cfg := EngineConfig{Dim: d, Metric: o.Metric, NList: nlist, Seed: o.Seed, Refine: o.Refine}
	names := append([]string{"ivf"}, o.Compare...)
	type built struct {
		e                   Engine
		build, trainS, addS float64
	}
	var engines []built
	defer func() {
		for _, b := range engines {
			b.e.Close()
		}
	}()
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		e, err := NewEngine(name, cfg)
		if err != nil {
			return nil, nil, err
		}
		fmt.Fprintf(log, "%s: training on %d points (nlist %d), adding %d...\n", name, len(train)/d, nlist, n)
		t0 := time.Now()
		if err := e.Build(train, ds.Base); err != nil {
			e.Close()
			return nil, nil, fmt.Errorf("bench: %s: build: %w", name, err)
		}
		b := built{e: e, build: time.Since(t0).Seconds()}
		if bt, ok := e.(BuildTimer); ok {
			tr, ad := bt.BuildTimes()
			b.trainS, b.addS = tr.Seconds(), ad.Seconds()
		}
		fmt.Fprintf(log, "%s: built in %.2fs (train %.2fs, add %.2fs), %s\n", name, b.build, b.trainS, b.addS, fmtBytes(e.MemoryBytes()))
		engines = append(engines, b)
	}

	const rowFmt = "%-11s %6v %9v %8v %8v %8v %8v %8v %10v\n"
	if !o.JSON {
		fmt.Fprintf(out, rowFmt, "engine", "nprobe", "recall@"+fmt.Sprint(o.K), "QPS", "p50 ms", "p95 ms", "p99 ms", "build s", "memory")
	}
	var rows []Row
	ids := make([][]int64, nq)
	lat := make([]time.Duration, nq)
	for _, np := range o.NProbe {
		if np > nlist {
			fmt.Fprintf(log, "skipping nprobe %d > nlist %d\n", np, nlist)
			continue
		}
		// Engines take turns at each nprobe, so that drift in the
		// machine's speed hits them alike.
		for _, b := range engines {
			if err := ctx.Err(); err != nil {
				return nil, nil, err
			}
			// Warm up caches and branch predictors on a few queries.
			for i := 0; i < min(nq, 50); i++ {
				if _, err := b.e.Search(ds.Query(i), o.K, np); err != nil {
					return nil, nil, fmt.Errorf("bench: %s: search: %w", b.e.Name(), err)
				}
			}
			var total time.Duration
			for i := 0; i < nq; i++ {
				t0 := time.Now()
				r, err := b.e.Search(ds.Query(i), o.K, np)
				el := time.Since(t0)
				if err != nil {
					return nil, nil, fmt.Errorf("bench: %s: search: %w", b.e.Name(), err)
				}
				if st, ok := b.e.(SelfTimer); ok {
					el = time.Duration(st.LastSearchNanos())
				}
				ids[i], lat[i] = r, el
				total += el
			}
			ls := LatencyStats(lat)
			row := Row{
				Engine: b.e.Name(), Dataset: ds.Name, Metric: o.Metric.String(), N: n, Dim: d, Queries: nq,
				NList: nlist, NProbe: np, K: o.K, Refine: o.Refine,
				Recall: Recall(ids, gt, o.K), QPS: float64(nq) / total.Seconds(),
				P50ms: ms(ls.P50), P95ms: ms(ls.P95), P99ms: ms(ls.P99),
				BuildS: b.build, TrainS: b.trainS, AddS: b.addS, MemBytes: b.e.MemoryBytes(), CodeBytes: int64(n) * int64(d),
			}
			if row.Engine == "ivf" {
				row.Kernel = ivf.KernelLevel().String()
			}
			rows = append(rows, row)
			if o.JSON {
				if err := json.NewEncoder(out).Encode(row); err != nil {
					return nil, nil, err
				}
			} else {
				fmt.Fprintf(out, rowFmt, row.Engine, np, fmt.Sprintf("%.4f", row.Recall), fmt.Sprintf("%.0f", row.QPS),
					fmt.Sprintf("%.3f", row.P50ms), fmt.Sprintf("%.3f", row.P95ms), fmt.Sprintf("%.3f", row.P99ms),
					fmt.Sprintf("%.2f", row.BuildS), fmtBytes(row.MemBytes))
			}
		}
	}
	sums := Summarize(rows, o.TargetRecall)
	if o.JSON {
		for _, s := range sums {
			if err := json.NewEncoder(out).Encode(map[string]any{"summary": s}); err != nil {
				return nil, nil, err
			}
		}
	} else {
		fmt.Fprintln(out)
		for _, s := range sums {
			q := "not reached"
			if s.QPS > 0 {
				q = fmt.Sprintf("%.0f QPS", s.QPS)
				if base := sums[0].QPS; s.Engine != sums[0].Engine && base > 0 {
					q += fmt.Sprintf(" (ivf is %.2f×)", base/s.QPS)
				}
			}
			fmt.Fprintf(out, "%-11s at recall@%d = %.2f: %s; build %.2fs; memory %s\n", s.Engine, o.K, o.TargetRecall, q, s.BuildS, fmtBytes(s.MemBytes))
		}
	}
	if o.Plot != "" {
		var series []Series
		for _, name := range names {
			s := Series{Name: name}
			for _, r := range rows {
				if r.Engine == name {
					s.Points = append(s.Points, Point{Recall: r.Recall, QPS: r.QPS})
				}
			}
			series = append(series, s)
		}
		title := fmt.Sprintf("%s, %v, nlist %d, k %d, single thread", ds.Name, o.Metric, nlist, o.K)
		if o.Refine > 1 {
			title += fmt.Sprintf(", refine %d", o.Refine)
		}
		if err := PlotRecallQPS(o.Plot, title, series); err != nil {
			return rows, sums, err
		}
		fmt.Fprintf(log, "plot written to %s\n", o.Plot)
	}
	return rows, sums, nil
}

// SelfTimer is implemented by engines that time their own searches (one
// that runs in another process reports the time spent there, not the pipe).
type SelfTimer interface {
	LastSearchNanos() int64
}

// Summarize reads each engine's QPS at the target recall off its curve:
// rows are sorted by recall, and QPS is interpolated linearly in log space
// between the two points that bracket the target.
func Summarize(rows []Row, target float64) []Summary {
	var order []string
	by := map[string][]Row{}
	for _, r := range rows {
		if _, ok := by[r.Engine]; !ok {
			order = append(order, r.Engine)
		}
		by[r.Engine] = append(by[r.Engine], r)
	}
	var out []Summary
	for _, name := range order {
		rs := by[name]
		slices.SortFunc(rs, func(a, b Row) int {
			if a.Recall != b.Recall {
				if a.Recall < b.Recall {
					return -1
				}
				return 1
			}
			return int(b.QPS - a.QPS)
		})
		s := Summary{Engine: name, TargetRecall: target, BuildS: rs[0].BuildS, MemBytes: rs[0].MemBytes}
		for i, r := range rs {
			if r.Recall < target {
				continue
			}
			if i == 0 || r.Recall == target {
				s.QPS = r.QPS
			} else {
				lo := rs[i-1]
				f := (target - lo.Recall) / (r.Recall - lo.Recall)
				s.QPS = math.Exp(math.Log(lo.QPS) + f*(math.Log(r.QPS)-math.Log(lo.QPS)))
			}
			break
		}
		out = append(out, s)
	}
	return out
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func fmtBytes(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%d B", b)
}

// ParseInts parses a comma-separated list of positive integers ("1,2,4").
func ParseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var v int
		if _, err := fmt.Sscanf(f, "%d", &v); err != nil || v < 1 || fmt.Sprint(v) != f {
			return nil, fmt.Errorf("bench: %q is not a positive integer", f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("bench: empty list %q", s)
	}
	return out, nil
}
