package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// DefaultRaftAddr is the default Raft bind address. (memberlist's default,
// 7946, stays free for the gossip layer.)
const DefaultRaftAddr = "127.0.0.1:7947"

// Peer is a Raft voter.
type Peer struct {
	ID   string
	Addr string // Raft address
}

// ForwardFunc sends an encoded command (meta.Encode) to the leader and
// returns its result, as Propose would on the leader.
type ForwardFunc func(ctx context.Context, leader Peer, entry []byte) (any, error)

// Options configures a Server. Open clones them, applies EnsureDefaults and
// Validate.
type Options struct {
	// NodeID is this node's Raft server id and its id in the node table.
	// Required; the node persists it in its data directory.
	NodeID string
	// DataDir holds raft/raft.db (log and stable store) and
	// raft/snapshots/. Default "data".
	DataDir string
	// RaftAddr is the TCP address Raft binds. Default DefaultRaftAddr.
	RaftAddr string
	// Advertise is the Raft address other nodes dial. Default: the
	// listener's address, which then must not be unspecified (0.0.0.0).
	Advertise string
	// HTTPAddr is recorded in the node table (gateways call it). Optional.
	HTTPAddr string
	// Bootstrap makes a server whose data directory holds no Raft state
	// bootstrap a cluster of itself plus Peers as voters. A server with
	// state never bootstraps again. With no Peers (one node), Open also
	// waits for leadership and registers the node in the table.
	Bootstrap bool
	// Peers are the other initial voters, used only when bootstrapping.
	Peers []Peer
	// Forward is the hook that sends a follower's proposal to the leader.
	// Nil (today): Propose on a follower fails with ErrNotLeader. The
	// cluster issue sets it.
	Forward ForwardFunc

	// ApplyTimeout bounds a proposal whose context has no deadline.
	// Default 10s.
	ApplyTimeout time.Duration
	// Raft timing; defaults are raft's: 1s, 1s, 500ms, 50ms.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	CommitTimeout      time.Duration
	// SnapshotThreshold is the number of log entries after which Raft
	// snapshots. Default 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often Raft checks the threshold. Default 2m.
	SnapshotInterval time.Duration
	// TrailingLogs kept after a snapshot. Default 10240.
	TrailingLogs uint64
	// SnapshotRetain is the number of snapshot files kept. Default 2.
	SnapshotRetain int

	// LogOutput receives Raft's log. Default os.Stderr.
	LogOutput io.Writer
	// LogLevel of Raft's log: trace, debug, info, warn, error. Default info.
	LogLevel string

	// Transport replaces the TCP transport (tests: raft.InmemTransport);
	// RaftAddr and Advertise are then ignored and the transport's address
	// is used. The caller closes it.
	Transport raft.Transport
	// InMemory keeps log, stable store and snapshots in memory (tests).
	InMemory bool
}

// EnsureDefaults fills the zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.DataDir == "" {
		o.DataDir = "data"
	}
	if o.RaftAddr == "" {
		o.RaftAddr = DefaultRaftAddr
	}
	def := raft.DefaultConfig()
	setDur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	setDur(&o.ApplyTimeout, 10*time.Second)
	setDur(&o.HeartbeatTimeout, def.HeartbeatTimeout)
	setDur(&o.ElectionTimeout, def.ElectionTimeout)
	setDur(&o.LeaderLeaseTimeout, def.LeaderLeaseTimeout)
	setDur(&o.CommitTimeout, def.CommitTimeout)
	setDur(&o.SnapshotInterval, 2*time.Minute)
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = 8192
	}
	if o.TrailingLogs == 0 {
		o.TrailingLogs = 10240
	}
	if o.SnapshotRetain == 0 {
		o.SnapshotRetain = 2
	}
	if o.LogOutput == nil {
		o.LogOutput = os.Stderr
	}
	if o.LogLevel == "" {
		o.LogLevel = "info"
	}
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrBadOptions, fmt.Sprintf(format, args...)))
	}
	if o.NodeID == "" {
		bad("node id is required")
	}
	if o.Transport == nil {
		if _, _, err := net.SplitHostPort(o.RaftAddr); err != nil {
			bad("raft address %q: %v", o.RaftAddr, err)
		}
		if o.Advertise != "" {
			if a, err := net.ResolveTCPAddr("tcp", o.Advertise); err != nil {
				bad("advertise address %q: %v", o.Advertise, err)
			} else if a.IP == nil || a.IP.IsUnspecified() || a.Port == 0 {
				bad("advertise address %q must name a host and port others can dial", o.Advertise)
			}
		}
	}
	if o.LeaderLeaseTimeout > o.HeartbeatTimeout {
		bad("leader lease timeout %v exceeds heartbeat timeout %v", o.LeaderLeaseTimeout, o.HeartbeatTimeout)
	}
	if o.ElectionTimeout < o.HeartbeatTimeout {
		bad("election timeout %v below heartbeat timeout %v", o.ElectionTimeout, o.HeartbeatTimeout)
	}
	if !slices.Contains([]string{"trace", "debug", "info", "warn", "error", "off"}, o.LogLevel) {
		bad("log level %q", o.LogLevel)
	}
	if o.SnapshotRetain < 1 {
		bad("snapshot retain %d", o.SnapshotRetain)
	}
	for _, p := range o.Peers {
		if p.ID == "" || p.Addr == "" || p.ID == o.NodeID {
			bad("peer %+v", p)
		}
	}
	return errors.Join(errs...)
}
