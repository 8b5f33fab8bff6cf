package coordinator_test

import (
	"errors"
	"testing"
	"time"

	"lookalike/coordinator"
)

// TestMembers: a server bootstrapped (after Open) with itself and a peer
// as voters, a third added as a non-voter, then promoted; no server
// bootstraps twice.
func TestMembers(t *testing.T) {
	ids := []string{"a", "b", "c"}
	trans := connectedTransports(ids)
	srv := make([]*coordinator.Server, 3)
	for i, id := range ids {
		o := fast(id)
		o.HeartbeatTimeout, o.ElectionTimeout, o.LeaderLeaseTimeout = time.Second, time.Second, 500*time.Millisecond
		o.InMemory, o.Transport = true, trans[i]
		s, err := coordinator.Open(ctxT(t), o)
		if err != nil {
			t.Fatal(err)
		}
		srv[i] = s
		defer s.Close()
		if conf, err := s.Configuration(); err != nil || len(conf) != 0 {
			t.Fatalf("fresh server: %v %v", conf, err)
		}
	}
	for _, tr := range trans {
		defer tr.Close()
	}
	if err := srv[0].Bootstrap([]coordinator.Member{{ID: "b", Addr: "b"}}); !errors.Is(err, coordinator.ErrBadOptions) {
		t.Fatalf("bootstrap without itself: %v", err)
	}
	if err := srv[0].Bootstrap([]coordinator.Member{{ID: "a", Addr: "a"}, {ID: "b", Addr: "b"}}); err != nil {
		t.Fatal(err)
	}
	if err := srv[0].Bootstrap([]coordinator.Member{{ID: "a", Addr: "a"}}); err == nil {
		t.Fatal("bootstrapped twice")
	}
	eventually(t, "a leader", func() bool { return srv[0].IsLeader() || srv[1].IsLeader() })
	l := srv[0]
	if !l.IsLeader() {
		l = srv[1]
	}
	if err := l.AddMember(coordinator.Member{ID: "c", Addr: "c", Suffrage: coordinator.Nonvoter}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	want := func(s *coordinator.Server, sf coordinator.Suffrage) func() bool {
		return func() bool {
			conf, err := s.Configuration()
			if err != nil || len(conf) != 3 {
				return false
			}
			return conf[2].ID == "c" && conf[2].Suffrage == sf && conf[0].Suffrage == coordinator.Voter
		}
	}
	eventually(t, "c a non-voter, seen by c", want(srv[2], coordinator.Nonvoter))
	if err := srv[2].AddMember(coordinator.Member{ID: "c", Addr: "c", Suffrage: coordinator.Voter}, time.Second); !errors.Is(err, coordinator.ErrNotLeader) {
		t.Fatalf("change on a non-leader: %v", err)
	}
	if err := l.AddMember(coordinator.Member{ID: "c", Addr: "c", Suffrage: coordinator.Voter}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	eventually(t, "c promoted", want(srv[2], coordinator.Voter))
}
