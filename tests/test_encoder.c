// test_encoder.c: the encoder-only path used by evaluation and fine-tuning:
// mim_mae_encode / mim_mae_encode_backward on a model without decoder, with
// and without drop path, checked per tensor by finite differences (objective
// sum(latent * G) + sum(last_block_out * H) in double; pos_embed probed too,
// as fine-tuning learns it), plus drop path's semantics (block 0 never
// drops, rate 0 turns it off, a block with both branches dropped is the
// identity) and that encode's tokens equal those of the MAE forward (with a
// decoder) at mask ratio 0, unshuffled.
#include "testutil.h"
#include "model/mae.h"
#ifndef EPS
#define EPS 1e-2f      // finite-difference step (relative for |x| > 1)
#endif
#define NPROBE 4       // probed elements per tensor
#define TOL_FD 1e-2    // per-tensor maxrel, analytic vs extrapolated numerical: the
                       // fp32 forward's noise, ~1e-3 absolute on the differences,
                       // sets it (measured worst 2.2e-3, on a qkv bias)

static double objective(mim_mae* m, const float* imgs, int B, const float* G, const float* H) {
    const float* lat = mim_mae_encode(m, imgs, B);
    const float* last = m->enc[m->cfg.depth - 1].out;
    size_t n = (size_t)B * m->T * m->cfg.dim;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)lat[i] * G[i] + (double)last[i] * H[i];
    return s;
}

// Central difference of the objective in parameter i with step h.
static double central_diff(mim_mae* m, size_t i, float h, const float* imgs, int B, const float* G, const float* H) {
    float x = m->params[i];
    m->params[i] = x + h;
    double fp = objective(m, imgs, B, G, H);
    m->params[i] = x - h;
    double fm = objective(m, imgs, B, G, H);
    m->params[i] = x;
    return (fp - fm) / (2.0 * h);
}

// Analytic gradient vs finite differences, one check per trainable tensor
// (named in its line): NPROBE random elements of each, compared by maxrel
// (testutil.h) over that tensor's probes, so that a small tensor (cls_token,
// pos_embed, a bias) that is wholly wrong fails on its own instead of
// vanishing in a pooled error. The numerical derivative is Richardson-
// extrapolated, (4 D(h/2) - D(h)) / 3 with D the central difference, whose
// error is O(h^4): plain central differences are ~1% off on cls_token, which
// enters a LayerNorm from a near-zero input (N(0, 0.02) plus a zero position
// row), where the objective is strongly curved at h = 3e-3; extrapolated,
// a larger h (1e-2) is affordable and cuts the fp32 round-off noise. (The
// key third of each qkv.bias has an exactly zero gradient, softmax being
// shift-invariant; with the fixed probe seed every qkv.bias also gets probes
// outside it, so its maxrel has a real scale.)
static void fd_check(mim_mae* m, const float* imgs, int B, const float* G, const float* H, const char* tag) {
    mim_mae_zero_grad(m);
    objective(m, imgs, B, G, H);
    mim_mae_encode_backward(m, G, H);
    mim_rng r;
    mim_rng_seed(&r, 99);
    float ana[NPROBE], num[NPROBE];
    char label[160];
    for (int k = 0; k < m->nparams; k++) {
        const mim_param* p = &m->table[k];
        if (!p->trainable) continue;
        for (int t = 0; t < NPROBE; t++) {
            size_t i = p->offset + mim_rng_below(&r, p->numel);
            float x = m->params[i], h = EPS * (fabsf(x) > 1 ? fabsf(x) : 1);
            double d1 = central_diff(m, i, h, imgs, B, G, H), d2 = central_diff(m, i, h / 2, imgs, B, G, H);
            num[t] = (float)((4.0 * d2 - d1) / 3.0);
            ana[t] = m->grads[i];
        }
        snprintf(label, sizeof label, "[%s] d/d %s", tag, p->name);
        tu_close(label, ana, num, NPROBE, TOL_FD);
    }
}

// mim_mae_encode == the encoder part of mim_mae_forward at mask ratio 0. The
// same weights in a model with a decoder, forward with random noise: every
// patch is kept, in the noise's (shuffled) order, so its latent rows,
// unshuffled by ids_shuffle, must equal encode's (and likewise the last
// block's output). Not bit-exact: attention sums over the keys in another
// order.
static void encode_vs_forward(mim_mae* m, const float* imgs, int B) {
    mim_config cf = m->cfg;
    cf.dec_dim = 8; cf.dec_depth = 1; cf.dec_heads = 2;
    mim_mae f;
    int rc = mim_mae_init(&f, &cf, B);
    if (!TU_CHECK(rc == 0 && f.T == m->T, "MAE with a decoder at mask 0 builds, %d tokens: %s", f.T,
                  rc ? mim_err_msg() : "ok")) return;
    for (int k = 0; k < m->nparams; k++) {
        const mim_param *p = &m->table[k], *q = mim_mae_find(&f, p->name);
        CHECK(q != NULL && q->numel == p->numel);
        memcpy(f.params + q->offset, m->params + p->offset, p->numel * sizeof(float));
    }
    int L = m->L, T = m->T, D = m->cfg.dim, moved = 0;
    size_t nt = (size_t)B * T * D;
    float *noise = tu_alloc((size_t)B * L), *lat = tu_alloc(nt), *last = tu_alloc(nt);
    mim_rng r;
    mim_rng_seed(&r, 8);
    tu_fill_uniform(&r, noise, (size_t)B * L, 0.0f, 1.0f);
    mim_mae_forward(&f, imgs, noise, B);
    const float* flast = f.enc[cf.depth - 1].out;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {   // token 1 + j of the forward is patch ids_shuffle[j]
            int dst = t == 0 ? 0 : 1 + f.ids_shuffle[(size_t)b * L + t - 1];
            moved += dst != t;
            memcpy(lat + ((size_t)b * T + dst) * D, f.latent + ((size_t)b * T + t) * D, D * sizeof(float));
            memcpy(last + ((size_t)b * T + dst) * D, flast + ((size_t)b * T + t) * D, D * sizeof(float));
        }
    TU_CHECK(moved > 0, "forward's noise shuffles the tokens (%d of %d moved)", moved, B * T);
    const float* got = mim_mae_encode(m, imgs, B);
    tu_close("encode == forward's latent (unshuffled)", got, lat, nt, 1e-5);
    tu_close("encode == forward's last block (unshuffled)", m->enc[m->cfg.depth - 1].out, last, nt, 1e-5);
    mim_mae_free(&f);
}

int main(void) {
    mim_config c = {.name = "enc", .img_h = 8, .img_w = 12, .in_chans = 2, .patch = 4, .dim = 16, .depth = 3,
                    .heads = 2, .dec_dim = 0, .mlp_ratio = 4, .mask_ratio = 0.0f};
    int B = 3;
    mim_mae m;
    int rc = mim_mae_init(&m, &c, B);
    if (!TU_CHECK(rc == 0, "encoder-only model builds: %s", rc ? mim_err_msg() : "ok")) return 1;
    TU_CHECK(mim_mae_find(&m, "decoder_embed.weight") == NULL && mim_mae_find(&m, "mask_token") == NULL &&
             mim_mae_find(&m, "norm.weight") != NULL, "no decoder tensors in an encoder-only model");
    TU_CHECK(mim_config_params_total(&c) == m.num_floats, "parameter count %zu matches the config's", m.num_floats);
    mim_mae_init_weights(&m, 5);
    mim_rng r;
    mim_rng_seed(&r, 6);
    for (int k = 0; k < m.nparams; k++)
        if (m.table[k].ndim == 1)
            for (size_t j = 0; j < m.table[k].numel; j++) m.params[m.table[k].offset + j] += 0.1f * mim_rng_normal(&r);
    size_t ni = (size_t)B * 2 * 8 * 12, nt = (size_t)B * m.T * c.dim;
    float *imgs = tu_alloc(ni), *G = tu_alloc(nt), *H = tu_alloc(nt);
    tu_fill_normal(&r, imgs, ni, 1);
    tu_fill_normal(&r, G, nt, 1);
    tu_fill_normal(&r, H, nt, 0.5f);

    // fine-tuning learns pos_embed (timm ViT): probe its gradient too
    for (int k = 0; k < m.nparams; k++)
        if (!strcmp(m.table[k].name, "pos_embed")) m.table[k].trainable = 1;
    fd_check(&m, imgs, B, G, H, "no drop path");
    encode_vs_forward(&m, imgs, B);

    // drop path 0.5 with fixed per-sample scales
    mim_rng dr;
    mim_rng_seed(&dr, 7);
    mim_mae_drop_path(&m, 0.5f, B, &dr);
    int zeros = 0, scaled = 0;
    for (int i = 0; i < c.depth; i++)
        for (int j = 0; j < 2 * B; j++) {
            float s = m.drop_scale[(size_t)i * 2 * B + j];
            if (i == 0) TU_CHECK(s == 1.0f, "block 0 has drop rate 0 (scale %g)", s);
            zeros += s == 0.0f;
            scaled += s > 1.0f;
        }
    TU_CHECK(zeros > 0 && scaled > 0, "drop path drops (%d) and rescales (%d) branches", zeros, scaled);
    fd_check(&m, imgs, B, G, H, "drop path 0.5");
    // a fully dropped block is the identity on its input
    for (int j = 0; j < 2 * B; j++) m.drop_scale[(size_t)2 * 2 * B + j] = 0.0f;
    mim_mae_encode(&m, imgs, B);
    double d = 0;
    for (size_t i = 0; i < nt; i++) d = fmax(d, fabs(m.enc[2].out[i] - m.enc[1].out[i]));
    TU_CHECK(d == 0.0, "a block with both branches dropped passes its input through (max diff %g)", d);
    mim_mae_drop_path(&m, 0.0f, B, NULL);
    TU_CHECK(!m.drop_active, "rate 0 turns drop path off");

    mim_mae_free(&m);
    tu_free_all();
    return tu_summary("test_encoder", 0, NULL);
}
