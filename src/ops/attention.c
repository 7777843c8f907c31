// attention.c: the multi-head self-attention core, softmax(q k^T/sqrt(hs)) v,
// on timm's qkv layout (B, T, 3C) = [q | k | v], fused per (sample, head):
// the forward keeps only each row's log-sum-exp (B, NH, T), the backward
// recomputes the probabilities block by block (FlashAttention-2's scheme on
// a CPU thread). One (batch, head) pair per OpenMP iteration; its scores
// live in a block of at most ATTN_BR rows x T in the thread's workspace, so
// no (B, NH, T, T) tensor is written or read back, for any T. The kernels
// run on GCC vector extensions (16 floats, one zmm, on AVX-512; 8, one ymm,
// elsewhere); q, k, v are copied per head into zero-padded panels so every
// width is a multiple of the vector. Not here: the qkv and proj linears (vit.c).
#include "ops/ops.h"
#include "core/check.h"
#include <math.h>
#include <omp.h>
#include <string.h>

#ifdef __AVX512F__
#define VL 16   // floats per vector: one zmm
#else
#define VL 8    // one ymm (AVX2), or two xmm
#endif
typedef float vf __attribute__((vector_size(VL * 4), aligned(4)));   // unaligned loads allowed
typedef int vi __attribute__((vector_size(VL * 4), aligned(4)));
#define ATTN_BR 64   // most query rows whose scores are held at once

static inline int upv(int n) { return (n + VL - 1) & ~(VL - 1); }
static inline vf vbcast(float s) { return s - (vf){0}; }   // x - 0 == x for every x: folds to a broadcast
static inline vf vld(const float* p) { return *(const vf*)p; }
static inline void vst(float* p, vf v) { *(vf*)p = v; }
static inline vf vmax(vf a, vf b) { vi m = a > b; return (vf)(((vi)a & m) | ((vi)b & ~m)); }
static inline float vsum(vf v) { float s = 0; for (int i = 0; i < VL; i++) s += v[i]; return s; }
static inline float vmaxr(vf v) { float s = v[0]; for (int i = 1; i < VL; i++) s = v[i] > s ? v[i] : s; return s; }

// e^x for x <= 0 (scores minus their row max): Cephes' expf polynomial after
// x = n ln2 + r, |r| <= ln2/2; relative error ~2 ulp; x below -87 gives ~1e-38.
static inline vf vexp(vf x) {
    x = vmax(x, vbcast(-87.0f));
    const vf magic = vbcast(12582912.0f);   // 1.5 * 2^23: adding it rounds to an integer
    vf t = x * 1.44269504088896341f + magic;
    vf n = t - magic;
    vf r = x - n * 0.693359375f + n * 2.12194440e-4f;
    vf p = vbcast(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    vi e = (__builtin_convertvector(n, vi) + 127) << 23;
    return p * (vf)e;
}

// S (nr, ncol) = X (nr, hd) @ Yt (hd, ncol): X rows of stride ldx, Yt rows of
// stride ldy; ncol a multiple of VL. R rows at a time, two vectors wide.
static inline __attribute__((always_inline)) void scores_rows(float* S, int ldS, const float* X, int ldx,
                                                              const float* Yt, int ldy, int ncol, int hd, int R) {
    int c = 0;
    for (; c + 2 * VL <= ncol; c += 2 * VL) {
        vf a0[4] = {0}, a1[4] = {0};
        for (int d = 0; d < hd; d++) {
            vf y0 = vld(Yt + (size_t)d * ldy + c), y1 = vld(Yt + (size_t)d * ldy + c + VL);
            for (int r = 0; r < R; r++) {
                vf x = vbcast(X[(size_t)r * ldx + d]);
                a0[r] += x * y0; a1[r] += x * y1;
            }
        }
        for (int r = 0; r < R; r++) { vst(S + (size_t)r * ldS + c, a0[r]); vst(S + (size_t)r * ldS + c + VL, a1[r]); }
    }
    for (; c < ncol; c += VL) {
        vf a0[4] = {0};
        for (int d = 0; d < hd; d++) {
            vf y0 = vld(Yt + (size_t)d * ldy + c);
            for (int r = 0; r < R; r++) a0[r] += vbcast(X[(size_t)r * ldx + d]) * y0;
        }
        for (int r = 0; r < R; r++) vst(S + (size_t)r * ldS + c, a0[r]);
    }
}

static void scores(float* S, int ldS, const float* X, int ldx, int nr, const float* Yt, int ldy, int ncol, int hd) {
    int r = 0;
    for (; r + 4 <= nr; r += 4) scores_rows(S + (size_t)r * ldS, ldS, X + (size_t)r * ldx, ldx, Yt, ldy, ncol, hd, 4);
    for (; r < nr; r++) scores_rows(S + (size_t)r * ldS, ldS, X + (size_t)r * ldx, ldx, Yt, ldy, ncol, hd, 1);
}

// O (nr, VL NV) (+)= P (nr, nk) @ Z (nk, VL NV), P(r, k) = P[r sr + k sk],
// Z rows of stride ldz, O rows of stride ldo. R rows at a time.
static inline __attribute__((always_inline)) void combine_rows(float* O, int ldo, const float* P, int sr, int sk,
                                                               int nk, const float* Z, int ldz, int acc, int R, int NV) {
    vf a[4][4] = {{{0}}};
    for (int k = 0; k < nk; k++) {
        vf z[4];
        for (int v = 0; v < NV; v++) z[v] = vld(Z + (size_t)k * ldz + v * VL);
        for (int r = 0; r < R; r++) {
            vf p = vbcast(P[(size_t)r * sr + (size_t)k * sk]);
            for (int v = 0; v < NV; v++) a[r][v] += p * z[v];
        }
    }
    for (int r = 0; r < R; r++)
        for (int v = 0; v < NV; v++) {
            float* o = O + (size_t)r * ldo + v * VL;
            vst(o, acc ? vld(o) + a[r][v] : a[r][v]);
        }
}

#define COMBINE_NV(NV)                                                                                       \
    do {                                                                                                     \
        int r = 0;                                                                                           \
        for (; r + 4 <= nr; r += 4)                                                                          \
            combine_rows(O + (size_t)r * ldo + c, ldo, P + (size_t)r * sr, sr, sk, nk, Z + c, ldz, acc, 4, NV); \
        for (; r < nr; r++)                                                                                  \
            combine_rows(O + (size_t)r * ldo + c, ldo, P + (size_t)r * sr, sr, sk, nk, Z + c, ldz, acc, 1, NV); \
    } while (0)

// width: a multiple of VL, taken 4 VL columns at a time.
static void combine(float* O, int ldo, const float* P, int sr, int sk, int nr, int nk, const float* Z, int ldz,
                    int width, int acc) {
    for (int c = 0; c < width; c += 4 * VL) {
        int nv = (width - c) / VL;
        if (nv >= 4) COMBINE_NV(4);
        else if (nv == 3) COMBINE_NV(3);
        else if (nv == 2) COMBINE_NV(2);
        else COMBINE_NV(1);
    }
}

// dst (rows, hp) <- src rows (stride ld, hs used), zero padding to (rowsp, hp).
static void panel(float* dst, int hp, const float* src, int ld, int rows, int rowsp, int hs) {
    for (int j = 0; j < rowsp; j++) {
        float* d = dst + (size_t)j * hp;
        if (j < rows) { memcpy(d, src + (size_t)j * ld, sizeof(float) * hs); memset(d + hs, 0, sizeof(float) * (hp - hs)); }
        else memset(d, 0, sizeof(float) * hp);
    }
}

// dst (hp, Tp) <- src (T rows of stride ld, hs used) transposed, zero padded.
static void panel_t(float* dst, int Tp, const float* src, int ld, int T, int hs, int hp) {
    memset(dst, 0, sizeof(float) * (size_t)hp * Tp);
    for (int j = 0; j < T; j++)
        for (int d = 0; d < hs; d++) dst[(size_t)d * Tp + j] = src[(size_t)j * ld + d];
}

// Query rows per block: T split into equal blocks of at most ATTN_BR.
static int block_rows(int T) { int nb = (T + ATTN_BR - 1) / ATTN_BR; return (T + nb - 1) / nb; }

// The sgemm backward (T >= ATTN_GEMM_T) holds one block of gemm_rows(T)
// query rows' probabilities and score gradients: all of them up to T 256.
#define ATTN_GEMM_T 32
static int gemm_rows(int T) { return T <= 256 ? T : block_rows(T); }

size_t attention_ws_floats(int T, int hs) {
    size_t Tp = (size_t)upv(T), hp = (size_t)upv(hs), br = (size_t)upv(block_rows(T));
    size_t vec = 7 * Tp * hp + 2 * br * Tp + br * hp + Tp;   // the vector backward's panels (the forward uses fewer)
    size_t gem = 2 * (size_t)gemm_rows(T) * T + Tp;
    return T >= ATTN_GEMM_T && gem > vec ? gem : vec;
}

static float* ws_slice(const attn_ws* ws, int T, int hs) {
    CHECK(ws && ws->mem && ws->per_thread >= attention_ws_floats(T, hs));
    int t = omp_get_thread_num();
    CHECK(t < ws->threads);
    return ws->mem + (size_t)t * ws->per_thread;
}

static int ws_team(const attn_ws* ws) {
    int n = omp_get_max_threads();
    return n < ws->threads ? n : ws->threads;
}

// One head. q, k, v: T rows of stride ld (hs used); out rows of stride ldo;
// lse (T).
static void head_forward(float* out, int ldo, float* lse, const float* q, const float* k, const float* v, int ld,
                         int T, int hs, float scale, float* w) {
    int Tp = upv(T), hp = upv(hs), br = block_rows(T);
    int direct = hs == hp;   // v and out rows are whole vectors: used in place, no panel
    float *Kt = w, *Vs = Kt + (size_t)hp * Tp, *S = Vs + (size_t)Tp * hp, *Ob = S + (size_t)upv(br) * Tp;
    panel_t(Kt, Tp, k, ld, T, hs, hp);
    if (!direct) panel(Vs, hp, v, ld, T, Tp, hs);
    const float* Vp = direct ? v : Vs;
    int ldv = direct ? ld : hp;
    for (int i0 = 0; i0 < T; i0 += br) {
        int nr = T - i0 < br ? T - i0 : br;
        scores(S, Tp, q + (size_t)i0 * ld, ld, nr, Kt, Tp, Tp, hs);
        for (int r = 0; r < nr; r++) {
            float* s = S + (size_t)r * Tp;
            for (int j = T; j < Tp; j++) s[j] = -INFINITY;
            vf m = vbcast(-INFINITY);
            for (int j = 0; j < Tp; j += VL) { vf x = vld(s + j) * scale; vst(s + j, x); m = vmax(x, m); }
            float mx = vmaxr(m);
            vf sum = {0};
            for (int j = 0; j < Tp; j += VL) {
                vf e = vexp(vld(s + j) - mx);
                if (j + VL > T)
                    for (int l = T - j; l < VL; l++) e[l] = 0.0f;   // the padding columns
                vst(s + j, e);
                sum += e;
            }
            float tot = vsum(sum), inv = 1.0f / tot;
            lse[i0 + r] = mx + logf(tot);
            for (int j = 0; j < Tp; j += VL) vst(s + j, vld(s + j) * inv);
        }
        if (direct) combine(out + (size_t)i0 * ldo, ldo, S, Tp, 1, nr, T, Vp, ldv, hp, 0);
        else {
            combine(Ob, hp, S, Tp, 1, nr, T, Vp, ldv, hp, 0);
            for (int r = 0; r < nr; r++) memcpy(out + (size_t)(i0 + r) * ldo, Ob + (size_t)r * hp, sizeof(float) * hs);
        }
    }
}

// The same for T >= ATTN_GEMM_T through sgemm: per block of query rows the
// scaled scores, their softmax in place (lse saved), then P v into out.
static void head_forward_gemm(float* out, int ldo, float* lse, const float* q, const float* k, const float* v, int ld,
                              int T, int hs, float scale, float* w) {
    int br = gemm_rows(T), Tv = T / VL * VL;
    float* S = w;
    for (int i0 = 0; i0 < T; i0 += br) {
        int nr = T - i0 < br ? T - i0 : br;
        mim_sgemm(0, 1, nr, T, hs, scale, q + (size_t)i0 * ld, ld, k, ld, 0.0f, S, T);
        for (int r = 0; r < nr; r++) {
            float* s = S + (size_t)r * T;
            vf m = vbcast(-INFINITY);
            int j = 0;
            for (; j < Tv; j += VL) m = vmax(vld(s + j), m);
            float mx = vmaxr(m);
            for (; j < T; j++) mx = s[j] > mx ? s[j] : mx;
            vf sum = {0};
            for (j = 0; j < Tv; j += VL) { vf e = vexp(vld(s + j) - mx); vst(s + j, e); sum += e; }
            float tot = vsum(sum);
            for (; j < T; j++) { s[j] = expf(s[j] - mx); tot += s[j]; }
            float inv = 1.0f / tot;
            lse[i0 + r] = mx + logf(tot);
            for (j = 0; j < Tv; j += VL) vst(s + j, vld(s + j) * inv);
            for (; j < T; j++) s[j] *= inv;
        }
        mim_sgemm(0, 0, nr, hs, T, 1.0f, S, T, v, ld, 0.0f, out + (size_t)i0 * ldo, ldo);
    }
}

void attention_forward(float* out, float* lse, const float* qkv, int B, int T, int C, int NH, const attn_ws* ws) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(ws_team(ws))
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float* base = qkv + (size_t)b * T * 3 * C + (size_t)h * hs;
            (T >= ATTN_GEMM_T ? head_forward_gemm : head_forward)(out + (size_t)b * T * C + (size_t)h * hs, C, lse + ((size_t)b * NH + h) * T, base,
                         base + C, base + 2 * C, 3 * C, T, hs, scale, ws_slice(ws, T, hs));
        }
}

// d/d of head_forward: dq, dk, dv rows of stride ld, dout and out of stride
// ldo. set 1: dq, dk, dv are overwritten, 0: accumulated.
static void head_backward(float* dq, float* dk, float* dv, const float* dout, const float* out, int ldo,
                          const float* q, const float* k, const float* v, int ld, const float* lse,
                          int T, int hs, float scale, int set, float* w) {
    int Tp = upv(T), hp = upv(hs), br = block_rows(T);
    int direct = hs == hp;   // q, k, dout and the gradients' rows are whole vectors: used in place
    size_t pan = (size_t)Tp * hp;
    float *Kt = w, *Vt = Kt + pan, *Ks = Vt + pan, *Qs = Ks + pan, *Gs = Qs + pan, *dK = Gs + pan, *dV = dK + pan;
    float *P = dV + pan, *dS = P + (size_t)upv(br) * Tp, *dQb = dS + (size_t)upv(br) * Tp, *Dv = dQb + (size_t)upv(br) * hp;
    panel_t(Kt, Tp, k, ld, T, hs, hp);
    panel_t(Vt, Tp, v, ld, T, hs, hp);
    const float *Kp = k, *Qp = q, *Gp = dout;
    float *dKp = dk, *dVp = dv, *dQp = dq;
    int ldk = ld, ldg = ldo, lddq = ld;
    if (direct) {
        if (set)
            for (int j = 0; j < T; j++) {
                memset(dk + (size_t)j * ld, 0, sizeof(float) * hs);
                memset(dv + (size_t)j * ld, 0, sizeof(float) * hs);
            }
    } else {
        panel(Ks, hp, k, ld, T, Tp, hs);
        panel(Qs, hp, q, ld, T, Tp, hs);
        panel(Gs, hp, dout, ldo, T, Tp, hs);
        memset(dK, 0, sizeof(float) * 2 * pan);   // dK and dV
        Kp = Ks; Qp = Qs; Gp = Gs; dKp = dK; dVp = dV; dQp = dQb;
        ldk = ldg = lddq = hp;
    }
    for (int i = 0; i < T; i++) {   // D_i = dout_i . out_i = sum_j P_ij dP_ij
        float s = 0.0f;
        for (int d = 0; d < hs; d++) s += dout[(size_t)i * ldo + d] * out[(size_t)i * ldo + d];
        Dv[i] = s;
    }
    for (int i0 = 0; i0 < T; i0 += br) {
        int nr = T - i0 < br ? T - i0 : br;
        const float *qb = Qp + (size_t)i0 * ldk, *gb = Gp + (size_t)i0 * ldg;
        scores(P, Tp, qb, ldk, nr, Kt, Tp, Tp, hs);    // q k^T
        scores(dS, Tp, gb, ldg, nr, Vt, Tp, Tp, hs);   // dP = dout v^T
        for (int r = 0; r < nr; r++) {
            float *p = P + (size_t)r * Tp, *ds = dS + (size_t)r * Tp, l = lse[i0 + r], dd = Dv[i0 + r];
            for (int j = 0; j < Tp; j += VL) {
                vf pj = vexp(vld(p + j) * scale - l);
                vst(p + j, pj);
                vst(ds + j, pj * (vld(ds + j) - dd) * scale);
            }
            for (int j = T; j < Tp; j++) p[j] = ds[j] = 0.0f;
        }
        combine(dVp, ldk, P, 1, Tp, T, nr, gb, ldg, hp, 1);     // dV += P^T dout
        combine(dKp, ldk, dS, 1, Tp, T, nr, qb, ldk, hp, 1);    // dK += dS^T q
        if (direct) combine(dQp + (size_t)i0 * lddq, lddq, dS, Tp, 1, nr, T, Kp, ldk, hp, !set);   // dq (+)= dS k
        else {
            combine(dQb, hp, dS, Tp, 1, nr, T, Kp, ldk, hp, 0);
            for (int r = 0; r < nr; r++) {
                float* o = dq + (size_t)(i0 + r) * ld;
                const float* g = dQb + (size_t)r * hp;
                if (set) memcpy(o, g, sizeof(float) * hs);
                else for (int d = 0; d < hs; d++) o[d] += g[d];
            }
        }
    }
    if (direct) return;
    for (int j = 0; j < T; j++) {
        float *ok = dk + (size_t)j * ld, *ov = dv + (size_t)j * ld;
        const float *gk = dK + (size_t)j * hp, *gv = dV + (size_t)j * hp;
        if (set) { memcpy(ok, gk, sizeof(float) * hs); memcpy(ov, gv, sizeof(float) * hs); }
        else for (int d = 0; d < hs; d++) { ok[d] += gk[d]; ov[d] += gv[d]; }
    }
}

// The same for T >= ATTN_GEMM_T through sgemm (one thread's call inside the
// parallel loop): per block of query rows, P = exp(q k^T scale - lse) and
// dS = P (dout v^T - D) scale in the workspace, then dv, dk, dq by products.
static void head_backward_gemm(float* dq, float* dk, float* dv, const float* dout, const float* out, int ldo,
                               const float* q, const float* k, const float* v, int ld, const float* lse,
                               int T, int hs, float scale, int set, float* w) {
    int br = gemm_rows(T), Tv = T / VL * VL;
    float *P = w, *dS = P + (size_t)br * T, *Dv = dS + (size_t)br * T;
    for (int i = 0; i < T; i++) {
        float s = 0.0f;
        #pragma omp simd reduction(+:s)
        for (int d = 0; d < hs; d++) s += dout[(size_t)i * ldo + d] * out[(size_t)i * ldo + d];
        Dv[i] = s;
    }
    for (int i0 = 0; i0 < T; i0 += br) {
        int nr = T - i0 < br ? T - i0 : br;
        const float *qb = q + (size_t)i0 * ld, *gb = dout + (size_t)i0 * ldo;
        mim_sgemm(0, 1, nr, T, hs, scale, qb, ld, k, ld, 0.0f, P, T);    // scaled scores
        mim_sgemm(0, 1, nr, T, hs, 1.0f, gb, ldo, v, ld, 0.0f, dS, T);   // dP = dout v^T
        for (int r = 0; r < nr; r++) {
            float *p = P + (size_t)r * T, *ds = dS + (size_t)r * T, l = lse[i0 + r], dd = Dv[i0 + r];
            int j = 0;
            for (; j < Tv; j += VL) {
                vf pj = vexp(vld(p + j) - l);
                vst(p + j, pj);
                vst(ds + j, pj * (vld(ds + j) - dd) * scale);
            }
            for (; j < T; j++) { p[j] = expf(p[j] - l); ds[j] = p[j] * (ds[j] - dd) * scale; }
        }
        float bkv = set && i0 == 0 ? 0.0f : 1.0f;
        mim_sgemm(1, 0, T, hs, nr, 1.0f, P, T, gb, ldo, bkv, dv, ld);                // dv (+)= P^T dout
        mim_sgemm(1, 0, T, hs, nr, 1.0f, dS, T, qb, ld, bkv, dk, ld);                // dk (+)= dS^T q
        mim_sgemm(0, 0, nr, hs, T, 1.0f, dS, T, k, ld, set ? 0.0f : 1.0f, dq + (size_t)i0 * ld, ld);   // dq (+)= dS k
    }
}

static void backward(float* dqkv, const float* dout, const float* out, const float* qkv, const float* lse,
                     int B, int T, int C, int NH, const attn_ws* ws, int set) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    #pragma omp parallel for collapse(2) schedule(static) num_threads(ws_team(ws))
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t off = (size_t)b * T * 3 * C + (size_t)h * hs, offo = (size_t)b * T * C + (size_t)h * hs;
            const float* base = qkv + off;
            float* dbase = dqkv + off;
            (T >= ATTN_GEMM_T ? head_backward_gemm : head_backward)(
                dbase, dbase + C, dbase + 2 * C, dout + offo, out + offo, C, base, base + C, base + 2 * C,
                3 * C, lse + ((size_t)b * NH + h) * T, T, hs, scale, set, ws_slice(ws, T, hs));
        }
}

void attention_backward(float* dqkv, const float* dout, const float* out, const float* qkv, const float* lse,
                        int B, int T, int C, int NH, const attn_ws* ws) {
    backward(dqkv, dout, out, qkv, lse, B, T, C, NH, ws, 0);
}

void attention_backward_set(float* dqkv, const float* dout, const float* out, const float* qkv, const float* lse,
                            int B, int T, int C, int NH, const attn_ws* ws) {
    backward(dqkv, dout, out, qkv, lse, B, T, C, NH, ws, 1);
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
