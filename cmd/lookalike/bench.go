package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"lookalike/bench"
	"lookalike/ivf"
)

func newBenchCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "bench",
		Short: "Benchmarks: recall, latency and QPS of the index against FAISS",
	}
	c.AddCommand(newBenchIVFCmd(), newBenchGenCmd())
	return c
}

func newBenchIVFCmd() *cobra.Command {
	var (
		o                  bench.IVFOptions
		data, base, query  string
		gt, metric, nprobe string
		compare, kernel    string
	)
	c := &cobra.Command{
		Use:   "ivf",
		Short: "Measure recall@k, single-thread QPS and latency of the IVF-SQ8 index over an nprobe sweep",
		Long: `Measure recall@k, single-thread QPS and latency of the IVF-SQ8 index over an
nprobe sweep, beside other engines built from the same training sample.

Data: --data fmnist (Debian's dataset-fashion-mnist: 60k base, 10k queries,
784-d), --data fmnist-rot (the same under a seeded random rotation, where
SQ8 quantization shows), or --base/--query[/--gt] files (.fvecs, .bvecs,
.ivecs). Ground truth is computed on all cores and cached when not given.`,
		Example: `  lookalike bench ivf --data fmnist --nprobe 1,2,4,8,16,32 --compare faiss --plot fmnist.png
  lookalike bench ivf --base base.fvecs --query query.fvecs --metric l2 --nlist 4096 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var err error
			switch {
			case base != "" || query != "":
				if base == "" || query == "" || data != "" {
					return usageError{fmt.Errorf("give --base and --query together, or --data, not both")}
				}
				o.Data = bench.DatasetSpec{Base: base, Query: query, GT: gt}
			case data != "":
				if o.Data, err = bench.ParseDatasetSpec(data); err != nil {
					return usageError{err}
				}
			default:
				return usageError{fmt.Errorf("no data: give --data fmnist|fmnist-rot or --base and --query")}
			}
			if o.Metric, err = ivf.ParseMetric(metric); err != nil {
				return usageError{err}
			}
			if o.NProbe, err = bench.ParseInts(nprobe); err != nil {
				return usageError{fmt.Errorf("--nprobe: %w", err)}
			}
			if compare != "" {
				for _, e := range strings.Split(compare, ",") {
					if e = strings.TrimSpace(e); e != "" {
						o.Compare = append(o.Compare, e)
					}
				}
			}
			if kernel != "" {
				l, err := ivf.ParseLevel(kernel)
				if err != nil {
					return usageError{err}
				}
				if err := ivf.SetKernelLevel(l); err != nil {
					return err
				}
			}
			_, _, err = bench.RunIVF(c.Context(), o, c.OutOrStdout(), c.ErrOrStderr())
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&data, "data", "", "data set: fmnist, fmnist-rot, or BASE,QUERY[,GT] files")
	f.StringVar(&base, "base", "", "base vectors (.fvecs or .bvecs)")
	f.StringVar(&query, "query", "", "query vectors (.fvecs or .bvecs)")
	f.StringVar(&gt, "gt", "", "ground truth (.ivecs); computed and cached when absent")
	f.StringVar(&metric, "metric", "l2", "metric: l2, ip or cosine")
	f.IntVar(&o.NList, "nlist", 1024, "number of inverted lists (lowered to n/39 on small sets)")
	f.StringVar(&nprobe, "nprobe", "1,2,4,8,16,32,64", "comma-separated nprobe values to sweep")
	f.IntVar(&o.K, "k", 10, "hits per query (recall@k)")
	f.IntVar(&o.Refine, "refine", 0, "re-rank k×refine candidates with exact distances (0: off)")
	f.IntVar(&o.Queries, "queries", 0, "use only the first N queries (0: all)")
	f.StringVar(&compare, "compare", "", "other engines to run beside ivf: faiss, faiss-avx2 (need a -tags faiss build), ivf-gpu (needs a -tags cuda build and a GPU)")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the training sample and k-means")
	f.Float64Var(&o.TargetRecall, "target-recall", 0.95, "recall at which QPS is read off each curve")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object per row")
	f.StringVar(&o.Plot, "plot", "", "write recall-vs-QPS curves to this PNG file")
	f.StringVar(&o.CacheDir, "cache", "", "ground-truth cache directory (default $LOOKALIKE_CACHE or ~/.cache/lookalike)")
	f.StringVar(&kernel, "kernel", "", "force a kernel level: generic, avx2 or avx512 (default: the best this CPU has)")
	return c
}

func newBenchGenCmd() *cobra.Command {
	var o bench.GenOptions
	c := &cobra.Command{
		Use:     "gen",
		Short:   "Write a seeded Gaussian-mixture data set as base.fvecs and query.fvecs",
		Example: `  lookalike bench gen --n 1000000 --dim 128 --out data/gauss-1m`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			spec, err := bench.GenerateFiles(c.Context(), o, c.ErrOrStderr())
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "wrote %s and %s\n", spec.Base, spec.Query)
			return nil
		},
	}
	f := c.Flags()
	f.IntVar(&o.N, "n", 1_000_000, "base vectors")
	f.IntVar(&o.Queries, "queries", 10_000, "query vectors")
	f.IntVar(&o.Dim, "dim", 128, "dimension")
	f.IntVar(&o.Clusters, "clusters", 0, "mixture components (default min(1000, n))")
	f.Int64Var(&o.Seed, "seed", 1, "seed")
	f.StringVar(&o.Out, "out", ".", "output directory")
	return c
}
