package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"lookalike/coordinator"
	"lookalike/coordinator/meta"
)

// TestForwardReply: a result or error crosses the forwarding hop as
// Propose would have returned it on the leader.
func TestForwardReply(t *testing.T) {
	hop := func(cmd meta.Command, v any, err error) (any, error) {
		b, jerr := json.Marshal(encodeForwardReply(v, err))
		if jerr != nil {
			t.Fatal(jerr)
		}
		var r forwardReply
		if jerr := json.Unmarshal(b, &r); jerr != nil {
			t.Fatal(jerr)
		}
		return decodeForwardReply(cmd, r)
	}
	for _, tc := range []struct {
		cmd meta.Command
		v   any
	}{
		{meta.AllocateIDs{N: 5}, meta.IDRange{First: 7, N: 5}},
		{meta.PutBlobChunk{}, meta.BlobStatus{Received: 2, Complete: true}},
		{meta.SetShardMap{}, uint64(9)},
		{meta.GCBlobs{}, 3},
		{meta.DropCollection{Name: "c"}, nil},
	} {
		got, err := hop(tc.cmd, tc.v, nil)
		if err != nil || got != tc.v {
			t.Errorf("%T: %#v %v, want %#v", tc.cmd, got, err, tc.v)
		}
	}
	for _, s := range forwardSentinels {
		_, err := hop(meta.CreateCollection{}, nil, fmt.Errorf("%w: detail", s))
		if !errors.Is(err, s) {
			t.Errorf("%v came back as %v", s, err)
		}
	}
	_, err := hop(meta.CreateCollection{}, nil, errors.New("disk on fire"))
	if err == nil || errors.Is(err, coordinator.ErrNotLeader) {
		t.Fatalf("%v", err)
	}
	// The node maps them as it maps its own coordinator's errors.
	_, err = hop(meta.CreateCollection{}, nil, meta.ErrCollectionExists)
	if !errors.Is(metaErr(err), ErrExists) {
		t.Fatalf("%v", metaErr(err))
	}
}
