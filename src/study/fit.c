// fit.c: err(D) = a * D^-b + c by a profile over c (see fit.h).
#include "study/fit.h"
#include "core/check.h"
#include <math.h>

double mim_powerlaw_eval(const mim_powerlaw* p, double D) { return p->a * pow(D, -p->b) + p->c; }

// For fixed c: linear least squares of log(err - c) on log D -> (a, b), and
// the sum of squared residuals in the original space. Returns INFINITY when
// some err <= c.
static double sse_at(const double* D, const double* e, int n, double c, double* a, double* b) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        if (!(e[i] - c > 0)) return INFINITY;
        double x = log(D[i]), y = log(e[i] - c);
        sx += x; sy += y; sxx += x * x; sxy += x * y;
    }
    double den = n * sxx - sx * sx;
    if (!(fabs(den) > 1e-300)) return INFINITY;
    double slope = (n * sxy - sx * sy) / den, icpt = (sy - slope * sx) / n;
    *a = exp(icpt); *b = -slope;
    double sse = 0;
    for (int i = 0; i < n; i++) {
        double r = *a * pow(D[i], -*b) + c - e[i];
        sse += r * r;
    }
    return sse;
}

int mim_powerlaw_fit(const double* D, const double* err, int n, mim_powerlaw* out) {
    double d[256], e[256];
    int m = 0;
    for (int i = 0; i < n && m < 256; i++)
        if (D[i] > 0 && err[i] > 0 && isfinite(D[i]) && isfinite(err[i])) { d[m] = D[i]; e[m] = err[i]; m++; }
    if (m < 2) return mim_err(MIM_EARG, "power-law fit: %d usable points (need D > 0, err > 0, at least 2)", m);
    double emin = e[0], a = 0, b = 0;
    for (int i = 1; i < m; i++) emin = fmin(emin, e[i]);
    double best_c = 0, best = sse_at(d, e, m, 0, &a, &b);
    if (!isfinite(best)) return mim_err(MIM_EARG, "power-law fit: all data sizes are equal");
    if (m >= 3) {
        // Grid on [0, emin), then golden section around the best cell.
        const int G = 400;
        int gi = 0;
        for (int k = 1; k < G; k++) {
            double c = emin * k / G, s = sse_at(d, e, m, c, &a, &b);
            if (s < best) { best = s; best_c = c; gi = k; }
        }
        double lo = emin * (gi > 0 ? gi - 1 : 0) / G, hi = emin * (gi + 1 < G ? gi + 1 : G - 1e-9) / G;
        const double phi = 0.5 * (sqrt(5.0) - 1);
        double x1 = hi - phi * (hi - lo), x2 = lo + phi * (hi - lo);
        double f1 = sse_at(d, e, m, x1, &a, &b), f2 = sse_at(d, e, m, x2, &a, &b);
        for (int it = 0; it < 200 && hi - lo > 1e-15 * (1 + emin); it++) {
            if (f1 < f2) { hi = x2; x2 = x1; f2 = f1; x1 = hi - phi * (hi - lo); f1 = sse_at(d, e, m, x1, &a, &b); }
            else { lo = x1; x1 = x2; f1 = f2; x2 = lo + phi * (hi - lo); f2 = sse_at(d, e, m, x2, &a, &b); }
        }
        double cm = 0.5 * (lo + hi), sm = sse_at(d, e, m, cm, &a, &b);
        if (sm < best) { best = sm; best_c = cm; }
    }
    best = sse_at(d, e, m, best_c, &a, &b);
    out->a = a; out->b = b; out->c = best_c; out->n = m;
    out->rmse = sqrt(best / m);
    return 0;
}
