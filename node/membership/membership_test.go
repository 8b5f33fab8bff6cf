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
	waitStates(t, stranger, map[string]State{"x": Alive})
}
