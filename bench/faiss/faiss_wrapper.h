// faiss_wrapper.h — a small C interface to FAISS's IndexIVFScalarQuantizer
// (QT_8bit), the index behind Milvus's IVF_SQ8, for cgo.
//
// Every function that can fail returns NULL on success or an error message
// allocated with malloc (the caller frees it); C++ exceptions never cross
// this boundary. OpenMP's thread count is a per-OS-thread setting and Go
// moves goroutines between OS threads, so each call that runs FAISS code
// sets it from the index's own settings (lk_faiss_set_threads) first.
#ifndef LOOKALIKE_FAISS_WRAPPER_H
#define LOOKALIKE_FAISS_WRAPPER_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lk_faiss_index lk_faiss_index;

// Metrics, as FAISS numbers them (faiss::MetricType).
enum { LK_FAISS_IP = 0, LK_FAISS_L2 = 1 };

// lk_faiss_new makes an untrained IndexIVFScalarQuantizer(IndexFlatL2 or
// IndexFlatIP quantizer, dim, nlist, QT_8bit, metric) with FAISS's default
// clustering parameters except cp.seed = seed. Training and adding use
// OpenMP's default thread count, search one thread.
char* lk_faiss_new(int dim, int nlist, int metric, int seed, lk_faiss_index** out);

// lk_faiss_set_threads sets the OpenMP thread counts used by train/add and
// by search (<= 0: OpenMP's default, that is OMP_NUM_THREADS or all cores).
void lk_faiss_set_threads(lk_faiss_index* ix, int train_threads, int search_threads);

// lk_faiss_default_threads is OpenMP's default thread count in this process.
int lk_faiss_default_threads(void);

// lk_faiss_train trains the coarse quantizer (k-means) and the scalar
// quantizer on n rows of x.
char* lk_faiss_train(lk_faiss_index* ix, int64_t n, const float* x);

// lk_faiss_add adds n rows of x; their ids are ntotal, ntotal+1, ...
char* lk_faiss_add(lk_faiss_index* ix, int64_t n, const float* x);

// lk_faiss_search searches one query q for its k nearest neighbours,
// probing nprobe lists. dist and ids have room for k; missing results
// (fewer than k vectors in the probed lists) have id -1.
char* lk_faiss_search(const lk_faiss_index* ix, const float* q, int k, int nprobe, float* dist, int64_t* ids);

int64_t lk_faiss_ntotal(const lk_faiss_index* ix);
int64_t lk_faiss_code_size(const lk_faiss_index* ix);
int lk_faiss_is_trained(const lk_faiss_index* ix);

// lk_faiss_free frees the index and its quantizer; NULL is allowed.
void lk_faiss_free(lk_faiss_index* ix);

#ifdef __cplusplus
}
#endif

#endif
