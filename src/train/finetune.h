// finetune.h: end-to-end fine-tuning of the ViT encoder with a linear head,
// the MAE recipe (main_finetune.py): global average pool + fc_norm (or the
// cls token after the encoder norm), head init N(0, 2e-5), layer-wise lr
// decay, drop path, RandAugment, random erasing, mixup / cutmix with label
// smoothing (soft-target cross-entropy), AdamW (0.9, 0.999), warm-up + cosine,
// learned position embeddings (bicubically interpolated when the resolution
// differs from the checkpoint's), top-1 / top-5 each epoch, best and last
// checkpoints. With init_random the same ViT is trained from scratch: the
// baseline that shows what MIM pre-training adds.
#pragma once
#include <stdint.h>
#include "model/config.h"
#include "ops/ops.h"

typedef struct {
    const char* ckpt;          // model.safetensors (MAE / mimscale names); NULL with init_random
    int init_random;           // train from random init (the scratch baseline)
    mim_config model;          // init_random: the architecture; img/chans 0 = the data's
    const char* data, *data_split, *subset;
    const char* eval_data, *eval_split;
    int img;                   // fine-tuning resolution (0: the checkpoint's / the data's)
    int batch, accum;
    float epochs;
    int64_t steps;             // overrides epochs when > 0
    int eval_every;            // evaluate every N epochs and at the end (0 or 1: every epoch)
    float blr, lr, min_lr, warmup_epochs;   // warm-up in epochs (with steps too: x steps per epoch, capped at the run)
    int64_t warmup_steps;      // warm-up in optimizer steps (overrides warmup_epochs when > 0)
    float weight_decay, layer_decay, drop_path;
    float smoothing, mixup, cutmix, reprob;
    const char* aa;            // RandAugment spec ("rand-m9-mstd0.5-inc1"); "" or "none" = off
    int global_pool;           // 1: mean of patch tokens + fc_norm (MAE default); 0: cls token
    uint64_t seed;
    int threads, data_threads;
    const char* out;           // run folder: metrics.jsonl, checkpoint-{best,last}.safetensors,
                               // run checkpoints ckpt-<step>/ + latest (train/checkpoint.h)
    int log_every;             // also a metrics row (step, loss, lr) every N steps (0: per epoch only)
    int save_every;            // steps between run checkpoints (0: each epoch); also at the end
    int keep;                  // run checkpoints kept (0: all)
    int resume;                // continue from out's latest run checkpoint (fresh start if none)
    int io_retries;            // retries of a failed checkpoint write (full disk, EIO) before stopping
    uint64_t max_ram;          // bytes the run may hold (0: only the machine's RAM), checked before allocating
    double max_skip_frac;      // data loss allowed (data/loader.h); 0: no unreadable shard, <= 1% failed reads
    int quiet;
    mim_precision precision;       // encoder linears (mim_mae_set_precision); the head stays fp32
    mim_bf16_backend bf16_backend;
} mim_finetune_args;

typedef struct {
    float top1, top5;          // at the end, as fractions in [0, 1] (like knn and linprobe)
    float best_top1;
    int64_t n_eval;            // evaluation samples counted in top1 / top5 (the last evaluation)
    int64_t n_skipped;         // evaluation samples left out (unreadable or corrupt), never replaced
    int64_t steps;
    double seconds;
} mim_finetune_result;

// Runs fine-tuning. Data parallel under MPI (train/dist.h): batch is per
// rank, rank r's k-th batch is the global micro-batch k * world + r
// (data/loader.h), and its randomness (RandAugment, erasing, drop path,
// mixup / cutmix within the micro-batch) comes from (seed, that index), so
// N ranks x batch B train bit for bit like 1 process x batch B x accum N;
// checkpoints hold the global data position, so a run resumes on another
// number of ranks with the same global batch. Evaluation is split over the
// ranks and the counts summed; rank 0 writes the files. res is the same on
// every rank. Evaluation never substitutes a bad sample: it is left out and
// counted (res n_eval, n_skipped); training replaces it (data/loader.h), and
// both apply max_skip_frac (MIM_EDATA past it).
// Returns 0, a negative MIM_E* code with mim_err_msg(), or
// MIM_FINETUNE_STOPPED when SIGTERM / SIGINT stopped it after writing a
// checkpoint (train/signals.h; the CLI installs the handlers). SIGUSR1 writes
// a checkpoint and goes on. A resumed run ends with the same weights and
// accuracies as an uninterrupted one (same thread count).
#define MIM_FINETUNE_STOPPED 4
int mim_finetune_run(const mim_finetune_args* a, mim_finetune_result* res);

// Layer id for layer-wise lr decay (MAE util/lr_decay.py get_layer_id_for_vit):
// cls_token, pos_embed, patch_embed.* -> 0; blocks.i.* -> i + 1; everything
// else (norm, fc_norm, head) -> depth + 1. A tensor's lr scale is
// layer_decay^(depth + 1 - id).
int mim_vit_layer_id(const char* name, int depth);
