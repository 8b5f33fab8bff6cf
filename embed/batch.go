package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"
)

// PipelineOptions configure a Pipeline. A zero field takes the default
// its comment gives.
type PipelineOptions struct {
	// Workers is how many model runs may be in flight at once; default
	// 1, for a runner that spreads one run over all cores (ONNX Runtime's
	// intra-op threads; one session). More workers than sessions put a
	// second batch in line for the session, and a query behind it:
	// `bench lanes` measured search p99 during an import at 2.46 s with
	// 2 workers × batches of 32, 0.18 s with 1 × 8, at the same import
	// rate.
	Workers int
	// MaxBatch is the largest Bulk batch; default 8: a query waits for at
	// most the one bulk run in flight, so its size bounds search latency
	// during an import, and larger batches gained nothing on this CPU
	// (`bench embed`'s sweep is flat from 1 to 32).
	MaxBatch int
	// QueryMaxBatch is the largest Query batch; default 8. Small, so a
	// visitor's run is short.
	QueryMaxBatch int
	// MaxWait is how long a free worker lets the oldest waiting Bulk
	// image wait for its batch to fill; default 2 ms; negative: no wait.
	// Query images never wait for company: a visitor alone would pay it
	// on every search. Busy workers batch without it: what queues during
	// a run goes together into the next.
	MaxWait time.Duration
	// Limits bound Prepare; zero fields take DefaultLimits.
	Limits Limits
	// Name and Hash identify the model (ModelName, ModelHash). Name
	// defaults to the runner's Config().Name; Hash is required, usually
	// Model.Hash().
	Name string
	Hash string
	// OnBatch, when set, is called after each model run, from the
	// worker that ran it (keep it quick): for metrics.
	OnBatch func(BatchInfo)
}

// BatchInfo describes one model run, for PipelineOptions.OnBatch.
type BatchInfo struct {
	Lane Lane
	Size int           // images in the batch
	Wait time.Duration // how long its oldest image queued
	Run  time.Duration // how long Runner.Run took
	Err  error         // Run's error, if any
}

// EnsureDefaults sets every zero field to its default.
func (o *PipelineOptions) EnsureDefaults() {
	if o.Workers == 0 {
		o.Workers = 1
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = 8
	}
	if o.QueryMaxBatch == 0 {
		o.QueryMaxBatch = 8
	}
	if o.MaxWait == 0 {
		o.MaxWait = 2 * time.Millisecond
	}
	o.Limits.EnsureDefaults()
}

// Validate reports every problem with o at once.
func (o PipelineOptions) Validate() error {
	var probs []string
	if o.Workers < 1 || o.Workers > 1024 {
		probs = append(probs, fmt.Sprintf("workers %d, want 1..1024", o.Workers))
	}
	if o.MaxBatch < 1 || o.MaxBatch > 4096 {
		probs = append(probs, fmt.Sprintf("max batch %d, want 1..4096", o.MaxBatch))
	}
	if o.QueryMaxBatch < 1 || o.QueryMaxBatch > 4096 {
		probs = append(probs, fmt.Sprintf("query max batch %d, want 1..4096", o.QueryMaxBatch))
	}
	if o.MaxWait > time.Second {
		probs = append(probs, fmt.Sprintf("max wait %v, want at most 1s", o.MaxWait))
	}
	if o.Hash == "" {
		probs = append(probs, "model hash is empty")
	}
	if err := o.Limits.Validate(); err != nil {
		probs = append(probs, err.Error())
	}
	if len(probs) == 0 {
		return nil
	}
	return fmt.Errorf("embed: invalid pipeline options: %v", probs)
}

// Pipeline is the Embedder of a node: it prepares uploads and gathers
// the images of concurrent Embed calls into batches for a Runner.
//
// Each lane has a FIFO queue of images. A free worker takes from the
// Query queue whenever it holds anything, else from the Bulk queue: up
// to QueryMaxBatch or MaxBatch images of one lane: queries at once, bulk
// images once the batch is full or its oldest image has waited MaxWait. So a search waits for at most
// the one run each worker has in flight, however large an import is.
// Under a steady stream of queries the Bulk lane waits.
//
// Callers run Prepare in their own goroutines, so decoding overlaps the
// model's runs. A Pipeline is safe for concurrent use; Close stops it.
type Pipeline struct {
	r    Runner
	cfg  Config
	o    PipelineOptions
	per  int // floats per image
	wake chan struct{}
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex
	lanes  [2][]*item // FIFO per lane
	closed bool
}

// call is one Embed call waiting for its vectors. Guarded by
// Pipeline.mu until done is closed; immutable after.
type call struct {
	lane     Lane
	out      [][]float32
	left     int
	err      error
	finished bool
	done     chan struct{}
}

// item is one image of a call.
type item struct {
	c      *call
	i      int // index in the call
	tensor []float32
	queued time.Time
}

// NewPipeline starts o.Workers workers over r. The pipeline does not
// own r: Close leaves it open.
func NewPipeline(r Runner, o PipelineOptions) (*Pipeline, error) {
	if r == nil {
		return nil, errors.New("embed: nil runner")
	}
	cfg := r.Config()
	if err := checkInput(cfg); err != nil {
		return nil, err
	}
	if cfg.Dim < 1 {
		return nil, fmt.Errorf("embed: model dim %d, want > 0", cfg.Dim)
	}
	o.EnsureDefaults()
	if o.Name == "" {
		o.Name = cfg.Name
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	p := &Pipeline{
		r: r, cfg: cfg, o: o,
		per:  3 * cfg.Size * cfg.Size,
		wake: make(chan struct{}, 1),
		stop: make(chan struct{}),
	}
	p.wg.Add(o.Workers)
	for range o.Workers {
		go p.worker()
	}
	return p, nil
}

// Prepare decodes and preprocesses one encoded image for the model
// (see the function Prepare).
func (p *Pipeline) Prepare(data []byte) (*Prepared, error) {
	return Prepare(data, p.cfg, p.o.Limits)
}

func (p *Pipeline) ModelName() string { return p.o.Name }
func (p *Pipeline) ModelHash() string { return p.o.Hash }
func (p *Pipeline) Dim() int          { return p.cfg.Dim }

// Waiting returns how many images wait in each lane: a node may refuse
// work (429) when they pile up.
func (p *Pipeline) Waiting() (query, bulk int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.lanes[Query]), len(p.lanes[Bulk])
}

// Embed returns one L2-normalised vector per image, in order. It fails
// as a whole: with ctx's error when ctx ends first (its images still
// queued are dropped), ErrClosed after Close, the runner's error when a
// batch holding one of its images fails, or an error naming an image
// whose output is not finite or is zero.
func (p *Pipeline) Embed(ctx context.Context, lane Lane, imgs []*Prepared) ([][]float32, error) {
	if lane != Query && lane != Bulk {
		return nil, fmt.Errorf("embed: unknown lane %d", lane)
	}
	for i, im := range imgs {
		if im == nil || len(im.Tensor) != p.per {
			n := 0
			if im != nil {
				n = len(im.Tensor)
			}
			return nil, fmt.Errorf("embed: image %d: tensor of %d floats, want %d", i, n, p.per)
		}
	}
	if len(imgs) == 0 {
		return [][]float32{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &call{lane: lane, out: make([][]float32, len(imgs)), left: len(imgs), done: make(chan struct{})}
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrClosed
	}
	for i, im := range imgs {
		p.lanes[lane] = append(p.lanes[lane], &item{c: c, i: i, tensor: im.Tensor, queued: now})
	}
	p.signal()
	p.mu.Unlock()

	select {
	case <-c.done:
		return c.out, c.err
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.finished {
		p.fail(c, ctx.Err())
	}
	return c.out, c.err
}

// Close stops the workers after their runs in flight, which finish for
// their callers, and fails every queued call with ErrClosed. It does not
// close the Runner.
func (p *Pipeline) Close() error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		for lane := range p.lanes {
			for _, it := range p.lanes[lane] {
				if !it.c.finished {
					it.c.finish(ErrClosed)
				}
			}
			p.lanes[lane] = nil
		}
		close(p.stop)
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// signal wakes one waiting worker. Called with p.mu held.
func (p *Pipeline) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// finish completes c. Called with p.mu held.
func (c *call) finish(err error) {
	c.err = err
	if err != nil {
		c.out = nil
	}
	c.finished = true
	close(c.done)
}

// fail completes c with err and drops its queued images. Called with
// p.mu held.
func (p *Pipeline) fail(c *call, err error) {
	p.lanes[c.lane] = slices.DeleteFunc(p.lanes[c.lane], func(it *item) bool { return it.c == c })
	c.finish(err)
}

func (p *Pipeline) worker() {
	defer p.wg.Done()
	buf := make([]float32, max(p.o.MaxBatch, p.o.QueryMaxBatch)*p.per)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		lane, batch := p.next(timer)
		if batch == nil {
			return
		}
		p.run(lane, batch, buf)
	}
}

// next waits for a batch: the Query lane before the Bulk lane, full or
// with its oldest image MaxWait old. It returns nil once closed.
func (p *Pipeline) next(timer *time.Timer) (Lane, []*item) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return 0, nil
		}
		lane, limit := Query, p.o.QueryMaxBatch
		if len(p.lanes[Query]) == 0 {
			lane, limit = Bulk, p.o.MaxBatch
		}
		q := p.lanes[lane]
		var wait time.Duration
		if len(q) > 0 {
			if lane == Bulk {
				wait = p.o.MaxWait - time.Since(q[0].queued)
			}
			if len(q) >= limit || wait <= 0 {
				n := min(len(q), limit)
				batch := slices.Clone(q[:n])
				clear(q[:n]) // let finished calls be collected
				p.lanes[lane] = q[n:]
				if len(p.lanes[Query])+len(p.lanes[Bulk]) > 0 {
					p.signal() // more for another worker
				}
				p.mu.Unlock()
				return lane, batch
			}
		}
		p.mu.Unlock()
		if len(q) == 0 {
			select {
			case <-p.wake:
			case <-p.stop:
			}
			continue
		}
		timer.Reset(wait)
		select {
		case <-p.wake:
		case <-timer.C:
		case <-p.stop:
		}
		timer.Stop()
	}
}

// run runs one batch and hands each caller its vectors.
func (p *Pipeline) run(lane Lane, batch []*item, buf []float32) {
	n := len(batch)
	in := buf[:n*p.per]
	for k, it := range batch {
		copy(in[k*p.per:], it.tensor)
	}
	start := time.Now()
	out, err := p.runSafe(in, n)
	took := time.Since(start)
	if err == nil && len(out) != n*p.cfg.Dim {
		err = fmt.Errorf("embed: model returned %d floats for %d images of dim %d", len(out), n, p.cfg.Dim)
	}
	if err != nil {
		err = fmt.Errorf("embed: run batch of %d: %w", n, err)
	}
	vecs := make([][]float32, n)
	errs := make([]error, n)
	if err == nil {
		d := p.cfg.Dim
		for k := range batch {
			vecs[k], errs[k] = normalised(out[k*d : (k+1)*d])
		}
	}

	p.mu.Lock()
	for k, it := range batch {
		c := it.c
		switch {
		case c.finished: // cancelled, closed, or failed in another batch
		case err != nil:
			p.fail(c, err)
		case errs[k] != nil:
			p.fail(c, fmt.Errorf("embed: image %d: %w", it.i, errs[k]))
		default:
			c.out[it.i] = vecs[k]
			if c.left--; c.left == 0 {
				c.finish(nil)
			}
		}
	}
	p.mu.Unlock()

	if p.o.OnBatch != nil {
		p.o.OnBatch(BatchInfo{Lane: lane, Size: n, Wait: start.Sub(batch[0].queued), Run: took, Err: err})
	}
}

// runSafe calls the runner, turning a panic into an error so that one
// bad batch cannot take the node down.
func (p *Pipeline) runSafe(in []float32, n int) (out []float32, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("runner panicked: %v", r)
		}
	}()
	return p.r.Run(in, n)
}

// normalised returns v / ‖v‖ in a new slice.
func normalised(v []float32) ([]float32, error) {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	switch {
	case math.IsNaN(s) || math.IsInf(s, 0):
		return nil, errors.New("model output is not finite")
	case s == 0:
		return nil, errors.New("model output is the zero vector")
	}
	inv := 1 / math.Sqrt(s)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out, nil
}
