//go:build unix

package testenv

import (
	"syscall"
	"time"
)

// CPUTime is the process's user + system CPU time so far: benchmarks
// report work per CPU second beside wall-clock throughput, because the
// shared machines they run on are often busier than they have cores.
func CPUTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
