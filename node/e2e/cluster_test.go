package e2e

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"lookalike/proto"
)

// clusterNode is a server started with --gossip; gossip is its memberlist
// address.
type clusterNode struct {
	*server
	id     string
	gossip string
}

// startCluster starts n `lookalike serve` processes on loopback that join
// each other with --bootstrap-expect expect, with the extra flags. They
// start together: none waits for another's health.
func startCluster(t *testing.T, n, expect int, key string, extra ...string) []*clusterNode {
	return startClusterWith(t, n, expect, key, func() []string { return extra })
}

// startClusterWith is startCluster with each node's extra flags from
// extra (called once per node: a flag may name a port of its own).
func startClusterWith(t *testing.T, n, expect int, key string, extra func() []string) []*clusterNode {
	nodes := make([]*clusterNode, n)
	var seeds []string
	for i := range nodes {
		nodes[i] = &clusterNode{id: fmt.Sprintf("n%d", i+1), gossip: freeAddr(t)}
		seeds = append(seeds, nodes[i].gossip)
	}
	for i, c := range nodes {
		args := []string{"--model", "none", "--node-id", c.id, "--gossip", c.gossip, "--join", strings.Join(seeds, ",")}
		if expect > 0 {
			args = append(args, "--bootstrap-expect", fmt.Sprint(expect))
		}
		if key != "" {
			args = append(args, "--gossip-key", key)
		}
		nodes[i].server = newServer(t, append(args, extra()...)...)
	}
	for _, c := range nodes {
		c.start() // returns when its HTTP API answers; Raft comes later
	}
	return nodes
}

// joinNode starts one more node that joins through seed (no bootstrap).
func joinNode(t *testing.T, id, seed string, extra ...string) *clusterNode {
	c := &clusterNode{id: id, gossip: freeAddr(t)}
	c.server = newServer(t, append([]string{"--model", "none", "--node-id", id, "--gossip", c.gossip, "--join", seed}, extra...)...)
	c.start()
	return c
}

func (c *clusterNode) cluster() (proto.Cluster, error) {
	var cu proto.Cluster
	_, _, err := c.call("GET", "/v1/cluster", "", nil, &cu)
	return cu, err
}

// waitCluster polls c's /v1/cluster until ok holds, for at most limit.
func waitCluster(t *testing.T, c *clusterNode, limit time.Duration, what string, ok func(proto.Cluster) bool) proto.Cluster {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last proto.Cluster
	for {
		cu, err := c.cluster()
		if err == nil {
			if ok(cu) {
				return cu
			}
			last = cu
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last view from %s: %+v\n%s", what, limit, c.id, last, c.log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func roles(cu proto.Cluster) (voters, nonvoters []string) {
	for _, n := range cu.Nodes {
		switch n.Raft {
		case "voter":
			voters = append(voters, n.ID)
		case "nonvoter":
			nonvoters = append(nonvoters, n.ID)
		}
	}
	return voters, nonvoters
}

// TestClusterMembership: three processes found a cluster with
// --bootstrap-expect 3 (one leader, three voters, every member alive), a
// collection created through a follower reaches the leader and every
// node, the leader killed with SIGKILL is replaced within a bound, a
// fourth node joins as a non-voter, and the old leader restarts into the
// cluster without bootstrapping again.
func TestClusterMembership(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four server processes")
	}
	begin := time.Now()
	nodes := startCluster(t, 3, 3, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	byID := map[string]*clusterNode{}
	for _, c := range nodes {
		byID[c.id] = c
	}

	formed := func(cu proto.Cluster) bool {
		v, nv := roles(cu)
		alive := 0
		for _, n := range cu.Nodes {
			if n.State == "alive" && n.GossipAddr != "" {
				alive++
			}
		}
		return cu.Leader != "" && len(v) == 3 && len(nv) == 0 && alive == 3
	}
	var cu proto.Cluster
	for _, c := range nodes { // every node sees the same leader and voters
		cu = waitCluster(t, c, 20*time.Second, "one leader, three voters", formed)
	}
	leader := byID[cu.Leader]
	t.Logf("formed in %v: leader %s", time.Since(begin).Round(time.Millisecond), leader.id)
	for _, c := range nodes {
		if got, _ := c.cluster(); got.Leader != leader.id {
			t.Fatalf("%s says the leader is %q, %s says %q", c.id, got.Leader, nodes[0].id, leader.id)
		}
	}
	// Exactly one node bootstrapped.
	boots := 0
	for _, c := range nodes {
		boots += strings.Count(c.log.String(), "bootstrapped Raft")
	}
	if boots != 1 {
		t.Fatalf("%d nodes bootstrapped Raft, want 1", boots)
	}

	// A write through a follower is forwarded to the leader, and the
	// follower reads its own write at once.
	var follower *clusterNode
	for _, c := range nodes {
		if c != leader {
			follower = c
			break
		}
	}
	// Right after the election the leader may not have recorded the
	// members in the node table yet (its next reconcile, ≤ 0.5 s): 503,
	// which clients retry.
	create(t, follower, `{"name":"shared","metric":"l2","dim":4}`)
	if c := follower.collection("shared"); c.Dim != 4 {
		t.Fatalf("%+v", c)
	}
	st, code, _ := follower.call("POST", "/v1/collections", proto.JSONContentType, []byte(`{"name":"shared","metric":"l2","dim":4}`), nil)
	if st != 409 || code != proto.Conflict {
		t.Fatalf("second create through the follower: %d %s, want 409 conflict (the leader's domain error)", st, code)
	}
	for _, c := range nodes {
		deadline := time.Now().Add(5 * time.Second)
		for {
			var cs proto.Collections
			st, _, err := c.call("GET", "/v1/collections", proto.JSONContentType, nil, &cs)
			if st != 200 && st != 503 { // 503: catching up, or a shard not counted: again
				t.Fatalf("%s lists: %d %v", c.id, st, err)
			}
			if st == 200 && len(cs.Collections) == 1 && cs.Collections[0].Name == "shared" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s lists %+v", c.id, cs.Collections)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// The id directory's partitions hold no lists: "-", not 0.
	if out, err := follower.ctl("status"); err != nil || !strings.Contains(out, "voter (leader)") || !strings.Contains(out, "n1,n2,n3") ||
		!regexp.MustCompile(`(?m)^shared/ids/0 +\d+ +- +n\d`).MatchString(out) {
		t.Fatalf("ctl status: %v\n%s", err, out)
	}

	// kill -9 the leader: the others elect a new one.
	killed := time.Now()
	leader.kill9()
	var rest []*clusterNode
	for _, c := range nodes {
		if c != leader {
			rest = append(rest, c)
		}
	}
	cu = waitCluster(t, rest[0], 15*time.Second, "a new leader", func(cu proto.Cluster) bool {
		return cu.Leader != "" && cu.Leader != leader.id
	})
	failover := time.Since(killed)
	t.Logf("new leader %s %v after kill -9 of %s", cu.Leader, failover.Round(time.Millisecond), leader.id)
	newLeader := byID[cu.Leader]
	waitCluster(t, newLeader, 15*time.Second, "the killed leader seen dead", func(cu proto.Cluster) bool {
		for _, n := range cu.Nodes {
			if n.ID == leader.id {
				return n.State == "dead"
			}
		}
		return false
	})
	// Writes go on through the survivor that is not the leader.
	for _, c := range rest {
		if c != newLeader {
			create(t, c, `{"name":"after","metric":"ip","dim":2}`)
		}
	}

	// A fourth node joins through a survivor and becomes a non-voter.
	n4 := joinNode(t, "n4", rest[0].gossip, "--gossip-key", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
	cu = waitCluster(t, n4, 20*time.Second, "n4 a non-voter", func(cu proto.Cluster) bool {
		v, nv := roles(cu)
		return len(v) == 3 && len(nv) == 1 && nv[0] == "n4" && cu.Leader != ""
	})
	for _, name := range []string{"shared", "after"} {
		n4.collection(name) // the table reached the non-voter
	}

	// The killed leader restarts with its Raft state: it does not
	// bootstrap again, rejoins as the voter it was and catches up.
	leader.restart()
	waitCluster(t, leader, 20*time.Second, "the old leader back as a voter, alive", func(cu proto.Cluster) bool {
		v, nv := roles(cu)
		alive := 0
		for _, n := range cu.Nodes {
			if n.State == "alive" {
				alive++
			}
		}
		return cu.Leader != "" && len(v) == 3 && len(nv) == 1 && alive == 4
	})
	leader.collection("after") // created while it was dead
	if strings.Contains(leader.log.String(), "bootstrapped Raft") {
		t.Fatalf("a restarted node bootstrapped again:\n%s", leader.log)
	}
	t.Logf("whole test %v", time.Since(begin).Round(time.Millisecond))
}

// create creates a collection through c, retrying 503 for up to 10 s.
func create(t *testing.T, c *clusterNode, body string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _, err := c.call("POST", "/v1/collections", proto.JSONContentType, []byte(body), nil)
		if st == 201 {
			return
		}
		if st != 503 || time.Now().After(deadline) {
			t.Fatalf("create %s through %s: %d %v", body, c.id, st, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestClusterFlags: bad cluster flags are clear startup errors.
func TestClusterFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--gossip", "127.0.0.1:1", "--gossip-key", "c2hvcnQ="}, "--gossip-key"},
		{[]string{"--gossip", "127.0.0.1:1", "--gossip-key", "%%%"}, "base64"},
		{[]string{"--gossip", "127.0.0.1:1"}, "--join"},
		{[]string{"--join", "127.0.0.1:1"}, "need --gossip"},
	} {
		dir := t.TempDir()
		out, err := runBin(append([]string{"serve", "--model", "none", "--data", dir, "--http", "127.0.0.1:0", "--raft", "127.0.0.1:0"}, tc.args...)...)
		if err == nil || !strings.Contains(out, tc.want) {
			t.Errorf("%v: %v, want an error naming %q:\n%s", tc.args, err, tc.want, out)
		}
	}
}
