// knn.h: weighted k-nearest-neighbour classification on frozen features,
// as DINO's eval_knn.py (k = 20, T = 0.07):
//   sim = query . train (both L2-normalised rows), the k most similar train
//   samples vote for their class with weight exp(sim / T); classes are ranked
//   by total vote; top-1 / top-5 count the query's label among the first
//   1 / min(5, k) classes.
// Ties: among equal similarities the lower train index is taken first;
// among equal votes the lower class index ranks first (DINO leaves both to
// torch.topk / sort; they only matter on exact ties).
// Not an index structure: brute force over all of train, in blocks, on BLAS.
#pragma once
#include <stdint.h>

typedef struct {
    double top1, top5;      // accuracies in [0, 1]
    int64_t n_train, n_eval;
} mim_knn_result;

// train (N, D) with labels (N) in [0, num_classes); query (M, D). Rows must be
// L2-normalised (mim_l2_normalize_rows). votes (M, num_classes) gets the
// summed weights (may be NULL); pred5 (M, 5) the five best classes, best
// first (may be NULL; entries past num_classes are -1). Threads: OpenMP over
// queries, BLAS for the (queries x train) similarity blocks.
// 0 or MIM_ENOMEM / MIM_EARG.
int mim_knn_classify(float* votes, int32_t* pred5,
                     const float* train, const int32_t* train_labels, int64_t N,
                     const float* query, int64_t M, int D, int num_classes, int k, float T);
// Runs mim_knn_classify and scores top-1 / top-5 against query_labels.
int mim_knn_eval(mim_knn_result* res,
                 const float* train, const int32_t* train_labels, int64_t N,
                 const float* query, const int32_t* query_labels, int64_t M,
                 int D, int num_classes, int k, float T);
