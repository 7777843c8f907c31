// test_baselines.c: the feature baselines of the evaluations
// (eval/features.h), on a tiny synthetic IDX set:
//  (a) raw pixels: every sample once, in file order, the last partial batch
//      included; each feature row equals the image normalised with the
//      training split's mean and std, computed here independently (the eval
//      split too); at another --img the rows are the source's eval-transform
//      images (what an encoder at that size is given), D = C x H x W.
//  (b) random init: the features of an encoder built and MAE-initialised
//      from the seed here, bit for bit; the same seed twice gives the same
//      features, another seed others.
//  (c) the feature cache keys of the modes differ (and pixels needs no
//      checkpoint to make one); the config of each mode; a patch that does
//      not divide the input is refused in the flags' words.
//  (d) the CLI ($MIM_BUILD/mimscale): knn --features pixels and linprobe
//      --init random print "features" and the feature width; contradictory
//      flag sets exit 2 with a message; with MPI (mpirun -np 2), both
//      baselines' features from 2 ranks equal one process's, bit for bit.
#include "distutil.h"
#include "data/source.h"
#include "eval/featcache.h"
#include "eval/features.h"
#include "model/mae.h"
#include <sys/stat.h>
#include <sys/wait.h>
#include <zlib.h>

#define NTR 37   // 4 batches of 8 + a remainder of 5
#define NEV 11
#define HW 12

static char tmpdir[256], data[512];
static uint8_t px_tr[NTR * HW * HW], px_ev[NEV * HW * HW];

static void write_data(void) {
    uint8_t lab_tr[NTR], lab_ev[NEV];
    mim_rng r;
    mim_rng_seed(&r, 7);
    for (int i = 0; i < NTR * HW * HW; i++) px_tr[i] = (uint8_t)mim_rng_below(&r, 256);
    for (int i = 0; i < NEV * HW * HW; i++) px_ev[i] = (uint8_t)mim_rng_below(&r, 256);
    for (int i = 0; i < NTR; i++) lab_tr[i] = (uint8_t)(i % 3);
    for (int i = 0; i < NEV; i++) lab_ev[i] = (uint8_t)(i % 3);
    tu_write_idx(data, "train", NTR, HW, HW, px_tr, lab_tr);
    tu_write_idx(data, "t10k", NEV, HW, HW, px_ev, lab_ev);
}

static mim_eval_common common(mim_feat_mode mode, int batch) {
    return (mim_eval_common){.mode = mode, .data = data, .data_split = "train", .eval_split = "t10k",
                             .pool = MIM_POOL_CLS, .batch = batch, .threads = 1, .max_feature_gb = 1, .quiet = 1};
}

static void test_pixels(void) {
    // the normalisation, independently: mean and (population) std of the train pixels in [0, 1]
    double s1 = 0, s2 = 0;
    for (int i = 0; i < NTR * HW * HW; i++) { double v = px_tr[i] / 255.0; s1 += v; s2 += v * v; }
    double np = NTR * HW * HW, mean = s1 / np, sd = sqrt(s2 / np - mean * mean);
    float* want_tr = tu_alloc(NTR * HW * HW);
    float* want_ev = tu_alloc(NEV * HW * HW);
    for (int i = 0; i < NTR * HW * HW; i++) want_tr[i] = (float)((px_tr[i] / 255.0 - mean) / sd);
    for (int i = 0; i < NEV * HW * HW; i++) want_ev[i] = (float)((px_ev[i] / 255.0 - mean) / sd);

    mim_eval_common a = common(MIM_FEAT_PIXELS, 8);
    mim_features tr, ev;
    mim_config cfg;
    int rc = mim_eval_features(&a, &tr, &ev, &cfg);
    TU_CHECK(rc == 0, "pixels: extracted (%s)", rc ? mim_err_msg() : "ok");
    if (rc) return;
    TU_CHECK(tr.n == NTR && ev.n == NEV && tr.dim == HW * HW && ev.dim == HW * HW && tr.num_classes == 3 && tr.n_skipped == 0,
             "pixels: every sample once (train %lld, eval %lld), D = 1 x 12 x 12 = %d", (long long)tr.n, (long long)ev.n, tr.dim);
    TU_CHECK(!strcmp(cfg.name, "pixels") && cfg.dim == HW * HW && cfg.img_h == HW && cfg.in_chans == 1 && cfg.depth == 0,
             "pixels: the config is named pixels, dim = C x H x W, no model");
    int lab_ok = 1;
    for (int i = 0; i < NTR; i++) lab_ok &= tr.labels[i] == i % 3;
    TU_CHECK(lab_ok, "pixels: labels in file order");
    tu_close("pixels: train features == the train-normalised pixels (remainder batch included)", tr.x, want_tr, (size_t)NTR * HW * HW, 1e-5);
    tu_close("pixels: eval features == eval pixels normalised with the train statistics", ev.x, want_ev, (size_t)NEV * HW * HW, 1e-5);
    mim_features tr2, ev2;
    a.batch = NTR;   // one batch, no remainder path
    CHECK(mim_eval_features(&a, &tr2, &ev2, NULL) == 0);
    TU_CHECK(memcmp(tr.x, tr2.x, sizeof(float) * NTR * HW * HW) == 0, "pixels: batch 8 (+ remainder) and batch 37 give the same bits");
    mim_features_free(&tr2); mim_features_free(&ev2);

    // another input size: the source's eval-transform images at 16 x 16
    a.batch = 8; a.img = 16;
    rc = mim_eval_features(&a, &tr2, &ev2, &cfg);
    TU_CHECK(rc == 0 && tr2.dim == 256 && cfg.img_h == 16, "pixels at --img 16: D = 256 (%s)", rc ? mim_err_msg() : "ok");
    if (!rc) {
        mim_source_config sc = {.path = data, .split = "train", .channels = 1, .height = 16, .width = 16, .batch = 1};
        mim_source* src = NULL;
        CHECK(mim_source_open(&src, &sc) == 0);
        float* img = tu_alloc(256 * NTR);
        int32_t l;
        for (int i = 0; i < NTR; i++) CHECK(mim_source_next(src, img + (size_t)i * 256, &l) == 0);
        mim_source_close(src);
        TU_CHECK(memcmp(img, tr2.x, sizeof(float) * 256 * NTR) == 0, "pixels at --img 16: the source's eval-transform images, bit for bit");
        mim_features_free(&tr2); mim_features_free(&ev2);
    }
    mim_features_free(&tr); mim_features_free(&ev);
}

static void test_random(void) {
    mim_eval_common a = common(MIM_FEAT_RANDOM, 8);
    a.model = "vit_nano"; a.patch = 4; a.seed = 5;
    mim_config cfg;
    int rc = mim_eval_config(&a, &cfg);
    TU_CHECK(rc == 0 && cfg.patch == 4 && cfg.img_h == HW && cfg.in_chans == 1 && cfg.dec_depth == 0 && cfg.mask_ratio == 0,
             "random-init config: vit_nano, patch 4, the data's 12 x 12 x 1, no decoder, no mask (%s)", rc ? mim_err_msg() : "ok");
    mim_features t1, e1, t2, e2, t3, e3;
    rc = mim_eval_features(&a, &t1, &e1, NULL);
    TU_CHECK(rc == 0 && t1.n == NTR && e1.n == NEV && t1.dim == cfg.dim, "random-init: extracted, D = %d (%s)", t1.dim, rc ? mim_err_msg() : "ok");
    if (rc) return;
    // the encoder as finetune --init random builds it from the seed
    mim_mae m;
    CHECK(mim_mae_init(&m, &cfg, NTR) == 0);
    mim_mae_init_weights(&m, 5);
    mim_source_config sc = {.path = data, .split = "train", .channels = 1, .height = HW, .width = HW, .batch = NTR, .no_replace = 1};
    mim_features ref;
    CHECK(mim_features_extract(&ref, &m, &sc, MIM_POOL_CLS, 1, "train", 1) == 0);
    mim_mae_free(&m);
    tu_close("random-init: the features of the encoder MAE-initialised from the seed", t1.x, ref.x, (size_t)NTR * t1.dim, 1e-5);
    mim_features_free(&ref);
    CHECK(mim_eval_features(&a, &t2, &e2, NULL) == 0);
    TU_CHECK(memcmp(t1.x, t2.x, sizeof(float) * NTR * t1.dim) == 0 && memcmp(e1.x, e2.x, sizeof(float) * NEV * e1.dim) == 0,
             "random-init: the same seed gives the same features, bit for bit");
    a.seed = 6;
    CHECK(mim_eval_features(&a, &t3, &e3, NULL) == 0);
    double diff = 0;
    for (size_t i = 0; i < (size_t)NTR * t1.dim; i++) diff += fabs(t1.x[i] - t3.x[i]);
    TU_CHECK(diff / ((double)NTR * t1.dim) > 1e-2, "random-init: another seed gives other features (mean |diff| %.3g)", diff / ((double)NTR * t1.dim));
    mim_features_free(&t1); mim_features_free(&e1); mim_features_free(&t2); mim_features_free(&e2);
    mim_features_free(&t3); mim_features_free(&e3);
    a.patch = 5;
    rc = mim_eval_config(&a, &cfg);
    TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "--patch 5"), "random-init: patch 5 on 12 x 12 refused: %s", rc ? mim_err_msg() : "accepted");
}

static void test_keys(void) {
    char kp[4096], kr[4096], kr2[4096], kp2[4096];
    mim_eval_common a = common(MIM_FEAT_PIXELS, 8);
    TU_CHECK(mim_featcache_key(kp, sizeof kp, &a) == 0 && strstr(kp, "features=pixels"), "cache key: pixels, no checkpoint needed (%s)", kp);
    a.img = 16;
    CHECK(mim_featcache_key(kp2, sizeof kp2, &a) == 0);
    a = common(MIM_FEAT_RANDOM, 8);
    a.model = "vit_nano"; a.patch = 4; a.seed = 1;
    CHECK(mim_featcache_key(kr, sizeof kr, &a) == 0);
    a.seed = 2;
    CHECK(mim_featcache_key(kr2, sizeof kr2, &a) == 0);
    TU_CHECK(strcmp(kp, kp2) && strcmp(kp, kr) && strcmp(kr, kr2) && strstr(kr, "features=random-init"),
             "cache keys differ by mode, geometry and seed");
    a = common(MIM_FEAT_CKPT, 8);
    a.ckpt = "/nonexistent/model.safetensors";
    TU_CHECK(mim_featcache_key(kr, sizeof kr, &a) == MIM_EIO, "cache key: a missing checkpoint is still an error");
}

// Runs cmd, its stdout and stderr into out (cap bytes); the exit status.
static int run_cli(const char* cmd, char* out, size_t cap) {
    FILE* p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void) {
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    char bin[512], cmd[2048], out[16384];
    snprintf(bin, sizeof bin, "%s/mimscale", build);
    if (access(bin, X_OK) != 0) { printf("no %s: CLI checks skipped (build it first)\n", bin); return; }
    snprintf(cmd, sizeof cmd, "%s knn --features pixels --data %s --batch 8 --threads 1 --k 3 --quiet 2>&1", bin, data);
    int rc = run_cli(cmd, out, sizeof out);
    TU_CHECK(rc == 0 && strstr(out, "\"features\":\"pixels\"") && strstr(out, "\"dim\":144") && strstr(out, "\"top1\""),
             "CLI: knn --features pixels prints features pixels, dim 144 (rc %d)", rc);
    snprintf(cmd, sizeof cmd, "%s linprobe --init random --model vit_nano --patch 4 --seed 3 --epochs 1 --data %s --batch 8 --threads 1 "
             "--features-cache %s/f.safetensors --quiet 2>&1", bin, data, tmpdir);
    rc = run_cli(cmd, out, sizeof out);
    TU_CHECK(rc == 0 && strstr(out, "\"features\":\"random-init\"") && strstr(out, "\"init_seed\":3") && strstr(out, "\"model\":\"vit_nano\""),
             "CLI: linprobe --init random prints features random-init, init_seed 3, model vit_nano (rc %d)", rc);
    // the knn of the same encoder reuses the linprobe's extraction
    snprintf(cmd, sizeof cmd, "%s knn --init random --model vit_nano --patch 4 --seed 3 --data %s --batch 8 --threads 1 "
             "--features-cache %s/f.safetensors 2>&1", bin, data, tmpdir);
    rc = run_cli(cmd, out, sizeof out);
    TU_CHECK(rc == 0 && strstr(out, "from ") && strstr(out, "f.safetensors"), "CLI: knn with the same --seed hits linprobe's feature cache (rc %d)", rc);
    struct { const char* flags; const char* must; } bad[] = {
        {"--features pixels --ckpt x.safetensors", "drop --ckpt"},
        {"--features pixels --init random", "drop --init random"},
        {"--init random --ckpt x.safetensors", "drop --ckpt"},
        {"--ckpt x.safetensors --img 32", "a checkpoint has its own"},
        {"", "--features pixels, --init random"},
        {"--features raw", "encoder or pixels"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(cmd, sizeof cmd, "%s knn %s --data %s --quiet 2>&1", bin, bad[i].flags, data);
        rc = run_cli(cmd, out, sizeof out);
        TU_CHECK(rc == 2 && strstr(out, bad[i].must), "CLI: knn %s: exit 2 naming \"%s\" (rc %d: %.200s)", bad[i].flags, bad[i].must, rc, out);
    }
#ifdef MIM_MPI
    const char* why = NULL;
    char b2[512];
    if (du_setup(b2, sizeof b2, &why)) { printf("MPI checks skipped: %s\n", why); return; }
    const char* modes[2][2] = {{"pixels", "--features pixels"}, {"random", "--init random --model vit_nano --patch 4 --seed 9"}};
    for (int i = 0; i < 2; i++) {   // batch 8: each rank a run of whole batches, the remainder on the last
        rc = du_sh("%s knn %s --data %s --batch 8 --threads 1 --quiet --save-features %s/%s1.st >/dev/null 2>&1", bin,
                   modes[i][1], data, tmpdir, modes[i][0]);
        rc |= du_sh("mpirun --oversubscribe -np 2 %s knn %s --data %s --batch 8 --threads 1 --quiet --save-features %s/%s2.st "
                    ">/dev/null 2>&1", bin, modes[i][1], data, tmpdir, modes[i][0]);
        char a[700], b[700];
        snprintf(a, sizeof a, "%s/%s1.st", tmpdir, modes[i][0]);
        snprintf(b, sizeof b, "%s/%s2.st", tmpdir, modes[i][0]);
        int bits = 0;
        double d = rc ? INFINITY : du_st_diff(a, b, NULL, &bits);
        TU_CHECK(rc == 0 && bits, "MPI: %s features of 37 + 11 images from 2 ranks == 1 process, bit for bit (exit %d, maxrel %.2e)",
                 modes[i][0], rc, d);
    }
#endif
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_baselines_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    snprintf(data, sizeof data, "%s/data", tmpdir);
    mkdir(data, 0755);
    write_data();
    test_pixels();
    test_random();
    test_keys();
    test_cli();
    tu_cleanup_dir(tmpdir);
    tu_free_all();
    return tu_summary("test_baselines", 0, NULL);
}
