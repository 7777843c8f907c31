// stats.c: mean, sd, quantiles and percentile-bootstrap intervals (see stats.h).
#include "study/stats.h"
#include "core/rng.h"
#include <math.h>
#include <stdlib.h>

void mim_stats_mean_sd(const double* x, int n, double* mean, double* sd) {
    if (n <= 0) { *mean = NAN; *sd = NAN; return; }
    double m = 0;
    for (int i = 0; i < n; i++) m += x[i];
    m /= n;
    double ss = 0;   // two-pass: no cancellation for values with a large common part
    for (int i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *sd = n > 1 ? sqrt(ss / (n - 1)) : 0;
}

double mim_stats_quantile(const double* sorted, int n, double p) {
    if (n <= 0) return NAN;
    double h = (n - 1) * (p < 0 ? 0 : p > 1 ? 1 : p);
    int i = (int)floor(h);
    if (i >= n - 1) return sorted[n - 1];
    return sorted[i] + (h - i) * (sorted[i + 1] - sorted[i]);
}

static int cmp_double(const void* a, const void* b) {
    double x = *(const double*)a, y = *(const double*)b;
    return (x > y) - (x < y);
}

void mim_stats_interval95(double* v, int n, double* lo, double* hi) {
    if (n < 2) { *lo = *hi = NAN; return; }
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    *lo = mim_stats_quantile(v, n, 0.025);
    *hi = mim_stats_quantile(v, n, 0.975);
}

mim_est mim_stats_boot_lincomb(const mim_stats_group* g, int ng, int nboot, uint64_t seed) {
    mim_est e = {NAN, NAN, NAN, NAN, NAN, 0};
    if (ng <= 0) return e;
    int nmin = g[0].n, with_ci = 1;
    double est = 0;
    for (int k = 0; k < ng; k++) {
        if (g[k].n <= 0) return e;
        double m, sd;
        mim_stats_mean_sd(g[k].x, g[k].n, &m, &sd);
        est += g[k].coef * m;
        if (g[k].n < nmin) nmin = g[k].n;
        with_ci &= g[k].n > 1;
    }
    e.mean = est;
    e.n = nmin;
    if (ng == 1) {   // a plain (scaled) mean: the values' sd is meaningful
        double m, sd;
        mim_stats_mean_sd(g[0].x, g[0].n, &m, &sd);
        e.sd = fabs(g[0].coef) * sd;
    }
    if (!with_ci) return e;
    if (nboot <= 0) nboot = MIM_STATS_NBOOT;
    double* b = malloc((size_t)nboot * sizeof *b);
    if (!b) return e;   // no interval rather than a wrong one
    mim_rng r;
    mim_rng_seed(&r, seed ? seed : MIM_STATS_SEED);
    double s1 = 0, s2 = 0;
    for (int t = 0; t < nboot; t++) {
        double v = 0;
        for (int k = 0; k < ng; k++) {
            double sum = 0;
            for (int i = 0; i < g[k].n; i++) sum += g[k].x[mim_rng_below(&r, (uint64_t)g[k].n)];
            v += g[k].coef * sum / g[k].n;
        }
        b[t] = v;
        s1 += v; s2 += v * v;
    }
    double bm = s1 / nboot;
    e.se = sqrt(fmax(0, (s2 - nboot * bm * bm) / (nboot - 1)));
    mim_stats_interval95(b, nboot, &e.lo, &e.hi);
    free(b);
    return e;
}

mim_est mim_stats_boot_mean(const double* x, int n, int nboot, uint64_t seed) {
    mim_stats_group g = {x, n, 1.0};
    return mim_stats_boot_lincomb(&g, 1, nboot, seed);
}
