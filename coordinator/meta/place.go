package meta

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// PlaceByWeight places len(weights) shards, shard i weighing weights[i]
// (its vector count), on nodes, each shard on replicas distinct nodes,
// balancing the weight every node holds. It is the shard → replicas part of
// the shard map the leader commits after training (CommitTraining) or a
// rebalance (SetShardMap); GroupLists gives the list → shard part.
//
// The algorithm is greedy largest-first (LPT): shards by decreasing weight
// (ties by id) each go to the replicas nodes that hold the least weight so
// far, chosen one by one (ties: the node sharing the fewest shards with the
// replicas already chosen for this shard, then fewer shards, then the order
// of nodes); every replica counts the shard's full weight, since each copy
// stores and can serve all of it. The co-location tie-break keeps equal
// shards from pairing the same nodes over and over (mirrors), so a failed
// node's shards have their other copies on many nodes, which share its
// reads. Each node then holds at most R·W/(N−R+1) + w_max, where W is the total
// weight, N the number of nodes, R replicas and w_max the largest shard: the
// mean R·W/N plus little more than one shard. The primary of each shard is
// the replica whose node leads the least weight of primaries so far (ties:
// node order), so write ordering is spread too. Replicas are listed in the
// order of nodes.
//
// The result is a deterministic function of the arguments (no map order,
// no randomness); every shard gets the given epoch. nodes are node ids,
// distinct and non-empty (LiveNodes, sorted, in practice).
func PlaceByWeight(weights []float64, replicas int, nodes []string, epoch uint64) ([]Shard, error) {
	switch {
	case len(weights) == 0 || len(weights) > MaxShards:
		return nil, fmt.Errorf("%w: %d shards (want 1..%d)", ErrBadShards, len(weights), MaxShards)
	case replicas < 1 || replicas > 16:
		return nil, fmt.Errorf("%w: %d (want 1..16)", ErrBadReplicas, replicas)
	case len(nodes) < replicas:
		return nil, fmt.Errorf("%w: %d nodes, %d replicas wanted", ErrNotEnoughNodes, len(nodes), replicas)
	}
	index := make(map[string]int, len(nodes))
	for i, id := range nodes {
		if id == "" {
			return nil, fmt.Errorf("%w: empty node id", ErrBadNode)
		}
		if _, dup := index[id]; dup {
			return nil, fmt.Errorf("%w: node %q listed twice", ErrBadNode, id)
		}
		index[id] = i
	}
	for i, w := range weights {
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return nil, fmt.Errorf("%w: shard %d weight %v", ErrBadShardMap, i, w)
		}
	}
	order := make([]int, len(weights))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(weights[b], weights[a]) })

	nn := len(nodes)
	load := make([]float64, nn)
	count := make([]int, nn)
	lead := make([]float64, nn)  // weight of the shards each node is primary of
	shared := make([]int, nn*nn) // shards held by both nodes a and b
	out := make([]Shard, len(weights))
	chosen := make([]int, 0, replicas)
	for _, s := range order {
		chosen = chosen[:0]
		with := func(a int) (k int) {
			for _, c := range chosen {
				k += shared[a*nn+c]
			}
			return k
		}
		for range replicas {
			best := -1
			for n := range nn {
				switch {
				case slices.Contains(chosen, n):
				case best < 0, load[n] < load[best]:
					best = n
				case load[n] > load[best]:
				case with(n) != with(best):
					if with(n) < with(best) {
						best = n
					}
				case count[n] < count[best]:
					best = n
				}
			}
			chosen = append(chosen, best)
		}
		for _, a := range chosen {
			for _, b := range chosen {
				if a != b {
					shared[a*nn+b]++
				}
			}
		}
		slices.Sort(chosen) // node order
		primary := chosen[0]
		for _, n := range chosen {
			load[n] += weights[s]
			count[n]++
			if lead[n] < lead[primary] {
				primary = n
			}
		}
		lead[primary] += weights[s]
		reps := make([]string, replicas)
		for j, n := range chosen {
			reps[j] = nodes[n]
		}
		out[s] = Shard{ID: uint32(s), Replicas: reps, Primary: nodes[primary], Epoch: epoch}
	}
	return out, nil
}
