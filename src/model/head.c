// head.c: the fine-tuning classification head (see head.h). Shapes: B batch,
// T = 1 + L tokens, D width, K classes.
#include "model/head.h"
#include "core/check.h"
#include "core/mem.h"
#include "ops/ops.h"
#include <string.h>

static void param_set(mim_cls_head* h, int k, const char* name, int ndim, int64_t a, int64_t b, int decay) {
    mim_param* p = &h->table[k];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = ndim; p->shape[0] = a; p->shape[1] = b;
    p->numel = ndim == 1 ? (size_t)a : (size_t)a * b;
    p->offset = h->n;
    p->trainable = 1; p->decay = decay;
    h->n += p->numel;
}

int mim_cls_head_init(mim_cls_head* h, int D, int K, int B, int T, mim_rng* r) {
    memset(h, 0, sizeof *h);
    h->D = D; h->K = K;
    param_set(h, MIM_HEAD_NORM_W, "fc_norm.weight", 1, D, 0, 0);
    param_set(h, MIM_HEAD_NORM_B, "fc_norm.bias", 1, D, 0, 0);
    param_set(h, MIM_HEAD_W, "head.weight", 2, K, D, 1);
    param_set(h, MIM_HEAD_B, "head.bias", 1, K, 0, 0);
    h->params = mim_calloc(h->n, sizeof(float));
    h->grads = mim_calloc(h->n, sizeof(float));
    size_t nb = (size_t)B;
    float* mem = mim_calloc(nb * (4 * D + 2 + 5 * K) + nb * T * D, sizeof(float));
    if (!h->params || !h->grads || !mem) return MIM_ENOMEM;
    h->pooled = mem; h->normed = h->pooled + nb * D; h->dfeat = h->normed + nb * D; h->dpooled = h->dfeat + nb * D;
    h->mean = h->dpooled + nb * D; h->rstd = h->mean + nb;
    h->logits = h->rstd + nb; h->probs = h->logits + nb * K; h->dlogits = h->probs + nb * K;
    h->targets = h->dlogits + nb * K; h->dlast = h->targets + nb * K;
    // fc_norm 1/0; head N(0, 2e-5) as MAE's trunc_normal_(std=2e-5); bias 0
    for (int i = 0; i < D; i++) h->params[h->table[MIM_HEAD_NORM_W].offset + i] = 1.0f;
    for (size_t i = 0; i < (size_t)K * D; i++) h->params[h->table[MIM_HEAD_W].offset + i] = 2e-5f * mim_rng_normal(r);
    return 0;
}

void mim_cls_head_free(mim_cls_head* h) {
    free(h->params); free(h->grads); free(h->pooled);
    memset(h, 0, sizeof *h);
}

// tokens: m's encoder output. Fills h->logits (B, K) and the saved features.
void mim_cls_head_forward(mim_cls_head* h, const mim_mae* m, const float* latent, int B, int global_pool) {
    int D = h->D, L = m->L, T = m->T;
    const float* p = h->params;
    if (global_pool) {
        const float* last = m->enc[m->cfg.depth - 1].out;   // before the encoder norm, as MAE
        #pragma omp parallel for if (B >= 8)
        for (int b = 0; b < B; b++) {
            float* o = h->pooled + (size_t)b * D;
            for (int d = 0; d < D; d++) o[d] = 0;
            for (int t = 1; t < T; t++) add_inplace(o, last + ((size_t)b * T + t) * D, D);
            for (int d = 0; d < D; d++) o[d] /= (float)L;
        }
        layernorm_forward(h->normed, h->mean, h->rstd, h->pooled, p + h->table[MIM_HEAD_NORM_W].offset,
                          p + h->table[MIM_HEAD_NORM_B].offset, B, D, 1e-6f);
    } else {
        for (int b = 0; b < B; b++) memcpy(h->normed + (size_t)b * D, latent + (size_t)b * T * D, sizeof(float) * D);
    }
    matmul_forward(h->logits, h->normed, p + h->table[MIM_HEAD_W].offset, p + h->table[MIM_HEAD_B].offset, B, D, h->K);
}

// d/d of head_forward given h->dlogits; then the encoder's backward.
void mim_cls_head_backward(mim_cls_head* h, mim_mae* m, int B, int global_pool) {
    int D = h->D, L = m->L, T = m->T;
    const float* p = h->params;
    float* g = h->grads;
    memset(h->dfeat, 0, sizeof(float) * (size_t)B * D);
    matmul_backward(h->dfeat, g + h->table[MIM_HEAD_W].offset, g + h->table[MIM_HEAD_B].offset, h->dlogits, h->normed,
                    p + h->table[MIM_HEAD_W].offset, B, D, h->K);
    memset(h->dlast, 0, sizeof(float) * (size_t)B * T * D);
    if (global_pool) {
        memset(h->dpooled, 0, sizeof(float) * (size_t)B * D);
        layernorm_backward(h->dpooled, g + h->table[MIM_HEAD_NORM_W].offset, g + h->table[MIM_HEAD_NORM_B].offset, h->dfeat,
                           h->pooled, p + h->table[MIM_HEAD_NORM_W].offset, h->mean, h->rstd, B, D);
        #pragma omp parallel for if (B >= 8)
        for (int b = 0; b < B; b++)
            for (int t = 1; t < T; t++)
                for (int d = 0; d < D; d++) h->dlast[((size_t)b * T + t) * D + d] = h->dpooled[(size_t)b * D + d] / L;
        mim_mae_encode_backward(m, NULL, h->dlast);
    } else {
        for (int b = 0; b < B; b++) memcpy(h->dlast + (size_t)b * T * D, h->dfeat + (size_t)b * D, sizeof(float) * D);
        mim_mae_encode_backward(m, h->dlast, NULL);
    }
}
