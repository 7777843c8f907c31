// features.h: frozen-encoder features for the evaluations (kNN, linear
// probe) and the setup those commands share: load a checkpoint, run the
// encoder over every sample of a train and an eval source, keep the pooled
// features in memory. The same path gives the two baselines a study shows
// next to the MIM rows: raw pixels (the images themselves as features) and
// an encoder at its random initialisation (mim_feat_mode).
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
// The raw-pixel sibling: the features of a sample are its image after the
// eval transform and the data's normalisation, flattened (C, H, W) -> D =
// C x H x W: exactly what an encoder at that geometry would be given. The
// geometry is src->channels / height / width (0: the data's own, as for
// mim_source_open). Same batches, rank split, left-out samples, cap and
// errors as mim_features_extract (no model, so no batch capacity).
int mim_features_extract_pixels(mim_features* out, const mim_source_config* src, double max_feature_gb,
                                const char* what, int quiet);
void mim_features_free(mim_features* f);
// Scales each row of x (n, D) to unit L2 norm (rows of zeros stay zero).
void mim_l2_normalize_rows(float* x, int64_t n, int D);

// ---------------------------------------------------------------- shared setup
// Where the features come from.
typedef enum {
    MIM_FEAT_CKPT = 0,    // the encoder of a checkpoint (the MIM rows)
    MIM_FEAT_PIXELS = 1,  // baseline: raw pixels (mim_features_extract_pixels), no model
    MIM_FEAT_RANDOM = 2,  // baseline: the encoder at its MAE initialisation from seed (mim_mae_init_weights)
} mim_feat_mode;
// "ckpt", "pixels", "random-init" (the "features" of the result JSON).
const char* mim_feat_mode_name(mim_feat_mode m);

typedef struct {
    mim_feat_mode mode;        // MIM_FEAT_CKPT unless set
    const char* ckpt;          // ckpt: model.safetensors (mimscale or MAE-named, encoder-only ok)
    const char* model;         // random: the preset ("vit_tiny"; NULL: vit_tiny)
    int patch;                 // random: patch side (0: the preset's)
    int img;                   // pixels / random: square input side (0: the data's own; index data needs it)
    int in_chans;              // pixels / random: channels (0: 1 for IDX data, 3 for an index)
    uint64_t seed;             // random: the init seed
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

// The encoder config of a, without loading weights or extracting: ckpt:
// read off the checkpoint; random: the preset with a.patch at a.img x
// a.img x a.in_chans (0s: the train data's own geometry, read from its
// header), checked in the flags' words; pixels: no model, a zeroed config
// named "pixels" with the input geometry and dim = C x H x W (the feature
// width). Mask ratio 0, no decoder. 0 or a negative MIM_E* code.
int mim_eval_config(const mim_eval_common* a, mim_config* cfg);
// Extracts the train and eval features of a's mode: ckpt loads a.ckpt
// (config from its metadata, mask ratio forced to 0, decoder dropped);
// random builds the encoder of mim_eval_config and initialises it from
// a.seed; pixels runs no model. *cfg (may be NULL) gets mim_eval_config's
// config. 0 or a negative MIM_E* code with mim_err_msg().
int mim_eval_features(const mim_eval_common* a, mim_features* train, mim_features* eval, mim_config* cfg);
