//go:build !unix

package proto

import "time"

func cpuTime() time.Duration { return 0 }
