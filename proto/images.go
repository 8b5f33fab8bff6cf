package proto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MultipartContentType is the content type of image uploads and searches
// by image (multipart/form-data, RFC 7578).
const MultipartContentType = "multipart/form-data"

// MaxSourceBytes bounds the "source" of an image (a path or URI).
const MaxSourceBytes = 4096

// ImageUpload is the multipart body of POST /v1/collections/{c}/images.
//
// Parts, by name:
//   - "file" (repeatable, at least one): an encoded image. Each file part
//     starts a new item.
//   - "id", "meta", "source" (optional, at most one each per file): they
//     belong to the nearest "file" part before them, so a client sends a
//     file and then its fields (curl -F file=@a.jpg -F id=a -F file=@b.jpg
//     -F id=b). One before any file is refused.
//   - "keep_original" (optional, once, anywhere): "true" or "1" stores the
//     original bytes of every file of the request with its item.
//
// Any other part name is refused.
type ImageUpload struct {
	Files        []ImageFile
	KeepOriginal bool
}

// ImageFile is one "file" part and the fields that follow it.
type ImageFile struct {
	// Name is the part's file name as sent (may be empty), for messages.
	Name string
	// Data is the encoded image: 1..Limits.MaxImageBytes bytes.
	Data []byte
	// ID is the item id, or "" for one the server generates.
	ID string
	// Meta is a JSON object of at most Limits.MaxMetaBytes, or nil.
	Meta json.RawMessage
	// Source says where the image came from (a path or URI), at most
	// MaxSourceBytes of UTF-8; "" when not given.
	Source string
}

// Label names file i in messages: file[3] ("cat.jpg").
func (f *ImageFile) Label(i int) string {
	if f.Name == "" {
		return fmt.Sprintf("file[%d]", i)
	}
	return fmt.Sprintf("file[%d] (%q)", i, clip(f.Name, 80))
}

// ImageSearch is the multipart body of a search by image (POST
// /v1/collections/{c}/search): one "file" part, and optional "k",
// "nprobe" and "refine" parts holding decimal integers (as in Search).
type ImageSearch struct {
	Name   string // the file part's file name, for messages
	Data   []byte
	K      int // default DefaultK
	NProbe int // 0: the server's default
	Refine int
}

// DecodeImageUpload reads and checks every part of an image upload and
// reports every problem at once, each naming its part. It reads each file
// whole (at most Limits.MaxImageBytes) and at most Limits.MaxImages files;
// the body limit is the reader's (http.MaxBytesReader), and exceeding it
// is too_large. It does not decode the images.
func DecodeImageUpload(mr *multipart.Reader, limits Limits) (ImageUpload, error) {
	lim, err := limits.resolve()
	if err != nil {
		return ImageUpload{}, err
	}
	var up ImageUpload
	var p problems
	seenKeep := false
	seen := map[string]bool{} // fields of the current file
	for idx := 0; ; idx++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ImageUpload{}, multipartError(err)
		}
		name := part.FormName()
		at := fmt.Sprintf("part %d (%q)", idx, clip(name, 40))
		switch name {
		case "file":
			if len(up.Files) == lim.MaxImages {
				return ImageUpload{}, Errorf(TooLarge, "%s: more than %d files in one request", at, lim.MaxImages)
			}
			f := ImageFile{Name: part.FileName()}
			label := f.Label(len(up.Files))
			f.Data, err = readPart(part, int64(lim.MaxImageBytes))
			switch {
			case err != nil:
				return ImageUpload{}, partError(label, err, lim.MaxImageBytes)
			case len(f.Data) == 0:
				p.add(BadRequest, label, "empty file")
			}
			up.Files = append(up.Files, f)
			clear(seen)
		case "id", "meta", "source":
			max := 4 * MaxIDBytes // ValidID reports a long id as bad_request
			switch name {
			case "meta":
				max = lim.MaxMetaBytes
			case "source":
				max = MaxSourceBytes
			}
			v, err := readPart(part, int64(max))
			if err != nil {
				return ImageUpload{}, partError(at, err, max)
			}
			if len(up.Files) == 0 {
				p.add(BadRequest, at, "comes before any file part; send each file's %s after it", name)
				continue
			}
			f := &up.Files[len(up.Files)-1]
			label := f.Label(len(up.Files)-1) + "." + name
			if seen[name] {
				p.add(BadRequest, label, "given twice for one file")
				continue
			}
			seen[name] = true
			switch name {
			case "id":
				if err := ValidID(string(v)); err != nil {
					p.add(BadRequest, label, "%s", err.Error())
				}
				f.ID = string(v)
			case "meta":
				if code, msg := metaProblem(v, lim.MaxMetaBytes, false); code != "" {
					p.add(code, label, "%s", msg)
				}
				f.Meta = v
			case "source":
				if !utf8.Valid(v) {
					p.add(BadRequest, label, "not valid UTF-8")
				}
				f.Source = string(v)
			}
		case "keep_original":
			v, err := readPart(part, 16)
			if err != nil {
				return ImageUpload{}, partError(at, err, 16)
			}
			if seenKeep {
				p.add(BadRequest, at, "keep_original given twice")
				continue
			}
			seenKeep = true
			b, err := parseBool(string(v))
			if err != nil {
				p.add(BadRequest, at, "%s", err.Error())
			}
			up.KeepOriginal = b
		default:
			p.add(BadRequest, at, "unknown part; want file, id, meta, source or keep_original")
			if _, err := io.Copy(io.Discard, part); err != nil {
				return ImageUpload{}, multipartError(err)
			}
		}
	}
	if len(up.Files) == 0 && p.n == 0 {
		p.add(BadRequest, "body", "no file part")
	}
	seenIDs := map[string]int{}
	for i, f := range up.Files {
		if f.ID == "" {
			continue
		}
		if j, ok := seenIDs[f.ID]; ok {
			p.add(BadRequest, f.Label(i)+".id", "%q is also the id of %s", clip(f.ID, 80), up.Files[j].Label(j))
			continue
		}
		seenIDs[f.ID] = i
	}
	if err := p.err(); err != nil {
		return ImageUpload{}, err
	}
	return up, nil
}

// DecodeImageSearch reads a search by image: one "file" part and the
// optional "k", "nprobe" and "refine" parts.
func DecodeImageSearch(mr *multipart.Reader, limits Limits) (ImageSearch, error) {
	lim, err := limits.resolve()
	if err != nil {
		return ImageSearch{}, err
	}
	var s ImageSearch
	var p problems
	seen := map[string]bool{}
	files := 0
	for idx := 0; ; idx++ {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ImageSearch{}, multipartError(err)
		}
		name := part.FormName()
		at := fmt.Sprintf("part %d (%q)", idx, clip(name, 40))
		switch name {
		case "file":
			files++
			if files > 1 {
				p.add(BadRequest, at, "a search takes one file")
				if _, err := io.Copy(io.Discard, part); err != nil {
					return ImageSearch{}, multipartError(err)
				}
				continue
			}
			s.Name = part.FileName()
			label := (&ImageFile{Name: s.Name}).Label(0)
			if s.Data, err = readPart(part, int64(lim.MaxImageBytes)); err != nil {
				return ImageSearch{}, partError(label, err, lim.MaxImageBytes)
			}
			if len(s.Data) == 0 {
				p.add(BadRequest, label, "empty file")
			}
		case "k", "nprobe", "refine":
			v, err := readPart(part, 32)
			if err != nil {
				return ImageSearch{}, partError(name, err, 32)
			}
			if seen[name] {
				p.add(BadRequest, name, "given twice")
				continue
			}
			seen[name] = true
			lo, hi := int64(1), int64(MaxK)
			switch name {
			case "nprobe":
				hi = MaxNList
			case "refine":
				lo, hi = 0, MaxRefine
			}
			n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
			if err != nil || n < lo || n > hi {
				p.add(BadRequest, name, "%q, want an integer %d..%d", clip(string(v), 20), lo, hi)
				continue
			}
			switch name {
			case "k":
				s.K = int(n)
			case "nprobe":
				s.NProbe = int(n)
			case "refine":
				s.Refine = int(n)
			}
		default:
			p.add(BadRequest, at, "unknown part; want file, k, nprobe or refine")
			if _, err := io.Copy(io.Discard, part); err != nil {
				return ImageSearch{}, multipartError(err)
			}
		}
	}
	if files == 0 {
		p.add(BadRequest, "body", "no file part")
	}
	if s.K == 0 {
		s.K = DefaultK
	}
	if err := p.err(); err != nil {
		return ImageSearch{}, err
	}
	return s, nil
}

// errPartTooLarge is readPart's answer to a part over its limit.
var errPartTooLarge = errors.New("part over its limit")

// readPart reads a whole part of at most max bytes.
func readPart(r io.Reader, max int64) ([]byte, error) {
	var buf bytes.Buffer
	n, err := buf.ReadFrom(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if n > max {
		return nil, errPartTooLarge
	}
	return buf.Bytes(), nil
}

// partError turns a failure to read a part into the API's error.
func partError(label string, err error, max int) error {
	if errors.Is(err, errPartTooLarge) {
		return Errorf(TooLarge, "%s: over %d bytes, the limit for this part", label, max)
	}
	e := multipartError(err)
	return &Error{Code: CodeOf(e), Message: label + ": " + e.Error(), err: err}
}

// multipartError classifies a multipart read error: the body limit is
// too_large, anything else (a malformed or cut body) bad_request.
func multipartError(err error) error {
	if isMaxBytes(err) {
		return Errorf(TooLarge, "body: over the body limit: %v", err)
	}
	return Errorf(BadRequest, "body: malformed multipart: %v", err)
}

func parseBool(s string) (bool, error) {
	switch strings.TrimSpace(s) {
	case "true", "1":
		return true, nil
	case "false", "0", "":
		return false, nil
	}
	return false, fmt.Errorf("%q, want true or false", clip(s, 16))
}
