package membership

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// Options configure a Membership. Start clones them, applies
// EnsureDefaults and Validate.
type Options struct {
	// Meta is this node's metadata; Meta.NodeID is its memberlist name.
	// Required.
	Meta Meta
	// BindAddr is the gossip address (UDP and TCP), host:port. Required.
	BindAddr string
	// AdvertiseAddr is the gossip address others dial. Default: BindAddr,
	// which then must name a host (not 0.0.0.0).
	AdvertiseAddr string
	// Join lists seed gossip addresses (host:port). Empty: this node
	// waits to be joined.
	Join []string
	// Key, when set, encrypts gossip (AES-GCM; 16, 24 or 32 bytes). Every
	// node of the cluster needs the same key.
	Key []byte

	// Failure detection (memberlist's SWIM + Lifeguard). Defaults:
	// ProbeInterval 500 ms, ProbeTimeout 250 ms, SuspicionMult 3,
	// SuspicionMaxTimeoutMult 4, GossipInterval 100 ms, PushPullInterval
	// 15 s. With these a node that stops answering is suspected after one
	// failed probe (≤ 0.5 s + 0.25 s once it is probed: a node is probed
	// at least every n probe intervals) and declared dead 1.5 s
	// (SuspicionMult × max(1, log10 n) × ProbeInterval) after that once
	// another node confirms the suspicion, 6 s at the most: about 2–3 s
	// in a cluster of three on a LAN, against ~5 s for memberlist's
	// defaults (1 s, 500 ms, 4, 6).
	ProbeInterval           time.Duration
	ProbeTimeout            time.Duration
	SuspicionMult           int
	SuspicionMaxTimeoutMult int
	GossipInterval          time.Duration
	PushPullInterval        time.Duration

	// RetryJoinInterval is the pause between join attempts. Default 1 s.
	RetryJoinInterval time.Duration
	// ReconnectInterval is the pause between two attempts to reach a
	// member this node holds dead (one at random each time), so that the
	// two sides of a healed partition find each other again. Default 2 s.
	ReconnectInterval time.Duration
	// OnChange, when set, is called after a node joined, left, died or
	// changed its metadata. It runs on memberlist's goroutines: it must
	// not block or call back into memberlist.
	OnChange func()
	// Logger receives the join loop's messages and memberlist's log (at
	// debug level, warnings at warn). Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills the zero fields with their defaults.
func (o *Options) EnsureDefaults() {
	dur := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	dur(&o.ProbeInterval, 500*time.Millisecond)
	dur(&o.ProbeTimeout, 250*time.Millisecond)
	dur(&o.GossipInterval, 100*time.Millisecond)
	dur(&o.PushPullInterval, 15*time.Second)
	dur(&o.RetryJoinInterval, time.Second)
	dur(&o.ReconnectInterval, 2*time.Second)
	if o.SuspicionMult == 0 {
		o.SuspicionMult = 3
	}
	if o.SuspicionMaxTimeoutMult == 0 {
		o.SuspicionMaxTimeoutMult = 4
	}
	if o.AdvertiseAddr == "" {
		o.AdvertiseAddr = o.BindAddr
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports every problem at once.
func (o *Options) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("%w: %s", ErrBadOptions, fmt.Sprintf(format, args...)))
	}
	if _, err := EncodeMeta(o.Meta); err != nil {
		bad("%v", err)
	}
	if _, _, err := splitHostPort(o.BindAddr); err != nil {
		bad("gossip address %q: %v", o.BindAddr, err)
	}
	if host, _, err := splitHostPort(o.AdvertiseAddr); err != nil {
		bad("gossip advertise address %q: %v", o.AdvertiseAddr, err)
	} else if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		bad("gossip advertise address %q must be an IP others can reach", o.AdvertiseAddr)
	}
	for _, j := range o.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			bad("join address %q: %v", j, err)
		}
	}
	if o.Key != nil {
		if err := memberlist.ValidateKey(o.Key); err != nil {
			bad("gossip key of %d bytes: %v", len(o.Key), err)
		}
	}
	if o.ProbeTimeout >= o.ProbeInterval || o.ProbeTimeout <= 0 {
		bad("probe timeout %v must be positive and below the probe interval %v", o.ProbeTimeout, o.ProbeInterval)
	}
	if o.SuspicionMult < 1 || o.SuspicionMaxTimeoutMult < 1 {
		bad("suspicion multipliers %d and %d", o.SuspicionMult, o.SuspicionMaxTimeoutMult)
	}
	if o.GossipInterval <= 0 || o.PushPullInterval <= 0 || o.RetryJoinInterval <= 0 || o.ReconnectInterval <= 0 {
		bad("intervals must be positive")
	}
	return errors.Join(errs...)
}

// ErrBadOptions wraps every problem Validate finds.
var ErrBadOptions = errors.New("membership: invalid options")

// ParseKey decodes a gossip key given in standard base64 (as
// `lookalike serve --gossip-key` takes it): 16, 24 or 32 bytes.
func ParseKey(s string) ([]byte, error) {
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("membership: gossip key is not base64: %w", err)
	}
	if err := memberlist.ValidateKey(k); err != nil {
		return nil, fmt.Errorf("membership: gossip key of %d bytes: want 16, 24 or 32 (AES-128/192/256)", len(k))
	}
	return k, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return "", 0, fmt.Errorf("port %q", port)
	}
	return host, p, nil
}
