// vit.c: the ViT block (see vit.h). Shapes: B batch, T tokens, D width,
// NH heads, Hm MLP width, N = B * T.
#include "model/vit.h"
#include "core/check.h"
#include "core/prof.h"
#include <math.h>
#include <string.h>

float* mim_carve(mim_carver* c, size_t n) {
    float* p = c->mem ? c->mem + c->used : NULL;
    c->used += (n + 15) & ~(size_t)15;   // 64-byte aligned pieces
    return p;
}

void mim_vit_block_carve(mim_carver* c, mim_vit_block_acts* a, size_t B, size_t T, size_t D, size_t NH, size_t Hm) {
    a->ln1 = mim_carve(c, B * T * D); a->ln1_mean = mim_carve(c, B * T); a->ln1_rstd = mim_carve(c, B * T);
    a->qkv = mim_carve(c, B * T * 3 * D); a->lse = mim_carve(c, B * NH * T); a->atty = mim_carve(c, B * T * D);
    a->res1 = mim_carve(c, B * T * D);
    a->ln2 = mim_carve(c, B * T * D); a->ln2_mean = mim_carve(c, B * T); a->ln2_rstd = mim_carve(c, B * T);
    a->fc1 = mim_carve(c, B * T * Hm); a->gelu = mim_carve(c, B * T * Hm); a->out = mim_carve(c, B * T * D);
}

// ---------------------------------------------------------------- linears

static const mim_bf16* shadow(const mim_vit_linear* l, const float* weight) {
    CHECK(weight >= l->params && weight < l->params + l->num_floats);
    return l->params_bf16 + (weight - l->params);
}

void mim_vit_linear_forward(const mim_vit_linear* l, float* out, const float* inp, const float* weight,
                            const float* bias, int N, int C, int OC) {
    if (l->precision == MIM_PREC_BF16)
        matmul_forward_bf16(l->mm, out, inp, shadow(l, weight), bias, N, C, OC);
    else
        matmul_forward(out, inp, weight, bias, N, C, OC);
}

// set 0: dinp accumulates, 1: dinp is overwritten.
static void linear_backward(const mim_vit_linear* l, float* dinp, float* dweight, float* dbias, const float* dout,
                            const float* inp, const float* weight, int N, int C, int OC, int set) {
    if (l->precision == MIM_PREC_BF16)
        (set ? matmul_backward_bf16_set : matmul_backward_bf16)(l->mm, dinp, dweight, dbias, dout, inp,
                                                                shadow(l, weight), N, C, OC);
    else
        (set ? matmul_backward_set : matmul_backward)(dinp, dweight, dbias, dout, inp, weight, N, C, OC);
}

void mim_vit_linear_backward(const mim_vit_linear* l, float* dinp, float* dweight, float* dbias,
                             const float* dout, const float* inp, const float* weight, int N, int C, int OC) {
    linear_backward(l, dinp, dweight, dbias, dout, inp, weight, N, C, OC, 0);
}

void mim_vit_linear_backward_set(const mim_vit_linear* l, float* dinp, float* dweight, float* dbias,
                                 const float* dout, const float* inp, const float* weight, int N, int C, int OC) {
    linear_backward(l, dinp, dweight, dbias, dout, inp, weight, N, C, OC, 1);
}

// ---------------------------------------------------------------- training pair

// Multiplies each sample's rows of y (B, T, D) by scale[2b + which]
// (drop path: 0 or 1/keep_prob per sample and branch).
static void scale_rows(float* y, const float* scale, int which, int B, int T, int D) {
    #pragma omp parallel for if ((size_t)B * T * D >= 65536)
    for (int b = 0; b < B; b++) {
        float s = scale[2 * b + which];
        float* p = y + (size_t)b * T * D;
        for (size_t i = 0; i < (size_t)T * D; i++) p[i] *= s;
    }
}

void mim_vit_block_forward(const mim_vit_linear* l, mim_vit_block_acts* a, const mim_vit_block_w* w,
                           const float* x, int B, int T, int D, int NH, int Hm, const float* drop) {
    int N = B * T;
    size_t nd = (size_t)N * D;
    PROF(PROF_NORM, layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1w, w->ln1b, N, D, MIM_VIT_LN_EPS));
    PROF(PROF_MATMUL, mim_vit_linear_forward(l, a->qkv, a->ln1, w->qkvw, w->qkvb, N, D, 3 * D));
    PROF(PROF_ATTENTION, attention_forward(a->atty, a->lse, a->qkv, B, T, D, NH, l->attn));
    PROF(PROF_MATMUL, mim_vit_linear_forward(l, a->res1, a->atty, w->projw, w->projb, N, D, D));
    if (drop) scale_rows(a->res1, drop, 0, B, T, D);
    PROF(PROF_NORM, residual_layernorm_forward(a->res1, a->ln2, a->ln2_mean, a->ln2_rstd, x, w->ln2w, w->ln2b,
                                               N, D, MIM_VIT_LN_EPS));   // res1 += x; ln2 = LN(res1)
    PROF(PROF_MATMUL, mim_vit_linear_forward(l, a->fc1, a->ln2, w->fc1w, NULL, N, D, Hm));
    PROF(PROF_ELEMWISE, bias_gelu_forward(a->fc1, a->gelu, w->fc1b, N, Hm));   // fc1 += b; gelu(fc1)
    PROF(PROF_MATMUL, mim_vit_linear_forward(l, a->out, a->gelu, w->fc2w, w->fc2b, N, Hm, D));
    if (drop) scale_rows(a->out, drop, 1, B, T, D);
    add_inplace(a->out, a->res1, nd);
}

void mim_vit_block_backward(const mim_vit_linear* l, const mim_vit_scratch* s, float* dx, const float* dout,
                            const mim_vit_block_acts* a, const mim_vit_block_w* w, mim_vit_block_w* g,
                            const float* x, int B, int T, int D, int NH, int Hm, const float* drop) {
    int N = B * T;
    size_t nd = (size_t)N * D, nh = (size_t)N * Hm;
    // dres: the residual stream's gradient between the branches. In place
    // when dx is dout (the model's backward): the MLP branch has read dout
    // before ln2's backward adds into it, the attention branch has read dres
    // before ln1's backward does; the products overwrite their outputs, so
    // nothing is cleared first.
    float *dres = dx == dout ? dx : s->dres, *dln = s->dln, *datty = s->datty, *dqkv = s->dqkv;
    float *dgelu = s->dgelu, *dfc1 = s->dfc1;
    // MLP branch: out = res1 + fc2(gelu(fc1(ln2(res1))))
    if (dres != dout) memcpy(dres, dout, nd * sizeof(float));
    const float* dbranch = dout;
    if (drop) {   // the branch saw its output scaled per sample
        memcpy(s->dscaled, dout, nd * sizeof(float));
        scale_rows(s->dscaled, drop, 1, B, T, D);
        dbranch = s->dscaled;
    }
    PROF(PROF_MATMUL, mim_vit_linear_backward_set(l, dgelu, g->fc2w, g->fc2b, dbranch, a->gelu, w->fc2w, N, Hm, D));
    PROF(PROF_ELEMWISE, gelu_backward_set(dfc1, a->fc1, dgelu, nh));
    PROF(PROF_MATMUL, mim_vit_linear_backward_set(l, dln, g->fc1w, g->fc1b, dfc1, a->ln2, w->fc1w, N, D, Hm));
    PROF(PROF_NORM, layernorm_backward(dres, g->ln2w, g->ln2b, dln, a->res1, w->ln2w, a->ln2_mean, a->ln2_rstd, N, D));
    // attention branch: res1 = x + proj(attn(qkv(ln1(x))))
    if (dx != dres) memcpy(dx, dres, nd * sizeof(float));
    dbranch = dres;
    if (drop) {
        memcpy(s->dscaled, dres, nd * sizeof(float));
        scale_rows(s->dscaled, drop, 0, B, T, D);
        dbranch = s->dscaled;
    }
    PROF(PROF_MATMUL, mim_vit_linear_backward_set(l, datty, g->projw, g->projb, dbranch, a->atty, w->projw, N, D, D));
    PROF(PROF_ATTENTION, attention_backward_set(dqkv, datty, a->atty, a->qkv, a->lse, B, T, D, NH, l->attn));
    PROF(PROF_MATMUL, mim_vit_linear_backward_set(l, dln, g->qkvw, g->qkvb, dqkv, a->ln1, w->qkvw, N, D, 3 * D));
    PROF(PROF_NORM, layernorm_backward(dx, g->ln1w, g->ln1b, dln, x, w->ln1w, a->ln1_mean, a->ln1_rstd, N, D));
}

// ---------------------------------------------------------------- inference

void mim_vit_block_infer(const mim_vit_block_w* w, float* x, const mim_vit_infer* s, int B, int T, int D, int NH, int Hm) {
    int N = B * T;
    size_t nd = (size_t)N * D;
    layernorm_forward(s->ln, s->mean, s->rstd, x, w->ln1w, w->ln1b, N, D, s->ln_eps);
    matmul_forward(s->qkv, s->ln, w->qkvw, w->qkvb, N, D, 3 * D);
    attention_forward(s->atty, s->lse, s->qkv, B, T, D, NH, s->attn);
    matmul_forward(s->ln, s->atty, w->projw, w->projb, N, D, D);
    add_inplace(x, s->ln, nd);
    layernorm_forward(s->ln, s->mean, s->rstd, x, w->ln2w, w->ln2b, N, D, s->ln_eps);
    matmul_forward(s->hid, s->ln, w->fc1w, w->fc1b, N, D, Hm);
    if (s->quick_gelu) quick_gelu_forward(s->hid, s->hid, (size_t)N * Hm);
    else gelu_forward(s->hid, s->hid, (size_t)N * Hm);
    matmul_forward(s->atty, s->hid, w->fc2w, w->fc2b, N, Hm, D);
    add_inplace(x, s->atty, nd);
}

// ---------------------------------------------------------------- position embedding

// torch bicubic convolution weights (A = -0.75) for fractional offset f.
static void cubic_weights(double w[4], double f) {
    const double A = -0.75;
    double x;
    x = f + 1; w[0] = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
    x = f;     w[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
    x = 1 - f; w[2] = ((A + 2) * x - (A + 3)) * x * x + 1;
    x = 2 - f; w[3] = ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

// Separable: each output is sum_a wy[a] * (sum_b wx[b] * in[row a][col b]),
// the w axis first, both sums in double.
void mim_pos_embed_resize(float* out, const float* in, int D, int gh, int gw, int nh, int nw) {
    double sy = (double)gh / nh, sx = (double)gw / nw;
    for (int oy = 0; oy < nh; oy++) {
        double ry = sy * (oy + 0.5) - 0.5, wy[4];
        int iy = (int)floor(ry);
        cubic_weights(wy, ry - iy);
        for (int ox = 0; ox < nw; ox++) {
            double rx = sx * (ox + 0.5) - 0.5, wx[4];
            int ix = (int)floor(rx);
            cubic_weights(wx, rx - ix);
            float* o = out + ((size_t)oy * nw + ox) * D;
            for (int d = 0; d < D; d++) {
                double acc = 0;
                for (int a = 0; a < 4; a++) {
                    const float* row = in + (size_t)clampi(iy - 1 + a, 0, gh - 1) * gw * D;
                    double r = 0;
                    for (int b = 0; b < 4; b++) r += wx[b] * row[(size_t)clampi(ix - 1 + b, 0, gw - 1) * D + d];
                    acc += wy[a] * r;
                }
                o[d] = (float)acc;
            }
        }
    }
}
