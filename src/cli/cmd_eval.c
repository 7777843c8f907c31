// cmd_eval.c: `mimscale knn` and `mimscale linprobe`: flags -> the shared
// feature setup (eval/features.h), then eval/knn.h or eval/linprobe.h.
// Prints per-epoch JSON lines (linprobe) and one final JSON line of metrics
// on stdout; progress on stderr; --out writes the final object to a file.
// Under mpirun the ranks split the feature extraction (eval/features.h); rank
// 0 then runs the kNN / probe on the gathered features and prints, the other
// ranks exit.
//
// The features are a checkpoint's encoder (--ckpt), or one of the baselines
// a study shows next to it: --features pixels (the normalised eval-transform
// images themselves, no model) or --init random (an encoder at its MAE
// initialisation from --seed, --model / --patch); the result JSON says which
// ("features": "ckpt", "pixels", "random-init").
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "data/idx.h"
#include "eval/featcache.h"
#include "core/jsonfile.h"
#include "eval/features.h"
#include "train/checkpoint.h"
#include "eval/knn.h"
#include "eval/linprobe.h"
#include "train/dist.h"
#include "core/safetensors.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>


// The flags both commands share (first NCOMMON entries of each table).
#define COMMON_FLAGS(a, pool, out, cache)                                                                            \
    {"features-cache", FLAG_STR, &(cache), "", 0, 0, "reuse / write the extracted features in this file (knn and linprobe on one checkpoint share it)"}, \
    {"save-features", FLAG_STR, &save_features, "", 0, 0, "write the features (train_x/_y, eval_x/_y) to this safetensors file"}, \
    {"dist-timeout", FLAG_FLOAT, &dist_timeout, "300", 0, 1e9, "MPI runs: seconds to wait for a silent peer before aborting (0: forever)"}, \
    {"ckpt", FLAG_STR, &(a).ckpt, "", 0, 0, "model.safetensors (mimscale or MAE-named; encoder-only is fine)"},     \
    {"features", FLAG_STR, &features_s, "encoder", 0, 0, "encoder: an encoder's pooled features (--ckpt or --init random); pixels: the normalised images themselves (baseline, no model)"}, \
    {"init", FLAG_STR, &init_s, "ckpt", 0, 0, "ckpt: the encoder of --ckpt; random: a randomly initialised encoder (baseline: --model, --patch, --seed)"}, \
    {"model", FLAG_STR, &(a).model, "vit_tiny", 0, 0, "architecture for --init random"},                           \
    {"patch", FLAG_INT, &(a).patch, "0", 0, 1024, "patch size for --init random (0: the preset's)"},               \
    {"img", FLAG_INT, &(a).img, "0", 0, 1 << 14, "input side for --features pixels / --init random (0: the data's own; a checkpoint has its own)"}, \
    {"in-chans", FLAG_INT, &(a).in_chans, "0", 0, 64, "input channels for --features pixels / --init random (0: 1 for IDX, 3 for index data)"}, \
    {"data", FLAG_STR, &(a).data, MIM_FASHION_MNIST_DIR, 0, 0, "train set: IDX folder or sample index (`mimscale index`)"}, \
    {"data-split", FLAG_STR, &(a).data_split, "train", 0, 0, "IDX split of --data"},                                \
    {"subset", FLAG_STR, &(a).subset, "", 0, 0, "subset file for an index --data (`mimscale subset`)"},             \
    {"eval-data", FLAG_STR, &(a).eval_data, "", 0, 0, "eval set: IDX folder or sample index (default: --data)"},    \
    {"eval-split", FLAG_STR, &(a).eval_split, "t10k", 0, 0, "IDX split of the eval set"},                           \
    {"eval-subset", FLAG_STR, &(a).eval_subset, "", 0, 0, "subset file for an index eval set"},                     \
    {"pool", FLAG_STR, &(pool), "cls", 0, 0, "features: cls (cls token) or mean (MAE global pool + fc_norm)"},      \
    {"batch", FLAG_INT, &(a).batch, "256", 1, 1 << 16, "images per encoder forward (feature extraction)"},          \
    {"threads", FLAG_INT, &(a).threads, "0", 0, 4096, "OpenMP/BLAS threads and loader workers (0: all cores)"},     \
    {"max-feature-gb", FLAG_FLOAT, &max_gb, "8", 0.001, 1e6, "refuse feature sets larger than this (N x D floats)"}, \
    {"out", FLAG_STR, &(out), "", 0, 0, "write the final metrics JSON to this file (missing folders are created)"},   \
    {"max-skip-frac", FLAG_FLOAT, &max_skip, "0", 0, 1, MIM_SKIP_HELP " (evaluation leaves bad samples out, never replaces them)"}, \
    {"quiet", FLAG_BOOL, &(a).quiet, "0", 0, 1, "no progress lines"}

static const char* opt(const char* s) { return s && *s ? s : NULL; }
static int given(const flag* f, int nf, const char* name) {
    for (int i = 0; i < nf; i++)
        if (!strcmp(f[i].name, name)) return f[i].set;
    return 0;
}
static const char* save_features, *features_s, *init_s;
static float dist_timeout, max_skip;

// --features / --init / --ckpt and the baseline flags -> a->mode, or an exit status (2).
static int parse_mode(mim_eval_common* a, const flag* f, int nf) {
    int pixels = !strcmp(features_s, "pixels"), random = !strcmp(init_s, "random");
    if (!pixels && strcmp(features_s, "encoder")) { fprintf(stderr, "error: --features must be encoder or pixels, got '%s'\n", features_s); return 2; }
    if (!random && strcmp(init_s, "ckpt")) { fprintf(stderr, "error: --init must be ckpt or random, got '%s'\n", init_s); return 2; }
    const char* why = NULL;
    if (pixels && random) why = "--features pixels runs no encoder: drop --init random";
    else if (pixels && opt(a->ckpt)) why = "--features pixels uses no checkpoint: drop --ckpt";
    else if (pixels && (given(f, nf, "model") || given(f, nf, "patch"))) why = "--model / --patch are for --init random, not --features pixels";
    else if (random && opt(a->ckpt)) why = "--init random builds its encoder: drop --ckpt (or --init random)";
    else if (!pixels && !random && !opt(a->ckpt))
        why = "--ckpt is required (a model.safetensors file), or a baseline: --features pixels, --init random --model NAME";
    else if (!pixels && !random && (given(f, nf, "model") || given(f, nf, "patch") || given(f, nf, "img") || given(f, nf, "in-chans")))
        why = "--model, --patch, --img and --in-chans go with --init random or --features pixels; a checkpoint has its own";
    if (why) { fprintf(stderr, "error: %s\n", why); return 2; }
    a->mode = pixels ? MIM_FEAT_PIXELS : random ? MIM_FEAT_RANDOM : MIM_FEAT_CKPT;
    return 0;
}

// Flags -> features (from the cache when it holds these features).
// Returns 0 (features on this rank: go on), -1 (a rank other than 0 under
// MPI: its part is done, exit 0) or an exit status.
static int setup(mim_eval_common* a, const char* pool, float max_gb, const char* cache, const char* out, const flag* f, int nf,
                 mim_features* tr, mim_features* ev, mim_config* cfg) {
    mim_dist_set_timeout(dist_timeout);
    a->subset = opt(a->subset); a->eval_data = opt(a->eval_data); a->eval_subset = opt(a->eval_subset);
    a->max_feature_gb = max_gb;
    a->max_skip_frac = max_skip;
    if (mim_pool_parse(pool, &a->pool)) { fprintf(stderr, "error: --pool: %s\n", mim_err_msg()); return 2; }
    int rc = parse_mode(a, f, nf);
    if (rc) return rc;
    if (opt(out) && mim_dist_get()->rank == 0 && cli_make_parent("--out", out)) return 2;   // before the long part
    cli_data_default_note(given(f, nf, "data"), a->data, a->quiet);
    mim_config ck;
    if (a->mode != MIM_FEAT_CKPT) {
        char why[32];
        snprintf(why, sizeof why, "--img %d", a->img);
        cli_input_note(a->data, a->data_split, a->img, why, a->quiet);
    } else if (mim_ckpt_read_config(a->ckpt, &ck) == 0)
        cli_input_note(a->data, a->data_split, ck.img_h, "the checkpoint's input size", a->quiet);
    char key[4096];
    int hit = 0;
    if (opt(cache)) {
        if (mim_featcache_key(key, sizeof key, a) || mim_eval_config(a, cfg)) {
            fprintf(stderr, "error: %s\n", mim_err_msg());
            return 1;
        }
        hit = mim_featcache_load(cache, key, tr, ev) == 0;
        if (hit && !a->quiet) fprintf(stderr, "features: %lld train + %lld eval x %d from %s\n", (long long)tr->n, (long long)ev->n, tr->dim, cache);
    }
    if (!hit) {
        mim_dist_context("features", -1);
        rc = mim_eval_features(a, tr, ev, cfg);
        if (rc) { fprintf(stderr, "error: %s\n", mim_err_msg()); return rc == MIM_EDATA ? MIM_EXIT_DATA : 1; }
    }
    if (mim_dist_get()->rank != 0) { mim_features_free(tr); mim_features_free(ev); return -1; }
    if (!hit && opt(cache) && mim_featcache_save(cache, key, tr, ev))   // a failed cache write costs speed, not the result
        fprintf(stderr, "warning: cannot write feature cache %s: %s\n", cache, mim_err_msg());
    if (opt(save_features) && mim_featcache_save(save_features, NULL, tr, ev)) {
        fprintf(stderr, "error: --save-features: %s\n", mim_err_msg());
        mim_features_free(tr); mim_features_free(ev);
        return 1;
    }
    return 0;
}

// Prints j as one line on stdout and, with out, writes it to that file.
static int emit(cJSON* j, const char* out) {
    char* s = cJSON_PrintUnformatted(j);
    if (!s) return 1;
    printf("%s\n", s);
    fflush(stdout);
    int rc = 0;
    if (opt(out) && mim_json_write_file(out, j)) {   // the record the study runner reads (core/jsonfile.h)
        fprintf(stderr, "error: --out: %s\n", mim_err_msg());
        rc = 1;
    }
    free(s);
    return rc;
}

// The samples the numbers stand on: each counted once; those left out (unreadable) are named.
static void add_counts(cJSON* j, const mim_features* tr, const mim_features* ev) {
    cJSON_AddNumberToObject(j, "n_skipped_train", (double)tr->n_skipped);
    cJSON_AddNumberToObject(j, "n_skipped_eval", (double)ev->n_skipped);
}

static void add_common(cJSON* j, const char* what, const mim_eval_common* a, const mim_config* cfg, int dim, double secs) {
    cJSON_AddStringToObject(j, "eval", what);
    cJSON_AddStringToObject(j, "features", mim_feat_mode_name(a->mode));
    if (a->mode == MIM_FEAT_CKPT) cJSON_AddStringToObject(j, "ckpt", a->ckpt);
    if (a->mode == MIM_FEAT_RANDOM) cJSON_AddNumberToObject(j, "init_seed", (double)a->seed);
    cJSON_AddStringToObject(j, "model", cfg->name);
    if (a->mode == MIM_FEAT_RANDOM) cJSON_AddNumberToObject(j, "patch", cfg->patch);
    cJSON_AddNumberToObject(j, "img", cfg->img_h);
    cJSON_AddNumberToObject(j, "in_chans", cfg->in_chans);
    cJSON_AddNumberToObject(j, "dim", dim);
    cJSON_AddStringToObject(j, "pool", a->mode == MIM_FEAT_PIXELS ? "none" : mim_pool_name(a->pool));
    cJSON_AddStringToObject(j, "data", a->data);
    cJSON_AddStringToObject(j, "eval_data", a->eval_data ? a->eval_data : a->data);
    cJSON_AddNumberToObject(j, "seconds", secs);
}

int cmd_knn(int argc, char** argv) {
    mim_eval_common a = {0};
    const char *pool = NULL, *out = NULL, *cache = NULL;
    float max_gb, T;
    int k;
    int64_t seed;
    flag f[] = {
        COMMON_FLAGS(a, pool, out, cache),
        {"k", FLAG_INT, &k, "20", 1, 1 << 16, "neighbours that vote"},
        {"temperature", FLAG_FLOAT, &T, "0.07", 1e-4, 100, "vote weight exp(similarity / T)"},
        {"seed", FLAG_I64, &seed, "0", 0, 9.2e18, "encoder init seed for --init random (kNN itself draws nothing)"},
    };
    const char* pos[1];
    int npos, nf = (int)(sizeof f / sizeof f[0]);
    int rc = flags_parse(f, nf, argc, argv,
                         "usage: mimscale knn --ckpt model.safetensors [flags]\n"
                         "       mimscale knn --features pixels [--img N] [flags]          (raw-pixel baseline)\n"
                         "       mimscale knn --init random --model NAME --patch P --seed S [flags]   (random-init baseline)\n"
                         "Weighted kNN on L2-normalised frozen features (DINO: k 20, T 0.07): every train\n"
                         "sample votes exp(sim/T) for its class if among the k nearest; top-1 / top-5 on the eval set.",
                         pos, 0, &npos);
    if (rc) return rc < 0 ? 2 : 0;
    a.seed = (uint64_t)seed;
    double t0 = omp_get_wtime();
    mim_features tr, ev;
    mim_config cfg;
    if ((rc = setup(&a, pool, max_gb, cache, out, f, nf, &tr, &ev, &cfg))) return rc < 0 ? 0 : rc;
    int dim = tr.dim;
    mim_l2_normalize_rows(tr.x, tr.n, tr.dim);
    mim_l2_normalize_rows(ev.x, ev.n, ev.dim);
    int C = tr.num_classes > ev.num_classes ? tr.num_classes : ev.num_classes;
    mim_knn_result r;
    double t1 = omp_get_wtime();
    rc = mim_knn_eval(&r, tr.x, tr.labels, tr.n, ev.x, ev.labels, ev.n, tr.dim, C, k, T);
    double t2 = omp_get_wtime();
    cJSON* j = cJSON_CreateObject();
    add_counts(j, &tr, &ev);
    mim_features_free(&tr);
    mim_features_free(&ev);
    if (rc) { cJSON_Delete(j); fprintf(stderr, "error: %s\n", mim_err_msg()); return 1; }
    cJSON_AddNumberToObject(j, "top1", r.top1);
    cJSON_AddNumberToObject(j, "top5", r.top5);
    cJSON_AddNumberToObject(j, "n_train", (double)r.n_train);
    cJSON_AddNumberToObject(j, "n_eval", (double)r.n_eval);
    cJSON_AddNumberToObject(j, "k", k);
    cJSON_AddNumberToObject(j, "temperature", T);
    cJSON_AddNumberToObject(j, "classes", C);
    cJSON_AddNumberToObject(j, "knn_seconds", t2 - t1);
    add_common(j, "knn", &a, &cfg, dim, t2 - t0);
    rc = emit(j, out);
    cJSON_Delete(j);
    return rc;
}

int cmd_linprobe(int argc, char** argv) {
    mim_eval_common a = {0};
    mim_linprobe_args lp;
    mim_linprobe_args_default(&lp);
    const char *pool = NULL, *out = NULL, *cache = NULL;
    float max_gb;
    int64_t seed;
    flag f[] = {
        COMMON_FLAGS(a, pool, out, cache),
        {"epochs", FLAG_INT, &lp.epochs, "20", 1, 1 << 20, "head training epochs over the cached features (MAE: 90)"},
        {"head-batch", FLAG_INT, &lp.batch, "256", 2, 1 << 24, "head training batch (MAE: 16384)"},
        {"blr", FLAG_FLOAT, &lp.blr, "10", 0, 1e4, "base lr: lr = blr x head-batch / 256 (MAE: 0.1 at batch 16384, i.e. lr 6.4)"},
        {"lr", FLAG_FLOAT, &lp.lr, "0", 0, 1e4, "absolute lr (overrides --blr when > 0)"},
        {"min-lr", FLAG_FLOAT, &lp.min_lr, "0", 0, 1e4, "lr at the end of the cosine"},
        {"warmup-epochs", FLAG_FLOAT, &lp.warmup_epochs, "2", 0, 1e6, "linear warm-up length in epochs (MAE: 10)"},
        {"weight-decay", FLAG_FLOAT, &lp.weight_decay, "0", 0, 10, "LARS weight decay (not on the bias)"},
        {"momentum", FLAG_FLOAT, &lp.momentum, "0.9", 0, 0.9999, "LARS momentum"},
        {"trust", FLAG_FLOAT, &lp.trust, "0.001", 0, 10, "LARS trust coefficient"},
        {"seed", FLAG_I64, &seed, "0", 0, 9.2e18, "seed for the head init and batch order (and the encoder, --init random)"},
    };
    const char* pos[1];
    int npos, nf = (int)(sizeof f / sizeof f[0]);
    int rc = flags_parse(f, nf, argc, argv,
                         "usage: mimscale linprobe --ckpt model.safetensors [flags]\n"
                         "       mimscale linprobe --features pixels [--img N] [flags]          (raw-pixel baseline)\n"
                         "       mimscale linprobe --init random --model NAME --patch P --seed S [flags]   (random-init baseline)\n"
                         "MAE linear probe, cached-feature protocol: features are extracted once (eval\n"
                         "transform, no augmentation), then BatchNorm1d(affine=False) + Linear is trained on\n"
                         "them with LARS, warm-up + cosine. MAE trains the probe on augmented images through\n"
                         "the encoder instead. Defaults for small data sets: 20 epochs, batch 256, blr 10,\n"
                         "warm-up 2 (MAE: 90 epochs, batch 16384, blr 0.1 = lr 6.4, warm-up 10). LARS moves\n"
                         "the weight by about lr x 0.001 of its norm per step, so the lr, not blr, must stay\n"
                         "near MAE's: at batch 256, blr 0.1 (lr 0.1) leaves the head nearly untrained.",
                         pos, 0, &npos);
    if (rc) return rc < 0 ? 2 : 0;
    lp.seed = (uint64_t)seed;
    a.seed = (uint64_t)seed;
    lp.quiet = a.quiet;
    lp.log = a.quiet ? NULL : stdout;
    double t0 = omp_get_wtime();
    mim_features tr, ev;
    mim_config cfg;
    if ((rc = setup(&a, pool, max_gb, cache, out, f, nf, &tr, &ev, &cfg))) return rc < 0 ? 0 : rc;
    int dim = tr.dim;
    mim_linprobe_result r;
    double t1 = omp_get_wtime();
    rc = mim_linprobe_train(&r, &tr, &ev, &lp);
    double t2 = omp_get_wtime();
    int C = tr.num_classes > ev.num_classes ? tr.num_classes : ev.num_classes;
    cJSON* j = cJSON_CreateObject();
    add_counts(j, &tr, &ev);
    mim_features_free(&tr);
    mim_features_free(&ev);
    if (rc) { cJSON_Delete(j); fprintf(stderr, "error: %s\n", mim_err_msg()); return 1; }
    cJSON_AddNumberToObject(j, "top1", r.top1);
    cJSON_AddNumberToObject(j, "top5", r.top5);
    cJSON_AddNumberToObject(j, "n_train", (double)r.n_train);
    cJSON_AddNumberToObject(j, "n_eval", (double)r.n_eval);
    cJSON_AddNumberToObject(j, "best_top1", r.best_top1);
    cJSON_AddNumberToObject(j, "eval_loss", r.eval_loss);
    cJSON_AddNumberToObject(j, "classes", C);
    cJSON_AddNumberToObject(j, "epochs", r.epochs);
    cJSON_AddNumberToObject(j, "head_batch", r.batch);
    cJSON_AddNumberToObject(j, "lr", r.lr);
    cJSON_AddNumberToObject(j, "steps", r.steps);
    cJSON_AddStringToObject(j, "protocol", "cached-features");
    cJSON_AddNumberToObject(j, "train_seconds", t2 - t1);
    add_common(j, "linprobe", &a, &cfg, dim, t2 - t0);
    mim_linprobe_result_free(&r);
    rc = emit(j, out);
    cJSON_Delete(j);
    return rc;
}
