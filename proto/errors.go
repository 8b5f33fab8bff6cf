package proto

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Code is the machine-readable kind of an API error. The values are part of
// the API: append only.
type Code string

// Error codes, as DESIGN.md's HTTP API v1 lists them.
const (
	BadRequest   Code = "bad_request"  // 400: the request is malformed or invalid
	NotFound     Code = "not_found"    // 404: no such collection or item
	Conflict     Code = "conflict"     // 409: the collection exists, or the state forbids the call
	Unauthorized Code = "unauthorized" // 401: missing or wrong API key
	TooLarge     Code = "too_large"    // 413: body, batch or field over a limit
	Overloaded   Code = "overloaded"   // 429: a queue is full; retry after Retry-After
	Unavailable  Code = "unavailable"  // 503: no live replica, no leader, or a deadline passed
	Internal     Code = "internal"     // 500: a bug or an unexpected storage failure
)

// HTTPStatus is the one mapping from an error code to its HTTP status. An
// unknown code maps to 500.
func (c Code) HTTPStatus() int {
	switch c {
	case BadRequest:
		return http.StatusBadRequest
	case NotFound:
		return http.StatusNotFound
	case Conflict:
		return http.StatusConflict
	case Unauthorized:
		return http.StatusUnauthorized
	case TooLarge:
		return http.StatusRequestEntityTooLarge
	case Overloaded:
		return http.StatusTooManyRequests
	case Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// Valid reports whether c is one of the codes above.
func (c Code) Valid() bool {
	switch c {
	case BadRequest, NotFound, Conflict, Unauthorized, TooLarge, Overloaded, Unavailable, Internal:
		return true
	}
	return false
}

// Error is the one API error. Its JSON form is the value of "error" in an
// error body: {"error":{"code":"not_found","message":"..."}} (see
// ErrorBody). It may wrap a cause, which errors.Is and errors.As see; the
// cause is not sent.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	err     error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the wrapped cause, if any.
func (e *Error) Unwrap() error { return e.err }

// Errorf returns an *Error with code and a message formatted as
// fmt.Errorf does; a %w verb makes the cause visible to errors.Is.
func Errorf(code Code, format string, args ...any) *Error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), err: err}
}

// Wrap gives err an API code: the result's message is err's and errors.Is
// still finds err and its causes. Packages use it to tag their sentinels
// once, where they are defined:
//
//	var ErrNoCollection = proto.Wrap(proto.NotFound, errors.New("node: no such collection"))
//
// and wrap them with context as usual (fmt.Errorf("search %q: %w", c,
// ErrNoCollection)); ToError then finds the code. Wrap(code, nil) is nil.
func Wrap(code Code, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Message: err.Error(), err: err}
}

// CodeOf is the code of the first *Error in err's chain, Unavailable for a
// passed context deadline, Internal otherwise (and "" for nil).
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code.Valid() {
		return e.Code
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return Unavailable
	}
	return Internal
}

// ToError turns any error into the *Error the HTTP layer sends: its code
// is CodeOf(err) and its message the whole chain's err.Error(), so context
// added by wrapping is kept. nil gives nil.
func ToError(err error) *Error {
	if err == nil {
		return nil
	}
	return &Error{Code: CodeOf(err), Message: err.Error(), err: err}
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	Error *Error `json:"error"`
}
