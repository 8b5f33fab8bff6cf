package node

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(1, 1, time.Minute)
	rel, err := l.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := l.acquire(context.Background()) // waits in the queue
		if err == nil {
			r()
		}
		got <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if _, err := l.acquire(context.Background()); !errors.Is(err, ErrOverloaded) {
		t.Fatalf("third request: %v, want ErrOverloaded", err)
	}
	rel()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rel, _ = l.acquire(context.Background())
	cancel()
	if _, err := l.acquire(ctx); err == nil {
		t.Fatal("acquire with a cancelled context succeeded")
	}
	rel()
	if e := apiError(ErrOverloaded); e.Code.HTTPStatus() != 429 {
		t.Fatalf("overloaded maps to %d", e.Code.HTTPStatus())
	}
}

// A request that waits longer than the limiter's wait for a slot is
// refused as overloaded, and gives its place in the queue back.
func TestLimiterWait(t *testing.T) {
	l := newLimiter(1, 1, 30*time.Millisecond)
	rel, err := l.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer rel()
	for range 2 { // the second finds the queue place given back
		t0 := time.Now()
		_, err := l.acquire(context.Background())
		if !errors.Is(err, ErrOverloaded) {
			t.Fatalf("waiting request: %v, want ErrOverloaded", err)
		}
		if d := time.Since(t0); d < 30*time.Millisecond {
			t.Fatalf("refused after %v, before the wait", d)
		}
	}
}

// The scan gate: a scan that finds every slot taken waits in order, and is
// refused as overloaded after the gate's wait.
func TestGate(t *testing.T) {
	g := newGate(1, 30*time.Millisecond)
	rel, err := g.enter(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		r, err := g.enter(context.Background())
		if err == nil {
			r()
		}
		got <- err
	}()
	if err := <-got; !errors.Is(err, ErrOverloaded) {
		t.Fatalf("second scan: %v, want ErrOverloaded", err)
	}
	rel()
	rel, err = g.enter(context.Background())
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.enter(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	rel()
}

// The shedder refuses from above the threshold until below half of it.
func TestShedder(t *testing.T) {
	s := &shedder{above: 32, log: slog.New(slog.DiscardHandler)}
	for i, c := range []struct {
		q    float64
		want bool
	}{{0, false}, {31, false}, {33, true}, {20, true}, {16.5, true}, {15, false}, {31, false}, {40, true}} {
		if got := s.decide(c.q); got != c.want {
			t.Fatalf("step %d: run queue %v: shed %v, want %v", i, c.q, got, c.want)
		}
	}
	if off := (&shedder{above: -1}); func() bool { b, _ := off.shed(); return b }() {
		t.Fatal("a negative threshold shed")
	}
	if q := runnablePerProc(); q < 0 {
		t.Fatalf("run queue %v", q)
	}
}

func TestBudget(t *testing.T) {
	b := newBudget(0.1, 2)
	if !b.spend() || !b.spend() || b.spend() {
		t.Fatal("a full budget of 2 allows exactly 2")
	}
	for range 9 {
		b.earn()
	}
	if b.spend() {
		t.Fatal("9 searches at 0.1 earned a whole token")
	}
	b.earn()
	if !b.spend() {
		t.Fatal("10 searches at 0.1 did not earn a token")
	}
	for range 100 {
		b.earn()
	}
	if !b.spend() || !b.spend() || b.spend() {
		t.Fatal("the budget grew past its burst")
	}
}
