// patch.c: image <-> patch layouts (MAE patchify, conv-order im2col),
// random masking by noise argsort, and the row gather/scatter used to drop
// and restore tokens.
#include "ops/ops.h"
#include <stdlib.h>
#include <string.h>

// imgs (B, C, H, W) <-> out (B, L, p*p*C), element (pr, pc, c) of patch (gh, gw).
void patchify_forward(float* out, const float* imgs, int B, int C, int H, int W, int p) {
    int gh = H / p, gw = W / p, L = gh * gw, P = p * p * C;
    #pragma omp parallel for collapse(2) if ((size_t)B * C * H * W >= 65536)
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            int y0 = (l / gw) * p, x0 = (l % gw) * p;
            float* o = out + ((size_t)b * L + l) * P;
            for (int pr = 0; pr < p; pr++)
                for (int pc = 0; pc < p; pc++)
                    for (int c = 0; c < C; c++)
                        o[(pr * p + pc) * C + c] = imgs[(((size_t)b * C + c) * H + y0 + pr) * W + x0 + pc];
        }
}

// d/d of patchify_forward(out, imgs): each pixel belongs to exactly one patch.
void patchify_backward(float* dimgs, const float* dout, int B, int C, int H, int W, int p) {
    int gh = H / p, gw = W / p, L = gh * gw, P = p * p * C;
    #pragma omp parallel for collapse(2) if ((size_t)B * C * H * W >= 65536)
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            int y0 = (l / gw) * p, x0 = (l % gw) * p;
            const float* g = dout + ((size_t)b * L + l) * P;
            for (int pr = 0; pr < p; pr++)
                for (int pc = 0; pc < p; pc++)
                    for (int c = 0; c < C; c++)
                        dimgs[(((size_t)b * C + c) * H + y0 + pr) * W + x0 + pc] += g[(pr * p + pc) * C + c];
        }
}

// imgs (B, C, H, W) <-> out (B, L, C*p*p), element (c, pr, pc) of each patch.
void im2col_forward(float* out, const float* imgs, int B, int C, int H, int W, int p) {
    int gh = H / p, gw = W / p, L = gh * gw, P = p * p * C;
    #pragma omp parallel for collapse(2) if ((size_t)B * C * H * W >= 65536)
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            int y0 = (l / gw) * p, x0 = (l % gw) * p;
            float* o = out + ((size_t)b * L + l) * P;
            for (int c = 0; c < C; c++)
                for (int pr = 0; pr < p; pr++)
                    memcpy(o + (c * p + pr) * p, imgs + (((size_t)b * C + c) * H + y0 + pr) * W + x0,
                           (size_t)p * sizeof(float));
        }
}

// d/d of im2col_forward(out, imgs).
void im2col_backward(float* dimgs, const float* dout, int B, int C, int H, int W, int p) {
    int gh = H / p, gw = W / p, L = gh * gw, P = p * p * C;
    #pragma omp parallel for collapse(2) if ((size_t)B * C * H * W >= 65536)
    for (int b = 0; b < B; b++)
        for (int l = 0; l < L; l++) {
            int y0 = (l / gw) * p, x0 = (l % gw) * p;
            const float* g = dout + ((size_t)b * L + l) * P;
            for (int c = 0; c < C; c++)
                for (int pr = 0; pr < p; pr++)
                    for (int pc = 0; pc < p; pc++)
                        dimgs[(((size_t)b * C + c) * H + y0 + pr) * W + x0 + pc] += g[(c * p + pr) * p + pc];
        }
}

// Stable argsort of one noise row by insertion into a merge sort; L is at
// most a few thousand patches, so an O(L log L) merge sort per row is cheap.
static void argsort_stable(int32_t* idx, int32_t* tmp, const float* key, int L) {
    for (int i = 0; i < L; i++) idx[i] = i;
    for (int width = 1; width < L; width *= 2) {
        for (int lo = 0; lo < L; lo += 2 * width) {
            int mid = lo + width < L ? lo + width : L;
            int hi = lo + 2 * width < L ? lo + 2 * width : L;
            int a = lo, b = mid, o = lo;
            while (a < mid && b < hi) tmp[o++] = (key[idx[b]] < key[idx[a]]) ? idx[b++] : idx[a++];
            while (a < mid) tmp[o++] = idx[a++];
            while (b < hi) tmp[o++] = idx[b++];
        }
        memcpy(idx, tmp, (size_t)L * sizeof(int32_t));
    }
}

void masking_forward(int32_t* ids_shuffle, int32_t* ids_restore, float* mask,
                     const float* noise, int B, int L, int len_keep) {
    for (int b = 0; b < B; b++) {
        int32_t* sh = ids_shuffle + (size_t)b * L;
        int32_t* re = ids_restore + (size_t)b * L;
        // ids_restore doubles as merge scratch before it is filled.
        argsort_stable(sh, re, noise + (size_t)b * L, L);
        for (int i = 0; i < L; i++) re[sh[i]] = i;
        for (int i = 0; i < L; i++) mask[(size_t)b * L + i] = re[i] < len_keep ? 0.0f : 1.0f;
    }
}

// ids (B, Tout) contiguous.
void gather_forward(float* out, const float* inp, const int32_t* ids, int B, int Tin, int Tout, int C) {
    #pragma omp parallel for collapse(2) if ((size_t)B * Tout * C >= 65536)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tout; t++)
            memcpy(out + ((size_t)b * Tout + t) * C,
                   inp + ((size_t)b * Tin + ids[(size_t)b * Tout + t]) * C, (size_t)C * sizeof(float));
}

// d/d of gather_forward(out, inp, ids). Parallel over b only: ids within a
// row may repeat, so rows of one sample are scattered by one thread.
void gather_backward(float* dinp, const float* dout, const int32_t* ids, int B, int Tin, int Tout, int C) {
    #pragma omp parallel for if ((size_t)B * Tout * C >= 65536)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tout; t++) {
            float* d = dinp + ((size_t)b * Tin + ids[(size_t)b * Tout + t]) * C;
            const float* g = dout + ((size_t)b * Tout + t) * C;
            for (int c = 0; c < C; c++) d[c] += g[c];
        }
}
