// hog.c: MaskFeat HOG targets (see hog.h). Computed in double per pixel
// from the fp32 images, so bin decisions do not hinge on fp32 rounding.
#include "model/hog.h"
#include "core/check.h"
#include <math.h>
#include <string.h>

#define HOG_MAX_BINS 64
#define HOG_MAX_CELL 1024
#define HOG_NORM_EPS 1e-12   // F.normalize

int mim_hog_dim(const mim_hog_params* hp, int C, int p) {
    int u = p / hp->cell;
    return C * hp->nbins * u * u;
}

int mim_hog_check(const mim_hog_params* hp, int C, int H, int W, int p) {
    if (hp->cell < 1 || hp->cell > HOG_MAX_CELL)
        return mim_err(MIM_EARG, "HOG cell %d must be in 1..%d", hp->cell, HOG_MAX_CELL);
    if (p < 1 || p % hp->cell)
        return mim_err(MIM_EARG, "HOG: patch %d is not divisible by the cell size %d (--hog-cell: a divisor of the patch, "
                       "e.g. %d)", p, hp->cell, p % 8 == 0 ? 8 : p);
    if (H < 2 || W < 2 || H % p || W % p)
        return mim_err(MIM_EARG, "HOG: image %dx%d must be at least 2x2 and divisible by patch %d", H, W, p);
    if (hp->nbins < 1 || hp->nbins > HOG_MAX_BINS)
        return mim_err(MIM_EARG, "HOG: %d orientation bins; 1..%d supported", hp->nbins, HOG_MAX_BINS);
    if (hp->window && (hp->window < 2 || H % hp->window || W % hp->window))
        return mim_err(MIM_EARG, "HOG: Gaussian window %d must be >= 2 and divide the image %dx%d", hp->window, H, W);
    if (C < 1) return mim_err(MIM_EARG, "HOG: %d channels", C);
    return 0;
}

// reflect padding by one: -1 -> 1, n -> n - 2
static inline int refl(int i, int n) { return i < 0 ? -i : (i >= n ? 2 * n - 2 - i : i); }

// g[i], i < win: the 1-D Gaussian exp(-((i - (win-1)/2) / std)^2 / 2),
// std = win / 2 (integer), divided by its sum, so that g[y] g[x] is
// mmpretrain's 2-D kernel normalised to sum 1.
static double gauss_sum(int win) {
    double s = 0.0, mid = 0.5 * (win - 1), sd = (double)(win / 2);
    for (int i = 0; i < win; i++) { double n = (i - mid) / sd; s += exp(-0.5 * n * n); }
    return s;
}
static inline double gauss_at(int i, int win, double sum) {
    double n = (i - 0.5 * (win - 1)) / (double)(win / 2);
    return exp(-0.5 * n * n) / sum;
}

void mim_hog_forward(float* out, const float* imgs, int B, int C, int H, int W, int p, const mim_hog_params* hp) {
    CHECK(mim_hog_check(hp, C, H, W, p) == 0);
    const int cell = hp->cell, nb = hp->nbins, win = hp->window;
    const int u = p / cell, gw = W / p, hc = H / cell, wc = W / cell;
    const int L = (H / p) * gw, Pt = C * nb * u * u;
    const double gsum = win ? gauss_sum(win) : 1.0;
    #pragma omp parallel for collapse(2) if ((size_t)B * C * H * W >= 65536)
    for (int bc = 0; bc < B * C; bc++)
        for (int cy = 0; cy < hc; cy++) {
            int b = bc / C, c = bc % C;
            const float* img = imgs + (size_t)bc * H * W;
            double wy[HOG_MAX_CELL], wx[HOG_MAX_CELL];
            for (int i = 0; i < cell; i++) wy[i] = win ? gauss_at((cy * cell + i) % win, win, gsum) : 1.0;
            for (int cx = 0; cx < wc; cx++) {
                double hist[HOG_MAX_BINS];
                memset(hist, 0, sizeof(double) * nb);
                for (int j = 0; j < cell; j++) wx[j] = win ? gauss_at((cx * cell + j) % win, win, gsum) : 1.0;
                for (int i = 0; i < cell; i++) {
                    int y = cy * cell + i, y0 = refl(y - 1, H), y2 = refl(y + 1, H);
                    const float *r0 = img + (size_t)y0 * W, *r1 = img + (size_t)y * W, *r2 = img + (size_t)y2 * W;
                    for (int j = 0; j < cell; j++) {
                        int x = cx * cell + j, x0 = refl(x - 1, W), x2 = refl(x + 1, W);
                        double gx = ((double)r0[x0] - r0[x2]) + 2.0 * ((double)r1[x0] - r1[x2]) + ((double)r2[x0] - r2[x2]);
                        double gy = ((double)r0[x0] + 2.0 * r0[x] + r0[x2]) - ((double)r2[x0] + 2.0 * r2[x] + r2[x2]);
                        double mag = sqrt(gx * gx + gy * gy) * wy[i] * wx[j];
                        int k = (int)floor(atan2(gx, gy) / M_PI * nb) % nb;   // in (-nb, nb]
                        if (k < 0) k += nb;
                        hist[k] += mag;
                    }
                }
                double n2 = 0.0;
                for (int k = 0; k < nb; k++) n2 += hist[k] * hist[k];
                double inv = 1.0 / fmax(sqrt(n2), HOG_NORM_EPS);
                int l = (cy / u) * gw + cx / u, i = cy % u, j = cx % u;
                float* o = out + ((size_t)b * L + l) * Pt + (size_t)c * nb * u * u + (size_t)i * u + j;
                for (int k = 0; k < nb; k++) o[(size_t)k * u * u] = (float)(hist[k] * inv);
            }
        }
}
