package testenv

import (
	"net"
	"testing"
)

// FreeAddr returns a loopback host:port free for both TCP and UDP (a
// gossip address binds the two; a Raft or HTTP address needs TCP only).
// The port is released before it is returned, so a test starts its
// server on it at once.
func FreeAddr(t testing.TB) string {
	t.Helper()
	for try := 0; ; try++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
		if try == 20 {
			t.Fatalf("no port free for TCP and UDP: %v", err)
		}
	}
}
