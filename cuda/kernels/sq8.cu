/*
 * sq8.cu — GPU scan kernels for IVF-SQ8 search (package cuda).
 *
 * Compiled to PTX by `make ptx` (scripts/cuda.mk) for sm_80 and sm_90; the
 * PTX is committed under cuda/ptx and loaded at run time with the CUDA
 * driver API. The distance arithmetic is in sq8.h, shared with the CPU
 * harness. docs/cuda.md describes the design; in short:
 *
 *   sq8_scan   one thread block per block descriptor: a query and a
 *              contiguous run of entries of its probed lists. Groups of
 *              sq8_lanes(dp) threads score one code row each (16-byte loads,
 *              xor-shuffle reduction); survivors of the block's running
 *              threshold go to a shared-memory candidate buffer that is
 *              bitonic-sorted into the block's top k whenever it may fill.
 *              The block writes its k best (sorted) and their count to its
 *              partial slot.
 *   sq8_merge  one thread block per query: the same selection over the
 *              query's partial slots, written to the query's output row.
 *
 * Every scalar parameter is 64 bits wide: gorgonia.org/cu copies 8 bytes
 * per kernel parameter.
 */
#include "sq8.h"

#define SQ8_THREADS 256
/* Rows scored between two checks of the candidate buffer. */
#define SQ8_ROUND 256

typedef unsigned long long u64;

__device__ __forceinline__ float sq8_inf() { return __int_as_float(0x7f800000); }

/* Block-wide selection state, in shared memory. d/id hold buf entries:
 * [0, kp) the best so far, sorted; [kp, buf) candidates (unsorted, padded
 * with sentinels). */
struct sq8_top {
	float *d;
	u64 *id;
	int kp, buf, k;
};

__shared__ int sq8_ncand;          /* candidates in [kp, buf) */
__shared__ int sq8_nseen;          /* candidates accepted so far */
__shared__ float sq8_thr_d;        /* the k-th best (sentinel until k seen) */
__shared__ u64 sq8_thr_id;

__device__ void sq8_top_init(const sq8_top &t) {
	for (int i = threadIdx.x; i < t.buf; i += blockDim.x) {
		t.d[i] = sq8_inf();
		t.id[i] = ~0ull;
	}
	if (threadIdx.x == 0) {
		sq8_ncand = 0;
		sq8_nseen = 0;
		sq8_thr_d = sq8_inf();
		sq8_thr_id = ~0ull;
	}
	__syncthreads();
}

/* Offers one hit; any thread may call it. The caller guarantees room. */
__device__ __forceinline__ void sq8_top_offer(const sq8_top &t, float d, u64 id) {
	if (sq8_less(d, id, sq8_thr_d, sq8_thr_id)) {
		int pos = atomicAdd(&sq8_ncand, 1);
		t.d[t.kp + pos] = d;
		t.id[t.kp + pos] = id;
	}
}

/* Ascending bitonic sort of all buf entries by (d, id). */
__device__ void sq8_bitonic(const sq8_top &t) {
	for (int size = 2; size <= t.buf; size <<= 1) {
		for (int stride = size >> 1; stride > 0; stride >>= 1) {
			for (int x = threadIdx.x; x < t.buf / 2; x += blockDim.x) {
				int i = 2 * x - (x & (stride - 1));
				int j = i + stride;
				float di = t.d[i], dj = t.d[j];
				u64 ii = t.id[i], ij = t.id[j];
				int up = (i & size) == 0;
				if (sq8_less(dj, ij, di, ii) == up) {
					t.d[i] = dj;
					t.d[j] = di;
					t.id[i] = ij;
					t.id[j] = ii;
				}
			}
			__syncthreads();
		}
	}
}

/* Folds the candidates into the best; all threads call it after a
 * __syncthreads. */
__device__ void sq8_top_flush(const sq8_top &t) {
	int n = sq8_ncand;
	if (n == 0) return;
	sq8_bitonic(t);
	for (int i = t.kp + threadIdx.x; i < t.buf; i += blockDim.x) {
		t.d[i] = sq8_inf();
		t.id[i] = ~0ull;
	}
	if (threadIdx.x == 0) {
		sq8_nseen += n;
		sq8_ncand = 0;
		sq8_thr_d = t.d[t.k - 1];
		sq8_thr_id = t.id[t.k - 1];
	}
	__syncthreads();
}

/* Flushes when the next round could overflow the candidate area. Every
 * thread reads the count between two barriers: with one, a fast warp could
 * start the next round's offers (atomicAdd on the count) while a slow one
 * still reads it, and the two would disagree about flushing, a barrier
 * that not every thread reaches (compute-sanitizer's racecheck found it). */
__device__ __forceinline__ void sq8_top_maybe_flush(const sq8_top &t) {
	__syncthreads();
	const int n = sq8_ncand;
	__syncthreads();
	if (n > t.buf - t.kp - SQ8_ROUND) sq8_top_flush(t);
}

/* Writes the k best and their count to row r of the outputs. */
__device__ void sq8_top_write(const sq8_top &t, float *out_d, u64 *out_id, int *out_n, long long kmax, int r) {
	__syncthreads();
	sq8_top_flush(t);
	for (int i = threadIdx.x; i < t.k; i += blockDim.x) {
		out_d[(long long)r * kmax + i] = t.d[i];
		out_id[(long long)r * kmax + i] = t.id[i];
	}
	if (threadIdx.x == 0) out_n[r] = min(t.k, sq8_nseen);
}

extern "C" __global__ void __launch_bounds__(SQ8_THREADS)
sq8_scan(const float *__restrict__ queries,   /* nq × dp */
         const float *__restrict__ centroids, /* nlist × dp */
         const float *__restrict__ vmin,      /* dp */
         const float *__restrict__ vstep,     /* dp */
         const sq8_probe_desc *__restrict__ probes,
         const sq8_block_desc *__restrict__ blocks,
         float *__restrict__ out_d,           /* slots × kmax */
         u64 *__restrict__ out_id,            /* slots × kmax */
         int *__restrict__ out_n,             /* slots */
         long long dp_, long long l2_, long long lanes_, long long kmax, long long kp_, long long buf_)
{
	extern __shared__ __align__(16) unsigned char sq8_smem[];
	const int dp = (int)dp_, lanes = (int)lanes_;
	const bool l2 = l2_ != 0;
	const sq8_block_desc b = blocks[blockIdx.x];
	sq8_top t;
	t.kp = (int)kp_;
	t.buf = (int)buf_;
	t.k = b.k;
	t.id = (u64 *)sq8_smem;
	t.d = (float *)(t.id + t.buf);
	/* L2: the (a, Step) pairs, sq8_spairs(dp) of them, component j's at
	 * sq8_pidx(j); IP: w, sq8_svec(dp) floats, component j at sq8_sidx(j)
	 * (both padded against bank conflicts, see sq8.h). t.d ends 8-byte
	 * aligned: buf is a power of two of at least 512. */
	float *vec = t.d + t.buf;
	sq8_f2 *as = (sq8_f2 *)vec;
	sq8_top_init(t);

	const float *q = queries + (long long)b.query * dp;
	for (int j = threadIdx.x; j < dp; j += blockDim.x) {
		if (l2)
			as[sq8_pidx(j)].y = vstep[j];
		else
			vec[sq8_sidx(j)] = sq8_ip_prep(q[j], vstep[j]);
	}
	__syncthreads();

	const int lane = threadIdx.x & (lanes - 1);
	const int group = threadIdx.x / lanes;
	const int ngroups = blockDim.x / lanes;
	int p = b.probe, off = b.offset, left = b.count;
	while (left > 0) {
		const sq8_probe_desc pr = probes[p];
		const int take = min(pr.n - off, left);
		if (l2) {
			const float *c = centroids + (long long)pr.list * dp;
			__syncthreads();
			for (int j = threadIdx.x; j < dp; j += blockDim.x) as[sq8_pidx(j)].x = sq8_l2_prep(q[j], c[j], vmin[j]);
			__syncthreads();
		}
		const unsigned char *codes = (const unsigned char *)pr.codes;
		const u64 *ids = (const u64 *)pr.ids;
		const unsigned int *tomb = (const unsigned int *)pr.tomb;
		for (int r0 = off; r0 < off + take; r0 += SQ8_ROUND) {
			const int rn = min(SQ8_ROUND, off + take - r0);
			/* Every thread runs the same number of iterations, so the
			 * full-mask shuffles below see the whole warp. */
			for (int v0 = 0; v0 < rn; v0 += ngroups) {
				const int v = v0 + group;
				const int e = r0 + v;
				float part = 0.0f;
				if (v < rn) {
					const unsigned char *row = codes + (long long)e * dp;
					part = l2 ? sq8_l2_lane(as, row, dp, lane, lanes) : sq8_ip_lane(vec, row, dp, lane, lanes);
				}
				for (int o = lanes / 2; o > 0; o /= 2) part += __shfl_xor_sync(0xffffffffu, part, o, lanes);
				if (v < rn && lane == 0 && !sq8_deleted(tomb, e)) {
					const float d = l2 ? part : sq8_ip_finish(pr.base, part);
					sq8_top_offer(t, d, ids[e]);
				}
			}
			sq8_top_maybe_flush(t);
		}
		left -= take;
		off = 0;
		p++;
	}
	sq8_top_write(t, out_d, out_id, out_n, kmax, b.slot);
}

extern "C" __global__ void __launch_bounds__(SQ8_THREADS)
sq8_merge(const float *__restrict__ in_d,   /* slots × kmax */
          const u64 *__restrict__ in_id,    /* slots × kmax */
          const int *__restrict__ in_n,     /* slots */
          const sq8_merge_desc *__restrict__ merges,
          float *__restrict__ out_d,        /* rows × kmax */
          u64 *__restrict__ out_id,
          int *__restrict__ out_n,
          long long kmax, long long kp_, long long buf_)
{
	extern __shared__ __align__(16) unsigned char sq8_smem[];
	const sq8_merge_desc m = merges[blockIdx.x];
	sq8_top t;
	t.kp = (int)kp_;
	t.buf = (int)buf_;
	t.k = m.k;
	t.id = (u64 *)sq8_smem;
	t.d = (float *)(t.id + t.buf);
	sq8_top_init(t);
	/* The query's slots hold at most k entries each: take them SQ8_ROUND
	 * at a time across slots (f = slot·k + i), so a query spread over
	 * hundreds of blocks costs a few rounds, not one round per slot. */
	const long long total = m.k > 0 ? (long long)m.nslots * m.k : 0;
	for (long long f0 = 0; f0 < total; f0 += SQ8_ROUND) {
		const long long f = f0 + threadIdx.x;
		if (threadIdx.x < SQ8_ROUND && f < total) {
			const int s = m.first + (int)(f / m.k), i = (int)(f % m.k);
			if (i < in_n[s]) sq8_top_offer(t, in_d[(long long)s * kmax + i], in_id[(long long)s * kmax + i]);
		}
		sq8_top_maybe_flush(t);
	}
	sq8_top_write(t, out_d, out_id, out_n, kmax, m.out);
}
