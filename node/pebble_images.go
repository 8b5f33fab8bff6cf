package node

import "context"

// Attachment implements Storage.
func (p *PebbleStorage) Attachment(coll string, id uint64) ([]byte, error) {
	c, err := p.CollectionNumber(coll)
	if err != nil {
		return nil, err
	}
	a, err := p.s.Attachment(context.Background(), c, id)
	if err != nil {
		return nil, storeErr(err)
	}
	return a, nil
}
