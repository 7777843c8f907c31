// test_mae.c: the whole MAE.
//  1. Without any reference (always run, and can fail on their own): buffer
//     shapes from the config; the masking (per sample, the L - keep highest-
//     noise patches are masked, ids_shuffle sorts the noise, ids_restore is
//     its inverse); the pixel target (patchified as MAE's patchify, per-patch
//     normalised with the unbiased variance for norm-pix), recomputed here;
//     the loss recomputed from pred, target and mask; trainable flags (all
//     but the fixed sin-cos embeddings); finite gradients, non-zero in every
//     trainable tensor; the loss's derivative along u = g / |g| by finite
//     differences equal to |g| (the backward, as a whole, against the
//     forward); a save / load round trip of a mimscale checkpoint (same
//     parameters, same loss); wrong-shape checkpoint and invalid config
//     errors.
//  2. Against the independent PyTorch reference tests/ref/mae_ref.py: loss,
//     pred, mask, latent and every parameter gradient (maxrel <= 1e-4), a
//     10-step AdamW loss curve (<= 1e-4), and checkpoint interchange both
//     ways. Skipped when $MIM_PYTHON (default /usr/bin/python3) lacks torch:
//     the result is then 77 if every check of part 1 passed, and a failure
//     when MIM_REQUIRE_TORCH is set.
#include "testutil.h"
#include "model/mae.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include <sys/stat.h>

static char tmpdir[256];
static char repo[1024];

// The python that runs the reference: $MIM_PYTHON, else /usr/bin/python3
// (as tu_run_torch_ref).
static const char* python(void) {
    const char* py = getenv("MIM_PYTHON");
    return py && *py ? py : "/usr/bin/python3";
}

static int have_torch(void) {
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "'%s' -c 'import torch' >/dev/null 2>&1", python());
    return system(cmd) == 0;
}

static int run_ref(const char* args) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' %s/tests/ref/mae_ref.py %s", python(), repo, args);
    int rc = system(cmd);
    if (rc != 0) printf("reference failed: %s\n", cmd);
    return rc;
}

// Writes IN: all params, imgs (B,C,H,W), noise (S,B,L) or (B,L), config meta.
static void write_input(const char* path, const mim_mae* m, const float* imgs, int B,
                        const float* noise, int steps, const char* const* extra, int n_extra) {
    const mim_config* c = &m->cfg;
    mim_st_entry e[MIM_MAX_PARAMS + 2];
    int n = 0;
    for (int i = 0; i < m->nparams; i++) {
        const mim_param* p = &m->table[i];
        e[n] = (mim_st_entry){.name = p->name, .dtype = MIM_F32, .ndim = p->ndim, .data = m->params + p->offset};
        for (int d = 0; d < p->ndim; d++) e[n].shape[d] = p->shape[d];
        n++;
    }
    e[n++] = (mim_st_entry){.name = "imgs", .dtype = MIM_F32, .ndim = 4,
                            .shape = {B, c->in_chans, c->img_h, c->img_w}, .data = imgs};
    if (steps) e[n++] = (mim_st_entry){.name = "noise", .dtype = MIM_F32, .ndim = 3, .shape = {steps, B, m->L}, .data = noise};
    else e[n++] = (mim_st_entry){.name = "noise", .dtype = MIM_F32, .ndim = 2, .shape = {B, m->L}, .data = noise};
    // config metadata as the checkpoint writes it, plus extras
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/cfg.safetensors", tmpdir);
    CHECK(mim_ckpt_save_model(tmp, m, NULL, 0) == 0);
    mim_st* st;
    CHECK(mim_st_open(&st, tmp) == 0);
    const char* keys[] = {"img_h", "img_w", "in_chans", "patch", "embed_dim", "depth", "num_heads",
                          "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio",
                          "mask_ratio", "norm_pix_loss"};
    const char* kv[2 * 13 + 2 * 16];
    int nk = 0;
    for (int i = 0; i < 13; i++) { kv[2 * nk] = keys[i]; kv[2 * nk + 1] = mim_st_meta(st, keys[i]); nk++; }
    for (int i = 0; i < n_extra; i++) { kv[2 * nk] = extra[2 * i]; kv[2 * nk + 1] = extra[2 * i + 1]; nk++; }
    CHECK(mim_st_write(path, e, n, kv, nk) == 0);
    mim_st_close(st);
}

// ---------------------------------------------------------------- 1. no reference

// The checks of part 1 (see the top) on a fresh model m with its batch.
// Leaves m's parameters as they were.
static void check_local(mim_mae* m, const float* imgs, const float* noise, int B, const char* tag) {
    const mim_config* c = &m->cfg;
    int p = c->patch, C = c->in_chans, gh = c->img_h / p, gw = c->img_w / p;
    int L = gh * gw, keep = mim_config_len_keep(c), P = p * p * C;
    TU_CHECK(m->L == L && m->T == 1 + keep && m->Td == 1 + L && m->P == P && m->Pt == P &&
             m->num_floats == mim_config_params_total(c),
             "[%s] shapes: L %d (want %d), T %d (want %d), Td %d, P %d (want %d), %zu parameters", tag, m->L, L,
             m->T, 1 + keep, m->Td, m->P, P, m->num_floats);

    mim_mae_zero_grad(m);
    float loss = mim_mae_forward(m, imgs, noise, B);
    mim_mae_backward(m, 1.0f);

    // masking: mask[b, l] = 1 iff at least keep patches have lower noise
    int mask_ok = 1, order_ok = 1;
    for (int b = 0; b < B; b++) {
        const float* nz = noise + (size_t)b * L;
        const int32_t *sh = m->ids_shuffle + (size_t)b * L, *re = m->ids_restore + (size_t)b * L;
        int masked = 0;
        for (int l = 0; l < L; l++) {
            int lower = 0;
            for (int k = 0; k < L; k++) lower += nz[k] < nz[l];
            masked += m->mask[(size_t)b * L + l] == 1.0f;
            mask_ok &= m->mask[(size_t)b * L + l] == (lower >= keep ? 1.0f : 0.0f);
            order_ok &= sh[l] >= 0 && sh[l] < L && re[sh[l]] == l && (l == 0 || nz[sh[l - 1]] <= nz[sh[l]]);
        }
        mask_ok &= masked == L - keep;
    }
    TU_CHECK(mask_ok, "[%s] mask: the %d highest-noise of %d patches per sample", tag, L - keep, L);
    TU_CHECK(order_ok, "[%s] ids_shuffle sorts the noise, ids_restore is its inverse", tag);

    // the target, from the images as MAE's patchify: patch l = (l / gw, l % gw),
    // element (pr * p + pc) * C + ch; norm-pix: (x - mean) / sqrt(var + 1e-6),
    // var unbiased
    size_t nt = (size_t)B * L * P;
    float* want = tu_alloc(nt);
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            float* o = want + ((size_t)b * L + l) * P;
            for (int pr = 0; pr < p; pr++)
                for (int pc = 0; pc < p; pc++)
                    for (int ch = 0; ch < C; ch++)
                        o[(pr * p + pc) * C + ch] =
                            imgs[(((size_t)b * C + ch) * c->img_h + (l / gw) * p + pr) * c->img_w + (l % gw) * p + pc];
            if (c->target == MIM_TARGET_PIXEL_NORM) {
                double mean = 0, var = 0;
                for (int i = 0; i < P; i++) mean += o[i];
                mean /= P;
                for (int i = 0; i < P; i++) var += (o[i] - mean) * (o[i] - mean);
                var /= P - 1;
                for (int i = 0; i < P; i++) o[i] = (float)((o[i] - mean) / sqrt(var + 1e-6));
            }
        }
    char label[160];
    snprintf(label, sizeof label, "[%s] target (%s), recomputed", tag, c->target == MIM_TARGET_PIXEL_NORM ? "norm-pix" : "pixels");
    tu_close(label, m->target, want, nt, 1e-5);

    // the loss: mean over masked patches of the mean squared error per patch
    double num = 0, den = 0;
    for (size_t r = 0; r < (size_t)B * L; r++) {
        if (m->mask[r] == 0.0f) continue;
        double e = 0;
        for (int i = 0; i < P; i++) {
            double d = (double)m->pred[r * P + i] - want[r * P + i];
            e += d * d;
        }
        num += e / P;
        den += 1;
    }
    float lw = (float)(num / den);
    snprintf(label, sizeof label, "[%s] loss %.6f from pred, target, mask", tag, loss);
    tu_close(label, &loss, &lw, 1, 1e-5);

    // gradients: finite; somewhere non-zero in every trainable tensor, and
    // trainable means every tensor but the fixed sin-cos embeddings
    int finite = 1, live = 1, flags = 1;
    const char* dead = "none";
    double g2 = 0;
    for (int k = 0; k < m->nparams; k++) {
        const mim_param* q = &m->table[k];
        const float* g = m->grads + q->offset;
        int nz = 0;
        for (size_t j = 0; j < q->numel; j++) {
            finite &= isfinite(g[j]) != 0;
            nz |= g[j] != 0.0f;
            if (q->trainable) g2 += (double)g[j] * g[j];
        }
        flags &= q->trainable == (strcmp(q->name, "pos_embed") && strcmp(q->name, "decoder_pos_embed"));
        if (q->trainable && !nz && live) { live = 0; dead = q->name; }
    }
    TU_CHECK(finite, "[%s] gradients finite", tag);
    TU_CHECK(flags, "[%s] trainable: every tensor but pos_embed and decoder_pos_embed", tag);
    TU_CHECK(live, "[%s] every trainable tensor has a non-zero gradient (first all-zero: %s)", tag, dead);

    // directional derivative along u = g / |g| (g: the trainable tensors'
    // gradient, what the optimiser follows): dL/du = |g|. Central
    // differences at h and h/2 (h in parameter-vector norm), Richardson-
    // extrapolated, the mask fixed by the same noise
    float* p0 = tu_alloc(m->num_floats);
    float* g = tu_alloc(m->num_floats);
    memcpy(p0, m->params, m->num_floats * sizeof(float));
    for (int k = 0; k < m->nparams; k++)
        if (m->table[k].trainable)
            memcpy(g + m->table[k].offset, m->grads + m->table[k].offset, m->table[k].numel * sizeof(float));
    double gn = sqrt(g2), d[2];
    for (int s = 0; s < 2; s++) {
        double h = (s ? 0.5 : 1.0) * 1e-2, f[2];
        for (int sg = 0; sg < 2; sg++) {
            for (size_t i = 0; i < m->num_floats; i++) m->params[i] = p0[i] + (float)((sg ? -h : h) * g[i] / gn);
            f[sg] = mim_mae_forward(m, imgs, noise, B);
        }
        d[s] = (f[0] - f[1]) / (2 * h);
    }
    memcpy(m->params, p0, m->num_floats * sizeof(float));
    float fd = (float)((4 * d[1] - d[0]) / 3), an = (float)gn;
    snprintf(label, sizeof label, "[%s] dL/du along the gradient = |g| (finite diff.)", tag);
    tu_close(label, &an, &fd, 1, 1e-4);   // measured ~1e-5

    // a mimscale checkpoint round trip: same config, parameters and loss
    char ck[512];
    snprintf(ck, sizeof ck, "%s/%s_local.safetensors", tmpdir, tag);
    int rc = mim_ckpt_save_model(ck, m, NULL, 0);
    mim_config rcfg;
    mim_mae m2;
    int rc2 = rc ? rc : mim_ckpt_read_config(ck, &rcfg);
    int rc3 = rc2 ? rc2 : mim_mae_init(&m2, &rcfg, B);
    int rc4 = rc3 ? rc3 : mim_ckpt_load_model(ck, &m2, 0);
    if (TU_CHECK(rc4 == 0, "[%s] checkpoint save, read config, load: %s", tag, rc4 ? mim_err_msg() : "ok")) {
        float l2 = mim_mae_forward(&m2, imgs, noise, B);
        int same = m2.num_floats == m->num_floats &&
                   memcmp(m2.params, m->params, m->num_floats * sizeof(float)) == 0;
        TU_CHECK(same && l2 == loss && rcfg.target == c->target && rcfg.mask_ratio == c->mask_ratio,
                 "[%s] checkpoint round trip: parameters %s, loss %.7f (was %.7f)", tag,
                 same ? "identical" : "DIFFER", l2, loss);
    }
    if (rc3 == 0) mim_mae_free(&m2);
    unlink(ck);
}

// ---------------------------------------------------------------- 2. PyTorch

static void check_grads(mim_mae* m, const float* imgs, const float* noise, int B, const char* tag) {
    char in[512], out[512], args[1200];
    snprintf(in, sizeof in, "%s/%s_in.safetensors", tmpdir, tag);
    snprintf(out, sizeof out, "%s/%s_out.safetensors", tmpdir, tag);
    write_input(in, m, imgs, B, noise, 0, NULL, 0);
    mim_mae_zero_grad(m);
    float loss = mim_mae_forward(m, imgs, noise, B);
    mim_mae_backward(m, 1.0f);
    snprintf(args, sizeof args, "grads %s %s", in, out);
    if (!TU_CHECK(run_ref(args) == 0, "[%s] reference grads ran", tag)) return;
    mim_st* st;
    if (!TU_CHECK(mim_st_open(&st, out) == 0, "[%s] open reference output", tag)) return;
    float want;
    char label[160];
    if (tu_st_f32(st, "loss", &want, 1, (int64_t[]){1}) == 0) {
        snprintf(label, sizeof label, "[%s] loss %.6f", tag, loss);
        tu_close(label, &loss, &want, 1, 1e-5);
    }
    size_t L = m->L, P = m->P, T = m->T, D = m->cfg.dim;
    float* buf = tu_alloc((size_t)B * (m->Td) * (P > D ? P : D) + m->num_floats);
    if (tu_st_f32(st, "pred", buf, 3, (int64_t[]){B, L, P}) == 0) {
        snprintf(label, sizeof label, "[%s] pred", tag);
        tu_close(label, m->pred, buf, (size_t)B * L * P, 1e-4);
    }
    if (tu_st_f32(st, "mask", buf, 2, (int64_t[]){B, L}) == 0) {
        snprintf(label, sizeof label, "[%s] mask", tag);
        tu_close(label, m->mask, buf, (size_t)B * L, 0);
    }
    if (tu_st_f32(st, "latent", buf, 3, (int64_t[]){B, T, D}) == 0) {
        snprintf(label, sizeof label, "[%s] latent", tag);
        tu_close(label, m->latent, buf, (size_t)B * T * D, 1e-4);
    }
    double worst = 0;
    int nchk = 0;
    for (int i = 0; i < m->nparams; i++) {
        const mim_param* p = &m->table[i];
        if (!p->trainable) continue;
        char name[96];
        snprintf(name, sizeof name, "grad.%s", p->name);
        if (tu_st_f32(st, name, buf, p->ndim, p->shape)) continue;
        double r = tu_relerr(m->grads + p->offset, buf, p->numel, NULL);
        if (r > worst) worst = r;
        nchk++;
        if (r > 1e-4) tu_close(name, m->grads + p->offset, buf, p->numel, 1e-4);
    }
    TU_CHECK(worst <= 1e-4 && nchk > 0, "[%s] all %d parameter gradients: worst maxrel %.2e (tol 1e-4)", tag, nchk, worst);
    mim_st_close(st);
}

static void check_training(mim_mae* m, const float* imgs, int B, uint64_t seed) {
    enum { STEPS = 10 };
    mim_rng r;
    mim_rng_seed(&r, seed);
    float* noise = tu_alloc((size_t)STEPS * B * m->L);
    tu_fill_uniform(&r, noise, (size_t)STEPS * B * m->L, 0, 1);
    const char* extra[] = {"steps", "10", "lr", "0.001", "weight_decay", "0.05", "beta1", "0.9",
                           "beta2", "0.95", "eps", "1e-08"};
    char in[512], out[512], args[1200];
    snprintf(in, sizeof in, "%s/train_in.safetensors", tmpdir);
    snprintf(out, sizeof out, "%s/train_out.safetensors", tmpdir);
    write_input(in, m, imgs, B, noise, STEPS, extra, 6);
    mim_adamw opt;
    CHECK(mim_adamw_init(&opt, m->num_floats) == 0);
    mim_adamw_hparams hp = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.05f};
    float losses[STEPS];
    for (int s = 0; s < STEPS; s++) {
        mim_mae_zero_grad(m);
        losses[s] = mim_mae_forward(m, imgs, noise + (size_t)s * B * m->L, B);
        mim_mae_backward(m, 1.0f);
        mim_adamw_step(&opt, m->table, m->nparams, m->params, m->grads, &hp);
    }
    mim_adamw_free(&opt);
    snprintf(args, sizeof args, "train %s %s", in, out);
    if (!TU_CHECK(run_ref(args) == 0, "reference train ran")) return;
    mim_st* st;
    if (!TU_CHECK(mim_st_open(&st, out) == 0, "open train output")) return;
    float want[STEPS];
    if (tu_st_f32(st, "losses", want, 1, (int64_t[]){STEPS}) == 0) {
        printf("loss curve: first %.6f last %.6f (torch %.6f .. %.6f)\n", losses[0], losses[STEPS - 1], want[0], want[STEPS - 1]);
        tu_close("10 AdamW steps: loss curve", losses, want, STEPS, 1e-4);
        TU_CHECK(losses[STEPS - 1] < losses[0], "loss decreases over 10 steps (%.5f -> %.5f)", losses[0], losses[STEPS - 1]);
    }
    double worst = 0;
    float* buf = tu_alloc(m->num_floats);
    for (int i = 0; i < m->nparams; i++) {
        const mim_param* p = &m->table[i];
        if (tu_st_f32(st, p->name, buf, p->ndim, p->shape)) continue;
        const float* got = m->params + p->offset;
        size_t n = p->numel;
        if (strstr(p->name, "attn.qkv.bias")) {
            // The key bias adds a per-row constant to the scores, to which
            // softmax is invariant: its exact gradient is 0, the computed one
            // is rounding noise, and Adam normalises noise to +-lr steps. So
            // the k part is only bounded (|step| <= lr per update), and the
            // q and v parts are compared.
            size_t D = n / 3;
            double kerr = 0;
            for (size_t j = D; j < 2 * D; j++) kerr = fmax(kerr, fabs(got[j] - buf[j]));
            if (kerr > 2 * 10 * 1e-3) worst = INFINITY;
            double rq = tu_relerr(got, buf, D, NULL), rv = tu_relerr(got + 2 * D, buf + 2 * D, D, NULL);
            if (rq > worst) worst = rq;
            if (rv > worst) worst = rv;
            continue;
        }
        double rr = tu_relerr(got, buf, n, NULL);
        if (rr > worst) worst = rr;
        if (rr > 1e-3) tu_close(p->name, got, buf, n, 1e-3);
    }
    TU_CHECK(worst <= 1e-3, "parameters after 10 AdamW steps: worst maxrel %.2e (tol 1e-3)", worst);
    mim_st_close(st);
}

static void check_checkpoints(mim_mae* m, const float* imgs, const float* noise, int B) {
    char ck[512], in[512], out[512], args[2000];
    snprintf(ck, sizeof ck, "%s/mim.safetensors", tmpdir);
    snprintf(in, sizeof in, "%s/ck_in.safetensors", tmpdir);
    snprintf(out, sizeof out, "%s/ck_out.safetensors", tmpdir);
    // mimscale -> PyTorch
    CHECK(mim_ckpt_save_model(ck, m, NULL, 0) == 0);
    write_input(in, m, imgs, B, noise, 0, NULL, 0);
    float loss = mim_mae_forward(m, imgs, noise, B), want;
    snprintf(args, sizeof args, "loss %s %s %s", ck, in, out);
    mim_st* st;
    if (TU_CHECK(run_ref(args) == 0, "reference loads a mimscale checkpoint") && mim_st_open(&st, out) == 0) {
        if (tu_st_f32(st, "loss", &want, 1, (int64_t[]){1}) == 0)
            tu_close("mimscale checkpoint: same loss in PyTorch", &loss, &want, 1, 1e-5);
        mim_st_close(st);
    }
    // PyTorch -> mimscale: a torch-initialised model, loss on both sides
    snprintf(args, sizeof args, "init %s %s --seed 7", in, ck);
    if (!TU_CHECK(run_ref(args) == 0, "reference wrote an initialised checkpoint")) return;
    int rc = mim_ckpt_load_model(ck, m, 0);
    if (!TU_CHECK(rc == 0, "mimscale loads the PyTorch checkpoint: %s", rc ? mim_err_msg() : "ok")) return;
    loss = mim_mae_forward(m, imgs, noise, B);
    snprintf(args, sizeof args, "loss %s %s %s", ck, in, out);
    if (TU_CHECK(run_ref(args) == 0, "reference loss on its own checkpoint") && mim_st_open(&st, out) == 0) {
        if (tu_st_f32(st, "loss", &want, 1, (int64_t[]){1}) == 0)
            tu_close("PyTorch checkpoint: same loss in mimscale", &loss, &want, 1, 1e-5);
        mim_st_close(st);
    }
    mim_config cfg;
    rc = mim_ckpt_read_config(ck, &cfg);
    TU_CHECK(rc == 0 && cfg.dim == m->cfg.dim && cfg.img_w == m->cfg.img_w, "config read back from a PyTorch-written file");
}

// A checkpoint of another shape must fail cleanly, naming the tensor.
static void check_wrong_shape(const mim_mae* m) {
    char ck[512];
    snprintf(ck, sizeof ck, "%s/wrong.safetensors", tmpdir);
    CHECK(mim_ckpt_save_model(ck, m, NULL, 0) == 0);
    mim_config c = m->cfg;
    c.dim += 4 * c.heads;   // still divisible by heads
    mim_mae other;
    CHECK(mim_mae_init(&other, &c, 1) == 0);
    int rc = mim_ckpt_load_model(ck, &other, 0);
    TU_CHECK(rc == MIM_ESHAPE && strstr(mim_err_msg(), "cls_token"), "wrong-shape checkpoint: rc %d, \"%s\"", rc, mim_err_msg());
    mim_mae_free(&other);
    c = m->cfg;
    c.dec_heads = c.dec_dim + 1;   // does not divide dec_dim
    rc = mim_mae_init(&other, &c, 1);
    TU_CHECK(rc == MIM_EARG, "invalid config rejected: \"%s\"", mim_err_msg());
}

// Part 1 always, part 2 when torch (see the top).
static void run_case(const char* tag, mim_config* c, int B, uint64_t seed, int with_training, int torch) {
    mim_mae m;
    int rc = mim_mae_init(&m, c, B);
    if (!TU_CHECK(rc == 0, "[%s] init: %s", tag, rc ? mim_err_msg() : "ok")) return;
    mim_mae_init_weights(&m, seed);
    mim_rng r;
    mim_rng_seed(&r, seed + 1);
    // perturb LayerNorm affine params and biases away from 1/0 so that their
    // gradients are exercised in general position
    for (int i = 0; i < m.nparams; i++)
        if (m.table[i].ndim == 1)
            for (size_t j = 0; j < m.table[i].numel; j++) m.params[m.table[i].offset + j] += 0.1f * mim_rng_normal(&r);
    size_t ni = (size_t)B * c->in_chans * c->img_h * c->img_w;
    float* imgs = tu_alloc(ni);
    float* noise = tu_alloc((size_t)B * m.L);
    tu_fill_normal(&r, imgs, ni, 1.0f);
    tu_fill_uniform(&r, noise, (size_t)B * m.L, 0, 1);
    check_local(&m, imgs, noise, B, tag);
    check_wrong_shape(&m);
    if (torch) {
        check_grads(&m, imgs, noise, B, tag);
        if (with_training) {
            check_checkpoints(&m, imgs, noise, B);
            check_training(&m, imgs, B, seed + 2);
        }
    }
    mim_mae_free(&m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_mae_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    // part 2 needs the reference script and a python with torch
    char why[1400] = "";
    if (tu_repo_root(repo, sizeof repo, "tests/ref/mae_ref.py") != 0)
        snprintf(why, sizeof why, "cannot find tests/ref/mae_ref.py (set MIM_REPO)");
    else if (!have_torch())
        snprintf(why, sizeof why, "%s has no torch", python());
    int torch = !why[0];
    if (!torch && tu_torch_required()) tu_report(0, "PyTorch reference: %s, and MIM_REQUIRE_TORCH is set", why);
    else if (!torch) printf("note: %s; skipping the PyTorch comparisons\n", why);
    if (!torch) strcat(why, ": PyTorch comparisons skipped, the local checks ran");
    // grayscale, non-square, norm-pix
    mim_config a = {.name = "test_a", .img_h = 16, .img_w = 12, .in_chans = 1, .patch = 4, .dim = 32, .depth = 2,
                    .heads = 2, .dec_dim = 16, .dec_depth = 2, .dec_heads = 2, .mlp_ratio = 4, .mask_ratio = 0.75f,
                    .target = MIM_TARGET_PIXEL_NORM};
    run_case("gray16x12_normpix", &a, 3, 11, 1, torch);
    // RGB, square, plain pixels, another ratio
    mim_config b = {.name = "test_b", .img_h = 8, .img_w = 8, .in_chans = 3, .patch = 2, .dim = 24, .depth = 1,
                    .heads = 3, .dec_dim = 12, .dec_depth = 1, .dec_heads = 2, .mlp_ratio = 4, .mask_ratio = 0.6f,
                    .target = MIM_TARGET_PIXEL};
    run_case("rgb8x8", &b, 4, 21, 0, torch);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_mae", !torch, why);
}
