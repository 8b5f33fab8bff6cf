package node

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	l := newLimiter(1, 1)
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
