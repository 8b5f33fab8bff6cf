package bench

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sentinel errors of the data side. Callers test them with errors.Is.
var (
	// ErrFormat marks a malformed data file: a bad header, a truncated
	// record, inconsistent dimensions, NaN or Inf components.
	ErrFormat = errors.New("bench: malformed data file")
	// ErrDatasetMissing marks a built-in dataset whose files are not
	// installed; the message says how to install them.
	ErrDatasetMissing = errors.New("bench: dataset not installed")
	// ErrUnknownDataset marks a dataset name that is not built in.
	ErrUnknownDataset = errors.New("bench: unknown dataset")
)

// formatError is a format error whose message says it all; it matches
// ErrFormat under errors.Is without repeating its text.
type formatError struct{ msg string }

func (e *formatError) Error() string        { return e.msg }
func (e *formatError) Is(target error) bool { return target == ErrFormat }

func formatErr(format string, args ...any) error {
	return &formatError{fmt.Sprintf(format, args...)}
}

// Dataset is a benchmark's vectors: base rows to index and query rows to
// search with, row-major with Dim columns. Base row i has id i.
type Dataset struct {
	Name          string
	Dim           int
	Base, Queries []float32
	// GT, when not nil, holds for each query the ids of its nearest base
	// rows, best first (from a ground-truth file). GroundTruth fills in
	// what is missing.
	GT [][]int32
}

// NumBase is the number of base rows.
func (d *Dataset) NumBase() int { return len(d.Base) / d.Dim }

// NumQueries is the number of query rows.
func (d *Dataset) NumQueries() int { return len(d.Queries) / d.Dim }

// Query returns query row i, sharing d's memory.
func (d *Dataset) Query(i int) []float32 { return d.Queries[i*d.Dim : (i+1)*d.Dim : (i+1)*d.Dim] }

// FirstQueries returns a dataset with only the first n queries (and their
// ground truth), for quick runs. It shares d's memory. n ≤ 0 or n beyond
// the number of queries keeps them all.
func (d *Dataset) FirstQueries(n int) *Dataset {
	c := *d
	if n <= 0 || n >= d.NumQueries() {
		return &c
	}
	c.Queries = d.Queries[: n*d.Dim : n*d.Dim]
	if len(d.GT) > n {
		c.GT = d.GT[:n:n]
	}
	return &c
}

// check reports a dataset whose slices are not whole rows.
func (d *Dataset) check() error {
	if d.Dim < 1 || d.Dim > MaxVecsDim {
		return fmt.Errorf("bench: dataset %s: dimension %d out of range 1..%d", d.Name, d.Dim, MaxVecsDim)
	}
	if len(d.Base) == 0 || len(d.Base)%d.Dim != 0 || len(d.Queries) == 0 || len(d.Queries)%d.Dim != 0 {
		return fmt.Errorf("bench: dataset %s: %d base and %d query values are not whole rows of %d", d.Name, len(d.Base), len(d.Queries), d.Dim)
	}
	return nil
}

// Built-in datasets.
const (
	// FMNIST is Fashion-MNIST from the Debian package dataset-fashion-mnist:
	// the 60,000 training images are the base, the 10,000 test images the
	// queries, 784 pixel values 0..255 each. This is the data of
	// ann-benchmarks' fashion-mnist-784-euclidean.
	FMNIST = "fmnist"
	// FMNISTRot is FMNIST with base and queries rotated by
	// RandomRotation(784, FMNISTRotSeed). Distances are unchanged, but the
	// integer pixel grid is gone, so SQ8 loses information on it as it does
	// on real features.
	FMNISTRot = "fmnist-rot"
)

// FMNISTRotSeed is the seed of the rotation of FMNISTRot. Changing it
// changes the dataset: keep it.
const FMNISTRotSeed int64 = 784

// DefaultFMNISTDir is where Debian's dataset-fashion-mnist installs the
// Fashion-MNIST files.
const DefaultFMNISTDir = "/usr/share/datasets/fashion-mnist"

const fmnistHint = "install it with: sudo apt-get install dataset-fashion-mnist (or run scripts/setup.sh)"

// BuiltinDatasets lists the names LoadDataset knows.
func BuiltinDatasets() []string { return []string{FMNIST, FMNISTRot} }

// DatasetSpec says which dataset to load: a built-in one by Name, or files
// by path.
type DatasetSpec struct {
	// Name is a built-in dataset (FMNIST, FMNISTRot) when Base is empty;
	// with files it only labels reports (default: Base's file name without
	// extension).
	Name string
	// Base and Query are .fvecs or .bvecs files; GT, optional, an .ivecs
	// file of nearest-neighbour ids per query.
	Base, Query, GT string
	// Dir is where the Fashion-MNIST files are. Default DefaultFMNISTDir.
	Dir string
}

// ParseDatasetSpec parses a command-line dataset argument: a built-in name,
// or "BASE,QUERY[,GT]" file paths.
func ParseDatasetSpec(s string) (DatasetSpec, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, ",") {
		for _, n := range BuiltinDatasets() {
			if s == n {
				return DatasetSpec{Name: s}, nil
			}
		}
		return DatasetSpec{}, fmt.Errorf("%w: %q (want one of %s, or BASE.fvecs,QUERY.fvecs[,GT.ivecs])", ErrUnknownDataset, s, strings.Join(BuiltinDatasets(), ", "))
	}
	parts := strings.Split(s, ",")
	if len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return DatasetSpec{}, fmt.Errorf("%w: %q (want BASE.fvecs,QUERY.fvecs[,GT.ivecs])", ErrUnknownDataset, s)
	}
	spec := DatasetSpec{Base: parts[0], Query: parts[1]}
	if len(parts) == 3 {
		spec.GT = parts[2]
	}
	return spec, nil
}

// LoadDataset loads the dataset spec names. A built-in dataset that is not
// installed gives an error wrapping ErrDatasetMissing that says how to
// install it. Files must agree: base and query of one dimension, a GT row
// per query with ids of base rows.
func LoadDataset(spec DatasetSpec) (*Dataset, error) {
	if spec.Base != "" || spec.Query != "" {
		return loadFiles(spec)
	}
	switch spec.Name {
	case FMNIST, FMNISTRot:
		return loadFMNIST(spec)
	}
	return nil, fmt.Errorf("%w: %q (have %s, or give base and query files)", ErrUnknownDataset, spec.Name, strings.Join(BuiltinDatasets(), ", "))
}

func loadFMNIST(spec DatasetSpec) (*Dataset, error) {
	dir := spec.Dir
	if dir == "" {
		dir = DefaultFMNISTDir
	}
	base := filepath.Join(dir, "train-images-idx3-ubyte.gz")
	query := filepath.Join(dir, "t10k-images-idx3-ubyte.gz")
	for _, p := range []string{base, query} {
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s (%s is missing); %s", ErrDatasetMissing, spec.Name, p, fmnistHint)
		}
	}
	ds := &Dataset{Name: spec.Name}
	var err error
	var qdim int
	if ds.Base, ds.Dim, err = ReadIDXImages(base); err != nil {
		return nil, err
	}
	if ds.Queries, qdim, err = ReadIDXImages(query); err != nil {
		return nil, err
	}
	if qdim != ds.Dim {
		return nil, formatErr("bench: %s: %d pixels per image, but %s has %d", query, qdim, base, ds.Dim)
	}
	if spec.Name == FMNISTRot {
		r := RandomRotation(ds.Dim, FMNISTRotSeed)
		if err := Rotate(ds.Base, ds.Dim, r); err != nil {
			return nil, err
		}
		if err := Rotate(ds.Queries, ds.Dim, r); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

func loadFiles(spec DatasetSpec) (*Dataset, error) {
	if spec.Base == "" || spec.Query == "" {
		return nil, fmt.Errorf("bench: dataset files: need both base (%q) and query (%q)", spec.Base, spec.Query)
	}
	ds := &Dataset{Name: spec.Name}
	if ds.Name == "" {
		ds.Name = strings.TrimSuffix(filepath.Base(spec.Base), filepath.Ext(spec.Base))
	}
	var err error
	var qdim int
	if ds.Base, ds.Dim, err = ReadVectorsFile(spec.Base); err != nil {
		return nil, err
	}
	if ds.Queries, qdim, err = ReadVectorsFile(spec.Query); err != nil {
		return nil, err
	}
	if qdim != ds.Dim {
		return nil, formatErr("bench: %s: dimension %d, but %s has %d", spec.Query, qdim, spec.Base, ds.Dim)
	}
	if spec.GT == "" {
		return ds, nil
	}
	flat, k, err := ReadIvecsFile(spec.GT)
	if err != nil {
		return nil, err
	}
	nq, nb := ds.NumQueries(), ds.NumBase()
	if len(flat)/k != nq {
		return nil, formatErr("bench: %s: %d rows, but %s has %d queries", spec.GT, len(flat)/k, spec.Query, nq)
	}
	for i, id := range flat {
		if id < 0 || int(id) >= nb {
			return nil, formatErr("bench: %s: record %d: id %d out of range 0..%d", spec.GT, i/k, id, nb-1)
		}
	}
	ds.GT = make([][]int32, nq)
	for i := range ds.GT {
		ds.GT[i] = flat[i*k : i*k+k : i*k+k]
	}
	return ds, nil
}
