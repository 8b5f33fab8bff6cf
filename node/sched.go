package node

import (
	"log/slog"
	rtmetrics "runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// schedWatch watches the Go scheduler's run queue: how many goroutines
// are ready to run but waiting for a processor, per processor (GOMAXPROCS).
// Go's scheduler has no priorities: a goroutine that handles a Raft
// heartbeat or a gossip probe waits behind every runnable one. Under twice
// the cluster's capacity, searches kept thousands runnable, heartbeats
// waited past the leader's lease, leadership moved every few seconds and
// nodes refused everything as cut off (docs/benchmarks.md, "Overload").
// While the queue is long (over shedAbove per processor, averaged over
// the last few samples), the API refuses new searches at once with 429
// (api.serve), before they add to it; CockroachDB's admission control
// watches the same signal.
type schedWatch struct {
	shedding atomic.Bool
	perProc  atomic.Int64 // runnable per processor × 1000, last average
	gauge    prometheus.GaugeFunc
	log      *slog.Logger
}

// procSched is the process's one watcher: the run queue is the process's,
// whatever number of nodes share it (tests run several). It runs for the
// life of the process, as the Prometheus Go collector's sampling does.
var procSched struct {
	once sync.Once
	w    *schedWatch
}

// processSched starts the process's watcher on first use and returns it.
func processSched(log *slog.Logger) *schedWatch {
	procSched.once.Do(func() {
		procSched.w = newSchedWatch(log)
		go procSched.w.run(nil)
	})
	return procSched.w
}

const (
	schedEvery = 10 * time.Millisecond
	// shedAbove and shedBelow are the runnable goroutines per processor
	// at which new searches are refused, and again admitted.
	shedAbove = 32
	shedBelow = 16
	// schedLogEvery spaces the warnings: under overload shedding starts
	// and stops several times a second.
	schedLogEvery = 10 * time.Second
)

func newSchedWatch(log *slog.Logger) *schedWatch {
	w := &schedWatch{log: log}
	w.gauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "lookalike_sched_runnable_per_proc",
		Help: "Goroutines ready to run but waiting for a processor, per processor (average of the last samples); new searches are refused above 32.",
	}, func() float64 { return float64(w.perProc.Load()) / 1000 })
	return w
}

// run samples until stop is closed (nil: for ever).
func (w *schedWatch) run(stop <-chan struct{}) {
	s := []rtmetrics.Sample{{Name: "/sched/goroutines/runnable:goroutines"}, {Name: "/sched/gomaxprocs:threads"}}
	t := time.NewTicker(schedEvery)
	defer t.Stop()
	var avg float64
	var episodes int      // times shedding began since the last message
	var lastLog time.Time // messages at most every schedLogEvery
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		rtmetrics.Read(s)
		if s[0].Value.Kind() != rtmetrics.KindUint64 || s[1].Value.Kind() != rtmetrics.KindUint64 {
			return // a runtime without these metrics: never shed
		}
		procs := max(1, s[1].Value.Uint64())
		per := float64(s[0].Value.Uint64()) / float64(procs)
		avg = 0.75*avg + 0.25*per
		w.perProc.Store(int64(avg * 1000))
		switch {
		case !w.shedding.Load() && avg > shedAbove:
			w.shedding.Store(true)
			episodes++
			if time.Since(lastLog) >= schedLogEvery {
				w.log.Warn("refusing new searches while the Go run queue is long", "runnable_per_proc", int(avg), "episodes", episodes)
				lastLog, episodes = time.Now(), 0
			}
		case w.shedding.Load() && avg < shedBelow:
			w.shedding.Store(false)
		}
	}
}
