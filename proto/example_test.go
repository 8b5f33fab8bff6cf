package proto_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"lookalike/proto"
)

func ExampleDecodeInsert() {
	body := `{"items":[{"id":"a","vector":[1,2,3]},{"id":"b","vector":[1,2]},{"vector":[1,2,1e39]}]}`
	req, err := proto.DecodeInsert(strings.NewReader(body), proto.Limits{})
	fmt.Println(err)
	req, err = proto.DecodeInsert(strings.NewReader(`{"items":[{"id":"a","vector":[1,2,3]},{"id":"b","vector":[1,2]}]}`), proto.Limits{})
	fmt.Println(len(req.Items), err)
	// The collection's dim and metric are checked by the server.
	fmt.Println(req.ValidateVectors(3, proto.L2))
	// Output:
	// items[2].vector[2]: 1e39 is not finite in float32 (beyond ±3.4028235e+38)
	// 2 <nil>
	// items[1].vector: 2 components, collection dim is 3
}

func ExampleEncodeBulk() {
	var body bytes.Buffer
	items := []proto.InsertItem{
		{ID: "cat.jpg", Vector: []float32{0.5, -1}, Meta: []byte(`{"path":"/img/cat.jpg"}`)},
		{Vector: []float32{0, 1}}, // the server generates its id
	}
	if err := proto.EncodeBulk(&body, items, true); err != nil {
		panic(err)
	}
	// POST it with Content-Type: proto.BulkContentType. The server reads it with:
	req, err := proto.DecodeBulk(&body, proto.Limits{})
	fmt.Println(len(req.Items), req.Items[0].ID, req.Items[1].Vector, err)
	// Output: 2 cat.jpg [0 1] <nil>
}

func ExampleToError() {
	// A package tags its sentinel once ...
	errNoCollection := proto.Wrap(proto.NotFound, errors.New("no such collection"))
	// ... wraps it with context as usual ...
	err := fmt.Errorf("search %q: %w", "imgs", errNoCollection)
	// ... and the HTTP layer maps every error in one place.
	e := proto.ToError(err)
	fmt.Println(e.Code.HTTPStatus(), e.Code, e.Message, errors.Is(e, errNoCollection))
	// Output: 404 not_found search "imgs": no such collection true
}
