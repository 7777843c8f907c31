// cmd_finetune.c: `mimscale finetune`: flags -> mim_finetune_args.
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "data/source.h"
#include "core/jsonfile.h"
#include "core/mem.h"
#include "data/idx.h"
#include "train/finetune.h"
#include "train/dist.h"
#include "train/checkpoint.h"
#include "train/signals.h"
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cmd_finetune(int argc, char** argv) {
    mim_finetune_args a = {0};
    const char *init = NULL, *model = NULL, *precision = NULL, *max_ram = NULL, *result = NULL;
    int patch, chans;
    float dist_timeout, max_skip;
    int64_t seed;
    flag f[] = {
        {"ckpt", FLAG_STR, &a.ckpt, "", 0, 0, "pre-trained model.safetensors (MAE / mimscale names)"},
        {"init", FLAG_STR, &init, "ckpt", 0, 0, "ckpt: start from --ckpt; random: train from scratch (baseline)"},
        {"model", FLAG_STR, &model, "vit_tiny", 0, 0, "architecture for --init random"},
        {"patch", FLAG_INT, &patch, "4", 1, 1024, "patch size for --init random"},
        {"in-chans", FLAG_INT, &chans, "0", 0, 64, "input channels (0: 1 for IDX, 3 for index data)"},
        {"img", FLAG_INT, &a.img, "0", 0, 1 << 14, "fine-tuning resolution (0: the checkpoint's, or the data's)"},
        {"data", FLAG_STR, &a.data, MIM_FASHION_MNIST_DIR, 0, 0, "training data: IDX folder or sample index"},
        {"data-split", FLAG_STR, &a.data_split, "train", 0, 0, "IDX split for training"},
        {"subset", FLAG_STR, &a.subset, "", 0, 0, "subset file (index data)"},
        {"eval-data", FLAG_STR, &a.eval_data, "", 0, 0, "evaluation data (default: --data)"},
        {"eval-split", FLAG_STR, &a.eval_split, "t10k", 0, 0, "IDX split for evaluation"},
        {"out", FLAG_STR, &a.out, "runs/finetune", 0, 0, "run folder: metrics.jsonl, checkpoint-best/last (created with its parents)"},
        {"result", FLAG_STR, &result, "", 0, 0, "also write the final result JSON (the stdout line) to this file, atomically"},
        {"batch", FLAG_INT, &a.batch, "128", 1, 1 << 20, "images per step"},
        {"accum", FLAG_INT, &a.accum, "1", 1, 1 << 16, "gradient accumulation steps"},
        {"epochs", FLAG_FLOAT, &a.epochs, "10", 0, 1e6, "training length in epochs"},
        {"steps", FLAG_I64, &a.steps, "0", 0, 1e15, "training length in steps (overrides --epochs)"},
        {"eval-every", FLAG_INT, &a.eval_every, "1", 1, 1 << 20, "evaluate (and save best/last) every N epochs and at the end"},
        {"blr", FLAG_FLOAT, &a.blr, "1e-3", 0, 10, "base lr: lr = blr x effective batch / 256"},
        {"lr", FLAG_FLOAT, &a.lr, "0", 0, 10, "absolute lr (overrides --blr when > 0)"},
        {"min-lr", FLAG_FLOAT, &a.min_lr, "1e-6", 0, 10, "lr at the end of the cosine"},
        {"warmup-epochs", FLAG_FLOAT, &a.warmup_epochs, "1", 0, 1e6, "linear warm-up in epochs (with --steps too: this many epochs of steps, capped at the run)"},
        {"warmup-steps", FLAG_I64, &a.warmup_steps, "0", 0, 1e15, "linear warm-up in optimizer steps (overrides --warmup-epochs when > 0)"},
        {"weight-decay", FLAG_FLOAT, &a.weight_decay, "0.05", 0, 10, "AdamW weight decay"},
        {"layer-decay", FLAG_FLOAT, &a.layer_decay, "0.75", 0, 1, "layer-wise lr decay (1: off)"},
        {"drop-path", FLAG_FLOAT, &a.drop_path, "0.1", 0, 0.99, "stochastic depth rate"},
        {"smoothing", FLAG_FLOAT, &a.smoothing, "0.1", 0, 1, "label smoothing"},
        {"mixup", FLAG_FLOAT, &a.mixup, "0.8", 0, 100, "mixup alpha (0: off)"},
        {"cutmix", FLAG_FLOAT, &a.cutmix, "1.0", 0, 100, "cutmix alpha (0: off)"},
        {"reprob", FLAG_FLOAT, &a.reprob, "0.25", 0, 1, "random erasing probability"},
        {"aa", FLAG_STR, &a.aa, "rand-m9-mstd0.5-inc1", 0, 0, "RandAugment policy ('none': off)"},
        {"global-pool", FLAG_BOOL, &a.global_pool, "1", 0, 1, "mean of patch tokens + fc_norm (0: cls token)"},
        {"seed", FLAG_I64, &seed, "0", 0, 9.2e18, "seed"},
        {"threads", FLAG_INT, &a.threads, "0", 0, 4096, "OpenMP/BLAS threads (0: all cores)"},
        {"data-threads", FLAG_INT, &a.data_threads, "2", 1, 256, "decode workers for index data"},
        {"log-every", FLAG_INT, &a.log_every, "0", 0, 1 << 30, "metrics row (step, loss, lr) every N steps (0: per epoch only)"},
        {"dist-timeout", FLAG_FLOAT, &dist_timeout, "300", 0, 1e9, "MPI runs: seconds to wait for a silent peer before aborting the job (0: forever)"},
        {"save-every", FLAG_INT, &a.save_every, "0", 0, 1 << 30, "run checkpoint (ckpt-<step>/, for --resume) every N steps (0: each epoch); also at the end"},
        {"keep", FLAG_INT, &a.keep, "2", 0, 1 << 20, "run checkpoints kept (0: all)"},
        {"resume", FLAG_BOOL, &a.resume, "0", 0, 1, "continue from the run folder's latest checkpoint (fresh start if none)"},
        {"max-ram", FLAG_STR, &max_ram, "", 0, 0, "refuse to start when the memory estimate (printed at start) exceeds this, e.g. 8G, 512M"},
        {"max-skip-frac", FLAG_FLOAT, &max_skip, "0", 0, 1, MIM_SKIP_HELP},
        {"io-retries", FLAG_INT, &a.io_retries, "0", 0, 1000, "retry a failed checkpoint write (full disk, I/O error) N times (0: stop at once)"},
        {"quiet", FLAG_BOOL, &a.quiet, "0", 0, 1, "no progress line"},
        {"precision", FLAG_STR, &precision, "auto", 0, 0, "encoder linears: fp32, bf16 (emulated without AMX/AVX512-BF16) or auto (bf16 where native)"},
    };
    const char* pos[1];
    int npos, nf = (int)(sizeof f / sizeof f[0]);
    int rc = flags_parse(f, nf, argc, argv,
                         "usage: mimscale finetune --ckpt model.safetensors [flags]\n"
                         "       mimscale finetune --init random --model vit_tiny [flags]\n"
                         "Supervised fine-tuning with the MAE recipe; reports top-1/top-5 each epoch.",
                         pos, 0, &npos);
    if (rc) return rc < 0 ? 2 : 0;
    if (max_ram && mim_parse_size(max_ram, &a.max_ram)) { fprintf(stderr, "error: --max-ram: %s\n", mim_err_msg()); return 2; }
    if (!strcmp(init, "random")) a.init_random = 1;
    else if (strcmp(init, "ckpt") != 0) { fprintf(stderr, "error: --init must be ckpt or random, got '%s'\n", init); return 2; }
    if (!a.init_random && (!a.ckpt || !a.ckpt[0])) { fprintf(stderr, "error: --ckpt is required unless --init random\n"); return 2; }
    if (a.init_random) {
        if (mim_config_preset(&a.model, model)) { fprintf(stderr, "error: --model: %s\n", mim_err_msg()); return 2; }
        a.model.patch = patch;
        a.model.img_h = a.model.img_w = a.img;
        a.model.in_chans = chans;
        if (chans == 0) a.model.in_chans = mim_source_default_channels(a.data) == 3 ? 3 : 0;   // index data: RGB (IDX: its header's)
    }
    if (a.subset && !a.subset[0]) a.subset = NULL;
    if (a.eval_data && !a.eval_data[0]) a.eval_data = NULL;
    a.seed = (uint64_t)seed;
    if ((rc = cli_precision(precision, a.quiet, &a.precision, &a.bf16_backend))) return rc;
    a.max_skip_frac = max_skip;
    int data_given = 0;
    for (int i = 0; i < nf; i++)
        if (!strcmp(f[i].name, "data")) data_given = f[i].set;
    cli_data_default_note(data_given, a.data, a.quiet);
    {   // the input size: --img, else the checkpoint's (--init random: the data's own)
        mim_config ck;
        char why[48];
        int side = a.img;
        snprintf(why, sizeof why, "--img %d", a.img);
        if (!side && !a.init_random && mim_ckpt_read_config(a.ckpt, &ck) == 0) {
            side = ck.img_h;
            snprintf(why, sizeof why, "the checkpoint's input size");
        }
        cli_input_note(a.data, a.data_split, side, why, a.quiet);
    }
    mim_dist_set_timeout(dist_timeout);
    mim_finetune_result res;
    mim_signals_install();
    rc = mim_finetune_run(&a, &res);
    const char* nl = isatty(2) && !a.quiet ? "\n" : "";   // after a "\r" progress line
    if (rc == MIM_FINETUNE_STOPPED) { fprintf(stderr, "%s%s\n", nl, mim_err_msg()); return MIM_EXIT_STOPPED; }
    if (rc) { fprintf(stderr, "%serror: %s\n", nl, mim_err_msg()); return rc == MIM_EDATA ? MIM_EXIT_DATA : 1; }
    if (mim_dist_get()->rank != 0) return 0;
    // The result record: one line on stdout and, with --result, the file the study runner reads.
    char line[512];
    snprintf(line, sizeof line, "{\"top1\": %.4f, \"top5\": %.4f, \"best_top1\": %.4f, \"n_eval\": %lld, \"n_skipped\": %lld, \"steps\": %lld, "
             "\"seconds\": %.1f}", res.top1, res.top5, res.best_top1, (long long)res.n_eval, (long long)res.n_skipped,
             (long long)res.steps, res.seconds);
    printf("%s\n", line);
    fflush(stdout);
    if (result && result[0]) {
        cJSON* j = cJSON_Parse(line);
        int wr = j ? mim_json_write_file(result, j) : mim_err(MIM_ENOMEM, "out of memory");
        cJSON_Delete(j);
        if (wr) { fprintf(stderr, "error: --result: %s\n", mim_err_msg()); return 1; }
    }
    return 0;
}
