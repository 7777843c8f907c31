// source.h: one interface over the data sets a run can read, so pretrain and
// the evaluations need not care where images come from:
//   - an IDX folder (Fashion-MNIST layout, Debian's dataset-fashion-mnist),
//     split "train" or "t10k", held in memory (small), normalised with the
//     training split's mean and std;
//   - a sample index written by `mimscale index` (webdataset shards), with an
//     optional subset file, streamed by the threaded loader (never in memory).
// Batches are (B, C, H, W) floats, normalised, plus labels (-1 if none).
// Order, augmentation and position are deterministic from the seed, so a
// saved position resumes exactly.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "data/loader.h"

typedef struct {
    const char* path;        // IDX folder or index file
    const char* split;       // IDX: "train" (default) or "t10k"; ignored for indexes
    const char* subset;      // index sources: subset file or NULL
    int channels, height, width;   // output; 0 = the data's own (IDX: 1 x 28 x 28; index: required)
    int batch;
    int augment;             // 1: RandomResizedCrop (crop_min_scale, 1) + flip; 0: eval (resize + centre crop)
    float crop_min_scale;    // RRC smallest area fraction: 0 = 0.2 (MAE pre-training); 0.08 for fine-tuning
    int shuffle;             // 1: a new permutation each epoch; 0: file order
    uint64_t seed;
    int rank, world;         // data-parallel slice (0, 1 for one process)
    int threads;             // decode workers for index sources
    int no_replace;          // index sources: leave bad samples out (ids -1), never substitute (data/loader.h)
    double max_skip_frac;    // index sources: the loss allowed at open (data/loader.h); 0: the default rule
} mim_source_config;

typedef struct { int64_t epoch, index; } mim_source_pos;

// Labels above this are taken as corrupt (a class count from them would size
// the heads): mim_source_num_classes ignores them and the evaluations refuse them.
#define MIM_MAX_LABEL ((1 << 24) - 1)   // index: samples into the epoch

typedef struct mim_source mim_source;

// 0 or a negative MIM_E* code with mim_err_msg() naming the file.
int mim_source_open(mim_source** out, const mim_source_config* cfg);
// The channels of data given without --in-chans, the one rule for every
// command: an IDX folder is grayscale (1), a sample index RGB (3).
int mim_source_default_channels(const char* data);
// What opening cfg will hold in memory, from file headers alone (nothing is
// loaded): IDX images, labels and order (plus the training split, read for
// the normalisation statistics of another split), or the loader's batch ring
// plus an allowance of 16 MiB per decode worker for decoded images. *c, *h,
// *w get the geometry the source will deliver. 0 or a negative code.
int mim_source_estimate(const mim_source_config* cfg, uint64_t* bytes, int* c, int* h, int* w);
void mim_source_close(mim_source* s);
// Samples in one epoch of this rank (the set's size / world) and full batches per epoch.
int64_t mim_source_size(const mim_source* s);
int64_t mim_source_batches_per_epoch(const mim_source* s);
void mim_source_geometry(const mim_source* s, int* c, int* h, int* w);
int mim_source_num_classes(mim_source* s);   // max label + 1 (0 if unlabelled; labels > MIM_MAX_LABEL ignored); index: one scan
// Fills the next batch: imgs (B, C, H, W), labels (B) or NULL.
int mim_source_next(mim_source* s, float* imgs, int32_t* labels);
// The same, plus ids (B) or NULL: which sample of the data set each slot
// holds (IDX: image number; index: sample number in the index, whatever the
// subset), -1 for a slot the loader could not fill. Ids run over
// [0, mim_source_id_space(s)).
int mim_source_next_ids(mim_source* s, float* imgs, int32_t* labels, int64_t* ids);
int64_t mim_source_id_space(const mim_source* s);
mim_source_pos mim_source_get_position(const mim_source* s);
int mim_source_set_position(mim_source* s, mim_source_pos pos);
// The per-channel normalisation applied to the output (x/255 - mean) / std.
void mim_source_normalization(const mim_source* s, float mean[3], float std[3]);
// One line of skip counters for the log ("" for in-memory sources).
void mim_source_counters(const mim_source* s, char* out, size_t cap);
// The loader's counters, to sum them over ranks before formatting them with
// mim_loader_counters_format: 1, or 0 (all zero) for in-memory sources.
int mim_source_get_counters(const mim_source* s, mim_loader_counters* c);
