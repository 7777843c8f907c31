// features.c: frozen-encoder feature extraction, and its raw-pixel and
// random-init baselines (see features.h).
#include "eval/features.h"
#include "core/check.h"
#include "data/index.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/pretrain.h"
#include "train/dist.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void openblas_set_num_threads(int);

int mim_pool_parse(const char* s, mim_pool* pool) {
    if (s && !strcmp(s, "cls")) { *pool = MIM_POOL_CLS; return 0; }
    if (s && !strcmp(s, "mean")) { *pool = MIM_POOL_MEAN; return 0; }
    return mim_err(MIM_EARG, "unknown pooling '%s' (known: cls, mean)", s ? s : "(null)");
}

const char* mim_pool_name(mim_pool pool) { return pool == MIM_POOL_MEAN ? "mean" : "cls"; }

void mim_features_pool(float* out, float* scratch, const mim_mae* m, const float* tokens, int B, mim_pool pool) {
    const int D = m->cfg.dim, T = m->T, L = m->L;
    CHECK(T == 1 + L);   // mask_ratio 0
    if (pool == MIM_POOL_CLS) {
        for (int b = 0; b < B; b++) memcpy(out + (size_t)b * D, tokens + (size_t)b * T * D, sizeof(float) * D);
        return;
    }
    // global pool: fc_norm(mean of patch tokens) on the pre-norm last block output
    const float* x = m->cfg.depth > 0 ? m->enc[m->cfg.depth - 1].out : m->x0;
    #pragma omp parallel for if ((size_t)B * T * D >= 65536)
    for (int b = 0; b < B; b++) {
        float* y = scratch + (size_t)b * D;
        const float* xb = x + (size_t)b * T * D;
        for (int d = 0; d < D; d++) {
            double s = 0.0;
            for (int l = 1; l < T; l++) s += xb[(size_t)l * D + d];
            y[d] = (float)(s / L);
        }
        double mu = 0.0, var = 0.0;
        for (int d = 0; d < D; d++) mu += y[d];
        mu /= D;
        for (int d = 0; d < D; d++) var += (y[d] - mu) * (y[d] - mu);
        double r = 1.0 / sqrt(var / D + 1e-6);
        for (int d = 0; d < D; d++) out[(size_t)b * D + d] = (float)((y[d] - mu) * r);
    }
}

void mim_l2_normalize_rows(float* x, int64_t n, int D) {
    #pragma omp parallel for if (n * D >= 65536)
    for (int64_t i = 0; i < n; i++) {
        float* r = x + (size_t)i * D;
        double s = 0.0;
        for (int d = 0; d < D; d++) s += (double)r[d] * r[d];
        if (s > 0.0) {
            float inv = (float)(1.0 / sqrt(s));
            for (int d = 0; d < D; d++) r[d] *= inv;
        }
    }
}

void mim_features_free(mim_features* f) {
    free(f->x);
    free(f->labels);
    memset(f, 0, sizeof *f);
}

static void fmt_secs(char* buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "?"); return; }
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

// "\rfeatures train: 12000/60000 (20%) | 3456 img/s | ETA 0:11", at most
// every half second (on a terminal) or every 10% (otherwise), and at the end.
typedef struct { const char* what; int64_t total; double t0, last; int tty, last_pct; } progress;

static void progress_show(progress* p, int64_t done) {
    double t = omp_get_wtime(), el = t - p->t0;
    int pct = p->total ? (int)(100 * done / p->total) : 100;
    int end = done >= p->total;
    if (!end && (p->tty ? t - p->last < 0.5 : pct / 10 == p->last_pct / 10)) return;
    p->last = t; p->last_pct = pct;
    double ips = el > 0 ? done / el : 0;
    char eta[32], tot[32];
    fmt_secs(eta, sizeof eta, ips > 0 ? (p->total - done) / ips : -1);
    fmt_secs(tot, sizeof tot, el);
    fprintf(stderr, "%sfeatures %s: %lld/%lld (%d%%) | %.0f img/s | %s %s   %s", p->tty ? "\r" : "", p->what,
            (long long)done, (long long)p->total, pct, ips, end ? "took" : "ETA", end ? tot : eta,
            p->tty && !end ? "" : "\n");
    fflush(stderr);
}

// Encodes n images of imgs (n <= max_batch) and writes their pooled features.
static void encode_pool(mim_mae* m, const float* imgs, int n, mim_pool pool, float* out, float* scratch) {
    const float* tok = mim_mae_encode(m, imgs, n);
    mim_features_pool(out, scratch, m, tok, n, pool);
}

// Sums the skip counters of the sources over every rank and prints them on
// rank 0 (nothing for in-memory sources). Collective.
static void print_counters(mim_source* const* srcs, int n, const char* what, int quiet) {
    mim_loader_counters t = {0}, c;
    int has = 0;
    for (int i = 0; i < n; i++) {
        if (!srcs[i] || !mim_source_get_counters(srcs[i], &c)) continue;
        has = 1;
        t.samples += c.samples; t.read_errors += c.read_errors; t.decode_errors += c.decode_errors;
        t.too_big += c.too_big; t.unsupported += c.unsupported; t.replaced += c.replaced; t.unfilled += c.unfilled;
    }
    uint64_t* f[] = {&t.samples, &t.read_errors, &t.decode_errors, &t.too_big, &t.unsupported, &t.replaced, &t.unfilled};
    double v[8];
    for (int i = 0; i < 7; i++) v[i] = (double)*f[i];
    v[7] = has;
    mim_dist_allreduce_sum_dv(v, 8);
    for (int i = 0; i < 7; i++) *f[i] = (uint64_t)v[i];
    if (v[7] == 0 || quiet || mim_dist_get()->rank != 0) return;
    char cnt[512];
    mim_loader_counters_format(&t, cnt, sizeof cnt);
    if (cnt[0]) fprintf(stderr, "%s (features %s)\n", cnt, what);
}

#define LEFT_OUT (-2)   // label of a row whose sample could not be read (dropped before returning)

// The features of n images imgs (n, C, H, W) into out (n, D): the encoder's
// pooled output, or (m NULL) the pixels themselves.
static void featurize(mim_mae* m, const float* imgs, int n, mim_pool pool, float* out, float* scratch, int D) {
    if (m) encode_pool(m, imgs, n, pool, out, scratch);
    else memcpy(out, imgs, sizeof(float) * (size_t)n * D);
}

// mim_features_extract (m) and mim_features_extract_pixels (m NULL): one path.
static int extract(mim_features* out, mim_mae* m, const mim_source_config* src, mim_pool pool,
                   double max_feature_gb, const char* what, int quiet) {
    memset(out, 0, sizeof *out);
    const mim_config* c = m ? &m->cfg : NULL;
    if (m && m->T != 1 + m->L) return mim_err(MIM_EARG, "feature extraction needs a model built with mask_ratio 0");
    int B = src->batch;
    if (B < 1 || (m && B > m->max_batch))
        return mim_err(MIM_EARG, "batch %d outside [1, %d] (the model's capacity)", B, m ? m->max_batch : 1 << 30);
    int D = c ? c->dim : 0;   // pixels: C x H x W, once the source says its geometry
    const mim_dist* d = mim_dist_get();
    int W = d->world, me = d->rank;
    what = what ? what : "";
    quiet = quiet || me != 0;
    mim_source_config sc = *src;
    sc.augment = 0; sc.shuffle = 0; sc.rank = 0; sc.world = 1; sc.no_replace = 1;   // never count a sample twice
    if (c) { sc.channels = c->in_chans; sc.height = c->img_h; sc.width = c->img_w; }

    // the batch-1 source gives the size and, later, the remainder
    mim_source *s1 = NULL, *sb = NULL;
    float *imgs = NULL, *scratch = NULL;
    int32_t* lab = NULL;
    int64_t* ids = NULL;
    int64_t* first = mim_calloc((size_t)W + 1, sizeof(int64_t));
    int64_t N = 0, lo = 0, hi = 0, done_n = 0;
    int r = 0;
    sc.batch = 1;
    int rc = first ? mim_source_open(&s1, &sc) : MIM_ENOMEM;
    if (rc) goto agree;
    N = mim_source_size(s1);
    int cc, hh, ww;
    mim_source_geometry(s1, &cc, &hh, &ww);
    if (!c) {
        if ((int64_t)cc * hh * ww > (1 << 24)) {
            rc = mim_err(MIM_EARG, "%s: pixel features of %dx%dx%d images are %lld wide, above 2^24 (a smaller --img)", src->path,
                         cc, hh, ww, (long long)cc * hh * ww);
            goto agree;
        }
        D = cc * hh * ww;
    } else if (cc != c->in_chans || hh != c->img_h || ww != c->img_w) {
        rc = mim_err(MIM_EARG, "%s: images are %dx%dx%d, the model takes %dx%dx%d", src->path, cc, hh, ww,
                     c->in_chans, c->img_h, c->img_w);
        goto agree;
    }
    double gb = (double)N * D * sizeof(float) / (1u << 30);
    if (gb > max_feature_gb) {
        rc = mim_err(MIM_ENOMEM, "%s: %lld samples x %d features need %.3g GiB, above the cap of %.3g GiB "
                     "(evaluate on a --subset, or raise --max-feature-gb)", src->path, (long long)N, D, gb, max_feature_gb);
        goto agree;
    }
    if (N < 1) { rc = mim_err(MIM_EARG, "%s: no samples", src->path); goto agree; }
    if (B > N) B = (int)N;
    // rank r: whole batches [nfull r / W, nfull (r+1) / W), the last rank
    // also the remainder, so every sample is encoded in the batch one
    // process would use (same bits); rank 0 holds all rows in the end
    int64_t nfull = N / B;
    for (int k = 0; k < W; k++) first[k] = nfull * k / W * B;
    first[W] = N;
    lo = first[me]; hi = first[me + 1];
    size_t per = (size_t)cc * hh * ww, rows = (size_t)(me == 0 ? N : hi - lo);
    out->n = N; out->dim = D;
    out->x = mim_malloc((rows ? rows : 1) * D * sizeof(float));
    out->labels = mim_malloc((rows ? rows : 1) * sizeof(int32_t));
    imgs = mim_malloc((size_t)B * per * sizeof(float));
    scratch = m ? mim_malloc((size_t)B * D * sizeof(float)) : NULL;
    lab = mim_malloc((size_t)B * sizeof(int32_t));
    ids = mim_malloc((size_t)B * sizeof(int64_t));
    if (!out->x || !out->labels || !imgs || (m && !scratch) || !lab || !ids) { rc = MIM_ENOMEM; goto agree; }

    char label[128];
    if (W > 1) snprintf(label, sizeof label, "%s (rank 0 of %d)", what, W);
    else snprintf(label, sizeof label, "%s", what);
    progress pr = {.what = label, .total = hi - lo, .t0 = omp_get_wtime(), .tty = isatty(2), .last_pct = -1};
    int64_t kfull = (me == W - 1 ? nfull * B : hi) - lo;   // whole batches of this rank, in samples
    done_n = lo;
    if (kfull > 0) {
        sc.batch = B;
        if ((rc = mim_source_open(&sb, &sc))) goto agree;
        if ((rc = mim_source_set_position(sb, (mim_source_pos){0, lo}))) goto agree;
        for (int64_t i = 0; i < kfull / B; i++) {
            if ((rc = mim_source_next_ids(sb, imgs, out->labels + (done_n - lo), ids))) goto agree;
            for (int b = 0; b < B; b++)
                if (ids[b] < 0) out->labels[done_n - lo + b] = LEFT_OUT;
            featurize(m, imgs, B, pool, out->x + (size_t)(done_n - lo) * D, scratch, D);
            done_n += B;
            if (!quiet) progress_show(&pr, done_n - lo);
        }
    }
    // the remainder one sample at a time, encoded together
    r = (int)(hi - done_n);
    if (r > 0) {
        CHECK(r < B);
        if ((rc = mim_source_set_position(s1, (mim_source_pos){0, done_n}))) goto agree;
        for (int i = 0; i < r; i++) {
            if ((rc = mim_source_next_ids(s1, imgs + (size_t)i * per, out->labels + (done_n - lo) + i, ids))) goto agree;
            if (ids[0] < 0) out->labels[done_n - lo + i] = LEFT_OUT;
        }
        featurize(m, imgs, r, pool, out->x + (size_t)(done_n - lo) * D, scratch, D);
        done_n += r;
        if (!quiet) progress_show(&pr, done_n - lo);
    }
    for (int64_t i = lo; i < hi; i++) {
        if (out->labels[i - lo] == LEFT_OUT) continue;
        if (out->labels[i - lo] < 0) {
            rc = mim_err(MIM_EFORMAT, "%s: sample %lld has no label (kNN and the linear probe need labelled data)",
                         src->path, (long long)i);
            goto agree;
        }
        if (out->labels[i - lo] > MIM_MAX_LABEL) {
            rc = mim_err(MIM_EFORMAT, "%s: sample %lld has label %d, beyond any class count (corrupt .cls?)", src->path,
                         (long long)i, out->labels[i - lo]);
            goto agree;
        }
    }
    for (size_t i = 0; i < (size_t)(hi - lo) * D; i++)
        if (out->labels[i / D] != LEFT_OUT && !isfinite(out->x[i])) {
            rc = mim_err(MIM_EFORMAT, "%s: non-finite feature (sample %lld)", src->path, (long long)(lo + (int64_t)(i / D)));
            goto agree;
        }
agree:
    // every rank gets here (a rank that failed alone must not leave the others in the gather)
    if (W > 1 && mim_dist_allreduce_max_i64(rc != 0) && !rc)
        rc = mim_err(MIM_EIO, "feature extraction failed on another rank (see its message)");
    if (!rc) {
        mim_source* both[2] = {sb, s1};
        print_counters(both, 2, what, quiet);
        mim_dist_gather_rows(out->x, sizeof(float) * D, first, 0);
        mim_dist_gather_rows(out->labels, sizeof(int32_t), first, 0);
        int64_t mine = 0;
        for (int64_t i = lo; i < hi; i++) mine += out->labels[i - lo] == LEFT_OUT;
        uint64_t left = (uint64_t)mine;
        mim_dist_allreduce_sum_u64(&left, 1);
        out->n_skipped = (int64_t)left;
        if (me != 0) {   // rank 0 holds the set
            free(out->x); free(out->labels);
            out->x = NULL; out->labels = NULL; out->n = 0;
        } else if (left) {   // the left-out rows go: what remains is each readable sample once
            int64_t k = 0;
            for (int64_t i = 0; i < N; i++) {
                if (out->labels[i] == LEFT_OUT) continue;
                if (k != i) {
                    memmove(out->x + (size_t)k * D, out->x + (size_t)i * D, sizeof(float) * D);
                    out->labels[k] = out->labels[i];
                }
                k++;
            }
            out->n = k;
        }
        double allow = src->max_skip_frac > 0 ? src->max_skip_frac : MIM_DEFAULT_SKIP_FRAC;
        if ((int64_t)left >= N)
            rc = mim_err(MIM_EDATA, "%s: no sample of the %s set could be read (%lld left out)", src->path, what,
                         (long long)left);
        else if ((double)left / (double)N > allow)
            rc = mim_err(MIM_EDATA, "%s: %lld of %lld %s samples could not be read and were left out (%.2f%%), more "
                         "than the %.3g%% allowed; fix the data or allow it with --max-skip-frac", src->path,
                         (long long)left, (long long)N, what, 100.0 * (double)left / (double)N, 100 * allow);
        for (int64_t i = 0; i < out->n; i++)
            if (out->labels[i] + 1 > out->num_classes) out->num_classes = out->labels[i] + 1;
    }
    mim_source_close(sb);
    mim_source_close(s1);
    free(imgs); free(scratch); free(lab); free(ids); free(first);
    if (rc) mim_features_free(out);
    return rc;
}

int mim_features_extract(mim_features* out, mim_mae* m, const mim_source_config* src, mim_pool pool,
                         double max_feature_gb, const char* what, int quiet) {
    CHECK(m);
    return extract(out, m, src, pool, max_feature_gb, what, quiet);
}

int mim_features_extract_pixels(mim_features* out, const mim_source_config* src, double max_feature_gb,
                                const char* what, int quiet) {
    return extract(out, NULL, src, MIM_POOL_CLS, max_feature_gb, what, quiet);
}

const char* mim_feat_mode_name(mim_feat_mode m) {
    return m == MIM_FEAT_PIXELS ? "pixels" : m == MIM_FEAT_RANDOM ? "random-init" : "ckpt";
}

// The train source of a (its geometry left 0: set by the caller).
static mim_source_config train_source(const mim_eval_common* a, int batch, int threads) {
    return (mim_source_config){.path = a->data, .split = a->data_split ? a->data_split : "train", .subset = a->subset,
                               .batch = batch, .seed = 0, .threads = threads, .max_skip_frac = a->max_skip_frac};
}

// The input geometry of the baselines: a.img x a.img x a.in_chans, 0s
// filled from the train data (IDX: its header, 1 channel; an index: 3
// channels, and the size must be given: its images have none).
static int input_geometry(const mim_eval_common* a, int* C, int* H, int* W) {
    if (!a->data || !*a->data) return mim_err(MIM_EARG, "no train data given (--data)");
    mim_source_config sc = train_source(a, 1, 1);
    sc.channels = a->in_chans > 0 ? a->in_chans : mim_source_default_channels(a->data);
    sc.height = sc.width = a->img;
    uint64_t bytes;
    return mim_source_estimate(&sc, &bytes, C, H, W);
}

int mim_eval_config(const mim_eval_common* a, mim_config* cfg) {
    memset(cfg, 0, sizeof *cfg);
    int rc, C, H, W;
    switch (a->mode) {
    case MIM_FEAT_CKPT:
        if (!a->ckpt || !*a->ckpt) return mim_err(MIM_EARG, "no checkpoint given (--ckpt model.safetensors)");
        if ((rc = mim_ckpt_read_config(a->ckpt, cfg))) return rc;
        cfg->mask_ratio = 0.0f;
        cfg->dec_depth = 0;   // the decoder is not needed; its blocks are not loaded
        return mim_config_validate(cfg);
    case MIM_FEAT_RANDOM:
        if ((rc = mim_config_preset(cfg, a->model && *a->model ? a->model : "vit_tiny"))) return rc;
        if (a->patch > 0) cfg->patch = a->patch;
        if ((rc = input_geometry(a, &C, &H, &W))) return rc;
        cfg->in_chans = C; cfg->img_h = H; cfg->img_w = W;
        cfg->mask_ratio = 0.0f;
        cfg->dec_dim = 0; cfg->dec_depth = 0; cfg->dec_heads = 1;   // encoder only, as finetune --init random
        if ((rc = mim_check_input_geometry(cfg, a->img > 0 ? NULL : "the data's", 1))) return rc;
        return mim_config_validate(cfg);
    case MIM_FEAT_PIXELS:
        if ((rc = input_geometry(a, &C, &H, &W))) return rc;
        if ((int64_t)C * H * W > (1 << 24))
            return mim_err(MIM_EARG, "pixel features of %dx%dx%d images are %lld wide, above 2^24 (a smaller --img)", C, H, W,
                           (long long)C * H * W);
        snprintf(cfg->name, sizeof cfg->name, "pixels");
        cfg->in_chans = C; cfg->img_h = H; cfg->img_w = W;
        cfg->dim = C * H * W;
        return 0;
    }
    return mim_err(MIM_EARG, "unknown feature mode %d", (int)a->mode);
}

int mim_eval_features(const mim_eval_common* a, mim_features* train, mim_features* eval, mim_config* cfg_out) {
    memset(train, 0, sizeof *train);
    memset(eval, 0, sizeof *eval);
    if (a->mode == MIM_FEAT_CKPT && (!a->ckpt || !*a->ckpt)) return mim_err(MIM_EARG, "no checkpoint given (--ckpt model.safetensors)");
    if (a->threads > 0) { omp_set_num_threads(a->threads); openblas_set_num_threads(a->threads); }
    mim_config cfg;
    int rc = mim_eval_config(a, &cfg);
    if (rc) return rc;
    int batch = a->batch > 0 ? a->batch : 256;
    int lt = a->threads > 0 ? a->threads : 2;
    mim_source_config tr = train_source(a, batch, lt);
    mim_source_config ev = {.path = a->eval_data ? a->eval_data : a->data,
                            .split = a->eval_split ? a->eval_split : "t10k", .subset = a->eval_subset,
                            .batch = batch, .seed = 0, .threads = lt, .max_skip_frac = a->max_skip_frac};
    double cap = a->max_feature_gb > 0 ? a->max_feature_gb : 8.0;
    if ((rc = mim_index_classes_check(tr.path, ev.path))) return rc;   // labels mean the same
    if (a->mode == MIM_FEAT_PIXELS) {
        tr.channels = ev.channels = cfg.in_chans; tr.height = ev.height = cfg.img_h; tr.width = ev.width = cfg.img_w;
        rc = mim_features_extract_pixels(train, &tr, cap, "train", a->quiet);
        if (!rc) rc = mim_features_extract_pixels(eval, &ev, cap, "eval", a->quiet);
    } else {
        mim_mae m;
        if ((rc = mim_mae_init(&m, &cfg, batch))) return rc;
        if (a->mode == MIM_FEAT_RANDOM) mim_mae_init_weights(&m, a->seed);   // as finetune --init random: same seed, same encoder
        else if ((rc = mim_ckpt_load_model(a->ckpt, &m, 1))) { mim_mae_free(&m); return rc; }
        rc = mim_features_extract(train, &m, &tr, a->pool, cap, "train", a->quiet);
        if (!rc) rc = mim_features_extract(eval, &m, &ev, a->pool, cap, "eval", a->quiet);
        mim_mae_free(&m);
    }
    if (!rc && train->dim != eval->dim) rc = mim_err(MIM_ESHAPE, "train and eval feature widths differ");
    if (rc) { mim_features_free(train); mim_features_free(eval); return rc; }
    if (cfg_out) *cfg_out = cfg;
    return 0;
}
