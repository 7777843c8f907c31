// stats.h: the numerics behind the study report's tables and findings:
// mean, standard deviation and 95% percentile-bootstrap intervals. The
// bootstrap uses a fixed-seed RNG (core/rng.h), so a report regenerated
// from the same results.jsonl shows the same intervals, bit for bit.
//
//   double acc[3] = {0.281, 0.284, 0.279};          // one value per seed
//   mim_est e = mim_stats_boot_mean(acc, 3, 0, 0);  // defaults: 2000 resamples, MIM_STATS_SEED
//   // e.mean, e.sd (of the seeds), e.lo / e.hi (interval of the mean)
//
// A difference of means from independent groups (MIM vs scratch, one
// target vs another) is a linear combination, mim_stats_boot_lincomb: each
// resample redraws every group from its own values. Not here: paired or
// BCa intervals, and anything that needs more than the percentile method.
#pragma once
#include <stdint.h>

#define MIM_STATS_NBOOT 2000                  // resamples when 0 is passed
#define MIM_STATS_SEED 0x6d696d7363616c65ULL  // "mimscale": the bootstrap's default seed

typedef struct {
    double mean;    // the estimate: the mean (or the linear combination of group means)
    double sd;      // sample standard deviation of the values (n - 1; 0 for n = 1); NaN for a combination
    double se;      // bootstrap standard error of the estimate; NaN without an interval
    double lo, hi;  // 95% percentile-bootstrap interval of the estimate; NaN when some group has < 2 values
    int n;          // values (a combination: the smallest group's count); 0: no estimate (mean NaN)
} mim_est;

// 1 when e has an interval (lo and hi are finite).
static inline int mim_est_has_ci(mim_est e) { return e.lo == e.lo && e.hi == e.hi; }

// Mean and sample standard deviation (n - 1 denominator, 0 when n == 1) of
// x[0..n). NaN, NaN when n == 0.
void mim_stats_mean_sd(const double* x, int n, double* mean, double* sd);

// Quantile p in [0, 1] of sorted[0..n) (ascending), linear interpolation
// between order statistics (R's type 7, numpy's default). NaN when n == 0.
double mim_stats_quantile(const double* sorted, int n, double p);

// Mean of x[0..n) with its 95% interval: nboot resamples of n values drawn
// with replacement (0: MIM_STATS_NBOOT), the 2.5 and 97.5 percentiles of
// their means; seed 0: MIM_STATS_SEED. n == 1: no interval (lo, hi NaN).
mim_est mim_stats_boot_mean(const double* x, int n, int nboot, uint64_t seed);

// sum_g coef_g * mean(x_g) over ng independent groups, with its 95%
// interval: each resample redraws every group (its n values, with
// replacement). No interval when some group has fewer than 2 values; no
// estimate (n 0, mean NaN) when some group is empty.
typedef struct { const double* x; int n; double coef; } mim_stats_group;
mim_est mim_stats_boot_lincomb(const mim_stats_group* g, int ng, int nboot, uint64_t seed);

// The 2.5 / 97.5 percentiles of v[0..n) into *lo, *hi (v is sorted in
// place). NaN when n < 2.
void mim_stats_interval95(double* v, int n, double* lo, double* hi);
