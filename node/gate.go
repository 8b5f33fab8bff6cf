package node

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// gate bounds the scans running at once on this node, the CPU-heavy part
// of every search (a gateway's own part, a part another gateway asked
// for, a one-node search). The HTTP limiter bounds requests, most of which
// wait on other nodes; without this bound up to its 256 running scans
// shared two cores: one node's p99 at 4,000 q/s was 303 ms, with the gate
// 10-16 ms (docs/benchmarks.md, "Overload"; keeping Raft's heartbeats
// scheduled took shedding too, sched.go).
//
// Waiters are served in order (a channel's senders are queued FIFO). A
// scan that cannot start within wait is refused with ErrOverloaded: an
// answer later than that is worth less than the client's retry.
type gate struct {
	slots   chan struct{}
	wait    time.Duration
	waiting prometheus.Gauge
	refused prometheus.Counter
}

func newGate(n int, wait time.Duration) *gate {
	return &gate{
		slots: make(chan struct{}, n), wait: wait,
		waiting: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "lookalike_scans_waiting",
			Help: "Scans waiting for one of the node's scan slots (--max-scans).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lookalike_scans_refused_total",
			Help: "Scans refused as overloaded after waiting --scan-wait for a slot.",
		}),
	}
}

// enter takes a slot; the caller must call the returned release.
func (g *gate) enter(ctx context.Context) (release func(), err error) {
	err = takeSlot(ctx, g.slots, g.wait, func() func() { g.waiting.Inc(); return g.waiting.Dec })
	switch {
	case err == nil:
		return g.release, nil
	case errors.Is(err, errNoSlot):
		g.refused.Inc()
		return nil, fmt.Errorf("%w: no scan slot within %v (%d running)", ErrOverloaded, g.wait, cap(g.slots))
	}
	return nil, err
}

func (g *gate) release() { <-g.slots }

// errNoSlot is takeSlot's answer when the wait ran out.
var errNoSlot = errors.New("node: no slot within the wait")

// takeSlot puts a token into slots: at once when there is room, else
// waiting up to wait (then errNoSlot) or until ctx ends. The gate and the
// HTTP limiter (http.go) both queue this way. onWait, when set, is called
// as a wait begins and returns what to call when it ends.
func takeSlot(ctx context.Context, slots chan struct{}, wait time.Duration, onWait func() func()) error {
	select {
	case slots <- struct{}{}:
		return nil
	default:
	}
	if onWait != nil {
		defer onWait()()
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return nil
	case <-t.C:
		return errNoSlot
	case <-ctx.Done():
		return ctx.Err()
	}
}

// budget allows extra calls (hedges, and retries after a node said it is
// overloaded) for a fraction of searches, as in "The Tail at Scale": each
// search earns ratio of a token, up to burst; an extra call spends one.
// Without it, a slow cluster hedged every search and so doubled its own
// load exactly when it could least take it. Tokens are counted in
// thousandths, so that ten searches at 0.1 earn exactly one.
type budget struct {
	mu           sync.Mutex
	milli        int64 // tokens × 1000
	ratio, burst int64 // × 1000
}

func newBudget(ratio, burst float64) *budget {
	b := &budget{ratio: int64(ratio*1000 + 0.5), burst: int64(burst*1000 + 0.5)}
	b.milli = b.burst
	return b
}

func (b *budget) earn() {
	b.mu.Lock()
	b.milli = min(b.burst, b.milli+b.ratio)
	b.mu.Unlock()
}

func (b *budget) spend() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.milli < 1000 {
		return false
	}
	b.milli -= 1000
	return true
}
