package imagebench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"lookalike/embed"
	"lookalike/ivf"
)

// Method turns an encoded image into a vector, for quality.
type Method struct {
	Name string // as reported
	// Key is the cache key: CacheKey of everything the vectors depend on.
	Key string
	Dim int
	// Concurrency is how many Vector calls run at once; default
	// GOMAXPROCS.
	Concurrency int
	// Vector returns the L2-normalised vector of one encoded image. It
	// must be safe for concurrent use.
	Vector func(ctx context.Context, data []byte) ([]float32, error)
}

// PrepareFingerprint identifies embed.Prepare's output for cfg: a hash of
// the tensor of a fixed synthetic image (a gradient with a transparent
// border, 300×200, so that alpha, the box reduction and the resize filter
// all show). Cache keys include it, so cached vectors are not reused after
// preprocessing changes.
func PrepareFingerprint(cfg embed.Config) (string, error) {
	img := image.NewNRGBA(image.Rect(0, 0, 300, 200))
	for y := range 200 {
		for x := range 300 {
			a := uint8(255)
			if x < 20 || y < 20 {
				a = uint8(x + y)
			}
			img.SetNRGBA(x, y, color.NRGBA{uint8(x), uint8(y), uint8(x ^ y), a})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		return "", err
	}
	p, err := embed.Prepare(b.Bytes(), cfg, embed.Limits{ThumbSide: -1})
	if err != nil {
		return "", fmt.Errorf("imagebench: fingerprint: %w", err)
	}
	h := sha256.New()
	for _, x := range p.Tensor {
		fmt.Fprintf(h, "%08x", math.Float32bits(x))
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// ModelMethod embeds with p (Prepare without thumbnails is the caller's
// choice of p's Limits), at most GOMAXPROCS decoding at once and up to
// inFlight images queued in the pipeline, on the Bulk lane.
func ModelMethod(p *embed.Pipeline, fingerprint string, inFlight int) Method {
	dec := make(chan struct{}, runtime.GOMAXPROCS(0))
	return Method{
		Name:        p.ModelName(),
		Key:         CacheKey("model", p.ModelHash(), fingerprint),
		Dim:         p.Dim(),
		Concurrency: inFlight,
		Vector: func(ctx context.Context, data []byte) ([]float32, error) {
			dec <- struct{}{}
			img, err := p.Prepare(data)
			<-dec
			if err != nil {
				return nil, err
			}
			v, err := p.Embed(ctx, embed.Bulk, []*embed.Prepared{img})
			if err != nil {
				return nil, err
			}
			return v[0], nil
		},
	}
}

// PixelConfig is the raw-pixel baseline's input: side × side RGB in
// [0, 1], composited over white and resized by embed.Prepare exactly as
// the model's input is.
func PixelConfig(side int) embed.Config {
	return embed.Config{Name: fmt.Sprintf("pixels-%d", side), Layout: embed.NHWC, Size: side,
		Std: [3]float32{1, 1, 1}, Dim: 3 * side * side}
}

// PixelMethod is the raw-pixel baseline: the side × side RGB tensor of
// PixelConfig, L2-normalised.
func PixelMethod(side int) (Method, error) {
	cfg := PixelConfig(side)
	fp, err := PrepareFingerprint(cfg)
	if err != nil {
		return Method{}, err
	}
	lim := embed.Limits{ThumbSide: -1}
	return Method{
		Name: cfg.Name,
		Key:  CacheKey("pixels", fmt.Sprint(side), fp),
		Dim:  cfg.Dim,
		Vector: func(_ context.Context, data []byte) ([]float32, error) {
			p, err := embed.Prepare(data, cfg, lim)
			if err != nil {
				return nil, err
			}
			if !ivf.Normalize(p.Tensor) {
				return nil, fmt.Errorf("imagebench: an all-black image has no direction")
			}
			return p.Tensor, nil
		},
	}, nil
}

// VectorStats says where a method's vectors came from.
type VectorStats struct {
	Cached, Computed, Failed int
	Seconds                  float64 // wall time of the whole call
	// Sums are the files' SHA-256s (zero for a file that could not be
	// read).
	Sums [][32]byte
}

// Vectors returns m's vector of every file (nil where errs has the
// file's error), taking what cache holds (by the file's SHA-256) and
// adding what it computes. progress, when not nil, sees each finished
// file.
func Vectors(ctx context.Context, files []File, m Method, cache *VectorCache, progress func()) ([][]float32, []error, VectorStats, error) {
	start := time.Now()
	vecs := make([][]float32, len(files))
	errs := make([]error, len(files))
	sums := make([][32]byte, len(files))
	var cached, computed atomic.Int64
	conc := m.Concurrency
	if conc <= 0 {
		conc = runtime.GOMAXPROCS(0)
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= len(files) {
					return
				}
				vecs[i], sums[i], errs[i] = vectorOf(ctx, files[i], m, cache, &cached, &computed)
				if errs[i] != nil {
					errs[i] = fmt.Errorf("%s: %w", files[i].Path, errs[i])
				}
				if progress != nil {
					progress()
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, nil, VectorStats{}, err
	}
	st := VectorStats{Cached: int(cached.Load()), Computed: int(computed.Load()), Seconds: time.Since(start).Seconds(), Sums: sums}
	for _, e := range errs {
		if e != nil {
			st.Failed++
		}
	}
	if cache != nil {
		if err := cache.Flush(); err != nil {
			return nil, nil, st, err
		}
	}
	return vecs, errs, st, nil
}

func vectorOf(ctx context.Context, f File, m Method, cache *VectorCache, cached, computed *atomic.Int64) ([]float32, [32]byte, error) {
	data, err := os.ReadFile(f.Path)
	if err != nil {
		return nil, [32]byte{}, err
	}
	sum := sha256.Sum256(data)
	if cache != nil {
		if v, ok := cache.Get(sum); ok {
			cached.Add(1)
			return v, sum, nil
		}
	}
	v, err := m.Vector(ctx, data)
	if err != nil {
		return nil, sum, err
	}
	if len(v) != m.Dim {
		return nil, sum, fmt.Errorf("%d floats, want %d", len(v), m.Dim)
	}
	computed.Add(1)
	if cache != nil {
		if err := cache.Put(sum, v); err != nil {
			return nil, sum, err
		}
	}
	return v, sum, nil
}

// PrecisionAtK is the mean, over every row taken as a query, of the
// fraction of its k nearest other rows whose label equals its own; the
// rows are L2-normalised, nearness is their inner product (cosine), and
// the search is exact (ivf.BruteForce on all cores). A row is never its
// own neighbour; ties go to the smaller row number. perLabel is the same
// mean over the queries of each label.
func PrecisionAtK(vecs []float32, dim int, labels []string, k int) (mean float64, perLabel map[string]float64, err error) {
	n := len(labels)
	if dim < 1 || len(vecs) != n*dim {
		return 0, nil, fmt.Errorf("imagebench: precision: %d floats for %d rows of %d", len(vecs), n, dim)
	}
	if k < 1 || n < k+1 {
		return 0, nil, fmt.Errorf("imagebench: precision@%d needs more than %d rows, have %d", k, k, n)
	}
	hits, err := ivf.BruteForce(ivf.IP, dim, vecs, vecs, k+1, 0, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("imagebench: precision: %w", err)
	}
	sums, counts := map[string]float64{}, map[string]int{}
	total := 0.0
	for q, row := range hits {
		same, taken := 0, 0
		for _, h := range row {
			if int(h.ID) == q || taken == k {
				continue
			}
			taken++
			if labels[h.ID] == labels[q] {
				same++
			}
		}
		p := float64(same) / float64(k)
		total += p
		sums[labels[q]] += p
		counts[labels[q]]++
	}
	perLabel = make(map[string]float64, len(sums))
	for l, s := range sums {
		perLabel[l] = s / float64(counts[l])
	}
	return total / float64(n), perLabel, nil
}

// QualityOptions configure RunQuality.
type QualityOptions struct {
	// Files are the images, labelled by category. Required.
	Files []File
	// Methods are compared on the same files: a file that fails in any
	// of them is left out of all. Required.
	Methods []Method
	// K is the k of precision@k; default 10.
	K int
	// CacheDir keeps each method's vectors (VectorCache); "" turns the
	// cache off.
	CacheDir string
	// Dedupe leaves out every file whose content (SHA-256) equals that
	// of a file with a smaller path, so that no query finds an exact copy
	// of itself. openclipart-png holds about 1,200 such copies (the same
	// picture under two names or in two folders).
	Dedupe bool
	// JSON prints one JSON object per method instead of tables.
	JSON bool
}

// QualityRow is one method's result.
type QualityRow struct {
	Method      string             `json:"method"`
	Images      int                `json:"images"`
	Categories  int                `json:"categories"`
	K           int                `json:"k"`
	Precision   float64            `json:"precision"`       // mean over every query image
	Macro       float64            `json:"precision_macro"` // mean over the categories of their queries' mean
	PerCategory map[string]float64 `json:"per_category"`
	Duplicates  int                `json:"duplicates_left_out"` // files whose content an earlier path has (Dedupe)
	Cached      int                `json:"cached"`              // vectors read from the cache
	Embedded    int                `json:"embedded"`            // vectors computed in this run
	Failed      int                `json:"failed"`              // files this method could not use
	Seconds     float64            `json:"vectors_s"`
	Load1       float64            `json:"load1"` // 1-minute load average after the vectors
}

// RunQuality computes every method's vectors (through the cache), then
// precision@k of each on the files that every method could use, and
// prints the results to out; progress and failures go to log.
func RunQuality(ctx context.Context, o QualityOptions, out, log io.Writer) ([]QualityRow, error) {
	if o.K == 0 {
		o.K = 10
	}
	if len(o.Files) == 0 || len(o.Methods) == 0 {
		return nil, fmt.Errorf("imagebench: quality needs files and methods")
	}
	rows := make([]QualityRow, len(o.Methods))
	all := make([][][]float32, len(o.Methods))
	var sums [][32]byte
	bad := make([]bool, len(o.Files))
	for mi, m := range o.Methods {
		cache, err := OpenVectorCache(o.CacheDir, m.Key, m.Dim)
		if err != nil {
			return nil, err
		}
		if n := cache.Len(); n > 0 {
			fmt.Fprintf(log, "%s: %d vectors in the cache %s\n", m.Name, n, cache.path)
		}
		bar := progressbar.NewOptions(len(o.Files),
			progressbar.OptionSetWriter(log),
			progressbar.OptionSetDescription(m.Name),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString("img"),
			progressbar.OptionThrottle(500*time.Millisecond),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(log) }),
		)
		vecs, errs, st, err := Vectors(ctx, o.Files, m, cache, func() { bar.Add(1) })
		bar.Finish()
		if cerr := cache.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, err
		}
		for i, e := range errs {
			if e != nil {
				bad[i] = true
				fmt.Fprintf(log, "%s: left out: %v\n", m.Name, e)
			}
		}
		all[mi] = vecs
		if sums == nil {
			sums = st.Sums
		}
		rows[mi] = QualityRow{Method: m.Name, K: o.K, Cached: st.Cached, Embedded: st.Computed, Failed: st.Failed,
			Seconds: st.Seconds, Load1: LoadAvg()}
		fmt.Fprintf(log, "%s: %d vectors computed, %d from the cache, %d failed, in %.1f s (load %.2f)\n",
			m.Name, st.Computed, st.Cached, st.Failed, st.Seconds, rows[mi].Load1)
	}
	dups := 0
	if o.Dedupe {
		first := map[[32]byte]int{}
		for i, f := range o.Files {
			if bad[i] {
				continue
			}
			sum := sums[i]
			if j, ok := first[sum]; ok {
				dups++
				if f.Path < o.Files[j].Path {
					bad[j], first[sum] = true, i
				} else {
					bad[i] = true
				}
				continue
			}
			first[sum] = i
		}
		fmt.Fprintf(log, "%d duplicate files left out\n", dups)
	}
	var labels []string
	for i, f := range o.Files {
		if !bad[i] {
			labels = append(labels, f.Label)
		}
	}
	cats := map[string]int{}
	for _, l := range labels {
		cats[l]++
	}
	for mi, m := range o.Methods {
		flat := make([]float32, 0, len(labels)*m.Dim)
		for i, v := range all[mi] {
			if !bad[i] {
				flat = append(flat, v...)
			}
		}
		p, per, err := PrecisionAtK(flat, m.Dim, labels, o.K)
		if err != nil {
			return nil, err
		}
		r := &rows[mi]
		r.Images, r.Categories, r.Precision, r.PerCategory, r.Duplicates = len(labels), len(cats), p, per, dups
		for _, x := range per {
			r.Macro += x / float64(len(per))
		}
		if o.JSON {
			b, _ := json.Marshal(r)
			fmt.Fprintf(out, "%s\n", b)
		}
	}
	if o.JSON {
		return rows, nil
	}
	fmt.Fprintf(out, "%-20s %7s %10s %13s %9s %8s %8s %6s\n", "method", "images", "categories", "precision@"+fmt.Sprint(o.K), "macro", "embedded", "cached", "load")
	for _, r := range rows {
		fmt.Fprintf(out, "%-20s %7d %10d %13.4f %9.4f %8d %8d %6.2f\n", r.Method, r.Images, r.Categories, r.Precision, r.Macro, r.Embedded, r.Cached, r.Load1)
	}
	fmt.Fprintf(out, "\n%-20s %6s", "category", "images")
	for _, r := range rows {
		fmt.Fprintf(out, " %20s", r.Method)
	}
	fmt.Fprintln(out)
	names := make([]string, 0, len(cats))
	for c := range cats {
		names = append(names, c)
	}
	slices.Sort(names)
	for _, c := range names {
		fmt.Fprintf(out, "%-20s %6d", c, cats[c])
		for _, r := range rows {
			fmt.Fprintf(out, " %20.4f", r.PerCategory[c])
		}
		fmt.Fprintln(out)
	}
	return rows, nil
}
