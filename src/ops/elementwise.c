// elementwise.c: exact GELU, softmax rows, residual adds.
#include "ops/ops.h"
#include <math.h>

#define PAR_N 16384   // below this many elements a loop stays single-threaded

void gelu_forward(float* out, const float* inp, size_t n) {
    #pragma omp parallel for if (n >= PAR_N)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
    }
}

// d/d of gelu_forward(out, inp): gelu'(x) = Phi(x) + x * phi(x).
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
    #pragma omp parallel for if (n >= PAR_N)
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * (float)M_SQRT1_2));
        float pdf = inv_sqrt_2pi * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void softmax_forward(float* out, const float* inp, int N, int C) {
    #pragma omp parallel for if ((size_t)N * C >= PAR_N)
    for (int n = 0; n < N; n++) {
        const float* x = inp + (size_t)n * C;
        float* y = out + (size_t)n * C;
        float mx = -INFINITY;
        for (int i = 0; i < C; i++) mx = x[i] > mx ? x[i] : mx;
        float s = 0.0f;
        for (int i = 0; i < C; i++) { y[i] = expf(x[i] - mx); s += y[i]; }
        float inv = 1.0f / s;
        for (int i = 0; i < C; i++) y[i] *= inv;
    }
}

// d/d of softmax_forward(out, inp), from its output y.
void softmax_backward(float* dinp, const float* dout, const float* out, int N, int C) {
    #pragma omp parallel for if ((size_t)N * C >= PAR_N)
    for (int n = 0; n < N; n++) {
        const float* y = out + (size_t)n * C;
        const float* g = dout + (size_t)n * C;
        float* dx = dinp + (size_t)n * C;
        float dot = 0.0f;
        for (int i = 0; i < C; i++) dot += g[i] * y[i];
        for (int i = 0; i < C; i++) dx[i] += y[i] * (g[i] - dot);
    }
}

void residual_forward(float* out, const float* a, const float* b, size_t n) {
    #pragma omp parallel for if (n >= PAR_N)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void add_inplace(float* y, const float* x, size_t n) {
    #pragma omp parallel for if (n >= PAR_N)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}
