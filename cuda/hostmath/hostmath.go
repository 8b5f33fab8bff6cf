//go:build cgo

package hostmath

/*
#cgo CFLAGS: -O2 -std=c11
// No fused multiply-adds: the GPU side is compiled with nvcc -fmad=false,
// and the two must round alike. (cgo does not accept -ffp-contract=off.)
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
// sq8.h is a symlink to ../kernels/sq8.h: the go command tracks the headers
// of the package directory only, so a change to the kernels' header
// rebuilds this package.
#include "sq8.h"

// The kernel keeps (a_j, Step_j) as pairs; as is dp of them, dense.
static void hm_l2_rows(const float *a, const float *s, sq8_f2 *as, const unsigned char *codes, int n, int dp, int lanes, float *out) {
	for (int j = 0; j < dp; j++) {
		as[j].x = a[j];
		as[j].y = s[j];
	}
	for (int i = 0; i < n; i++) out[i] = sq8_l2_dist(as, codes + (long)i * dp, dp, lanes);
}

static void hm_ip_rows(float base, const float *w, const unsigned char *codes, int n, int dp, int lanes, float *out) {
	for (int i = 0; i < n; i++) out[i] = sq8_ip_dist(base, w, codes + (long)i * dp, dp, lanes);
}

static void hm_l2_prep(const float *q, const float *c, const float *mn, float *a, int n) {
	for (int j = 0; j < n; j++) a[j] = sq8_l2_prep(q[j], c[j], mn[j]);
}

static void hm_ip_prep(const float *q, const float *step, float *w, int n) {
	for (int j = 0; j < n; j++) w[j] = sq8_ip_prep(q[j], step[j]);
}

static int hm_pad(int d) { return sq8_pad(d); }
static int hm_lanes(int dp) { return sq8_lanes(dp); }
static int hm_svec(int dp) { return sq8_svec(dp); }
static int hm_spairs(int dp) { return sq8_spairs(dp); }
static int hm_less(float d1, unsigned long long i1, float d2, unsigned long long i2) { return sq8_less(d1, i1, d2, i2); }
static int hm_deleted(const unsigned int *tomb, int e) { return sq8_deleted(tomb, e); }
*/
import "C"

import (
	"fmt"
	"unsafe"
)

// Sizes of the descriptor structs as the C compiler lays them out.
const (
	ProbeDescBytes = int(C.sizeof_sq8_probe_desc)
	BlockDescBytes = int(C.sizeof_sq8_block_desc)
	MergeDescBytes = int(C.sizeof_sq8_merge_desc)
	Chunk          = int(C.SQ8_CHUNK)
	MaxLanes       = int(C.SQ8_MAX_LANES)
)

// Pad is sq8_pad: the padded row length of dim codes.
func Pad(dim int) int { return int(C.hm_pad(C.int(dim))) }

// SVec is sq8_svec: the padded length of a per-dimension vector of dp
// components in the scan kernel's shared memory.
func SVec(dp int) int { return int(C.hm_svec(C.int(dp))) }

// SPairs is sq8_spairs: the padded length, in pairs of floats, of the
// (a, Step) table of dp components in the scan kernel's shared memory.
func SPairs(dp int) int { return int(C.hm_spairs(C.int(dp))) }

// Lanes is sq8_lanes: the threads that score one row of dp codes.
func Lanes(dp int) int { return int(C.hm_lanes(C.int(dp))) }

// Less is sq8_less: the kernels' order of hits.
func Less(d1 float32, id1 uint64, d2 float32, id2 uint64) bool {
	return C.hm_less(C.float(d1), C.ulonglong(id1), C.float(d2), C.ulonglong(id2)) != 0
}

// Deleted is sq8_deleted: bit e of a deleted bitmap (nil: none).
func Deleted(tomb []uint32, e int) bool {
	if tomb == nil {
		return false
	}
	return C.hm_deleted((*C.uint)(unsafe.Pointer(&tomb[0])), C.int(e)) != 0
}

// PrepL2 writes a_j = q_j − c_j − min_j (sq8_l2_prep) for j < len(a).
func PrepL2(q, c, mn, a []float32) {
	n := len(a)
	if n == 0 {
		return
	}
	_, _, _ = q[n-1], c[n-1], mn[n-1]
	C.hm_l2_prep(fp(q), fp(c), fp(mn), fp(a), C.int(n))
}

// PrepIP writes w_j = q_j·step_j (sq8_ip_prep) for j < len(w).
func PrepIP(q, step, w []float32) {
	n := len(w)
	if n == 0 {
		return
	}
	_, _ = q[n-1], step[n-1]
	C.hm_ip_prep(fp(q), fp(step), fp(w), C.int(n))
}

// L2Rows scores len(out) padded rows of dp codes as the GPU does
// (sq8_l2_dist with lanes threads per row). a and s hold dp floats.
func L2Rows(a, s []float32, codes []byte, dp, lanes int, out []float32) {
	checkRows(len(a), len(s), len(codes), dp, lanes, len(out))
	if len(out) == 0 {
		return
	}
	as := make([]float32, 2*dp)
	C.hm_l2_rows(fp(a), fp(s), (*C.sq8_f2)(unsafe.Pointer(&as[0])), (*C.uchar)(unsafe.Pointer(&codes[0])), C.int(len(out)), C.int(dp), C.int(lanes), fp(out))
}

// IPRows scores len(out) padded rows as the GPU does (sq8_ip_dist). w
// holds dp floats.
func IPRows(base float32, w []float32, codes []byte, dp, lanes int, out []float32) {
	checkRows(len(w), len(w), len(codes), dp, lanes, len(out))
	if len(out) == 0 {
		return
	}
	C.hm_ip_rows(C.float(base), fp(w), (*C.uchar)(unsafe.Pointer(&codes[0])), C.int(len(out)), C.int(dp), C.int(lanes), fp(out))
}

func checkRows(na, ns, ncodes, dp, lanes, n int) {
	if dp <= 0 || dp%Chunk != 0 || na < dp || ns < dp || ncodes < n*dp || lanes < 1 || lanes > MaxLanes || lanes&(lanes-1) != 0 {
		panic(fmt.Sprintf("hostmath: bad rows: len(a)=%d len(s)=%d len(codes)=%d dp=%d lanes=%d n=%d", na, ns, ncodes, dp, lanes, n))
	}
}

func fp(x []float32) *C.float { return (*C.float)(unsafe.Pointer(&x[0])) }
