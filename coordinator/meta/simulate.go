package meta

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// GroupRandom is the baseline that GroupLists is measured against: the
// nlist lists dealt to shards in a seeded random order, round-robin, so
// each shard holds ⌊nlist/shards⌋ or one more lists and a list's shard says
// nothing about where its centroid lies.
func GroupRandom(nlist, shards int, seed uint64) ([]uint32, error) {
	if nlist < 1 || nlist > MaxNList || shards < 1 || shards > MaxShards {
		return nil, fmt.Errorf("%w: %d shards for %d lists", ErrBadShards, shards, nlist)
	}
	out := make([]uint32, nlist)
	r := rand.New(rand.NewPCG(seed, 0x72616e646f6d))
	for i, l := range r.Perm(nlist) {
		out[l] = uint32(i % shards)
	}
	return out, nil
}

// ReplicaPolicy says which replica of a shard serves a query in
// SimulateRouting.
type ReplicaPolicy uint8

const (
	// ReplicaAffinity: a replica on a node the query already calls, if
	// the shard has one there; otherwise the replica whose node has
	// scanned the fewest vectors so far. Ties go to the node that scanned
	// fewer, then to node order. A query's shards are taken in ascending
	// id order. This is the default: it saves calls and spreads load.
	ReplicaAffinity ReplicaPolicy = iota
	// ReplicaPrimary: always the shard's primary (PickPrimary).
	ReplicaPrimary
)

func (p ReplicaPolicy) String() string {
	switch p {
	case ReplicaAffinity:
		return "affinity"
	case ReplicaPrimary:
		return "primary"
	}
	return fmt.Sprintf("replicapolicy(%d)", uint8(p))
}

// RoutingSim describes a cluster layout for SimulateRouting.
type RoutingSim struct {
	// Nodes are the node ids; every replica in Map must be one of them.
	// Loads are reported in this order.
	Nodes []string
	// Map places lists on shards and shards on nodes (GroupLists or
	// GroupRandom, then PlaceByWeight). Ignored when Broadcast is set.
	Map ShardMap
	// ListSizes holds the number of vectors in each list: what a probe of
	// that list scans.
	ListSizes []int64
	// Broadcast models a cluster that shards vectors by hash of id (as
	// Milvus and Vearch do): every query calls every node, and each node
	// scans its share of every probed list. The share is an even split
	// (list l's remainder vectors on nodes l, l+1, … mod N), the best case
	// of a hash partition.
	Broadcast bool
	// Policy chooses the replica of each shard. Default ReplicaAffinity.
	Policy ReplicaPolicy
}

// RoutingStats is what SimulateRouting measures.
type RoutingStats struct {
	Queries int `json:"queries"`
	Nodes   int `json:"nodes"`
	// Nodes contacted per query (one call each).
	NodesMean float64 `json:"nodes_mean"`
	NodesP50  int     `json:"nodes_p50"`
	NodesP99  int     `json:"nodes_p99"`
	NodesMax  int     `json:"nodes_max"`
	// ShardsMean is the mean number of shards holding a query's probed
	// lists (Nodes for broadcast: every node holds a piece of every list).
	ShardsMean float64 `json:"shards_mean"`
	// Scanned is the number of vectors scanned by all queries on all
	// nodes; NodeScanned the part of each node, in Nodes order. They sum
	// to Scanned, which is the same for every layout of the same lists.
	Scanned     int64   `json:"scanned"`
	NodeScanned []int64 `json:"node_scanned"`
	// Spread of NodeScanned: the mean, max/mean (1 is perfect balance) and
	// the coefficient of variation (population standard deviation / mean).
	ScanMean      float64 `json:"scan_mean"`
	ScanImbalance float64 `json:"scan_imbalance"`
	ScanCV        float64 `json:"scan_cv"`
	// CriticalShare is the mean over queries of the largest single node's
	// part of the query's scan: the fraction of the work on the slowest
	// call's path. Broadcast divides a query finely (about 1/Nodes);
	// routing by probed lists keeps it on few nodes (up to 1).
	CriticalShare float64 `json:"critical_share"`
}

// SimulateRouting routes each query's probed lists (list ids, as the coarse
// step of the index returns them; duplicates are ignored) through the layout
// of sim, one call per node as Route makes them, and measures the calls and
// the scan load. It is pure and deterministic: the same arguments give the
// same stats.
func SimulateRouting(sim RoutingSim, probed [][]uint32) (RoutingStats, error) {
	nn := len(sim.Nodes)
	if nn == 0 {
		return RoutingStats{}, fmt.Errorf("%w: no nodes", ErrNotEnoughNodes)
	}
	index := make(map[string]int, nn)
	for i, id := range sim.Nodes {
		if _, dup := index[id]; dup || id == "" {
			return RoutingStats{}, fmt.Errorf("%w: node %q empty or listed twice", ErrBadNode, id)
		}
		index[id] = i
	}
	nlist := len(sim.ListSizes)
	for l, n := range sim.ListSizes {
		if n < 0 {
			return RoutingStats{}, fmt.Errorf("%w: list %d has %d vectors", ErrBadShardMap, l, n)
		}
	}
	var reps [][]int // shard → replica node indexes
	var primary []int
	if !sim.Broadcast {
		m := sim.Map
		if len(m.ListShard) != nlist {
			return RoutingStats{}, fmt.Errorf("%w: %d lists mapped, %d sizes", ErrBadShardMap, len(m.ListShard), nlist)
		}
		reps = make([][]int, len(m.Shards))
		primary = make([]int, len(m.Shards))
		for i, s := range m.Shards {
			if len(s.Replicas) == 0 {
				return RoutingStats{}, fmt.Errorf("%w: shard %d has no replica", ErrBadShardMap, i)
			}
			primary[i] = -1
			for _, id := range s.Replicas {
				n, ok := index[id]
				if !ok {
					return RoutingStats{}, fmt.Errorf("%w: shard %d replica %q", ErrUnknownNode, i, id)
				}
				reps[i] = append(reps[i], n)
				if id == s.Primary {
					primary[i] = n
				}
			}
			if primary[i] < 0 {
				return RoutingStats{}, fmt.Errorf("%w: shard %d primary %q is not a replica", ErrBadShardMap, i, s.Primary)
			}
		}
		for l, s := range m.ListShard {
			if int(s) >= len(m.Shards) {
				return RoutingStats{}, fmt.Errorf("%w: list %d on shard %d of %d", ErrBadShardMap, l, s, len(m.Shards))
			}
		}
	}

	st := RoutingStats{Queries: len(probed), Nodes: nn, NodeScanned: make([]int64, nn)}
	load := st.NodeScanned
	contacted := make([]int, 0, len(probed))
	var shardsTotal int
	var critical float64
	// Per-query scratch, reset through the touched lists.
	listSeen := make([]bool, nlist)
	shardScan := make([]int64, len(reps))
	nodeScan := make([]int64, nn)
	inCall := make([]bool, nn)
	var touched []uint32
	var calls []int
	for q, lists := range probed {
		for _, l := range lists {
			if int(l) >= nlist {
				return RoutingStats{}, fmt.Errorf("%w: query %d probes list %d of %d", ErrBadNList, q, l, nlist)
			}
		}
		calls = calls[:0]
		var total int64
		if sim.Broadcast {
			for _, l := range lists {
				if listSeen[l] {
					continue
				}
				listSeen[l] = true
				size := sim.ListSizes[l]
				base, rem := size/int64(nn), int(size%int64(nn))
				for n := range nodeScan {
					nodeScan[n] += base
				}
				for j := 0; j < rem; j++ {
					nodeScan[(int(l)+j)%nn]++
				}
				total += size
			}
			for n := range nodeScan {
				calls = append(calls, n)
			}
			shardsTotal += nn
		} else {
			touched = touched[:0]
			for _, l := range lists {
				if listSeen[l] {
					continue
				}
				listSeen[l] = true
				s := sim.Map.ListShard[l]
				if shardScan[s] == 0 && !slices.Contains(touched, s) {
					touched = append(touched, s)
				}
				shardScan[s] += sim.ListSizes[l]
			}
			slices.Sort(touched)
			shardsTotal += len(touched)
			for _, s := range touched {
				n := primary[s]
				if sim.Policy != ReplicaPrimary {
					n = pickReplica(reps[s], inCall, load)
				}
				if !inCall[n] {
					inCall[n] = true
					calls = append(calls, n)
				}
				// Counted at once, so the next shard's choice sees it.
				nodeScan[n] += shardScan[s]
				load[n] += shardScan[s]
				total += shardScan[s]
				shardScan[s] = 0
			}
		}
		var most int64
		for _, n := range calls {
			most = max(most, nodeScan[n])
			if sim.Broadcast {
				load[n] += nodeScan[n]
			}
			nodeScan[n] = 0
			inCall[n] = false
		}
		for _, l := range lists {
			listSeen[l] = false
		}
		if total > 0 {
			critical += float64(most) / float64(total)
		}
		contacted = append(contacted, len(calls))
		st.Scanned += total
	}
	if len(probed) == 0 {
		return st, nil
	}
	sum := 0
	for _, c := range contacted {
		sum += c
	}
	slices.Sort(contacted)
	rank := func(p float64) int {
		i := int(math.Ceil(p*float64(len(contacted)))) - 1
		return contacted[max(0, min(i, len(contacted)-1))]
	}
	st.NodesMean = float64(sum) / float64(len(contacted))
	st.NodesP50, st.NodesP99, st.NodesMax = rank(0.5), rank(0.99), contacted[len(contacted)-1]
	st.ShardsMean = float64(shardsTotal) / float64(len(probed))
	st.CriticalShare = critical / float64(len(probed))
	st.ScanMean = float64(st.Scanned) / float64(nn)
	if st.ScanMean > 0 {
		var most int64
		var ss float64
		for _, x := range load {
			most = max(most, x)
			d := float64(x) - st.ScanMean
			ss += d * d
		}
		st.ScanImbalance = float64(most) / st.ScanMean
		st.ScanCV = math.Sqrt(ss/float64(nn)) / st.ScanMean
	}
	return st, nil
}

// pickReplica is ReplicaAffinity: a replica whose node this query already
// calls, else the least loaded; ties to the less loaded node, then node
// order.
func pickReplica(reps []int, inCall []bool, load []int64) int {
	best := reps[0]
	better := func(a, b int) bool { // a before b
		if inCall[a] != inCall[b] {
			return inCall[a]
		}
		if load[a] != load[b] {
			return load[a] < load[b]
		}
		return a < b
	}
	for _, n := range reps[1:] {
		if better(n, best) {
			best = n
		}
	}
	return best
}
