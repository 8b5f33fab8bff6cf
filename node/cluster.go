package node

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"lookalike/coordinator"
	"lookalike/coordinator/meta"
	"lookalike/node/membership"
)

// ClusterOptions make a server one node of a cluster (docs/node.md,
// "Membership"). With Gossip empty the server is a one-node cluster.
type ClusterOptions struct {
	// Gossip is the memberlist address (UDP and TCP), host:port; it is
	// also the address other nodes --join. Empty: no cluster.
	Gossip string
	// Join lists gossip addresses of nodes to join, tried until one
	// answers.
	Join []string
	// BootstrapExpect: a node without Raft state waits until it sees this
	// many members (itself included); then the one with the lowest id
	// bootstraps Raft with all of them. 0: never bootstrap; wait for a
	// leader to add this node.
	BootstrapExpect int
	// Voter asks to be a Raft voter even when three voters exist.
	Voter bool
	// DeadVoterGrace is how long a voter may be dead (gossip) before the
	// leader replaces it with a live non-voter, when there is one, and
	// removes it from the Raft configuration. 0: 30 s; negative: never.
	DeadVoterGrace time.Duration
	// RestoreDelay is how long the leader waits for a replica taken out
	// of a shard (dead, or drained at shutdown) to come back before it
	// copies the shard to another node: a node back within it catches up
	// (only what changed while it was away travels) and keeps its place.
	// 0: 30 s; negative: copy at once.
	RestoreDelay time.Duration
	// DirSweep is how often the node sweeps the id directory partitions
	// it is the primary of for ids left with two copies, or entries
	// naming lists that hold none (sweep.go). 0: 1 min; negative: never.
	DirSweep time.Duration
	// GossipKey encrypts gossip (16, 24 or 32 bytes; every node needs the
	// same one). Nil: gossip in the clear.
	GossipKey []byte
	// Membership overrides the failure detector's timings (tests); its
	// Meta, BindAddr, Join, Key, OnChange and Logger are set by Run.
	Membership membership.Options
}

// MaxVoters is how many voters the leader adds on its own: the first
// three nodes; more only with --voter.
const MaxVoters = 3

// Raft timing of a clustered server: a follower that hears nothing from
// the leader for 0.5–1 s stands for election (raft's defaults are 1 s).
const (
	clusterHeartbeat   = 500 * time.Millisecond
	clusterElection    = 500 * time.Millisecond
	clusterLeaderLease = 250 * time.Millisecond
)

func (c *ClusterOptions) enabled() bool { return c.Gossip != "" }

func (c *ClusterOptions) validate() []error {
	var errs []error
	if !c.enabled() {
		if len(c.Join) > 0 || c.BootstrapExpect != 0 || c.Voter || c.GossipKey != nil {
			errs = append(errs, errors.New("--join, --bootstrap-expect, --voter and --gossip-key need --gossip"))
		}
		return errs
	}
	if c.BootstrapExpect < 0 {
		errs = append(errs, fmt.Errorf("bootstrap-expect %d", c.BootstrapExpect))
	}
	if c.BootstrapExpect == 0 && len(c.Join) == 0 {
		errs = append(errs, errors.New("--gossip needs --join (a cluster to join) or --bootstrap-expect (a cluster to found)"))
	}
	return errs
}

// clusterRuntime runs membership, bootstrap and the leader's
// reconciliation of the Raft configuration and node table with gossip.
type clusterRuntime struct {
	o  ClusterOptions
	cs *coordinator.Server
	// ml is set by start, after Open: goroutines Open starts (a copy to a
	// joiner) may ask for a peer's address first (httpAddr).
	ml    atomic.Pointer[membership.Membership]
	log   *slog.Logger
	id    string
	nudge chan struct{}

	stop chan struct{}
	wg   sync.WaitGroup

	lastSeen    []string             // bootstrap: the member set at the previous check
	lastReport  time.Time            // bootstrap: last "waiting" log line
	deadSince   map[string]time.Time // leader: when each dead voter was first seen dead
	shortSince  map[string]time.Time // leader: when each shard was first seen short of in-sync replicas
	lastRestore time.Time            // leader: the last restore pass
	goneAt      map[string]time.Time // leader: when each node was last seen dead or leaving

	peers *peers      // the data plane's client: told who is dead
	tls   *tls.Config // client side of calls to peers over HTTPS; nil over HTTP
}

// clusterForwarder is the coordinator's Forward hook for a clustered
// server; cr is filled in once membership runs.
func clusterForwarder(cr *clusterRuntime, tlsConf *tls.Config, apiKey string) coordinator.ForwardFunc {
	scheme, tr := peerTransport(tlsConf)
	f := &forwarder{scheme: scheme, apiKey: apiKey, client: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
	f.waitVersion = func(ctx context.Context, version uint64) error { return waitTableVersion(ctx, cr.cs, version) }
	f.httpAddr = cr.httpAddr
	return f.forward
}

// gossip is the node's membership, nil before start.
func (cr *clusterRuntime) gossip() *membership.Membership { return cr.ml.Load() }

// liveMember returns member id as gossip shows it, if gossip runs and
// does not hold it dead.
func (cr *clusterRuntime) liveMember(id string) (membership.Member, bool) {
	if ml := cr.gossip(); ml != nil {
		if m, ok := ml.Member(id); ok && m.State != membership.Dead {
			return m, true
		}
	}
	return membership.Member{}, false
}

// httpAddr is a node's HTTP address: gossip's while the member is not
// dead, else the node table's.
func (cr *clusterRuntime) httpAddr(id string) string {
	if m, ok := cr.liveMember(id); ok {
		return m.HTTPAddr
	}
	if cr.cs != nil {
		if n, ok := cr.cs.Table().Node(id); ok {
			return n.HTTPAddr
		}
	}
	return ""
}

// start joins gossip and starts the loop. n's runtime is synced with
// every table change (collections created through other nodes).
func (cr *clusterRuntime) start(n *Node, httpAddr string, tls bool) error {
	mo := cr.o.Membership
	mo.Meta = membership.Meta{NodeID: cr.id, HTTPAddr: httpAddr, RaftAddr: cr.cs.Addr()}
	if cr.o.Voter {
		mo.Meta.Flags |= membership.FlagVoter
	}
	if tls {
		mo.Meta.Flags |= membership.FlagTLS
	}
	if conf, err := cr.cs.Configuration(); err == nil && len(conf) > 0 {
		mo.Meta.Flags |= membership.FlagRaft
	}
	mo.BindAddr, mo.Join, mo.Key, mo.Logger = cr.o.Gossip, cr.o.Join, cr.o.GossipKey, cr.log
	mo.OnChange = func() {
		select {
		case cr.nudge <- struct{}{}:
		default:
		}
	}
	ml, err := membership.Start(mo)
	if err != nil {
		return err
	}
	cr.ml.Store(ml)
	tables, cancel := cr.cs.Watch()
	cr.wg.Add(2)
	if every := cr.o.DirSweep; every >= 0 {
		if every == 0 {
			every = time.Minute
		}
		cr.wg.Add(1)
		go func() {
			defer cr.wg.Done()
			n.sweepLoop(every, cr.stop)
		}()
	}
	go func() {
		defer cr.wg.Done()
		defer cancel()
		for {
			select {
			case <-cr.stop:
				return
			case <-tables:
				if err := n.Sync(); err != nil && !errors.Is(err, ErrClosed) {
					cr.log.Warn("cluster: open collections of the table", "err", err)
				}
			}
		}
	}()
	go cr.loop()
	return nil
}

// handOff prepares a graceful stop (docs/node.md, "Rolling restarts"):
// a leader hands leadership to another voter, the node leaves gossip (the
// leader then takes it out of every shard, promoting backups where it was
// primary), and it waits, at most limit, until the table no longer names
// it in any shard, so gateways stop routing to it before its API closes.
func (cr *clusterRuntime) handOff(limit time.Duration) {
	ml := cr.gossip()
	if ml == nil {
		return
	}
	deadline := time.Now().Add(limit)
	if cr.cs.IsLeader() {
		if err := cr.cs.TransferLeadership(); err != nil {
			cr.log.Warn("cluster: leadership transfer", "err", err)
		}
	}
	// Say so first, so that the leader names no copy to this node, then
	// leave every shard that has another replica while still answering:
	// the others' writes stop coming here before this node stops
	// answering them (a backup that stops answering costs each write in
	// flight to it the primary's removal of it and one lease).
	if err := ml.SetFlags(ml.Flags()|membership.FlagLeaving, time.Second); err != nil {
		cr.log.Warn("cluster: gossip metadata", "err", err)
	}
	cr.drain(deadline)
	if err := ml.Leave(time.Second); err != nil {
		cr.log.Warn("cluster: leave gossip", "err", err)
	}
	for time.Now().Before(deadline) {
		named := false
		for _, c := range cr.cs.Table().Collections() {
			for s := range eachShard(c) {
				// The only copy stays named: nothing can take it over. A
				// copy to this node (joining) is not waited for: it fails
				// and the leader names another node.
				if len(s.Replicas) > 1 && slices.Contains(s.Replicas, cr.id) {
					named = true
				}
			}
		}
		if !named {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	cr.log.Warn("cluster: stopping while shards still name this node", "waited", limit)
}

// drain takes this node out of every shard that has another in-sync
// replica alive (the first such becomes primary where this node was) and
// out of every joining set, through Raft, until none is left or the
// deadline passes.
func (cr *clusterRuntime) drain(deadline time.Time) {
	alive := map[string]bool{}
	for _, m := range cr.gossip().Members() {
		if m.State == membership.Alive && m.Flags&membership.FlagLeaving == 0 {
			alive[m.NodeID] = true
		}
	}
	for time.Now().Before(deadline) {
		todo := 0
		for _, c := range cr.cs.Table().Collections() {
			for s, buffer := range eachShard(c) {
				// Held here with another replica alive to take over
				// (the only live copy stays named, as in handOff).
				held := slices.Contains(s.Replicas, cr.id) && slices.ContainsFunc(s.Replicas, func(r string) bool { return r != cr.id && alive[r] })
				joining := slices.Contains(s.Joining, cr.id)
				if !held && !joining {
					continue
				}
				todo++
				rest := s.Replicas
				primary := s.Primary
				if held {
					rest = slices.DeleteFunc(slices.Clone(s.Replicas), func(r string) bool { return r == cr.id })
					if primary == cr.id {
						primary = rest[slices.IndexFunc(rest, func(r string) bool { return alive[r] })]
					}
				}
				cmd := meta.SetReplicas{Collection: c.Name, Buffer: buffer, Shard: s.ID, Replicas: rest, Primary: primary,
					Joining: slices.DeleteFunc(slices.Clone(s.Joining), func(j string) bool { return j == cr.id }),
					From:    s.Replicas, FromJoining: s.Joining}
				ctx, cancel := context.WithTimeout(context.Background(), time.Until(deadline))
				_, err := cr.cs.Propose(ctx, cmd)
				cancel()
				if err != nil && !errors.Is(err, meta.ErrStaleShard) {
					cr.log.Warn("cluster: leaving a shard", "collection", c.Name, "shard", s.ID, "buffer", buffer, "err", err)
				}
			}
		}
		if todo == 0 {
			return
		}
		time.Sleep(20 * time.Millisecond) // let the table catch up before reading it again
	}
}

// close leaves gossip and stops the goroutines.
func (cr *clusterRuntime) close() error {
	ml := cr.gossip()
	if ml == nil {
		return nil
	}
	close(cr.stop)
	cr.wg.Wait()
	_ = ml.Leave(time.Second)
	return ml.Close()
}

func (cr *clusterRuntime) loop() {
	defer cr.wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-cr.stop:
			return
		case <-tick.C:
		case <-cr.nudge:
		}
		if cr.peers != nil {
			dead := map[string]bool{}
			for _, m := range cr.gossip().Members() {
				if m.State == membership.Dead {
					dead[m.NodeID] = true
				}
			}
			cr.peers.setDead(dead)
		}
		conf, err := cr.cs.Configuration()
		if err != nil {
			continue
		}
		if len(conf) == 0 {
			cr.maybeBootstrap()
			continue
		}
		if ml := cr.gossip(); ml.Flags()&membership.FlagRaft == 0 {
			if err := ml.SetFlags(ml.Flags()|membership.FlagRaft, time.Second); err != nil {
				cr.log.Warn("cluster: gossip metadata", "err", err)
			}
		}
		if cr.cs.IsLeader() {
			cr.reconcile(conf)
			cr.failover()
			cr.restore()
		}
	}
}

// maybeBootstrap applies the bootstrap rule: with BootstrapExpect N, once
// this node sees at least N live members, none of which holds Raft state,
// the same set on two checks in a row, the member with the lowest id
// bootstraps Raft with all of them: the first MaxVoters (by id) and those
// started with --voter as voters, the others as non-voters. The other
// members wait to be contacted by the leader.
func (cr *clusterRuntime) maybeBootstrap() {
	if cr.o.BootstrapExpect == 0 {
		return
	}
	var live []membership.Member
	for _, m := range cr.gossip().Members() {
		if m.State == membership.Dead {
			continue
		}
		if m.Flags&membership.FlagRaft != 0 {
			return // a cluster exists: its leader adds this node
		}
		live = append(live, m)
	}
	ids := make([]string, len(live))
	for i, m := range live {
		ids[i] = m.NodeID
	}
	if len(live) < cr.o.BootstrapExpect {
		if time.Since(cr.lastReport) > 5*time.Second {
			cr.lastReport = time.Now()
			cr.log.Info("cluster: waiting for members to bootstrap", "seen", len(live), "expect", cr.o.BootstrapExpect, "members", strings.Join(ids, ","))
		}
		cr.lastSeen = nil
		return
	}
	stable := slices.Equal(ids, cr.lastSeen)
	cr.lastSeen = ids
	if !stable || ids[0] != cr.id {
		return
	}
	var members []coordinator.Member
	voters := 0
	for _, m := range live {
		sf := coordinator.Nonvoter
		if voters < MaxVoters || m.Flags&membership.FlagVoter != 0 {
			sf = coordinator.Voter
			voters++
		}
		members = append(members, coordinator.Member{ID: m.NodeID, Addr: m.RaftAddr, Suffrage: sf})
	}
	if err := cr.cs.Bootstrap(members); err != nil {
		cr.log.Error("cluster: bootstrap", "err", err)
		return
	}
	cr.log.Info("cluster: bootstrapped Raft", "members", strings.Join(ids, ","), "voters", voters)
}

// reconcile (leader only) adds live members missing from the Raft
// configuration (voters while fewer than MaxVoters, or when started with
// --voter; non-voters otherwise), updates changed Raft addresses, and
// records every member in the node table: up while gossip sees it, down
// once gossip declares it dead. Nothing is removed from the
// configuration (docs/node.md, "Membership").
func (cr *clusterRuntime) reconcile(conf []coordinator.Member) {
	inConf := map[string]coordinator.Member{}
	voters := 0
	for _, c := range conf {
		inConf[c.ID] = c
		if c.Suffrage == coordinator.Voter {
			voters++
		}
	}
	const timeout = 5 * time.Second
	members := cr.gossip().Members()
	for _, m := range members {
		if m.State != membership.Alive {
			continue
		}
		c, ok := inConf[m.NodeID]
		wantVoter := m.Flags&membership.FlagVoter != 0
		switch {
		case !ok:
			sf := coordinator.Nonvoter
			if voters < MaxVoters || wantVoter {
				sf = coordinator.Voter
				voters++
			}
			if err := cr.cs.AddMember(coordinator.Member{ID: m.NodeID, Addr: m.RaftAddr, Suffrage: sf}, timeout); err != nil {
				cr.log.Warn("cluster: add to raft", "node", m.NodeID, "err", err)
				return
			}
			cr.log.Info("cluster: added to raft", "node", m.NodeID, "suffrage", sf)
		case c.Suffrage == coordinator.Nonvoter && (wantVoter || voters < MaxVoters):
			voters++
			if err := cr.cs.AddMember(coordinator.Member{ID: m.NodeID, Addr: m.RaftAddr, Suffrage: coordinator.Voter}, timeout); err != nil {
				cr.log.Warn("cluster: promote to voter", "node", m.NodeID, "err", err)
				return
			}
			cr.log.Info("cluster: promoted to voter", "node", m.NodeID)
		case c.Addr != m.RaftAddr:
			if err := cr.cs.AddMember(coordinator.Member{ID: m.NodeID, Addr: m.RaftAddr, Suffrage: c.Suffrage}, timeout); err != nil {
				cr.log.Warn("cluster: update raft address", "node", m.NodeID, "err", err)
				return
			}
		}
	}
	cr.replaceDeadVoters(conf, members, timeout)
	t := cr.cs.Table()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, m := range members {
		want := meta.Node{ID: m.NodeID, RaftAddr: m.RaftAddr, HTTPAddr: m.HTTPAddr, State: meta.NodeUp}
		if m.State == membership.Dead {
			want.State = meta.NodeDown
		}
		have, ok := t.Node(m.NodeID)
		if ok && *have == want || !ok && want.State != meta.NodeUp {
			continue
		}
		if _, err := cr.cs.Propose(ctx, meta.RegisterNode{ID: want.ID, RaftAddr: want.RaftAddr, HTTPAddr: want.HTTPAddr, State: want.State}); err != nil {
			cr.log.Warn("cluster: record node", "node", m.NodeID, "err", err)
			return
		}
	}
}

// replaceDeadVoters (leader only): a voter dead for DeadVoterGrace is
// replaced by a live non-voter, promoted first, then removed from the
// configuration, so the cluster keeps its number of voters (and its
// tolerance of failures) when a voting node is lost for good. Without a
// live non-voter the dead voter stays (removing it would shrink the
// quorum under a partition). A removed node that comes back is added
// again as a non-voter by the reconciliation above.
func (cr *clusterRuntime) replaceDeadVoters(conf []coordinator.Member, members []membership.Member, timeout time.Duration) {
	grace := cr.o.DeadVoterGrace
	if grace == 0 {
		grace = 30 * time.Second
	}
	if grace < 0 {
		return
	}
	state := map[string]membership.State{}
	for _, m := range members {
		state[m.NodeID] = m.State
	}
	if cr.deadSince == nil {
		cr.deadSince = map[string]time.Time{}
	}
	now := time.Now()
	var spare []string
	for _, c := range conf {
		if c.Suffrage == coordinator.Nonvoter && state[c.ID] == membership.Alive {
			spare = append(spare, c.ID)
		}
	}
	for _, c := range conf {
		if c.Suffrage != coordinator.Voter || c.ID == cr.id {
			continue
		}
		if s, ok := state[c.ID]; ok && s != membership.Dead {
			delete(cr.deadSince, c.ID)
			continue
		}
		since, ok := cr.deadSince[c.ID]
		if !ok {
			cr.deadSince[c.ID] = now
			continue
		}
		if now.Sub(since) < grace || len(spare) == 0 {
			continue
		}
		in := spare[0]
		var addr string
		for _, x := range conf {
			if x.ID == in {
				addr = x.Addr
			}
		}
		if err := cr.cs.AddMember(coordinator.Member{ID: in, Addr: addr, Suffrage: coordinator.Voter}, timeout); err != nil {
			cr.log.Warn("cluster: promote a non-voter in place of a dead voter", "node", in, "err", err)
			return
		}
		if err := cr.cs.RemoveMember(c.ID, timeout); err != nil {
			cr.log.Warn("cluster: remove a dead voter", "node", c.ID, "err", err)
			return
		}
		delete(cr.deadSince, c.ID)
		cr.log.Info("cluster: replaced a dead voter", "dead", c.ID, "dead_for", now.Sub(since).Round(time.Second), "new_voter", in)
		spare = spare[1:]
	}
}

// failover (leader only) takes the nodes gossip declares dead out of the
// replica sets of every shard, so that primaries stop waiting for them
// and reads stop choosing them; a shard whose primary died gets the first
// surviving in-sync replica as primary. A shard whose every replica is
// dead keeps its set (searches say "partial" until one comes back).
func (cr *clusterRuntime) failover() {
	dead := map[string]bool{}
	for _, m := range cr.gossip().Members() {
		if m.State == membership.Dead {
			dead[m.NodeID] = true
		}
	}
	if len(dead) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range cr.cs.Table().Collections() {
		for s, buffer := range eachShard(c) {
			rest := slices.DeleteFunc(slices.Clone(s.Replicas), func(r string) bool { return dead[r] })
			if len(rest) == len(s.Replicas) || len(rest) == 0 {
				continue
			}
			primary := s.Primary
			if dead[primary] {
				primary = rest[0]
			}
			cmd := meta.SetReplicas{Collection: c.Name, Buffer: buffer, Shard: s.ID, Replicas: rest, Primary: primary, From: s.Replicas}
			if _, err := cr.cs.Propose(ctx, cmd); err != nil {
				cr.log.Warn("cluster: failover", "collection", c.Name, "shard", s.ID, "err", err)
				continue
			}
			cr.log.Info("cluster: failover", "collection", c.Name, "shard", s.ID, "buffer", buffer, "replicas", strings.Join(rest, ","), "primary", primary)
		}
	}
}

// restore (leader only) brings shards back to their collection's replica
// count: a shard with fewer replicas and joining nodes than that gets a
// live node that holds none of it as joining, and its primary copies the
// shard there (copy.go). The node is one the shard lists as away (it held
// the shard, so only what changed since travels) when one is back;
// while none is, the shard waits for one up to RestoreDelay after it was
// first seen short of in-sync replicas; then it is the live node holding
// the fewest copies of the collection. One node per shard per pass.
func (cr *clusterRuntime) restore() {
	alive := map[string]bool{}
	leaving := map[string]bool{}
	for _, m := range cr.gossip().Members() {
		if m.State == membership.Alive {
			alive[m.NodeID] = true
		}
		if m.Flags&membership.FlagLeaving != 0 {
			leaving[m.NodeID] = true
		}
	}
	t := cr.cs.Table()
	var live []string
	for _, id := range t.LiveNodes() {
		if alive[id] && !leaving[id] {
			live = append(live, id)
		}
	}
	if cr.goneAt == nil {
		cr.goneAt = map[string]time.Time{}
	}
	for _, nd := range t.Nodes() {
		if !alive[nd.ID] || leaving[nd.ID] {
			cr.goneAt[nd.ID] = time.Now()
		}
	}
	delay := cr.o.RestoreDelay
	if delay == 0 {
		delay = 30 * time.Second
	}
	if time.Since(cr.lastRestore) > 5*time.Second {
		cr.shortSince = nil // not the leader meanwhile: its clocks are stale
	}
	cr.lastRestore = time.Now()
	short := map[string]time.Time{}
	defer func() { cr.shortSince = short }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, c := range t.Collections() {
		held := map[string]int{}
		for s := range eachShard(c) {
			for _, r := range holders(s) {
				held[r]++
			}
		}
		for s, buffer := range eachShard(c) {
			if len(s.Replicas) >= c.Replicas || !alive[s.Primary] {
				continue
			}
			// The clock runs while the shard lacks in-sync replicas, a
			// copy under way or not: a copy that fails does not restart
			// the wait.
			key := fmt.Sprintf("%s/%d/%t", c.Name, s.ID, buffer)
			since, ok := cr.shortSince[key]
			if !ok {
				since = time.Now()
			}
			short[key] = since
			if len(s.Replicas)+len(s.Joining) >= c.Replicas {
				continue
			}
			returned := map[string]bool{}
			for _, id := range s.Away {
				returned[id] = cr.goneAt[id].After(since)
			}
			best := restoreTarget(s, live, held, time.Since(since), delay, returned)
			if best == "" {
				continue
			}
			cmd := meta.SetReplicas{Collection: c.Name, Buffer: buffer, Shard: s.ID, Replicas: s.Replicas, Primary: s.Primary,
				Joining: append(slices.Clone(s.Joining), best), From: s.Replicas, FromJoining: s.Joining}
			if _, err := cr.cs.Propose(ctx, cmd); err != nil {
				cr.log.Warn("cluster: restore replicas", "collection", c.Name, "shard", s.ID, "err", err)
				continue
			}
			held[best]++
			cr.log.Info("cluster: copying a shard to a new replica", "collection", c.Name, "shard", s.ID, "buffer", buffer, "node", best,
				"catch_up", slices.Contains(s.Away, best))
		}
	}
}

// awayGrace is how long a shard that has just lost a replica waits
// before it names that replica joining again, when gossip has seen it
// alive all along: a node killed is taken out by the first write it
// fails, before gossip declares it dead. One seen dead or leaving since
// (returned) is back: a new process.
const awayGrace = 2 * time.Second

// restoreTarget picks the node a short shard is copied to, "" for none
// yet: an away node that is live again (alive in gossip, not leaving, up
// in the table: live; awayGrace after the shard became short unless it
// returned: seen gone since), which catches up; else, when no away node may
// still come back or the shard has been short for delay already (a
// negative delay: no wait), the live node holding the fewest copies of
// the collection (held) that holds none of this shard.
func restoreTarget(s meta.Shard, live []string, held map[string]int, shortFor, delay time.Duration, returned map[string]bool) string {
	free := func(id string) bool { return !slices.Contains(s.Replicas, id) && !slices.Contains(s.Joining, id) }
	waiting := false
	for _, id := range s.Away {
		switch {
		case !free(id):
		case slices.Contains(live, id):
			if !returned[id] && shortFor < awayGrace {
				// Taken out a moment ago and alive to gossip ever since:
				// most likely dead and not yet declared so (a copy to it
				// would fail, and be named again, every pass).
				return ""
			}
			return id
		default:
			waiting = true
		}
	}
	if waiting && delay > 0 && shortFor < delay {
		return ""
	}
	best := ""
	for _, id := range live {
		if free(id) && (best == "" || held[id] < held[best]) {
			best = id
		}
	}
	return best
}

// info is the cluster as this node sees it: every node that gossip, the
// Raft configuration or the node table knows, with gossip's liveness and
// the Raft suffrage.
func (cr *clusterRuntime) info() ClusterInfo {
	st := cr.cs.Stats()
	ci := ClusterInfo{Leader: st.Leader, RaftState: strings.ToLower(st.State)}
	byID := map[string]*ClusterNode{}
	get := func(id string) *ClusterNode {
		if n := byID[id]; n != nil {
			return n
		}
		n := &ClusterNode{ID: id, State: string(membership.Dead)} // unknown to gossip: unreachable
		byID[id] = n
		return n
	}
	for _, n := range cr.cs.Table().Nodes() {
		c := get(n.ID)
		c.RaftAddr, c.HTTPAddr = n.RaftAddr, n.HTTPAddr
	}
	var members []membership.Member
	if ml := cr.gossip(); ml != nil {
		members = ml.Members()
	}
	for _, m := range members {
		c := get(m.NodeID)
		c.RaftAddr, c.HTTPAddr, c.GossipAddr, c.State = m.RaftAddr, m.HTTPAddr, m.GossipAddr, string(m.State)
	}
	if conf, err := cr.cs.Configuration(); err == nil {
		for _, s := range conf {
			c := get(s.ID)
			c.Raft, c.Voter = string(s.Suffrage), s.Suffrage == coordinator.Voter
			if c.RaftAddr == "" {
				c.RaftAddr = s.Addr
			}
		}
	}
	for _, c := range byID {
		ci.Nodes = append(ci.Nodes, *c)
	}
	slices.SortFunc(ci.Nodes, func(a, b ClusterNode) int { return strings.Compare(a.ID, b.ID) })
	return ci
}
