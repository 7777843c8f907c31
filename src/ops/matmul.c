// matmul.c: the linear layer, out = inp @ W^T + b, the only place that
// multiplies matrices for the model. The fast path calls OpenBLAS sgemm
// (the OpenMP build, so its threads share OpenMP's pool); the _ref twins are
// plain loops used by tests. The bf16 variant (oneDNN or emulated) is
// matmul_bf16.c; fp32 mode never goes there.
#include "ops/ops.h"
#include <cblas.h>

void matmul_forward_ref(float* out, const float* inp, const float* weight, const float* bias,
                        int N, int C, int OC) {
    for (int n = 0; n < N; n++) {
        for (int o = 0; o < OC; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) acc += (double)inp[(size_t)n * C + c] * weight[(size_t)o * C + c];
            out[(size_t)n * OC + o] = (float)acc;
        }
    }
}

void matmul_backward_ref(float* dinp, float* dweight, float* dbias,
                         const float* dout, const float* inp, const float* weight,
                         int N, int C, int OC) {
    for (int n = 0; n < N; n++) {
        const float* g = dout + (size_t)n * OC;
        for (int o = 0; o < OC; o++) {
            if (dbias) dbias[o] += g[o];
            for (int c = 0; c < C; c++) {
                if (dinp) dinp[(size_t)n * C + c] += g[o] * weight[(size_t)o * C + c];
                if (dweight) dweight[(size_t)o * C + c] += g[o] * inp[(size_t)n * C + c];
            }
        }
    }
}

void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC) {
    // out (N, OC) = inp (N, C) @ weight^T (C, OC); bias broadcast first.
    float beta = 0.0f;
    if (bias) {
        #pragma omp parallel for if ((size_t)N * OC > 65536)
        for (int n = 0; n < N; n++)
            for (int o = 0; o < OC; o++) out[(size_t)n * OC + o] = bias[o];
        beta = 1.0f;
    }
    mim_sgemm(0, 1, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

// beta 1: dinp accumulates; 0: dinp is overwritten (sgemm never reads it).
static void backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC, float beta) {
    if (dinp)    // dinp (N, C) (+)= dout (N, OC) @ weight (OC, C)
        mim_sgemm(0, 0, N, C, OC, 1.0f, dout, OC, weight, C, beta, dinp, C);
    if (dweight) // dweight (OC, C) += dout^T (OC, N) @ inp (N, C)
        mim_sgemm(1, 0, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) {   // column blocks: contiguous SIMD adds down the rows
        #pragma omp parallel for if ((size_t)N * OC > 65536)
        for (int o0 = 0; o0 < OC; o0 += 64) {
            int w = OC - o0 < 64 ? OC - o0 : 64;
            float acc[64] = {0};
            for (int n = 0; n < N; n++) {
                const float* g = dout + (size_t)n * OC + o0;
                #pragma omp simd
                for (int j = 0; j < w; j++) acc[j] += g[j];
            }
            for (int j = 0; j < w; j++) dbias[o0 + j] += acc[j];
        }
    }
}

void matmul_backward(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                     const float* weight, int N, int C, int OC) {
    backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, 1.0f);
}

void matmul_backward_set(float* dinp, float* dweight, float* dbias, const float* dout, const float* inp,
                         const float* weight, int N, int C, int OC) {
    backward(dinp, dweight, dbias, dout, inp, weight, N, C, OC, 0.0f);
}
