// Package proto holds the versioned wire and API types of lookalike's HTTP
// API v1, their strict decoders, the binary bulk insert format, and the one
// error shape every endpoint answers with.
//
// Everything here is pure: readers and values in, values and *Error out. The
// HTTP layer (package node) owns routing, authentication and the response
// writer; it calls a decoder per request body, checks what needs the
// collection (its dimension and metric: Insert.ValidateVectors,
// Search.ValidateVector; nprobe against nlist) and maps every error to a
// status with ToError and Code.HTTPStatus, in one place.
//
// Decoders are strict. A request body is refused (code bad_request, or
// too_large for size limits) when it is not valid UTF-8 JSON, has trailing
// data, unknown fields or wrong types, or breaks a limit. Problems of a
// batch are reported all at once, each with its item index, as in
// "items[3].vector: 127 components, collection dim is 128". A decoder never
// returns a value whose Validate fails; fuzz targets check that.
//
// The package imports only the standard library (DESIGN.md's package
// table), so Metric here is a string type: package ivf's numeric metric is
// chosen by the node from the name.
//
// docs/api.md is the reference of the HTTP API; docs/format/bulk.md that of
// the binary bulk format.
package proto
