// test_eval.c: the evaluations (linear probe, kNN) and their parts.
//  (a) PyTorch (tests/ref/eval_ref.py): BatchNorm1d(affine=False, eps 1e-6)
//      train-mode forward, input gradient, running statistics and eval-mode
//      output; MAE's LARS over 4 steps (and from a zero weight); mean
//      cross-entropy loss and dlogits; maxrel <= 1e-4 (testutil.h metric).
//  (b) Without torch: central finite differences of the BatchNorm and
//      cross-entropy backward; backward accumulates; LARS on a 1-D tensor
//      is plain SGD with momentum.
//  (c) kNN equals a brute-force reference (double similarities, full sort,
//      DINO weighting) exactly in its top-5 classes, on a case that spans
//      several query and train blocks, and with k > N.
//  (d) End to end: a tiny MAE pre-trained 3 steps on synthetic IDX images
//      whose class is their brightness level, then feature extraction (every
//      sample once, the last partial batch included and equal to a
//      divisor-batch run), kNN and the linear probe: kNN top-1 equals the
//      brute-force reference of (c) on the same features exactly, the probe's
//      numbers are in range and it beats chance (0.25) by a wide margin.
// Skips (a) cleanly when python3 with torch is unavailable (exit 77 if all
// else passed; MIM_REQUIRE_TORCH=1 makes it a failure).
#include "testutil.h"
#include "data/idx.h"
#include "data/source.h"
#include "eval/features.h"
#include "eval/featcache.h"
#include "eval/knn.h"
#include "eval/linprobe.h"
#include "ops/batchnorm.h"
#include "train/lars.h"
#include "train/pretrain.h"
#include <sys/stat.h>
#include <zlib.h>

#define TOL_TORCH 1e-4
#define TOL_FD 1e-2
#define SH(...) ((const int64_t[]){__VA_ARGS__})

static const mim_st* g_ref;
static mim_rng g_rng;

// ---------------------------------------------------------------- batchnorm
static double bn_objective(const float* x, const float* dout, int N, int C) {
    float* out = tu_alloc((size_t)N * C);
    float *m = tu_alloc(C), *r = tu_alloc(C);
    batchnorm1d_forward(out, m, r, NULL, NULL, x, N, C, 1e-6f, 0.1f);
    double s = 0;
    for (int i = 0; i < N * C; i++) s += (double)out[i] * dout[i];
    return s;
}

static void test_batchnorm(void) {
    const int N = 7, C = 5;
    float *x1 = tu_alloc(N * C), *x2 = tu_alloc(N * C), *x3 = tu_alloc(4 * C), *dout = tu_alloc(N * C);
    tu_fill_normal(&g_rng, x1, N * C, 2.0f);
    tu_fill_normal(&g_rng, x2, N * C, 3.0f);
    tu_fill_normal(&g_rng, x3, 4 * C, 1.0f);
    tu_fill_normal(&g_rng, dout, N * C, 1.0f);
    if (g_ref) {
        tu_st_f32(g_ref, "bn.x1", x1, 2, SH(N, C));
        tu_st_f32(g_ref, "bn.x2", x2, 2, SH(N, C));
        tu_st_f32(g_ref, "bn.x3", x3, 2, SH(4, C));
        tu_st_f32(g_ref, "bn.dout", dout, 2, SH(N, C));
    }
    float *out = tu_alloc(N * C), *mean = tu_alloc(C), *rstd = tu_alloc(C), *rm = tu_alloc(C), *rv = tu_alloc(C);
    float *dx = tu_alloc(N * C), *out3 = tu_alloc(4 * C), *want = tu_alloc(N * C);
    for (int c = 0; c < C; c++) rv[c] = 1.0f;
    batchnorm1d_forward(out, mean, rstd, rm, rv, x1, N, C, 1e-6f, 0.1f);
    batchnorm1d_backward(dx, dout, out, rstd, N, C);
    if (g_ref) {
        if (!tu_st_f32(g_ref, "bn.out1", want, 2, SH(N, C))) tu_close("batchnorm train out vs torch", out, want, N * C, TOL_TORCH);
        if (!tu_st_f32(g_ref, "bn.dx1", want, 2, SH(N, C))) tu_close("batchnorm dinp vs torch", dx, want, N * C, TOL_TORCH);
        if (!tu_st_f32(g_ref, "bn.rmean1", want, 1, SH(C))) tu_close("batchnorm running_mean (1 step) vs torch", rm, want, C, TOL_TORCH);
        if (!tu_st_f32(g_ref, "bn.rvar1", want, 1, SH(C))) tu_close("batchnorm running_var (1 step) vs torch", rv, want, C, TOL_TORCH);
    }
    // finite differences of sum(out * dout) wrt x1
    float* num = tu_alloc(N * C);
    const float h = 1e-2f;
    for (int i = 0; i < N * C; i++) {
        float v = x1[i];
        x1[i] = v + h; float hp = x1[i] - v; double fp = bn_objective(x1, dout, N, C);
        x1[i] = v - h; float hm = v - x1[i]; double fm = bn_objective(x1, dout, N, C);
        x1[i] = v;
        num[i] = (float)((fp - fm) / (hp + hm));
    }
    tu_close("batchnorm dinp vs finite differences", num, dx, N * C, TOL_FD);
    // accumulation: a second backward adds the same again
    float* dx2 = tu_alloc(N * C);
    for (int i = 0; i < N * C; i++) dx2[i] = 2 * dx[i];
    batchnorm1d_backward(dx, dout, out, rstd, N, C);
    tu_close("batchnorm backward accumulates (+=)", dx, dx2, N * C, 1e-6);
    // second train step, then eval mode
    batchnorm1d_forward(out, mean, rstd, rm, rv, x2, N, C, 1e-6f, 0.1f);
    batchnorm1d_forward_eval(out3, x3, rm, rv, 4, C, 1e-6f);
    if (g_ref) {
        if (!tu_st_f32(g_ref, "bn.rmean2", want, 1, SH(C))) tu_close("batchnorm running_mean (2 steps) vs torch", rm, want, C, TOL_TORCH);
        if (!tu_st_f32(g_ref, "bn.rvar2", want, 1, SH(C))) tu_close("batchnorm running_var (2 steps) vs torch", rv, want, C, TOL_TORCH);
        if (!tu_st_f32(g_ref, "bn.out3", want, 2, SH(4, C))) tu_close("batchnorm eval out vs torch", out3, want, 4 * C, TOL_TORCH);
    }
    // train output: each column mean 0, biased variance ~1
    int ok = 1;
    for (int c = 0; c < C; c++) {
        double s = 0, s2 = 0;
        for (int n = 0; n < N; n++) { s += out[n * C + c]; s2 += (double)out[n * C + c] * out[n * C + c]; }
        ok &= fabs(s / N) < 1e-5 && fabs(s2 / N - 1) < 1e-4;
    }
    TU_CHECK(ok, "batchnorm train output has zero mean, unit variance per column");
}

// ---------------------------------------------------------------- LARS
static void test_lars(const char* c) {
    const int S = 4;
    char k[64];
    float* buf = tu_alloc(40), *grad = tu_alloc(40);
    float *gw = tu_alloc(S * 35), *gb = tu_alloc(S * 5), *ww = tu_alloc(S * 35), *wb = tu_alloc(S * 5), *lr = tu_alloc(S);
    int bad = 0;
    snprintf(k, sizeof k, "%s.w0", c); bad |= tu_st_f32(g_ref, k, buf, 2, SH(5, 7));
    snprintf(k, sizeof k, "%s.b0", c); bad |= tu_st_f32(g_ref, k, buf + 35, 1, SH(5));
    snprintf(k, sizeof k, "%s.gw", c); bad |= tu_st_f32(g_ref, k, gw, 3, SH(S, 5, 7));
    snprintf(k, sizeof k, "%s.gb", c); bad |= tu_st_f32(g_ref, k, gb, 2, SH(S, 5));
    snprintf(k, sizeof k, "%s.w", c); bad |= tu_st_f32(g_ref, k, ww, 3, SH(S, 5, 7));
    snprintf(k, sizeof k, "%s.b", c); bad |= tu_st_f32(g_ref, k, wb, 2, SH(S, 5));
    snprintf(k, sizeof k, "%s.lr", c); bad |= tu_st_f32(g_ref, k, lr, 1, SH(S));
    if (bad) return;
    mim_param t[2] = {
        {.name = "w", .ndim = 2, .shape = {5, 7}, .offset = 0, .numel = 35, .trainable = 1, .decay = 1},
        {.name = "b", .ndim = 1, .shape = {5}, .offset = 35, .numel = 5, .trainable = 1},
    };
    mim_lars opt;
    CHECK(mim_lars_init(&opt, 40) == 0);
    mim_lars_hparams hp = {.momentum = 0.9f, .weight_decay = 0.05f, .trust = 0.001f};
    for (int s = 0; s < S; s++) {
        memcpy(grad, gw + s * 35, 35 * sizeof(float));
        memcpy(grad + 35, gb + s * 5, 5 * sizeof(float));
        hp.lr = lr[s];
        mim_lars_step(&opt, t, 2, buf, grad, &hp);
        char l[96];
        snprintf(l, sizeof l, "%s weight after step %d vs MAE lars.py", c, s + 1);
        tu_close(l, buf, ww + s * 35, 35, TOL_TORCH);
        snprintf(l, sizeof l, "%s bias after step %d vs MAE lars.py", c, s + 1);
        tu_close(l, buf + 35, wb + s * 5, 5, TOL_TORCH);
    }
    mim_lars_free(&opt);
}

static void test_lars_sgd(void) {   // without torch: a 1-D tensor is SGD + momentum
    float p[3] = {1, -2, 0.5f}, g[3] = {0.1f, 0.2f, -0.3f}, mu[3] = {0};
    mim_lars_hparams hp = {.lr = 0.5f, .momentum = 0.9f, .weight_decay = 0.1f, .trust = 0.001f};
    mim_lars_update(p, g, mu, 3, 0, &hp);
    mim_lars_update(p, g, mu, 3, 0, &hp);
    float want[3];   // mu1 = g, mu2 = 1.9 g; p2 = p0 - lr * 2.9 g (no decay on 1-D)
    const float p0[3] = {1, -2, 0.5f};
    for (int i = 0; i < 3; i++) want[i] = p0[i] - 0.5f * 2.9f * g[i];
    tu_close("lars on a 1-D tensor == SGD momentum, no decay", p, want, 3, 1e-6);
}

// ---------------------------------------------------------------- cross-entropy
static void test_xent(void) {
    const int N = 6, C = 10;
    float *lg = tu_alloc(N * C), *pr = tu_alloc(N * C), *d = tu_alloc(N * C), *want = tu_alloc(N * C);
    int32_t lab[6] = {0, 3, 9, 2, 2, 7};
    tu_fill_normal(&g_rng, lg, N * C, 3.0f);
    if (g_ref) {
        tu_st_f32(g_ref, "xent.logits", lg, 2, SH(N, C));
        tu_st_i32(g_ref, "xent.labels", lab, 1, SH(N));
    }
    float loss = mim_xent_forward(pr, lg, lab, N, C);
    mim_xent_backward(d, pr, lab, 1.0f, N, C);
    if (g_ref) {
        float wl;
        if (!tu_st_f32(g_ref, "xent.loss", &wl, 1, SH(1))) tu_close("cross-entropy loss vs torch", &loss, &wl, 1, TOL_TORCH);
        if (!tu_st_f32(g_ref, "xent.dlogits", want, 2, SH(N, C))) tu_close("cross-entropy dlogits vs torch", d, want, N * C, TOL_TORCH);
    }
    float* num = tu_alloc(N * C);
    for (int i = 0; i < N * C; i++) {
        float v = lg[i], h = 1e-2f;
        lg[i] = v + h; float hp = lg[i] - v; double fp = mim_xent_forward(pr, lg, lab, N, C);
        lg[i] = v - h; float hm = v - lg[i]; double fm = mim_xent_forward(pr, lg, lab, N, C);
        lg[i] = v;
        num[i] = (float)((fp - fm) / (hp + hm));
    }
    tu_close("cross-entropy dlogits vs finite differences", num, d, N * C, TOL_FD);
}

// ---------------------------------------------------------------- kNN
typedef struct { double s; int64_t i; } sim_idx;
static int cmp_sim(const void* a, const void* b) {
    const sim_idx *x = a, *y = b;
    if (x->s != y->s) return x->s > y->s ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

// The reference kNN: for each query, double similarities with every train
// row, full sort (higher similarity, then lower index), the k best vote
// exp(s / T) for their class (votes (M, C)); ref5 (M, 5) the five best
// classes (higher vote, then lower class). Returns the number of queries
// whose label is the best class (top-1) and, in *c5, among the first
// min(5, k) classes.
static int64_t brute_knn(const float* tr, const int32_t* tl, int64_t N, const float* q, const int32_t* ql, int64_t M,
                         int D, int C, int k, float T, float* votes, int* ref5, int64_t* c5) {
    sim_idx* s = tu_alloc_bytes(sizeof(sim_idx) * N);
    double* v = tu_alloc_bytes(sizeof(double) * C);
    int kk = k < N ? k : (int)N, n5 = kk < 5 ? kk : 5;
    int64_t c1 = 0;
    *c5 = 0;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t i = 0; i < N; i++) {
            double d = 0;
            for (int j = 0; j < D; j++) d += (double)q[m * D + j] * tr[i * D + j];
            s[i] = (sim_idx){d, i};
        }
        qsort(s, (size_t)N, sizeof *s, cmp_sim);
        memset(v, 0, sizeof(double) * C);
        for (int j = 0; j < kk; j++) v[tl[s[j].i]] += exp(s[j].s / T);
        for (int c = 0; c < C; c++) votes[m * C + c] = (float)v[c];
        int* r5 = ref5 + m * 5;
        for (int r = 0; r < 5; r++) {   // best class not yet taken: higher vote, then lower index
            int best = -1;
            for (int c = 0; c < C; c++) {
                int used = 0;
                for (int u = 0; u < r; u++) used |= r5[u] == c;
                if (!used && (best < 0 || v[c] > v[best])) best = c;
            }
            r5[r] = best;
        }
        c1 += r5[0] == ql[m];
        for (int r = 0; r < n5; r++) if (r5[r] == ql[m]) { (*c5)++; break; }
    }
    return c1;
}

static void test_knn_case(const char* label, int64_t N, int64_t M, int D, int C, int k, float T) {
    float *tr = tu_alloc((size_t)N * D), *q = tu_alloc((size_t)M * D);
    int32_t *tl = tu_alloc_bytes(sizeof(int32_t) * N), *ql = tu_alloc_bytes(sizeof(int32_t) * M);
    tu_fill_normal(&g_rng, tr, (size_t)N * D, 1.0f);
    tu_fill_normal(&g_rng, q, (size_t)M * D, 1.0f);
    for (int64_t i = 0; i < N; i++) {   // classes tied to the first coordinate's sign pattern, plus noise
        tl[i] = (int32_t)mim_rng_below(&g_rng, (uint64_t)C);
        tr[i * D + tl[i] % D] += 2.0f;
    }
    for (int64_t i = 0; i < M; i++) {
        ql[i] = (int32_t)mim_rng_below(&g_rng, (uint64_t)C);
        q[i * D + ql[i] % D] += 2.0f;
    }
    mim_l2_normalize_rows(tr, N, D);
    mim_l2_normalize_rows(q, M, D);
    float* votes = tu_alloc((size_t)M * C);
    int32_t* p5 = tu_alloc_bytes(sizeof(int32_t) * 5 * M);
    int rc = mim_knn_classify(votes, p5, tr, tl, N, q, M, D, C, k, T);
    TU_CHECK(rc == 0, "%s: mim_knn_classify returns 0", label);
    // brute force
    float* vw = tu_alloc((size_t)M * C);
    int* ref5 = tu_alloc_bytes(sizeof(int) * 5 * M);
    int64_t c5 = 0, c1 = brute_knn(tr, tl, N, q, ql, M, D, C, k, T, vw, ref5, &c5), same5 = 0;
    for (int64_t m = 0; m < M; m++) {
        int ok = 1;
        for (int r = 0; r < 5; r++) ok &= p5[m * 5 + r] == ref5[m * 5 + r];
        same5 += ok;
    }
    TU_CHECK(same5 == M, "%s: top-5 classes equal brute force for %lld / %lld queries", label, (long long)same5, (long long)M);
    tu_close("kNN votes vs brute force", votes, vw, (size_t)M * C, 1e-5);
    mim_knn_result r;
    rc = mim_knn_eval(&r, tr, tl, N, q, ql, M, D, C, k, T);
    TU_CHECK(rc == 0 && r.top1 == (double)c1 / M && r.top5 == (double)c5 / M && r.n_train == N && r.n_eval == M,
             "%s: top1 %.4f top5 %.4f == brute force %.4f %.4f", label, r.top1, r.top5, (double)c1 / M, (double)c5 / M);
}

// ---------------------------------------------------------------- end to end
static char tmpdir[256];

// n HxW images; class c in 0..3 is the brightness level: pixels 25 + 60 c
// plus uniform noise in [0, 50), with a random dark square for some texture.
static void write_split(const char* dir, const char* split, int n, int H, int W, uint64_t seed, int32_t* labels_out) {
    mim_rng r;
    mim_rng_seed(&r, seed);
    uint8_t* px = tu_alloc_bytes((size_t)n * H * W);
    uint8_t* lab = tu_alloc_bytes((size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t* img = px + (size_t)i * H * W;
        int c = (int)mim_rng_below(&r, 4);
        for (int k = 0; k < H * W; k++) img[k] = (uint8_t)(25 + 60 * c + mim_rng_below(&r, 50));
        int s = 3 + (int)mim_rng_below(&r, 4), y = (int)mim_rng_below(&r, H - s), x = (int)mim_rng_below(&r, W - s);
        for (int a = y; a < y + s; a++)
            for (int b = x; b < x + s; b++) img[a * W + b] = (uint8_t)mim_rng_below(&r, 20);
        lab[i] = (uint8_t)c;
        if (labels_out) labels_out[i] = c;
    }
    tu_write_idx(dir, split, n, H, W, px, lab);
}

static void test_end_to_end(void) {
    const int NTR = 330, NEV = 130;
    char data[512], run[512], ckpt[1100], latest[600], name[256] = "";
    snprintf(data, sizeof data, "%s/data", tmpdir);
    snprintf(run, sizeof run, "%s/run", tmpdir);
    mkdir(data, 0755);
    int32_t* trl = tu_alloc_bytes(sizeof(int32_t) * NTR);
    write_split(data, "train", NTR, 16, 16, 11, trl);
    write_split(data, "t10k", NEV, 16, 16, 12, NULL);

    mim_pretrain_args a = {0};
    CHECK(mim_config_preset(&a.model, "vit_nano") == 0);
    a.model.dim = 32; a.model.depth = 2; a.model.heads = 2;
    a.model.patch = 4; a.model.dec_dim = 16; a.model.dec_depth = 1; a.model.dec_heads = 2;
    a.model.img_h = a.model.img_w = 16; a.model.in_chans = 1;
    a.data = data; a.out = run;
    a.batch = 16; a.accum = 1; a.steps = 3; a.lr = 1e-3f; a.warmup_epochs = 0;
    a.weight_decay = 0.05f; a.beta1 = 0.9f; a.beta2 = 0.95f; a.augment = 1; a.seed = 3;
    a.save_every = 0; a.log_every = 1; a.keep = 1; a.quiet = 1;
    int rc = mim_pretrain_run(&a);
    TU_CHECK(rc == 0, "pretrain 3 steps: %s", rc ? mim_err_msg() : "ok");
    if (rc) return;
    snprintf(latest, sizeof latest, "%s/latest", run);
    FILE* f = fopen(latest, "r");
    if (f) { if (fscanf(f, "%255s", name) != 1) name[0] = 0; fclose(f); }
    snprintf(ckpt, sizeof ckpt, "%s/%s/model.safetensors", run, name);
    TU_CHECK(name[0] && access(ckpt, R_OK) == 0, "checkpoint %s written", ckpt);

    mim_eval_common e = {.ckpt = ckpt, .data = data, .data_split = "train", .eval_split = "t10k",
                         .pool = MIM_POOL_CLS, .batch = 64, .max_feature_gb = 1, .quiet = 1};
    mim_features tr, ev, tr2, ev2;
    rc = mim_eval_features(&e, &tr, &ev, NULL);
    TU_CHECK(rc == 0, "extract features, batch 64 (330 = 5 x 64 + 10): %s", rc ? mim_err_msg() : "ok");
    if (rc) return;
    TU_CHECK(tr.n == NTR && ev.n == NEV && tr.dim == 32 && tr.num_classes == 4,
             "every sample once: n_train %lld n_eval %lld dim %d classes %d", (long long)tr.n, (long long)ev.n, tr.dim, tr.num_classes);
    TU_CHECK(memcmp(tr.labels, trl, sizeof(int32_t) * NTR) == 0, "train labels in file order");
    {   // feature cache: save, hit gives the same bytes, another key or pooling misses, garbage misses
        char cpath[1200], key[4096], key2[4096];
        snprintf(cpath, sizeof cpath, "%s/feats.safetensors", tmpdir);
        TU_CHECK(mim_featcache_key(key, sizeof key, &e) == 0, "cache key: %s", key);
        TU_CHECK(mim_featcache_load(cpath, key, &tr2, &ev2) == 1, "cache: no file is a miss");
        TU_CHECK(mim_featcache_save(cpath, key, &tr, &ev) == 0, "cache written");
        rc = mim_featcache_load(cpath, key, &tr2, &ev2);
        TU_CHECK(rc == 0 && tr2.n == NTR && ev2.n == NEV && tr2.dim == 32 && tr2.num_classes == tr.num_classes &&
                     memcmp(tr2.x, tr.x, sizeof(float) * NTR * 32) == 0 && memcmp(ev2.x, ev.x, sizeof(float) * NEV * 32) == 0 &&
                     memcmp(tr2.labels, tr.labels, sizeof(int32_t) * NTR) == 0,
                 "cache hit returns the extracted features bit for bit");
        if (rc == 0) { mim_features_free(&tr2); mim_features_free(&ev2); }
        mim_eval_common e2 = e;
        e2.pool = MIM_POOL_MEAN;
        CHECK(mim_featcache_key(key2, sizeof key2, &e2) == 0);
        TU_CHECK(strcmp(key, key2) != 0 && mim_featcache_load(cpath, key2, &tr2, &ev2) == 1, "cache: other pooling misses");
        FILE* g = fopen(cpath, "r+b");
        if (g) { fseek(g, 9, SEEK_SET); fputs("garbage", g); fclose(g); }
        TU_CHECK(mim_featcache_load(cpath, key, &tr2, &ev2) == 1, "cache: a corrupt file is a miss (warning), not a crash");
        e2.ckpt = "/nonexistent/model.safetensors";
        TU_CHECK(mim_featcache_key(key2, sizeof key2, &e2) == MIM_EIO, "cache key: missing checkpoint is an error");
    }
    e.batch = 110;   // divides 330: no remainder path
    rc = mim_eval_features(&e, &tr2, &ev2, NULL);
    TU_CHECK(rc == 0, "extract features, batch 110");
    if (!rc) {
        tu_close("features (incl. the last partial batch) == batch-110 run", tr.x, tr2.x, (size_t)NTR * 32, 1e-5);
        mim_features_free(&tr2); mim_features_free(&ev2);
    }
    e.pool = MIM_POOL_MEAN; e.batch = 64;
    rc = mim_eval_features(&e, &tr2, &ev2, NULL);
    int ok = rc == 0;
    for (int64_t i = 0; ok && i < tr2.n; i++) {   // fc_norm without affine: each row mean 0, variance ~1
        double s = 0, s2 = 0;
        for (int d = 0; d < 32; d++) { s += tr2.x[i * 32 + d]; s2 += (double)tr2.x[i * 32 + d] * tr2.x[i * 32 + d]; }
        ok = fabs(s / 32) < 1e-4 && fabs(s2 / 32 - 1) < 1e-2;
    }
    TU_CHECK(ok, "mean pooling: fc_norm-normalised rows");
    if (rc == 0) { mim_features_free(&tr2); mim_features_free(&ev2); }
    mim_eval_common bad = e;
    bad.max_feature_gb = 1e-6;
    rc = mim_eval_features(&bad, &tr2, &ev2, NULL);
    TU_CHECK(rc == MIM_ENOMEM && strstr(mim_err_msg(), "--max-feature-gb"), "feature cap refuses with a hint: %s", mim_err_msg());

    // kNN
    float *trn = tu_alloc((size_t)NTR * 32), *evn = tu_alloc((size_t)NEV * 32);
    memcpy(trn, tr.x, sizeof(float) * NTR * 32);
    memcpy(evn, ev.x, sizeof(float) * NEV * 32);
    mim_l2_normalize_rows(trn, NTR, 32);
    mim_l2_normalize_rows(evn, NEV, 32);
    // top-1 against the brute-force reference on the same features (4 classes:
    // top-5 is 1 by construction, not checked)
    mim_knn_result kr;
    rc = mim_knn_eval(&kr, trn, tr.labels, NTR, evn, ev.labels, NEV, 32, 4, 20, 0.07f);
    float* bv = tu_alloc((size_t)NEV * 4);
    int* b5 = tu_alloc_bytes(sizeof(int) * 5 * NEV);
    int64_t bc5 = 0, bc1 = brute_knn(trn, tr.labels, NTR, evn, ev.labels, NEV, 32, 4, 20, 0.07f, bv, b5, &bc5);
    TU_CHECK(rc == 0 && kr.n_train == NTR && kr.n_eval == NEV && kr.top1 == (double)bc1 / NEV,
             "kNN end to end: top1 %.4f == brute force %lld / %d = %.4f", kr.top1, (long long)bc1, NEV, (double)bc1 / NEV);
    {   // the same with random train labels: a top-1 near chance, still exact
        int32_t* rnd = tu_alloc_bytes(sizeof(int32_t) * NTR);
        mim_rng nr;
        mim_rng_seed(&nr, 77);
        for (int i = 0; i < NTR; i++) rnd[i] = (int32_t)mim_rng_below(&nr, 4);
        rc = mim_knn_eval(&kr, trn, rnd, NTR, evn, ev.labels, NEV, 32, 4, 20, 0.07f);
        bc1 = brute_knn(trn, rnd, NTR, evn, ev.labels, NEV, 32, 4, 20, 0.07f, bv, b5, &bc5);
        TU_CHECK(rc == 0 && kr.top1 == (double)bc1 / NEV && bc1 < NEV,
                 "kNN end to end, random train labels: top1 %.4f == brute force %lld / %d = %.4f (< 1)", kr.top1,
                 (long long)bc1, NEV, (double)bc1 / NEV);
    }

    // linear probe
    mim_linprobe_args lp;
    mim_linprobe_args_default(&lp);
    lp.epochs = 30; lp.batch = 32; lp.blr = 20.0f; lp.warmup_epochs = 3; lp.quiet = 1;
    mim_linprobe_result r;
    rc = mim_linprobe_train(&r, &tr, &ev, &lp);
    TU_CHECK(rc == 0, "linprobe runs: %s", rc ? mim_err_msg() : "ok");
    if (!rc) {
        TU_CHECK(r.top1 >= 0 && r.top1 <= r.top5 && r.top5 <= 1 && r.n_train == NTR && r.n_eval == NEV && r.steps == 30 * 10,
                 "linprobe numbers in range: top1 %.4f top5 %.4f steps %d lr %.3g", r.top1, r.top5, r.steps, r.lr);
        TU_CHECK(r.top1 > 0.6, "linprobe beats chance (0.25) on brightness classes: top1 %.4f (first epoch %.4f, kNN %.4f)",
                 r.top1, r.history[0].top1, kr.top1);
        TU_CHECK(r.history[lp.epochs - 1].train_loss < r.history[0].train_loss, "linprobe train loss falls: %.4f -> %.4f",
                 r.history[0].train_loss, r.history[lp.epochs - 1].train_loss);
        mim_linprobe_result_free(&r);
    }
    mim_features_free(&tr);
    mim_features_free(&ev);
}

int main(void) {
    mim_rng_seed(&g_rng, 4242);
    char path[4096] = "";
    mim_st* st = NULL;
    int skipped = 0;
    int rc = tu_run_torch_ref("tests/ref/eval_ref.py", path, sizeof path);
    if (rc == 0) {
        if (mim_st_open(&st, path) != 0) { tu_report(0, "open reference file %s: %s", path, mim_err_msg()); st = NULL; }
        unlink(path);
    } else if (rc == 1) {
        const char* req = getenv("MIM_REQUIRE_TORCH");
        if (req && *req && strcmp(req, "0") != 0) tu_report(0, "python3-torch not available (MIM_REQUIRE_TORCH set)");
        printf("note: python3-torch not available; skipping the PyTorch comparisons\n");
        skipped = 1;
    } else {
        tu_report(0, "PyTorch reference script tests/ref/eval_ref.py failed");
    }
    g_ref = st;

    test_batchnorm();
    if (g_ref) { test_lars("lars"); test_lars("larsz"); }
    test_lars_sgd();
    test_xent();
    test_knn_case("knn small", 200, 37, 16, 7, 20, 0.07f);
    test_knn_case("knn blocks (N > 4096, M > 512)", 4500, 600, 8, 10, 20, 0.07f);
    test_knn_case("knn k > N, 3 classes", 12, 9, 4, 3, 20, 0.07f);

    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_eval_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    test_end_to_end();
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);

    if (st) mim_st_close(st);
    tu_free_all();
    return tu_summary("test_eval", skipped, "python3-torch not available; PyTorch comparisons skipped");
}
