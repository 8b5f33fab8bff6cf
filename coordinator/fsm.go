package coordinator

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/raft"

	"lookalike/coordinator/meta"
)

// Result is what the FSM returns from Apply, read through the Raft future's
// Response(): the command's result or its domain error.
type Result struct {
	Value any   // the command's result, as package meta documents per command
	Err   error // a domain error (meta's sentinels); the table is unchanged
}

// FSM is the Raft state machine of the cluster table. Table and Watch are
// safe for concurrent use; Apply, Snapshot and Restore are called by Raft.
type FSM struct {
	table atomic.Pointer[meta.Table]

	mu       sync.Mutex
	watchers map[int]chan *meta.Table
	nextW    int
}

var _ raft.FSM = (*FSM)(nil)

// NewFSM returns an FSM holding the empty table.
func NewFSM() *FSM {
	f := &FSM{watchers: map[int]chan *meta.Table{}}
	f.table.Store(meta.New())
	return f
}

// Table returns the current table (immutable; hold it as long as you like).
func (f *FSM) Table() *meta.Table { return f.table.Load() }

// Watch returns a channel that receives the latest table after each change
// (latest wins: a slow reader skips intermediate tables but always gets the
// newest), and a function that stops the watch. The channel is never
// closed.
func (f *FSM) Watch() (<-chan *meta.Table, func()) {
	ch := make(chan *meta.Table, 1)
	f.mu.Lock()
	id := f.nextW
	f.nextW++
	f.watchers[id] = ch
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.watchers, id)
		f.mu.Unlock()
	}
}

func (f *FSM) swap(t *meta.Table) {
	f.table.Store(t)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, ch := range f.watchers {
		select { // drop a stale pending table, then send the new one
		case <-ch:
		default:
		}
		ch <- t
	}
}

// Apply applies one committed log entry. It panics on an entry that does
// not decode: replicas must not diverge.
func (f *FSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd, err := meta.Decode(l.Data)
	if err != nil {
		panic(fmt.Sprintf("coordinator: log entry %d (term %d) does not decode: %v", l.Index, l.Term, err))
	}
	cur := f.table.Load()
	next, res, err := cur.Apply(cmd)
	if err != nil {
		return &Result{Err: err}
	}
	if next != cur {
		f.swap(next)
	}
	return &Result{Value: res}
}

// Snapshot captures the current table; Persist encodes it (meta's table
// encoding: versioned header and typed records) while Raft goes on.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &snapshot{table: f.table.Load()}, nil
}

// Restore replaces the table with the one in rc.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	t, err := meta.DecodeTable(rc)
	if err != nil {
		return fmt.Errorf("coordinator: restore: %w", err)
	}
	f.swap(t)
	return nil
}

type snapshot struct{ table *meta.Table }

func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.table.Encode(sink); err != nil {
		sink.Cancel()
		return fmt.Errorf("coordinator: snapshot: %w", err)
	}
	return sink.Close()
}

func (s *snapshot) Release() {}
