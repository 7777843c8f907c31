// sgemm.c: the fp32 matrix product behind every linear layer and attention
// head (mim_sgemm, declared in ops.h), dispatched to OpenBLAS or oneDNN's
// dnnl_sgemm. Why two: Debian's OpenBLAS 0.3.21 runs ViT shapes at
// 30-50 GFLOP/s on 2 Sapphire Rapids cores where oneDNN's fp32 kernels reach
// 200-260 (bench/bench_matmul there), while on AVX2 machines (Zen 3 here)
// OpenBLAS is the fast one. `auto` therefore takes oneDNN on CPUs with
// AVX-512 (when oneDNN is built in) and OpenBLAS elsewhere; MIM_SGEMM=
// openblas|onednn overrides it. The choice is process-wide, made once.
#include "ops/ops.h"
#include "core/check.h"
#include "core/cpu.h"
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#ifdef MIM_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

static int g_backend = -1;   // -1: not chosen yet

int mim_sgemm_backend(void) {
    if (g_backend < 0) {
        const char* e = getenv("MIM_SGEMM");
        int want = MIM_SGEMM_OPENBLAS;
        if (e && !strcmp(e, "onednn")) want = MIM_SGEMM_ONEDNN;
        else if (e && !strcmp(e, "openblas")) want = MIM_SGEMM_OPENBLAS;
        else want = mim_cpu_avx512() ? MIM_SGEMM_ONEDNN : MIM_SGEMM_OPENBLAS;
        if (!mim_onednn_built()) want = MIM_SGEMM_OPENBLAS;
        g_backend = want;
    }
    return g_backend;
}

void mim_sgemm_set_backend(int backend) {
    g_backend = backend == MIM_SGEMM_ONEDNN && mim_onednn_built() ? MIM_SGEMM_ONEDNN : MIM_SGEMM_OPENBLAS;
}

const char* mim_sgemm_backend_name(void) {
    return mim_sgemm_backend() == MIM_SGEMM_ONEDNN ? "oneDNN sgemm" : "OpenBLAS sgemm";
}

void mim_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
               float beta, float* C, int ldc) {
#ifdef MIM_DNNL
    if (mim_sgemm_backend() == MIM_SGEMM_ONEDNN) {
        dnnl_status_t st = dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        CHECK(st == dnnl_success);   // only bad arguments fail, a programming error
        return;
    }
#endif
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda,
                B, ldb, beta, C, ldc);
}
