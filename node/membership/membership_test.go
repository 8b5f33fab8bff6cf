package membership

import (
	"fmt"
	"log/slog"
	"testing"
	"time"

	"lookalike/internal/testenv"
)

func freePort(t *testing.T) string { return testenv.FreeAddr(t) }

func start(t *testing.T, id string, key []byte, join ...string) *Membership {
	t.Helper()
	m, err := Start(Options{
		Meta:     Meta{NodeID: id, HTTPAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2"},
		BindAddr: freePort(t), Join: join, Key: key, RetryJoinInterval: 100 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func waitStates(t *testing.T, m *Membership, want map[string]State) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := map[string]State{}
		for _, x := range m.Members() {
			got[x.NodeID] = x.State
		}
		if fmt.Sprint(got) == fmt.Sprint(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %v, want %v", m.LocalID(), got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestGossip: three members with a key find each other, metadata
// included; one stopped is declared dead; a member with another key
// never joins.
func TestGossip(t *testing.T) {
	key := []byte("0123456789abcdef")
	a := start(t, "a", key)
	b := start(t, "b", key, a.GossipAddr())
	c := start(t, "c", key, b.GossipAddr())
	waitStates(t, a, map[string]State{"a": Alive, "b": Alive, "c": Alive})
	if m, ok := a.Member("c"); !ok || m.RaftAddr != "127.0.0.1:2" || m.GossipAddr != c.GossipAddr() {
		t.Fatalf("%+v", m)
	}
	if err := b.SetFlags(FlagRaft, time.Second); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for m, _ := c.Member("b"); m.Flags != FlagRaft; m, _ = c.Member("b") {
		if time.Now().After(deadline) {
			t.Fatalf("flags not gossiped: %+v", m)
		}
		time.Sleep(20 * time.Millisecond)
	}

	stranger := start(t, "x", []byte("fedcba9876543210"), a.GossipAddr())
	begin := time.Now()
	c.Close() // no Leave: a crash as the others see it
	waitStates(t, a, map[string]State{"a": Alive, "b": Alive, "c": Dead})
	t.Logf("c declared dead after %v", time.Since(begin).Round(time.Millisecond))
	sameMembers(t, a)
	if m, ok := a.Member("nobody"); ok {
		t.Fatalf("an unknown member: %+v", m)
	}
	waitStates(t, stranger, map[string]State{"x": Alive})
}

// sameMembers: Member shows each member (this node, live and dead ones)
// as Members does. A state can change between the two reads, so a
// mismatch is read again a few times before it fails.
func sameMembers(t *testing.T, m *Membership) {
	t.Helper()
	for try := 0; ; try++ {
		var diff string
		for _, x := range m.Members() {
			if y, ok := m.Member(x.NodeID); !ok || y != x {
				diff = fmt.Sprintf("Member(%q) = %+v, %v; Members shows %+v", x.NodeID, y, ok, x)
				break
			}
		}
		if diff == "" {
			return
		}
		if try == 5 {
			t.Fatal(diff)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkMember: one member's lookup among three, as every call between
// nodes makes it (its address).
func BenchmarkMember(b *testing.B) {
	key := []byte("0123456789abcdef")
	a, err := Start(Options{Meta: Meta{NodeID: "a", HTTPAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2"},
		BindAddr: testenv.FreeAddr(b), Key: key, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	for _, id := range []string{"b", "c"} {
		m, err := Start(Options{Meta: Meta{NodeID: id, HTTPAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2"},
			BindAddr: testenv.FreeAddr(b), Join: []string{a.GossipAddr()}, Key: key, RetryJoinInterval: 100 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		defer m.Close()
	}
	for deadline := time.Now().Add(15 * time.Second); len(a.Members()) < 3 || a.ml.NumMembers() < 3; {
		if time.Now().After(deadline) {
			b.Fatalf("3 members not joined within 15 s: %+v", a.Members())
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := a.Member("b"); !ok {
			b.Fatal("no member b")
		}
	}
}

// TestReconnectDead: a member held dead is tried again. b crashes and a
// declares it dead; a new b comes up at the same address without seeds.
// memberlist alone never talks to a member it holds dead again, and the
// new b knows nobody: only a's reconnect loop brings the two together
// (the same holds for the two sides of a healed network partition,
// TestClusterChaosPartition).
func TestReconnectDead(t *testing.T) {
	a := start(t, "a", nil)
	addr := freePort(t)
	startAt := func() *Membership {
		m, err := Start(Options{
			Meta:     Meta{NodeID: "b", HTTPAddr: "127.0.0.1:1", RaftAddr: "127.0.0.1:2"},
			BindAddr: addr, RetryJoinInterval: 100 * time.Millisecond, ReconnectInterval: 200 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	b := startAt()
	if _, err := b.ml.Join([]string{a.GossipAddr()}); err != nil {
		t.Fatal(err)
	}
	waitStates(t, a, map[string]State{"a": Alive, "b": Alive})
	b.Close() // no Leave: a crash
	waitStates(t, a, map[string]State{"a": Alive, "b": Dead})
	begin := time.Now()
	b = startAt()
	waitStates(t, a, map[string]State{"a": Alive, "b": Alive})
	waitStates(t, b, map[string]State{"a": Alive, "b": Alive})
	t.Logf("b alive again to a %v after it came back", time.Since(begin).Round(time.Millisecond))
}
