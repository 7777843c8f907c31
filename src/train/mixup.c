// mixup.c: timm Mixup (mode 'batch') / CutMix, smoothed mixed targets, Beta
// sampling and the soft-target cross-entropy (see mixup.h).
#include "train/mixup.h"
#include "core/check.h"
#include <math.h>
#include <string.h>

void mim_mixup_default(mim_mixup* m, int num_classes) {
    CHECK(m != NULL && num_classes > 0);
    memset(m, 0, sizeof *m);
    m->mixup_alpha = 0.8;
    m->cutmix_alpha = 1.0;
    m->prob = 1.0;
    m->switch_prob = 0.5;
    m->label_smoothing = 0.1;
    m->correct_lam = 1;
    m->num_classes = num_classes;
}

// ---------------------------------------------------------------- Gamma / Beta
// Standard normal in double precision (Box-Muller, one value per call);
// core/rng's mim_rng_normal rounds to float, too coarse for the rejection
// test's tails.
static double normal_d(mim_rng* rng) {
    double u1 = 1.0 - mim_rng_uniform_d(rng);   // (0, 1]
    double u2 = mim_rng_uniform_d(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

double mim_gamma_sample(mim_rng* rng, double shape) {
    CHECK(shape > 0.0 && isfinite(shape));
    if (shape < 1.0) {
        // Gamma(a) = Gamma(a + 1) * U^(1/a) (Marsaglia & Tsang 2000, sec. 6)
        double u = 1.0 - mim_rng_uniform_d(rng);
        return mim_gamma_sample(rng, shape + 1.0) * pow(u, 1.0 / shape);
    }
    double d = shape - 1.0 / 3.0, c = 1.0 / sqrt(9.0 * d);
    for (;;) {
        double x, v;
        do {
            x = normal_d(rng);
            v = 1.0 + c * x;
        } while (v <= 0.0);
        v = v * v * v;
        double u = 1.0 - mim_rng_uniform_d(rng);
        double x2 = x * x;
        if (u < 1.0 - 0.0331 * x2 * x2) return d * v;           // squeeze
        if (log(u) < 0.5 * x2 + d * (1.0 - v + log(v))) return d * v;
    }
}

double mim_beta_sample(mim_rng* rng, double a, double b) {
    double x = mim_gamma_sample(rng, a), y = mim_gamma_sample(rng, b);
    if (x + y > 0.0) return x / (x + y);
    // both underflowed (only for tiny shapes): the mass sits at the ends
    return mim_rng_uniform_d(rng) < a / (a + b) ? 1.0 : 0.0;
}

// ---------------------------------------------------------------- parameters
static inline int clip_to(int v, int hi) { return v < 0 ? 0 : v > hi ? hi : v; }

void mim_cutmix_box_at(mim_mix_params* p, double lam, int cy, int cx, int H, int W, int correct_lam) {
    CHECK(p != NULL && H > 0 && W > 0 && lam >= 0.0 && lam <= 1.0);
    double ratio = sqrt(1.0 - lam);
    int cut_h = (int)(H * ratio), cut_w = (int)(W * ratio);   // Python int(): truncation
    p->cutmix = 1;
    p->yl = clip_to(cy - cut_h / 2, H);
    p->yh = clip_to(cy + cut_h / 2, H);
    p->xl = clip_to(cx - cut_w / 2, W);
    p->xh = clip_to(cx + cut_w / 2, W);
    p->lam = lam;
    if (correct_lam) {
        int area = (p->yh - p->yl) * (p->xh - p->xl);
        p->lam = 1. - area / (double)((long)H * W);
    }
}

void mim_mixup_draw(mim_mix_params* p, const mim_mixup* m, mim_rng* rng, int H, int W) {
    CHECK(p != NULL && m != NULL && rng != NULL);
    memset(p, 0, sizeof *p);
    p->lam = 1.0;
    int use_cutmix = 0;
    if (mim_rng_uniform_d(rng) < m->prob) {
        double alpha = 0.0;
        if (m->mixup_alpha > 0 && m->cutmix_alpha > 0) {
            use_cutmix = mim_rng_uniform_d(rng) < m->switch_prob;
            alpha = use_cutmix ? m->cutmix_alpha : m->mixup_alpha;
        } else if (m->mixup_alpha > 0) {
            alpha = m->mixup_alpha;
        } else if (m->cutmix_alpha > 0) {
            use_cutmix = 1;
            alpha = m->cutmix_alpha;
        }
        if (alpha > 0) p->lam = mim_beta_sample(rng, alpha, alpha);
    }
    if (p->lam == 1.0) return;   // timm: no mixing at all
    if (use_cutmix) {
        int cy = (int)mim_rng_below(rng, (uint64_t)H), cx = (int)mim_rng_below(rng, (uint64_t)W);
        mim_cutmix_box_at(p, p->lam, cy, cx, H, W, m->correct_lam);
    }
}

// ---------------------------------------------------------------- application
void mim_mixup_apply(float* x, const mim_mix_params* p, int B, int C, int H, int W) {
    CHECK(x != NULL && p != NULL && B > 0 && C > 0 && H > 0 && W > 0);
    size_t n = (size_t)C * H * W;
    if (p->cutmix) {
        CHECK(0 <= p->yl && p->yl <= p->yh && p->yh <= H && 0 <= p->xl && p->xl <= p->xh && p->xh <= W);
        // swap the boxes of b and B-1-b (the middle sample of an odd batch keeps its own)
        for (int b = 0; b < B / 2; b++) {
            float* xa = x + (size_t)b * n;
            float* xb = x + (size_t)(B - 1 - b) * n;
            for (int c = 0; c < C; c++)
                for (int y = p->yl; y < p->yh; y++) {
                    size_t o = ((size_t)c * H + y) * W;
                    for (int i = p->xl; i < p->xh; i++) {
                        float t = xa[o + i];
                        xa[o + i] = xb[o + i];
                        xb[o + i] = t;
                    }
                }
        }
        return;
    }
    if (p->lam == 1.0) return;
    // PyTorch rounds the Python scalars to fp32 and rounds each product
    // before the sum (no FMA: -std=c11 keeps a*b + c*d as two products).
    const float a = (float)p->lam, bw = (float)(1.0 - p->lam);
    for (int b = 0; b < (B + 1) / 2; b++) {
        float* xa = x + (size_t)b * n;
        float* xb = x + (size_t)(B - 1 - b) * n;
        for (size_t i = 0; i < n; i++) {
            float u = xa[i], v = xb[i];
            float ua = u * a, vb = v * bw, va = v * a, ub = u * bw;
            xa[i] = ua + vb;
            xb[i] = va + ub;   // same element when xa == xb: u * a + u * bw
        }
    }
}

void mim_mixup_apply_pair(float* x, const float* xp, const mim_mix_params* p, int B, int C, int H, int W) {
    if (xp == x) { mim_mixup_apply(x, p, B, C, H, W); return; }
    CHECK(x != NULL && xp != NULL && p != NULL && B > 0 && C > 0 && H > 0 && W > 0);
    size_t n = (size_t)C * H * W;
    if (p->cutmix) {
        CHECK(0 <= p->yl && p->yl <= p->yh && p->yh <= H && 0 <= p->xl && p->xl <= p->xh && p->xh <= W);
        for (int b = 0; b < B; b++) {
            float* xa = x + (size_t)b * n;
            const float* xb = xp + (size_t)(B - 1 - b) * n;
            for (int c = 0; c < C; c++)
                for (int y = p->yl; y < p->yh; y++) {
                    size_t o = ((size_t)c * H + y) * W;
                    memcpy(xa + o + p->xl, xb + o + p->xl, sizeof(float) * (size_t)(p->xh - p->xl));
                }
        }
        return;
    }
    if (p->lam == 1.0) return;
    const float a = (float)p->lam, bw = (float)(1.0 - p->lam);   // as mim_mixup_apply, product by product
    for (int b = 0; b < B; b++) {
        float* xa = x + (size_t)b * n;
        const float* xb = xp + (size_t)(B - 1 - b) * n;
        for (size_t i = 0; i < n; i++) {
            float ua = xa[i] * a, vb = xb[i] * bw;
            xa[i] = ua + vb;
        }
    }
}

void mim_mixup_targets(float* targets, const int32_t* labels, double lam, double smoothing, int B, int K) {
    mim_mixup_targets_pair(targets, labels, labels, lam, smoothing, B, K);
}

void mim_mixup_targets_pair(float* targets, const int32_t* labels, const int32_t* yp, double lam, double smoothing,
                            int B, int K) {
    CHECK(targets != NULL && labels != NULL && yp != NULL && B > 0 && K > 0);
    double off_d = smoothing / K;
    const float off = (float)off_d, on = (float)(1. - smoothing + off_d);
    const float a = (float)lam, bw = (float)(1. - lam);
    for (int b = 0; b < B; b++) {
        int y1 = labels[b], y2 = yp[B - 1 - b];
        CHECK(y1 >= 0 && y1 < K && y2 >= 0 && y2 < K);
        float* t = targets + (size_t)b * K;
        for (int k = 0; k < K; k++) {
            float p1 = (k == y1 ? on : off) * a, p2 = (k == y2 ? on : off) * bw;
            t[k] = p1 + p2;
        }
    }
}

double mim_mixup_batch(const mim_mixup* m, mim_rng* rng, float* x, float* targets, const int32_t* labels,
                       int B, int C, int H, int W) {
    mim_mix_params p;
    mim_mixup_draw(&p, m, rng, H, W);
    mim_mixup_apply(x, &p, B, C, H, W);
    mim_mixup_targets(targets, labels, p.lam, m->label_smoothing, B, m->num_classes);
    return p.lam;
}

// ---------------------------------------------------------------- soft-target cross-entropy
float mim_soft_ce_forward(const float* logits, const float* targets, float* probs, int B, int K) {
    CHECK(logits != NULL && targets != NULL && B > 0 && K > 0);
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        const float* x = logits + (size_t)b * K;
        const float* t = targets + (size_t)b * K;
        double mx = x[0];
        for (int k = 1; k < K; k++) if (x[k] > mx) mx = x[k];
        double s = 0.0;
        for (int k = 0; k < K; k++) s += exp((double)x[k] - mx);
        double lse = mx + log(s);
        double row = 0.0;
        for (int k = 0; k < K; k++) {
            double logp = (double)x[k] - lse;
            row -= (double)t[k] * logp;
            if (probs) probs[(size_t)b * K + k] = (float)exp(logp);
        }
        total += row;
    }
    return (float)(total / B);
}

void mim_soft_ce_backward(float* dlogits, const float* probs, const float* targets, float dloss, int B, int K) {
    CHECK(dlogits != NULL && probs != NULL && targets != NULL && B > 0 && K > 0);
    double scale = (double)dloss / B;
    for (int b = 0; b < B; b++) {
        const float* p = probs + (size_t)b * K;
        const float* t = targets + (size_t)b * K;
        float* d = dlogits + (size_t)b * K;
        double st = 0.0;
        for (int k = 0; k < K; k++) st += t[k];
        for (int k = 0; k < K; k++) d[k] += (float)(scale * ((double)p[k] * st - (double)t[k]));
    }
}
