package imagebench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
)

// File is an image file and its label (its category, for quality).
type File struct {
	Path  string
	Label string
}

// Sample returns n files of files chosen by a permutation seeded with
// seed (all of them, permuted, when n ≤ 0 or n ≥ len(files)). A smaller
// n with the same seed gives a prefix of a larger one, so caches built
// for one serve the other. files is not modified.
func Sample(files []File, n int, seed uint64) []File {
	r := rand.New(rand.NewPCG(seed, 0x696d616765))
	perm := r.Perm(len(files))
	if n <= 0 || n > len(files) {
		n = len(files)
	}
	out := make([]File, n)
	for i := range out {
		out[i] = files[perm[i]]
	}
	return out
}

// ReadAll reads every file into memory.
func ReadAll(files []File) ([][]byte, error) {
	out := make([][]byte, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f.Path)
		if err != nil {
			return nil, fmt.Errorf("imagebench: %w", err)
		}
		out[i] = b
	}
	return out, nil
}

// LoadAvg is the 1-minute load average from /proc/loadavg, or -1 where
// there is none. Every figure of these benchmarks is reported beside it:
// on a shared machine it says how much of the CPU the run had.
func LoadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
