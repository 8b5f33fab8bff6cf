package cuda

// plan is how one batch's device work is cut into thread blocks.
type plan struct {
	blocks []blockDesc
	// merges has one entry per query (out = the query's row), with the
	// query's run of partial slots.
	merges []mergeDesc
	nslots int
	// needMerge is set when some query has more than one slot; otherwise
	// every query's answer is its single slot (or nothing) and the merge
	// kernel is skipped.
	needMerge bool
}

// planBlocks splits the batch's device rows into blocks. Query q owns the
// probes [pstart[q], pstart[q+1]) of the probe table, whose device row
// counts are rows[i] (each > 0), and wants ks[q] hits.
//
// Each query's rows, taken as one sequence across its probes, are cut into
// G_q nearly equal runs of at least `per` rows, where per = max(minRows,
// total/target): a batch of one query still spreads over about `target`
// blocks, while a large batch gets about one block per query and needs no
// merge. Every block owns a partial slot; a query's slots are consecutive.
// Since G_q ≤ rows_q/per + 1, there are at most target + nq slots.
func planBlocks(pstart []int, rows []int, ks []int, target, minRows int) plan {
	nq := len(pstart) - 1
	var total int64
	for _, n := range rows {
		total += int64(n)
	}
	per := int64(max(minRows, 1))
	if target > 0 {
		per = max(per, (total+int64(target)-1)/int64(target))
	}
	var pl plan
	pl.merges = make([]mergeDesc, nq)
	for q := 0; q < nq; q++ {
		var t int64
		for _, n := range rows[pstart[q]:pstart[q+1]] {
			t += int64(n)
		}
		first := pl.nslots
		if t > 0 {
			g := (t + per - 1) / per
			p, off := pstart[q], 0
			for i := int64(0); i < g; i++ {
				c := int(t*(i+1)/g - t*i/g)
				pl.blocks = append(pl.blocks, blockDesc{
					query: int32(q), probe: int32(p), offset: int32(off),
					count: int32(c), slot: int32(pl.nslots), k: int32(ks[q]),
				})
				pl.nslots++
				for c > 0 {
					if r := rows[p] - off; c < r {
						off += c
						c = 0
					} else {
						c -= r
						p++
						off = 0
					}
				}
			}
		}
		n := pl.nslots - first
		pl.merges[q] = mergeDesc{first: int32(first), nslots: int32(n), k: int32(ks[q]), out: int32(q)}
		if n > 1 {
			pl.needMerge = true
		}
	}
	return pl
}
