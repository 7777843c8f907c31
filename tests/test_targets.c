// test_targets.c: reconstruction targets beyond pixels.
//  1. HOG (src/model/hog.h) against tests/ref/hog_ref.py, an independent
//     PyTorch implementation of mmpretrain's HOGGenerator generalised to any
//     patch (it asserts it equals mmpretrain's own fp32 op order at 224/16):
//     maxrel <= 1e-4 on MaskFeat's geometry, small, grayscale non-square,
//     unweighted 6-bin and Fashion-MNIST patch-7 cases. Without torch:
//     invariants (each histogram unit-norm or zero), thread-count
//     independence and the geometry errors still run.
//  2. The MAE with an external target (mim_mae_forward_target, decoder_pred
//     of width Pt != p*p*C) and each loss (mse, cos, smooth-l1) against
//     tests/ref/mae_ref.py: loss, pred and every parameter gradient to 1e-4;
//     and the pixel path through mim_mae_forward_target equals
//     mim_mae_forward bit for bit.
//  3. `pretrain` with target hog on the synthetic IDX data of
//     test_pretrain.c: the loss falls over a few steps, the checkpoint
//     records the target, reconstruct refuses it, resuming with another
//     target is refused, and the CLI rejects bad target flags clearly.
//  4. The teacher cache (train/tcache.h): hits, misses and empty slots,
//     persistence, a damaged record, refused files left untouched; pretrain
//     runs without the cache, filling it and reading it give the same
//     losses; the CLI's counts, a failed cache write, the flags it needs.
// Exit 0 pass, 1 failure, 77 when torch is missing (the rest passed).
#include "testutil.h"
#include "data/idx.h"
#include "eval/reconstruct.h"
#include "model/hog.h"
#include "model/mae.h"
#include "train/checkpoint.h"
#include "train/pretrain.h"
#include "train/tcache.h"
#include <cjson/cJSON.h>
#include <omp.h>
#include <sys/stat.h>

#define SH(...) ((const int64_t[]){__VA_ARGS__})

static char tmpdir[256];
static char repo[1024];

// ================================================================ 1. HOG
typedef struct { const char* tag; int B, C, H, W, p, cell, window, nbins; } hog_case;

// Every (patch, channel, cell) histogram is unit-norm or all zero.
static int hog_norms_ok(const float* out, const hog_case* k, int L, int* nzero) {
    int u = k->p / k->cell, Pt = k->C * k->nbins * u * u, ok = 1;
    *nzero = 0;
    for (int r = 0; r < k->B * L; r++)
        for (int c = 0; c < k->C; c++)
            for (int q = 0; q < u * u; q++) {
                double s = 0;
                for (int b = 0; b < k->nbins; b++) {
                    double v = out[(size_t)r * Pt + (size_t)(c * k->nbins + b) * u * u + q];
                    s += v * v;
                    if (v < 0) ok = 0;
                }
                if (s == 0) (*nzero)++;
                else if (fabs(sqrt(s) - 1) > 1e-5) ok = 0;
            }
    return ok;
}

static void test_hog(const mim_st* ref, const hog_case* k, mim_rng* rng) {
    mim_hog_params hp = {.cell = k->cell, .nbins = k->nbins, .window = k->window};
    int L = (k->H / k->p) * (k->W / k->p), Pt = mim_hog_dim(&hp, k->C, k->p);
    size_t ni = (size_t)k->B * k->C * k->H * k->W, no = (size_t)k->B * L * Pt;
    float *imgs = tu_alloc(ni), *out = tu_alloc(no), *out2 = tu_alloc(no), *want = tu_alloc(no);
    char key[128], label[160];
    snprintf(key, sizeof key, "%s.imgs", k->tag);
    if (!ref || tu_st_f32(ref, key, imgs, 4, SH(k->B, k->C, k->H, k->W)) != 0) {
        tu_fill_normal(rng, imgs, ni, 1.0f);
        for (int y = 0; y < k->H && y < k->cell + 2; y++)   // the flat cell of hog_ref.py
            for (int x = 0; x < k->W && x < k->cell + 2; x++) imgs[(size_t)y * k->W + x] = 0.25f;
    }
    TU_CHECK(mim_hog_check(&hp, k->C, k->H, k->W, k->p) == 0, "%s geometry accepted", k->tag);
    mim_hog_forward(out, imgs, k->B, k->C, k->H, k->W, k->p, &hp);
    if (ref) {
        snprintf(key, sizeof key, "%s.out", k->tag);
        snprintf(label, sizeof label, "%s (%dx%dx%d p%d cell%d win%d) vs torch", k->tag, k->C, k->H, k->W, k->p, k->cell, k->window);
        if (tu_st_f32(ref, key, want, 3, SH(k->B, L, Pt)) == 0) tu_close(label, out, want, no, 1e-4);
    }
    int nzero, norms = hog_norms_ok(out, k, L, &nzero);
    TU_CHECK(norms && nzero >= 1, "%s histograms non-negative, unit L2 norm or zero (%d zero: the flat cell)", k->tag, nzero);
    int nt = omp_get_max_threads();
    omp_set_num_threads(3);
    mim_hog_forward(out2, imgs, k->B, k->C, k->H, k->W, k->p, &hp);
    omp_set_num_threads(nt);
    TU_CHECK(memcmp(out, out2, no * sizeof(float)) == 0, "%s same bits with 3 threads", k->tag);
}

static void test_hog_errors(void) {
    mim_hog_params hp = {.cell = 8, .nbins = 9, .window = 16};
    int rc = mim_hog_check(&hp, 1, 28, 28, 7);
    TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "patch 7 is not divisible by the cell size 8"),
             "patch 7, cell 8: \"%s\"", mim_err_msg());
    hp = (mim_hog_params){.cell = 4, .nbins = 9, .window = 3};
    rc = mim_hog_check(&hp, 1, 16, 16, 8);
    TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "window"), "window 3 on 16x16: \"%s\"", mim_err_msg());
    hp = (mim_hog_params){.cell = 4, .nbins = 0, .window = 0};
    TU_CHECK(mim_hog_check(&hp, 1, 16, 16, 8) == MIM_EARG, "0 bins rejected: \"%s\"", mim_err_msg());
    hp = (mim_hog_params){.cell = 8, .nbins = 9, .window = 16};
    TU_CHECK(mim_hog_dim(&hp, 3, 16) == 108, "MaskFeat ViT-B/16 target width 3 x 9 x 2 x 2 = 108");
}

// ================================================================ 2. model
static int run_mae_ref(const char* args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/ref/mae_ref.py %s", repo, args);
    int rc = system(cmd);
    if (rc != 0) printf("reference failed: %s\n", cmd);
    return rc;
}

// IN for mae_ref.py grads: every parameter, imgs, noise, target, config metadata.
static void write_model_input(const char* path, const mim_mae* m, const float* imgs, const float* noise,
                              const float* target, int B) {
    const mim_config* c = &m->cfg;
    mim_st_entry e[MIM_MAX_PARAMS + 3];
    int n = 0;
    for (int i = 0; i < m->nparams; i++) {
        const mim_param* p = &m->table[i];
        e[n] = (mim_st_entry){.name = p->name, .dtype = MIM_F32, .ndim = p->ndim, .data = m->params + p->offset};
        for (int d = 0; d < p->ndim; d++) e[n].shape[d] = p->shape[d];
        n++;
    }
    e[n++] = (mim_st_entry){.name = "imgs", .dtype = MIM_F32, .ndim = 4, .shape = {B, c->in_chans, c->img_h, c->img_w}, .data = imgs};
    e[n++] = (mim_st_entry){.name = "noise", .dtype = MIM_F32, .ndim = 2, .shape = {B, m->L}, .data = noise};
    e[n++] = (mim_st_entry){.name = "target", .dtype = MIM_F32, .ndim = 3, .shape = {B, m->L, m->Pt}, .data = target};
    char v[14][32];
    int iv[11] = {c->img_h, c->img_w, c->in_chans, c->patch, c->dim, c->depth, c->heads, c->dec_dim, c->dec_depth,
                  c->dec_heads, c->mlp_ratio};
    for (int i = 0; i < 11; i++) snprintf(v[i], 32, "%d", iv[i]);
    snprintf(v[11], 32, "%.9g", c->mask_ratio);
    snprintf(v[12], 32, "%d", c->target_dim);
    snprintf(v[13], 32, "%d", c->target == MIM_TARGET_PIXEL_NORM);
    const char* kv[] = {"img_h", v[0], "img_w", v[1], "in_chans", v[2], "patch", v[3], "embed_dim", v[4], "depth", v[5],
                        "num_heads", v[6], "decoder_embed_dim", v[7], "decoder_depth", v[8], "decoder_num_heads", v[9],
                        "mlp_ratio", v[10], "mask_ratio", v[11], "target_dim", v[12], "norm_pix_loss", v[13],
                        "loss", mim_loss_name((mim_loss)c->loss)};
    CHECK(mim_st_write(path, e, n, kv, 15) == 0);
}

static void test_model_loss(mim_loss loss, int torch) {
    const char* lname = mim_loss_name(loss);
    mim_config c = {.name = "t", .img_h = 12, .img_w = 8, .in_chans = 2, .patch = 4, .dim = 16, .depth = 1, .heads = 2,
                    .dec_dim = 12, .dec_depth = 1, .dec_heads = 2, .mlp_ratio = 2, .mask_ratio = 0.5f,
                    .target = MIM_TARGET_HOG, .target_dim = 18, .loss = loss};
    enum { B = 3 };
    mim_mae m;
    int rc = mim_mae_init(&m, &c, B);
    if (!TU_CHECK(rc == 0, "[%s] model with an 18-wide target: %s", lname, rc ? mim_err_msg() : "ok")) return;
    mim_mae_init_weights(&m, 5);
    mim_rng r;
    mim_rng_seed(&r, 77 + loss);
    for (int i = 0; i < m.nparams; i++)   // biases and LayerNorm affine away from 0 / 1
        if (m.table[i].ndim == 1)
            for (size_t j = 0; j < m.table[i].numel; j++) m.params[m.table[i].offset + j] += 0.1f * mim_rng_normal(&r);
    TU_CHECK(mim_mae_find(&m, "decoder_pred.weight")->shape[0] == 18, "[%s] decoder_pred.weight is (18, 12)", lname);
    size_t ni = (size_t)B * c.in_chans * c.img_h * c.img_w, nt = (size_t)B * m.L * m.Pt;
    float *imgs = tu_alloc(ni), *noise = tu_alloc((size_t)B * m.L), *target = tu_alloc(nt);
    tu_fill_normal(&r, imgs, ni, 1.0f);
    tu_fill_uniform(&r, noise, (size_t)B * m.L, 0, 1);
    tu_fill_normal(&r, target, nt, 1.0f);
    mim_mae_zero_grad(&m);
    float l = mim_mae_forward_target(&m, imgs, noise, target, B);
    mim_mae_backward(&m, 1.0f);
    TU_CHECK(isfinite(l) && l > 0, "[%s] loss %.6f", lname, l);
    if (torch) {
        char in[512], out[512], args[1200];
        snprintf(in, sizeof in, "%s/model_%s_in.safetensors", tmpdir, lname);
        snprintf(out, sizeof out, "%s/model_%s_out.safetensors", tmpdir, lname);
        write_model_input(in, &m, imgs, noise, target, B);
        snprintf(args, sizeof args, "grads %s %s", in, out);
        mim_st* st;
        if (TU_CHECK(run_mae_ref(args) == 0, "[%s] mae_ref.py grads ran", lname) && mim_st_open(&st, out) == 0) {
            float want, *buf = tu_alloc(m.num_floats + nt);
            char label[160];
            snprintf(label, sizeof label, "[%s] loss vs torch", lname);
            if (tu_st_f32(st, "loss", &want, 1, SH(1)) == 0) tu_close(label, &l, &want, 1, 1e-4);
            snprintf(label, sizeof label, "[%s] pred vs torch", lname);
            if (tu_st_f32(st, "pred", buf, 3, SH(B, m.L, m.Pt)) == 0) tu_close(label, m.pred, buf, nt, 1e-4);
            double worst = 0;
            int nchk = 0, ntrain = 0;
            for (int i = 0; i < m.nparams; i++) {
                const mim_param* p = &m.table[i];
                if (!p->trainable) continue;
                ntrain++;
                char name[96];
                snprintf(name, sizeof name, "grad.%s", p->name);
                if (tu_st_f32(st, name, buf, p->ndim, p->shape)) continue;
                double e = tu_relerr(m.grads + p->offset, buf, p->numel, NULL);
                if (e > 1e-4) tu_close(name, m.grads + p->offset, buf, p->numel, 1e-4);
                worst = fmax(worst, e);
                nchk++;
            }
            TU_CHECK(nchk == ntrain && worst <= 1e-4, "[%s] all %d parameter gradients vs torch: worst maxrel %.2e (tol 1e-4)",
                     lname, nchk, worst);
            mim_st_close(st);
        }
    }
    mim_mae_free(&m);
}

// mim_mae_forward on pixels == mim_mae_forward_target on the patchified
// (normalised) pixels, bit for bit, loss and gradients.
static void test_pixel_equivalence(void) {
    mim_config c = {.name = "t", .img_h = 8, .img_w = 12, .in_chans = 1, .patch = 4, .dim = 16, .depth = 1, .heads = 2,
                    .dec_dim = 12, .dec_depth = 1, .dec_heads = 2, .mlp_ratio = 2, .mask_ratio = 0.5f,
                    .target = MIM_TARGET_PIXEL_NORM};
    enum { B = 2 };
    mim_mae m;
    CHECK(mim_mae_init(&m, &c, B) == 0);
    mim_mae_init_weights(&m, 9);
    mim_rng r;
    mim_rng_seed(&r, 10);
    size_t ni = (size_t)B * c.img_h * c.img_w, nt = (size_t)B * m.L * m.P;
    float *imgs = tu_alloc(ni), *noise = tu_alloc((size_t)B * m.L), *t = tu_alloc(nt), *g1 = tu_alloc(m.num_floats);
    tu_fill_normal(&r, imgs, ni, 1.0f);
    tu_fill_uniform(&r, noise, (size_t)B * m.L, 0, 1);
    mim_mae_zero_grad(&m);
    float l1 = mim_mae_forward(&m, imgs, noise, B);
    mim_mae_backward(&m, 1.0f);
    memcpy(g1, m.grads, m.num_floats * sizeof(float));
    memcpy(t, m.target, nt * sizeof(float));
    mim_mae_zero_grad(&m);
    float l2 = mim_mae_forward_target(&m, imgs, noise, t, B);
    mim_mae_backward(&m, 1.0f);
    TU_CHECK(l1 == l2 && memcmp(g1, m.grads, m.num_floats * sizeof(float)) == 0,
             "pixel-norm through forward_target == forward: loss %.7f vs %.7f, gradients bit-identical", l1, l2);
    mim_mae_free(&m);
}

// ================================================================ 4. teacher cache
// Runs the CLI (stderr to DIR/name.txt); the exit code, the output in *txt.
static int run_cli(const char* args, const char* env, const char* name, uint8_t** txt) {
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    char cmd[6000], p[600];
    snprintf(p, sizeof p, "%s/%s.txt", tmpdir, name);
    snprintf(cmd, sizeof cmd, "%s %s/mimscale pretrain %s >%s 2>&1", env ? env : "", build, args, p);
    int st = system(cmd);
    *txt = NULL;
    size_t n = tu_slurp(p, txt);
    if (n == 0) *txt = (uint8_t*)"";
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int has_text(const uint8_t* txt, const char* want) { return strstr((const char*)txt, want) != NULL; }

// The cache file's state words that are set (-1 when it cannot be read).
static int64_t cached_count(const char* path) {
    FILE* f = fopen(path, "rb");
    if (!f) return -1;
    char magic[8];
    mim_tcache_header h;
    int64_t k = -1;
    if (fread(magic, 1, 8, f) == 8 && fread(&h, sizeof h, 1, f) == 1 && fseeko(f, (off_t)h.state_off, SEEK_SET) == 0) {
        k = 0;
        for (int64_t i = 0; i < h.n; i++) {
            uint32_t w;
            if (fread(&w, 4, 1, f) != 1) { k = -1; break; }
            k += w != 0;
        }
    }
    fclose(f);
    return k;
}

// mim_tcache on its own: hits, misses, empty slots, persistence, a damaged
// record, and files it must refuse without touching them.
static void test_tcache_api(const char* ck) {
    mim_teacher t;
    int rc = mim_teacher_load(&t, ck, 4, 4, 8);
    TU_CHECK(rc == 0, "teacher cache: load the teacher %s: %s", ck, rc ? mim_err_msg() : "ok");
    if (rc) return;
    const float mean[3] = {0.3f, 0.3f, 0.3f}, sd[3] = {0.2f, 0.2f, 0.2f};
    CHECK(mim_teacher_set_input(&t, 1, 16, 16, mean, sd) == 0);
    const int B = 8, L = 16, D = mim_teacher_dim(&t);
    const size_t rec = (size_t)L * D, img = 256;
    mim_rng r;
    mim_rng_seed(&r, 11);
    float *imgs = tu_alloc(20 * img), *want = tu_alloc(B * rec), *got = tu_alloc(B * rec), *sub = tu_alloc(B * img);
    tu_fill_normal(&r, imgs, 20 * img, 1.0f);   // sample id i is image i
    char path[600];
    snprintf(path, sizeof path, "%s/api.tfc", tmpdir);
    const char* key = "teacher=t size=1; layer=-1; data=d";
    mim_tcache c;
    rc = mim_tcache_open(&c, path, key, 20, L, D, B, img);
    TU_CHECK(rc == 0, "teacher cache: create %s: %s", path, rc ? mim_err_msg() : "ok");
    if (rc) { mim_teacher_free(&t); return; }
    int64_t ids[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    mim_teacher_forward(&t, want, imgs, B, -1);
    mim_tcache_features(&c, &t, got, imgs, ids, B, -1);
    TU_CHECK(!memcmp(got, want, B * rec * sizeof(float)) && c.computed == 8 && c.written == 8 && c.hits == 0,
             "first batch: 8 computed and stored, equal to the teacher's forward bit for bit (computed %llu)",
             (unsigned long long)c.computed);
    // a mixed batch: ids 3 and 1 cached, 9 and 12 new, one empty slot (-1)
    int64_t mix[5] = {3, 9, 1, -1, 12};
    for (int b = 0; b < 5; b++) memcpy(sub + b * img, imgs + (mix[b] < 0 ? 19 : mix[b]) * img, img * sizeof(float));
    mim_teacher_forward(&t, want, sub, 5, -1);
    mim_tcache_features(&c, &t, got, sub, mix, 5, -1);
    double e = tu_relerr(got, want, 5 * rec, NULL);
    TU_CHECK(e <= 1e-6 && c.hits == 2 && c.computed == 11 && c.written == 10,
             "mixed batch: 2 read, 3 computed, the empty slot not stored (read %llu, computed %llu, stored %llu), "
             "maxrel %.2g to the forward", (unsigned long long)c.hits, (unsigned long long)c.computed,
             (unsigned long long)c.written, e);
    mim_tcache_close(&c);
    TU_CHECK(cached_count(path) == 10, "10 samples cached on disk (%lld)", (long long)cached_count(path));

    // reopened: everything is read back
    rc = mim_tcache_open(&c, path, key, 20, L, D, B, img);
    TU_CHECK(rc == 0, "reopen: %s", rc ? mim_err_msg() : "ok");
    if (!rc) {
        mim_teacher_forward(&t, want, imgs, B, -1);
        mim_tcache_features(&c, &t, got, imgs, ids, B, -1);
        TU_CHECK(c.hits == 8 && c.computed == 0 && !memcmp(got, want, B * rec * sizeof(float)),
                 "after reopening: 8 read, 0 computed, same features (read %llu)", (unsigned long long)c.hits);
        mim_tcache_close(&c);
    }
    // one damaged record (id 2): caught by its hash, recomputed and rewritten
    {
        struct stat st0;
        CHECK(stat(path, &st0) == 0);
        FILE* f = fopen(path, "r+b");
        CHECK(f);
        mim_tcache_header h;
        CHECK(fseek(f, 8, SEEK_SET) == 0 && fread(&h, sizeof h, 1, f) == 1);
        uint64_t off = h.feat_off + 2 * rec * sizeof(float) + 5;
        CHECK(fseeko(f, (off_t)off, SEEK_SET) == 0);
        int ch = fgetc(f);
        CHECK(fseeko(f, (off_t)off, SEEK_SET) == 0);
        fputc(ch ^ 0x40, f);
        fclose(f);
        rc = mim_tcache_open(&c, path, key, 20, L, D, B, img);
        CHECK(rc == 0);
        mim_tcache_features(&c, &t, got, imgs, ids, B, -1);
        e = tu_relerr(got, want, B * rec, NULL);   // id 2 recomputed alone: rounding may differ
        TU_CHECK(c.bad == 1 && c.computed == 1 && c.hits == 7 && e <= 1e-6,
                 "a damaged record is caught, recomputed and rewritten (bad %llu, computed %llu, maxrel %.2g)",
                 (unsigned long long)c.bad, (unsigned long long)c.computed, e);
        mim_tcache_close(&c);
    }
    // refused files, left as they are
    uint8_t* before;
    size_t nb = tu_slurp(path, &before);
    rc = mim_tcache_open(&c, path, "teacher=t size=1; layer=3; data=d", 20, L, D, B, img);
    TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "'layer=-1'") && strstr(mim_err_msg(), "'layer=3'"),
             "another key is refused naming the field: \"%s\"", mim_err_msg());
    rc = mim_tcache_open(&c, path, key, 21, L, D, B, img);
    TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "holds 20 samples"), "another sample count is refused: \"%s\"", mim_err_msg());
    uint8_t* after;
    size_t na = tu_slurp(path, &after);
    TU_CHECK(na == nb && !memcmp(before, after, nb), "the refused cache file is unchanged");
    char other[640];
    snprintf(other, sizeof other, "%s/notacache", tmpdir);
    FILE* f = fopen(other, "wb");
    CHECK(f);
    fputs("{\"step\": 1}\n", f);
    fclose(f);
    rc = mim_tcache_open(&c, other, key, 20, L, D, B, img);
    TU_CHECK(rc == MIM_EFORMAT && strstr(mim_err_msg(), "not a mimscale teacher cache"), "a foreign file is refused: \"%s\"", mim_err_msg());
    CHECK(truncate(path, (off_t)(nb / 2)) == 0);
    rc = mim_tcache_open(&c, path, key, 20, L, D, B, img);
    TU_CHECK(rc == MIM_EFORMAT && strstr(mim_err_msg(), "truncated"), "a truncated cache is refused: \"%s\"", mim_err_msg());
    mim_teacher_free(&t);
}

// pretrain --teacher-cache: the losses of a run without the cache, one that
// fills it and one that only reads it are the same; the CLI's counts; a
// failed cache write; the flags it needs.
static void test_teacher_cache(const mim_pretrain_args* base, const char* ck, const char* data) {
    test_tcache_api(ck);
    char r0[600], r1[600], r2[600], cpath[600];
    snprintf(r0, sizeof r0, "%s/tc_plain", tmpdir);
    snprintf(r1, sizeof r1, "%s/tc_fill", tmpdir);
    snprintf(r2, sizeof r2, "%s/tc_read", tmpdir);
    snprintf(cpath, sizeof cpath, "%s/run.tfc", tmpdir);
    mim_pretrain_args t = *base;
    t.hog_cell = 0; t.steps = 30; t.augment = 0;   // 320 images, batch 16: 20 steps per epoch
    t.teacher = ck; t.teacher_layer = -1; t.teacher_norm = 1;
    t.model.target = MIM_TARGET_TEACHER;
    t.model.loss = MIM_LOSS_COS;
    t.out = r0;
    int rc = mim_pretrain_run(&t);
    t.teacher_cache = cpath;
    t.out = r1;
    if (!rc) rc = mim_pretrain_run(&t);
    t.out = r2;
    if (!rc) rc = mim_pretrain_run(&t);
    TU_CHECK(rc == 0, "teacher-target runs without, filling and reading the cache: %s", rc ? mim_err_msg() : "ok");
    double worst = 0;
    for (int s = 1; s <= 30; s++) {
        double l0 = tu_metric_at(r0, s, "loss"), l1 = tu_metric_at(r1, s, "loss"), l2 = tu_metric_at(r2, s, "loss");
        double e = fmax(fabs(l1 - l0), fabs(l2 - l0)) / fabs(l0);
        if (!(e <= worst)) worst = isfinite(e) ? e : INFINITY;
    }
    printf("teacher cache: loss maxrel over 30 steps, cached vs not: %.3g\n", worst);
    TU_CHECK(worst <= 1e-6, "losses with the cache (filling, then reading) equal those without: maxrel %.3g", worst);
    TU_CHECK(cached_count(cpath) == 320, "every one of the 320 samples is cached (%lld)", (long long)cached_count(cpath));

    // the CLI: counts, a failed write, flags
    char args[4096], cli_cache[600];
    snprintf(cli_cache, sizeof cli_cache, "%s/cli.tfc", tmpdir);
    const char* common = "--model vit_nano --patch 4 --dec-dim 16 --dec-depth 1 --dec-heads 2 --batch 16 --steps 25 "
                         "--save-every 0 --target teacher --teacher-norm --augment=0";
    uint8_t* txt;
    snprintf(args, sizeof args, "%s --teacher %s --teacher-cache %s --data %s --out %s/cli1", common, ck, cli_cache, data, tmpdir);
    int code = run_cli(args, NULL, "cli1", &txt);
    TU_CHECK(code == 0 && has_text(txt, "80 read, 320 computed (320 stored), 0 bad; 320 of 320 samples cached"),
             "CLI, fresh cache, 25 steps of 16 on 320 images: exit %d, prints the counts", code);
    snprintf(args, sizeof args, "%s --teacher %s --teacher-cache %s --data %s --out %s/cli2", common, ck, cli_cache, data, tmpdir);
    code = run_cli(args, NULL, "cli2", &txt);
    TU_CHECK(code == 0 && has_text(txt, "400 read, 0 computed (0 stored)"), "CLI, second run: every target read back (exit %d)", code);
    // writes: the cache's header and key are writes 1-2, the first record 3
    snprintf(args, sizeof args, "%s --teacher %s --teacher-cache %s/cli_full.tfc --data %s --out %s/cli3", common, ck, tmpdir, data, tmpdir);
    code = run_cli(args, "MIM_FAULT_WRITE=3+", "cli3", &txt);
    TU_CHECK(code != 0 && has_text(txt, "write failed") && has_text(txt, "No space left"),
             "a full disk while filling the cache: warned (exit %d; the run's checkpoint write fails too)", code);
    snprintf(args, sizeof args, "%s --teacher %s --teacher-cache %s/cli_eio.tfc --data %s --out %s/cli3b", common, ck, tmpdir, data, tmpdir);
    code = run_cli(args, "MIM_FAULT_WRITE=3", "cli3b", &txt);
    TU_CHECK(code == 0 && has_text(txt, "write failed") && has_text(txt, "storing stopped after a write error"),
             "one failed cache write: the run finishes computing without storing (exit %d)", code);
    struct { const char* args; const char* want; } bad[] = {
        {"--target teacher --teacher-norm --teacher", "needs --augment=0"},   // augmentation on
        {"--target hog --hog-cell 2 --augment=0 --teacher", "apply to --target teacher only"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, "--model vit_nano --patch 4 --dec-dim 16 --batch 16 --steps 1 %s %s "
                 "--teacher-cache %s/x.tfc --data %s --out %s/clibad", bad[i].args, ck, tmpdir, data, tmpdir);
        code = run_cli(args, NULL, "clibad", &txt);
        TU_CHECK((code == 1 || code == 2) && has_text(txt, bad[i].want), "pretrain %s --teacher-cache: exit %d, \"%s\"",
                 bad[i].args, code, bad[i].want);
    }
}

// ================================================================ 3. pretrain
static void test_pretrain_hog(void) {
    char data[512], run[512], ck[700];
    snprintf(data, sizeof data, "%s/data", tmpdir);
    mkdir(data, 0755);
    tu_write_squares_idx(data, 320, 16, 16);   // test_pretrain.c's bright squares
    snprintf(run, sizeof run, "%s/hog", tmpdir);
    mim_pretrain_args a = {0};
    CHECK(mim_config_preset(&a.model, "vit_nano") == 0);
    a.model.dim = 32; a.model.depth = 2; a.model.heads = 2;
    a.model.patch = 4; a.model.dec_dim = 16; a.model.dec_depth = 1; a.model.dec_heads = 2;
    a.model.mask_ratio = 0.75f;
    a.model.img_h = a.model.img_w = 0; a.model.in_chans = 0;
    a.model.target = MIM_TARGET_HOG;
    a.hog_cell = 2;   // 2 x 2 cells per 4-pixel patch, Gaussian window 4
    a.data = data; a.out = run;
    a.batch = 16; a.accum = 1; a.steps = 20; a.lr = 2e-3f; a.warmup_epochs = 0.1f;
    a.weight_decay = 0.05f; a.beta1 = 0.9f; a.beta2 = 0.95f; a.augment = 1; a.seed = 3;
    a.save_every = 0; a.log_every = 1; a.keep = 2; a.quiet = 1;
    int rc = mim_pretrain_run(&a);
    TU_CHECK(rc == 0, "pretrain --target hog --patch 4 --hog-cell 2, 20 steps: %s", rc ? mim_err_msg() : "ok");
    double l0 = tu_metric_at(run, 1, "loss"), l1 = tu_metric_at(run, 20, "loss");
    printf("hog pretrain loss: step 1 %.5f, step 20 %.5f\n", l0, l1);
    TU_CHECK(isfinite(l0) && l1 < 0.7 * l0, "hog loss falls over 20 steps: %.4f -> %.4f", l0, l1);

    snprintf(ck, sizeof ck, "%s/ckpt-000000020/model.safetensors", run);
    mim_config c;
    rc = mim_ckpt_read_config(ck, &c);
    TU_CHECK(rc == 0 && c.target == MIM_TARGET_HOG && c.target_dim == 36 && c.loss == MIM_LOSS_MSE,
             "checkpoint records target hog, width 1 x 9 x 2 x 2 = 36, loss mse (rc %d)", rc);
    mim_reconstruct_args ra = {.ckpt = ck, .data = data, .split = "train", .out = "/dev/null", .n = 2, .mask_ratio = -1};
    rc = mim_reconstruct_run(&ra, NULL);
    TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "--target hog"), "reconstruct refuses a hog checkpoint: \"%s\"", mim_err_msg());

    // resume reads the target back from the run's settings: the same
    // settings resume (nothing left to do), a pixel target is refused
    mim_pretrain_args b = a;
    b.resume = 1;
    rc = mim_pretrain_run(&b);
    TU_CHECK(rc == 0, "resume of the finished hog run with its own settings: %s", rc ? mim_err_msg() : "ok");
    b.model.target = MIM_TARGET_PIXEL;
    b.hog_cell = 0;   // (mim_pretrain_check_args: hog_cell goes with target hog only)
    rc = mim_pretrain_run(&b);
    TU_CHECK(rc == MIM_ESHAPE && strstr(mim_err_msg(), "does not fit this command's model") && strstr(mim_err_msg(), "decoder_pred"),
             "resume of the hog run as target pixel refused: \"%s\"", mim_err_msg());

    // the CLI
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    struct { const char* args; const char* want; } bad[] = {
        {"--target hog --patch 4 --hog-cell 3", "not divisible by the cell size 3"},
        {"--target hog --patch 4", "not divisible by the cell size 8"},
        {"--target dino", "unknown target 'dino'"},
        {"--target hog --loss l3", "unknown loss 'l3'"},
        {"--target hog --norm-pix", "--norm-pix means --target pixel-norm"},
        {"--target teacher", "needs --teacher"},
        {"--teacher-layer 3", "apply to --target teacher only"},
        {"--hog-cell 4", "--hog-cell applies to --target hog only"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char cmd[2000], p[600];
        snprintf(cmd, sizeof cmd, "%s/mimscale pretrain %s --steps 1 --batch 16 --dec-dim 16 --model vit_nano --data %s "
                 "--out %s/cli >%s/cli.txt 2>&1", build, bad[i].args, data, tmpdir, tmpdir);
        int st = system(cmd);
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        snprintf(p, sizeof p, "%s/cli.txt", tmpdir);
        uint8_t* txt;
        size_t n = tu_slurp(p, &txt);
        int has = n > 0 && memmem(txt, n, bad[i].want, strlen(bad[i].want)) != NULL;
        TU_CHECK((code == 1 || code == 2) && has, "mimscale pretrain %s -> exit %d, \"%s\"", bad[i].args, code, bad[i].want);
    }
    {   // target teacher end to end: the hog run's checkpoint (a ViT with
        // width 32 on the same 16x16 grayscale images) is the frozen teacher
        char trun[600];
        snprintf(trun, sizeof trun, "%s/teacher", tmpdir);
        mim_pretrain_args t = a;
        t.out = trun; t.hog_cell = 0; t.steps = 25;
        t.teacher = ck; t.teacher_layer = -1; t.teacher_norm = 1;
        t.model.target = MIM_TARGET_TEACHER;
        t.model.loss = MIM_LOSS_COS;
        rc = mim_pretrain_run(&t);
        TU_CHECK(rc == 0, "pretrain --target teacher --teacher-norm (cos loss), 25 steps: %s", rc ? mim_err_msg() : "ok");
        double t0 = tu_metric_at(trun, 1, "loss"), t1 = tu_metric_at(trun, 25, "loss");
        printf("teacher pretrain loss: step 1 %.5f, step 25 %.5f\n", t0, t1);
        TU_CHECK(isfinite(t0) && t1 < 0.8 * t0, "teacher-target loss falls over 25 steps: %.4f -> %.4f", t0, t1);
        char tck[800];
        snprintf(tck, sizeof tck, "%s/ckpt-000000025/model.safetensors", trun);
        rc = mim_ckpt_read_config(tck, &c);
        TU_CHECK(rc == 0 && c.target == MIM_TARGET_TEACHER && c.target_dim == 32 && c.loss == MIM_LOSS_COS,
                 "checkpoint records target teacher, width 32 (the teacher's), loss cos (rc %d)", rc);
        t.out = trun; t.teacher = "/nonexistent/teacher.safetensors"; t.resume = 0;
        snprintf(trun, sizeof trun, "%s/teacher2", tmpdir);
        t.out = trun;
        rc = mim_pretrain_run(&t);
        TU_CHECK(rc != 0 && strstr(mim_err_msg(), "/nonexistent/teacher.safetensors"), "a missing teacher file: \"%s\"", mim_err_msg());
    }
    test_teacher_cache(&a, ck, data);
}

int main(void) {
    if (tu_repo_root(repo, sizeof repo, "tests/ref/hog_ref.py") != 0) {
        printf("FAIL: cannot find tests/ref/hog_ref.py (set MIM_REPO)\n");
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_targets_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    char path[4096] = "";
    mim_st* ref = NULL;
    int rc = tu_run_torch_ref("tests/ref/hog_ref.py", path, sizeof path), torch = rc == 0;
    if (rc == 0) {
        if (mim_st_open(&ref, path) != 0) { tu_report(0, "open %s: %s", path, mim_err_msg()); ref = NULL; }
        unlink(path);
    } else if (rc < 0) {
        tu_report(0, "PyTorch reference script tests/ref/hog_ref.py failed");
    } else {
        printf("SKIP: python3-torch not available; HOG and model checks without the reference\n");
    }
    mim_rng rng;
    mim_rng_seed(&rng, 4);
    // Shapes: keep in sync with tests/ref/hog_ref.py.
    static const hog_case cases[] = {
        {"hog_maskfeat", 1, 3, 224, 224, 16, 8, 16, 9},
        {"hog_small", 2, 3, 32, 32, 16, 8, 16, 9},
        {"hog_gray_rect", 1, 1, 12, 20, 4, 2, 4, 9},
        {"hog_nowin", 2, 2, 8, 16, 8, 4, 0, 6},
        {"hog_cell_eq_patch", 2, 1, 28, 28, 7, 7, 7, 9},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_hog(ref, &cases[i], &rng);
    test_hog_errors();
    if (ref) mim_st_close(ref);

    test_pixel_equivalence();
    for (int l = 0; l < MIM_LOSS_COUNT; l++) test_model_loss((mim_loss)l, torch);
    test_pretrain_hog();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_targets", !torch, "python3-torch not available (HOG invariants, model and pretrain checks passed)");
}
