/*
 * sq8.h — the SQ8 distance arithmetic of package cuda, in one place.
 *
 * The CUDA kernels (sq8.cu, compiled to PTX by nvcc) and the CPU harness
 * (package cuda/hostmath, compiled by gcc through cgo) both include this
 * file, so the tests that run without a GPU exercise the very expressions
 * the GPU evaluates. Under nvcc (__CUDACC__ defined) the functions are
 * __host__ __device__; under a plain C compiler the guard below makes
 * those qualifiers disappear and they are ordinary static inline C.
 *
 * Bit-exactness: every sum is evaluated in a fixed order (per lane, in
 * dimension order; then the lanes of a vector combined by the xor butterfly
 * that __shfl_xor_sync performs, emulated by sq8_butterfly on the host), and
 * both compilers are told not to contract a*b+c into fused multiply-adds
 * (nvcc -fmad=false, gcc -ffp-contract=off). So the host harness and the
 * GPU produce the same float32 bits for the same inputs.
 *
 * Layout facts shared with Go (cuda/layout.go mirrors them; the hostmath
 * tests check that they agree):
 *   - a code row is padded to dp = sq8_pad(dim) bytes (a multiple of 16)
 *     with zero codes; the padded dimensions have Min = Step = 0 and query
 *     and centroid components 0, so they add exactly 0 to every distance;
 *   - each vector is scored by sq8_lanes(dp) cooperating threads; lane l
 *     reads the 16-byte chunks l, l+lanes, l+2·lanes, ... of the row.
 */
#ifndef LOOKALIKE_SQ8_H
#define LOOKALIKE_SQ8_H

#ifdef __CUDACC__
#define SQ8_HD static __host__ __device__ __forceinline__
#else
#include <string.h>
#define SQ8_HD static inline
#endif

/* Widest group of lanes that scores one vector (one warp). */
#define SQ8_MAX_LANES 32
/* Bytes of codes one lane reads at a time. */
#define SQ8_CHUNK 16

/* Descriptors the host writes into device memory (little endian). */
typedef struct sq8_probe_desc {
	unsigned long long codes; /* device address of the list's code rows */
	unsigned long long ids;   /* device address of its uint64 ids */
	unsigned long long tomb;  /* device address of its deleted bitmap, 0: none */
	int n;                    /* entries to consider (the device-held prefix) */
	int list;                 /* list number: row of the centroid table */
	float base;               /* IP/cosine: probe distance − q·Min; unused for L2 */
	int pad;
} sq8_probe_desc; /* 40 bytes */

typedef struct sq8_block_desc {
	int query;  /* row of the query table */
	int probe;  /* first probe (index into the probe table) */
	int offset; /* first entry within that probe's list */
	int count;  /* entries to scan, continuing into the following probes */
	int slot;   /* partial result slot */
	int k;      /* hits wanted */
} sq8_block_desc; /* 24 bytes */

typedef struct sq8_merge_desc {
	int first;  /* first partial slot of the query */
	int nslots; /* number of its slots (0: no GPU entries) */
	int k;      /* hits wanted */
	int out;    /* output row */
} sq8_merge_desc; /* 16 bytes */

/* sq8_pad is the padded row length: dim rounded up to SQ8_CHUNK. */
SQ8_HD int sq8_pad(int dim) { return (dim + SQ8_CHUNK - 1) / SQ8_CHUNK * SQ8_CHUNK; }

/* sq8_lanes is the number of lanes that score one vector of dp codes: the
 * smallest power of two whose chunks cover the row, at most a warp. */
SQ8_HD int sq8_lanes(int dp) {
	int w = 1;
	while (w < SQ8_MAX_LANES && w * SQ8_CHUNK < dp) w <<= 1;
	return w;
}

/* sq8_svec is the length, in floats, of the IP weight vector w of dp
 * components in the scan kernel's shared memory, and sq8_sidx where
 * component j sits: one float of padding after every 32. Lane l of a
 * warp reads component 16·l + m of its chunk at the same time as the other
 * lanes; unpadded, those 32 reads fall on two banks (a 16-way conflict, the
 * kernel's main cost at 784-d); padded, on 32 different ones
 * ((16·l + l/2 + m) mod 32). The host harness keeps plain arrays: there
 * sq8_sidx is the identity. Only addresses change, never the order of a
 * sum. */
SQ8_HD int sq8_svec(int dp) { return dp + (dp >> 5); }
SQ8_HD int sq8_sidx(int j) {
#ifdef __CUDA_ARCH__
	return j + (j >> 5);
#else
	return j;
#endif
}

/* L2 keeps a_j and Step_j side by side, a pair of floats per component,
 * so that a lane reads both with one 8-byte shared load (two 4-byte loads
 * per code byte before). sq8_spairs is the length of that table in pairs,
 * sq8_pidx where component j's pair sits: one pair of padding after every
 * 16. A warp's 8-byte loads are served a half-warp at a time; lane l
 * reads pair 17·l + m, words 34·l + 2m and the next, on banks 2·l + 2m
 * and 2·l + 2m + 1: sixteen lanes, 32 different banks. On the host the
 * table is dense (sq8_pidx the identity); as ever only addresses differ. */
SQ8_HD int sq8_spairs(int dp) { return dp + (dp >> 4); }
SQ8_HD int sq8_pidx(int j) {
#ifdef __CUDA_ARCH__
	return j + (j >> 4);
#else
	return j;
#endif
}

/* sq8_less orders hits best first: smaller distance, then smaller id
 * (ivf's order). */
SQ8_HD int sq8_less(float d1, unsigned long long id1, float d2, unsigned long long id2) {
	return d1 < d2 || (d1 == d2 && id1 < id2);
}

/* L2 (residual): a_j = q_j − centroid_j − Min_j, evaluated left to right
 * as ivf's CPU scanner does. */
SQ8_HD float sq8_l2_prep(float q, float c, float mn) { return q - c - mn; }

/* IP / cosine: w_j = q_j·Step_j. */
SQ8_HD float sq8_ip_prep(float q, float step) { return q * step; }

/* IP / cosine: dist = base − Σ_j w_j·code_j, base = −q·centroid − q·Min. */
SQ8_HD float sq8_ip_finish(float base, float sum) { return base - sum; }

/* sq8_load16 reads 16 code bytes as four little-endian words. p is 16-byte
 * aligned on the device (rows are dp bytes, dp a multiple of 16, and every
 * list starts 256-byte aligned). */
SQ8_HD void sq8_load16(const unsigned char *p, unsigned int w[4]) {
#ifdef __CUDA_ARCH__
	uint4 v = *(const uint4 *)p;
	w[0] = v.x;
	w[1] = v.y;
	w[2] = v.z;
	w[3] = v.w;
#else
	memcpy(w, p, 16);
#endif
}

/* sq8_code is byte b (0..3) of the little-endian word x, as a float:
 * exactly the integer 0..255 either way. On the device the byte goes into
 * the low mantissa bits of 2^23 (one byte permute) and 2^23 is subtracted,
 * instead of an integer-to-float conversion, which runs on a quarter-rate
 * pipe and was the scan's busiest unit with the shifts and masks around
 * it (ncu, docs/cuda.md). The value is the same, so no sum changes. */
SQ8_HD float sq8_code(unsigned int x, int b) {
#ifdef __CUDA_ARCH__
	return __uint_as_float(__byte_perm(x, 0x4B000000u, 0x7440u | (unsigned int)b)) - 8388608.0f;
#else
	return (float)((x >> (8 * b)) & 0xffu);
#endif
}

/* One L2 term: (a − s·code)². */
SQ8_HD float sq8_l2_term(float a, float s, float code) {
	float t = a - s * code;
	return t * t;
}

/* sq8_pair reads pair m of a table of (a, Step) pairs: one 8-byte load
 * on the device. */
#ifdef __CUDACC__
typedef float2 sq8_f2;
#else
typedef struct sq8_f2 {
	float x, y;
} sq8_f2;
#endif
SQ8_HD sq8_f2 sq8_pair(const sq8_f2 *p, int m) { return p[m]; }

/* sq8_l2_lane is lane's share of Σ_j (a_j − s_j·code_j)² over the row, as
 * (a_j, s_j) = as[sq8_pidx(j)]: its chunks in order, each chunk's 16 terms
 * in dimension order. A chunk starts at a multiple of 16, so its 16
 * components never straddle a padding pair: they sit at sq8_pidx(i) +
 * 0..15. */
SQ8_HD float sq8_l2_lane(const sq8_f2 *as, const unsigned char *row, int dp, int lane, int lanes) {
	float acc = 0.0f;
	for (int i = lane * SQ8_CHUNK; i < dp; i += lanes * SQ8_CHUNK) {
		unsigned int w[4];
		sq8_load16(row + i, w);
		const sq8_f2 *pc = as + sq8_pidx(i);
		for (int b = 0; b < 4; b++) {
			unsigned int x = w[b];
			const int m = 4 * b;
			sq8_f2 p0 = sq8_pair(pc, m), p1 = sq8_pair(pc, m + 1), p2 = sq8_pair(pc, m + 2), p3 = sq8_pair(pc, m + 3);
			acc += sq8_l2_term(p0.x, p0.y, sq8_code(x, 0));
			acc += sq8_l2_term(p1.x, p1.y, sq8_code(x, 1));
			acc += sq8_l2_term(p2.x, p2.y, sq8_code(x, 2));
			acc += sq8_l2_term(p3.x, p3.y, sq8_code(x, 3));
		}
	}
	return acc;
}

/* sq8_ip_lane is lane's share of Σ_j w_j·code_j, in the same order. */
SQ8_HD float sq8_ip_lane(const float *w, const unsigned char *row, int dp, int lane, int lanes) {
	float acc = 0.0f;
	for (int i = lane * SQ8_CHUNK; i < dp; i += lanes * SQ8_CHUNK) {
		unsigned int c[4];
		sq8_load16(row + i, c);
		const float *wc = w + sq8_sidx(i);
		for (int b = 0; b < 4; b++) {
			unsigned int x = c[b];
			const int m = 4 * b;
			acc += wc[m] * sq8_code(x, 0);
			acc += wc[m + 1] * sq8_code(x, 1);
			acc += wc[m + 2] * sq8_code(x, 2);
			acc += wc[m + 3] * sq8_code(x, 3);
		}
	}
	return acc;
}

/* sq8_butterfly combines per-lane partial sums p[0..lanes) the way the
 * kernel's `v += __shfl_xor_sync(mask, v, o)` loop does (o = lanes/2, ...,
 * 1): every lane ends with the same bits, returned from lane 0. */
SQ8_HD float sq8_butterfly(float *p, int lanes) {
	for (int o = lanes / 2; o > 0; o /= 2) {
		float t[SQ8_MAX_LANES];
		for (int l = 0; l < lanes; l++) t[l] = p[l] + p[l ^ o];
		for (int l = 0; l < lanes; l++) p[l] = t[l];
	}
	return p[0];
}

/* sq8_l2_dist is the whole L2 distance of one row as the GPU computes it;
 * as holds dp pairs (a_j, Step_j). */
SQ8_HD float sq8_l2_dist(const sq8_f2 *as, const unsigned char *row, int dp, int lanes) {
	float p[SQ8_MAX_LANES];
	for (int l = 0; l < lanes; l++) p[l] = sq8_l2_lane(as, row, dp, l, lanes);
	return sq8_butterfly(p, lanes);
}

/* sq8_ip_dist is the whole IP/cosine distance of one row as the GPU
 * computes it. */
SQ8_HD float sq8_ip_dist(float base, const float *w, const unsigned char *row, int dp, int lanes) {
	float p[SQ8_MAX_LANES];
	for (int l = 0; l < lanes; l++) p[l] = sq8_ip_lane(w, row, dp, l, lanes);
	return sq8_ip_finish(base, sq8_butterfly(p, lanes));
}

/* sq8_deleted reports whether bit e of a deleted bitmap is set. */
SQ8_HD int sq8_deleted(const unsigned int *tomb, int e) {
	return tomb != 0 && ((tomb[e >> 5] >> (e & 31)) & 1u) != 0;
}

#endif /* LOOKALIKE_SQ8_H */
