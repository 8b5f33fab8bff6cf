package proto

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
)

// wantErr checks that err is an *Error with code whose message contains
// every part.
func wantErr(t *testing.T, err error, code Code, parts ...string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T), want an *Error with code %s", err, err, code)
	}
	if e.Code != code {
		t.Errorf("code %s, want %s (message %q)", e.Code, code, e.Message)
	}
	for _, p := range parts {
		if !strings.Contains(e.Message, p) {
			t.Errorf("message %q lacks %q", e.Message, p)
		}
	}
}

func TestDecodeCreateCollection(t *testing.T) {
	good := []struct {
		body string
		want CreateCollection
	}{
		{`{"name":"imgs","metric":"l2","dim":128}`, CreateCollection{Name: "imgs", Metric: L2, Dim: 128}},
		{` {"name":"a-b_c9","metric":"cosine","dim":3,"nlist":"auto","replicas":3} `, CreateCollection{Name: "a-b_c9", Metric: Cosine, Dim: 3, Replicas: 3}},
		{`{"name":"x","metric":"ip","dim":65536,"nlist":1024}`, CreateCollection{Name: "x", Metric: IP, Dim: 65536, NList: 1024}},
		{`{"name":"photos","metric":"cosine","model":"mobilenet_v2_mid"}`, CreateCollection{Name: "photos", Metric: Cosine, Model: "mobilenet_v2_mid"}},
		{`{"name":"photos","metric":"cosine","model":"m","dim":1792,"nlist":null}`, CreateCollection{Name: "photos", Metric: Cosine, Dim: 1792, Model: "m"}},
		{`{"n\u0061me":"esc","metric":"l2","dim":1}`, CreateCollection{Name: "esc", Metric: L2, Dim: 1}},
	}
	for _, g := range good {
		got, err := DecodeCreateCollection(strings.NewReader(g.body), Limits{})
		if err != nil {
			t.Errorf("%s: %v", g.body, err)
			continue
		}
		if !reflect.DeepEqual(got, g.want) {
			t.Errorf("%s: got %+v, want %+v", g.body, got, g.want)
		}
	}
	bad := []struct {
		body  string
		code  Code
		parts []string
	}{
		{``, BadRequest, []string{"body", "empty"}},
		{`{"name":"x","metric":"l2","dim":3`, BadRequest, []string{"malformed JSON"}},
		{`{"name":"x","metric":"l2","dim":3} {}`, BadRequest, []string{"malformed JSON"}},
		{`{"name":"x","metric":"l2","dim":3}x`, BadRequest, []string{"malformed JSON"}},
		{`[1,2]`, BadRequest, []string{"body", "want a JSON object"}},
		{`{"name":"x","metric":"l2","dim":3,"color":"red"}`, BadRequest, []string{"color: unknown field"}},
		{`{"NAME":"x","metric":"l2","dim":3}`, BadRequest, []string{"NAME: unknown field", "name: missing"}},
		{`{"name":"x","name":"y","metric":"l2","dim":3}`, BadRequest, []string{"name: given twice"}},
		{`{"name":"x","metric":"l2"}`, BadRequest, []string{"dim: missing"}},
		{`{"metric":"l2","dim":3}`, BadRequest, []string{"name: missing"}},
		{`{"name":"x","dim":3}`, BadRequest, []string{"metric: missing"}},
		{`{"name":"x","metric":"euclid","dim":3}`, BadRequest, []string{"metric", "want l2, ip or cosine"}},
		{`{"name":"x","metric":"L2","dim":3}`, BadRequest, []string{"metric"}},
		{`{"name":"x","metric":"l2","dim":0}`, BadRequest, []string{"dim: got 0"}},
		{`{"name":"x","metric":"l2","dim":65537}`, BadRequest, []string{"dim: got 65537", "1..65536"}},
		{`{"name":"x","metric":"l2","dim":3.5}`, BadRequest, []string{"dim: got 3.5"}},
		{`{"name":"x","metric":"l2","dim":"3"}`, BadRequest, []string{"dim: got a string", "want an integer"}},
		{`{"name":"x","metric":"l2","dim":1e99}`, BadRequest, []string{"dim: got 1e99"}},
		{`{"name":"x","metric":"l2","dim":3,"nlist":0}`, BadRequest, []string{"nlist: got 0", `"auto"`}},
		{`{"name":"x","metric":"l2","dim":3,"nlist":"many"}`, BadRequest, []string{"nlist"}},
		{`{"name":"x","metric":"l2","dim":3,"nlist":2000000}`, BadRequest, []string{"nlist: got 2000000"}},
		{`{"name":"x","metric":"l2","dim":3,"replicas":0}`, BadRequest, []string{"replicas: got 0"}},
		{`{"name":"x","metric":"l2","dim":3,"replicas":-1}`, BadRequest, []string{"replicas: got -1"}},
		{`{"name":"x","metric":"l2","dim":3,"model":""}`, BadRequest, []string{"model: empty"}},
		{`{"name":"x","metric":"l2","model":"a b"}`, BadRequest, []string{"model", "byte 1"}},
		{`{"name":"Imgs","metric":"l2","dim":3}`, BadRequest, []string{"name", "byte 0"}},
		{`{"name":"_x","metric":"l2","dim":3}`, BadRequest, []string{"name", "byte 0"}},
		{`{"name":"a/b","metric":"l2","dim":3}`, BadRequest, []string{"name", "byte 1"}},
		{`{"name":"` + strings.Repeat("a", 65) + `","metric":"l2","dim":3}`, BadRequest, []string{"name", "65 bytes"}},
		{`{"name":"","metric":"l2","dim":3}`, BadRequest, []string{"name", "empty"}},
		{"{\"name\":\"x\xff\",\"metric\":\"l2\",\"dim\":3}", BadRequest, []string{"not valid UTF-8", "byte 10"}},
		// several problems at once
		{`{"name":"X","metric":"l3","dim":0,"replicas":0}`, BadRequest, []string{"dim: got 0", "replicas: got 0"}},
		{`{"name":"X","metric":"l3","dim":5}`, BadRequest, []string{"name:", "metric:"}},
	}
	for _, b := range bad {
		_, err := DecodeCreateCollection(strings.NewReader(b.body), Limits{})
		t.Run(clip(b.body, 40), func(t *testing.T) { wantErr(t, err, b.code, b.parts...) })
	}
	_, err := DecodeCreateCollection(strings.NewReader(`{"name":"x","metric":"l2","dim":3}`+strings.Repeat(" ", 100)), Limits{MaxBodyBytes: 50})
	wantErr(t, err, TooLarge, "limit of 50 bytes")
}

func TestDecodeInsert(t *testing.T) {
	got, err := DecodeInsert(strings.NewReader(`{"items":[
		{"id":"a","vector":[1,2.5,-3e-2],"meta":{"path":"/x.jpg","tags":["a"]}},
		{"vector":[0,0,1e38]},
		{"id":"日本","vector":[1,1,1],"meta":null}]}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := Insert{Items: []InsertItem{
		{ID: "a", Vector: []float32{1, 2.5, -3e-2}, Meta: json.RawMessage(`{"path":"/x.jpg","tags":["a"]}`)},
		{Vector: []float32{0, 0, 1e38}},
		{ID: "日本", Vector: []float32{1, 1, 1}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if err := got.ValidateVectors(3, L2); err != nil {
		t.Fatal(err)
	}
	err = got.ValidateVectors(4, L2)
	wantErr(t, err, BadRequest, "items[0].vector: 3 components, collection dim is 4", "items[1].vector", "items[2].vector")

	zero := Insert{Items: []InsertItem{{Vector: []float32{1, 0}}, {Vector: []float32{0, 0}}}}
	if err := zero.ValidateVectors(2, L2); err != nil {
		t.Fatal(err)
	}
	wantErr(t, zero.ValidateVectors(2, Cosine), BadRequest, "items[1].vector: zero vector")

	long := `"` + strings.Repeat("é", 129) + `"` // 258 bytes
	bad := []struct {
		body  string
		lim   Limits
		code  Code
		parts []string
	}{
		{`{}`, Limits{}, BadRequest, []string{"items: empty batch"}},
		{`{"items":[]}`, Limits{}, BadRequest, []string{"items: empty batch"}},
		{`{"items":{}}`, Limits{}, BadRequest, []string{"items: got an object, want an array"}},
		{`{"items":[{"vector":[1]}],"x":1}`, Limits{}, BadRequest, []string{"x: unknown field"}},
		{`{"items":[{"vector":[1]},{"vector":[1],"Id":"a"}]}`, Limits{}, BadRequest, []string{"items[1].Id: unknown field"}},
		{`{"items":[{"vector":[1]},{"vector":[1]},{"vector":[1]}]}`, Limits{MaxItems: 2}, TooLarge, []string{"3 items, limit is 2"}},
		{`{"items":[{"vector":[1]},{"id":"x"}]}`, Limits{}, BadRequest, []string{"items[1].vector: missing"}},
		{`{"items":[{"vector":[]}]}`, Limits{}, BadRequest, []string{"items[0].vector: empty vector"}},
		{`{"items":[{"vector":"1,2"}]}`, Limits{}, BadRequest, []string{"items[0].vector: got a string, want an array"}},
		{`{"items":[{"vector":[1,"2",3]}]}`, Limits{}, BadRequest, []string{"items[0].vector[1]: got a string, want a number"}},
		{`{"items":[{"vector":[1,null]}]}`, Limits{}, BadRequest, []string{"items[0].vector[1]: got null"}},
		{`{"items":[{"vector":[1,2]},{"vector":[1,1e39]}]}`, Limits{}, BadRequest, []string{"items[1].vector[1]", "not finite"}},
		{`{"items":[{"vector":[-1e300]}]}`, Limits{}, BadRequest, []string{"items[0].vector[0]", "not finite"}},
		{`{"items":[{"vector":[1],"id":""}]}`, Limits{}, BadRequest, []string{"items[0].id: empty"}},
		{`{"items":[{"vector":[1],"id":7}]}`, Limits{}, BadRequest, []string{"items[0].id: got number 7, want a string"}},
		{`{"items":[{"vector":[1],"id":` + long + `}]}`, Limits{}, BadRequest, []string{"items[0].id: id of 258 bytes, limit is 256"}},
		{`{"items":[{"vector":[1],"id":"a"},{"vector":[1],"id":"b"},{"vector":[1],"id":"a"}]}`, Limits{}, BadRequest, []string{`items[2].id: "a" repeats items[0]`}},
		{`{"items":[{"vector":[1],"meta":[1]}]}`, Limits{}, BadRequest, []string{"items[0].meta: got an array, want a JSON object"}},
		{`{"items":[{"vector":[1],"meta":"x"}]}`, Limits{}, BadRequest, []string{"items[0].meta: got a string"}},
		{`{"items":[{"vector":[1],"meta":{"a":"` + strings.Repeat("x", 100) + `"}}]}`, Limits{MaxMetaBytes: 64}, TooLarge, []string{"items[0].meta: 108 bytes, limit is 64"}},
		{`{"items":[{"vector":[1],"vector":[2]}]}`, Limits{}, BadRequest, []string{"items[0].vector: given twice"}},
		{`{"items":[7]}`, Limits{}, BadRequest, []string{"items[0]: got number 7, want a JSON object"}},
		{`{"items":[{"vector":[1]}]`, Limits{}, BadRequest, []string{"malformed JSON"}},
	}
	for _, b := range bad {
		_, err := DecodeInsert(strings.NewReader(b.body), b.lim)
		t.Run(clip(b.body, 50), func(t *testing.T) { wantErr(t, err, b.code, b.parts...) })
	}
}

// A batch with many bad items reports each, with its index, up to a cap.
func TestDecodeInsertReportsEveryItem(t *testing.T) {
	var items []string
	for i := range 30 {
		items = append(items, fmt.Sprintf(`{"id":"%d","vector":[1,2e40]}`, i))
	}
	_, err := DecodeInsert(strings.NewReader(`{"items":[`+strings.Join(items, ",")+`]}`), Limits{})
	parts := []string{"and 10 more"}
	for i := range maxListed {
		parts = append(parts, fmt.Sprintf("items[%d].vector[1]", i))
	}
	wantErr(t, err, BadRequest, parts...)
}

func TestDecodeSearch(t *testing.T) {
	good := []struct {
		body string
		want Search
	}{
		{`{"vector":[1,2,3]}`, Search{Vector: []float32{1, 2, 3}, K: 10}},
		{`{"vector":[1,2,3],"k":1024,"nprobe":16,"refine":4}`, Search{Vector: []float32{1, 2, 3}, K: 1024, NProbe: 16, Refine: 4}},
		{`{"id":"cat.jpg","k":1,"refine":0}`, Search{ID: "cat.jpg", K: 1}},
		{`{"id":"x","vector":null}`, Search{ID: "x", K: 10}},
	}
	for _, g := range good {
		got, err := DecodeSearch(strings.NewReader(g.body), Limits{})
		if err != nil {
			t.Errorf("%s: %v", g.body, err)
			continue
		}
		if !reflect.DeepEqual(got, g.want) {
			t.Errorf("%s: got %+v, want %+v", g.body, got, g.want)
		}
	}
	bad := []struct {
		body  string
		code  Code
		parts []string
	}{
		{`{}`, BadRequest, []string{"give vector or id"}},
		{`{"vector":[1],"id":"a"}`, BadRequest, []string{"not both"}},
		{`{"vector":[1],"k":0}`, BadRequest, []string{"k: got 0", "1..1024"}},
		{`{"vector":[1],"k":1025}`, BadRequest, []string{"k: got 1025"}},
		{`{"vector":[1],"k":-5}`, BadRequest, []string{"k: got -5"}},
		{`{"vector":[1],"k":"10"}`, BadRequest, []string{"k: got a string"}},
		{`{"vector":[1],"nprobe":0}`, BadRequest, []string{"nprobe: got 0"}},
		{`{"vector":[1],"refine":65}`, BadRequest, []string{"refine: got 65", "0..64"}},
		{`{"vector":[1],"refine":-1}`, BadRequest, []string{"refine: got -1"}},
		{`{"vector":[1,1e39]}`, BadRequest, []string{"vector[1]", "not finite"}},
		{`{"vector":[]}`, BadRequest, []string{"vector: empty"}},
		{`{"id":""}`, BadRequest, []string{"id: empty"}},
		{`{"id":"` + strings.Repeat("a", 257) + `"}`, BadRequest, []string{"id: id of 257 bytes"}},
		{`{"vector":[1],"K":3}`, BadRequest, []string{"K: unknown field"}},
		{`{"vector":[1],"k":3,"k":4}`, BadRequest, []string{"k: given twice"}},
		{`{"vector":[1],"k":0,"refine":99}`, BadRequest, []string{"k: got 0", "refine: got 99"}},
		{`"cat"`, BadRequest, []string{"body: got a string, want a JSON object"}},
	}
	for _, b := range bad {
		_, err := DecodeSearch(strings.NewReader(b.body), Limits{})
		t.Run(clip(b.body, 40), func(t *testing.T) { wantErr(t, err, b.code, b.parts...) })
	}
	s := Search{Vector: []float32{1, 2}, K: 10}
	if err := s.ValidateVector(2, Cosine); err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.ValidateVector(3, L2), BadRequest, "vector: 2 components, collection dim is 3")
	byID := Search{ID: "x", K: 10}
	if err := byID.ValidateVector(3, L2); err != nil {
		t.Fatal(err)
	}
}

func TestDecodeTrain(t *testing.T) {
	for body, want := range map[string]Train{``: {}, "  \n": {}, `{}`: {}, `{"nlist":"auto"}`: {}, `{"nlist":256}`: {NList: 256}} {
		got, err := DecodeTrain(strings.NewReader(body), Limits{})
		if err != nil || got != want {
			t.Errorf("%q: got %+v, %v; want %+v", body, got, err, want)
		}
	}
	for body, part := range map[string]string{`{"nlist":0}`: "nlist: got 0", `{"n":1}`: "n: unknown field", `[]`: "want a JSON object", `{`: "malformed"} {
		_, err := DecodeTrain(strings.NewReader(body), Limits{})
		wantErr(t, err, BadRequest, part)
	}
}

func TestNListJSON(t *testing.T) {
	for _, n := range []NList{NListAuto, 1, 4096, MaxNList} {
		b, err := json.Marshal(CreateCollection{NList: n})
		if err != nil {
			t.Fatal(err)
		}
		var back CreateCollection
		if err := json.Unmarshal(b, &back); err != nil || back.NList != n {
			t.Errorf("%v: %s → %v, %v", n, b, back.NList, err)
		}
	}
	if b, _ := json.Marshal(NListAuto); string(b) != `"auto"` {
		t.Errorf("auto marshals as %s", b)
	}
}

// Responses marshal with DESIGN.md's field names.
func TestResponseShapes(t *testing.T) {
	for _, c := range []struct {
		v    any
		want string
	}{
		{Inserted{Inserted: 2, IDs: []string{"a", "b"}}, `{"inserted":2,"ids":["a","b"]}`},
		{SearchResult{Hits: []Hit{{ID: "a", Score: 0.5, Meta: json.RawMessage(`{"x":1}`)}}, TookMS: 1.25}, `{"hits":[{"id":"a","score":0.5,"meta":{"x":1}}],"took_ms":1.25,"partial":false}`},
		{SearchResult{Hits: []Hit{}, Partial: true, MissingShards: []string{"imgs/3"}}, `{"hits":[],"took_ms":0,"partial":true,"missing_shards":["imgs/3"]}`},
		{Item{ID: "a", Meta: json.RawMessage(`{}`)}, `{"id":"a","meta":{}}`},
		{ErrorBody{Errorf(NotFound, "collection %q: not found", "x")}, `{"error":{"code":"not_found","message":"collection \"x\": not found"}}`},
		{Collections{Collections: []Collection{{Name: "a", Dim: 2, Metric: L2, Replicas: 1, State: Untrained}}},
			`{"collections":[{"name":"a","dim":2,"metric":"l2","nlist":"auto","replicas":1,"model":"","count":0,"state":"untrained","trained_nlist":0,"epoch":0}]}`},
	} {
		b, err := json.Marshal(c.v)
		if err != nil || string(b) != c.want {
			t.Errorf("got %s, %v\nwant %s", b, err, c.want)
		}
	}
}

func TestFirstNonFinite(t *testing.T) {
	v := []float32{1, 2, 3}
	if firstNonFinite(v) != -1 {
		t.Fatal("finite reported")
	}
	for _, x := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		v[1] = x
		if firstNonFinite(v) != 1 {
			t.Errorf("%v not found", x)
		}
	}
}

// Problems found while parsing and while validating are reported together.
func TestDecodeInsertMixedProblems(t *testing.T) {
	_, err := DecodeInsert(strings.NewReader(`{"items":[7,{"vector":[1,"x"]},{"vector":[1e39]},{"id":"a","vector":[1]},{"id":"a","vector":[2]}]}`), Limits{})
	wantErr(t, err, BadRequest, "items[0]: got number 7", "items[1].vector[1]: got a string", "items[2].vector[0]", `items[4].id: "a" repeats items[3]`)
	if strings.Contains(err.Error(), "items[0].vector") || strings.Count(err.Error(), "items[1]") != 1 {
		t.Errorf("an item reported twice: %v", err)
	}
}

// A decoded batch owns its memory: decoding the next body, which reuses the
// first one's buffer, leaves it as it was.
func TestDecodeInsertOwnsItsMemory(t *testing.T) {
	first, err := DecodeInsert(strings.NewReader(`{"items":[{"id":"a","vector":[1,2],"meta":{"k":"first"}}]}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if _, err := DecodeInsert(strings.NewReader(`{"items":[{"id":"z","vector":[9,9],"meta":{"k":"SECOND"}}]}`), Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	it := first.Items[0]
	if it.ID != "a" || string(it.Meta) != `{"k":"first"}` || it.Vector[0] != 1 {
		t.Fatalf("first batch changed: %+v %s", it, it.Meta)
	}
}

// Type problems and range problems of different fields come in one answer,
// and a field is reported once.
func TestDecodeReportsAllFieldsOnce(t *testing.T) {
	_, err := DecodeCreateCollection(strings.NewReader(`{"name":"X","metric":"l3","dim":"8","replicas":0}`), Limits{})
	wantErr(t, err, BadRequest, "name: collection name", "metric: \"l3\"", "dim: got a string", "replicas: got 0")
	if strings.Count(err.Error(), "dim:") != 1 || strings.Count(err.Error(), "replicas:") != 1 {
		t.Errorf("a field reported twice: %v", err)
	}
	c, err := DecodeCreateCollection(strings.NewReader(`{"name":"x","metric":"l2","dim":2,"replicas":null}`), Limits{})
	if err != nil || c.Replicas != 0 {
		t.Errorf("replicas null: %+v, %v", c, err)
	}
	_, err = DecodeSearch(strings.NewReader(`{"vector":[1,"x"],"k":0,"refine":65}`), Limits{})
	wantErr(t, err, BadRequest, "vector[1]: got a string", "k: got 0", "refine: got 65")
	if strings.Contains(err.Error(), "give vector or id") || strings.Count(err.Error(), "k:") != 1 {
		t.Errorf("%v", err)
	}
}
