package node

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"unicode/utf8"

	"lookalike/embed"
)

// Image collections: a collection created with a model embeds uploaded
// images with that model (Options.Embedders, by model name) and keeps
// each item's image record — thumbnail, source, optionally the original
// bytes — as the item's attachment in the store, written in the same
// batch as the item and deleted with it.

// ImageItem is one uploaded image to insert.
type ImageItem struct {
	// Label names the image in messages (file[3] ("cat.jpg")).
	Label  string
	Data   []byte
	UserID string // "" generates one
	Meta   []byte
	Source string
}

// imageModel resolves a model name given at creation: the embedder that
// serves it, or ErrInvalid listing the models this node knows.
func (n *Node) imageModel(model string) (embed.Embedder, error) {
	if e, ok := n.opts.Embedders[model]; ok {
		return e, nil
	}
	known := slices.Sorted(maps.Keys(n.opts.Embedders))
	if len(known) == 0 {
		return nil, fmt.Errorf("%w: model %q: this server has no image models (start lookalike serve with --model DIR; `lookalike model fetch` writes the default model)", ErrInvalid, model)
	}
	return nil, fmt.Errorf("%w: model %q: unknown; this server knows %s", ErrInvalid, model, strings.Join(known, ", "))
}

// embedder returns the embedder for an image collection, refusing a
// vector collection, a model this node lacks, and a model whose hash is
// not the one the collection recorded.
func (n *Node) embedder(name string) (embed.Embedder, error) {
	m, ok := n.meta.Collection(name)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNoCollection, name)
	}
	if m.Model == "" {
		return nil, fmt.Errorf("%w: collection %q is a vector collection (no model): send vectors, or create a collection with \"model\" for images", ErrInvalid, name)
	}
	e, ok := n.opts.Embedders[m.Model]
	if !ok {
		return nil, fmt.Errorf("%w: collection %q uses model %q, which this node does not serve (start lookalike serve with --model DIR)", ErrNoEmbedder, name, m.Model)
	}
	if m.ModelHash != "" && e.ModelHash() != m.ModelHash {
		return nil, fmt.Errorf("%w: collection %q was created with model %q of hash %s; this node's %q has hash %s: it would embed into another vector space (serve the same model files, or create a new collection)",
			ErrModelMismatch, name, m.Model, m.ModelHash, m.Model, e.ModelHash())
	}
	if e.Dim() != m.Dim {
		return nil, fmt.Errorf("%w: collection %q has dim %d; this node's model %q gives %d", ErrModelMismatch, name, m.Dim, m.Model, e.Dim())
	}
	return e, nil
}

// prepareAll prepares every image in parallel (GOMAXPROCS workers). It
// reports every bad image at once, each by its label; the error is
// ErrImageTooLarge when each bad image is too large, else ErrBadImage.
func prepareAll(e embed.Embedder, labels []string, data [][]byte) ([]*embed.Prepared, error) {
	out, errs := embed.PrepareAll(e, data)
	var msgs []string
	allLarge := true
	for i, err := range errs {
		if err == nil {
			continue
		}
		if errors.Is(err, ErrNoEmbedder) {
			return nil, err // the model, not the image: unavailable
		}
		if !errors.Is(err, embed.ErrTooLarge) {
			allLarge = false
		}
		if len(msgs) < 20 {
			msgs = append(msgs, fmt.Sprintf("%s: %v", labels[i], err))
		} else if len(msgs) == 20 {
			msgs = append(msgs, "…")
		}
	}
	if len(msgs) == 0 {
		return out, nil
	}
	sentinel := ErrBadImage
	if allLarge {
		sentinel = ErrImageTooLarge
	}
	return nil, fmt.Errorf("%w: %s", sentinel, strings.Join(msgs, "; "))
}

// InsertImages embeds images (the Bulk lane) and upserts them with their
// image records, all or nothing: any bad image fails the whole request
// before anything is embedded or stored. It returns the ids in order.
func (n *Node) InsertImages(ctx context.Context, name string, items []ImageItem, keepOriginal bool) ([]string, error) {
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: no images", ErrInvalid)
	}
	e, err := n.embedder(name)
	if err != nil {
		return nil, err
	}
	labels := make([]string, len(items))
	data := make([][]byte, len(items))
	for i, it := range items {
		labels[i], data[i] = it.Label, it.Data
	}
	prep, err := prepareAll(e, labels, data)
	if err != nil {
		return nil, err
	}
	vecs, err := e.Embed(ctx, embed.Bulk, prep)
	if err != nil {
		return nil, fmt.Errorf("node: embed: %w", err)
	}
	if len(vecs) != len(prep) {
		return nil, fmt.Errorf("node: embed: %d vectors for %d images", len(vecs), len(prep))
	}
	w := make([]WriteItem, len(items))
	for i, it := range items {
		rec := ImageRecord{Format: prep[i].Format, Width: prep[i].Width, Height: prep[i].Height, Thumb: prep[i].Thumb, Source: it.Source}
		if keepOriginal {
			rec.Original = it.Data
		}
		w[i] = WriteItem{UserID: it.UserID, Vector: vecs[i], Meta: it.Meta, Attachment: rec.Encode()}
		prep[i] = nil // the tensor is no longer needed
	}
	return n.Insert(ctx, name, w)
}

// SearchImage embeds one image on the Query lane and searches with its
// vector. req.Vector and req.UserID are ignored.
func (n *Node) SearchImage(ctx context.Context, name, label string, data []byte, req SearchRequest) (*SearchResult, error) {
	e, err := n.embedder(name)
	if err != nil {
		return nil, err
	}
	prep, err := prepareAll(e, []string{label}, [][]byte{data})
	if err != nil {
		return nil, err
	}
	vecs, err := e.Embed(ctx, embed.Query, prep)
	if err != nil {
		return nil, fmt.Errorf("node: embed: %w", err)
	}
	if len(vecs) != 1 {
		return nil, fmt.Errorf("node: embed: %d vectors for 1 image", len(vecs))
	}
	req.Vector, req.UserID = vecs[0], ""
	return n.Search(ctx, name, req)
}

// Image returns the image record of an item, or ErrNoItem when the item
// is absent or has none.
func (n *Node) Image(ctx context.Context, name, userID string) (*ImageRecord, error) {
	it, err := n.getItem(ctx, name, userID, false, true)
	if err != nil {
		return nil, err
	}
	if len(it.Attachment) == 0 {
		return nil, fmt.Errorf("%w: %q has no image", ErrNoItem, userID)
	}
	return DecodeImageRecord(it.Attachment)
}

// ImageRecord is the attachment of an image item (docs/format/keys.md,
// "attachment value").
type ImageRecord struct {
	Format   string // "jpeg", "png", ...: of the original
	Width    int    // of the original, after EXIF orientation
	Height   int
	Thumb    []byte // JPEG
	Source   string // where the image came from, as uploaded; may be ""
	Original []byte // the uploaded bytes, or nil when not kept
}

// imageRecordVersion is the first byte of an encoded ImageRecord.
const imageRecordVersion = 1

// image record flags
const flagOriginal = 1 << 0

// Encode returns the record's bytes:
//
//	version u8 (1) | flags u8 (bit 0: original present)
//	| format_len uvarint | format | width uvarint | height uvarint
//	| thumb_len uvarint | thumb | source_len uvarint | source
//	| [orig_len uvarint | original]   (flag bit 0)
func (r *ImageRecord) Encode() []byte {
	n := 2 + 5*binary.MaxVarintLen64 + len(r.Format) + len(r.Thumb) + len(r.Source) + len(r.Original)
	b := make([]byte, 0, n)
	var flags byte
	if r.Original != nil {
		flags |= flagOriginal
	}
	b = append(b, imageRecordVersion, flags)
	b = binary.AppendUvarint(b, uint64(len(r.Format)))
	b = append(b, r.Format...)
	b = binary.AppendUvarint(b, uint64(r.Width))
	b = binary.AppendUvarint(b, uint64(r.Height))
	b = binary.AppendUvarint(b, uint64(len(r.Thumb)))
	b = append(b, r.Thumb...)
	b = binary.AppendUvarint(b, uint64(len(r.Source)))
	b = append(b, r.Source...)
	if r.Original != nil {
		b = binary.AppendUvarint(b, uint64(len(r.Original)))
		b = append(b, r.Original...)
	}
	return b
}

// recordReader reads an encoded record with a sticky error.
type recordReader struct {
	b   []byte
	err error
}

func (r *recordReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: image record: %s", ErrCorruptRecord, fmt.Sprintf(format, args...))
	}
}

func (r *recordReader) uvarint(what string, max uint64) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("%s: bad varint", what)
		return 0
	}
	if v > max {
		r.fail("%s: %d, limit %d", what, v, max)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) bytes(what string) []byte {
	n := r.uvarint(what+" length", math.MaxInt32)
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail("%s: %d bytes, %d left", what, n, len(r.b))
	}
	if r.err != nil {
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

// DecodeImageRecord parses an encoded record. The result's slices alias b.
func DecodeImageRecord(b []byte) (*ImageRecord, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: image record of %d bytes", ErrCorruptRecord, len(b))
	}
	if b[0] != imageRecordVersion {
		return nil, fmt.Errorf("%w: image record version %d, want %d", ErrCorruptRecord, b[0], imageRecordVersion)
	}
	flags := b[1]
	r := &recordReader{b: b[2:]}
	if flags&^flagOriginal != 0 {
		r.fail("unknown flags %#x", flags)
	}
	var rec ImageRecord
	rec.Format = string(r.bytes("format"))
	rec.Width = int(r.uvarint("width", 1<<31))
	rec.Height = int(r.uvarint("height", 1<<31))
	rec.Thumb = r.bytes("thumbnail")
	src := r.bytes("source")
	if r.err == nil && !utf8.Valid(src) {
		r.fail("source is not UTF-8")
	}
	rec.Source = string(src)
	if flags&flagOriginal != 0 {
		rec.Original = r.bytes("original")
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return nil, r.err
	}
	return &rec, nil
}
