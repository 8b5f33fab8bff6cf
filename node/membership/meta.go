package membership

import (
	"errors"
	"fmt"

	"github.com/hashicorp/memberlist"
)

// MetaVersion is the version of the metadata layout this package writes.
// Later versions only append fields, so a decoder reads the fields it
// knows from any version ≥ 1 and ignores the rest.
const MetaVersion = 1

// MaxMetaSize is memberlist's limit on a node's metadata (it panics
// beyond).
const MaxMetaSize = memberlist.MetaMaxSize

// Metadata flags (docs/format/gossip.md). Bits not listed are zero.
const (
	// FlagVoter: started with --voter, so the leader adds it as a Raft
	// voter even when three voters exist.
	FlagVoter uint8 = 1 << 0
	// FlagTLS: its HTTP address serves HTTPS.
	FlagTLS uint8 = 1 << 1
	// FlagRaft: it holds a Raft configuration (it bootstrapped a cluster
	// or a leader added it). A node that sees such a member never
	// bootstraps: a cluster exists, and its leader adds the node.
	FlagRaft uint8 = 1 << 2
	// FlagLeaving: it is shutting down and handing its shards off; the
	// leader names no shard copy to it.
	FlagLeaving uint8 = 1 << 3
)

// Meta is what a node tells the others about itself through gossip.
type Meta struct {
	Version  uint8  // MetaVersion when encoded here
	Flags    uint8  // Flag*
	NodeID   string // 1..255 bytes (the node id; also memberlist's node name)
	HTTPAddr string // host:port of the HTTP API, 1..255 bytes
	RaftAddr string // host:port other nodes' Raft dials, 1..255 bytes
}

// Errors of the metadata encoding.
var (
	ErrMetaTooLarge = errors.New("membership: metadata larger than 512 bytes")
	ErrBadMeta      = errors.New("membership: invalid metadata")
)

// EncodeMeta encodes m (its Version is ignored: MetaVersion is written).
// It refuses empty or over-long fields and an encoding beyond MaxMetaSize.
func EncodeMeta(m Meta) ([]byte, error) {
	fields := []struct{ name, v string }{{"node id", m.NodeID}, {"http address", m.HTTPAddr}, {"raft address", m.RaftAddr}}
	size := 2
	for _, f := range fields {
		if len(f.v) == 0 || len(f.v) > 255 {
			return nil, fmt.Errorf("%w: %s of %d bytes (want 1..255)", ErrBadMeta, f.name, len(f.v))
		}
		size += 1 + len(f.v)
	}
	if size > MaxMetaSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMetaTooLarge, size)
	}
	b := make([]byte, 0, size)
	b = append(b, MetaVersion, m.Flags)
	for _, f := range fields {
		b = append(b, byte(len(f.v)))
		b = append(b, f.v...)
	}
	return b, nil
}

// DecodeMeta decodes metadata written by EncodeMeta of any version ≥ 1,
// ignoring fields appended by later versions. Version 1 has no trailing
// bytes.
func DecodeMeta(b []byte) (Meta, error) {
	d := decoder{b: b}
	var m Meta
	m.Version = d.byte()
	m.Flags = d.byte()
	m.NodeID = d.str()
	m.HTTPAddr = d.str()
	m.RaftAddr = d.str()
	switch {
	case d.err != nil:
		return Meta{}, d.err
	case len(b) > MaxMetaSize:
		return Meta{}, fmt.Errorf("%w: %d bytes", ErrMetaTooLarge, len(b))
	case m.Version == 0:
		return Meta{}, fmt.Errorf("%w: version 0", ErrBadMeta)
	case m.Version == 1 && len(d.b) > 0:
		return Meta{}, fmt.Errorf("%w: %d trailing bytes", ErrBadMeta, len(d.b))
	}
	return m, nil
}

// decoder reads fields with a sticky error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte() uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.err = fmt.Errorf("%w: truncated", ErrBadMeta)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *decoder) str() string {
	n := int(d.byte())
	if d.err != nil {
		return ""
	}
	if n == 0 || len(d.b) < n {
		d.err = fmt.Errorf("%w: field of %d bytes, %d left", ErrBadMeta, n, len(d.b))
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}
