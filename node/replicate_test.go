package node

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// A backup applies one stream's calls in their numbered order, whatever
// order they arrive in; a call already applied is a duplicate; a new
// stream starting at 1 replaces the old; a call whose turn never comes
// gives up at its deadline, as does a late call of a replaced stream.
func TestInStreamOrder(t *testing.T) {
	s := &inStream{changed: make(chan struct{})}
	const n = 50
	var mu sync.Mutex
	var order []uint64
	var wg sync.WaitGroup
	for seq := uint64(n); seq >= 1; seq-- { // arrive in reverse
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.await(context.Background(), 7, seq); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, seq)
			mu.Unlock()
			s.advance()
		}()
	}
	wg.Wait()
	for i, seq := range order {
		if seq != uint64(i+1) {
			t.Fatalf("applied in order %v", order)
		}
	}
	if err := s.await(context.Background(), 7, 3); !errors.Is(err, errDuplicate) {
		t.Fatalf("seq 3 again: %v", err)
	}
	// A new stream replaces the old one at its first call.
	if err := s.await(context.Background(), 9, 1); err != nil {
		t.Fatal(err)
	}
	s.advance()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.await(ctx, 9, 3); !errors.Is(err, ErrUnavailable) { // 2 never comes
		t.Fatalf("a gap: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := s.await(ctx2, 7, n+1); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a call of the replaced stream: %v", err)
	}
}

// A call of a stream whose first call never comes here (the backup
// restarted since the stream began) is refused after streamGrace, long
// before its deadline; a stream's first call that comes late, within the
// grace, still lets an earlier-arrived second call in.
func TestInStreamUnknownStream(t *testing.T) {
	s := &inStream{changed: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err := s.await(ctx, 5, 28)
	took := time.Since(start)
	if !errors.Is(err, ErrUnavailable) || took < streamGrace || took > streamGrace+5*time.Second {
		t.Fatalf("call 28 of an unknown stream: %v after %v (grace %v, deadline 20 s)", err, took, streamGrace)
	}

	second := make(chan error, 1)
	go func() {
		err := s.await(ctx, 6, 2)
		if err == nil {
			s.advance()
		}
		second <- err
	}()
	time.Sleep(streamGrace / 5)
	if err := s.await(ctx, 6, 1); err != nil {
		t.Fatal(err)
	}
	s.advance()
	if err := <-second; err != nil {
		t.Fatalf("call 2, before its stream's late first call: %v", err)
	}
	if got := s.nextSeq(); got != 3 {
		t.Fatalf("next %d, want 3", got)
	}
}
