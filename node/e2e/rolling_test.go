package e2e

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"lookalike/proto"
)

// rrFullyReplicated: every list of coll is in a shard with two in-sync
// replicas on live nodes, a live primary, nothing joining, and so is every
// partition of its id directory (a node restarted next would otherwise
// take a partition's last replica with it: every write stalls), and there
// is a leader.
func rrFullyReplicated(cu proto.Cluster, coll string, nlist int) bool {
	if cu.Leader == "" || cdSumLists(cu, coll) != nlist {
		return false
	}
	for _, s := range cdDataShards(cu, coll) {
		if len(s.InSync) < 2 || len(s.Joining) > 0 || cdNodeState(cu, s.Primary) != "alive" {
			return false
		}
		for _, id := range s.InSync {
			if cdNodeState(cu, id) != "alive" {
				return false
			}
		}
	}
	return true
}

// rrPlacement names each list shard's in-sync replicas, sorted.
func rrPlacement(cu proto.Cluster, coll string) string {
	var b strings.Builder
	for _, s := range cdListShards(cu, coll) {
		r := slices.Clone(s.InSync)
		slices.Sort(r)
		fmt.Fprintf(&b, "%s%v ", s.Shard, r)
	}
	return strings.TrimSpace(b.String())
}

func rrShards(cu proto.Cluster, coll string) string {
	s := cdShardsString(cdDataShards(cu, coll))
	for _, sh := range cdDataShards(cu, coll) {
		if len(sh.Joining) > 0 {
			s += fmt.Sprintf("\n  %s joining %v", sh.Shard, sh.Joining)
		}
	}
	return s
}

// TestClusterRollingRestart: with two writers and two searchers running
// against a three-node cluster (replicas 2, trained), each node in turn
// (the Raft leader last) is taken out of the load rotation, stopped with
// SIGTERM (it hands off), started again on its data directory, and put
// back once alive and ready; before each stop every list shard and id
// directory partition has two in-sync replicas again. No search fails or
// is partial, no write batch is given up, and every acknowledged id reads
// through every node. Each node is caught up (what it held is not sent
// again), so the shards end on the nodes they started on.
func TestClusterRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three server processes and restarts each")
	}
	begin := time.Now()
	const (
		d, nlist, nbase, k, nprobe = 16, 8, 3000, 10, 4
		name                       = "rr"
		path                       = "/v1/collections/" + name
		giveUp                     = 20 * time.Second
	)
	nodes := cdStartCluster(t, 3, "--auto-train-at", "-1")
	cdLogTails(t, nodes, 60)
	cdWaitFormed(t, nodes)
	load := cdSeedTrained(t, nodes, name, d, nlist, nbase, 51)
	cu := waitCluster(t, nodes[0], 30*time.Second, "every list shard of "+name+" with 2 in-sync replicas", func(cu proto.Cluster) bool {
		return rrFullyReplicated(cu, name, nlist)
	})
	t.Logf("trained, ready on every node %v after start; leader %s; shards:%s", time.Since(begin).Round(time.Millisecond), cu.Leader, rrShards(cu, name))
	placed := rrPlacement(cu, name)

	// The load, through a "load balancer" (cdTargets) that takes a node
	// out and drains it before the node is stopped.
	targets := newCDTargets(nodes)
	stopLoad := cdRunLoad(load, targets, path, d, k, nprobe, giveUp, 500)
	defer stopLoad()
	probe := func(from time.Time) (time.Duration, error) {
		return load.probe(targets, path, d, 700, from, "SIGTERM")
	}

	time.Sleep(2 * time.Second) // the load runs on the whole cluster first
	if w0, err := probe(time.Now()); err != nil || w0 > 5*time.Second {
		t.Fatalf("a write took %v before any restart (%v)", w0, err)
	}

	// The rolling restart: a node that is not the Raft leader while one
	// is left, the leader last.
	type timing struct {
		id                                    string
		wasLeader                             bool
		shardsOK, drain, stopDur, writesOK    time.Duration
		afterExit, alive, ready               time.Duration
		writeErrs, searchFail, partial, short int
	}
	var timings []timing
	remaining := slices.Clone(nodes)
	for len(remaining) > 0 {
		var observer *clusterNode // a node in rotation, not the one restarted
		var victim *clusterNode
		// Before the stop: every shard fully replicated again.
		waitStart := time.Now()
		obs := targets.nodes()[0]
		cu, ok := cdPoll(obs, 60*time.Second, func(cu proto.Cluster) bool { return rrFullyReplicated(cu, name, nlist) })
		if !ok {
			t.Fatalf("60 s on, not every list shard and id directory partition of %s has 2 in-sync live replicas and nothing joining (view from %s):%s\nnodes: %+v", name, obs.id, rrShards(cu, name), cu.Nodes)
		}
		shardsOK := time.Since(waitStart)
		for _, c := range remaining {
			if c.id != cu.Leader {
				victim = c
				break
			}
		}
		if victim == nil {
			victim = remaining[0] // the leader, last
		}
		remaining = slices.DeleteFunc(remaining, func(c *clusterNode) bool { return c == victim })
		for _, c := range nodes {
			if c != victim {
				observer = c
				break
			}
		}
		tm := timing{id: victim.id, wasLeader: victim.id == cu.Leader, shardsOK: shardsOK}
		load.mu.Lock()
		we0, sf0, pa0, sh0 := load.writeErrs, load.searchFail, load.partial, load.short
		load.mu.Unlock()

		t0 := time.Now()
		targets.remove(victim) // out of rotation, in-flight requests to it drained
		tm.drain = time.Since(t0)
		sigterm := time.Now()
		type probed struct {
			d   time.Duration
			err error
		}
		pch := make(chan probed, 1)
		go func() {
			d, err := probe(sigterm)
			pch <- probed{d, err}
		}()
		victim.stop()
		var err error
		tm.stopDur = time.Since(sigterm)
		p := <-pch
		if p.err != nil {
			t.Fatalf("%s stopped: %v", victim.id, p.err)
		}
		tm.writesOK = p.d
		// And once it has exited: every shard takes writes without it.
		exited := time.Now()
		if tm.afterExit, err = probe(exited); err != nil {
			t.Fatalf("%s stopped: %v", victim.id, err)
		}
		if tm.stopDur > 5*time.Second {
			l := strings.Split(strings.TrimSpace(victim.log.String()), "\n")
			t.Logf("%s took %v to stop; its last log lines:\n%s", victim.id, tm.stopDur.Round(time.Millisecond), strings.Join(l[max(0, len(l)-30):], "\n"))
		}
		if cu, err := observer.cluster(); err == nil {
			t.Logf("%s stopped (SIGTERM, was leader %v) in %v; leader now %q; shards:%s", victim.id, tm.wasLeader, tm.stopDur.Round(time.Millisecond), cu.Leader, rrShards(cu, name))
		}

		restartAt := time.Now()
		victim.restart()
		for _, c := range nodes {
			waitCluster(t, c, 30*time.Second, victim.id+" alive again in "+c.id+"'s view", func(cu proto.Cluster) bool {
				return cu.Leader != "" && cdNodeState(cu, victim.id) == "alive"
			})
		}
		tm.alive = time.Since(restartAt)
		cdWaitReady(t, victim, name, 30*time.Second)
		tm.ready = time.Since(restartAt)
		targets.add(victim)

		load.mu.Lock()
		tm.writeErrs, tm.searchFail, tm.partial, tm.short = load.writeErrs-we0, load.searchFail-sf0, load.partial-pa0, load.short-sh0
		load.mu.Unlock()
		timings = append(timings, tm)
		t.Logf("%s restarted: shards fully replicated after %v, drained %v, stop %v, writes ok %v after SIGTERM (%v after exit), alive %v / ready %v after start; in this window %d write errors (retried), %d searches failed, %d partial, %d short",
			tm.id, tm.shardsOK.Round(time.Millisecond), tm.drain.Round(time.Millisecond), tm.stopDur.Round(time.Millisecond), tm.writesOK.Round(time.Millisecond), tm.afterExit.Round(time.Millisecond),
			tm.alive.Round(time.Millisecond), tm.ready.Round(time.Millisecond), tm.writeErrs, tm.searchFail, tm.partial, tm.short)
	}

	// At the end: every shard fully replicated, then the load stops.
	endWait := time.Now()
	cu, ok := cdPoll(nodes[0], 60*time.Second, func(cu proto.Cluster) bool { return rrFullyReplicated(cu, name, nlist) })
	if !ok {
		t.Errorf("60 s after the last restart, not every list shard and id directory partition has 2 in-sync live replicas:%s\nnodes: %+v", rrShards(cu, name), cu.Nodes)
	} else {
		t.Logf("after the last restart, every shard 2 in-sync replicas %v later; leader %s; shards:%s", time.Since(endWait).Round(time.Millisecond), cu.Leader, rrShards(cu, name))
	}
	// Each restarted node was waited for and caught up: it holds the
	// shards it held before, and what it held was not sent again.
	if ok {
		if now := rrPlacement(cu, name); now != placed {
			t.Errorf("the shards did not come back to their nodes: %s at the start, %s now", placed, now)
		}
	}
	sent, kept := cdCopyItems(t, nodes)
	t.Logf("copies to the restarted nodes: %.0f items sent, %.0f they held already", sent, kept)
	if kept == 0 {
		t.Errorf("the restarted nodes were copied their shards in full (%.0f items sent), not caught up", sent)
	}
	time.Sleep(time.Second) // load on the restored cluster
	stopLoad()

	t.Logf("%-4s %-6s %10s %8s %8s %10s %10s %8s %8s %6s %6s", "node", "leader", "shards ok", "drain", "stop", "writes ok", "after exit", "alive", "ready", "wErrs", "sFail")
	for _, tm := range timings {
		t.Logf("%-4s %-6v %10v %8v %8v %10v %10v %8v %8v %6d %6d", tm.id, tm.wasLeader, tm.shardsOK.Round(time.Millisecond), tm.drain.Round(time.Millisecond),
			tm.stopDur.Round(time.Millisecond), tm.writesOK.Round(time.Millisecond), tm.afterExit.Round(time.Millisecond), tm.alive.Round(time.Millisecond), tm.ready.Round(time.Millisecond), tm.writeErrs, tm.searchFail+tm.partial)
	}

	acked := load.summary(t)
	load.mu.Lock()
	searchFail, partial, short, searches, gaveUp := load.searchFail, load.partial, load.short, load.searches, load.gaveUp
	load.mu.Unlock()

	// Every acknowledged id, through every node.
	readStart := time.Now()
	cdReadAll(t, nodes, path, acked)
	t.Logf("read %d acknowledged ids through each of %d nodes in %v", len(acked), len(nodes), time.Since(readStart).Round(time.Millisecond))

	if searchFail > 0 || partial > 0 || short > 0 {
		t.Errorf("searches: %d failed, %d partial, %d short of %d", searchFail, partial, short, searches)
	}
	if gaveUp > 0 {
		t.Errorf("%d write batches still refused after %v of retries", gaveUp, giveUp)
	}
	t.Logf("whole test %v", time.Since(begin).Round(time.Millisecond))
}
