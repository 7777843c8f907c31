// fit.h: power laws of data-scaling curves.
//
// The report's fit, mim_plfit_huber: err(D) = E + A * D^-alpha (E the
// irreducible error), fitted as in Chinchilla's third approach (Hoffmann
// et al. 2022, appendix D.2): with a = log A, e = log E the prediction is
//     log err_hat(D) = LSE(a - alpha log D, e)        (LSE = log-sum-exp)
// and (a, alpha, e) minimise sum_i Huber_delta(log err_hat(D_i) - log err_i)
// over every run (each seed its own point, not the means), delta = 1e-3,
// by BFGS (GSL multimin, analytic gradient) then a Nelder-Mead polish, from
// a small grid of starting points; the best end point wins. The 95%
// intervals of A, alpha and E are percentile-bootstrap intervals over runs:
// each resample redraws the runs of every size (with replacement, within
// the size, so every resample keeps all sizes) and refits from the full
// fit's optimum. Fewer than 4 distinct sizes are refused (three parameters
// need more than three sizes to say anything); with one run per size the
// resamples are the data itself, so there is no interval.
//
// The older closed-form least-squares fit, mim_powerlaw_fit (err = a D^-b +
// c, a scan over c), is kept for tests/test_study.c; the report no longer
// uses it.
#pragma once
#include <stdint.h>

typedef struct {
    double A, alpha, E;            // err = E + A * D^-alpha
    double A_lo, A_hi, alpha_lo, alpha_hi, E_lo, E_hi;   // 95% bootstrap intervals; NaN without one
    double loss;                   // the Huber loss at the optimum (sum over points)
    double rmse;                   // sqrt(mean (err_hat - err)^2), units of err
    int n, nsizes;                 // points (runs) and distinct sizes used
    int nboot, nboot_ok;           // resamples drawn, and refitted (converged, finite)
} mim_plfit;

#define MIM_PLFIT_NBOOT 1000   // bootstrap resamples of a fit unless told

typedef struct {
    double delta;      // Huber delta on log residuals (0: 1e-3)
    int nboot;         // bootstrap resamples (0: MIM_PLFIT_NBOOT; < 0: no bootstrap)
    uint64_t seed;     // bootstrap RNG seed (0: MIM_STATS_SEED)
    int min_sizes;     // refuse fewer distinct sizes (0: 4)
} mim_plfit_opts;

// Fits D[0..n) (> 0) and err[0..n) (in (0, 1], 1 - top-1) as above; points
// with a non-positive or non-finite D or err are dropped. opts may be NULL.
// 0, or MIM_EARG when fewer than min_sizes distinct sizes remain (the
// message says how many), MIM_ENOMEM.
int mim_plfit_huber(const double* D, const double* err, int n, const mim_plfit_opts* opts, mim_plfit* out);
// E + A * D^-alpha
double mim_plfit_eval(const mim_plfit* f, double D);

// ------------------------------------------------------------ closed form
// Least squares in the original space, err = a * D^-b + c. For a fixed
// floor c the model is linear in log space, log(err - c) = log a - b log D,
// so c is scanned on a grid in [0, min err) with (a, b) from that linear fit
// at each value, the best c is refined by golden-section search, and (a, b)
// are refitted. The residual reported (rmse) is in the units of err.
typedef struct {
    double a, b, c;   // err = a * D^-b + c
    double rmse;      // sqrt(mean (fit - err)^2)
    int n;            // points used
} mim_powerlaw;

// D (> 0) and err (> 0), n points. n >= 3 fits all three parameters; n == 2
// fixes c = 0 (a pure power law through both points). 0, or MIM_EARG when
// there are fewer than 2 usable points or all D are equal.
int mim_powerlaw_fit(const double* D, const double* err, int n, mim_powerlaw* out);
// a * D^-b + c
double mim_powerlaw_eval(const mim_powerlaw* p, double D);
