//go:build faiss

// faiss_wrapper.cc — see faiss_wrapper.h.

#include "faiss_wrapper.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexScalarQuantizer.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>

struct lk_faiss_index {
    faiss::IndexIVFScalarQuantizer* ivf;
    int train_threads;  // <= 0: OpenMP default
    int search_threads; // <= 0: OpenMP default
};

// OpenMP's default thread count, read once at start-up (static
// initialisation runs on the process's first thread before Go starts, so
// no omp_set_num_threads of ours has touched it yet).
static const int lk_default_threads = omp_get_max_threads();

static char* lk_err(const char* where, const char* what) {
    size_t n = std::strlen(where) + std::strlen(what) + 3;
    char* s = static_cast<char*>(std::malloc(n));
    if (s != nullptr) {
        std::snprintf(s, n, "%s: %s", where, what);
    }
    return s;
}

static void lk_use_threads(int n) {
    omp_set_num_threads(n > 0 ? n : lk_default_threads);
}

#define LK_CATCH(where)                                        \
    catch (const std::exception& e) {                          \
        return lk_err(where, e.what());                        \
    }                                                          \
    catch (...) {                                              \
        return lk_err(where, "unknown C++ exception");         \
    }

extern "C" {

char* lk_faiss_new(int dim, int nlist, int metric, int seed, lk_faiss_index** out) {
    *out = nullptr;
    if (dim <= 0 || nlist <= 0) {
        return lk_err("new", "dim and nlist must be positive");
    }
    if (metric != LK_FAISS_L2 && metric != LK_FAISS_IP) {
        return lk_err("new", "unknown metric");
    }
    try {
        faiss::MetricType mt = metric == LK_FAISS_L2 ? faiss::METRIC_L2 : faiss::METRIC_INNER_PRODUCT;
        std::unique_ptr<faiss::Index> quantizer;
        if (mt == faiss::METRIC_L2) {
            quantizer.reset(new faiss::IndexFlatL2(dim));
        } else {
            quantizer.reset(new faiss::IndexFlatIP(dim));
        }
        std::unique_ptr<lk_faiss_index> ix(new lk_faiss_index{nullptr, 0, 1});
        ix->ivf = new faiss::IndexIVFScalarQuantizer(
                quantizer.get(), dim, nlist, faiss::ScalarQuantizer::QT_8bit, mt);
        quantizer.release();
        ix->ivf->own_fields = true; // the index deletes its quantizer
        ix->ivf->cp.seed = seed;    // every other clustering parameter stays FAISS's default
        *out = ix.release();
        return nullptr;
    }
    LK_CATCH("new")
}

void lk_faiss_set_threads(lk_faiss_index* ix, int train_threads, int search_threads) {
    ix->train_threads = train_threads;
    ix->search_threads = search_threads;
}

int lk_faiss_default_threads(void) {
    return lk_default_threads;
}

char* lk_faiss_train(lk_faiss_index* ix, int64_t n, const float* x) {
    try {
        lk_use_threads(ix->train_threads);
        ix->ivf->train(n, x);
        return nullptr;
    }
    LK_CATCH("train")
}

char* lk_faiss_add(lk_faiss_index* ix, int64_t n, const float* x) {
    try {
        lk_use_threads(ix->train_threads);
        ix->ivf->add(n, x);
        return nullptr;
    }
    LK_CATCH("add")
}

char* lk_faiss_search(const lk_faiss_index* ix, const float* q, int k, int nprobe, float* dist, int64_t* ids) {
    try {
        lk_use_threads(ix->search_threads);
        faiss::SearchParametersIVF params;
        params.nprobe = nprobe;
        faiss::Index::idx_t* labels = ids; // idx_t is int64_t in 1.7.3
        ix->ivf->search(1, q, k, dist, labels, &params);
        return nullptr;
    }
    LK_CATCH("search")
}

int64_t lk_faiss_ntotal(const lk_faiss_index* ix) {
    return ix->ivf->ntotal;
}

int64_t lk_faiss_code_size(const lk_faiss_index* ix) {
    return ix->ivf->code_size;
}

int lk_faiss_is_trained(const lk_faiss_index* ix) {
    return ix->ivf->is_trained ? 1 : 0;
}

void lk_faiss_free(lk_faiss_index* ix) {
    if (ix == nullptr) {
        return;
    }
    delete ix->ivf;
    delete ix;
}

} // extern "C"
