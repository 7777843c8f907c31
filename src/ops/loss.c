// loss.c: the MAE reconstruction loss (MSE on masked patches) and the
// norm-pix target transform.
#include "ops/ops.h"
#include <math.h>

float mae_loss_forward(const float* pred, const float* target, const float* mask, int B, int L, int P) {
    double num = 0.0, den = 0.0;
    #pragma omp parallel for reduction(+:num,den) if ((size_t)B * L * P >= 65536)
    for (int r = 0; r < B * L; r++) {
        if (mask[r] == 0.0f) continue;
        const float* a = pred + (size_t)r * P;
        const float* t = target + (size_t)r * P;
        float s = 0.0f;
        for (int i = 0; i < P; i++) { float d = a[i] - t[i]; s += d * d; }
        num += (double)mask[r] * s / P;
        den += mask[r];
    }
    return den > 0 ? (float)(num / den) : 0.0f;
}

// d/d of mae_loss_forward(pred, target, mask) scaled by dloss.
void mae_loss_backward(float* dpred, const float* pred, const float* target, const float* mask,
                       float dloss, int B, int L, int P) {
    double den = 0.0;
    for (int r = 0; r < B * L; r++) den += mask[r];
    if (den <= 0) return;
    float k = (float)(2.0 * dloss / ((double)P * den));
    #pragma omp parallel for if ((size_t)B * L * P >= 65536)
    for (int r = 0; r < B * L; r++) {
        if (mask[r] == 0.0f) continue;
        float km = k * mask[r];
        const float* a = pred + (size_t)r * P;
        const float* t = target + (size_t)r * P;
        float* d = dpred + (size_t)r * P;
        for (int i = 0; i < P; i++) d[i] += km * (a[i] - t[i]);
    }
}

void norm_pix_rows(float* target, int N, int P) {
    #pragma omp parallel for if ((size_t)N * P >= 65536)
    for (int n = 0; n < N; n++) {
        float* x = target + (size_t)n * P;
        double m = 0.0;
        for (int i = 0; i < P; i++) m += x[i];
        m /= P;
        double v = 0.0;
        for (int i = 0; i < P; i++) { double d = x[i] - m; v += d * d; }
        v = P > 1 ? v / (P - 1) : 0.0;   // unbiased, as torch.var
        float s = (float)(1.0 / sqrt(v + 1e-6));
        for (int i = 0; i < P; i++) x[i] = (float)((x[i] - m) * s);
    }
}
