package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeRunner maps an image whose tensor is filled with id to the vector
// (id, 1, 0), so a normalised output names its input. Its runs can be
// gated, slowed and made to fail.
type fakeRunner struct {
	gate    chan struct{} // when set, each run waits for a token
	started chan []int    // when set, each run sends its ids on start
	cost    func(n int) time.Duration
	fail    func(ids []int) error
	panicOn int // a run holding this id panics (0: never)

	mu   sync.Mutex
	runs [][]int // ids of each run, in start order
}

const fakeSize = 2

func (f *fakeRunner) Config() Config {
	return Config{Name: "fake", File: "fake.onnx", Input: "in", Output: "out", Layout: NHWC,
		Size: fakeSize, Std: [3]float32{1, 1, 1}, Dim: 3}
}

func (f *fakeRunner) Run(batch []float32, n int) ([]float32, error) {
	per := 3 * fakeSize * fakeSize
	if len(batch) != n*per {
		return nil, fmt.Errorf("fake: %d floats for %d images", len(batch), n)
	}
	ids := make([]int, n)
	for k := range n {
		ids[k] = int(batch[k*per])
	}
	f.mu.Lock()
	f.runs = append(f.runs, ids)
	f.mu.Unlock()
	if f.started != nil {
		f.started <- ids
	}
	if f.gate != nil {
		<-f.gate
	}
	if f.cost != nil {
		time.Sleep(f.cost(n))
	}
	if f.fail != nil {
		if err := f.fail(ids); err != nil {
			return nil, err
		}
	}
	if f.panicOn != 0 && slices.Contains(ids, f.panicOn) {
		panic("fake: boom")
	}
	out := make([]float32, 0, 3*n)
	for _, id := range ids {
		switch id {
		case -1:
			out = append(out, float32(math.NaN()), 1, 0)
		case -2:
			out = append(out, 0, 0, 0)
		default:
			out = append(out, float32(id), 1, 0)
		}
	}
	return out, nil
}

func (f *fakeRunner) allRuns() [][]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.runs)
}

func img(id int) *Prepared {
	t := make([]float32, 3*fakeSize*fakeSize)
	for i := range t {
		t[i] = float32(id)
	}
	return &Prepared{Tensor: t}
}

func imgs(ids ...int) []*Prepared {
	out := make([]*Prepared, len(ids))
	for i, id := range ids {
		out[i] = img(id)
	}
	return out
}

// checkVecs checks that vecs are the normalised outputs for ids.
func checkVecs(t *testing.T, vecs [][]float32, ids []int) {
	t.Helper()
	if len(vecs) != len(ids) {
		t.Fatalf("%d vectors for %d images", len(vecs), len(ids))
	}
	for i, v := range vecs {
		norm := math.Sqrt(float64(v[0]*v[0] + v[1]*v[1] + v[2]*v[2]))
		if math.Abs(norm-1) > 1e-6 {
			t.Fatalf("vector %d has norm %v", i, norm)
		}
		if got := math.Round(float64(v[0] / v[1])); got != float64(ids[i]) {
			t.Fatalf("vector %d is for image %v, want %d", i, got, ids[i])
		}
	}
}

func newTestPipeline(t *testing.T, r Runner, o PipelineOptions) *Pipeline {
	t.Helper()
	if o.Hash == "" {
		o.Hash = "fakehash"
	}
	p, err := NewPipeline(r, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Microsecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}

func TestPipelineOrderUnderConcurrency(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the pipeline's Close, registered later
	r := &fakeRunner{cost: func(n int) time.Duration { return 200 * time.Microsecond }}
	p := newTestPipeline(t, r, PipelineOptions{Workers: 2, MaxBatch: 8})
	var wg sync.WaitGroup
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lane := Lane(g % 2)
			for j := range 10 {
				ids := make([]int, 1+(g+j)%5)
				for k := range ids {
					ids[k] = 1000*g + 10*j + k + 1
				}
				vecs, err := p.Embed(context.Background(), lane, imgs(ids...))
				if err != nil {
					t.Error(err)
					return
				}
				checkVecs(t, vecs, ids)
			}
		}()
	}
	wg.Wait()
	p.Close()
	var batched bool
	for _, run := range r.allRuns() {
		if len(run) > 8 {
			t.Errorf("run of %d images, max batch 8", len(run))
		}
		batched = batched || len(run) > 5 // larger than any one call: calls were merged
	}
	if !batched {
		t.Error("no run merged concurrent calls")
	}
}

// TestPipelineGathers: what queues while the worker is busy goes into
// the next run together, up to MaxBatch.
func TestPipelineGathers(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the pipeline's Close, registered later
	r := &fakeRunner{gate: make(chan struct{}), started: make(chan []int, 100)}
	var sizes []int
	var mu sync.Mutex
	p := newTestPipeline(t, r, PipelineOptions{Workers: 1, MaxBatch: 6, OnBatch: func(b BatchInfo) {
		mu.Lock()
		sizes = append(sizes, b.Size)
		mu.Unlock()
	}})
	var wg sync.WaitGroup
	embed := func(id int) {
		defer wg.Done()
		vecs, err := p.Embed(context.Background(), Bulk, imgs(id))
		if err != nil {
			t.Error(err)
			return
		}
		checkVecs(t, vecs, []int{id})
	}
	wg.Add(1)
	go embed(1)
	<-r.started // the worker is busy with image 1
	for id := 2; id <= 11; id++ {
		wg.Add(1)
		go embed(id)
	}
	waitFor(t, "10 queued images", func() bool { _, b := p.Waiting(); return b == 10 })
	close(r.gate)
	wg.Wait()
	runs := r.allRuns()
	if len(runs) != 3 || len(runs[1]) != 6 || len(runs[2]) != 4 {
		t.Errorf("runs %v, want [1] then 6 then 4 images", runs)
	}
	// OnBatch runs after a batch's callers have their vectors: the last
	// call may come after wg.Wait returns.
	waitFor(t, "three OnBatch calls", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(sizes) >= 3
	})
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(sizes, []int{1, 6, 4}) {
		t.Errorf("OnBatch saw sizes %v", sizes)
	}
}

// TestPipelineMaxWait: a free worker waits up to MaxWait for a Bulk
// batch to fill, and no longer; a query never waits for company.
func TestPipelineMaxWait(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the pipeline's Close, registered later
	r := &fakeRunner{}
	p := newTestPipeline(t, r, PipelineOptions{Workers: 1, MaxWait: 50 * time.Millisecond})
	start := time.Now()
	if _, err := p.Embed(context.Background(), Bulk, imgs(1)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 40*time.Millisecond || d > 2*time.Second {
		t.Errorf("a lone bulk image took %v, want about MaxWait (50ms)", d)
	}
	start = time.Now()
	if _, err := p.Embed(context.Background(), Query, imgs(2)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Errorf("a lone query took %v, want no wait", d)
	}
	p2 := newTestPipeline(t, r, PipelineOptions{Workers: 1, MaxWait: -1})
	start = time.Now()
	if _, err := p2.Embed(context.Background(), Bulk, imgs(1)); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 40*time.Millisecond {
		t.Errorf("with MaxWait < 0 a lone bulk image took %v", d)
	}
}

// TestPipelineQueryFirst: under a flood of Bulk work a query runs in the
// next batch, after only the run in flight.
func TestPipelineQueryFirst(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the pipeline's Close, registered later
	r := &fakeRunner{gate: make(chan struct{}), started: make(chan []int, 100)}
	p := newTestPipeline(t, r, PipelineOptions{Workers: 1, MaxBatch: 4, QueryMaxBatch: 2})
	bulk := make([]int, 40)
	for i := range bulk {
		bulk[i] = 100 + i
	}
	errc := make(chan error, 2)
	go func() {
		vecs, err := p.Embed(context.Background(), Bulk, imgs(bulk...))
		if err == nil {
			checkVecs(t, vecs, bulk)
		}
		errc <- err
	}()
	<-r.started // first bulk batch in flight
	go func() {
		vecs, err := p.Embed(context.Background(), Query, imgs(7))
		if err == nil {
			checkVecs(t, vecs, []int{7})
		}
		errc <- err
	}()
	waitFor(t, "the query to queue", func() bool { q, _ := p.Waiting(); return q == 1 })
	r.gate <- struct{}{} // finish the first bulk batch
	if next := <-r.started; !slices.Equal(next, []int{7}) {
		t.Fatalf("after the bulk batch in flight ran %v, want the query [7]", next)
	}
	close(r.gate)
	for range 2 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if n := len(r.allRuns()); n != 1+1+9 {
		t.Errorf("%d runs, want 11", n)
	}
}

func TestPipelineCancel(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the pipeline's Close, registered later
	r := &fakeRunner{gate: make(chan struct{}), started: make(chan []int, 100)}
	p := newTestPipeline(t, r, PipelineOptions{Workers: 1})
	done := make(chan error, 1)
	go func() {
		_, err := p.Embed(context.Background(), Bulk, imgs(1))
		done <- err
	}()
	<-r.started
	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() {
		_, err := p.Embed(ctx, Bulk, imgs(2, 3, 4))
		cancelled <- err
	}()
	waitFor(t, "3 queued images", func() bool { _, b := p.Waiting(); return b == 3 })
	cancel()
	if err := <-cancelled; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled call: %v", err)
	}
	if q, b := p.Waiting(); q+b != 0 {
		t.Errorf("%d images still queued after cancel", q+b)
	}
	close(r.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := p.Embed(ctx, Query, imgs(5)); !errors.Is(err, context.Canceled) {
		t.Errorf("embed with a done context: %v", err)
	}
	p.Close()
	for _, run := range r.allRuns() {
		if slices.ContainsFunc(run, func(id int) bool { return id >= 2 }) {
			t.Errorf("cancelled images ran: %v", run)
		}
	}
}

func TestPipelineClose(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the pipeline's Close, registered later
	r := &fakeRunner{gate: make(chan struct{}), started: make(chan []int, 100)}
	p := newTestPipeline(t, r, PipelineOptions{Workers: 1})
	inflight := make(chan error, 1)
	go func() {
		vecs, err := p.Embed(context.Background(), Bulk, imgs(1))
		if err == nil {
			checkVecs(t, vecs, []int{1})
		}
		inflight <- err
	}()
	<-r.started
	queued := make(chan error, 3)
	for id := 2; id <= 4; id++ {
		go func() {
			_, err := p.Embed(context.Background(), Lane(id%2), imgs(id))
			queued <- err
		}()
	}
	waitFor(t, "3 queued images", func() bool { q, b := p.Waiting(); return q+b == 3 })
	closed := make(chan struct{})
	go func() {
		p.Close()
		close(closed)
	}()
	for range 3 {
		if err := <-queued; !errors.Is(err, ErrClosed) {
			t.Errorf("queued call: %v, want ErrClosed", err)
		}
	}
	select {
	case <-closed:
		t.Fatal("Close returned with a run in flight")
	case <-time.After(10 * time.Millisecond):
	}
	close(r.gate)
	if err := <-inflight; err != nil {
		t.Errorf("call in flight at Close: %v", err)
	}
	<-closed
	if _, err := p.Embed(context.Background(), Query, imgs(5)); !errors.Is(err, ErrClosed) {
		t.Errorf("embed after Close: %v", err)
	}
	p.Close() // twice is fine
}

// TestPipelineRunError: a failed run fails exactly the calls in its batch.
func TestPipelineRunError(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the pipeline's Close, registered later
	boom := errors.New("boom")
	r := &fakeRunner{
		gate: make(chan struct{}), started: make(chan []int, 100),
		fail: func(ids []int) error {
			if slices.Contains(ids, 20) {
				return boom
			}
			return nil
		},
	}
	p := newTestPipeline(t, r, PipelineOptions{Workers: 1, MaxBatch: 3})
	type result struct {
		name string
		err  error
	}
	res := make(chan result, 4)
	embed := func(name string, ids ...int) {
		_, err := p.Embed(context.Background(), Bulk, imgs(ids...))
		res <- result{name, err}
	}
	go embed("first", 1)
	<-r.started
	// Queue, in order: A (10), B (20, 21), C (30). The next batch is
	// A, B's two images; C runs alone after it.
	go embed("A", 10)
	waitFor(t, "A", func() bool { _, b := p.Waiting(); return b == 1 })
	go embed("B", 20, 21)
	waitFor(t, "B", func() bool { _, b := p.Waiting(); return b == 3 })
	go embed("C", 30)
	waitFor(t, "C", func() bool { _, b := p.Waiting(); return b == 4 })
	close(r.gate)
	got := map[string]error{}
	for range 4 {
		r := <-res
		got[r.name] = r.err
	}
	for name, want := range map[string]error{"first": nil, "A": boom, "B": boom, "C": nil} {
		if !errors.Is(got[name], want) || (want == nil) != (got[name] == nil) {
			t.Errorf("%s: got %v, want %v", name, got[name], want)
		}
	}
	t.Log(got["B"])
}

// TestPipelineBadOutput: a non-finite or zero output fails its own call
// only; a panicking runner fails its batch and the pipeline goes on.
func TestPipelineBadOutput(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the pipeline's Close, registered later
	r := &fakeRunner{gate: make(chan struct{}), started: make(chan []int, 100), panicOn: 99}
	p := newTestPipeline(t, r, PipelineOptions{Workers: 1})
	res := make(chan error, 4)
	go func() { _, err := p.Embed(context.Background(), Bulk, imgs(1)); res <- err }()
	<-r.started
	go func() { _, err := p.Embed(context.Background(), Bulk, imgs(2, -1)); res <- err }()
	go func() { _, err := p.Embed(context.Background(), Bulk, imgs(-2)); res <- err }()
	go func() { _, err := p.Embed(context.Background(), Bulk, imgs(3)); res <- err }()
	waitFor(t, "4 queued images", func() bool { _, b := p.Waiting(); return b == 4 })
	close(r.gate)
	var failed int
	for range 4 {
		if err := <-res; err != nil {
			failed++
			t.Log(err)
		}
	}
	if failed != 2 {
		t.Errorf("%d calls failed, want 2 (NaN and zero vector)", failed)
	}
	if _, err := p.Embed(context.Background(), Query, imgs(99)); err == nil {
		t.Error("a panicking run did not fail its call")
	} else {
		t.Log(err)
	}
	vecs, err := p.Embed(context.Background(), Query, imgs(4))
	if err != nil {
		t.Fatal(err)
	}
	checkVecs(t, vecs, []int{4})
}

func TestPipelineBadInput(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the pipeline's Close, registered later
	p := newTestPipeline(t, &fakeRunner{}, PipelineOptions{})
	ctx := context.Background()
	if _, err := p.Embed(ctx, Lane(7), imgs(1)); err == nil {
		t.Error("unknown lane accepted")
	}
	if _, err := p.Embed(ctx, Query, []*Prepared{img(1), nil}); err == nil {
		t.Error("nil image accepted")
	}
	if _, err := p.Embed(ctx, Query, []*Prepared{{Tensor: make([]float32, 5)}}); err == nil {
		t.Error("short tensor accepted")
	}
	if vecs, err := p.Embed(ctx, Query, nil); err != nil || len(vecs) != 0 {
		t.Errorf("no images: %v, %v", vecs, err)
	}
	if p.ModelName() != "fake" || p.ModelHash() != "fakehash" || p.Dim() != 3 {
		t.Errorf("identity %q %q %d", p.ModelName(), p.ModelHash(), p.Dim())
	}
	if _, err := p.Prepare([]byte("hello")); !errors.Is(err, ErrNotImage) {
		t.Errorf("Prepare: %v", err)
	}
}

func TestPipelineOptions(t *testing.T) {
	if _, err := NewPipeline(nil, PipelineOptions{Hash: "h"}); err == nil {
		t.Error("nil runner accepted")
	}
	err := PipelineOptions{Workers: -1, MaxBatch: -1, QueryMaxBatch: 5000, MaxWait: time.Hour,
		Limits: Limits{MaxBytes: -1}}.Validate()
	if err == nil {
		t.Fatal("bad options accepted")
	}
	t.Log(err)
	var o PipelineOptions
	o.EnsureDefaults()
	if o.Workers != 1 || o.MaxBatch != 8 || o.QueryMaxBatch != 8 || o.MaxWait != 2*time.Millisecond || o.Limits != DefaultLimits() {
		t.Errorf("defaults %+v", o)
	}
	if err := o.Validate(); err == nil {
		t.Error("no hash accepted")
	}
}

// BenchmarkPipeline: single-image clients against a runner whose run
// costs a + b·n (a fixed overhead per run, as ONNX Runtime has), one
// worker. Eight concurrent clients share runs; one client pays a per
// image.
func BenchmarkPipeline(b *testing.B) {
	const a, perImage = 4 * time.Millisecond, 500 * time.Microsecond
	for _, clients := range []int{1, 8} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			r := &fakeRunner{cost: func(n int) time.Duration { return a + time.Duration(n)*perImage }}
			var sizes atomic.Int64
			p, err := NewPipeline(r, PipelineOptions{Workers: 1, Hash: "h", OnBatch: func(bi BatchInfo) {
				sizes.Add(int64(bi.Size))
			}})
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			var next atomic.Int64
			var wg sync.WaitGroup
			start := time.Now()
			b.ResetTimer()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(b.N) {
						if _, err := p.Embed(context.Background(), Bulk, imgs(1)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "images/s")
			b.ReportMetric(float64(sizes.Load())/float64(len(r.allRuns())), "images/run")
		})
	}
}
