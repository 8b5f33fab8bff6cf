package e2e

import (
	"slices"
	"testing"
	"time"

	"lookalike/proto"
)

// A voter lost for good is replaced: after --dead-voter-grace the leader
// promotes the live non-voter and removes the dead voter from Raft, so
// three voters remain and the cluster survives one more failure. The
// dead node, started again, comes back as a non-voter.
func TestClusterReplacesDeadVoter(t *testing.T) {
	if testing.Short() {
		t.Skip("starts four server processes")
	}
	nodes := cdStartCluster(t, 3, "--dead-voter-grace", "2s")
	cu := cdWaitFormed(t, nodes)
	n4 := joinNode(t, "n4", nodes[0].gossip, "--dead-voter-grace", "2s")
	waitCluster(t, nodes[0], 20*time.Second, "n4 a non-voter", func(cu proto.Cluster) bool {
		_, nv := roles(cu)
		return slices.Contains(nv, "n4")
	})
	var victim *clusterNode
	for _, c := range nodes {
		if c.id != cu.Leader {
			victim = c
			break
		}
	}
	var witness *clusterNode
	for _, c := range nodes {
		if c != victim {
			witness = c
			break
		}
	}
	victim.kill9()
	killed := time.Now()
	after := waitCluster(t, witness, 30*time.Second, "the dead voter replaced by n4", func(cu proto.Cluster) bool {
		v, _ := roles(cu)
		return len(v) == 3 && slices.Contains(v, "n4") && !slices.Contains(v, victim.id)
	})
	t.Logf("voter %s killed; n4 voted in its place %v later (grace 2 s); voters %v", victim.id, time.Since(killed).Round(time.Millisecond), func() []string { v, _ := roles(after); return v }())

	// Three voters again: the cluster survives the loss of one more.
	var second *clusterNode
	for _, c := range append(nodes, n4) {
		if c != victim && c.id != after.Leader {
			second = c
			break
		}
	}
	second.kill9()
	var alive *clusterNode
	for _, c := range append(nodes, n4) {
		if c != victim && c != second {
			alive = c
			break
		}
	}
	waitCluster(t, alive, 15*time.Second, "a leader after a second node died", func(cu proto.Cluster) bool {
		return cu.Leader != "" && cu.Leader != second.id && cu.Leader != victim.id
	})
	if st, _, err := alive.call("POST", "/v1/collections", "application/json", []byte(`{"name":"after","metric":"l2","dim":2}`), nil); err != nil || st != 201 {
		t.Fatalf("a write with two of four nodes dead (three voters, two alive): %d %v\n%s", st, err, alive.log)
	}

	// The first victim comes back: added again as a non-voter.
	victim.start()
	waitCluster(t, alive, 20*time.Second, "the old voter back as a non-voter", func(cu proto.Cluster) bool {
		_, nv := roles(cu)
		return slices.Contains(nv, victim.id)
	})
}
