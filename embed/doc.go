// Package embed turns images into vectors: decode and preprocess
// (image.go), an ONNX image model run by ONNX Runtime (model.go, ort.go),
// and a micro-batcher that gathers concurrent requests into batches over
// a pool of sessions (batch.go). The default model, MobileNetV2-1.4 from
// npm nsfwjs@4.4.0, is converted from TF.js to ONNX by the project's own
// converter (packages embed/tfjs and embed/onnx; `lookalike model fetch`).
//
// The data flow, and who owns what:
//
//	bytes ─► Prepare (decode, EXIF orientation, alpha over white, resize,
//	         normalise into the model's layout; thumbnail)      [image.go]
//	      ─► Pipeline.Embed(ctx, lane, prepared)                 [batch.go]
//	         gathers tensors of concurrent callers into batches (max size,
//	         max wait), the Query lane ahead of the Bulk lane
//	      ─► Runner.Run(batch, n): one model run                 [model.go]
//	      ─► L2-normalised vectors, in the callers' order
//
// Contracts:
//   - Config describes any ONNX image model; a model directory holds
//     model.onnx and model.json (Config as JSON). Model identity is the
//     hex SHA-256 of the ONNX file's bytes (Model.Hash); a collection
//     records it and a node refuses to embed for it with another model.
//   - Runner.Run is safe for concurrent use. Its input is n images of
//     Config.Size² × 3 float32 each, in Config.Layout, already
//     normalised; its output is n × Config.Dim float32, not normalised.
//   - ONNX Runtime's environment is initialised once per process.
package embed
