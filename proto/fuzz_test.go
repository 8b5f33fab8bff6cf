package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
)

// Each request decoder has a fuzz target. They check that a decoder never
// panics, that it fails only with an *Error of a known code, that what it
// accepts passes Validate, and that what it accepts survives encoding and
// decoding again unchanged.

func checkDecodeErr(t *testing.T, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !e.Code.Valid() || e.Code == Internal || e.Message == "" {
		t.Fatalf("error %v (%T) is not a client *Error", err, err)
	}
}

var jsonSeeds = []string{
	``, `{}`, `[]`, `null`, `"x"`, `{"a":1}`, `{"k":1,"k":2}`, "{\"id\":\"\xff\"}",
	`{"name":"imgs","metric":"l2","dim":128}`,
	`{"name":"a-b_c9","metric":"cosine","dim":3,"nlist":"auto","replicas":3,"model":"m.v2"}`,
	`{"name":"x","metric":"ip","dim":65536,"nlist":1024}`,
	`{"items":[{"id":"a","vector":[1,2.5,-3e-2],"meta":{"p":"/x.jpg"}},{"vector":[0,0,1e38]}]}`,
	`{"items":[{"vector":[1,1e39]},{"vector":[1],"id":""},{"vector":[]}]}`,
	`{"vector":[1,2,3],"k":1024,"nprobe":16,"refine":4}`,
	`{"id":"cat.jpg","k":1,"refine":0}`,
	`{"nlist":256}`, `{"nlist":"auto"}`, `{"n\u0061me":"x"}`, `{"vector":[1e-50,-0,0.1]}`,
}

func FuzzDecodeCreateCollection(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := DecodeCreateCollection(bytes.NewReader(body), Limits{})
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted %q but Validate: %v", body, err)
		}
		again, err := DecodeCreateCollection(bytes.NewReader(mustJSON(t, c)), Limits{})
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("%+v → JSON → %+v, %v", c, again, err)
		}
	})
}

func FuzzDecodeInsert(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	lim := Limits{MaxItems: 50, MaxMetaBytes: 200}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeInsert(bytes.NewReader(body), lim)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if err := r.Validate(lim); err != nil {
			t.Fatalf("accepted %q but Validate: %v", body, err)
		}
		again, err := DecodeInsert(bytes.NewReader(mustJSON(t, r)), lim)
		if err != nil {
			t.Fatalf("%+v → JSON: %v", r, err)
		}
		sameInsert(t, again, r)
		// The same batch through the bulk format.
		dim := len(r.Items[0].Vector)
		for _, it := range r.Items {
			if len(it.Vector) != dim {
				return
			}
		}
		var buf bytes.Buffer
		if err := EncodeBulk(&buf, r.Items, true); err != nil {
			t.Fatal(err)
		}
		bulk, err := DecodeBulk(&buf, lim)
		if err != nil {
			t.Fatalf("%+v → bulk: %v", r, err)
		}
		sameInsert(t, bulk, r)
	})
}

func FuzzDecodeSearch(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		s, err := DecodeSearch(bytes.NewReader(body), Limits{})
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if err := s.Validate(); err != nil {
			t.Fatalf("accepted %q but Validate: %v", body, err)
		}
		again, err := DecodeSearch(bytes.NewReader(mustJSON(t, s)), Limits{})
		if err != nil || !reflect.DeepEqual(again, s) {
			t.Fatalf("%+v → JSON → %+v, %v", s, again, err)
		}
	})
}

func FuzzDecodeTrain(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tr, err := DecodeTrain(bytes.NewReader(body), Limits{})
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		if err := tr.Validate(); err != nil {
			t.Fatalf("accepted %q but Validate: %v", body, err)
		}
		again, err := DecodeTrain(bytes.NewReader(mustJSON(t, tr)), Limits{})
		if err != nil || again != tr {
			t.Fatalf("%+v → JSON → %+v, %v", tr, again, err)
		}
	})
}

func FuzzDecodeBulk(f *testing.F) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{1, 3} {
		for _, dim := range []int{1, 4} {
			for _, crc := range []bool{false, true} {
				f.Add(encodeBulk(f, randomItems(rng, n, dim), crc))
			}
		}
	}
	f.Add(header(1, 0, 1e9, 1<<31))
	f.Add(cat(header(1, 0, 2, 2), item("a", []float32{1, 2}, `{"x":[1]}`), item("a", []float32{1, 2}, "")))
	lim := Limits{MaxItems: 100, MaxMetaBytes: 300, MaxBodyBytes: 1 << 20}
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := DecodeBulk(bytes.NewReader(body), lim)
		// The streaming decoder agrees on acceptance, except for repeated
		// ids, which only the batch check sees.
		d := NewBulkDecoder(bytes.NewReader(body), lim)
		n := 0
		for d.Next() {
			n++
		}
		if err != nil {
			checkDecodeErr(t, err)
			if d.Err() == nil && !strings.Contains(err.Error(), "repeats items[") {
				t.Fatalf("streaming accepted what DecodeBulk refused: %v", err)
			}
			return
		}
		if d.Err() != nil || n != len(r.Items) {
			t.Fatalf("DecodeBulk accepted %d items, streaming %d: %v", len(r.Items), n, d.Err())
		}
		if err := r.Validate(lim); err != nil {
			t.Fatalf("accepted but Validate: %v", err)
		}
		if err := r.ValidateVectors(len(r.Items[0].Vector), L2); err != nil {
			t.Fatalf("items of several dims: %v", err)
		}
		h, _ := NewBulkDecoder(bytes.NewReader(body), lim).Header()
		var buf bytes.Buffer
		if err := EncodeBulk(&buf, r.Items, h.Flags&BulkCRC != 0); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), body) {
			t.Fatalf("re-encoding differs from the accepted body")
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameInsert compares two batches, meta by JSON value.
func sameInsert(t *testing.T, got, want Insert) {
	t.Helper()
	if len(got.Items) != len(want.Items) {
		t.Fatalf("%d items, want %d", len(got.Items), len(want.Items))
	}
	for i := range got.Items {
		g, w := got.Items[i], want.Items[i]
		if g.ID != w.ID || !reflect.DeepEqual(g.Vector, w.Vector) {
			t.Fatalf("item %d: %+v, want %+v", i, g, w)
		}
		var gm, wm any
		if (g.Meta == nil) != (w.Meta == nil) {
			t.Fatalf("item %d: meta %s, want %s", i, g.Meta, w.Meta)
		}
		if g.Meta != nil {
			if json.Unmarshal(g.Meta, &gm) != nil || json.Unmarshal(w.Meta, &wm) != nil || !reflect.DeepEqual(gm, wm) {
				t.Fatalf("item %d: meta %s, want %s", i, g.Meta, w.Meta)
			}
		}
	}
}
