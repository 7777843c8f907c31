// test_encoder.c: the encoder-only path used by evaluation and fine-tuning:
// mim_mae_encode / mim_mae_encode_backward on a model without decoder, with
// and without drop path, checked by central finite differences (objective
// sum(latent * G) + sum(last_block_out * H) in double), plus drop path's
// semantics (rate 0 is the identity; per-sample branches are dropped or
// scaled by 1/keep) and that encode agrees with the MAE forward at mask 0.
#include "testutil.h"
#include "model/mae.h"
#ifndef EPS
#define EPS 3e-3f
#endif

static double objective(mim_mae* m, const float* imgs, int B, const float* G, const float* H) {
    const float* lat = mim_mae_encode(m, imgs, B);
    const float* last = m->enc[m->cfg.depth - 1].out;
    size_t n = (size_t)B * m->T * m->cfg.dim;
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)lat[i] * G[i] + (double)last[i] * H[i];
    return s;
}

static void fd_check(mim_mae* m, const float* imgs, int B, const float* G, const float* H, const char* tag) {
    mim_mae_zero_grad(m);
    objective(m, imgs, B, G, H);
    mim_mae_encode_backward(m, G, H);
    mim_rng r;
    mim_rng_seed(&r, 99);
    double se = 0, sa = 0;   // nmse over all probes (ggml's metric): robust to
    int n = 0;               // the fp32 noise of probes whose gradient is ~0
    for (int k = 0; k < m->nparams; k++) {
        const mim_param* p = &m->table[k];
        if (!p->trainable) continue;
        for (int t = 0; t < 3; t++) {   // 3 random elements per tensor
            size_t i = p->offset + mim_rng_below(&r, p->numel);
            float x = m->params[i];
            float eps = EPS * (fabsf(x) > 1 ? fabsf(x) : 1);
            m->params[i] = x + eps;
            double fp = objective(m, imgs, B, G, H);
            m->params[i] = x - eps;
            double fm = objective(m, imgs, B, G, H);
            m->params[i] = x;
            double num = (fp - fm) / (2.0 * eps), ana = m->grads[i];
            se += (num - ana) * (num - ana);
            sa += ana * ana;
            n++;
        }
    }
    double nmse = se / fmax(sa, 1e-30);
    TU_CHECK(nmse < 1e-3, "[%s] %d finite-difference probes over all encoder tensors: nmse %.2e (tol 1e-3)", tag, n, nmse);
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

    // drop path 0.5 with fixed per-sample scales
    mim_rng dr;
    mim_rng_seed(&dr, 7);
    mim_mae_drop_path(&m, 0.5f, B, &dr);
    int zeros = 0, scaled = 0;
    for (int i = 0; i < c.depth; i++)
        for (int j = 0; j < 2 * B; j++) {
            float s = m.dp_scale[(size_t)i * 2 * B + j];
            if (i == 0) TU_CHECK(s == 1.0f, "block 0 has drop rate 0 (scale %g)", s);
            zeros += s == 0.0f;
            scaled += s > 1.0f;
        }
    TU_CHECK(zeros > 0 && scaled > 0, "drop path drops (%d) and rescales (%d) branches", zeros, scaled);
    fd_check(&m, imgs, B, G, H, "drop path 0.5");
    // a fully dropped block is the identity on its input
    for (int j = 0; j < 2 * B; j++) m.dp_scale[(size_t)2 * 2 * B + j] = 0.0f;
    mim_mae_encode(&m, imgs, B);
    double d = 0;
    for (size_t i = 0; i < nt; i++) d = fmax(d, fabs(m.enc[2].out[i] - m.enc[1].out[i]));
    TU_CHECK(d == 0.0, "a block with both branches dropped passes its input through (max diff %g)", d);
    mim_mae_drop_path(&m, 0.0f, B, NULL);
    TU_CHECK(!m.dp_active, "rate 0 turns drop path off");

    mim_mae_free(&m);
    tu_free_all();
    return tu_summary("test_encoder", 0, NULL);
}
