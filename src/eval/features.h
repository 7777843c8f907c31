// features.h: frozen-encoder features for the evaluations (kNN, linear
// probe) and the setup those commands share: load a checkpoint, run the
// encoder over every sample of a train and an eval source, keep the pooled
// features in memory.
//
//   mim_eval_common a = {...};            // checkpoint, sources, pooling
//   mim_features tr, ev;
//   if (mim_eval_features(&a, &tr, &ev) < 0) die(mim_err_msg());
//   ... mim_knn_eval(...) / mim_linprobe_train(...) on tr.x, ev.x ...
//   mim_features_free(&tr); mim_features_free(&ev);
//
// Every sample is seen exactly once, in file order, with the eval transform
// (no augmentation): the source's full batches, then the remainder through a
// batch-1 source positioned after them (mim_source drops partial batches).
// Features are N x D floats in memory: 60k x 192 is 46 MB, ImageNet-1k x 768
// is 3.9 GB; a set above max_feature_gb is refused with a hint (use a subset)
// before anything is extracted. Not a feature store on disk.
//
// Data parallel (train/dist.h, under mpirun): rank r encodes a contiguous run
// of whole batches (the last rank also the remainder), so each sample goes
// through the same batch as in one process and its features have the same
// bits (same thread count); MPI_Gatherv assembles them, in file order, on
// rank 0. Only rank 0 returns the features: the other ranks get n = 0 and
// run nothing after extraction. Errors are agreed on: all ranks fail alike.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "data/source.h"
#include "model/mae.h"

typedef enum {
    MIM_POOL_CLS = 0,   // the final-norm cls token (MAE linprobe default)
    MIM_POOL_MEAN = 1,  // MAE global_pool: LayerNorm(eps 1e-6, no affine, as
                        // a fresh fc_norm) of the mean of the last block's
                        // patch tokens (before the encoder's final norm)
} mim_pool;

// "cls" / "mean" -> *pool; 0 or MIM_EARG.
int mim_pool_parse(const char* s, mim_pool* pool);
const char* mim_pool_name(mim_pool pool);

typedef struct {
    int64_t n;          // samples (those that could be read; each one once)
    int64_t n_skipped;  // samples of the set left out: unreadable or corrupt (never replaced)
    int dim;            // D
    int num_classes;    // max label + 1
    float* x;           // (n, dim)
    int32_t* labels;    // (n)
} mim_features;

// Pools the output of the last mim_mae_encode(m, ., B) into out (B, D).
// tokens: what mim_mae_encode returned (B, 1+L, D). scratch: (B, D) floats
// for MIM_POOL_MEAN (unused for cls, may be NULL).
void mim_features_pool(float* out, float* scratch, const mim_mae* m, const float* tokens, int B, mim_pool pool);

// Runs the encoder m (built with mask_ratio 0, max_batch >= src->batch) over
// every sample of the source described by src (its batch, augment and
// shuffle fields are overridden: eval transform, file order) and returns the
// pooled features and labels. Labels must be present (>= 0). A sample that
// cannot be read is left out, never replaced, and counted in n_skipped; more
// left out than src->max_skip_frac allows (data/loader.h: 0 = 1%), an
// unreadable shard, or none left, is MIM_EDATA. what names the
// set in the progress line ("train"); quiet: no progress line (only rank 0
// shows one). Collective under MPI: every rank calls it.
// 0, or MIM_EARG / MIM_ENOMEM / the source's errors, with mim_err_msg().
int mim_features_extract(mim_features* out, mim_mae* m, const mim_source_config* src, mim_pool pool,
                         double max_feature_gb, const char* what, int quiet);
void mim_features_free(mim_features* f);
// Scales each row of x (n, D) to unit L2 norm (rows of zeros stay zero).
void mim_l2_normalize_rows(float* x, int64_t n, int D);

// ---------------------------------------------------------------- shared setup
typedef struct {
    const char* ckpt;          // model.safetensors (mimscale or MAE-named, encoder-only ok)
    const char* data;          // train source: IDX folder or index file
    const char* data_split;    // IDX split of the train source ("train")
    const char* subset;        // subset file for an index train source, or NULL
    const char* eval_data;     // eval source (NULL: same as data)
    const char* eval_split;    // IDX split of the eval source ("t10k")
    const char* eval_subset;   // subset file for an index eval source, or NULL
    mim_pool pool;
    int batch;                 // images per encoder forward
    int threads;               // OpenMP/BLAS threads (0: leave as is); also loader workers
    double max_feature_gb;     // refuse feature sets larger than this
    double max_skip_frac;      // samples that may be left out (data/loader.h); 0: the default rule
    int quiet;
} mim_eval_common;

// Loads a.ckpt (config from its metadata, mask ratio forced to 0, decoder
// dropped), extracts the train and eval features. *cfg (may be NULL) gets
// the model config. 0 or a negative MIM_E* code with mim_err_msg().
int mim_eval_features(const mim_eval_common* a, mim_features* train, mim_features* eval, mim_config* cfg);
