package proto

import (
	"fmt"
	"io"
)

// Lookup is the body of POST /v1/collections/{c}/items/lookup: which of
// these ids are stored? At most Limits.MaxItems ids.
type Lookup struct {
	IDs []string `json:"ids"`
}

// LookupResult answers a Lookup: Found[i] says whether IDs[i] is stored.
type LookupResult struct {
	Found []bool `json:"found"`
}

// DecodeLookup reads and validates a Lookup.
func DecodeLookup(r io.Reader, limits Limits) (Lookup, error) {
	lim, _, ms, err := readObject(r, limits, false)
	if err != nil {
		return Lookup{}, err
	}
	var l Lookup
	var p problems
	seen := map[string]bool{}
	for _, m := range ms {
		if !once(&p, seen, "", m.key) || isNull(m.value) {
			continue
		}
		if m.key != "ids" {
			p.add(BadRequest, m.key, "unknown field")
			continue
		}
		els, err := elements(m.value)
		if err != nil {
			p.add(BadRequest, "ids", "%s", err.Error())
			continue
		}
		if len(els) > lim.MaxItems {
			p.add(TooLarge, "ids", "%d ids, limit is %d", len(els), lim.MaxItems)
			continue
		}
		l.IDs = make([]string, len(els))
		for i, e := range els {
			id, err := unquote(e)
			if err == nil {
				err = ValidID(id)
			}
			if err != nil {
				p.add(BadRequest, fmt.Sprintf("ids[%d]", i), "%s", err.Error())
			}
			l.IDs[i] = id
		}
	}
	if !seen["ids"] {
		p.add(BadRequest, "ids", "missing")
	}
	if err := p.err(); err != nil {
		return Lookup{}, err
	}
	return l, nil
}
