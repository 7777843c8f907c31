// knn.c: DINO's weighted kNN (see knn.h). Queries go in blocks of QB; for
// each block the similarities with a block of TB train rows come from one
// matmul (BLAS), and each query keeps its k best (similarity, index) pairs
// in a sorted array merged block by block.
#include "eval/knn.h"
#include "core/check.h"
#include "ops/ops.h"
#include <math.h>
#include <string.h>

#define QB 512     // queries per block
#define TB 4096    // train rows per similarity block: sim is QB x TB floats (8 MB)

typedef struct { float s; int64_t i; } nb;

// a before b: higher similarity, then lower index
static inline int better(float s, int64_t i, const nb* b) { return s > b->s || (s == b->s && i < b->i); }

int mim_knn_classify(float* votes, int32_t* pred5,
                     const float* train, const int32_t* train_labels, int64_t N,
                     const float* query, int64_t M, int D, int num_classes, int k, float T) {
    if (N < 1 || M < 0 || D < 1 || num_classes < 1 || k < 1 || !(T > 0))
        return mim_err(MIM_EARG, "kNN: bad arguments (N %lld, M %lld, D %d, classes %d, k %d, T %g)",
                       (long long)N, (long long)M, D, num_classes, k, (double)T);
    if (num_classes > 4096 && !votes)
        return mim_err(MIM_EARG, "kNN: %d classes need a votes buffer (at most 4096 without)", num_classes);
    if (k > N) k = (int)N;
    for (int64_t i = 0; i < N; i++)
        if (train_labels[i] < 0 || train_labels[i] >= num_classes)
            return mim_err(MIM_EARG, "kNN: train label %d of sample %lld outside [0, %d)", train_labels[i], (long long)i, num_classes);
    int64_t tb = N < TB ? N : TB;
    float* sim = mim_malloc((size_t)QB * tb * sizeof(float));
    nb* top = mim_malloc((size_t)QB * k * sizeof(nb));
    int* cnt = mim_malloc((size_t)QB * sizeof(int));
    if (!sim || !top || !cnt) { free(sim); free(top); free(cnt); return MIM_ENOMEM; }

    for (int64_t q0 = 0; q0 < M; q0 += QB) {
        int nq = (int)(M - q0 < QB ? M - q0 : QB);
        memset(cnt, 0, sizeof(int) * nq);
        for (int64_t t0 = 0; t0 < N; t0 += tb) {
            int nt = (int)(N - t0 < tb ? N - t0 : tb);
            // sim (nq, nt) = query (nq, D) @ train (nt, D)^T
            matmul_forward(sim, query + (size_t)q0 * D, train + (size_t)t0 * D, NULL, nq, D, nt);
            #pragma omp parallel for schedule(static)
            for (int q = 0; q < nq; q++) {
                nb* tq = top + (size_t)q * k;
                int c = cnt[q];
                const float* sr = sim + (size_t)q * nt;
                for (int j = 0; j < nt; j++) {
                    float s = sr[j];
                    int64_t idx = t0 + j;
                    if (c == k && !better(s, idx, &tq[k - 1])) continue;
                    int p = c < k ? c++ : k - 1;   // insertion into the sorted top list
                    while (p > 0 && better(s, idx, &tq[p - 1])) { tq[p] = tq[p - 1]; p--; }
                    tq[p] = (nb){s, idx};
                }
                cnt[q] = c;
            }
        }
        #pragma omp parallel for schedule(static)
        for (int q = 0; q < nq; q++) {
            float vl[4096], *v = num_classes <= 4096 ? vl : NULL;
            float* vout = votes ? votes + (size_t)(q0 + q) * num_classes : NULL;
            if (!v) v = vout;   // many classes: needs the caller's votes buffer (checked below)
            CHECK(v != NULL);
            memset(v, 0, sizeof(float) * num_classes);
            const nb* tq = top + (size_t)q * k;
            for (int j = 0; j < k; j++) v[train_labels[tq[j].i]] += expf(tq[j].s / T);
            if (vout && vout != v) memcpy(vout, v, sizeof(float) * num_classes);
            if (pred5) {
                int32_t* p = pred5 + (size_t)(q0 + q) * 5;
                for (int r = 0; r < 5; r++) {   // selection: higher vote, then lower class
                    int best = -1;
                    for (int cl = 0; cl < num_classes; cl++) {
                        int used = 0;
                        for (int u = 0; u < r; u++) used |= p[u] == cl;
                        if (!used && (best < 0 || v[cl] > v[best])) best = cl;
                    }
                    p[r] = best;
                }
            }
        }
    }
    free(sim); free(top); free(cnt);
    return 0;
}

int mim_knn_eval(mim_knn_result* res,
                 const float* train, const int32_t* train_labels, int64_t N,
                 const float* query, const int32_t* query_labels, int64_t M,
                 int D, int num_classes, int k, float T) {
    memset(res, 0, sizeof *res);
    if (num_classes > 4096) return mim_err(MIM_EARG, "kNN: %d classes, at most 4096 supported", num_classes);
    int32_t* pred5 = mim_malloc((size_t)(M > 0 ? M : 1) * 5 * sizeof(int32_t));
    if (!pred5) return MIM_ENOMEM;
    int rc = mim_knn_classify(NULL, pred5, train, train_labels, N, query, M, D, num_classes, k, T);
    if (rc) { free(pred5); return rc; }
    int kk = k < N ? k : (int)N, n5 = kk < 5 ? kk : 5;
    int64_t c1 = 0, c5 = 0;
    for (int64_t i = 0; i < M; i++) {
        const int32_t* p = pred5 + (size_t)i * 5;
        c1 += p[0] == query_labels[i];
        for (int r = 0; r < n5; r++) if (p[r] == query_labels[i]) { c5++; break; }
    }
    free(pred5);
    res->top1 = M ? (double)c1 / M : 0;
    res->top5 = M ? (double)c5 / M : 0;
    res->n_train = N; res->n_eval = M;
    return 0;
}
