package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
)

// Gauss is the data name RunRouting gives the seeded Gaussian mixture of
// GaussianMixture, generated in memory.
const Gauss = "gauss"

// RoutingOptions configure `lookalike bench routing`.
type RoutingOptions struct {
	// Data is "gauss" (the seeded mixture, in memory), "fmnist",
	// "fmnist-rot" or "BASE,QUERY" files. Default gauss.
	Data string
	// N, Dim and Clusters shape the gauss data: defaults 200,000, 128 and
	// min(1000, N), as `bench gen`.
	N, Dim, Clusters int
	// Queries is the number of queries routed. Default 10,000 (all of
	// fmnist's).
	Queries int
	// Nodes are the cluster sizes simulated. Default 12, 24, 48.
	Nodes []int
	// ShardsPerNode: a cluster of N nodes has N×ShardsPerNode shards.
	// Default 1.
	ShardsPerNode int
	// NList lists. Default meta.AutoNList of the base size.
	NList int
	// TrainPoints caps k-means at this many points per list (ivf's
	// MaxPointsPerCentroid). Default 256.
	TrainPoints int
	// NProbe values: each query's nearest lists. Default 16.
	NProbe []int
	// Replicas per shard. Default 1.
	Replicas int
	// Policy picks the replica that serves a shard. Default affinity.
	Policy meta.ReplicaPolicy
	// Seed of the data, the training sample, k-means and the groupings.
	// Default 1.
	Seed int64
	// JSON prints one JSON object per row.
	JSON bool
}

// EnsureDefaults fills zero fields.
func (o *RoutingOptions) EnsureDefaults() {
	if o.Data == "" {
		o.Data = Gauss
	}
	if o.N == 0 {
		o.N = 200_000
	}
	if o.Dim == 0 {
		o.Dim = 128
	}
	if o.Clusters == 0 {
		o.Clusters = max(1, min(1000, o.N))
	}
	if o.Queries == 0 {
		o.Queries = 10_000
	}
	if len(o.Nodes) == 0 {
		o.Nodes = []int{12, 24, 48}
	}
	if o.ShardsPerNode == 0 {
		o.ShardsPerNode = 1
	}
	if o.TrainPoints == 0 {
		o.TrainPoints = 256
	}
	if len(o.NProbe) == 0 {
		o.NProbe = []int{16}
	}
	if o.Replicas == 0 {
		o.Replicas = 1
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
}

// Validate reports every problem at once.
func (o *RoutingOptions) Validate() error {
	var errs []error
	if o.Data == Gauss {
		if o.N < 1 || o.N > 1<<26 {
			errs = append(errs, fmt.Errorf("n %d outside 1..%d", o.N, 1<<26))
		}
		if o.Dim < 1 || o.Dim > MaxVecsDim {
			errs = append(errs, fmt.Errorf("dim %d outside 1..%d", o.Dim, MaxVecsDim))
		}
		if o.Clusters < 1 || o.Clusters > o.N {
			errs = append(errs, fmt.Errorf("clusters %d outside 1..n", o.Clusters))
		}
	}
	if o.Queries < 1 {
		errs = append(errs, fmt.Errorf("queries %d must be positive", o.Queries))
	}
	for _, n := range o.Nodes {
		if n < 1 || n*max(o.ShardsPerNode, 1) > meta.MaxShards {
			errs = append(errs, fmt.Errorf("nodes %d outside 1..%d shards", n, meta.MaxShards))
		}
		if n < o.Replicas {
			errs = append(errs, fmt.Errorf("nodes %d fewer than %d replicas", n, o.Replicas))
		}
	}
	if o.ShardsPerNode < 1 {
		errs = append(errs, fmt.Errorf("shards per node %d must be positive", o.ShardsPerNode))
	}
	if o.NList < 0 || o.NList > meta.MaxNList {
		errs = append(errs, fmt.Errorf("nlist %d outside 1..%d", o.NList, meta.MaxNList))
	}
	if o.TrainPoints < 39 {
		errs = append(errs, fmt.Errorf("train points %d below 39 per list", o.TrainPoints))
	}
	for _, p := range o.NProbe {
		if p < 1 {
			errs = append(errs, fmt.Errorf("nprobe %d must be positive", p))
		}
	}
	if o.Replicas < 1 || o.Replicas > 16 {
		errs = append(errs, fmt.Errorf("replicas %d outside 1..16", o.Replicas))
	}
	if o.Policy != meta.ReplicaAffinity && o.Policy != meta.ReplicaPrimary {
		errs = append(errs, fmt.Errorf("unknown replica policy %v", o.Policy))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("bench routing: %w", errors.Join(errs...))
}

// RoutingRow is one simulated layout: a grouping of lists on a cluster
// size at one nprobe. Its JSON form is what `bench routing --json` prints.
type RoutingRow struct {
	Dataset  string `json:"dataset"`
	N        int    `json:"n"`
	Dim      int    `json:"dim"`
	Queries  int    `json:"queries"`
	NList    int    `json:"nlist"`
	NProbe   int    `json:"nprobe"`
	Nodes    int    `json:"nodes"`
	Shards   int    `json:"shards"`
	Replicas int    `json:"replicas"`
	Policy   string `json:"policy"`
	// Grouping is "clustered" (meta.GroupLists), "random"
	// (meta.GroupRandom) or "broadcast" (every node holds a share of every
	// list, as with hash-by-id sharding).
	Grouping      string  `json:"grouping"`
	NodesMean     float64 `json:"nodes_mean"`
	NodesP50      int     `json:"nodes_p50"`
	NodesP99      int     `json:"nodes_p99"`
	NodesMax      int     `json:"nodes_max"`
	ShardsMean    float64 `json:"shards_mean"`
	ScanMean      float64 `json:"scan_mean"` // vectors per node over all queries
	ScanImbalance float64 `json:"scan_imbalance"`
	ScanCV        float64 `json:"scan_cv"`
	CriticalShare float64 `json:"critical_share"`
	// StoredImbalance is the max/mean of the vectors each node stores
	// (replicas included): what placement by vector count balances.
	StoredImbalance float64 `json:"stored_imbalance"`
}

// Groupings are the layouts RunRouting compares, in the order it prints them.
var Groupings = []string{"clustered", "random", "broadcast"}

// RunRouting trains the coarse quantizer of an IVF index (k-means) on a
// data set, assigns the base vectors to lists, takes each query's nprobe
// nearest lists (the coarse step of a search), and for every cluster size
// simulates routing them (meta.SimulateRouting) through three layouts: lists
// grouped into shards by meta.GroupLists (balanced by vector count),
// grouped at random (meta.GroupRandom), and broadcast to every node. Shards
// are placed by meta.PlaceByWeight. Rows go to out, progress to log. The
// result is a function of the options.
func RunRouting(ctx context.Context, o RoutingOptions, out, log io.Writer) ([]RoutingRow, error) {
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	var name string
	var base, queries []float32
	var d int
	if o.Data == Gauss {
		d = o.Dim
		name = fmt.Sprintf("gauss-%d-%d-c%d-s%d", o.N, o.Dim, o.Clusters, o.Seed)
		t0 := time.Now()
		base = GaussianMixture(o.N, o.Dim, o.Clusters, o.Seed)
		queries = GaussianMixtureQueries(o.Queries, o.Dim, o.Clusters, o.Seed)
		fmt.Fprintf(log, "generated %s and %d queries in %.1fs\n", name, o.Queries, time.Since(t0).Seconds())
	} else {
		spec, err := ParseDatasetSpec(o.Data)
		if err != nil {
			return nil, err
		}
		ds, err := LoadDataset(spec)
		if err != nil {
			return nil, err
		}
		ds = ds.FirstQueries(o.Queries)
		name, base, queries, d = ds.Name, ds.Base, ds.Queries, ds.Dim
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n, nq := len(base)/d, len(queries)/d
	nlist := o.NList
	if nlist == 0 {
		nlist = meta.AutoNList(n)
	}
	ix, err := ivf.New(ivf.Options{Dim: d, Metric: ivf.L2, NList: nlist, Seed: o.Seed, MaxPointsPerCentroid: o.TrainPoints})
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	rep, err := ix.Train(base)
	if err != nil {
		return nil, fmt.Errorf("bench routing: train: %w", err)
	}
	if rep.Warning != "" {
		fmt.Fprintln(log, rep.Warning)
	}
	nlist = rep.NList
	fmt.Fprintf(log, "%s: %d base, %d queries, dim %d; k-means of %d lists on %d points in %.1fs\n",
		name, n, nq, d, nlist, rep.Points, time.Since(t0).Seconds())
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cents := make([]float32, 0, nlist*d)
	for l := range nlist {
		cents = append(cents, ix.Centroid(l)...)
	}
	t0 = time.Now()
	labels, err := ix.Assign(base)
	if err != nil {
		return nil, err
	}
	sizes := make([]int64, nlist)
	for _, l := range labels {
		sizes[l]++
	}
	weights := make([]float64, nlist)
	for l, s := range sizes {
		weights[l] = float64(s)
	}
	maxProbe := min(slices.Max(o.NProbe), nlist)
	coarse, err := ivf.BruteForce(ivf.L2, d, cents, queries, maxProbe, 0, nil)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "lists hold %d..%d vectors (mean %.0f); assignment and the coarse step of %d queries in %.1fs\n",
		slices.Min(sizes), slices.Max(sizes), float64(n)/float64(nlist), nq, time.Since(t0).Seconds())

	const rowFmt = "%6v %7v %7v %-10v %8v %6v %6v %6v %8v %8v %8v %9v %8v\n"
	if !o.JSON {
		fmt.Fprintf(out, rowFmt, "nodes", "shards", "nprobe", "grouping", "nodes/q", "p50", "p99", "max", "shards/q", "scan max", "scan cv", "critical", "stored")
	}
	var rows []RoutingRow
	for _, nodes := range o.Nodes {
		ids := make([]string, nodes)
		for i := range ids {
			ids[i] = fmt.Sprintf("node%03d", i)
		}
		shards := nodes * o.ShardsPerNode
		grouped, err := meta.GroupLists(cents, d, shards, meta.GroupOptions{Weights: weights, Seed: uint64(o.Seed)})
		if err != nil {
			return nil, err
		}
		random, err := meta.GroupRandom(nlist, shards, uint64(o.Seed))
		if err != nil {
			return nil, err
		}
		maps := map[string]meta.ShardMap{}
		stored := map[string]float64{"broadcast": 1}
		for g, ls := range map[string][]uint32{"clustered": grouped, "random": random} {
			sw := make([]float64, shards)
			for l, s := range ls {
				sw[s] += weights[l]
			}
			placed, err := meta.PlaceByWeight(sw, o.Replicas, ids, 1)
			if err != nil {
				return nil, err
			}
			maps[g] = meta.ShardMap{ListShard: ls, Shards: placed}
			held := make([]float64, nodes)
			for _, s := range placed {
				for _, r := range s.Replicas {
					held[slices.Index(ids, r)] += sw[s.ID]
				}
			}
			stored[g] = slices.Max(held) / (float64(n*o.Replicas) / float64(nodes))
		}
		for _, np := range o.NProbe {
			if np > nlist {
				fmt.Fprintf(log, "skipping nprobe %d > nlist %d\n", np, nlist)
				continue
			}
			probed := make([][]uint32, nq)
			for q, hits := range coarse {
				p := make([]uint32, np)
				for i := range p {
					p[i] = uint32(hits[i].ID)
				}
				probed[q] = p
			}
			for _, g := range Groupings {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				sim := meta.RoutingSim{Nodes: ids, ListSizes: sizes, Map: maps[g], Broadcast: g == "broadcast", Policy: o.Policy}
				st, err := meta.SimulateRouting(sim, probed)
				if err != nil {
					return nil, err
				}
				row := RoutingRow{
					Dataset: name, N: n, Dim: d, Queries: nq, NList: nlist, NProbe: np,
					Nodes: nodes, Shards: shards, Replicas: o.Replicas, Policy: o.Policy.String(), Grouping: g,
					NodesMean: st.NodesMean, NodesP50: st.NodesP50, NodesP99: st.NodesP99, NodesMax: st.NodesMax,
					ShardsMean: st.ShardsMean, ScanMean: st.ScanMean, ScanImbalance: st.ScanImbalance, ScanCV: st.ScanCV,
					CriticalShare: st.CriticalShare, StoredImbalance: stored[g],
				}
				if g == "broadcast" {
					row.Shards = nodes
				}
				rows = append(rows, row)
				if o.JSON {
					if err := json.NewEncoder(out).Encode(row); err != nil {
						return nil, err
					}
					continue
				}
				fmt.Fprintf(out, rowFmt, nodes, row.Shards, np, g, fmt.Sprintf("%.2f", row.NodesMean), row.NodesP50, row.NodesP99, row.NodesMax,
					fmt.Sprintf("%.2f", row.ShardsMean), fmt.Sprintf("%.2f", row.ScanImbalance), fmt.Sprintf("%.3f", row.ScanCV),
					fmt.Sprintf("%.3f", row.CriticalShare), fmt.Sprintf("%.2f", row.StoredImbalance))
			}
		}
	}
	return rows, nil
}

// ParseReplicaPolicy parses a --policy value: affinity or primary.
func ParseReplicaPolicy(s string) (meta.ReplicaPolicy, error) {
	for _, p := range []meta.ReplicaPolicy{meta.ReplicaAffinity, meta.ReplicaPrimary} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown replica policy %q (want affinity or primary)", s)
}
