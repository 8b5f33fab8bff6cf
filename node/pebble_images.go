package node

import (
	"context"
	"fmt"
)

// Attachment implements Storage.
func (p *PebbleStorage) Attachment(coll string, id uint64) ([]byte, error) {
	c, ok, err := p.lookup(coll)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("internal id %d: %w", id, errNoCollectionData(coll))
	}
	a, err := p.s.Attachment(context.Background(), c, id)
	if err != nil {
		return nil, storeErr(err)
	}
	return a, nil
}
