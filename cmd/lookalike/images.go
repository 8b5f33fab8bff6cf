package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"lookalike/proto"
)

func init() {
	extraCommands = append(extraCommands, func(root *cobra.Command) { root.AddCommand(newImportCmd(), newSearchCmd()) })
}

// defaultImageModel is the model `import --create` asks for (embed.DefaultModel).
const defaultImageModel = "mobilenet_v2_mid"

// imageExts are the file name extensions import sends; other files are
// counted and skipped.
var imageExts = []string{".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp"}

// imageFile is a file found under the import directory.
type imageFile struct {
	path string // as reached from the directory (through symlinks)
	id   string // the path relative to the directory, '/'-separated
}

// walkResult is what walkImages found.
type walkResult struct {
	files    []imageFile
	skipped  int      // files that are not images by their extension
	problems []string // unreadable directories, dangling links, loops
}

// walkImages lists the image files under dir, recursively, following
// symbolic links (to files and to directories) but entering no directory
// twice, so a link loop ends. Files are sorted by id.
func walkImages(dir string) (walkResult, error) {
	var res walkResult
	visited := map[[2]uint64]bool{}
	var walk func(path, rel string) error
	walk = func(path, rel string) error {
		st, err := os.Stat(path)
		if err != nil {
			return err
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); ok {
			key := [2]uint64{uint64(sys.Dev), uint64(sys.Ino)}
			if visited[key] {
				res.problems = append(res.problems, fmt.Sprintf("%s: directory already visited (a symlink loop or a second link), skipped", path))
				return nil
			}
			visited[key] = true
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			res.problems = append(res.problems, fmt.Sprintf("%s: %v", path, err))
			return nil
		}
		for _, e := range entries {
			p, r := filepath.Join(path, e.Name()), e.Name()
			if rel != "" {
				r = rel + "/" + e.Name()
			}
			mode := e.Type()
			if mode&fs.ModeSymlink != 0 {
				st, err := os.Stat(p) // follow it
				if err != nil {
					res.problems = append(res.problems, fmt.Sprintf("%s: %v", p, err))
					continue
				}
				mode = st.Mode().Type()
			}
			switch {
			case mode.IsDir():
				if err := walk(p, r); err != nil {
					res.problems = append(res.problems, fmt.Sprintf("%s: %v", p, err))
				}
			case mode.IsRegular():
				if slices.Contains(imageExts, strings.ToLower(filepath.Ext(e.Name()))) {
					res.files = append(res.files, imageFile{path: p, id: r})
				} else {
					res.skipped++
				}
			}
		}
		return nil
	}
	if err := walk(dir, ""); err != nil {
		return res, err
	}
	slices.SortFunc(res.files, func(a, b imageFile) int { return strings.Compare(a.id, b.id) })
	return res, nil
}

// apiClient calls HTTP API v1, retrying 429 and 503 answers.
type apiClient struct {
	base string
	key  string
	hc   *http.Client
}

func newAPIClient(server, key string) (*apiClient, error) {
	if !strings.Contains(server, "://") {
		server = "http://" + server
	}
	u, err := url.Parse(server)
	if err != nil || u.Host == "" {
		return nil, usageError{fmt.Errorf("--server %q: want host:port or a URL", server)}
	}
	return &apiClient{base: strings.TrimRight(u.String(), "/"), key: key, hc: &http.Client{Timeout: 5 * time.Minute}}, nil
}

// apiErr is an error answer of the API.
type apiErr struct {
	status int
	code   proto.Code
	msg    string
}

func (e *apiErr) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

// do sends a body (bytes of content type ctype, or nil) and decodes the
// answer into out. 429 and 503 are retried with backoff for a minute.
func (c *apiClient) do(ctx context.Context, method, path, ctype string, body []byte, out any) error {
	delay := 200 * time.Millisecond
	deadline := time.Now().Add(time.Minute)
	for {
		req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
		if err != nil {
			return err
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		if resp.StatusCode < 300 {
			if out != nil {
				return json.Unmarshal(b, out)
			}
			return nil
		}
		e := &apiErr{status: resp.StatusCode, msg: resp.Status}
		var eb proto.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error != nil {
			e.code, e.msg = eb.Error.Code, eb.Error.Message
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && time.Now().Before(deadline) {
			wait := delay
			if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
				wait = time.Duration(s) * time.Second
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(wait):
			}
			delay = min(2*delay, 5*time.Second)
			continue
		}
		return e
	}
}

func (c *apiClient) json(ctx context.Context, method, path string, in, out any) error {
	var body []byte
	ctype := ""
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return err
		}
		ctype = proto.JSONContentType
	}
	return c.do(ctx, method, path, ctype, body, out)
}

func collPath(c string) string { return "/v1/collections/" + url.PathEscape(c) }

// importer uploads files to an image collection.
type importer struct {
	c            *apiClient
	coll         string
	batch        int
	concurrency  int
	keepOriginal bool
	out          io.Writer // problems, as they happen
	bar          *progressbar.ProgressBar

	imported, present, bad, unreadable atomic.Int64
	mu                                 sync.Mutex
	failures                           []string
}

func (im *importer) report(format string, args ...any) {
	im.mu.Lock()
	defer im.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	im.failures = append(im.failures, msg)
	if im.bar != nil {
		im.bar.Clear()
	}
	fmt.Fprintln(im.out, msg)
}

func (im *importer) progress(n int) {
	if im.bar != nil {
		im.bar.Add(n)
	}
}

// run imports files in batches over concurrency workers. It fails only
// when the server does (a file's problem is reported and counted).
func (im *importer) run(ctx context.Context, files []imageFile) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	batches := make(chan []imageFile)
	var wg sync.WaitGroup
	for range im.concurrency {
		wg.Go(func() {
			for b := range batches {
				if err := im.importBatch(ctx, b); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := 0; i < len(files); i += im.batch {
		select {
		case batches <- files[i:min(i+im.batch, len(files))]:
		case <-ctx.Done():
			break feed
		}
	}
	close(batches)
	wg.Wait()
	return context.Cause(ctx)
}

// importBatch skips the ids already stored, reads the files and uploads
// them in one request. A request refused for a bad file is split into
// one request per file, so that the good ones get in and each bad one is
// reported.
func (im *importer) importBatch(ctx context.Context, b []imageFile) error {
	if ctx.Err() != nil {
		return nil
	}
	ids := make([]string, len(b))
	for i, f := range b {
		ids[i] = f.id
	}
	var lk proto.LookupResult
	if err := im.c.json(ctx, "POST", collPath(im.coll)+"/items/lookup", proto.Lookup{IDs: ids}, &lk); err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	var todo []imageFile
	var data [][]byte
	for i, f := range b {
		if i < len(lk.Found) && lk.Found[i] {
			im.present.Add(1)
			im.progress(1)
			continue
		}
		d, err := os.ReadFile(f.path)
		if err != nil {
			im.unreadable.Add(1)
			im.progress(1)
			im.report("unreadable: %v", err)
			continue
		}
		todo, data = append(todo, f), append(data, d)
	}
	if len(todo) == 0 {
		return nil
	}
	err := im.upload(ctx, todo, data)
	var ae *apiErr
	if errors.As(err, &ae) && (ae.code == proto.BadRequest || ae.code == proto.TooLarge) && len(todo) > 1 {
		for i := range todo {
			if err := im.upload(ctx, todo[i:i+1], data[i:i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	return err
}

// upload sends one request; a single file refused as bad is reported,
// counted and not an error.
func (im *importer) upload(ctx context.Context, files []imageFile, data [][]byte) error {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	for i, f := range files {
		pw, err := w.CreateFormFile("file", filepath.Base(f.path))
		if err != nil {
			return err
		}
		pw.Write(data[i])
		w.WriteField("id", f.id)
		w.WriteField("source", f.path)
	}
	if im.keepOriginal {
		w.WriteField("keep_original", "true")
	}
	if err := w.Close(); err != nil {
		return err
	}
	var ins proto.Inserted
	err := im.c.do(ctx, "POST", collPath(im.coll)+"/images", w.FormDataContentType(), buf.Bytes(), &ins)
	var ae *apiErr
	if errors.As(err, &ae) && (ae.code == proto.BadRequest || ae.code == proto.TooLarge) && len(files) == 1 {
		im.bad.Add(1)
		im.progress(1)
		im.report("bad image %s: %s", files[0].path, ae.msg)
		return nil
	}
	if err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	im.imported.Add(int64(len(files)))
	im.progress(len(files))
	return nil
}

// ensureCollection checks that coll exists and is an image collection,
// creating it when create is set.
func ensureCollection(ctx context.Context, c *apiClient, coll string, create bool, model, metric string, out io.Writer) error {
	var col proto.Collection
	err := c.json(ctx, "GET", collPath(coll), nil, &col)
	var ae *apiErr
	switch {
	case errors.As(err, &ae) && ae.code == proto.NotFound && create:
		req := proto.CreateCollection{Name: coll, Metric: proto.Metric(metric), Model: model}
		if err := c.json(ctx, "POST", "/v1/collections", req, &col); err != nil {
			return fmt.Errorf("create collection %q: %w", coll, err)
		}
		fmt.Fprintf(out, "created collection %s (model %s, dim %d, %s)\n", col.Name, col.Model, col.Dim, col.Metric)
	case errors.As(err, &ae) && ae.code == proto.NotFound:
		return fmt.Errorf("collection %q does not exist (--create makes it)", coll)
	case err != nil:
		return err
	case col.Model == "":
		return fmt.Errorf("collection %q is a vector collection (no model): import needs an image collection", coll)
	}
	return nil
}

func newImportCmd() *cobra.Command {
	var (
		server, key, coll, model, metric string
		create, keep, quiet              bool
		concurrency, batch               int
	)
	c := &cobra.Command{
		Use:   "import --collection C DIR",
		Short: "Upload the images under a directory to an image collection (recursive, concurrent, resumable)",
		Long: `Upload every image file (.jpg .jpeg .png .gif .webp .bmp) under DIR,
recursively, following symbolic links but entering no directory twice.

Each item's id is the file's path relative to DIR ("animals/cat.png"), and
its source is the path as reached. Ids from paths make a second run cheap
and exact: it asks the server which ids of each batch are stored (POST
.../items/lookup) and uploads only the others, so an interrupted import
resumes where it stopped. (A content hash would need every file read
before it could skip one, and would merge copies that live at two paths.)
A file changed since it was imported is not sent again; delete its item to
re-import it.

Files that cannot be read or that the server refuses as images are
reported and counted, and the import goes on; the exit status is non-zero
only when the server fails. --server reads LOOKALIKE_SERVER and --api-key
LOOKALIKE_API_KEY.`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if coll == "" {
				return usageError{errors.New("--collection is required")}
			}
			if concurrency < 1 || batch < 1 || batch > proto.DefaultMaxImages {
				return usageError{fmt.Errorf("--concurrency ≥ 1 and --batch 1..%d", proto.DefaultMaxImages)}
			}
			server, key = envDefault(c, "server", server, "LOOKALIKE_SERVER"), envDefault(c, "api-key", key, "LOOKALIKE_API_KEY")
			cl, err := newAPIClient(server, key)
			if err != nil {
				return err
			}
			ctx, stderr := c.Context(), c.ErrOrStderr()
			dir := args[0]
			if abs, err := filepath.Abs(dir); err == nil {
				dir = abs
			}
			start := time.Now()
			found, err := walkImages(dir)
			if err != nil {
				return err
			}
			for _, p := range found.problems {
				fmt.Fprintln(stderr, "skipped:", p)
			}
			if err := ensureCollection(ctx, cl, coll, create, model, metric, c.OutOrStdout()); err != nil {
				return err
			}
			im := &importer{c: cl, coll: coll, batch: batch, concurrency: concurrency, keepOriginal: keep, out: stderr}
			if !quiet {
				im.bar = progressbar.NewOptions(len(found.files),
					progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("import "+coll),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("img"),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionThrottle(200*time.Millisecond),
					progressbar.OptionOnCompletion(func() { fmt.Fprintln(stderr) }),
				)
			}
			runErr := im.run(ctx, found.files)
			if im.bar != nil {
				if runErr == nil {
					im.bar.Finish()
				} else {
					im.bar.Exit()
					fmt.Fprintln(stderr)
				}
			}
			took := time.Since(start)
			n := im.imported.Load()
			fmt.Fprintf(c.OutOrStdout(), "%s: %d images found; %d imported, %d already present, %d bad, %d unreadable; %d other files and %d paths skipped; %.1f s (%.1f images/s imported)\n",
				dir, len(found.files), n, im.present.Load(), im.bad.Load(), im.unreadable.Load(), found.skipped, len(found.problems),
				took.Seconds(), float64(n)/took.Seconds())
			return runErr
		},
	}
	f := c.Flags()
	f.StringVar(&server, "server", "http://127.0.0.1:8080", "node URL (or host:port)")
	f.StringVar(&key, "api-key", "", "API key for writes")
	f.StringVar(&coll, "collection", "", "image collection to import into (required)")
	f.BoolVar(&create, "create", false, "create the collection when it does not exist (with --model and --metric)")
	f.StringVar(&model, "model", defaultImageModel, "model of a collection made by --create")
	f.StringVar(&metric, "metric", "cosine", "metric of a collection made by --create")
	f.IntVar(&concurrency, "concurrency", 4, "requests in flight")
	f.IntVar(&batch, "batch", 16, "files per request")
	f.BoolVar(&keep, "keep-original", false, "store each file's original bytes with its item (for re-embedding with another model later)")
	f.BoolVar(&quiet, "quiet", false, "no progress bar")
	return c
}

// envDefault returns v, or the environment variable env when the flag
// was not given and env is set.
func envDefault(c *cobra.Command, flag, v, env string) string {
	if !c.Flags().Changed(flag) {
		if e, ok := os.LookupEnv(env); ok && e != "" {
			return e
		}
	}
	return v
}

func newSearchCmd() *cobra.Command {
	var (
		server, key, coll string
		k, nprobe         int
	)
	c := &cobra.Command{
		Use:   "search --collection C IMAGE",
		Short: "Search an image collection with an image file and print the hits",
		Long: `Search an image collection with an image file. Prints one hit per line:
rank, score, id and source (where the image came from), tab-separated.
--server reads LOOKALIKE_SERVER and --api-key LOOKALIKE_API_KEY (needed when
the server has a --read-key).`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			if coll == "" {
				return usageError{errors.New("--collection is required")}
			}
			server, key = envDefault(c, "server", server, "LOOKALIKE_SERVER"), envDefault(c, "api-key", key, "LOOKALIKE_API_KEY")
			cl, err := newAPIClient(server, key)
			if err != nil {
				return err
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			w := multipart.NewWriter(&buf)
			pw, _ := w.CreateFormFile("file", filepath.Base(args[0]))
			pw.Write(data)
			w.WriteField("k", strconv.Itoa(k))
			if nprobe > 0 {
				w.WriteField("nprobe", strconv.Itoa(nprobe))
			}
			w.Close()
			ctx := c.Context()
			var res proto.SearchResult
			if err := cl.do(ctx, "POST", collPath(coll)+"/search", w.FormDataContentType(), buf.Bytes(), &res); err != nil {
				return err
			}
			out := c.OutOrStdout()
			for i, h := range res.Hits {
				var it proto.Item
				src := ""
				if err := cl.json(ctx, "GET", collPath(coll)+"/items/"+url.PathEscape(h.ID), nil, &it); err == nil {
					src = it.Source
				}
				fmt.Fprintf(out, "%d\t%.4f\t%s\t%s\n", i+1, h.Score, h.ID, src)
			}
			if res.Partial {
				fmt.Fprintf(c.ErrOrStderr(), "partial answer: shards %s had no live replica\n", strings.Join(res.MissingShards, ", "))
			}
			fmt.Fprintf(c.ErrOrStderr(), "%d hits in %.1f ms\n", len(res.Hits), res.TookMS)
			return nil
		},
	}
	f := c.Flags()
	f.StringVar(&server, "server", "http://127.0.0.1:8080", "node URL (or host:port)")
	f.StringVar(&key, "api-key", "", "API key (when reads need one)")
	f.StringVar(&coll, "collection", "", "image collection to search (required)")
	f.IntVar(&k, "k", 10, "hits wanted (1..1024)")
	f.IntVar(&nprobe, "nprobe", 0, "lists scanned (default: the server's)")
	return c
}
