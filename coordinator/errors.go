package coordinator

import "errors"

// Sentinel errors. Domain errors of commands are package meta's.
var (
	ErrNotLeader  = errors.New("coordinator: not the leader")
	ErrNoLeader   = errors.New("coordinator: no leader")
	ErrClosed     = errors.New("coordinator: server closed")
	ErrBadOptions = errors.New("coordinator: invalid options")
	ErrTimeout    = errors.New("coordinator: proposal timed out")
)
