package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // headers for withinLimits
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"lookalike/bench"
	"lookalike/bench/imagebench"
	"lookalike/embed"
	"lookalike/proto"
)

// importBench is `lookalike bench import`: import through a real server
// against in-process embedding, and search-by-image latency idle and
// while an import runs.
type importBench struct {
	Dir         string // image directory
	N           int    // files imported
	Queries     int    // searches on the idle server
	Seed        uint64
	Model       string // model directory
	Concurrency int    // import's --concurrency
	Batch       int    // import's --batch
	K           int
	Rounds      int    // in-process and server imports take turns this many times
	Server      string // an existing server; "" starts one
	JSON        bool
	Out, Log    io.Writer
}

// importRow is one figure of `bench import`.
type importRow struct {
	Part    string  `json:"part"` // "import" or "search"
	Mode    string  `json:"mode"` // in-process, server, median; idle, during import
	Round   int     `json:"round,omitempty"`
	Images  int     `json:"images,omitempty"`
	Seconds float64 `json:"seconds,omitempty"`
	PerSec  float64 `json:"images_per_s,omitempty"`
	Queries int     `json:"queries,omitempty"`
	P50ms   float64 `json:"p50_ms,omitempty"`
	P99ms   float64 `json:"p99_ms,omitempty"`
	Load1   float64 `json:"load1"`
	// Ratio: for the server import, its rate over the in-process one;
	// for searches during an import, that import's rate.
	Ratio        float64 `json:"ratio,omitempty"`
	ImportPerSec float64 `json:"import_images_per_s,omitempty"`
	// InProcessPerSec: the median's in-process rate.
	InProcessPerSec float64 `json:"in_process_images_per_s,omitempty"`
}

// median of xs (not empty).
func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}

func (b *importBench) emit(r importRow) {
	if b.JSON {
		j, _ := json.Marshal(r)
		fmt.Fprintf(b.Out, "%s\n", j)
		return
	}
	switch r.Part {
	case "import":
		if r.Mode == "median" {
			fmt.Fprintf(b.Out, "import  median of %d rounds: server %.1f images/s, in-process %.1f images/s: %.2f×  load %.2f\n",
				b.Rounds, r.PerSec, r.InProcessPerSec, r.Ratio, r.Load1)
			return
		}
		fmt.Fprintf(b.Out, "import  %-10s r%d %5d images in %6.1f s: %6.1f images/s", r.Mode, r.Round, r.Images, r.Seconds, r.PerSec)
		if r.Ratio > 0 {
			fmt.Fprintf(b.Out, " (%.2f× in-process)", r.Ratio)
		}
		fmt.Fprintf(b.Out, "  load %.2f\n", r.Load1)
	case "search":
		fmt.Fprintf(b.Out, "search  %-13s %5d queries: p50 %7.1f ms, p99 %7.1f ms", r.Mode, r.Queries, r.P50ms, r.P99ms)
		if r.ImportPerSec > 0 {
			fmt.Fprintf(b.Out, " (import meanwhile %.1f images/s)", r.ImportPerSec)
		}
		fmt.Fprintf(b.Out, "  load %.2f\n", r.Load1)
	}
}

func (b *importBench) run(ctx context.Context) error {
	all, err := labelledImages(b.Dir)
	if err != nil {
		return err
	}
	if b.N > len(all) {
		return fmt.Errorf("--n %d: only %d images under %s", b.N, len(all), b.Dir)
	}
	// Two disjoint sets of N files (the second one is imported while the
	// searches run) and the queries, all from one seeded permutation,
	// without the few files a node refuses (openclipart has pictures of
	// more than embed's 64 Mi pixels): both paths would drop them, but the
	// server only after refusing a whole request.
	perm := imagebench.Sample(all, 0, b.Seed)
	perm = slices.DeleteFunc(perm, func(f imagebench.File) bool {
		if !withinLimits(f.Path) {
			fmt.Fprintf(b.Log, "left out (beyond the default limits): %s\n", f.Path)
			return true
		}
		return false
	})
	pick := func(fs []imagebench.File) []imageFile {
		out := make([]imageFile, len(fs))
		for i, f := range fs {
			rel, _ := filepath.Rel(b.Dir, f.Path)
			out[i] = imageFile{path: f.Path, id: filepath.ToSlash(rel)}
		}
		return out
	}
	first := pick(perm[:b.N])
	second := pick(perm[b.N:min(2*b.N, len(perm))])
	queries, err := imagebench.ReadAll(perm[len(perm)-min(b.Queries, len(perm)):])
	if err != nil {
		return err
	}
	// Read every file once first, so that neither measurement pays for
	// the disk and both find them in the page cache.
	if _, err := imagebench.ReadAll(perm[:min(2*b.N, len(perm))]); err != nil {
		return err
	}

	// In process: the embedder lookalike serve builds (openModel), the
	// same files, the same concurrency and batches, decoded as a node
	// decodes an upload (prepareAll's way: all cores, thumbnails too).
	e, closeModel, err := openModel(b.Model, 32<<20)
	if err != nil {
		return err
	}
	defer closeModel()
	if err := warmEmbedder(ctx, e, queries[0]); err != nil {
		return err
	}

	server := b.Server
	if server == "" {
		srv, err := startBenchServer(ctx, b.Model, b.Log)
		if err != nil {
			return err
		}
		defer srv.stop()
		server = srv.url
	}
	cl, err := newAPIClient(server, "")
	if err != nil {
		return err
	}
	model, err := embed.LoadConfig(b.Model)
	if err != nil {
		return err
	}
	var colls []string
	newColl := func(kind string) (string, error) {
		coll := fmt.Sprintf("bench-%s-%d", kind, time.Now().UnixNano())
		if err := ensureCollection(ctx, cl, coll, true, model.Name, "cosine", io.Discard); err != nil {
			return "", err
		}
		colls = append(colls, coll)
		return coll, nil
	}
	if b.Server == "" {
		defer func() {
			for _, coll := range colls {
				cl.json(context.Background(), "DELETE", collPath(coll), nil, nil)
			}
		}()
	}

	// The two take turns, Rounds times, each server round into a new
	// collection, so that a change in the machine's load falls on both.
	var coll1 string
	var inRates, srvRates []float64
	for round := range b.Rounds {
		fmt.Fprintf(b.Log, "round %d: in-process embedding of %d files, %d workers × batches of %d (load %.2f)\n",
			round+1, len(first), b.Concurrency, b.Batch, imagebench.LoadAvg())
		took, err := embedInProcess(ctx, e, first, b.Concurrency, b.Batch)
		if err != nil {
			return err
		}
		r := importRow{Part: "import", Mode: "in-process", Round: round + 1, Images: len(first), Seconds: took.Seconds(),
			PerSec: float64(len(first)) / took.Seconds(), Load1: imagebench.LoadAvg()}
		inRates = append(inRates, r.PerSec)
		b.emit(r)

		if coll1, err = newColl("import"); err != nil {
			return err
		}
		if round == 0 {
			if _, err := searchImage(ctx, cl, coll1, queries[0], b.K); err != nil { // the server's first run
				return fmt.Errorf("warm-up search: %w", err)
			}
		}
		fmt.Fprintf(b.Log, "round %d: import of the same files through %s (load %.2f)\n", round+1, server, imagebench.LoadAvg())
		imp, took, err := importFiles(ctx, cl, coll1, first, b.Concurrency, b.Batch, b.Log)
		if err != nil {
			return err
		}
		r = importRow{Part: "import", Mode: "server", Round: round + 1, Images: imp, Seconds: took.Seconds(),
			PerSec: float64(imp) / took.Seconds(), Load1: imagebench.LoadAvg()}
		r.Ratio = r.PerSec / inRates[len(inRates)-1]
		srvRates = append(srvRates, r.PerSec)
		b.emit(r)
	}
	b.emit(importRow{Part: "import", Mode: "median", PerSec: median(srvRates), InProcessPerSec: median(inRates),
		Ratio: median(srvRates) / median(inRates), Load1: imagebench.LoadAvg()})

	// Search by image, one client, one query at a time: idle, then while
	// the second set is imported into another collection.
	lat, err := searchLoop(ctx, cl, coll1, queries, b.K, len(queries), nil)
	if err != nil {
		return err
	}
	l := bench.LatencyStats(lat)
	b.emit(importRow{Part: "search", Mode: "idle", Queries: l.N, P50ms: ms(l.P50), P99ms: ms(l.P99), Load1: imagebench.LoadAvg()})

	if len(second) == 0 {
		return nil
	}
	coll2, err := newColl("during")
	if err != nil {
		return err
	}
	done := make(chan struct{})
	var (
		imp2  int
		took2 time.Duration
		err2  error
	)
	go func() {
		defer close(done)
		imp2, took2, err2 = importFiles(ctx, cl, coll2, second, b.Concurrency, b.Batch, b.Log)
	}()
	lat, err = searchLoop(ctx, cl, coll1, queries, b.K, 0, done)
	<-done
	if err != nil {
		return err
	}
	if err2 != nil {
		return err2
	}
	l = bench.LatencyStats(lat)
	b.emit(importRow{Part: "search", Mode: "during import", Queries: l.N, P50ms: ms(l.P50), P99ms: ms(l.P99),
		ImportPerSec: float64(imp2) / took2.Seconds(), Load1: imagebench.LoadAvg()})
	return nil
}

// withinLimits reports whether the file's header is one that
// embed.DefaultLimits accepts.
func withinLimits(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	lim := embed.DefaultLimits()
	return err == nil && cfg.Width <= lim.MaxSide && cfg.Height <= lim.MaxSide && int64(cfg.Width)*int64(cfg.Height) <= lim.MaxPixels
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// warmEmbedder embeds one image, so that ONNX Runtime's first run is not
// timed.
func warmEmbedder(ctx context.Context, e embed.Embedder, data []byte) error {
	p, err := e.Prepare(data)
	if err != nil {
		return err
	}
	_, err = e.Embed(ctx, embed.Bulk, []*embed.Prepared{p})
	return err
}

// embedInProcess does what an import makes the server do, without HTTP
// or storage: concurrency workers, each taking batch files at a time,
// reading them, preparing them on all cores and embedding them in one
// Bulk call.
func embedInProcess(ctx context.Context, e embed.Embedder, files []imageFile, concurrency, batch int) (time.Duration, error) {
	start := time.Now()
	batches := make(chan []imageFile)
	errc := make(chan error, concurrency)
	var wg sync.WaitGroup
	for range concurrency {
		wg.Go(func() {
			for fs := range batches {
				data := make([][]byte, len(fs))
				for i, f := range fs {
					d, err := os.ReadFile(f.path)
					if err != nil {
						errc <- err
						return
					}
					data[i] = d
				}
				prep, errs := embed.PrepareAll(e, data)
				if err := errors.Join(errs...); err != nil {
					errc <- err
					return
				}
				if _, err := e.Embed(ctx, embed.Bulk, prep); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	var err error
feed:
	for i := 0; i < len(files); i += batch {
		select {
		case batches <- files[i:min(i+batch, len(files))]:
		case err = <-errc:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(batches)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errc:
		default:
		}
	}
	return time.Since(start), err
}

// importFiles runs lookalike import's importer on files.
func importFiles(ctx context.Context, cl *apiClient, coll string, files []imageFile, concurrency, batch int, log io.Writer) (int, time.Duration, error) {
	im := &importer{c: cl, coll: coll, batch: batch, concurrency: concurrency, out: log}
	start := time.Now()
	err := im.run(ctx, files)
	took := time.Since(start)
	if err != nil {
		return 0, took, err
	}
	if bad := im.bad.Load() + im.unreadable.Load(); bad > 0 {
		return 0, took, fmt.Errorf("import into %s: %d files refused", coll, bad)
	}
	return int(im.imported.Load() + im.present.Load()), took, nil
}

// searchImage is `lookalike search`'s request.
func searchImage(ctx context.Context, cl *apiClient, coll string, data []byte, k int) (*proto.SearchResult, error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	pw, _ := w.CreateFormFile("file", "query.png")
	pw.Write(data)
	w.WriteField("k", strconv.Itoa(k))
	w.Close()
	var res proto.SearchResult
	if err := cl.do(ctx, "POST", collPath(coll)+"/search", w.FormDataContentType(), buf.Bytes(), &res); err != nil {
		return nil, err
	}
	return &res, nil
}

// searchLoop searches with the queries in turn, one at a time: n of
// them, or (n = 0) until until is closed, cycling through them.
func searchLoop(ctx context.Context, cl *apiClient, coll string, queries [][]byte, k, n int, until <-chan struct{}) ([]time.Duration, error) {
	var lat []time.Duration
	for i := 0; n == 0 || i < n; i++ {
		if until != nil {
			select {
			case <-until:
				return lat, nil
			default:
			}
		}
		t := time.Now()
		res, err := searchImage(ctx, cl, coll, queries[i%len(queries)], k)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		lat = append(lat, time.Since(t))
		if len(res.Hits) == 0 {
			return nil, fmt.Errorf("search in %s: no hits", coll)
		}
	}
	return lat, nil
}

// benchServer is a `lookalike serve` child process.
type benchServer struct {
	url  string
	cmd  *exec.Cmd
	dir  string
	log  *bytes.Buffer
	done chan error
}

// startBenchServer starts this binary's serve with the model, on free
// loopback ports, with its data in a new temporary directory.
func startBenchServer(ctx context.Context, model string, log io.Writer) (*benchServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "lookalike-bench-")
	if err != nil {
		return nil, err
	}
	addrs := make([]string, 2)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			os.RemoveAll(dir)
			return nil, err
		}
		addrs[i] = l.Addr().String()
		l.Close()
	}
	s := &benchServer{url: "http://" + addrs[0], dir: dir, log: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd = exec.Command(exe, "serve", "--data", dir, "--http", addrs[0], "--raft", addrs[1], "--model", model, "--quiet")
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	fmt.Fprintf(log, "started lookalike serve (pid %d) on %s, data in %s\n", s.cmd.Process.Pid, addrs[0], dir)
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(s.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return s, nil
			}
		}
		select {
		case err := <-s.done:
			os.RemoveAll(dir)
			return nil, fmt.Errorf("lookalike serve exited: %v: %s", err, strings.TrimSpace(s.log.String()))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("lookalike serve not healthy after a minute: %s", s.log.String())
		}
	}
}

// stop ends the server (SIGTERM, then SIGKILL after 30 s) and removes its
// data.
func (s *benchServer) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
	os.RemoveAll(s.dir)
}

func newBenchImportCmd() *cobra.Command {
	b := importBench{}
	var model string
	c := &cobra.Command{
		Use:   "import",
		Short: "Import through a real server against in-process embedding, and search-by-image p99 idle and during an import",
		Long: `Measure, with the real model:

(1 and 2 take turns --rounds times; the median of each is compared.)

1. in-process embedding of --n image files (a seeded sample of --images):
   --concurrency workers, each reading --batch files, decoding them on all
   cores (with thumbnails, as a node does) and embedding them in one Bulk
   call, with the embedder lookalike serve builds;
2. lookalike import's code path (lookalike import --concurrency --batch) on
   the same files into a new image collection of a lookalike serve child
   process started with the same model (or --server): decode, embed and
   insert, end to end; its rate over the in-process rate is the ratio;
3. search by image (lookalike search's request, k 10), one client, one
   query at a time: --queries searches on the idle server, then searches
   without a pause while another --n files are imported into a second
   collection; p50 and p99 of each.`,
		Example: `  lookalike bench import
  lookalike bench import --n 500 --queries 50 --json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if b.N < 1 || b.Queries < 1 || b.Concurrency < 1 || b.Batch < 1 || b.Batch > proto.DefaultMaxImages || b.K < 1 || b.Rounds < 1 {
				return usageError{fmt.Errorf("--n, --queries, --concurrency, --k, --rounds ≥ 1 and --batch 1..%d", proto.DefaultMaxImages)}
			}
			b.Model = modelDir(model)
			if abs, err := filepath.Abs(b.Model); err == nil {
				b.Model = abs
			}
			b.Out, b.Log = c.OutOrStdout(), c.ErrOrStderr()
			return b.run(c.Context())
		},
	}
	f := c.Flags()
	f.StringVar(&b.Dir, "images", openclipartDir, "directory of image files (recursive)")
	f.IntVar(&b.N, "n", 2000, "files imported (twice this many must exist: a second set is imported during the searches)")
	f.IntVar(&b.Queries, "queries", 100, "searches on the idle server (query images from the same directory)")
	f.Uint64Var(&b.Seed, "seed", 1, "seed of the samples")
	f.StringVar(&model, "model", embed.DefaultModel, "model directory, or the name of a model in $LOOKALIKE_CACHE/models")
	f.IntVar(&b.Concurrency, "concurrency", 4, "requests in flight (lookalike import's default)")
	f.IntVar(&b.Batch, "batch", 16, "files per request (lookalike import's default)")
	f.IntVar(&b.K, "k", 10, "hits per search")
	f.IntVar(&b.Rounds, "rounds", 2, "times the in-process run and the server import take turns (each import into a new collection)")
	f.StringVar(&b.Server, "server", "", "use this running server instead of starting one (it must serve the same model)")
	f.BoolVar(&b.JSON, "json", false, "print one JSON object per figure")
	return c
}
