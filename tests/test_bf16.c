// test_bf16.c: the bf16 linear layer and precision mode.
//  - bf16 rounding is round-to-nearest-even (ties, NaN, overflow);
//  - the emulated backend's forward and both backward matmuls equal a plain
//    loop on bf16-rounded inputs (to ~1e-6: only the fp32 summation order
//    differs) and fp32 to ~1e-2 (bf16 keeps 8 significant bits);
//  - oneDNN: whether it serves bf16 natively here is printed; where it does,
//    its results match the same reference and primitives are cached; where
//    it does not, the automatic choice falls back to the emulation; the
//    oneDNN glue itself (layouts, accumulation, cache and its eviction) is
//    checked everywhere oneDNN is built, with fp32 storage of bf16 values;
//  - the model in bf16: the shadow follows the fp32 masters, gradients are
//    close to fp32, switching back to fp32 is bit-identical to a model that
//    never left it; a 40-step pre-training run ends within 3% of fp32's
//    loss; the CLI prints its precision choice.
#include "testutil.h"
#include "model/mae.h"
#include "ops/ops.h"
#include "train/pretrain.h"
#include <cjson/cJSON.h>
#include <float.h>
#include <sys/stat.h>

static uint16_t bits(float x) { return mim_f32_to_bf16(x); }

static void check_rounding(void) {
    TU_CHECK(bits(1.0f) == 0x3f80, "bf16(1) = 0x3f80");
    TU_CHECK(bits(1.0f + 0x1p-8f) == 0x3f80, "1 + half an ulp ties to even (down)");
    TU_CHECK(bits(1.0f + 3 * 0x1p-8f) == 0x3f82, "1 + 1.5 ulp ties to even (up)");
    TU_CHECK(bits(1.0f + 0x1p-8f + 0x1p-20f) == 0x3f81, "just above the tie rounds up");
    TU_CHECK(bits(-2.5f) == 0xc020, "bf16(-2.5) exact");
    TU_CHECK(bits(FLT_MAX) == 0x7f80, "FLT_MAX rounds to +Inf");
    TU_CHECK(bits(INFINITY) == 0x7f80 && bits(-INFINITY) == 0xff80, "Inf stays Inf");
    TU_CHECK(isnan(mim_bf16_to_f32(bits(NAN))), "NaN stays NaN");
    union { uint32_t u; float f; } snan = {0x7f800001u};   // a NaN whose payload would round to Inf
    TU_CHECK(isnan(mim_bf16_to_f32(bits(snan.f))), "low-payload NaN stays NaN");
    float x[5] = {0.1f, -3.14159f, 1e-30f, 65504.0f, 7.0f}, y[5];
    bf16_round_f32(y, x, 5);
    int ok = 1;
    for (int i = 0; i < 5; i++) ok &= fabsf(y[i] - x[i]) <= fabsf(x[i]) * 0x1p-9f && bits(y[i]) == bits(x[i]) &&
                                     (mim_bf16_to_f32(bits(y[i])) == y[i]);
    TU_CHECK(ok, "bf16_round_f32: within half an ulp (2^-9 relative), idempotent");
}

// Runs forward and backward of one shape through ctx against the bf16
// reference (tol_ref) and fp32 (must differ by more than 1e-5, and less than
// 1e-2: the rounding happened and is bf16-sized).
static void check_linear(mim_bf16_ctx* ctx, const char* tag, int N, int C, int OC, int with_bias, double tol_ref) {
    mim_rng r;
    mim_rng_seed(&r, (uint64_t)(N * 131 + C * 7 + OC));
    float *x = tu_alloc((size_t)N * C), *w = tu_alloc((size_t)OC * C), *b = tu_alloc(OC);
    float *dy = tu_alloc((size_t)N * OC);
    tu_fill_normal(&r, x, (size_t)N * C, 1.0f);
    tu_fill_normal(&r, w, (size_t)OC * C, 0.05f);
    tu_fill_normal(&r, b, OC, 0.1f);
    tu_fill_normal(&r, dy, (size_t)N * OC, 0.01f);
    mim_bf16* wb = (mim_bf16*)tu_alloc_bytes(sizeof(mim_bf16) * OC * C);
    bf16_from_f32(wb, w, (size_t)OC * C);
    const float* bias = with_bias ? b : NULL;
    char label[160];

    float *y = tu_alloc((size_t)N * OC), *yr = tu_alloc((size_t)N * OC), *y32 = tu_alloc((size_t)N * OC);
    matmul_forward_bf16(ctx, y, x, wb, bias, N, C, OC);
    matmul_forward_bf16_ref(yr, x, w, bias, N, C, OC);
    matmul_forward_ref(y32, x, w, bias, N, C, OC);
    snprintf(label, sizeof label, "%s fwd %dx%dx%d%s = bf16 ref", tag, N, C, OC, with_bias ? " +b" : "");
    tu_close(label, y, yr, (size_t)N * OC, tol_ref);
    double e = tu_relerr(y, y32, (size_t)N * OC, NULL);
    TU_CHECK(e > 1e-5 && e < 1e-2, "%s fwd vs fp32: maxrel %.2e in (1e-5, 1e-2)", tag, e);

    // backward accumulates: start the gradients from the same non-zero values
    size_t nx = (size_t)N * C, nw = (size_t)OC * C;
    float *dx = tu_alloc(nx), *dxr = tu_alloc(nx), *dx32 = tu_alloc(nx);
    float *dw = tu_alloc(nw), *dwr = tu_alloc(nw), *dw32 = tu_alloc(nw);
    float *db = tu_alloc(OC), *dbr = tu_alloc(OC), *db32 = tu_alloc(OC);
    tu_fill_normal(&r, dx, nx, 0.01f); memcpy(dxr, dx, nx * 4); memcpy(dx32, dx, nx * 4);
    tu_fill_normal(&r, dw, nw, 0.01f); memcpy(dwr, dw, nw * 4); memcpy(dw32, dw, nw * 4);
    tu_fill_normal(&r, db, OC, 0.01f); memcpy(dbr, db, OC * 4); memcpy(db32, db, OC * 4);
    matmul_backward_bf16(ctx, dx, dw, with_bias ? db : NULL, dy, x, wb, N, C, OC);
    matmul_backward_bf16_ref(dxr, dwr, with_bias ? dbr : NULL, dy, x, w, N, C, OC);
    matmul_backward_ref(dx32, dw32, with_bias ? db32 : NULL, dy, x, w, N, C, OC);
    snprintf(label, sizeof label, "%s dinp (dY W) = bf16 ref", tag);
    tu_close(label, dx, dxr, nx, tol_ref);
    snprintf(label, sizeof label, "%s dweight (dY^T X) = bf16 ref", tag);
    tu_close(label, dw, dwr, nw, tol_ref);
    if (with_bias) {
        snprintf(label, sizeof label, "%s dbias (fp32 sum) = fp32 ref", tag);
        tu_close(label, db, db32, OC, 1e-6);
    }
    // against fp32, from zero (so the rounding error is not diluted by the start values)
    float *ix = tu_alloc(nx), *ix32 = tu_alloc(nx), *iw = tu_alloc(nw), *iw32 = tu_alloc(nw);
    matmul_backward_bf16(ctx, ix, iw, NULL, dy, x, wb, N, C, OC);
    matmul_backward_ref(ix32, iw32, NULL, dy, x, w, N, C, OC);
    double ex = tu_relerr(ix, ix32, nx, NULL), ew = tu_relerr(iw, iw32, nw, NULL);
    TU_CHECK(ex > 1e-5 && ex < 1e-2 && ew > 1e-5 && ew < 1e-2,
             "%s backward vs fp32: dinp %.2e, dweight %.2e in (1e-5, 1e-2)", tag, ex, ew);
    // dinp only and dweight only (NULL gradients are skipped)
    float *ox = tu_alloc(nx), *ow = tu_alloc(nw), *rx = tu_alloc(nx), *rw = tu_alloc(nw);
    matmul_backward_bf16(ctx, ox, NULL, NULL, dy, x, wb, N, C, OC);
    matmul_backward_bf16(ctx, NULL, ow, NULL, dy, x, wb, N, C, OC);
    matmul_backward_bf16_ref(rx, rw, NULL, dy, x, w, N, C, OC);
    TU_CHECK(tu_relerr(ox, rx, nx, NULL) <= tol_ref && tu_relerr(ow, rw, nw, NULL) <= tol_ref,
             "%s dinp-only and dweight-only calls", tag);
    // the overwrite variant over NaNs: dinp as the accumulating call from zero
    // (ix above) bit for bit, dweight still accumulated
    float *sx = tu_alloc(nx), *sw = tu_alloc(nw);
    for (size_t i = 0; i < nx; i++) sx[i] = NAN;
    matmul_backward_bf16_set(ctx, sx, sw, NULL, dy, x, wb, N, C, OC);
    TU_CHECK(tu_relerr(sx, ix, nx, NULL) == 0 && tu_relerr(sw, iw, nw, NULL) == 0,
             "%s matmul_backward_bf16_set: dinp overwritten (over NaNs), dweight accumulated, bit for bit", tag);
}

static void check_backends(void) {
    char why[256];
    int native = mim_onednn_bf16_native(why, sizeof why);
    const char* isa = mim_cpu_bf16_isa();
    printf("cpu bf16 isa: %s; oneDNN built: %d; oneDNN native bf16 matmul: %d (%s)\n", isa ? isa : "none",
           mim_onednn_built(), native, why);
    TU_CHECK(!native || isa, "oneDNN native bf16 only where cpuid reports AMX-BF16 or AVX512-BF16");

    // shapes: odd sizes, a ViT-like one (tokens x 192 -> 768)
    int shapes[3][3] = {{37, 48, 29}, {130, 96, 160}, {2 * 65, 192, 768}};
    size_t mi = 0, md = 0, mw = 0;
    for (int s = 0; s < 3; s++) {
        size_t N = shapes[s][0], C = shapes[s][1], OC = shapes[s][2];
        if (N * C > mi) mi = N * C;
        if (N * OC > md) md = N * OC;
        if (OC * C > mw) mw = OC * C;
    }
    mim_bf16_ctx* em;
    TU_CHECK(mim_bf16_ctx_init(&em, MIM_BF16_EMULATED, mi, md, mw) == 0, "emulated context");
    for (int s = 0; s < 3; s++)
        for (int bias = 0; bias < 2; bias++) check_linear(em, "emulated", shapes[s][0], shapes[s][1], shapes[s][2], bias, 1e-6);
    mim_bf16_ctx_free(em);

    mim_bf16_ctx* ac;
    TU_CHECK(mim_bf16_ctx_init(&ac, MIM_BF16_AUTO, mi, md, mw) == 0, "auto context");
    TU_CHECK(mim_bf16_ctx_backend(ac) == (native ? MIM_BF16_ONEDNN : MIM_BF16_EMULATED),
             "auto picks %s", native ? "oneDNN (native here)" : "the emulation (no native oneDNN bf16 here)");
    mim_bf16_ctx_free(ac);

    // the oneDNN glue (layouts, transposes, sum post-op, cache, scratchpad)
    // on fp32 storage of bf16 values: runs on any CPU oneDNN supports
    if (mim_onednn_built()) {
        mim_bf16_ctx* fc;
        TU_CHECK(mim_bf16_ctx_init(&fc, MIM_BF16_ONEDNN_F32, mi, md, mw) == 0, "oneDNN-fp32 check context");
        for (int s = 0; s < 3; s++)
            for (int bias = 0; bias < 2; bias++)
                check_linear(fc, "oneDNN-f32", shapes[s][0], shapes[s][1], shapes[s][2], bias, 1e-6);
        long created, reused;
        mim_bf16_ctx_stats(fc, &created, &reused);
        // per shape: forward without and with the sum post-op, dinp accumulated
        // and overwritten (matmul_backward_bf16_set), dweight
        TU_CHECK(created == 3 * 5 && reused > created, "oneDNN primitives cached: %ld created, %ld reused", created, reused);
        // more shapes than the cache holds: the oldest are evicted and rebuilt
        float *x = tu_alloc(130 * 8), *y = tu_alloc(130 * 8), *yr = tu_alloc(130 * 8), *w = tu_alloc(64);
        mim_bf16* wb = (mim_bf16*)tu_alloc_bytes(64 * sizeof(mim_bf16));
        mim_rng r;
        mim_rng_seed(&r, 4);
        tu_fill_normal(&r, x, 130 * 8, 1.0f);
        tu_fill_normal(&r, w, 64, 0.3f);
        bf16_from_f32(wb, w, 64);
        double worst = 0;
        for (int pass = 0; pass < 2; pass++)
            for (int n = 1; n <= 120; n++) {
                matmul_forward_bf16(fc, y, x, wb, NULL, n, 8, 8);
                matmul_forward_bf16_ref(yr, x, w, NULL, n, 8, 8);
                double e = tu_relerr(y, yr, (size_t)n * 8, NULL);
                if (e > worst) worst = e;
            }
        long c2, r2;
        mim_bf16_ctx_stats(fc, &c2, &r2);
        TU_CHECK(worst < 1e-6 && c2 - created == 240, "2 x 120 shapes through the 96-entry FIFO cache: "
                 "%ld primitives built (evicted ones rebuilt), results right (maxrel %.1e)", c2 - created, worst);
        mim_bf16_ctx_free(fc);
    }

    mim_bf16_ctx* dc = NULL;
    int rc = mim_bf16_ctx_init(&dc, MIM_BF16_ONEDNN, mi, md, mw);
    if (!native) {
        TU_CHECK(rc == MIM_EARG && dc == NULL, "asking for oneDNN bf16 here is refused: \"%s\"", mim_err_msg());
        return;
    }
    TU_CHECK(rc == 0, "oneDNN context");
    if (rc) return;
    // oneDNN accumulates in fp32 in its own order (blocked K): a little looser
    for (int s = 0; s < 3; s++)
        for (int bias = 0; bias < 2; bias++) check_linear(dc, "oneDNN", shapes[s][0], shapes[s][1], shapes[s][2], bias, 1e-5);
    long created, reused;
    mim_bf16_ctx_stats(dc, &created, &reused);
    TU_CHECK(created == 3 * 5 && reused > created, "native bf16 primitives cached: %ld created, %ld reused", created, reused);
    mim_bf16_ctx_free(dc);
}

// ---------------------------------------------------------------- the model

static mim_config small_cfg(void) {
    mim_config c;
    CHECK(mim_config_preset(&c, "vit_nano") == 0);
    c.img_h = 16; c.img_w = 12; c.in_chans = 1; c.patch = 4;
    c.dim = 32; c.depth = 2; c.heads = 2; c.dec_dim = 16; c.dec_depth = 1; c.dec_heads = 2;
    return c;
}

static void check_model(void) {
    mim_config c = small_cfg();
    int B = 4;
    mim_mae a, b, f;
    CHECK(mim_mae_init(&a, &c, B) == 0 && mim_mae_init(&b, &c, B) == 0 && mim_mae_init(&f, &c, B) == 0);
    mim_mae_init_weights(&a, 1); mim_mae_init_weights(&b, 1); mim_mae_init_weights(&f, 1);
    int rc = mim_mae_set_precision(&b, MIM_PREC_BF16, MIM_BF16_AUTO);
    TU_CHECK(rc == 0 && b.precision == MIM_PREC_BF16, "model in bf16: %s", mim_mae_precision_name(&b));
    mim_rng r;
    mim_rng_seed(&r, 9);
    float *imgs = tu_alloc((size_t)B * 16 * 12), *noise = tu_alloc((size_t)B * a.L);
    tu_fill_normal(&r, imgs, (size_t)B * 16 * 12, 1.0f);
    tu_fill_uniform(&r, noise, (size_t)B * a.L, 0, 1);

    mim_mae_zero_grad(&a); mim_mae_zero_grad(&b);
    float la = mim_mae_forward(&a, imgs, noise, B), lb = mim_mae_forward(&b, imgs, noise, B);
    mim_mae_backward(&a, 1.0f); mim_mae_backward(&b, 1.0f);
    if (mim_onednn_built()) {   // the model through the oneDNN glue: the same numbers as the emulation
        mim_mae o;
        CHECK(mim_mae_init(&o, &c, B) == 0);
        mim_mae_init_weights(&o, 1);
        CHECK(mim_mae_set_precision(&o, MIM_PREC_BF16, MIM_BF16_ONEDNN_F32) == 0);
        mim_mae_zero_grad(&o);
        float lo = mim_mae_forward(&o, imgs, noise, B);
        mim_mae_backward(&o, 1.0f);
        double eo = tu_relerr(o.grads, b.grads, o.num_floats, NULL);
        TU_CHECK(fabsf(lo - lb) <= 1e-5f * lb && eo < 1e-4, "model via oneDNN-f32 = emulated: loss %.7f vs %.7f, "
                 "gradients maxrel %.1e", lo, lb, eo);
        mim_mae_free(&o);
    }
    TU_CHECK(fabsf(lb - la) < 1e-2f * la && lb != la, "bf16 loss %.6f vs fp32 %.6f (close, not equal)", lb, la);
    double ge = tu_relerr(b.grads, a.grads, a.num_floats, NULL);
    TU_CHECK(ge < 5e-2, "bf16 gradients vs fp32: maxrel %.2e (< 5e-2)", ge);
    for (int k = 0; k < a.nparams; k++) {   // the largest weight gradients, per tensor
        const mim_param* p = &a.table[k];
        if (strcmp(p->name, "blocks.0.mlp.fc1.weight") && strcmp(p->name, "decoder_pred.weight")) continue;
        char label[128];
        snprintf(label, sizeof label, "bf16 grad %s vs fp32", p->name);
        tu_close(label, b.grads + p->offset, a.grads + p->offset, p->numel, 2e-2);
    }

    // the shadow follows the masters: change the weights, no explicit refresh
    for (size_t i = 0; i < a.num_floats; i++) { a.params[i] *= 1.01f; b.params[i] *= 1.01f; }
    mim_mae fresh;
    CHECK(mim_mae_init(&fresh, &c, B) == 0);
    memcpy(fresh.params, b.params, sizeof(float) * b.num_floats);
    CHECK(mim_mae_set_precision(&fresh, MIM_PREC_BF16, MIM_BF16_AUTO) == 0);
    float l1 = mim_mae_forward(&b, imgs, noise, B), l2 = mim_mae_forward(&fresh, imgs, noise, B);
    TU_CHECK(l1 == l2, "after a weight update the bf16 forward uses the new weights (%.6f == %.6f)", l1, l2);
    mim_mae_free(&fresh);

    // back to fp32: bit-identical to a model that never left fp32
    for (size_t i = 0; i < f.num_floats; i++) f.params[i] *= 1.01f;
    TU_CHECK(mim_mae_set_precision(&b, MIM_PREC_FP32, 0) == 0 && b.params_bf16 == NULL && b.mm == NULL,
             "set_precision(fp32) frees the shadow and the backend");
    mim_mae_zero_grad(&b); mim_mae_zero_grad(&f);
    float lf = mim_mae_forward(&f, imgs, noise, B);
    lb = mim_mae_forward(&b, imgs, noise, B);
    mim_mae_backward(&b, 1.0f); mim_mae_backward(&f, 1.0f);
    TU_CHECK(lb == lf && memcmp(b.grads, f.grads, sizeof(float) * f.num_floats) == 0,
             "fp32 after bf16: loss and gradients bit-identical to an fp32-only model");

    // encoder-only (fine-tuning): bf16 encode is close to fp32
    mim_config e = c;
    e.mask_ratio = 0; e.dec_dim = 0; e.dec_depth = 0; e.dec_heads = 1;
    mim_mae ea, eb;
    CHECK(mim_mae_init(&ea, &e, B) == 0 && mim_mae_init(&eb, &e, B) == 0);
    mim_mae_init_weights(&ea, 2); mim_mae_init_weights(&eb, 2);
    CHECK(mim_mae_set_precision(&eb, MIM_PREC_BF16, MIM_BF16_AUTO) == 0);
    size_t nl = (size_t)B * ea.T * e.dim;
    const float* za = mim_mae_encode(&ea, imgs, B);
    const float* zb = mim_mae_encode(&eb, imgs, B);
    tu_close("encoder-only bf16 encode vs fp32", zb, za, nl, 2e-2);
    mim_mae_free(&ea); mim_mae_free(&eb);
    mim_mae_free(&a); mim_mae_free(&b); mim_mae_free(&f);
}

// ---------------------------------------------------------------- training

static void check_training(const char* tmp) {
    char data[512], r32[512], r16[512];
    snprintf(data, sizeof data, "%s/data", tmp);
    mkdir(data, 0755);
    tu_write_squares_idx(data, 640, 16, 12);
    mim_pretrain_args a = {0};
    CHECK(mim_config_preset(&a.model, "vit_nano") == 0);   // test_pretrain's settings
    a.model.dim = 32; a.model.depth = 2; a.model.heads = 2;
    a.model.patch = 4; a.model.dec_dim = 16; a.model.dec_depth = 1; a.model.dec_heads = 2;
    a.model.img_h = a.model.img_w = 0; a.model.in_chans = 0;
    a.data = data; a.batch = 16; a.accum = 2; a.epochs = 2; a.lr = 2e-3f; a.warmup_epochs = 0.1f;
    a.weight_decay = 0.05f; a.beta1 = 0.9f; a.beta2 = 0.95f; a.augment = 1; a.seed = 3;
    a.log_every = 1; a.keep = 1; a.quiet = 1;
    snprintf(r32, sizeof r32, "%s/fp32", tmp);
    snprintf(r16, sizeof r16, "%s/bf16", tmp);
    a.out = r32;
    int rc = mim_pretrain_run(&a);
    TU_CHECK(rc == 0, "40 steps in fp32: %s", rc ? mim_err_msg() : "ok");
    a.out = r16;
    a.precision = MIM_PREC_BF16;
    rc = mim_pretrain_run(&a);
    TU_CHECK(rc == 0, "40 steps in bf16: %s", rc ? mim_err_msg() : "ok");
    double s32 = 0, s16 = 0;
    for (int s = 31; s <= 40; s++) { s32 += tu_metric_at(r32, s, "loss") / 10; s16 += tu_metric_at(r16, s, "loss") / 10; }
    double f32 = tu_metric_at(r32, 40, "loss"), f16 = tu_metric_at(r16, 40, "loss"), first = tu_metric_at(r32, 1, "loss"), first16 = tu_metric_at(r16, 1, "loss");
    printf("loss step 1 fp32 %.6f bf16 %.6f; step 40 fp32 %.6f bf16 %.6f; mean of steps 31-40 fp32 %.6f bf16 %.6f "
           "(%+.3f%%)\n", first, first16, f32, f16, s32, s16, 100 * (s16 - s32) / s32);
    TU_CHECK(first16 != first, "the bf16 run computes in bf16 (its first loss differs from fp32's)");
    TU_CHECK(s32 < 0.8 * first && fabs(s16 - s32) <= 0.03 * s32,
             "bf16 training ends within 3%% of fp32 (mean loss of steps 31-40: %.4f vs %.4f)", s16, s32);

    // the CLI says what it chose
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    const char* isa = mim_cpu_bf16_isa();
    int native = mim_onednn_bf16_native(NULL, 0);
    struct { const char* flag; const char* want; int code; } cli[] = {
        {"--precision bf16", native ? "precision bf16 (oneDNN" : "precision bf16 (emulated", 0},
        {"--precision fp32", "precision fp32 (requested)", 0},
        {"", native ? "precision bf16 (oneDNN" : isa ? "precision fp32 (the CPU has" : "precision fp32 (no AMX/AVX512-BF16", 0},
        {"--precision fp16", "--precision must be auto, fp32 or bf16", 2},
    };
    for (size_t i = 0; i < sizeof cli / sizeof cli[0]; i++) {
        char cmd[2000], p[600];
        snprintf(cmd, sizeof cmd, "%s/mimscale pretrain %s --steps 1 --batch 16 --data %s --model vit_nano "
                 "--patch 4 --out %s/cli >%s/cli.txt 2>&1", build, cli[i].flag, data, tmp, tmp);
        int st = system(cmd);
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        snprintf(p, sizeof p, "%s/cli.txt", tmp);
        uint8_t* txt;
        size_t n = tu_slurp(p, &txt);
        int has = n > 0 && memmem(txt, n, cli[i].want, strlen(cli[i].want)) != NULL;
        int warned = n > 0 && memmem(txt, n, "slower than fp32", 16) != NULL;
        int want_warn = !native && strstr(cli[i].flag, "bf16");
        TU_CHECK(code == cli[i].code && has && warned == want_warn, "mimscale pretrain %s -> exit %d, \"%s...\"%s",
                 cli[i].flag[0] ? cli[i].flag : "(default auto)", code, cli[i].want, want_warn ? " + slowness warning" : "");
    }
}

int main(void) {
    char tmp[256];
    snprintf(tmp, sizeof tmp, "/tmp/mim_test_bf16_XXXXXX");
    CHECK(mkdtemp(tmp));
    check_rounding();
    check_backends();
    check_model();
    check_training(tmp);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_bf16", 0, NULL);
}
