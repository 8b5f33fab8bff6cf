package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreeAddr returns a loopback host:port free for both TCP and UDP (a
// gossip address binds the two; a Raft or HTTP address needs TCP only).
// The port is released before it is returned, so a test starts its
// server on it at once.
//
// The port is drawn below the kernel's ephemeral range
// (/proc/sys/net/ipv4/ip_local_port_range), where no outgoing connection
// takes one: a port the kernel handed out for ":0" is in that range, and
// between its release here and the server's bind an outgoing connection
// of any process could take it ("bind: address already in use", seen once
// in a cluster test). Ports are not handed out twice by one process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	lo, hi := belowEphemeral()
	for try := 0; try < 200; try++ {
		addr := "127.0.0.1:0"
		if hi > lo {
			p := lo + rand.IntN(hi-lo)
			if !claim(p) {
				continue
			}
			addr = fmt.Sprintf("127.0.0.1:%d", p)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		addr = l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("testenv: no loopback port free for TCP and UDP after 200 tries")
	return ""
}

var handed struct {
	sync.Mutex
	ports map[int]bool
}

// claim records p as handed out; false when it already was.
func claim(p int) bool {
	handed.Lock()
	defer handed.Unlock()
	if handed.ports == nil {
		handed.ports = map[int]bool{}
	}
	if handed.ports[p] {
		return false
	}
	handed.ports[p] = true
	return true
}

// belowEphemeral is the range [10000, start of the ephemeral range), or
// an empty one (then ":0" is used) when that is not known or too small.
func belowEphemeral() (lo, hi int) {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0, 0
	}
	f := strings.Fields(string(raw))
	if len(f) != 2 {
		return 0, 0
	}
	start, err := strconv.Atoi(f[0])
	if err != nil || start < 11000 {
		return 0, 0
	}
	return 10000, start
}
