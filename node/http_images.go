package node

import (
	"fmt"
	"mime/multipart"
	"net/http"
	"strconv"
	"time"

	"lookalike/proto"
)

// multipartReader returns the request's multipart reader, or a 400 that
// says what the endpoint wants.
func multipartReader(r *http.Request, what string) (*multipart.Reader, error) {
	mr, err := r.MultipartReader()
	if err != nil {
		return nil, proto.Errorf(proto.BadRequest, "%s: want a %s body (%v)", what, proto.MultipartContentType, err)
	}
	return mr, nil
}

func (a *api) insertImages(w http.ResponseWriter, r *http.Request) error {
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	s, err := a.n.describe(c, false)
	if err != nil {
		return err
	}
	if s.Model == "" {
		return proto.Errorf(proto.BadRequest, "collection %q is a vector collection (no model): send vectors to /v1/collections/%s/vectors, or create a collection with \"model\" for images", c, c)
	}
	mb, err := multipartReader(r, "images")
	if err != nil {
		return err
	}
	up, err := proto.DecodeImageUpload(mb, a.o.Limits)
	if err != nil {
		return err
	}
	items := make([]ImageItem, len(up.Files))
	for i, f := range up.Files {
		items[i] = ImageItem{Label: f.Label(i), Data: f.Data, UserID: f.ID, Meta: f.Meta, Source: f.Source}
	}
	ids, err := a.n.InsertImages(r.Context(), c, items, up.KeepOriginal)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, proto.Inserted{Inserted: len(ids), IDs: ids})
}

func (a *api) searchImage(w http.ResponseWriter, r *http.Request, c string, start time.Time) error {
	mb, err := multipartReader(r, "search")
	if err != nil {
		return err
	}
	req, err := proto.DecodeImageSearch(mb, a.o.Limits)
	if err != nil {
		return err
	}
	label := (&proto.ImageFile{Name: req.Name}).Label(0)
	res, err := a.n.SearchImage(r.Context(), c, label, req.Data, SearchRequest{K: req.K, NProbe: req.NProbe, Refine: req.Refine})
	if err != nil {
		return err
	}
	return writeSearchResult(w, res, start)
}

func (a *api) thumbnail(w http.ResponseWriter, r *http.Request) error {
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	id, err := itemID(r)
	if err != nil {
		return err
	}
	rec, err := a.n.Image(r.Context(), c, id)
	if err != nil {
		return err
	}
	if len(rec.Thumb) == 0 {
		return fmt.Errorf("%w: %q has no thumbnail", ErrNoItem, id)
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(len(rec.Thumb)))
	// The item may be replaced under its id: caches revalidate.
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write(rec.Thumb)
	return err
}

func (a *api) lookup(w http.ResponseWriter, r *http.Request) error {
	c, err := collectionName(r)
	if err != nil {
		return err
	}
	req, err := proto.DecodeLookup(r.Body, a.o.Limits)
	if err != nil {
		return err
	}
	found, err := a.n.Lookup(r.Context(), c, req.IDs)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, proto.LookupResult{Found: found})
}
