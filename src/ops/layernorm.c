// layernorm.c: LayerNorm over the last dimension (fp32 stats), rows in
// parallel.
#include "ops/ops.h"
#include <math.h>

// One row: y (C) = layernorm(x (C)); *mean, *rstd saved.
static inline void ln_row(float* y, float* mean, float* rstd, const float* x, const float* weight,
                          const float* bias, int C, float eps) {
    float m = 0.0f;
    for (int i = 0; i < C; i++) m += x[i];
    m /= C;
    float v = 0.0f;
    for (int i = 0; i < C; i++) { float d = x[i] - m; v += d * d; }
    v /= C;
    float s = 1.0f / sqrtf(v + eps);
    for (int i = 0; i < C; i++) y[i] = (x[i] - m) * s * weight[i] + bias[i];
    *mean = m;
    *rstd = s;
}

void layernorm_forward(float* out, float* mean, float* rstd,
                       const float* inp, const float* weight, const float* bias,
                       int N, int C, float eps) {
    #pragma omp parallel for if (N >= 64)
    for (int n = 0; n < N; n++)
        ln_row(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, weight, bias, C, eps);
}

// res (N, C) += x (N, C), then out = layernorm(res): one pass over each row
// while it is in cache instead of a residual pass and a norm pass. The
// arithmetic is that of add_inplace + layernorm_forward, so the results are
// the same bits. The backward is layernorm_backward on res (the residual's
// gradient is the identity).
void residual_layernorm_forward(float* res, float* out, float* mean, float* rstd, const float* x,
                                const float* weight, const float* bias, int N, int C, float eps) {
    #pragma omp parallel for if (N >= 64)
    for (int n = 0; n < N; n++) {   // the row stays in L1 between the add and the norm
        float* r = res + (size_t)n * C;
        const float* xr = x + (size_t)n * C;
        for (int i = 0; i < C; i++) r[i] += xr[i];
        ln_row(out + (size_t)n * C, mean + n, rstd + n, r, weight, bias, C, eps);
    }
}

// d/d of layernorm_forward(out, mean, rstd, inp, weight, bias).
// dinp = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * weight.
// dinp: one row per iteration (rows in parallel). dweight/dbias: column
// sums over all N rows, each block of 16 columns summed by one thread in row
// order, so they do not depend on the thread count or the schedule.
void layernorm_backward(float* dinp, float* dweight, float* dbias,
                        const float* dout, const float* inp, const float* weight,
                        const float* mean, const float* rstd, int N, int C) {
    #pragma omp parallel for if (N >= 64)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        const float* g = dout + (size_t)n * C;
        float m = mean[n], s = rstd[n];
        float gm = 0.0f, gxm = 0.0f;
        for (int i = 0; i < C; i++) {
            float xh = (x[i] - m) * s, gw = g[i] * weight[i];
            gm += gw; gxm += gw * xh;
        }
        gm /= C; gxm /= C;
        if (dinp) {
            float* dx = dinp + (size_t)n * C;
            for (int i = 0; i < C; i++) {
                float xh = (x[i] - m) * s;
                dx[i] += s * (g[i] * weight[i] - gm - xh * gxm);
            }
        }
    }
    if (!dweight && !dbias) return;
    // Column reductions: parallel over column blocks (deterministic).
    #pragma omp parallel for if ((size_t)N * C >= 65536)
    for (int c0 = 0; c0 < C; c0 += 16) {
        int c1 = c0 + 16 < C ? c0 + 16 : C;
        float aw[16] = {0}, ab[16] = {0};
        for (int n = 0; n < N; n++) {
            const float* x = inp + (size_t)n * C;
            const float* g = dout + (size_t)n * C;
            float m = mean[n], s = rstd[n];
            for (int c = c0; c < c1; c++) {
                aw[c - c0] += g[c] * (x[c] - m) * s;
                ab[c - c0] += g[c];
            }
        }
        for (int c = c0; c < c1; c++) {
            if (dweight) dweight[c] += aw[c - c0];
            if (dbias) dbias[c] += ab[c - c0];
        }
    }
}
