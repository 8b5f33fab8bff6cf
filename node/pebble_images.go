package node

// Attachment implements Storage.
//
// TODO(store attachments): until node/store keeps attachments
// (store.Item.Attachment, Store.Attachment), items over Pebble have none.
func (p *PebbleStorage) Attachment(coll string, id uint64) ([]byte, error) {
	return nil, nil
}
