package membership

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is a member's liveness as this node sees it.
type State string

const (
	Alive   State = "alive"
	Suspect State = "suspect" // in the cluster, but this node's own probes of it failed lately
	Dead    State = "dead"    // declared dead by the failure detector, or left (memberlist's events do not tell which)
)

// Member is one node of the gossip cluster.
type Member struct {
	Meta
	GossipAddr string
	State      State
}

// Membership is this node's gossip membership.
type Membership struct {
	opts Options
	ml   *memberlist.Memberlist
	meta atomic.Pointer[[]byte] // this node's encoded metadata
	log  *slog.Logger

	mu      sync.Mutex
	members map[string]*record // by node id: everyone ever seen
	joined  bool

	stop chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type record struct {
	m        Member
	lastAck  time.Time // last direct probe ack this node got from it
	lastSeen time.Time // joined or updated
}

// Start binds the gossip address, starts memberlist and, with Join
// addresses, the join loop.
func Start(opts Options) (*Membership, error) {
	o := opts
	o.Join = slices.Clone(opts.Join)
	o.Key = slices.Clone(opts.Key)
	o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o.Meta.Version = MetaVersion
	meta, _ := EncodeMeta(o.Meta)
	s := &Membership{opts: o, log: o.Logger, members: map[string]*record{}, stop: make(chan struct{})}

	conf := memberlist.DefaultLANConfig()
	conf.Name = o.Meta.NodeID
	bindHost, bindPort, _ := splitHostPort(o.BindAddr)
	advHost, advPort, _ := splitHostPort(o.AdvertiseAddr)
	conf.BindAddr, conf.BindPort = bindHost, bindPort
	conf.AdvertiseAddr, conf.AdvertisePort = advHost, advPort
	conf.ProbeInterval = o.ProbeInterval
	conf.ProbeTimeout = o.ProbeTimeout
	conf.SuspicionMult = o.SuspicionMult
	conf.SuspicionMaxTimeoutMult = o.SuspicionMaxTimeoutMult
	conf.GossipInterval = o.GossipInterval
	conf.PushPullInterval = o.PushPullInterval
	conf.TCPTimeout = 2 * time.Second
	if o.Key != nil {
		conf.SecretKey = o.Key
		conf.GossipVerifyIncoming, conf.GossipVerifyOutgoing = true, true
	}
	s.meta.Store(&meta)
	conf.Delegate = delegate{s}
	conf.Events = events{s}
	conf.Ping = pings{s}
	conf.Logger = log.New(&logWriter{s.log}, "", 0)
	ml, err := memberlist.Create(conf)
	if err != nil {
		return nil, fmt.Errorf("membership: start gossip on %s: %w", o.BindAddr, err)
	}
	s.ml = ml
	if len(o.Join) > 0 {
		s.wg.Add(1)
		go s.joinLoop()
	}
	s.wg.Add(1)
	go s.reconnectLoop()
	return s, nil
}

// reconnectLoop asks one member this node holds dead, at random, for a
// full state exchange (memberlist's Join) every ReconnectInterval, as
// Serf's reconnect does. memberlist probes and exchanges state only with
// the members it holds alive, so after a partition heals the two sides
// can each keep the other dead for good: TestClusterChaosPartition saw a
// node cut off for 4 s still dead to the other two a minute after the
// cut healed, its shards stuck without their primary. The exchange tells
// each side that the other holds it dead; each refutes that, and the next
// exchange (or the gossip) brings it back alive. A member that is really
// gone costs a failed dial a round.
func (s *Membership) reconnectLoop() {
	defer s.wg.Done()
	tick := time.NewTicker(s.opts.ReconnectInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		}
		var dead []Member
		for _, m := range s.Members() {
			if m.State == Dead && m.GossipAddr != "" {
				dead = append(dead, m)
			}
		}
		if len(dead) == 0 {
			continue
		}
		m := dead[rand.IntN(len(dead))]
		if n, err := s.ml.Join([]string{m.GossipAddr}); n > 0 {
			s.log.Info("gossip: reached a member held dead; exchanged state", "node", m.NodeID, "addr", m.GossipAddr)
		} else {
			s.log.Debug("gossip: member held dead not reached", "node", m.NodeID, "addr", m.GossipAddr, "err", err)
		}
	}
}

// joinLoop tries the seeds until one answers (memberlist then learns the
// rest by gossip) or Close.
func (s *Membership) joinLoop() {
	defer s.wg.Done()
	for attempt := 1; ; attempt++ {
		n, err := s.ml.Join(s.opts.Join)
		if n > 0 {
			s.mu.Lock()
			s.joined = true
			s.mu.Unlock()
			s.log.Info("gossip: joined", "contacted", n, "members", s.ml.NumMembers())
			return
		}
		if attempt == 1 || attempt%10 == 0 {
			s.log.Warn("gossip: join failed, retrying", "seeds", strings.Join(s.opts.Join, ","), "attempt", attempt, "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-time.After(s.opts.RetryJoinInterval):
		}
	}
}

// LocalID returns this node's id.
func (s *Membership) LocalID() string { return s.opts.Meta.NodeID }

// GossipAddr returns the gossip address others dial.
func (s *Membership) GossipAddr() string { return s.opts.AdvertiseAddr }

// Members returns every node seen since Start, this one included, sorted
// by id: the live ones (alive or suspect) from memberlist, the others as
// dead.
func (s *Membership) Members() []Member {
	live := map[string]bool{}
	for _, n := range s.ml.Members() {
		live[n.Name] = true
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Member, 0, len(s.members)+1)
	self := false
	for id, r := range s.members {
		self = self || id == s.opts.Meta.NodeID
		out = append(out, s.shown(id, r, live[id], now))
	}
	if !self {
		out = append(out, s.shown(s.opts.Meta.NodeID, nil, true, now))
	}
	slices.SortFunc(out, func(a, b Member) int { return strings.Compare(a.NodeID, b.NodeID) })
	return out
}

// Member returns one member by node id, as Members shows it. It is on
// the path of every call between nodes (their addresses): it looks up the
// one member instead of building the whole list.
func (s *Membership) Member(id string) (Member, bool) {
	live := false
	for _, n := range s.ml.Members() {
		if n.Name == id {
			live = true
			break
		}
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.members[id]
	if r == nil && id != s.opts.Meta.NodeID {
		return Member{}, false
	}
	return s.shown(id, r, live, now), true
}

// shown is member id (record r, nil for this node before memberlist
// reported it) as Members shows it; live: memberlist lists it. mu is
// held.
func (s *Membership) shown(id string, r *record, live bool, now time.Time) Member {
	if id == s.opts.Meta.NodeID {
		if r == nil {
			return Member{Meta: s.opts.Meta, GossipAddr: s.opts.AdvertiseAddr, State: Alive}
		}
		m := r.m
		m.Meta, m.State = s.opts.Meta, Alive
		return m
	}
	m := r.m
	switch {
	case live:
		// A live node not acked by this node's own probes for this long
		// is shown as suspect: every node is probed at least once per
		// round of n probe intervals.
		suspectAfter := time.Duration(len(s.members)+2) * s.opts.ProbeInterval
		m.State = Alive
		last := r.lastAck
		if last.Before(r.lastSeen) {
			last = r.lastSeen
		}
		if now.Sub(last) > suspectAfter {
			m.State = Suspect
		}
	case m.State == Alive || m.State == Suspect:
		m.State = Dead
	}
	return m
}

// Leave announces a graceful departure (the others drop this node at
// once instead of suspecting it first) and waits up to timeout for it to
// spread.
func (s *Membership) Leave(timeout time.Duration) error {
	return s.ml.Leave(timeout)
}

// Close stops the join loop and memberlist. It is safe to call more than
// once.
func (s *Membership) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		err = s.ml.Shutdown()
		s.wg.Wait()
	})
	return err
}

func (s *Membership) update(n *memberlist.Node, state State) {
	m, err := DecodeMeta(n.Meta)
	if err != nil {
		s.log.Warn("gossip: member with bad metadata ignored", "name", n.Name, "err", err)
		return
	}
	if m.NodeID != n.Name {
		s.log.Warn("gossip: member whose metadata names another node ignored", "name", n.Name, "meta_id", m.NodeID)
		return
	}
	s.mu.Lock()
	r := s.members[n.Name]
	if r == nil {
		r = &record{}
		s.members[n.Name] = r
	}
	r.m = Member{Meta: m, GossipAddr: net.JoinHostPort(n.Addr.String(), fmt.Sprint(n.Port)), State: state}
	if state == Alive {
		r.lastSeen = time.Now()
	}
	s.mu.Unlock()
	if s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}

// SetFlags replaces this node's metadata flags and gossips the change
// (waiting up to timeout for it to be sent).
func (s *Membership) SetFlags(flags uint8, timeout time.Duration) error {
	s.mu.Lock()
	if s.opts.Meta.Flags == flags {
		s.mu.Unlock()
		return nil
	}
	s.opts.Meta.Flags = flags
	b, err := EncodeMeta(s.opts.Meta)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	s.meta.Store(&b)
	if err := s.ml.UpdateNode(timeout); err != nil {
		return fmt.Errorf("membership: update metadata: %w", err)
	}
	return nil
}

// Flags returns this node's metadata flags.
func (s *Membership) Flags() uint8 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opts.Meta.Flags
}

// delegate hands memberlist this node's metadata; no user messages.
type delegate struct{ s *Membership }

func (d delegate) NodeMeta(limit int) []byte                  { return *d.s.meta.Load() }
func (d delegate) NotifyMsg([]byte)                           {}
func (d delegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (d delegate) LocalState(join bool) []byte                { return nil }
func (d delegate) MergeRemoteState(buf []byte, join bool)     {}

type events struct{ s *Membership }

func (e events) NotifyJoin(n *memberlist.Node)   { e.s.update(n, Alive) }
func (e events) NotifyUpdate(n *memberlist.Node) { e.s.update(n, Alive) }
func (e events) NotifyLeave(n *memberlist.Node)  { e.s.update(n, Dead) }

type pings struct{ s *Membership }

func (p pings) AckPayload() []byte { return nil }
func (p pings) NotifyPingComplete(other *memberlist.Node, rtt time.Duration, payload []byte) {
	p.s.mu.Lock()
	if r := p.s.members[other.Name]; r != nil {
		r.lastAck = time.Now()
	}
	p.s.mu.Unlock()
}

// logWriter turns memberlist's log lines ("[WARN] memberlist: ...") into
// slog records: errors and warnings as warnings (but those of a probe
// racing shutdown), the rest at debug.
type logWriter struct{ log *slog.Logger }

func (w *logWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	switch {
	case strings.Contains(line, "use of closed network connection"):
		w.log.Debug(line) // a probe racing Close
	case strings.Contains(line, "[ERR]"), strings.Contains(line, "[WARN]"):
		w.log.Warn(line)
	default:
		w.log.Debug(line)
	}
	return len(p), nil
}

var _ io.Writer = (*logWriter)(nil)
