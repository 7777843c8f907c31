// test_augment_ft.c: the fine-tuning augmentations, src/data/randaug.[ch]
// (timm RandAugment with PIL's ops, RandomErasing) and src/train/mixup.[ch]
// (timm Mixup / CutMix, smoothed targets, Beta sampling, soft-target CE).
//
// Against tests/ref/augft_ref.py (PIL + PyTorch, timm 0.9.x semantics
// re-implemented there since timm is not installed):
//  - every RandAugment op (21: the inc1 set and the plain set) on 5 images
//    (RGB and gray, odd sizes, square, few-level), at magnitudes 0, 4.2, 9,
//    9.37, 10 (and 30 / 60 for Rotate's 90 / 180 degree paths), both signs,
//    bilinear and bicubic for the geometric ops. Point ops (AutoContrast,
//    Equalize, Invert, Posterize*, Solarize*, SolarizeAdd) must be exact;
//    the enhance and geometric ops must have mean |err| <= TOL_MEAN_U8 and
//    max |err| <= TOL_MAX_U8 (in uint8 units) per op; the measured numbers
//    are printed (the C code reproduces PIL's arithmetic, so they are 0).
//    MIM_VERBOSE=1 prints every case that is not bit-exact.
//  - soft-target cross-entropy loss and gradient: maxrel <= 1e-5.
//  - mixup / cutmix application with a fixed lam and box, and the smoothed
//    mixed targets: bit-exact.
//  - RandomErasing's box distribution (P(found), area and log-aspect
//    moments, attempts) against timm's draw simulated in Python: within
//    5 standard errors.
// Without the reference (no python3 / torch / PIL) those parts are skipped;
// the rest still runs: spec parsing, RandAugment draw semantics (op choice,
// probability, magnitude noise, determinism), erasing semantics (prob,
// rectangle, N(0,1) values), Beta / Gamma distributions (moments and a
// Kolmogorov-Smirnov distance against the exact Beta CDF), mixup draw
// semantics, and the soft CE by finite differences and accumulation.
// Exit: 0 pass, 1 failure, 77 reference skipped (MIM_REQUIRE_TORCH=1 makes
// that a failure).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/randaug.h"
#include "testutil.h"
#include "train/mixup.h"

// Geometric and enhance ops, per op over all its cases, in uint8 units. The
// measured error is 0 (bit-exact, Pillow 9.4); the bounds leave room for an
// off-by-one rounding change in another Pillow version, not for a wrong
// sampling position or factor (those give mean errors of 0.5 and more).
#define TOL_MEAN_U8 0.05
#define TOL_MAX_U8 1
#define TOL_CE 1e-5
#define NSE 5.0           // statistical checks: |C - Python| <= NSE standard errors

static const mim_st* g_ref;
static mim_rng g_rng;

static int is_point_op(int op) {
    switch (op) {
    case MIM_RA_AUTOCONTRAST: case MIM_RA_EQUALIZE: case MIM_RA_INVERT: case MIM_RA_POSTERIZE:
    case MIM_RA_POSTERIZE_INC: case MIM_RA_SOLARIZE: case MIM_RA_SOLARIZE_INC: case MIM_RA_SOLARIZE_ADD:
        return 1;
    default:
        return 0;
    }
}

// A tensor of the reference file with dtype and element count checked.
static const mim_st_tensor* ref_tensor(const char* name, mim_dtype dt, size_t numel) {
    const mim_st_tensor* t = mim_st_find(g_ref, name);
    if (!t) { tu_report(0, "reference tensor %s: absent", name); return NULL; }
    if (t->dtype != dt || (numel && t->numel != numel)) {
        tu_report(0, "reference tensor %s: %s with %zu elements, want %s with %zu", name,
                  mim_dtype_name(t->dtype), t->numel, mim_dtype_name(dt), numel);
        return NULL;
    }
    return t;
}

static int ref_f64(const char* name, double* dst, size_t n) {
    const mim_st_tensor* t = ref_tensor(name, MIM_F64, n);
    if (!t) return -1;
    memcpy(dst, t->data, n * sizeof(double));
    return 0;
}

// ---------------------------------------------------------------- parsing
static void test_parse(void) {
    mim_randaug ra;
    int rc = mim_randaug_parse(&ra, "rand-m9-mstd0.5-inc1");
    TU_CHECK(rc == MIM_OK && ra.num_layers == 2 && ra.magnitude == 9.0 && ra.magnitude_std == 0.5 &&
             ra.magnitude_max == 10.0 && ra.prob == 0.5 && ra.increasing == 1 && ra.nops == 15 &&
             ra.interp == MIM_RA_BILINEAR && ra.fill[0] == 124 && ra.fill[1] == 116 && ra.fill[2] == 104,
             "parse rand-m9-mstd0.5-inc1: n 2, m 9, mstd 0.5, mmax 10, p 0.5, 15 increasing ops, fill (124,116,104)");
    static const char* inc_set[15] = {
        "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing",
        "SolarizeAdd", "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing",
        "SharpnessIncreasing", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel" };
    int same = rc == MIM_OK && ra.nops == 15;
    for (int i = 0; same && i < 15; i++) same = strcmp(mim_randaug_op_name(ra.ops[i]), inc_set[i]) == 0;
    TU_CHECK(same, "inc1 op set = timm _RAND_INCREASING_TRANSFORMS, in order");
    rc = mim_randaug_parse(&ra, "rand-m7-n3-mstd101-mmax12-p0.8");
    TU_CHECK(rc == MIM_OK && ra.num_layers == 3 && ra.magnitude == 7.0 && isinf(ra.magnitude_std) &&
             ra.magnitude_max == 12.0 && fabs(ra.prob - 0.8) < 1e-15 && !ra.increasing && ra.nops == 15 &&
             ra.ops[4] == MIM_RA_POSTERIZE && ra.ops[7] == MIM_RA_COLOR,
             "parse rand-m7-n3-mstd101-mmax12-p0.8: mstd > 100 -> uniform, plain op set");
    rc = mim_randaug_parse(&ra, "rand");
    TU_CHECK(rc == MIM_OK && ra.magnitude == 10.0 && ra.num_layers == 2 && ra.magnitude_std == 0.0,
             "parse \"rand\": timm defaults (m 10, n 2, no noise)");
    static const char* bad[] = { "", "rnd-m9", "randm9", "rand-", "rand-m", "rand-x9", "rand-m9--inc1",
                                 "rand-m9.5", "rand-p1.5", "rand-mstd-1", "rand-inc2", "rand-w0",
                                 "rand-m9-mstd0.5x", "rand-n1000", "rand-mmax0", "augmix-m5" };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rc = mim_randaug_parse(&ra, bad[i]);
        TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "RandAugment spec") != NULL,
                 "parse \"%s\" -> MIM_EARG: %s", bad[i], mim_err_msg());
    }
    rc = mim_randaug_parse(&ra, NULL);
    TU_CHECK(rc == MIM_EARG, "parse NULL -> MIM_EARG");
    int names_ok = 1;
    for (int op = 0; op < MIM_RA_NOPS; op++)
        names_ok &= mim_randaug_op_from_name(mim_randaug_op_name(op)) == op;
    TU_CHECK(names_ok && mim_randaug_op_name(MIM_RA_NOPS) == NULL && mim_randaug_op_from_name("Cutout") == -1,
             "op names round-trip");
}

// ---------------------------------------------------------------- RandAugment vs PIL
typedef struct {
    int cases, exact;
    double sum_abs;    // over all compared bytes
    size_t nbytes;
    int max_abs;
} op_stats;

static void test_randaug_ref(void) {
    mim_randaug ra;
    CHECK(mim_randaug_parse(&ra, "rand-m9-mstd0.5-inc1") == MIM_OK);
    enum { NIMG = 5 };
    const uint8_t* imgs[NIMG];
    int ih[NIMG], iw[NIMG], ic[NIMG];
    for (int k = 0; k < NIMG; k++) {
        char name[32];
        snprintf(name, sizeof name, "img.%d", k);
        const mim_st_tensor* t = ref_tensor(name, MIM_U8, 0);
        if (!t) return;
        ih[k] = (int)t->shape[0]; iw[k] = (int)t->shape[1]; ic[k] = t->ndim == 3 ? (int)t->shape[2] : 1;
        imgs[k] = t->data;
    }
    op_stats st[MIM_RA_NOPS][2];
    memset(st, 0, sizeof st);
    uint8_t* img = tu_alloc_bytes(64 * 64 * 3);
    uint8_t* scratch = tu_alloc_bytes(64 * 64 * 3);
    int ncases = 0;
    for (int i = 0;; i++) {
        char key[64];
        snprintf(key, sizeof key, "ra.%d.op", i);
        const char* opname = mim_st_meta(g_ref, key);
        if (!opname) break;
        int op = mim_randaug_op_from_name(opname);
        if (op < 0) { tu_report(0, "reference case %d: unknown op %s", i, opname); continue; }
        double args[4];
        snprintf(key, sizeof key, "ra.%d.args", i);
        if (ref_f64(key, args, 4)) return;
        int k = (int)args[0], interp = (int)args[3];
        CHECK(k >= 0 && k < NIMG && ih[k] * iw[k] * ic[k] <= 64 * 64 * 3);
        size_t n = (size_t)ih[k] * iw[k] * ic[k];
        snprintf(key, sizeof key, "ra.%d.out", i);
        const mim_st_tensor* want = ref_tensor(key, MIM_U8, n);
        if (!want) return;
        memcpy(img, imgs[k], n);
        ra.interp = interp;
        mim_randaug_apply_op(&ra, op, args[1], (int)args[2], img, ih[k], iw[k], ic[k], scratch);
        const uint8_t* w = want->data;
        op_stats* s = &st[op][interp];
        int mx = 0;
        double sum = 0;
        for (size_t j = 0; j < n; j++) {
            int d = abs((int)img[j] - (int)w[j]);
            sum += d;
            if (d > mx) mx = d;
        }
        s->cases++;
        s->exact += mx == 0;
        s->sum_abs += sum;
        s->nbytes += n;
        if (mx > s->max_abs) s->max_abs = mx;
        if (mx && getenv("MIM_VERBOSE"))
            printf("  case %d %s img %d m %.2f neg %d interp %d: max %d mean %.4f\n", i, opname, k, args[1],
                   (int)args[2], interp, mx, sum / n);
        ncases++;
    }
    TU_CHECK(ncases >= 500, "RandAugment reference cases read: %d", ncases);
    for (int op = 0; op < MIM_RA_NOPS; op++)
        for (int interp = 0; interp < 2; interp++) {
            op_stats* s = &st[op][interp];
            if (!s->cases) continue;
            double mean = s->sum_abs / (double)s->nbytes;
            int ok = is_point_op(op) ? s->exact == s->cases : mean <= TOL_MEAN_U8 && s->max_abs <= TOL_MAX_U8;
            const char* geo = op == MIM_RA_ROTATE || op == MIM_RA_SHEAR_X || op == MIM_RA_SHEAR_Y ||
                              op == MIM_RA_TRANSLATE_X_REL || op == MIM_RA_TRANSLATE_Y_REL
                                  ? (interp ? " bicubic" : " bilinear") : "";
            tu_report(ok, "vs PIL %-20s%-9s %3d cases, %3d bit-exact, mean|err| %.4f, max|err| %d (%s)",
                      mim_randaug_op_name(op), geo, s->cases, s->exact, mean, s->max_abs,
                      is_point_op(op) ? "must be exact" : "tol mean 0.05, max 1");
        }
}

// ---------------------------------------------------------------- RandAugment draws
static void fill_test_image(uint8_t* img, int h, int w, int c, uint64_t seed) {
    mim_rng r;
    mim_rng_seed(&r, seed);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int ch = 0; ch < c; ch++)
                img[((size_t)y * w + x) * c + ch] =
                    (uint8_t)((x * 7 + y * 3 + ch * 50) % 200 + 20 + mim_rng_below(&r, 30));
}

static void test_randaug_draws(void) {
    enum { H = 40, W = 52, C = 3, N = H * W * C };
    uint8_t* orig = tu_alloc_bytes(N);
    uint8_t* a = tu_alloc_bytes(N);
    uint8_t* b = tu_alloc_bytes(N);
    uint8_t* scratch = tu_alloc_bytes(N);
    fill_test_image(orig, H, W, C, 7);
    mim_randaug ra;
    CHECK(mim_randaug_parse(&ra, "rand-m9-mstd0.5-inc1") == MIM_OK);

    // determinism: same seed, same bytes; the 200 draws change most images
    int same = 1, changed = 0;
    for (int s = 0; s < 200; s++) {
        mim_rng r1, r2;
        mim_rng_seed(&r1, 1000 + s);
        mim_rng_seed(&r2, 1000 + s);
        memcpy(a, orig, N);
        memcpy(b, orig, N);
        mim_randaug_apply(&ra, &r1, a, H, W, C, scratch);
        mim_randaug_apply(&ra, &r2, b, H, W, C, scratch);
        same &= memcmp(a, b, N) == 0 && r1.s[0] == r2.s[0];
        changed += memcmp(a, orig, N) != 0;
    }
    // P(no op applied) = 0.25; a few applied ops are no-ops on this image
    TU_CHECK(same, "mim_randaug_apply: same seed -> same image and RNG state");
    TU_CHECK(changed > 120 && changed < 180, "mim_randaug_apply changed %d / 200 images (expect ~150)", changed);

    // op choice and probability: a one-op set (Invert) with p = 0.5 and n = 1
    // inverts half the time; with n = 2 the image is inverted iff exactly one
    // of the two draws applies (P = 0.5), and p = 1, n = 2 restores it always
    mim_randaug inv = ra;
    inv.nops = 1;
    inv.ops[0] = MIM_RA_INVERT;
    const int T = 20000;
    for (int n = 1; n <= 2; n++) {
        inv.num_layers = n;
        int hits = 0;
        for (int t = 0; t < T; t++) {
            uint8_t px[3] = { 10, 20, 30 }, sc[3];
            mim_randaug_apply(&inv, &g_rng, px, 1, 1, 3, sc);
            hits += px[0] == 245;
        }
        double f = (double)hits / T, se = sqrt(0.25 / T);
        TU_CHECK(fabs(f - 0.5) < NSE * se, "Invert-only set, p 0.5, n %d: inverted %.4f (want 0.5 +- %.4f)", n, f, NSE * se);
    }
    inv.prob = 1.0;
    inv.num_layers = 2;
    uint8_t px[3] = { 10, 20, 30 }, sc[3];
    mim_randaug_apply(&inv, &g_rng, px, 1, 1, 3, sc);
    TU_CHECK(px[0] == 10 && px[2] == 30, "p 1, n 2, Invert twice: identity");
    inv.prob = 0.0;
    memcpy(a, orig, N);
    mim_randaug_apply(&inv, &g_rng, a, H, W, C, scratch);
    mim_randaug ra0 = ra;
    ra0.prob = 0.0;
    mim_randaug_apply(&ra0, &g_rng, a, H, W, C, scratch);
    TU_CHECK(memcmp(a, orig, N) == 0, "p 0: never changes the image");

    // magnitude noise: N(9, 0.5) clipped to [0, 10]
    double s1 = 0, s2 = 0, lo = 1e9, hi = -1e9;
    const int M = 100000;
    for (int t = 0; t < M; t++) {
        double m = mim_randaug_draw_magnitude(&ra, &g_rng);
        s1 += m; s2 += m * m;
        if (m < lo) lo = m;
        if (m > hi) hi = m;
    }
    double mean = s1 / M, sd = sqrt(s2 / M - mean * mean);
    // clipped normal at mu + 2 sigma: mean 9 - 0.5 * (phi(2) - 2 (1 - Phi(2))) = 8.99577
    double want_mean = 9.0 - 0.5 * (exp(-2.0) / sqrt(2 * M_PI) - 2 * 0.5 * erfc(2 / sqrt(2.0)));
    TU_CHECK(lo >= 0.0 && hi == 10.0 && fabs(mean - want_mean) < NSE * 0.5 / sqrt(M) && fabs(sd - 0.49) < 0.02,
             "magnitude m9 mstd0.5: range [%.3f, %.3f], mean %.4f (want %.4f), sd %.4f", lo, hi, mean, want_mean, sd);
    mim_randaug ru;
    CHECK(mim_randaug_parse(&ru, "rand-m9-mstd101") == MIM_OK);
    s1 = 0; lo = 1e9; hi = -1e9;
    for (int t = 0; t < M; t++) {
        double m = mim_randaug_draw_magnitude(&ru, &g_rng);
        s1 += m;
        if (m < lo) lo = m;
        if (m > hi) hi = m;
    }
    TU_CHECK(lo >= 0 && hi <= 9 && fabs(s1 / M - 4.5) < NSE * 9 / sqrt(12.0 * M),
             "magnitude m9 mstd101: uniform(0, 9), mean %.4f", s1 / M);

    // op choice: with p = 1, n = 1 over a set of 3 point ops, each used ~1/3
    mim_randaug three = ra;
    three.prob = 1.0;
    three.num_layers = 1;
    three.nops = 3;
    three.ops[0] = MIM_RA_INVERT;
    three.ops[1] = MIM_RA_SOLARIZE_ADD;   // 10 -> 10 + int(m/10 * 110)
    three.ops[2] = MIM_RA_POSTERIZE_INC;  // 10 -> 0 for m >= 7.5
    int cnt[3] = { 0, 0, 0 };
    for (int t = 0; t < T; t++) {
        uint8_t p1[1] = { 10 }, sc1[1];
        mim_randaug_apply(&three, &g_rng, p1, 1, 1, 1, sc1);
        cnt[p1[0] == 245 ? 0 : p1[0] > 10 ? 1 : 2]++;
    }
    double se3 = sqrt(2.0 / 9.0 / T);
    TU_CHECK(fabs(cnt[0] / (double)T - 1 / 3.) < NSE * se3 && fabs(cnt[1] / (double)T - 1 / 3.) < NSE * se3,
             "op choice uniform: %d / %d / %d of %d", cnt[0], cnt[1], cnt[2], T);

    // gray images: geometric fill is fill_gray; Color is the identity
    uint8_t g[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 }, gs[9];
    mim_randaug_apply_op(&ra, MIM_RA_TRANSLATE_X_REL, 10.0, 0, g, 3, 3, 1, gs);
    TU_CHECK(g[0] == 2 && g[2] == 114 && g[8] == 114, "gray TranslateXRel fills with %d", ra.fill_gray);
    uint8_t g2[9] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    mim_randaug_apply_op(&ra, MIM_RA_COLOR_INC, 10.0, 1, g2, 3, 3, 1, gs);
    TU_CHECK(g2[4] == 5 && g2[8] == 9, "gray ColorIncreasing: identity");

    // 200 draws on a 224 x 224 RGB image (MAE's fine-tuning size; also
    // exercises every op at full size under SAN builds), each from a fresh
    // copy with its own seed. Asserted: (a) the same seed reproduces the same
    // bytes and leaves the RNG in the same state; (b) about 3 in 4 draws change
    // the image (P(neither op applied) = 0.25, and at magnitude ~9 an applied
    // op practically always changes this image); (c) the seed drives the
    // output: the 200 outputs are mostly distinct. Collisions are expected
    // only among draws whose applied ops ignore the magnitude or quantise it
    // (AutoContrast, Equalize, Invert, Posterize*, Solarize*), about 1 draw in
    // 2, so over 200 seeds at least 80 distinct images (124 measured), while
    // a draw that ignored its RNG would give at most 2.
    enum { BH = 224, BW = 224, BN = BH * BW * 3, NBIG = 200 };
    uint8_t* big = tu_alloc_bytes(BN);
    uint8_t* ba = tu_alloc_bytes(BN);
    uint8_t* bb = tu_alloc_bytes(BN);
    uint8_t* bs = tu_alloc_bytes(mim_randaug_scratch_size(BH, BW, 3));
    uint64_t* hash = tu_alloc_bytes(sizeof(uint64_t) * NBIG);
    fill_test_image(big, BH, BW, 3, 9);
    int bsame = 1, bchanged = 0, bdistinct = 0;
    for (int t = 0; t < NBIG; t++) {
        mim_rng r1, r2;
        mim_rng_seed(&r1, 5000 + t);
        mim_rng_seed(&r2, 5000 + t);
        memcpy(ba, big, BN);
        memcpy(bb, big, BN);
        mim_randaug_apply(&ra, &r1, ba, BH, BW, 3, bs);
        mim_randaug_apply(&ra, &r2, bb, BH, BW, 3, bs);
        bsame &= memcmp(ba, bb, BN) == 0 && memcmp(r1.s, r2.s, sizeof r1.s) == 0;
        bchanged += memcmp(ba, big, BN) != 0;
        uint64_t h = 14695981039346656037ull;   // FNV-1a over the output bytes
        for (int i = 0; i < BN; i++) h = (h ^ ba[i]) * 1099511628211ull;
        hash[t] = h;
        int seen = 0;
        for (int u = 0; u < t && !seen; u++) seen = hash[u] == h;
        bdistinct += !seen;
    }
    TU_CHECK(bsame, "224x224 RGB, %d seeds: same seed -> same bytes and RNG state", NBIG);
    TU_CHECK(bchanged > 120 && bchanged < 180, "224x224 RGB: %d / %d draws changed the image (expect ~150)",
             bchanged, NBIG);
    TU_CHECK(bdistinct >= 80, "224x224 RGB: %d distinct outputs of %d seeds (want >= 80)", bdistinct, NBIG);
}

// ---------------------------------------------------------------- random erasing
static void box_stats(int H, int W, int n, double out[8]) {
    double found = 0, t1 = 0, t2 = 0, l1 = 0, l2 = 0, a1 = 0, a2 = 0;
    mim_rng r;
    mim_rng_seed(&r, 77 + H * 1000 + W);
    for (int i = 0; i < n; i++) {
        mim_erase_box b;
        if (!mim_random_erase_box(&r, H, W, 0.02, 1.0 / 3.0, 0.3, 1.0 / 0.3, &b)) continue;
        double t = b.target_area / ((double)H * W), la = log(b.aspect);
        found++;
        t1 += t; t2 += t * t; l1 += la; l2 += la * la; a1 += b.attempts; a2 += (double)b.attempts * b.attempts;
    }
    out[0] = n;
    out[1] = found / n;
    out[2] = t1 / found; out[3] = sqrt(t2 / found - out[2] * out[2]);
    out[4] = l1 / found; out[5] = sqrt(l2 / found - out[4] * out[4]);
    out[6] = a1 / found; out[7] = sqrt(fmax(a2 / found - out[6] * out[6], 0));
}

static void test_erase(int have_ref) {
    // box invariants: bounds, timm's rounding, area and aspect ranges
    int ok = 1, nfound = 0;
    const int sizes[3][2] = { { 224, 224 }, { 32, 32 }, { 24, 60 } };
    for (int s = 0; s < 3; s++) {
        int H = sizes[s][0], W = sizes[s][1];
        for (int i = 0; i < 20000; i++) {
            mim_erase_box b;
            if (!mim_random_erase_box(&g_rng, H, W, 0.02, 1.0 / 3.0, 0.3, 1.0 / 0.3, &b)) {
                ok &= b.attempts == 10;
                continue;
            }
            nfound++;
            double t = b.target_area, a = b.aspect;
            ok &= b.h < H && b.w < W && b.top >= 0 && b.left >= 0 && b.top + b.h <= H && b.left + b.w <= W;
            ok &= b.h == (int)nearbyint(sqrt(t * a)) && b.w == (int)nearbyint(sqrt(t / a));
            ok &= t >= 0.02 * H * W && t < H * W / 3.0 + 1e-9 && a >= 0.3 - 1e-12 && a <= 1 / 0.3 + 1e-12;
            ok &= b.attempts >= 1 && b.attempts <= 10;
        }
    }
    TU_CHECK(ok && nfound > 50000, "erase boxes: inside the image, h = round(sqrt(T a)), w = round(sqrt(T / a)), "
             "T/(HW) in [0.02, 1/3), a in [0.3, 1/0.3] (%d boxes)", nfound);
    // Python's round is half to even: 2.5 -> 2, 3.5 -> 4 (nearbyint in the default mode)
    TU_CHECK(nearbyint(2.5) == 2.0 && nearbyint(3.5) == 4.0, "nearbyint rounds half to even");

    // distribution vs timm's draw simulated in Python
    if (have_ref) {
        for (int s = 0; s < 3; s++) {
            int H = sizes[s][0], W = sizes[s][1];
            char key[64];
            snprintf(key, sizeof key, "erase.%dx%d.stats", H, W);
            double py[8], c[8];
            if (ref_f64(key, py, 8)) return;
            box_stats(H, W, 25000, c);
            double nc = c[0] * c[1], np_ = py[0] * py[1];
            double se_f = sqrt(fmax(py[1] * (1 - py[1]), 1e-4) * (1 / c[0] + 1 / py[0]));
            double se_t = sqrt(c[3] * c[3] / nc + py[3] * py[3] / np_);
            double se_l = sqrt(c[5] * c[5] / nc + py[5] * py[5] / np_);
            double se_a = sqrt(fmax(c[7] * c[7] / nc + py[7] * py[7] / np_, 1e-8));
            TU_CHECK(fabs(c[1] - py[1]) <= NSE * se_f && fabs(c[2] - py[2]) <= NSE * se_t &&
                     fabs(c[3] - py[3]) <= 0.05 * py[3] && fabs(c[4] - py[4]) <= NSE * se_l &&
                     fabs(c[5] - py[5]) <= 0.05 * py[5] && fabs(c[6] - py[6]) <= NSE * se_a,
                     "erase %dx%d vs timm (Python): found %.4f/%.4f, mean area %.4f/%.4f, sd %.4f/%.4f, "
                     "mean log a %+.4f/%+.4f, sd %.4f/%.4f, attempts %.3f/%.3f",
                     H, W, c[1], py[1], c[2], py[2], c[3], py[3], c[4], py[4], c[5], py[5], c[6], py[6]);
        }
    }

    // the whole call: probability, rectangle across channels, N(0, 1) values
    enum { C = 3, H = 32, W = 32, N = C * H * W };
    float* x = tu_alloc(N);
    const float sentinel = 1234.5f;
    const int T = 8000;
    int erased[2] = { 0, 0 };
    int rect_ok = 1;
    double v1 = 0, v2 = 0, nv = 0;
    const float probs[2] = { 0.25f, 1.0f };
    for (int pi = 0; pi < 2; pi++)
        for (int t = 0; t < T; t++) {
            for (int i = 0; i < N; i++) x[i] = sentinel;
            int did = mim_random_erase(x, C, H, W, probs[pi], &g_rng);
            int y0 = H, y1 = -1, x0 = W, x1 = -1, cnt = 0;
            for (int ch = 0; ch < C; ch++)
                for (int y = 0; y < H; y++)
                    for (int i = 0; i < W; i++) {
                        float v = x[(ch * H + y) * W + i];
                        if (v == sentinel) continue;
                        cnt++;
                        if (y < y0) y0 = y;
                        if (y > y1) y1 = y;
                        if (i < x0) x0 = i;
                        if (i > x1) x1 = i;
                        v1 += v; v2 += (double)v * v; nv++;
                    }
            erased[pi] += cnt > 0;
            rect_ok &= did == (cnt > 0);
            if (cnt) rect_ok &= cnt == C * (y1 - y0 + 1) * (x1 - x0 + 1);
        }
    TU_CHECK(rect_ok, "erase: one rectangle, the same in every channel, return value = erased");
    double m = v1 / nv, sd = sqrt(v2 / nv - m * m);
    TU_CHECK(fabs(m) < 0.01 && fabs(sd - 1) < 0.01, "erase values ~ N(0, 1): mean %+.4f sd %.4f (%.0f values)", m, sd, nv);
    double f1 = erased[1] / (double)T, f25 = erased[0] / (double)T;
    double se = sqrt(0.25 * 0.75 / T) / f1;
    TU_CHECK(f1 > 0.98 && fabs(f25 / f1 - 0.25) < NSE * se,
             "erase prob: 1.0 -> %.4f erased (all 10 attempts can miss), 0.25 -> %.4f (ratio %.4f, want 0.25)", f1, f25, f25 / f1);
    for (int i = 0; i < N; i++) x[i] = sentinel;
    int any = 0;
    for (int t = 0; t < 1000; t++) any |= mim_random_erase(x, C, H, W, 0.0f, &g_rng);
    TU_CHECK(!any && x[0] == sentinel, "erase prob 0: never");
}

// ---------------------------------------------------------------- Beta / Gamma
// Regularized incomplete beta I_x(a, b) by its continued fraction (Lentz),
// with the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where it converges slowly.
static double betacf(double a, double b, double x) {
    double qab = a + b, qap = a + 1, qam = a - 1, c = 1, d = 1 - qab * x / qap;
    if (fabs(d) < 1e-300) d = 1e-300;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 1000; m++) {
        int m2 = 2 * m;
        double aa = m * (b - m) * x / ((qam + m2) * (a + m2));
        d = 1 + aa * d; if (fabs(d) < 1e-300) d = 1e-300;
        c = 1 + aa / c; if (fabs(c) < 1e-300) c = 1e-300;
        d = 1 / d; h *= d * c;
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2));
        d = 1 + aa * d; if (fabs(d) < 1e-300) d = 1e-300;
        c = 1 + aa / c; if (fabs(c) < 1e-300) c = 1e-300;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) break;
    }
    return h;
}
static double beta_cdf(double x, double a, double b) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double bt = exp(lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x));
    if (x < (a + 1) / (a + b + 2)) return bt * betacf(a, b, x) / a;
    return 1 - bt * betacf(b, a, 1 - x) / b;
}

static int cmp_double(const void* p, const void* q) {
    double a = *(const double*)p, b = *(const double*)q;
    return (a > b) - (a < b);
}

static void test_beta(void) {
    const int N = 40000;
    double* s = tu_alloc_bytes(N * sizeof(double));
    const double ab[4][2] = { { 0.8, 0.8 }, { 1.0, 1.0 }, { 2.0, 5.0 }, { 0.3, 0.6 } };
    for (int c = 0; c < 4; c++) {
        double a = ab[c][0], b = ab[c][1], m1 = 0, m2 = 0;
        int in_range = 1;
        for (int i = 0; i < N; i++) {
            s[i] = mim_beta_sample(&g_rng, a, b);
            in_range &= s[i] >= 0 && s[i] <= 1;
            m1 += s[i]; m2 += s[i] * s[i];
        }
        qsort(s, N, sizeof(double), cmp_double);
        double ks = 0;
        for (int i = 0; i < N; i++) {
            double F = beta_cdf(s[i], a, b);
            ks = fmax(ks, fmax(fabs(F - (double)i / N), fabs(F - (double)(i + 1) / N)));
        }
        double mean = m1 / N, var = m2 / N - mean * mean;
        double wm = a / (a + b), wv = a * b / ((a + b) * (a + b) * (a + b + 1));
        // KS: the 0.1% critical value is 1.95 / sqrt(N)
        TU_CHECK(in_range && fabs(mean - wm) < NSE * sqrt(wv / N) && fabs(var - wv) < 0.03 * wv && ks < 1.95 / sqrt(N),
                 "Beta(%.1f, %.1f): mean %.4f (want %.4f), var %.5f (want %.5f), KS %.4f (< %.4f)",
                 a, b, mean, wm, var, wv, ks, 1.95 / sqrt(N));
    }
    const double shapes[4] = { 0.5, 1.0, 3.0, 20.0 };
    for (int c = 0; c < 4; c++) {
        double k = shapes[c], m1 = 0, m2 = 0;
        for (int i = 0; i < N; i++) { double g = mim_gamma_sample(&g_rng, k); m1 += g; m2 += g * g; }
        double mean = m1 / N, var = m2 / N - mean * mean;
        TU_CHECK(fabs(mean - k) < NSE * sqrt(k / N) && fabs(var - k) < 0.05 * k,
                 "Gamma(%.1f): mean %.4f, var %.4f (want %.1f, %.1f)", k, mean, var, k, k);
    }
}

// ---------------------------------------------------------------- mixup
static void test_mixup_ref(void) {
    static const struct { const char* name; int B, C, H, W, K; double lam; int cutmix, cy, cx; } cases[] = {
        { "mixup", 6, 3, 9, 7, 10, 0.3137, 0, 0, 0 },   // values must match augft_ref.py main()
        { "mixup_odd", 5, 2, 4, 6, 10, 0.8125, 0, 0, 0 },
        { "cutmix", 6, 3, 9, 7, 10, 0.55, 1, 4, 2 },
        { "cutmix_edge", 5, 2, 8, 11, 10, 0.2, 1, 0, 10 },
        { "none", 4, 1, 3, 3, 1000, 1.0, 0, 0, 0 },
        { "k1000", 8, 1, 2, 2, 1000, 0.6071, 0, 0, 0 },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int B = cases[c].B, C = cases[c].C, H = cases[c].H, W = cases[c].W, K = cases[c].K;
        size_t n = (size_t)B * C * H * W;
        char key[96];
        float* x = tu_alloc(n);
        float* xw = tu_alloc(n);
        float* t = tu_alloc((size_t)B * K);
        float* tw = tu_alloc((size_t)B * K);
        int32_t* y = tu_alloc_bytes(B * sizeof(int32_t));
        snprintf(key, sizeof key, "mix.%s.x", cases[c].name);
        if (tu_st_f32(g_ref, key, x, 4, (const int64_t[]){ B, C, H, W })) return;
        snprintf(key, sizeof key, "mix.%s.xout", cases[c].name);
        if (tu_st_f32(g_ref, key, xw, 4, (const int64_t[]){ B, C, H, W })) return;
        snprintf(key, sizeof key, "mix.%s.targets", cases[c].name);
        if (tu_st_f32(g_ref, key, tw, 2, (const int64_t[]){ B, K })) return;
        snprintf(key, sizeof key, "mix.%s.y", cases[c].name);
        if (tu_st_i32(g_ref, key, y, 1, (const int64_t[]){ B })) return;
        double lam_want;
        snprintf(key, sizeof key, "mix.%s.lam", cases[c].name);
        if (ref_f64(key, &lam_want, 1)) return;
        mim_mix_params p = { .lam = cases[c].lam };
        if (cases[c].cutmix) {
            int32_t box[4];
            snprintf(key, sizeof key, "mix.%s.box", cases[c].name);
            if (tu_st_i32(g_ref, key, box, 1, (const int64_t[]){ 4 })) return;
            mim_cutmix_box_at(&p, cases[c].lam, cases[c].cy, cases[c].cx, H, W, 1);
            TU_CHECK(p.yl == box[0] && p.yh == box[1] && p.xl == box[2] && p.xh == box[3] && p.lam == lam_want,
                     "%-12s cutmix box [%d:%d, %d:%d] lam %.6f (timm: [%d:%d, %d:%d] %.6f)", cases[c].name,
                     p.yl, p.yh, p.xl, p.xh, p.lam, box[0], box[1], box[2], box[3], lam_want);
        }
        mim_mixup_apply(x, &p, B, C, H, W);
        mim_mixup_targets(t, y, p.lam, 0.1, B, K);
        TU_CHECK(memcmp(x, xw, n * sizeof(float)) == 0, "%-12s mixed batch (%d,%d,%d,%d) bit-exact vs PyTorch",
                 cases[c].name, B, C, H, W);
        size_t nbad = 0;
        for (size_t i = 0; i < (size_t)B * K; i++) nbad += t[i] != tw[i];
        TU_CHECK(nbad == 0, "%-12s targets (%d,%d) bit-exact vs timm mixup_target (%zu differ)", cases[c].name, B, K, nbad);
    }
}

static void test_mixup_semantics(void) {
    // one-hot smoothing, exact values: off = 0.1 / K, on = 0.9 + off in fp32
    enum { B = 4, K = 10 };
    int32_t y[B] = { 3, 0, 9, 3 };
    float t[B * K];
    mim_mixup_targets(t, y, 1.0, 0.1, B, K);
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int k = 0; k < K; k++) ok &= t[b * K + k] == (k == y[b] ? (float)(0.9 + 0.01) : (float)0.01);
    TU_CHECK(ok, "lam 1: smoothed one-hot, off = (float)(0.1/K), on = (float)(1 - 0.1 + 0.1/K)");
    mim_mixup_targets(t, y, 0.3, 0.1, B, K);
    double rs = 0;
    for (int k = 0; k < K; k++) rs += t[K + k];   // row 1 mixes labels 0 and 9
    TU_CHECK(fabs(rs - 1) < 1e-6 && fabs(t[K + 0] - (0.3 * 0.91 + 0.7 * 0.01)) < 1e-7 &&
             fabs(t[K + 9] - (0.3 * 0.01 + 0.7 * 0.91)) < 1e-7, "lam 0.3: rows sum to 1, weights lam / 1 - lam");

    // the draw: P(cutmix) = 0.5, lam ~ Beta(0.8) for mixup, corrected box lam for cutmix
    mim_mixup mx;
    mim_mixup_default(&mx, K);
    TU_CHECK(mx.mixup_alpha == 0.8 && mx.cutmix_alpha == 1.0 && mx.prob == 1.0 && mx.switch_prob == 0.5 &&
             mx.label_smoothing == 0.1 && mx.correct_lam == 1, "mim_mixup_default: the MAE fine-tuning settings");
    const int T = 20000, H = 32, W = 32;
    int ncut = 0, box_ok = 1;
    double mix_m1 = 0, mix_m2 = 0, cut_m1 = 0;
    int nmix = 0;
    for (int i = 0; i < T; i++) {
        mim_mix_params p;
        mim_mixup_draw(&p, &mx, &g_rng, H, W);
        if (p.cutmix) {
            ncut++;
            box_ok &= 0 <= p.yl && p.yl <= p.yh && p.yh <= H && 0 <= p.xl && p.xl <= p.xh && p.xh <= W;
            box_ok &= p.lam == 1.0 - (double)(p.yh - p.yl) * (p.xh - p.xl) / (H * W);
            cut_m1 += p.lam;
        } else {
            nmix++;
            mix_m1 += p.lam; mix_m2 += p.lam * p.lam;
        }
    }
    double fc = (double)ncut / T, se = sqrt(0.25 / T);
    double mm = mix_m1 / nmix, mv = mix_m2 / nmix - mm * mm, wv = 1 / (4 * (2 * 0.8 + 1));
    TU_CHECK(fabs(fc - 0.5) < NSE * se, "draw: cutmix fraction %.4f (want 0.5)", fc);
    TU_CHECK(box_ok, "draw: cutmix boxes inside the image, lam = 1 - box area / (H W)");
    TU_CHECK(fabs(mm - 0.5) < NSE * sqrt(wv / nmix) && fabs(mv - wv) < 0.05 * wv,
             "draw: mixup lam mean %.4f var %.5f (Beta(0.8, 0.8): 0.5, %.5f)", mm, mv, wv);
    // corrected cutmix lam: E = 1 - E[clipped box area] / HW > 1 - E[1 - lam] = 0.5 (clipping shrinks boxes)
    TU_CHECK(cut_m1 / ncut > 0.5 && cut_m1 / ncut < 0.75, "draw: corrected cutmix lam mean %.4f (> 0.5: clipped boxes)", cut_m1 / ncut);
    mx.prob = 0.0;
    mim_mix_params p;
    mim_mixup_draw(&p, &mx, &g_rng, H, W);
    TU_CHECK(p.lam == 1.0 && !p.cutmix, "draw with prob 0: lam 1, no mixing");

    // mixup_batch = draw + apply + targets, same RNG stream
    mim_mixup_default(&mx, K);
    enum { BB = 6, CC = 2, HH = 5, WW = 4, NN = BB * CC * HH * WW };
    float x1[NN], x2[NN], t1[BB * K], t2[BB * K];
    int32_t yy[BB] = { 1, 2, 3, 4, 5, 6 };
    int same = 1;
    for (int it = 0; it < 50; it++) {
        tu_fill_normal(&g_rng, x1, NN, 1.0f);
        memcpy(x2, x1, sizeof x1);
        mim_rng r1 = g_rng, r2 = g_rng;
        double lam = mim_mixup_batch(&mx, &r1, x1, t1, yy, BB, CC, HH, WW);
        mim_mixup_draw(&p, &mx, &r2, HH, WW);
        mim_mixup_apply(x2, &p, BB, CC, HH, WW);
        mim_mixup_targets(t2, yy, p.lam, 0.1, BB, K);
        same &= lam == p.lam && !memcmp(x1, x2, sizeof x1) && !memcmp(t1, t2, sizeof t1);
        g_rng = r1;
    }
    TU_CHECK(same, "mim_mixup_batch = draw + apply + targets");
}

// ---------------------------------------------------------------- soft-target CE
static void test_soft_ce_ref(void) {
    static const struct { const char* name; int B, K; } cases[] = { { "small", 7, 13 }, { "general", 5, 11 }, { "big", 16, 1000 } };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        int B = cases[c].B, K = cases[c].K;
        size_t n = (size_t)B * K;
        char key[64];
        float* x = tu_alloc(n);
        float* t = tu_alloc(n);
        float* p = tu_alloc(n);
        float* d = tu_alloc(n);
        float* dw = tu_alloc(n);
        double loss_w, dloss;
        const int64_t* sh = (const int64_t[]){ B, K };
        snprintf(key, sizeof key, "ce.%s.logits", cases[c].name);
        if (tu_st_f32(g_ref, key, x, 2, sh)) return;
        snprintf(key, sizeof key, "ce.%s.targets", cases[c].name);
        if (tu_st_f32(g_ref, key, t, 2, sh)) return;
        snprintf(key, sizeof key, "ce.%s.dlogits", cases[c].name);
        if (tu_st_f32(g_ref, key, dw, 2, sh)) return;
        snprintf(key, sizeof key, "ce.%s.loss", cases[c].name);
        if (ref_f64(key, &loss_w, 1)) return;
        snprintf(key, sizeof key, "ce.%s.dloss", cases[c].name);
        if (ref_f64(key, &dloss, 1)) return;
        float loss = mim_soft_ce_forward(x, t, p, B, K);
        double rel = fabs(loss - loss_w) / fabs(loss_w);
        tu_report(rel <= TOL_CE, "soft CE %-8s (%d,%d) loss %.7f vs PyTorch %.7f: rel %.2e (tol %.0e)",
                  cases[c].name, B, K, (double)loss, loss_w, rel, TOL_CE);
        mim_soft_ce_backward(d, p, t, (float)dloss, B, K);
        char label[64];
        snprintf(label, sizeof label, "soft CE %s (%d,%d) dlogits vs PyTorch", cases[c].name, B, K);
        tu_close(label, d, dw, n, TOL_CE);
    }
}

static void test_soft_ce_local(void) {
    enum { B = 5, K = 9, N = B * K };
    float x[N], t[N], p[N], d[N], r[N], g[N];
    tu_fill_normal(&g_rng, x, N, 2.0f);
    tu_fill_uniform(&g_rng, t, N, 0.0f, 0.4f);
    // central differences of the loss (in double over the fp32 forward)
    const float dloss = 1.7f;
    memset(g, 0, sizeof g);
    mim_soft_ce_forward(x, t, p, B, K);
    mim_soft_ce_backward(g, p, t, dloss, B, K);
    double worst = 0, gmax = 0;
    for (int i = 0; i < N; i++) {
        float x0 = x[i];
        volatile float xp = x0 + 1e-2f, xm = x0 - 1e-2f;
        x[i] = xp; double fp = mim_soft_ce_forward(x, t, NULL, B, K);
        x[i] = xm; double fm = mim_soft_ce_forward(x, t, NULL, B, K);
        x[i] = x0;
        double num = dloss * (fp - fm) / ((double)xp - (double)xm);
        worst = fmax(worst, fabs(num - g[i]));
        gmax = fmax(gmax, fabs(g[i]));
    }
    TU_CHECK(worst / gmax < 1e-2, "soft CE finite differences: max|num - ana| / max|ana| = %.2e", worst / gmax);
    // accumulation: R + 2 g
    tu_fill_normal(&g_rng, r, N, 1.0f);
    memcpy(d, r, sizeof d);
    mim_soft_ce_backward(d, p, t, dloss, B, K);
    mim_soft_ce_backward(d, p, t, dloss, B, K);
    for (int i = 0; i < N; i++) r[i] += 2 * g[i];
    tu_close("soft CE backward accumulates (R + 2 g)", d, r, N, 1e-6);
    float rowsum = 0;
    for (int k = 0; k < K; k++) rowsum += p[k];
    TU_CHECK(fabsf(rowsum - 1) < 1e-5f, "soft CE probs rows sum to 1 (%.7f)", (double)rowsum);
}

int main(void) {
    mim_rng_seed(&g_rng, 20240601);
    char path[4096];
    mim_st* st = NULL;
    int rc = tu_run_torch_ref("tests/ref/augft_ref.py", path, sizeof path);
    int skipped = rc == 1;
    if (rc < 0) {
        tu_report(0, "tests/ref/augft_ref.py ran");
    } else if (rc == 0) {
        int orc = mim_st_open(&st, path);
        unlink(path);
        if (!TU_CHECK(orc == 0, "open the reference file: %s", orc ? mim_err_msg() : "ok")) st = NULL;
        g_ref = st;
    }
    if (skipped && getenv("MIM_REQUIRE_TORCH") && atoi(getenv("MIM_REQUIRE_TORCH")))
        tu_report(0, "MIM_REQUIRE_TORCH=1 but the reference could not run (python3 / torch / PIL missing)");

    test_parse();
    if (g_ref) test_randaug_ref();
    test_randaug_draws();
    test_erase(g_ref != NULL);
    test_beta();
    if (g_ref) test_mixup_ref();
    test_mixup_semantics();
    if (g_ref) test_soft_ce_ref();
    test_soft_ce_local();

    if (st) mim_st_close(st);
    tu_free_all();
    return tu_summary("test_augment_ft", skipped, "python3 with torch, numpy and PIL not available: reference checks skipped");
}
