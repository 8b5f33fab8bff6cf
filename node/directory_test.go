package node_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"testing"
	"time"

	"lookalike/coordinator/meta"
	"lookalike/ivf"
	"lookalike/node"
	"lookalike/node/nodetest"
	"lookalike/node/store"
	"lookalike/proto"
)

func TestEntryCodec(t *testing.T) {
	if b := node.EncodeEntry(nil); b != nil {
		t.Fatalf("empty entry encodes as %q, want nil", b)
	}
	refs := []node.DirRef{{List: 0, Added: 1}, {List: 1<<20 - 1, Added: 1764000000000}, {List: 7, Added: -5}}
	b := node.EncodeEntry(refs)
	if string(b) != "[[0,1],[1048575,1764000000000],[7,-5]]" {
		t.Fatalf("encoded %s", b)
	}
	got, err := node.DecodeEntry(b)
	if err != nil || !reflect.DeepEqual(got, refs) {
		t.Fatalf("decoded %+v, %v", got, err)
	}
	if got, err := node.DecodeEntry(nil); err != nil || len(got) != 0 {
		t.Fatalf("nil: %+v, %v", got, err)
	}
	for _, bad := range []string{"{}", "[[1]]", "[[-1,0]]", "[[1048576,0]]", "[[1,2,3]]", "[[1,2]", `[["a",1]]`} {
		if _, err := node.DecodeEntry([]byte(bad)); !errors.Is(err, node.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", bad, err)
		}
	}
}

// dirEntry reads user's entry in the id directory partition dir of n,
// nil when there is none.
func dirEntry(t *testing.T, n *node.Node, dir, user string) []node.DirRef {
	t.Helper()
	it, err := n.Get(context.Background(), dir, user, false)
	if errors.Is(err, node.ErrNoItem) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	refs, err := node.DecodeEntry(it.Meta)
	if err != nil {
		t.Fatal(err)
	}
	return refs
}

// The partition primary's side of the id directory over the real store:
// an add merges into the stored entry and answers the entry as it was; a
// prune removes a list only once it was added longer ago than the
// settle time (a write naming it may still be in flight before), and an
// entry left with no list is deleted; a re-add restarts the settle time.
func TestDirMerge(t *testing.T) {
	ctx := context.Background()
	n, _ := openPebbleNode(t, node.Options{NodeID: "n1", AutoTrainAt: 1})
	const dir = "c~ids~0"
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: dir, Dim: 1, Metric: ivf.L2}); err != nil {
		t.Fatal(err)
	}
	settle := n.DirSettle().Milliseconds()
	t0 := time.Now().UnixMilli()
	entry := func(user string) []node.DirRef {
		t.Helper()
		return dirEntry(t, n, dir, user)
	}
	apply := func(op uint8, now int64, users []string, lists ...[]int32) []string {
		t.Helper()
		prior, err := n.DirApply(dir, op, users, lists, now)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]string, len(prior))
		for i, p := range prior {
			out[i] = string(p)
		}
		return out
	}

	if got := apply(proto.DirAdd, t0, []string{"a", "b"}, []int32{3}, []int32{4}); got[0] != "" || got[1] != "" {
		t.Fatalf("priors of new ids: %q", got)
	}
	if got := apply(proto.DirAdd, t0+1, []string{"a"}, []int32{5}); got[0] != "[[3,"+strconv.FormatInt(t0, 10)+"]]" {
		t.Fatalf("prior of a: %q", got)
	}
	if got := entry("a"); !reflect.DeepEqual(got, []node.DirRef{{3, t0}, {5, t0 + 1}}) {
		t.Fatalf("entry of a: %+v", got)
	}
	// Too recent: both stay.
	apply(proto.DirPrune, t0+settle, []string{"a"}, []int32{3, 5})
	if got := entry("a"); len(got) != 2 {
		t.Fatalf("entry of a after an early prune: %+v", got)
	}
	// List 3 has settled, 5 not yet.
	apply(proto.DirPrune, t0+settle+1, []string{"a"}, []int32{3, 5})
	if got := entry("a"); !reflect.DeepEqual(got, []node.DirRef{{5, t0 + 1}}) {
		t.Fatalf("entry of a after the prune: %+v", got)
	}
	// Added again: its settle time starts over.
	apply(proto.DirAdd, t0+settle+2, []string{"a"}, []int32{5})
	apply(proto.DirPrune, t0+settle+3, []string{"a"}, []int32{5})
	if got := entry("a"); !reflect.DeepEqual(got, []node.DirRef{{5, t0 + settle + 2}}) {
		t.Fatalf("entry of a after a re-add: %+v", got)
	}
	// Pruned of its last list: deleted. A prune of an absent entry or of
	// a list it does not name changes nothing.
	apply(proto.DirPrune, t0+3*settle, []string{"a", "b", "zz"}, []int32{5}, []int32{9}, []int32{1})
	if got := entry("a"); got != nil {
		t.Fatalf("entry of a pruned of every list: %+v", got)
	}
	if got := entry("b"); !reflect.DeepEqual(got, []node.DirRef{{4, t0}}) {
		t.Fatalf("entry of b: %+v", got)
	}
	if got := entry("zz"); got != nil {
		t.Fatalf("a prune created %+v", got)
	}
	if s, err := n.Describe(dir); err != nil || s.Count != 1 {
		t.Fatalf("directory count %d, %v; want 1 (b)", s.Count, err)
	}
	// Never trained, whatever its size (--auto-train-at 1 here).
	if s, _ := n.Describe(dir); s.State != node.Untrained {
		t.Fatalf("directory state %v", s.State)
	}
	// An operation with a bad entry is refused, and changes nothing.
	if _, err := n.DirApply(dir, 9, []string{"b"}, [][]int32{{1}}, t0); !errors.Is(err, node.ErrInvalid) {
		t.Fatalf("unknown operation: %v", err)
	}
	if got := entry("b"); !reflect.DeepEqual(got, []node.DirRef{{4, t0}}) {
		t.Fatalf("entry of b after a refused operation: %+v", got)
	}
	// A directory is not a collection users see.
	for _, s := range n.Collections() {
		if s.Name == dir {
			t.Fatal("the directory is listed")
		}
	}
}

// A prune does not trust another node's clock: entries stamped by an
// earlier primary whose clock was an hour behind, applied here, are
// spared for the settle time from this node's first merge after them.
func TestDirPruneSkewedStamp(t *testing.T) {
	ctx := context.Background()
	n, _ := openPebbleNode(t, node.Options{NodeID: "n1"})
	const dir = "c~ids~0"
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: dir, Dim: 1, Metric: ivf.L2}); err != nil {
		t.Fatal(err)
	}
	settle := n.DirSettle().Milliseconds()
	t0 := time.Now().UnixMilli()
	lists := func(user string) []int32 {
		t.Helper()
		var out []int32
		for _, r := range dirEntry(t, n, dir, user) {
			out = append(out, r.List)
		}
		return out
	}
	apply := func(op uint8, now int64, user string, l ...int32) {
		t.Helper()
		if _, err := n.DirApply(dir, op, []string{user}, [][]int32{l}, now); err != nil {
			t.Fatal(err)
		}
	}
	// The earlier primary stamps list 3 of a with its clock an hour
	// behind; the entry reaches this node as a replicated write does.
	hour := int64(time.Hour / time.Millisecond)
	apply(proto.DirAdd, t0-hour, "a", 3)
	if err := n.DirNoteForeign(dir); err != nil {
		t.Fatal(err)
	}
	// This node, now the primary, adds list 5 of b itself.
	apply(proto.DirAdd, t0, "b", 5)
	// By a's stamp list 3 is an hour old, but this node cannot tell it
	// is older than its first merge since the entry came: spared.
	apply(proto.DirPrune, t0+1, "a", 3)
	if got := lists("a"); !slices.Equal(got, []int32{3}) {
		t.Fatalf("a's lists after a prune right after the entry came from another node: %v, want [3]", got)
	}
	apply(proto.DirPrune, t0+settle, "a", 3)
	if got := lists("a"); !slices.Equal(got, []int32{3}) {
		t.Fatalf("a's lists after a prune at the settle time: %v, want [3]", got)
	}
	// Past the settle time from that first merge: pruned; b's own stamp
	// counts as before.
	apply(proto.DirPrune, t0+settle+1, "a", 3)
	apply(proto.DirPrune, t0+settle+1, "b", 5)
	if got := lists("a"); got != nil {
		t.Fatalf("a's lists past the settle time: %v", got)
	}
	if got := lists("b"); got != nil {
		t.Fatalf("b's lists past the settle time: %v", got)
	}
	// Entries applied from elsewhere again: the settle time starts over,
	// even for a list this node stamped itself.
	apply(proto.DirAdd, t0+settle+2, "c", 7)
	if err := n.DirNoteForeign(dir); err != nil {
		t.Fatal(err)
	}
	apply(proto.DirPrune, t0+2*settle+3, "c", 7)
	if got := lists("c"); !slices.Equal(got, []int32{7}) {
		t.Fatalf("c's lists after entries came from elsewhere: %v, want [7]", got)
	}
	apply(proto.DirPrune, t0+3*settle+4, "c", 7)
	if got := lists("c"); got != nil {
		t.Fatalf("c's lists past the settle time: %v", got)
	}
}

// A partition written by a build before 2026-11-27 holds its entries as
// items (the entry in the metadata, one float for a vector): opening it
// converts them to entries, with their internal ids, and leaves no item.
func TestDirItemsConvertedToEntries(t *testing.T) {
	ctx := context.Background()
	meta := nodetest.NewMeta()
	st, err := node.OpenPebble(t.TempDir(), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	const dir = "c~ids~0"
	n, err := node.Open(node.Options{NodeID: "n1"}, meta, st)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.CreateCollection(ctx, node.CollectionMeta{Name: dir, Dim: 1, Metric: ivf.L2}); err != nil {
		t.Fatal(err)
	}
	n.Close()
	var old []node.Item
	for i := range 5 {
		old = append(old, node.Item{ID: uint64(100 + i), UserID: fmt.Sprint("u", i), List: node.BufferList, Vector: []float32{0},
			Meta: node.EncodeEntry([]node.DirRef{{List: int32(i), Added: 1}})})
	}
	if _, err := st.Apply(&node.Batch{Collection: dir, Dim: 1, Puts: old}); err != nil {
		t.Fatal(err)
	}

	n, err = node.Open(node.Options{NodeID: "n1"}, meta, st)
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	if s, err := n.Describe(dir); err != nil || s.Count != 5 {
		t.Fatalf("count %d, %v; want 5", s.Count, err)
	}
	for _, it := range old {
		e, err := st.Entry(dir, it.UserID)
		if err != nil || e.ID != it.ID || string(e.Value) != string(it.Meta) {
			t.Fatalf("entry of %s: %+v %v, want id %d value %s", it.UserID, e, err, it.ID, it.Meta)
		}
		if got := dirEntry(t, n, dir, it.UserID); len(got) != 1 || got[0].List != int32(it.ID-100) {
			t.Fatalf("read of %s: %+v", it.UserID, got)
		}
	}
	left := 0
	if err := st.Scan(dir, func(node.Item) error { left++; return nil }); err != nil || left != 0 {
		t.Fatalf("%d items left after the conversion (%v)", left, err)
	}
	// The write log that named the items is gone too.
	num, err := st.CollectionNumber(dir)
	if err != nil {
		t.Fatal(err)
	}
	if last, truncated, err := st.Store().LastSeq(num, 0); err != nil || last == 0 || truncated != last {
		t.Fatalf("write log after the conversion: last %d, truncated through %d, %v", last, truncated, err)
	}
}

// decodeEntryJSON is decodeEntry as it was before its hand parser: the
// reference FuzzDecodeEntry holds it to.
func decodeEntryJSON(b []byte) ([]node.DirRef, bool) {
	if len(b) == 0 {
		return nil, true
	}
	var raw [][]int64
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) > 1<<16 {
		return nil, false
	}
	refs := make([]node.DirRef, len(raw))
	for i, r := range raw {
		if len(r) != 2 || r[0] < 0 || r[0] >= meta.MaxNList {
			return nil, false
		}
		refs[i] = node.DirRef{List: int32(r[0]), Added: r[1]}
	}
	return refs, true
}

// The hand parser of entries reads every input as encoding/json does:
// the same lists, or an error (ErrInvalid) for the same inputs.
func FuzzDecodeEntry(f *testing.F) {
	for _, s := range []string{"[[0,1],[1048575,1764000000000],[7,-5]]", "[[3,0]]", "[ [3,0] ]", "[[03,0]]", "[[-0,0]]",
		"[[1,-0]]", "[[1,123456789012345678]]", "[[1,1234567890123456789]]", "[[1,99999999999999999999]]", "[[1048576,0]]",
		"[[1,2],]", "[[1,2]", "[]", "null", "[[1,2],[3,4]]", "[[1,2][3,4]]", "[[1,2],[3,4]]]", "[[1.0,2]]", "[[1,2,3]]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, ok := decodeEntryJSON(b)
		got, err := node.DecodeEntry(b)
		if !ok {
			if !errors.Is(err, node.ErrInvalid) {
				t.Fatalf("%q: %+v, %v; encoding/json refuses it", b, got, err)
			}
			return
		}
		if err != nil || len(got) != len(want) || len(want) > 0 && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: %+v, %v; encoding/json reads %+v", b, got, err, want)
		}
	})
}

// BenchmarkDecodeEntry: the entry a new id gets (one list) and one of
// three lists, as the partition's primary decodes them on every write.
func BenchmarkDecodeEntry(b *testing.B) {
	for _, refs := range [][]node.DirRef{{{List: 117, Added: 1764224000000}}, {{List: 3, Added: 1764224000000}, {List: 250, Added: 1764224001234}, {List: 9, Added: 1764224005678}}} {
		e := node.EncodeEntry(refs)
		b.Run(fmt.Sprint("lists=", len(refs)), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := node.DecodeEntry(e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
