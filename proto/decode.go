package proto

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// DecodeCreateCollection reads and validates the body of POST
// /v1/collections. Replicas stays 0 when absent (the server's default: 1
// on one or two nodes, 2 from three nodes on), NList defaults to NListAuto.
func DecodeCreateCollection(r io.Reader, limits Limits) (CreateCollection, error) {
	var c CreateCollection
	_, _, ms, err := readObject(r, limits, false)
	if err != nil {
		return c, err
	}
	var p problems
	seen := map[string]bool{}
	bad := map[string]bool{} // fields with a problem already reported
	var hasName, hasMetric bool
	for _, m := range ms {
		if !once(&p, seen, "", m.key) {
			continue
		}
		if isNull(m.value) {
			continue // null is absent
		}
		switch m.key {
		case "name":
			c.Name, err = unquote(m.value)
			hasName = err == nil
		case "metric":
			var s string
			s, err = unquote(m.value)
			c.Metric, hasMetric = Metric(s), err == nil
		case "dim":
			var v int64
			v, err = parseInt(m.value, 1, MaxDim)
			c.Dim = int(v)
		case "nlist":
			err = c.NList.UnmarshalJSON(m.value)
		case "replicas":
			var v int64
			v, err = parseInt(m.value, 1, MaxReplicas)
			c.Replicas = int(v)
		case "model":
			c.Model, err = unquote(m.value)
			if err == nil && c.Model == "" {
				err = fmt.Errorf("empty; leave it out for a vector collection")
			}
		default:
			p.add(BadRequest, m.key, "unknown field")
			continue
		}
		if err != nil {
			p.add(BadRequest, m.key, "%s", err.Error())
			bad[m.key] = true
		}
	}
	if !hasName && !seen["name"] {
		p.add(BadRequest, "name", "missing")
		bad["name"] = true
	}
	if !hasMetric && !seen["metric"] {
		p.add(BadRequest, "metric", "missing (want l2, ip or cosine)")
		bad["metric"] = true
	}
	c.check(&p, bad)
	if err := p.err(); err != nil {
		return CreateCollection{}, err
	}
	return c, nil
}

// Validate reports every problem of c at once.
func (c *CreateCollection) Validate() error {
	var p problems
	c.check(&p, nil)
	return p.err()
}

// check adds c's problems to p, except for the fields in skip.
func (c *CreateCollection) check(p *problems, skip map[string]bool) {
	if err := ValidName(c.Name); err != nil && !skip["name"] {
		p.add(BadRequest, "name", "%s", err.Error())
	}
	if !c.Metric.Valid() && !skip["metric"] {
		p.add(BadRequest, "metric", "%q, want l2, ip or cosine", clip(string(c.Metric), 40))
	}
	if !skip["dim"] {
		switch {
		case c.Model == "" && c.Dim == 0:
			p.add(BadRequest, "dim", "missing (required without a model)")
		case c.Dim < 0 || c.Dim > MaxDim:
			p.add(BadRequest, "dim", "%d, want 1..%d", c.Dim, MaxDim)
		}
	}
	if (c.NList < 0 || c.NList > MaxNList) && !skip["nlist"] {
		p.add(BadRequest, "nlist", "%d, want 1..%d or \"auto\"", c.NList, MaxNList)
	}
	if (c.Replicas < 0 || c.Replicas > MaxReplicas) && !skip["replicas"] {
		p.add(BadRequest, "replicas", "%d, want 1..%d", c.Replicas, MaxReplicas)
	}
	if c.Model != "" && !skip["model"] {
		if err := validModel(c.Model); err != nil {
			p.add(BadRequest, "model", "%s", err.Error())
		}
	}
}

// DecodeInsert reads and validates the JSON body of POST
// /v1/collections/{c}/vectors. What needs the collection (dim, metric) is
// checked by Insert.ValidateVectors. For the bulk format, see DecodeBulk.
func DecodeInsert(r io.Reader, limits Limits) (Insert, error) {
	lim, body, ms, err := readObject(r, limits, false)
	if err != nil {
		return Insert{}, err
	}
	defer putBody(body)
	var p problems
	var elems [][]byte
	seen := map[string]bool{}
	for _, m := range ms {
		if !once(&p, seen, "", m.key) {
			continue
		}
		switch m.key {
		case "items":
			if elems, err = elements(m.value); err != nil {
				p.add(BadRequest, "items", "%s", err.Error())
			}
		default:
			p.add(BadRequest, m.key, "unknown field")
		}
	}
	switch {
	case p.n > 0:
		return Insert{}, p.err()
	case len(elems) == 0:
		return Insert{}, Errorf(BadRequest, "items: empty batch")
	case len(elems) > lim.MaxItems:
		return Insert{}, Errorf(TooLarge, "items: %d items, limit is %d", len(elems), lim.MaxItems)
	}
	req := Insert{Items: make([]InsertItem, len(elems))}
	var scratch []member
	var skip []bool // items with a problem found while parsing
	for i, e := range elems {
		before := p.n
		it := &req.Items[i]
		at := "items[" + strconv.Itoa(i) + "]"
		scratch, err = members(e, scratch)
		isObject := err == nil
		if !isObject {
			p.add(BadRequest, at, "%s", err.Error())
		}
		clear(seen)
		for _, m := range scratch {
			if !once(&p, seen, at+".", m.key) || isNull(m.value) {
				continue
			}
			switch m.key {
			case "id":
				it.ID, err = unquote(m.value)
				if err == nil && it.ID == "" {
					err = fmt.Errorf("empty; leave it out to have one generated")
				}
			case "vector":
				if it.Vector, err = parseVector(m.value); err != nil {
					addVectorError(&p, at+".vector", err)
					continue
				}
			case "meta":
				it.Meta = bytes.Clone(m.value) // the body's buffer is reused
			default:
				p.add(BadRequest, at+"."+m.key, "unknown field")
				continue
			}
			if err != nil {
				p.add(BadRequest, at+"."+m.key, "%s", err.Error())
			}
		}
		if isObject && it.Vector == nil && !seen["vector"] {
			p.add(BadRequest, at+".vector", "missing")
		}
		if p.n > before {
			if skip == nil {
				skip = make([]bool, len(elems))
			}
			skip[i] = true
		}
	}
	// Check the well-formed items too, so that every problem is reported.
	req.validateItems(&p, lim, true, false, skip)
	if err := p.err(); err != nil {
		return Insert{}, err
	}
	return req, nil
}

// Validate reports every problem of r at once, by item, except those that
// need the collection (see ValidateVectors): a non-empty batch within
// limits.MaxItems; ids valid (ValidID) or empty, none repeated; vectors
// non-empty, at most MaxDim long and finite; meta absent or a JSON object
// within limits.MaxMetaBytes.
func (r *Insert) Validate(limits Limits) error {
	lim, err := limits.resolve()
	if err != nil {
		return err
	}
	return r.validate(lim, false)
}

func (r *Insert) validate(lim Limits, metaChecked bool) error {
	if len(r.Items) == 0 {
		return Errorf(BadRequest, "items: empty batch")
	}
	if len(r.Items) > lim.MaxItems {
		return Errorf(TooLarge, "items: %d items, limit is %d", len(r.Items), lim.MaxItems)
	}
	var p problems
	r.validateItems(&p, lim, metaChecked, false, nil)
	return p.err()
}

// validateItems adds the problems of the items to p, skipping those
// marked in skip (already reported while parsing). metaChecked: meta is
// known to be well-formed JSON; floatsChecked: non-finite components are
// already reported.
func (r *Insert) validateItems(p *problems, lim Limits, metaChecked, floatsChecked bool, skip []bool) {
	var first map[string]int
	for i := range r.Items {
		if skip != nil && skip[i] {
			continue
		}
		it := &r.Items[i]
		if it.ID != "" {
			if err := ValidID(it.ID); err != nil {
				p.add(BadRequest, path{i, "id"}.String(), "%s", err.Error())
			} else if j, ok := first[it.ID]; ok {
				p.add(BadRequest, path{i, "id"}.String(), "%q repeats items[%d]", clip(it.ID, 40), j)
			} else {
				if first == nil {
					first = make(map[string]int, len(r.Items)-i)
				}
				first[it.ID] = i
			}
		}
		if !floatsChecked {
			checkVector(p, path{i, "vector"}, it.Vector)
		}
		if it.Meta != nil {
			if code, msg := metaProblem(it.Meta, lim.MaxMetaBytes, metaChecked); code != "" {
				p.add(code, path{i, "meta"}.String(), "%s", msg)
			}
		}
	}
}

// ValidateVectors checks every vector of r against the collection: dim
// components each, and none zero under Cosine. It reports every bad item.
func (r *Insert) ValidateVectors(dim int, metric Metric) error {
	var p problems
	for i := range r.Items {
		checkVectorDim(&p, path{i, "vector"}, r.Items[i].Vector, dim, metric)
	}
	return p.err()
}

// DecodeSearch reads and validates the JSON body of POST
// /v1/collections/{c}/search. K defaults to DefaultK; NProbe 0 means the
// server's default (which it checks against nlist). The vector's length is
// checked by Search.ValidateVector.
func DecodeSearch(r io.Reader, limits Limits) (Search, error) {
	var s Search
	_, _, ms, err := readObject(r, limits, false)
	if err != nil {
		return s, err
	}
	var p problems
	seen := map[string]bool{}
	bad := map[string]bool{} // fields with a problem already reported
	for _, m := range ms {
		if !once(&p, seen, "", m.key) || isNull(m.value) {
			continue
		}
		var v int64
		switch m.key {
		case "vector":
			if s.Vector, err = parseVector(m.value); err != nil {
				addVectorError(&p, "vector", err)
				bad["vector"] = true
				continue
			}
		case "id":
			s.ID, err = unquote(m.value)
			if err == nil && s.ID == "" {
				err = fmt.Errorf("empty")
			}
		case "k":
			v, err = parseInt(m.value, 1, MaxK)
			s.K = int(v)
		case "nprobe":
			v, err = parseInt(m.value, 1, MaxNList)
			s.NProbe = int(v)
		case "refine":
			v, err = parseInt(m.value, 0, MaxRefine)
			s.Refine = int(v)
		default:
			p.add(BadRequest, m.key, "unknown field")
			continue
		}
		if err != nil {
			p.add(BadRequest, m.key, "%s", err.Error())
			bad[m.key] = true
		}
	}
	if s.K == 0 {
		s.K = DefaultK // absent, null, or refused above
	}
	s.check(&p, bad)
	if err := p.err(); err != nil {
		return Search{}, err
	}
	return s, nil
}

// Validate reports every problem of s at once, except the vector's length
// (see ValidateVector) and nprobe's upper bound (nlist).
func (s *Search) Validate() error {
	var p problems
	s.check(&p, nil)
	return p.err()
}

// check adds s's problems to p, except for the fields in skip.
func (s *Search) check(p *problems, skip map[string]bool) {
	switch {
	case skip["vector"] || skip["id"]:
	case s.Vector != nil && s.ID != "":
		p.add(BadRequest, "body", "give vector or id, not both")
	case s.Vector == nil && s.ID == "":
		p.add(BadRequest, "body", "give vector or id")
	case s.Vector != nil:
		checkVector(p, path{-1, "vector"}, s.Vector)
	default:
		if err := ValidID(s.ID); err != nil {
			p.add(BadRequest, "id", "%s", err.Error())
		}
	}
	if (s.K < 1 || s.K > MaxK) && !skip["k"] {
		p.add(BadRequest, "k", "%d, want 1..%d", s.K, MaxK)
	}
	if (s.NProbe < 0 || s.NProbe > MaxNList) && !skip["nprobe"] {
		p.add(BadRequest, "nprobe", "%d, want 1..nlist", s.NProbe)
	}
	if (s.Refine < 0 || s.Refine > MaxRefine) && !skip["refine"] {
		p.add(BadRequest, "refine", "%d, want 0..%d", s.Refine, MaxRefine)
	}
}

// ValidateVector checks a search by vector against the collection: dim
// components, not zero under Cosine. A search by id passes.
func (s *Search) ValidateVector(dim int, metric Metric) error {
	if s.Vector == nil {
		return nil
	}
	var p problems
	checkVectorDim(&p, path{-1, "vector"}, s.Vector, dim, metric)
	return p.err()
}

// DecodeTrain reads the optional body of POST /v1/collections/{c}/train:
// empty, {} or {"nlist": N|"auto"}.
func DecodeTrain(r io.Reader, limits Limits) (Train, error) {
	var t Train
	_, body, ms, err := readObject(r, limits, true)
	if err != nil || body == nil {
		return t, err
	}
	var p problems
	seen := map[string]bool{}
	for _, m := range ms {
		if !once(&p, seen, "", m.key) || isNull(m.value) {
			continue
		}
		switch m.key {
		case "nlist":
			if err := t.NList.UnmarshalJSON(m.value); err != nil {
				p.add(BadRequest, "nlist", "%s", err.Error())
			}
		default:
			p.add(BadRequest, m.key, "unknown field")
		}
	}
	if p.n > 0 {
		return Train{}, p.err()
	}
	return t, t.Validate()
}

// Validate checks t's nlist.
func (t *Train) Validate() error {
	if t.NList < 0 || t.NList > MaxNList {
		return Errorf(BadRequest, "nlist: %d, want 1..%d or \"auto\"", t.NList, MaxNList)
	}
	return nil
}

// once records key in seen and reports a repeated key as a problem.
func once(p *problems, seen map[string]bool, prefix, key string) bool {
	if seen[key] {
		p.add(BadRequest, prefix+key, "given twice")
		return false
	}
	seen[key] = true
	return true
}

// fieldError is a problem found while unmarshalling one field.
type fieldError struct{ msg string }

func (e *fieldError) Error() string { return e.msg }

// readObject resolves limits, reads the body and splits it into the
// members of its JSON object: the prologue every JSON decoder shares. body
// is nil (with no error) only for an empty body when allowEmpty; an
// Insert gives body back to the pool with putBody once done with ms.
func readObject(r io.Reader, limits Limits, allowEmpty bool) (Limits, []byte, []member, error) {
	lim, err := limits.resolve()
	if err != nil {
		return lim, nil, nil, err
	}
	body, err := readBody(r, lim, allowEmpty)
	if err != nil || body == nil {
		return lim, nil, nil, err
	}
	ms, err := members(body, nil)
	if err != nil {
		return lim, body, nil, Errorf(BadRequest, "body: %s", err.Error())
	}
	return lim, body, ms, nil
}
