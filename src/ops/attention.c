// attention.c: the multi-head self-attention core, softmax(q k^T/sqrt(hs)) v,
// on timm's qkv layout (B, T, 3C) = [q | k | v]. The fast path runs one
// (batch, head) pair per OpenMP iteration with SIMD dot products; T is small
// in MAE (the encoder sees 1 + 25% of the patches), so the T x T matrix is
// materialised and saved for backward.
#include "ops/ops.h"
#include <cblas.h>
#include <math.h>
#include <string.h>

// One head: q, k, v rows of length hs with row stride ld; out row stride ldo.
static void attn_head_forward(float* out, int ldo, float* att, const float* q, const float* k,
                              const float* v, int ld, int T, int hs, float scale) {
    for (int i = 0; i < T; i++) {
        const float* qi = q + (size_t)i * ld;
        float* a = att + (size_t)i * T;
        float mx = -INFINITY;
        for (int j = 0; j < T; j++) {
            const float* kj = k + (size_t)j * ld;
            float s = 0.0f;
            #pragma omp simd reduction(+:s)
            for (int d = 0; d < hs; d++) s += qi[d] * kj[d];
            s *= scale;
            a[j] = s;
            mx = s > mx ? s : mx;
        }
        float sum = 0.0f;
        for (int j = 0; j < T; j++) { a[j] = expf(a[j] - mx); sum += a[j]; }
        float inv = 1.0f / sum;
        for (int j = 0; j < T; j++) a[j] *= inv;
        float* o = out + (size_t)i * ldo;
        for (int d = 0; d < hs; d++) o[d] = 0.0f;
        for (int j = 0; j < T; j++) {
            const float* vj = v + (size_t)j * ld;
            float aij = a[j];
            #pragma omp simd
            for (int d = 0; d < hs; d++) o[d] += aij * vj[d];
        }
    }
}

// Long sequences (the decoder sees every patch) go through sgemm per head:
// inside the OpenMP loop OpenBLAS runs single-threaded on each call.
#define ATTN_GEMM_T 32

static void attn_head_forward_gemm(float* out, int ldo, float* att, const float* q, const float* k,
                                   const float* v, int ld, int T, int hs, float scale) {
    mim_sgemm(0, 1, T, T, hs, scale, q, ld, k, ld, 0.0f, att, T);
    softmax_forward(att, att, T, T);
    mim_sgemm(0, 0, T, hs, T, 1.0f, att, T, v, ld, 0.0f, out, ldo);
}

void attention_forward(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float* base = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
            (T >= ATTN_GEMM_T ? attn_head_forward_gemm : attn_head_forward)(
                out + (size_t)b * T * C + (size_t)h * hs, C, att + ((size_t)b * NH + h) * T * T,
                base, base + C, base + 2 * C, 3 * C, T, hs, scale);
        }
}

// d/d of attention_forward(out, att, qkv) for one head.
static void attn_head_backward(float* dq, float* dk, float* dv, int ld, float* datt,
                               const float* dout, int ldo, const float* q, const float* k,
                               const float* v, const float* att, int T, int hs, float scale) {
    for (int i = 0; i < T; i++) {
        const float* g = dout + (size_t)i * ldo;
        const float* a = att + (size_t)i * T;
        float* da = datt + (size_t)i * T;
        // datt_ij = dout_i . v_j ; dv_j += att_ij dout_i
        float dot = 0.0f;
        for (int j = 0; j < T; j++) {
            const float* vj = v + (size_t)j * ld;
            float* dvj = dv + (size_t)j * ld;
            float s = 0.0f, aij = a[j];
            #pragma omp simd reduction(+:s)
            for (int d = 0; d < hs; d++) { s += g[d] * vj[d]; dvj[d] += aij * g[d]; }
            da[j] = s;
            dot += s * aij;
        }
        // softmax backward, then scores = scale * q_i . k_j
        const float* qi = q + (size_t)i * ld;
        float* dqi = dq + (size_t)i * ld;
        for (int j = 0; j < T; j++) {
            float ds = a[j] * (da[j] - dot) * scale;
            const float* kj = k + (size_t)j * ld;
            float* dkj = dk + (size_t)j * ld;
            #pragma omp simd
            for (int d = 0; d < hs; d++) { dqi[d] += ds * kj[d]; dkj[d] += ds * qi[d]; }
        }
    }
}

// beta 1: dq, dk, dv accumulate; 0: they are overwritten.
static void attn_head_backward_gemm(float* dq, float* dk, float* dv, int ld, float* datt,
                                    const float* dout, int ldo, const float* q, const float* k,
                                    const float* v, const float* att, int T, int hs, float scale, float beta) {
    // datt = dout v^T; dv (+)= att^T dout
    mim_sgemm(0, 1, T, T, hs, 1.0f, dout, ldo, v, ld, 0.0f, datt, T);
    mim_sgemm(1, 0, T, hs, T, 1.0f, att, T, dout, ldo, beta, dv, ld);
    // softmax backward in place: ds = att * (datt - rowsum(datt * att)) * scale
    for (int i = 0; i < T; i++) {
        float* d = datt + (size_t)i * T;
        const float* a = att + (size_t)i * T;
        float dot = 0.0f;
        #pragma omp simd reduction(+:dot)
        for (int j = 0; j < T; j++) dot += d[j] * a[j];
        #pragma omp simd
        for (int j = 0; j < T; j++) d[j] = a[j] * (d[j] - dot) * scale;
    }
    // dq (+)= ds k; dk (+)= ds^T q
    mim_sgemm(0, 0, T, hs, T, 1.0f, datt, T, k, ld, beta, dq, ld);
    mim_sgemm(1, 0, T, hs, T, 1.0f, datt, T, q, ld, beta, dk, ld);
}

// set 1: dqkv is overwritten (each head clears its own q, k, v columns, cache
// hot, before the loop kernel accumulates; the sgemm kernel writes with beta 0).
static void backward(float* dqkv, float* datt, const float* dout, const float* qkv, const float* att,
                     int B, int T, int C, int NH, int set) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t off = (size_t)b * T * 3 * C + (size_t)h * hs;
            const float* base = qkv + off;
            float* dbase = dqkv + off;
            float* dA = datt + ((size_t)b * NH + h) * T * T;
            const float* g = dout + (size_t)b * T * C + (size_t)h * hs;
            const float* A = att + ((size_t)b * NH + h) * T * T;
            if (T >= ATTN_GEMM_T) {
                attn_head_backward_gemm(dbase, dbase + C, dbase + 2 * C, 3 * C, dA, g, C, base, base + C, base + 2 * C,
                                        A, T, hs, scale, set ? 0.0f : 1.0f);
            } else {
                if (set)
                    for (int t = 0; t < T; t++)
                        for (int part = 0; part < 3; part++)
                            memset(dbase + (size_t)t * 3 * C + (size_t)part * C, 0, sizeof(float) * (size_t)hs);
                attn_head_backward(dbase, dbase + C, dbase + 2 * C, 3 * C, dA, g, C, base, base + C, base + 2 * C,
                                   A, T, hs, scale);
            }
        }
}

void attention_backward(float* dqkv, float* datt, const float* dout,
                        const float* qkv, const float* att, int B, int T, int C, int NH) {
    backward(dqkv, datt, dout, qkv, att, B, T, C, NH, 0);
}

void attention_backward_set(float* dqkv, float* datt, const float* dout,
                            const float* qkv, const float* att, int B, int T, int C, int NH) {
    backward(dqkv, datt, dout, qkv, att, B, T, C, NH, 1);
}

// ---------------------------------------------------------------- reference
// Straight from the definition with explicit indices and double sums.

#define QKV(b, t, part, h, d) qkv[(((size_t)(b) * T + (t)) * 3 + (part)) * C + (size_t)(h) * hs + (d)]
#define DQKV(b, t, part, h, d) dqkv[(((size_t)(b) * T + (t)) * 3 + (part)) * C + (size_t)(h) * hs + (d)]

void attention_forward_ref(float* out, float* att, const float* qkv, int B, int T, int C, int NH) {
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            float* A = att + ((size_t)b * NH + h) * T * T;
            for (int i = 0; i < T; i++) {
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    for (int d = 0; d < hs; d++) s += (double)QKV(b, i, 0, h, d) * QKV(b, j, 1, h, d);
                    A[i * T + j] = (float)(s * scale);
                }
                softmax_forward(A + (size_t)i * T, A + (size_t)i * T, 1, T);
                for (int d = 0; d < hs; d++) {
                    double s = 0;
                    for (int j = 0; j < T; j++) s += (double)A[i * T + j] * QKV(b, j, 2, h, d);
                    out[((size_t)b * T + i) * C + (size_t)h * hs + d] = (float)s;
                }
            }
        }
}

void attention_backward_ref(float* dqkv, float* datt, const float* dout,
                            const float* qkv, const float* att, int B, int T, int C, int NH) {
    int hs = C / NH;
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float* A = att + ((size_t)b * NH + h) * T * T;
            float* dA = datt + ((size_t)b * NH + h) * T * T;
            const float* G = dout + (size_t)b * T * C + (size_t)h * hs;   // row stride C
            for (int i = 0; i < T; i++)
                for (int j = 0; j < T; j++) {
                    double s = 0;
                    for (int d = 0; d < hs; d++) s += (double)G[(size_t)i * C + d] * QKV(b, j, 2, h, d);
                    dA[i * T + j] = (float)s;
                }
            for (int j = 0; j < T; j++)
                for (int d = 0; d < hs; d++) {
                    double s = 0;
                    for (int i = 0; i < T; i++) s += (double)A[i * T + j] * G[(size_t)i * C + d];
                    DQKV(b, j, 2, h, d) += (float)s;
                }
            for (int i = 0; i < T; i++) {
                double dot = 0;
                for (int j = 0; j < T; j++) dot += (double)A[i * T + j] * dA[i * T + j];
                for (int j = 0; j < T; j++) {
                    double ds = A[i * T + j] * (dA[i * T + j] - dot) * scale;
                    for (int d = 0; d < hs; d++) {
                        DQKV(b, i, 0, h, d) += (float)(ds * QKV(b, j, 1, h, d));
                        DQKV(b, j, 1, h, d) += (float)(ds * QKV(b, i, 0, h, d));
                    }
                }
            }
        }
}
