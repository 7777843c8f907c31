// pretrain.h: the MAE pre-training engine behind `mimscale pretrain`:
// data order, masking noise, schedule, AdamW, logging, checkpoints and
// resume. Determinism: the data order and augmentation come from (seed,
// epoch, position) and the masking noise of step s from (seed, s), so a resumed run
// replays exactly what an uninterrupted one does (same thread count).
#pragma once
#include <stdint.h>
#include "model/config.h"
#include "ops/ops.h"

typedef struct {
    mim_config model;      // image geometry: 0 = the data's own (IDX sources);
                           // model.target / model.loss pick the reconstruction
                           // target and loss (target_dim is derived here)
    const char* data;      // IDX folder (Fashion-MNIST layout) or a sample index file
    const char* subset;    // subset file for index sources, or NULL
    int data_threads;      // decode workers for index sources
    const char* val_data;  // held-out set for the validation reconstruction loss (NULL: none)
    const char* val_split; // IDX split of val_data ("t10k")
    int val_every;         // steps between validation losses (0: only at the end)
    int val_samples;       // images per validation (rounded down to whole batches, >= 1 batch)
    const char* out;       // run folder (checkpoints, metrics.jsonl)
    int batch, accum;      // per-rank batch and gradient accumulation (global batch = batch x accum x ranks)
    float epochs;          // training length in epochs ...
    int64_t steps;         // ... or in optimizer steps (overrides epochs if > 0)
    float blr, lr, min_lr; // lr = blr * batch * accum / 256 unless lr > 0
    float warmup_epochs;   // linear warm-up, in epochs of the data (also with steps: warmup_epochs x
                           // optimizer steps per epoch, capped at the run's length) ...
    int64_t warmup_steps;  // ... or in optimizer steps (overrides warmup_epochs if > 0)
    float weight_decay, beta1, beta2, clip_grad;
    int augment;           // RandomResizedCrop (0.2, 1) + flip, as MAE
    int hog_cell;          // target hog: histogram cell side (0: 8, MaskFeat); divides the patch.
                           // The Gaussian window is the patch (MaskFeat: 16 and 16)
    const char* teacher;   // target teacher: the teacher checkpoint (model/teacher.h)
    int teacher_layer;     // its block whose tokens are the targets (-1: last)
    int teacher_norm;      // layer-normalise each teacher token (no affine, eps 1e-6)
    const char* teacher_cache;  // file of per-sample teacher tokens (train/tcache.h); needs augment = 0
    int profile;           // print time per op class per step at the end
    int on_nan;            // non-finite loss or gradient: 0 stop (keep the last checkpoint), 1 skip the step
    int dist_check_every;  // data-parallel: verify every N steps that all ranks hold the same weights (0: off)
    int64_t debug_nan_at;  // fault injection for tests: poison the batch of this step (1-based; 0: off)
    uint64_t seed;
    int threads;
    int save_every;        // steps between checkpoints (0: only at the end)
    int log_every;
    int keep;              // checkpoints kept (0: all)
    double max_skip_frac;  // data loss allowed (data/loader.h); 0: no unreadable shard, <= 1% failed reads
    int io_retries;        // retries of a failed checkpoint write (full disk, EIO) before stopping
    uint64_t max_ram;      // bytes the run may hold (0: no limit but the machine's RAM); checked
                           // against the estimate (model, AdamW, batch, data) before allocating
    int resume;
    int64_t stop_at;       // stop (with a checkpoint) after this step; 0: never
    int quiet;
    mim_precision precision;   // linear layers (ops.h; mim_mae_set_precision)
    mim_bf16_backend bf16_backend;
} mim_pretrain_args;

// Targets are computed per micro-batch from the same augmented images the
// student sees: pixels inside the model, HOG by model/hog.h, teacher tokens
// by model/teacher.h (a frozen ViT from a safetensors file). The run's settings (metrics/checkpoint args JSON) and the model
// files' metadata record the target, so resume and `reconstruct` know it.
//
// Runs pre-training. Returns 0, or a negative MIM_E* code with mim_err_msg()
// set (the caller prints it), MIM_PRETRAIN_NAN when the loss or a gradient
// went non-finite (with on_nan = stop), or MIM_PRETRAIN_STOPPED when SIGTERM/
// SIGINT stopped it after a checkpoint (see train/signals.h; the CLI installs
// the handlers).
// The rules every caller of mim_pretrain_run gets (the CLI, the study, the
// tests): target teacher needs a teacher file, the teacher_* fields apply
// to it only (otherwise no files, teacher_norm 0, teacher_layer -1 or 0),
// hog_cell to target hog only (0 otherwise), on_nan 0 or 1. 0 or MIM_EARG
// naming the flags. mim_pretrain_run checks them first.
int mim_pretrain_check_args(const mim_pretrain_args* a);
#define MIM_PRETRAIN_NAN 3
#define MIM_PRETRAIN_STOPPED 4
int mim_pretrain_run(const mim_pretrain_args* a);

// The input geometry of c against its patch, as a setup error in the flags'
// words (`--img 30 ... is not divisible by --patch 4: use --img 28 or 32`)
// rather than the model's own check. size_from says where the size came
// from when it was not --img ("the data's", "the checkpoint's"; NULL: --img
// c->img_h); patch_flag: 1 when --patch set the patch (pretrain, finetune
// --init random). 0 or MIM_EARG. Shared with fine-tuning.
int mim_check_input_geometry(const mim_config* c, const char* size_from, int patch_flag);
