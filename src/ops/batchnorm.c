// batchnorm.c: BatchNorm1d without affine (see batchnorm.h). Columns are
// independent, so the threads split C; each column's sums are accumulated
// in double over N.
#include "ops/batchnorm.h"
#include <math.h>
#include <stddef.h>

void batchnorm1d_forward(float* out, float* mean, float* rstd,
                         float* running_mean, float* running_var,
                         const float* inp, int N, int C, float eps, float momentum) {
    #pragma omp parallel for if ((size_t)N * C >= 65536)
    for (int c = 0; c < C; c++) {
        double s = 0.0, s2 = 0.0;
        for (int n = 0; n < N; n++) s += inp[(size_t)n * C + c];
        double m = s / N;
        for (int n = 0; n < N; n++) { double d = inp[(size_t)n * C + c] - m; s2 += d * d; }
        double var = s2 / N;   // biased, for normalising
        float r = (float)(1.0 / sqrt(var + eps));
        mean[c] = (float)m;
        rstd[c] = r;
        for (int n = 0; n < N; n++) out[(size_t)n * C + c] = (float)((inp[(size_t)n * C + c] - m) * r);
        if (running_mean) running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * m);
        if (running_var && N > 1)
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * s2 / (N - 1));
    }
}

void batchnorm1d_backward(float* dinp, const float* dout, const float* out, const float* rstd,
                          int N, int C) {
    #pragma omp parallel for if ((size_t)N * C >= 65536)
    for (int c = 0; c < C; c++) {
        double sd = 0.0, sdx = 0.0;
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)n * C + c;
            sd += dout[i];
            sdx += (double)dout[i] * out[i];
        }
        double md = sd / N, mdx = sdx / N;
        for (int n = 0; n < N; n++) {
            size_t i = (size_t)n * C + c;
            dinp[i] += (float)(rstd[c] * (dout[i] - md - out[i] * mdx));
        }
    }
}

void batchnorm1d_forward_eval(float* out, const float* inp, const float* running_mean,
                              const float* running_var, int N, int C, float eps) {
    #pragma omp parallel for if ((size_t)N * C >= 65536)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) {
            size_t i = (size_t)n * C + c;
            out[i] = (float)((inp[i] - running_mean[c]) / sqrt((double)running_var[c] + eps));
        }
}
