// elementwise.c: exact GELU, QuickGELU, softmax rows, residual adds.
#include "ops/ops.h"
#include <math.h>
#include <stdint.h>
#include <string.h>

#define PAR_N 16384   // below this many elements a loop stays single-threaded

// expf for SIMD loops (glibc's is not vectorised without -ffast-math):
// 2^n * p(r), x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial (Cephes
// coefficients); relative error ~2e-7 over [-87, 88], 0 below -87.
static inline float exp_simd(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   // round to nearest
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);   // 2^n; memcpy keeps the loop vectorisable
    return p * scale;
}

// erf for SIMD loops: Abramowitz & Stegun 7.1.26, absolute error <= 1.5e-7.
static inline float erf_simd(float x) {
    float ax = x < 0 ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float y = ((((1.061405429f * t - 1.453152027f) * t + 1.421413741f) * t - 0.284496736f) * t + 0.254829592f) * t;
    float e = 1.0f - y * exp_simd(-ax * ax);
    return x < 0 ? -e : e;
}

// Elementwise loops run in chunks: threads over chunks, SIMD inside.
#define CHUNK 4096

void gelu_forward(float* out, const float* inp, size_t n) {
    #pragma omp parallel for if (n >= PAR_N)
    for (size_t c = 0; c < n; c += CHUNK) {
        size_t e = c + CHUNK < n ? c + CHUNK : n;
        #pragma omp simd
        for (size_t i = c; i < e; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + erf_simd(x * (float)M_SQRT1_2));
        }
    }
}

// pre (N, C) += bias (C), then out = gelu(pre), in one pass: the fc1 of an
// MLP runs its product without bias and this adds it, instead of the product
// reading a bias-filled output (a write and a read of N x C) and GELU reading
// it again. pre keeps the pre-activation for gelu_backward; the bias gradient
// is the column sum of d(pre), as matmul_backward's.
void bias_gelu_forward(float* pre, float* out, const float* bias, int N, int C) {
    #pragma omp parallel for if ((size_t)N * C >= PAR_N)
    for (int n = 0; n < N; n++) {
        float* p = pre + (size_t)n * C;
        float* y = out + (size_t)n * C;
        #pragma omp simd
        for (int i = 0; i < C; i++) {
            float x = p[i] + bias[i];
            p[i] = x;
            y[i] = 0.5f * x * (1.0f + erf_simd(x * (float)M_SQRT1_2));
        }
    }
}

// d/d of gelu_forward(out, inp): gelu'(x) = Phi(x) + x * phi(x).
// d/dx gelu(x) = Phi(x) + x phi(x)
static inline float gelu_grad(float x) {
    const float inv_sqrt_2pi = 0.3989422804014327f;
    float cdf = 0.5f * (1.0f + erf_simd(x * (float)M_SQRT1_2));
    float pdf = inv_sqrt_2pi * exp_simd(-0.5f * x * x);
    return cdf + x * pdf;
}

void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
    #pragma omp parallel for if (n >= PAR_N)
    for (size_t c = 0; c < n; c += CHUNK) {
        size_t e = c + CHUNK < n ? c + CHUNK : n;
        #pragma omp simd
        for (size_t i = c; i < e; i++) dinp[i] += dout[i] * gelu_grad(inp[i]);
    }
}

void gelu_backward_set(float* dinp, const float* inp, const float* dout, size_t n) {
    #pragma omp parallel for if (n >= PAR_N)
    for (size_t c = 0; c < n; c += CHUNK) {
        size_t e = c + CHUNK < n ? c + CHUNK : n;
        #pragma omp simd
        for (size_t i = c; i < e; i++) dinp[i] = dout[i] * gelu_grad(inp[i]);
    }
}

void quick_gelu_forward(float* out, const float* inp, size_t n) {
    #pragma omp parallel for if (n >= PAR_N)
    for (size_t c = 0; c < n; c += CHUNK) {
        size_t e = c + CHUNK < n ? c + CHUNK : n;
        #pragma omp simd
        for (size_t i = c; i < e; i++) {
            float x = inp[i];
            out[i] = x / (1.0f + exp_simd(-1.702f * x));
        }
    }
}

// d/d of quick_gelu_forward(out, inp).
void quick_gelu_backward(float* dinp, const float* inp, const float* dout, size_t n) {
    #pragma omp parallel for if (n >= PAR_N)
    for (size_t c = 0; c < n; c += CHUNK) {
        size_t e = c + CHUNK < n ? c + CHUNK : n;
        #pragma omp simd
        for (size_t i = c; i < e; i++) {
            float x = inp[i];
            float s = 1.0f / (1.0f + exp_simd(-1.702f * x));
            dinp[i] += dout[i] * (s + 1.702f * x * s * (1.0f - s));
        }
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
