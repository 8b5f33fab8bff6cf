package node

import (
	"log/slog"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// Go's scheduler has no priorities: a goroutine that handles a Raft
// heartbeat or a gossip probe waits behind every runnable one. Under twice
// the cluster's capacity, searches kept thousands runnable, heartbeats
// waited past the leader's lease, leadership moved every few seconds and
// nodes refused everything as cut off (docs/benchmarks.md, "Overload").
// So the process watches its run queue (runQueue) and each node refuses
// new searches with 429 while the queue is long (shedder, api.serve),
// before they add to it. CockroachDB's admission control watches the same
// signal.

// runQueue samples, every schedEvery, how many goroutines are ready to run
// but waiting for a processor, per processor (GOMAXPROCS), and keeps a
// moving average (about the last 40 ms). There is one per process: the run
// queue is the process's, whatever number of nodes share it (tests run
// several). It runs for the life of the process, as the Prometheus Go
// collector's sampling does.
var runQueue struct {
	once    sync.Once
	perProc atomic.Int64 // average runnable goroutines per processor × 1000
}

const schedEvery = 10 * time.Millisecond

// runnablePerProc starts the sampler on first use and returns the current
// average.
func runnablePerProc() float64 {
	runQueue.once.Do(func() { go sampleRunQueue() })
	return float64(runQueue.perProc.Load()) / 1000
}

func sampleRunQueue() {
	s := []rtmetrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}, {Name: "/sched/gomaxprocs:threads"}}
	t := time.NewTicker(schedEvery)
	defer t.Stop()
	var avg float64
	for range t.C {
		rtmetrics.Read(s)
		if s[0].Value.Kind() != rtmetrics.KindUint64 || s[1].Value.Kind() != rtmetrics.KindUint64 {
			return // a runtime without these metrics: the average stays 0, nothing is shed
		}
		per := float64(s[0].Value.Uint64()) / float64(max(1, s[1].Value.Uint64()))
		avg = 0.75*avg + 0.25*per
		runQueue.perProc.Store(int64(avg * 1000))
	}
}

// shedder decides, per node, whether new searches are refused: from when
// the run queue's average exceeds above (Options.ShedAbove) until it falls
// below half of that. above ≤ 0: never.
type shedder struct {
	above    float64
	on       atomic.Bool
	log      *slog.Logger
	mu       sync.Mutex
	episodes int       // times shedding began since the last message
	lastLog  time.Time // messages at most every shedLogEvery
}

// shedLogEvery spaces the warnings: under overload shedding starts and
// stops several times a second.
const shedLogEvery = 10 * time.Second

// shed reports whether to refuse a new search now, and the run queue it
// read.
func (s *shedder) shed() (bool, float64) {
	if s.above <= 0 {
		return false, 0
	}
	q := runnablePerProc()
	return s.decide(q), q
}

// decide is shed's hysteresis, for a run queue of q.
func (s *shedder) decide(q float64) bool {
	switch on := s.on.Load(); {
	case !on && q > s.above:
		if s.on.CompareAndSwap(false, true) {
			s.began(q)
		}
	case on && q < s.above/2:
		s.on.Store(false)
	}
	return s.on.Load()
}

func (s *shedder) began(q float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.episodes++
	if time.Since(s.lastLog) >= shedLogEvery {
		s.log.Warn("refusing new searches while the Go run queue is long", "runnable_per_proc", int(q), "episodes", s.episodes)
		s.lastLog, s.episodes = time.Now(), 0
	}
}
