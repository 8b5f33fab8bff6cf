package main

import (
	"github.com/spf13/cobra"

	"lookalike/bench"
)

// bench routing joins `lookalike bench` through extraCommands, as the
// image benchmarks do.
func init() {
	extraCommands = append(extraCommands, func(root *cobra.Command) {
		for _, c := range root.Commands() {
			if c.Name() == "bench" {
				c.AddCommand(newBenchRoutingCmd())
			}
		}
	})
}

func newBenchRoutingCmd() *cobra.Command {
	var (
		o                     bench.RoutingOptions
		nodes, nprobe, policy string
	)
	c := &cobra.Command{
		Use:   "routing",
		Short: "Simulate query routing at 12, 24 and 48 nodes: nodes contacted per query and scan load, clustered vs random grouping vs broadcast",
		Long: `Simulate query routing over the cluster metadata (package coordinator/meta),
without starting a cluster: train the coarse k-means of an IVF index on a
data set, assign the base vectors to lists, take each query's nprobe nearest
lists, and route them through three layouts at each cluster size: lists
grouped into shards by a balanced clustering of the centroids (what the
leader commits), grouped at random, and broadcast to every node (hash-by-id
sharding, as Milvus does). Shards are placed on nodes balanced by vector
count, replicas on distinct nodes.

Columns: nodes/q, p50, p99, max = nodes contacted per query; shards/q =
shards holding a query's probed lists; scan max = the busiest node's
scanned vectors over the mean (1 = even); scan cv = their coefficient of
variation; critical = the mean share of a query's scan on its busiest node;
stored = the largest node's stored vectors over the mean.

Data: --data gauss (the seeded 128-d Gaussian mixture of bench gen, made in
memory; --n, --dim, --clusters), fmnist, fmnist-rot, or BASE,QUERY files.
The result is a function of the flags and --seed.`,
		Example: `  lookalike bench routing --data gauss --n 200000 --nprobe 16
  lookalike bench routing --data fmnist --nodes 12,24,48 --shards-per-node 4 --replicas 2 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			var err error
			if o.Nodes, err = bench.ParseInts(nodes); err != nil {
				return usageError{err}
			}
			if o.NProbe, err = bench.ParseInts(nprobe); err != nil {
				return usageError{err}
			}
			if o.Policy, err = bench.ParseReplicaPolicy(policy); err != nil {
				return usageError{err}
			}
			if o.Data != bench.Gauss {
				if _, err := bench.ParseDatasetSpec(o.Data); err != nil {
					return usageError{err}
				}
			}
			o.EnsureDefaults()
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			_, err = bench.RunRouting(c.Context(), o, c.OutOrStdout(), c.ErrOrStderr())
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&o.Data, "data", bench.Gauss, "data set: gauss, fmnist, fmnist-rot, or BASE,QUERY files")
	f.IntVar(&o.N, "n", 200_000, "gauss: base vectors")
	f.IntVar(&o.Dim, "dim", 128, "gauss: dimension")
	f.IntVar(&o.Clusters, "clusters", 0, "gauss: mixture components (default min(1000, n))")
	f.IntVar(&o.Queries, "queries", 10_000, "queries routed")
	f.StringVar(&nodes, "nodes", "12,24,48", "comma-separated cluster sizes")
	f.IntVar(&o.ShardsPerNode, "shards-per-node", 1, "shards per node")
	f.IntVar(&o.NList, "nlist", 0, "lists (0: auto from the base size, as a collection with nlist auto)")
	f.IntVar(&o.TrainPoints, "train-points", 256, "k-means sample: at most this many points per list")
	f.StringVar(&nprobe, "nprobe", "16", "comma-separated nprobe values")
	f.IntVar(&o.Replicas, "replicas", 1, "replicas per shard, on distinct nodes")
	f.StringVar(&policy, "policy", "affinity", "replica that serves a shard: affinity (a node the query already calls, else the least loaded) or primary")
	f.Int64Var(&o.Seed, "seed", 1, "seed of the data, k-means and the groupings")
	f.BoolVar(&o.JSON, "json", false, "print one JSON object per row")
	return c
}
