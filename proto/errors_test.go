package proto

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
)

func TestHTTPStatus(t *testing.T) {
	for code, status := range map[Code]int{
		BadRequest: 400, NotFound: 404, Conflict: 409, Unauthorized: 401,
		TooLarge: 413, Overloaded: 429, Unavailable: 503, Internal: 500, "nonsense": 500,
	} {
		if got := code.HTTPStatus(); got != status {
			t.Errorf("%s: %d, want %d", code, got, status)
		}
		if code.Valid() != (code != "nonsense") {
			t.Errorf("%s: Valid %v", code, code.Valid())
		}
	}
}

func TestWrapAndToError(t *testing.T) {
	errNoCollection := Wrap(NotFound, errors.New("node: no such collection"))
	errBase := errors.New("base")
	errOverloaded := Wrap(Overloaded, errBase)
	for _, c := range []struct {
		err  error
		code Code
		msg  string
		is   error
	}{
		{fmt.Errorf("search %q: %w", "imgs", errNoCollection), NotFound, `search "imgs": node: no such collection`, errNoCollection},
		{fmt.Errorf("insert: %w", errOverloaded), Overloaded, "insert: base", errBase},
		{Errorf(Conflict, "collection %q exists: %w", "x", errBase), Conflict, `collection "x" exists: base`, errBase},
		{fmt.Errorf("call shard 3: %w", context.DeadlineExceeded), Unavailable, "call shard 3: context deadline exceeded", context.DeadlineExceeded},
		{errors.New("disk on fire"), Internal, "disk on fire", nil},
		{&Error{Code: "weird", Message: "m"}, Internal, "m", nil},
	} {
		e := ToError(c.err)
		if e.Code != c.code || e.Message != c.msg {
			t.Errorf("%v: %s %q, want %s %q", c.err, e.Code, e.Message, c.code, c.msg)
		}
		if c.is != nil && !errors.Is(e, c.is) {
			t.Errorf("%v: errors.Is lost %v", c.err, c.is)
		}
	}
	if ToError(nil) != nil || Wrap(BadRequest, nil) != nil || CodeOf(nil) != "" {
		t.Error("nil not kept")
	}
	b, _ := json.Marshal(ErrorBody{Error: ToError(fmt.Errorf("x: %w", errNoCollection))})
	if string(b) != `{"error":{"code":"not_found","message":"x: node: no such collection"}}` {
		t.Errorf("error body %s", b)
	}
	var back ErrorBody
	if err := json.Unmarshal(b, &back); err != nil || back.Error.Code != NotFound {
		t.Errorf("error body does not decode: %v %+v", err, back)
	}
}
