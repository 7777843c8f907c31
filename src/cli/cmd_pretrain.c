// cmd_pretrain.c: `mimscale pretrain`: flags -> mim_pretrain_args.
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "data/source.h"
#include "core/mem.h"
#include "data/idx.h"
#include "model/precision.h"
#include "ops/ops.h"
#include "train/dist.h"
#include "train/pretrain.h"
#include "train/signals.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cli_precision(const char* request, int quiet, mim_precision* precision, mim_bf16_backend* backend) {
    mim_precision_choice pc;
    if (mim_precision_resolve(request, &pc)) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 2; }
    *precision = pc.precision;
    *backend = pc.backend;
    if (!quiet && mim_dist_get()->rank == 0) {
        fprintf(stderr, "%s; fp32 products: %s\n", pc.desc, mim_sgemm_backend_name());
        if (pc.slow)
            fprintf(stderr, "warning: bf16 without native support is emulated: it checks bf16 numerics and is "
                    "slower than fp32, not faster\n");
    }
    return 0;
}

static int given(const flag* f, int nf, const char* name) {
    for (int i = 0; i < nf; i++)
        if (!strcmp(f[i].name, name)) return f[i].set;
    return 0;
}

int cmd_pretrain(int argc, char** argv) {
    mim_pretrain_args a = {0};
    const char *model = NULL, *on_nan = NULL, *precision = NULL, *target = NULL, *loss = NULL, *max_ram = NULL;
    int patch, dec_dim, dec_depth, dec_heads, norm_pix, img, chans;
    float mask_ratio, dist_timeout, max_skip;
    int64_t seed;
    flag f[] = {
        {"model", FLAG_STR, &model, "vit_tiny", 0, 0, "encoder preset (see `mimscale models`)"},
        {"patch", FLAG_INT, &patch, "4", 1, 1024, "patch size (image sides must be divisible by it)"},
        {"dec-dim", FLAG_INT, &dec_dim, "128", 4, 1 << 16, "decoder width"},
        {"dec-depth", FLAG_INT, &dec_depth, "2", 0, 1024, "decoder blocks"},
        {"dec-heads", FLAG_INT, &dec_heads, "4", 1, 1024, "decoder attention heads"},
        {"mask-ratio", FLAG_FLOAT, &mask_ratio, "0.75", 0, 0.99, "fraction of patches masked"},
        {"norm-pix", FLAG_BOOL, &norm_pix, "0", 0, 1, "normalise each target patch (MAE --norm_pix_loss); = --target pixel-norm"},
        {"target", FLAG_STR, &target, "", 0, 0, "reconstruction target: pixel (default), pixel-norm, hog (MaskFeat), teacher (a frozen teacher's tokens)"},
        {"loss", FLAG_STR, &loss, "", 0, 0, "mse, cos (2 - 2 cos per patch) or smooth-l1, on masked patches (default: cos for teacher, else mse)"},
        {"hog-cell", FLAG_INT, &a.hog_cell, "8", 1, 1024, "--target hog: histogram cell side in pixels, a divisor of the patch (MaskFeat 8)"},
        {"teacher", FLAG_STR, &a.teacher, "", 0, 0, "--target teacher: the teacher checkpoint"},
        {"teacher-layer", FLAG_INT, &a.teacher_layer, "-1", -1, 1024, "--target teacher: block whose output tokens are the targets (-1: last)"},
        {"teacher-norm", FLAG_BOOL, &a.teacher_norm, "0", 0, 1, "--target teacher: layer-normalise each target token (no affine, eps 1e-6)"},
        {"teacher-cache", FLAG_STR, &a.teacher_cache, "", 0, 0, "--target teacher with --augment=0: keep each sample's teacher tokens in FILE (created on first use; later epochs and runs read them)"},
        {"data", FLAG_STR, &a.data, MIM_FASHION_MNIST_DIR, 0, 0, "IDX folder (train-images-idx3-ubyte.gz) or a sample index from `mimscale index`"},
        {"subset", FLAG_STR, &a.subset, "", 0, 0, "subset file from `mimscale subset` (index data only)"},
        {"img", FLAG_INT, &img, "0", 0, 1 << 14, "square input size, a multiple of --patch (0: the data's own; required for index data)"},
        {"in-chans", FLAG_INT, &chans, "0", 0, 64, "input channels (0: 1 for IDX, 3 for index data)"},
        {"data-threads", FLAG_INT, &a.data_threads, "2", 1, 256, "decode workers for index data"},
        {"val-data", FLAG_STR, &a.val_data, "", 0, 0, "held-out data for the validation reconstruction loss (fixed masks)"},
        {"val-split", FLAG_STR, &a.val_split, "t10k", 0, 0, "IDX split of --val-data"},
        {"val-every", FLAG_INT, &a.val_every, "0", 0, 1 << 30, "steps between validation losses (0: only at the end)"},
        {"val-samples", FLAG_INT, &a.val_samples, "1024", 1, 1 << 30, "images per validation"},
        {"out", FLAG_STR, &a.out, "runs/pretrain", 0, 0, "run folder: checkpoints, metrics.jsonl (created with its parents)"},
        {"batch", FLAG_INT, &a.batch, "256", 1, 1 << 20, "images per step"},
        {"accum", FLAG_INT, &a.accum, "1", 1, 1 << 16, "gradient accumulation steps (effective batch = batch x accum)"},
        {"epochs", FLAG_FLOAT, &a.epochs, "1", 0, 1e6, "training length in epochs"},
        {"steps", FLAG_I64, &a.steps, "0", 0, 1e15, "training length in optimizer steps (overrides --epochs)"},
        {"blr", FLAG_FLOAT, &a.blr, "1.5e-4", 0, 10, "base lr: lr = blr x effective batch / 256"},
        {"lr", FLAG_FLOAT, &a.lr, "0", 0, 10, "absolute lr (overrides --blr when > 0)"},
        {"min-lr", FLAG_FLOAT, &a.min_lr, "0", 0, 10, "lr at the end of the cosine"},
        {"warmup-epochs", FLAG_FLOAT, &a.warmup_epochs, "0.5", 0, 1e6, "linear warm-up length in epochs (with --steps too: this many epochs of steps, capped at the run, so a short --steps run may warm up throughout)"},
        {"warmup-steps", FLAG_I64, &a.warmup_steps, "0", 0, 1e15, "linear warm-up length in optimizer steps (overrides --warmup-epochs when > 0)"},
        {"weight-decay", FLAG_FLOAT, &a.weight_decay, "0.05", 0, 10, "AdamW weight decay (not on biases/1-D)"},
        {"beta1", FLAG_FLOAT, &a.beta1, "0.9", 0, 0.999999, "AdamW beta1"},
        {"beta2", FLAG_FLOAT, &a.beta2, "0.95", 0, 0.999999, "AdamW beta2"},
        {"clip-grad", FLAG_FLOAT, &a.clip_grad, "0", 0, 1e9, "clip the global grad norm to this (0: off)"},
        {"augment", FLAG_BOOL, &a.augment, "1", 0, 1, "RandomResizedCrop (0.2-1) + horizontal flip, as MAE (--augment=0: resize + centre crop)"},
        {"seed", FLAG_I64, &seed, "0", 0, 9.2e18, "seed for init, data order, masks"},
        {"threads", FLAG_INT, &a.threads, "0", 0, 4096, "OpenMP/BLAS threads (0: all cores)"},
        {"save-every", FLAG_INT, &a.save_every, "500", 0, 1 << 30, "checkpoint every N steps (and at the end)"},
        {"log-every", FLAG_INT, &a.log_every, "10", 1, 1 << 30, "metrics/progress every N steps"},
        {"keep", FLAG_INT, &a.keep, "2", 0, 1 << 20, "checkpoints kept (0: all)"},
        {"max-ram", FLAG_STR, &max_ram, "", 0, 0, "refuse to start when the memory estimate (printed at start) exceeds this, e.g. 8G, 512M (the machine's RAM is always a limit)"},
        {"max-skip-frac", FLAG_FLOAT, &max_skip, "0", 0, 1, MIM_SKIP_HELP},
        {"io-retries", FLAG_INT, &a.io_retries, "0", 0, 1000, "retry a failed checkpoint write (full disk, I/O error) N times, waiting 1, 2, 4 .. s (0: stop at once, keeping the previous checkpoint)"},
        {"resume", FLAG_BOOL, &a.resume, "0", 0, 1, "continue from the run folder's latest checkpoint"},
        {"stop-at", FLAG_I64, &a.stop_at, "0", 0, 1e15, "stop after this step with a checkpoint (0: run to the end)"},
        {"quiet", FLAG_BOOL, &a.quiet, "0", 0, 1, "no progress line"},
        {"on-nan", FLAG_STR, &on_nan, "stop", 0, 0, "non-finite loss/gradient: stop (keep the last checkpoint) or skip the step"},
        {"dist-check-every", FLAG_INT, &a.dist_check_every, "0", 0, 1 << 30, "MPI runs: check every N steps that all ranks hold the same weights"},
        {"dist-timeout", FLAG_FLOAT, &dist_timeout, "300", 0, 1e9, "MPI runs: seconds to wait for a silent peer before aborting the job (0: forever)"},
        {"debug-nan-at", FLAG_I64, &a.debug_nan_at, "0", 0, 1e15, "testing: put a NaN into the batch of this step"},
        {"precision", FLAG_STR, &precision, "auto", 0, 0, "linear layers: fp32, bf16 (oneDNN; emulated where the CPU lacks AMX/AVX512-BF16) or auto (bf16 where native, else fp32)"},
        {"profile", FLAG_BOOL, &a.profile, "0", 0, 1, "print time per op class per step (matmul, attention, ..., data wait)"},
    };
    const char* pos[1];
    int npos, nf = (int)(sizeof f / sizeof f[0]);
    int rc = flags_parse(f, nf, argc, argv,
                         "usage: mimscale pretrain [flags]\n"
                         "MAE pre-training on an IDX folder (Fashion-MNIST, 28x28 grayscale, the default)\n"
                         "or on webdataset shards through a sample index (mimscale index / subset).",
                         pos, 0, &npos);
    if (rc) return rc < 0 ? 2 : 0;
    if (mim_config_preset(&a.model, model)) { fprintf(stderr, "error: --model: %s\n", mim_err_msg()); return 2; }
    a.model.patch = patch;
    a.model.dec_dim = dec_dim; a.model.dec_depth = dec_depth; a.model.dec_heads = dec_heads;
    a.model.mask_ratio = mask_ratio;
    mim_target tgt = norm_pix ? MIM_TARGET_PIXEL_NORM : MIM_TARGET_PIXEL;
    if (target && target[0]) {
        if (mim_target_parse(target, &tgt)) { fprintf(stderr, "error: --target: %s\n", mim_err_msg()); return 2; }
        if (norm_pix && tgt != MIM_TARGET_PIXEL_NORM) {
            fprintf(stderr, "error: --norm-pix means --target pixel-norm; it does not go with --target %s\n", target);
            return 2;
        }
    }
    a.model.target = tgt;
    mim_loss lk = mim_target_default_loss(tgt);
    if (loss && loss[0] && mim_loss_parse(loss, &lk)) { fprintf(stderr, "error: --loss: %s\n", mim_err_msg()); return 2; }
    a.model.loss = lk;
    if (a.teacher && !a.teacher[0]) a.teacher = NULL;
    if (a.teacher_cache && !a.teacher_cache[0]) a.teacher_cache = NULL;
    if (!given(f, nf, "hog-cell")) a.hog_cell = 0;   // the library's default (8) unless asked for
    a.model.img_h = a.model.img_w = img;   // 0: from the data
    a.model.in_chans = chans;
    if (a.subset && !a.subset[0]) a.subset = NULL;
    if (a.val_data && !a.val_data[0]) a.val_data = NULL;
    if (chans == 0 && a.data) a.model.in_chans = mim_source_default_channels(a.data) == 3 ? 3 : 0;   // index data: RGB (IDX: its header's)
    a.seed = (uint64_t)seed;
    if (max_ram && mim_parse_size(max_ram, &a.max_ram)) { fprintf(stderr, "error: --max-ram: %s\n", mim_err_msg()); return 2; }
    if (!strcmp(on_nan, "skip")) a.on_nan = 1;
    else if (strcmp(on_nan, "stop") != 0) { fprintf(stderr, "error: --on-nan must be stop or skip, got '%s'\n", on_nan); return 2; }
    if ((rc = cli_precision(precision, a.quiet, &a.precision, &a.bf16_backend))) return rc;
    a.max_skip_frac = max_skip;
    // the library's rules on the flag combinations, as a usage error
    if (mim_pretrain_check_args(&a)) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 2; }
    cli_data_default_note(given(f, nf, "data"), a.data, a.quiet);
    char why[32];
    snprintf(why, sizeof why, "--img %d", img);
    cli_input_note(a.data, "train", img, why, a.quiet);
    mim_dist_set_timeout(dist_timeout);
    mim_signals_install();
    rc = mim_pretrain_run(&a);
    const char* nl = isatty(2) && !a.quiet ? "\n" : "";   // after a "\r" progress line
    if (rc == MIM_PRETRAIN_STOPPED) { fprintf(stderr, "%s%s\n", nl, mim_err_msg()); return MIM_EXIT_STOPPED; }
    if (rc) {
        fprintf(stderr, "%serror: %s\n", nl, mim_err_msg());
        return rc == MIM_PRETRAIN_NAN ? 3 : rc == MIM_EDATA ? MIM_EXIT_DATA : 1;
    }
    return 0;
}
