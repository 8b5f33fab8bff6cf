package e2e

import (
	"fmt"
	"testing"
	"time"

	"lookalike/proto"
)

// TestClusterCountAfterKill: a collection's count through a node is the
// count of one replica of each shard. Right after a kill -9, before
// gossip calls the node dead, a describe may pick the dead node for a
// shard: it must count that shard on its other replica (or answer 503),
// never answer a wrong count (until 2026-11-28 it answered the gateway's
// own count, about two thirds of the items, once a call failed).
func TestClusterCountAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes")
	}
	const (
		d, nlist, nbase = 16, 8, 1000
		name            = "count"
		path            = "/v1/collections/" + name
	)
	nodes := cdStartCluster(t, 3, "--auto-train-at", "-1", "--dir-sweep", "-1s")
	cdLogTails(t, nodes, 60)
	cu := cdWaitFormed(t, nodes)
	cdSeedTrained(t, nodes, name, d, nlist, nbase, 79)
	chaosWaitWhole(t, nodes, name, nlist, 60*time.Second)

	// The victim: not the leader (its death would take the leases away).
	var victim *clusterNode
	var live []*clusterNode
	for _, c := range nodes {
		if c.id != cu.Leader && victim == nil {
			victim = c
		} else {
			live = append(live, c)
		}
	}
	victim.kill9()
	killed := time.Now()
	var ok, refused, wrong int
	var samples []string
	for time.Since(killed) < 5*time.Second {
		for _, c := range live {
			var col proto.Collection
			st, err := cdCall(c.server, 10*time.Second, "GET", path, nil, &col)
			switch {
			case st == 200 && col.Count == nbase:
				ok++
			case st == 503:
				refused++
			default:
				wrong++
				if len(samples) < 5 {
					samples = append(samples, fmt.Sprintf("%v after the kill through %s: %d count %d %v", time.Since(killed).Round(time.Millisecond), c.id, st, col.Count, err))
				}
			}
		}
	}
	t.Logf("for 5 s after kill -9 of %s: %d describes counted %d, %d refused (503), %d other", victim.id, ok, nbase, refused, wrong)
	if wrong > 0 {
		t.Errorf("%d describes answered neither the count %d nor 503:\n  %v", wrong, nbase, samples)
	}
	if ok == 0 {
		t.Errorf("no describe counted %d within 5 s of the kill", nbase)
	}
}
