// loss.c: the reconstruction losses on masked patches (MSE as MAE, cosine,
// smooth-L1) and the target transforms (norm-pix, teacher layer-norm).
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

void layernorm_rows(float* x, int N, int C, float eps) {
    #pragma omp parallel for if ((size_t)N * C >= 65536)
    for (int n = 0; n < N; n++) {
        float* r = x + (size_t)n * C;
        double m = 0.0, v = 0.0;
        for (int i = 0; i < C; i++) m += r[i];
        m /= C;
        for (int i = 0; i < C; i++) { double d = r[i] - m; v += d * d; }
        float s = (float)(1.0 / sqrt(v / C + eps));
        for (int i = 0; i < C; i++) r[i] = (float)((r[i] - m) * s);
    }
}

// ---------------------------------------------------------------- cosine
#define COS_EPS 1e-12   // F.normalize's default

// |a|, <a, t> and |t| of one row, in double.
static void row_dots(const float* a, const float* t, int P, double* na, double* nt, double* at) {
    double aa = 0.0, tt = 0.0, x = 0.0;
    for (int i = 0; i < P; i++) { aa += (double)a[i] * a[i]; tt += (double)t[i] * t[i]; x += (double)a[i] * t[i]; }
    *na = sqrt(aa); *nt = sqrt(tt); *at = x;
}

float cos_loss_forward(const float* pred, const float* target, const float* mask, int B, int L, int P) {
    double num = 0.0, den = 0.0;
    #pragma omp parallel for reduction(+:num,den) if ((size_t)B * L * P >= 65536)
    for (int r = 0; r < B * L; r++) {
        if (mask[r] == 0.0f) continue;
        double na, nt, at;
        row_dots(pred + (size_t)r * P, target + (size_t)r * P, P, &na, &nt, &at);
        double cs = at / (fmax(na, COS_EPS) * fmax(nt, COS_EPS));
        num += (double)mask[r] * (2.0 - 2.0 * cs);
        den += mask[r];
    }
    return den > 0 ? (float)(num / den) : 0.0f;
}

// d/d of cos_loss_forward(pred, target, mask) scaled by dloss. With u = a /
// max(|a|, eps) and v = t / max(|t|, eps): d<u, v>/da = (v - <u, v> u) / |a|
// when |a| > eps, else v / eps (u = a / eps is then linear in a).
void cos_loss_backward(float* dpred, const float* pred, const float* target, const float* mask,
                       float dloss, int B, int L, int P) {
    double den = 0.0;
    for (int r = 0; r < B * L; r++) den += mask[r];
    if (den <= 0) return;
    #pragma omp parallel for if ((size_t)B * L * P >= 65536)
    for (int r = 0; r < B * L; r++) {
        if (mask[r] == 0.0f) continue;
        const float* a = pred + (size_t)r * P;
        const float* t = target + (size_t)r * P;
        float* d = dpred + (size_t)r * P;
        double na, nt, at;
        row_dots(a, t, P, &na, &nt, &at);
        double k = -2.0 * dloss * mask[r] / den;   // d loss / d <u, v>
        double ia = 1.0 / fmax(na, COS_EPS), iv = 1.0 / fmax(nt, COS_EPS);
        double uv = at * ia * iv;
        if (na > COS_EPS) {
            // (v - uv u) / |a| = t iv ia - uv a ia^2
            double kt = k * iv * ia, ka = -k * uv * ia * ia;
            for (int i = 0; i < P; i++) d[i] += (float)(kt * t[i] + ka * a[i]);
        } else {
            double kt = k * iv * ia;
            for (int i = 0; i < P; i++) d[i] += (float)(kt * t[i]);
        }
    }
}

// ---------------------------------------------------------------- smooth-L1
float smooth_l1_loss_forward(const float* pred, const float* target, const float* mask, int B, int L, int P, float beta) {
    double num = 0.0, den = 0.0;
    #pragma omp parallel for reduction(+:num,den) if ((size_t)B * L * P >= 65536)
    for (int r = 0; r < B * L; r++) {
        if (mask[r] == 0.0f) continue;
        const float* a = pred + (size_t)r * P;
        const float* t = target + (size_t)r * P;
        double s = 0.0;
        for (int i = 0; i < P; i++) {
            double d = fabs((double)a[i] - t[i]);
            s += d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
        }
        num += (double)mask[r] * s;
        den += mask[r];
    }
    return den > 0 ? (float)(num / (den * P)) : 0.0f;
}

void smooth_l1_loss_backward(float* dpred, const float* pred, const float* target, const float* mask,
                             float dloss, int B, int L, int P, float beta) {
    double den = 0.0;
    for (int r = 0; r < B * L; r++) den += mask[r];
    if (den <= 0) return;
    float k = (float)(dloss / ((double)P * den));
    #pragma omp parallel for if ((size_t)B * L * P >= 65536)
    for (int r = 0; r < B * L; r++) {
        if (mask[r] == 0.0f) continue;
        float km = k * mask[r];
        const float* a = pred + (size_t)r * P;
        const float* t = target + (size_t)r * P;
        float* d = dpred + (size_t)r * P;
        for (int i = 0; i < P; i++) {
            float x = a[i] - t[i];
            float g = fabsf(x) < beta ? x / beta : (x > 0 ? 1.0f : -1.0f);
            d[i] += km * g;
        }
    }
}
