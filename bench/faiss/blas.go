//go:build faiss

package faiss

import (
	"bufio"
	"os"
	"strings"
)

// BLASLibraries lists the BLAS and LAPACK shared libraries this process
// has loaded (from /proc/self/maps), so a report can show whether FAISS's
// k-means runs on OpenBLAS or on the reference BLAS, which is ~60× slower.
// Resolved through the alternatives system, OpenBLAS's paths contain
// "openblas". It returns nil where /proc is not available.
func BLASLibraries() []string {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var libs []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 {
			continue
		}
		path := fields[len(fields)-1]
		base := path[strings.LastIndexByte(path, '/')+1:]
		if (strings.Contains(base, "blas") || strings.Contains(base, "lapack")) && !seen[path] {
			seen[path] = true
			libs = append(libs, path)
		}
	}
	return libs
}

// UsesOpenBLAS reports whether the BLAS this process loaded is OpenBLAS.
func UsesOpenBLAS() bool {
	for _, l := range BLASLibraries() {
		if strings.Contains(l, "openblas") {
			return true
		}
	}
	return false
}
