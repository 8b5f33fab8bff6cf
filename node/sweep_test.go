package node

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"lookalike/node/store"
)

// sweepEntries stores n entries in partition coll of a new Pebble store:
// entry i names lists i%4 (one list when i%4 == 0), the lists added at
// added(i).
func sweepEntries(t testing.TB, n int, added func(i int) int64) (*PebbleStorage, string) {
	t.Helper()
	st, err := OpenPebble(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	const coll = "c~ids~0"
	for i0 := 0; i0 < n; i0 += 4096 {
		var puts []Entry
		for i := i0; i < min(i0+4096, n); i++ {
			refs := make([]dirRef, max(1, i%4))
			for j := range refs {
				refs[j] = dirRef{List: int32(j), Added: added(i)}
			}
			puts = append(puts, Entry{UserID: fmt.Sprintf("u%07d", i), ID: uint64(i + 1), Value: encodeEntry(refs)})
		}
		_, _, wait, err := st.ApplyEntries(coll, puts, nil)
		if err == nil {
			err = wait()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return st, coll
}

// The sweep's scan picks the entries naming several lists, all of them
// added more than the settle time ago as the primary can tell (the later
// of the add and since), and counts the others naming several lists.
func TestSweepScan(t *testing.T) {
	now := time.Now().UnixMilli()
	const settle = 50_000
	// Even entries were added an hour ago, odd ones a second ago.
	st, coll := sweepEntries(t, 100, func(i int) int64 {
		if i%2 == 0 {
			return now - 3_600_000
		}
		return now - 1000
	})
	none := func(time.Duration) error { return nil }
	users := func(cs []sweepCandidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.user)
		}
		return out
	}
	// Several lists: i%4 is 2 or 3. Settled: even. So i%4 == 2.
	cands, unsettled, err := sweepScan(st, coll, now-3_600_000, settle, false, 1000, none)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 2; i < 100; i += 4 {
		want = append(want, fmt.Sprintf("u%07d", i))
	}
	if got := users(cands); !slices.Equal(got, want) {
		t.Errorf("candidates %v, want %v", got, want)
	}
	if unsettled != 25 { // i%4 == 3
		t.Errorf("%d unsettled, want 25", unsettled)
	}
	if c := cands[0]; !slices.Equal(c.lists, []int32{0, 1}) {
		t.Errorf("lists of %s: %v, want [0 1]", c.user, c.lists)
	}
	// Since a second ago (a new primary): nothing has settled.
	if cands, unsettled, err = sweepScan(st, coll, now-1000, settle, false, 1000, none); err != nil || len(cands) != 0 || unsettled != 50 {
		t.Errorf("since a second ago: %d candidates, %d unsettled, %v; want 0, 50", len(cands), unsettled, err)
	}
	// Fresh: every entry naming several lists, whatever its age.
	if cands, _, err = sweepScan(st, coll, 0, settle, true, 1000, none); err != nil || len(cands) != 50 {
		t.Errorf("fresh: %d candidates, %v; want 50", len(cands), err)
	}
	// The scan stops at the limit: a new primary rewrites one entry.
	if cands, _, err = sweepScan(st, coll, 0, settle, true, 1, none); err != nil || !slices.Equal(users(cands), []string{"u0000002"}) {
		t.Errorf("fresh, limit 1: candidates %v, %v; want [u0000002]", users(cands), err)
	}
	if cands, _, err = sweepScan(st, coll, now-3_600_000, settle, false, 3, none); err != nil || !slices.Equal(users(cands), want[:3]) {
		t.Errorf("limit 3: candidates %v, %v; want %v", users(cands), err, want[:3])
	}
}

// BenchmarkSweepScan is the sweep's scan of a partition of 1,000,000
// entries, half of them naming several lists, none settled (all added
// just now), without the pacing: the CPU one round of the sweep costs a
// partition that is written to; paced, a round takes ten times as long.
func BenchmarkSweepScan(b *testing.B) {
	now := time.Now().UnixMilli()
	st, coll := sweepEntries(b, 1_000_000, func(int) int64 { return now })
	for b.Loop() {
		if _, _, err := sweepScan(st, coll, now, 50_000, false, maxSweepEntries, func(time.Duration) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ns/entry")
}
