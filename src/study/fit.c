// fit.c: power laws of data-scaling curves (see fit.h): the Huber fit in
// log space (Chinchilla's approach 3) with GSL's multimin, its bootstrap,
// and the older closed-form fit by a profile over the floor.
#include "study/fit.h"
#include "study/stats.h"
#include "core/check.h"
#include "core/rng.h"
#include <gsl/gsl_errno.h>
#include <gsl/gsl_multimin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------ Huber fit
// Points in log space: x = log D, y = log err. Parameters p = (a, alpha, e),
// A = exp(a), E = exp(e).
typedef struct { const double* x; const double* y; int n; double delta; } plf_data;

static double huber(double r, double d) { double a = fabs(r); return a <= d ? 0.5 * r * r : d * (a - 0.5 * d); }
static double huber_grad(double r, double d) { return r > d ? d : r < -d ? -d : r; }

// sum_i Huber(LSE(a - alpha x_i, e) - y_i) / delta (the 1/delta keeps the
// minimiser's tolerances meaningful at delta 1e-3; the argmin is the same),
// and its gradient into g (may be NULL).
static double plf_loss(const double* p, const plf_data* d, double* g) {
    double a = p[0], al = p[1], e = p[2], L = 0, ga = 0, gal = 0, ge = 0;
    for (int i = 0; i < d->n; i++) {
        double u = a - al * d->x[i], m = fmax(u, e);
        double pred = m + log(exp(u - m) + exp(e - m)), r = pred - d->y[i];
        L += huber(r, d->delta);
        if (g) {   // d pred / d (a, alpha, e) = (w1, -x w1, w2), w = softmax(u, e)
            double h = huber_grad(r, d->delta), w1 = exp(u - pred), w2 = exp(e - pred);
            ga += h * w1; gal -= h * w1 * d->x[i]; ge += h * w2;
        }
    }
    if (g) { g[0] = ga / d->delta; g[1] = gal / d->delta; g[2] = ge / d->delta; }
    return L / d->delta;
}

static double gsl_f(const gsl_vector* v, void* d) { return plf_loss(v->data, d, NULL); }
static void gsl_df(const gsl_vector* v, void* d, gsl_vector* g) { plf_loss(v->data, d, g->data); }
static void gsl_fdf(const gsl_vector* v, void* d, double* f, gsl_vector* g) { *f = plf_loss(v->data, d, g->data); }

static int finite3(const double* p) { return isfinite(p[0]) && isfinite(p[1]) && isfinite(p[2]); }

// Minimises from p (updated in place): BFGS with the analytic gradient,
// then a Nelder-Mead polish from its end point (the Huber loss at a small
// delta is nearly L1, where a gradient method can stall on a kink). The
// loss (scaled, as plf_loss) at the returned p; INFINITY when both failed.
static double plf_minimise(const plf_data* d, double p[3]) {
    double best = INFINITY, bp[3];
    gsl_vector* x = gsl_vector_alloc(3);
    gsl_vector* step = gsl_vector_alloc(3);
    gsl_multimin_fdfminimizer* M = gsl_multimin_fdfminimizer_alloc(gsl_multimin_fdfminimizer_vector_bfgs2, 3);
    gsl_multimin_fminimizer* N = gsl_multimin_fminimizer_alloc(gsl_multimin_fminimizer_nmsimplex2, 3);
    if (!x || !step || !M || !N) goto out;
    memcpy(x->data, p, 3 * sizeof *p);
    gsl_multimin_function_fdf F = {gsl_f, gsl_df, gsl_fdf, 3, (void*)d};
    if (gsl_multimin_fdfminimizer_set(M, &F, x, 0.05, 0.1) == GSL_SUCCESS) {
        for (int it = 0; it < 1000; it++) {
            if (gsl_multimin_fdfminimizer_iterate(M)) break;   // GSL_ENOPROG: no further progress
            if (gsl_multimin_test_gradient(M->gradient, 1e-8) == GSL_SUCCESS) break;
        }
        double f = gsl_multimin_fdfminimizer_minimum(M);
        if (isfinite(f) && finite3(M->x->data)) { best = f; memcpy(bp, M->x->data, sizeof bp); memcpy(x->data, bp, sizeof bp); }
    }
    gsl_multimin_function G = {gsl_f, 3, (void*)d};
    gsl_vector_set_all(step, 0.05);
    if (gsl_multimin_fminimizer_set(N, &G, x, step) == GSL_SUCCESS) {
        for (int it = 0; it < 4000; it++) {
            if (gsl_multimin_fminimizer_iterate(N)) break;
            if (gsl_multimin_test_size(gsl_multimin_fminimizer_size(N), 1e-9) == GSL_SUCCESS) break;
        }
        double f = gsl_multimin_fminimizer_minimum(N);
        if (isfinite(f) && f < best && finite3(N->x->data)) { best = f; memcpy(bp, N->x->data, sizeof bp); }
    }
    if (isfinite(best)) memcpy(p, bp, sizeof bp);
out:
    gsl_multimin_fminimizer_free(N);
    gsl_multimin_fdfminimizer_free(M);
    gsl_vector_free(step);
    gsl_vector_free(x);
    return best;
}

double mim_plfit_eval(const mim_plfit* f, double D) { return f->E + f->A * pow(D, -f->alpha); }

// (D, err) pairs by D, then err: a total order, so the bootstrap's draws
// do not depend on the sort's handling of ties.
static int cmp_pair(const void* a, const void* b) {
    const double *x = a, *y = b;
    return x[0] != y[0] ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

int mim_plfit_huber(const double* D, const double* err, int n, const mim_plfit_opts* opts, mim_plfit* out) {
    mim_plfit_opts o = opts ? *opts : (mim_plfit_opts){0};
    if (o.delta <= 0) o.delta = 1e-3;
    if (o.nboot == 0) o.nboot = MIM_PLFIT_NBOOT;
    if (o.min_sizes <= 0) o.min_sizes = 4;
    memset(out, 0, sizeof *out);
    out->A_lo = out->A_hi = out->alpha_lo = out->alpha_hi = out->E_lo = out->E_hi = NAN;
    int rc = 0;
    // Points sorted by size (the bootstrap redraws within a size).
    double* buf = malloc((size_t)(n > 0 ? n : 1) * 6 * sizeof *buf);
    int* grp = malloc((size_t)(n > 0 ? n : 1) * 2 * sizeof *grp);
    if (!buf || !grp) { rc = mim_err(MIM_ENOMEM, "power-law fit: out of memory for %d points", n); goto done; }
    double *x = buf, *y = buf + n, *bx = buf + 2 * n, *by = buf + 3 * n, *pair = buf + 4 * n;   // pair: (D, err) for sorting
    int m = 0;
    for (int i = 0; i < n; i++)
        if (D[i] > 0 && err[i] > 0 && isfinite(D[i]) && isfinite(err[i])) { pair[2 * m] = D[i]; pair[2 * m + 1] = err[i]; m++; }
    qsort(pair, (size_t)m, 2 * sizeof *pair, cmp_pair);
    int ns = 0, *start = grp, *cnt = grp + n;   // size group k: points start[k] .. start[k] + cnt[k]
    for (int i = 0; i < m; i++) {
        x[i] = log(pair[2 * i]); y[i] = log(pair[2 * i + 1]);
        if (!i || pair[2 * i] != pair[2 * (i - 1)]) { start[ns] = i; cnt[ns] = 0; ns++; }
        cnt[ns - 1]++;
    }
    out->n = m; out->nsizes = ns;
    if (ns < o.min_sizes) {
        rc = mim_err(MIM_EARG, "power-law fit: %d distinct size%s (need at least %d)", ns, ns == 1 ? "" : "s", o.min_sizes);
        goto done;
    }
    // Starting grid: a few exponents and floors, A through the smallest size's mean error.
    double emin = INFINITY, e0 = 0;
    for (int i = 0; i < m; i++) emin = fmin(emin, exp(y[i]));
    for (int i = 0; i < cnt[0]; i++) e0 += exp(y[i]) / cnt[0];
    static const double alphas[] = {0.1, 0.3, 0.6, 1.0}, efrac[] = {0.01, 0.5, 0.9};
    plf_data d = {x, y, m, o.delta};
    double best = INFINITY, bp[3] = {0, 0, 0};
    gsl_error_handler_t* old = gsl_set_error_handler_off();   // GSL's default handler aborts
    for (size_t i = 0; i < sizeof alphas / sizeof *alphas; i++)
        for (size_t k = 0; k < sizeof efrac / sizeof *efrac; k++) {
            double E0 = efrac[k] * emin, A0 = fmax(e0 - E0, 0.01 * e0) * exp(alphas[i] * x[0]);
            double p[3] = {log(A0), alphas[i], log(E0)};
            double f = plf_minimise(&d, p);
            if (f < best) { best = f; memcpy(bp, p, sizeof bp); }
        }
    if (!isfinite(best)) {
        gsl_set_error_handler(old);
        rc = mim_err(MIM_EARG, "power-law fit: the minimiser found no finite optimum");
        goto done;
    }
    out->A = exp(bp[0]); out->alpha = bp[1]; out->E = exp(bp[2]);
    out->loss = best * o.delta;
    double sse = 0;
    for (int i = 0; i < m; i++) { double r = mim_plfit_eval(out, exp(x[i])) - exp(y[i]); sse += r * r; }
    out->rmse = sqrt(sse / m);
    // Bootstrap over runs, within sizes.
    int varies = 0;
    for (int k = 0; k < ns; k++) varies |= cnt[k] > 1;
    if (o.nboot > 0 && varies) {
        double* pb = malloc((size_t)o.nboot * 3 * sizeof *pb);
        if (!pb) { gsl_set_error_handler(old); rc = mim_err(MIM_ENOMEM, "power-law fit: out of memory for the bootstrap"); goto done; }
        double *pa = pb, *pal = pb + o.nboot, *pe = pb + 2 * o.nboot;
        mim_rng r;
        mim_rng_seed(&r, o.seed ? o.seed : MIM_STATS_SEED);
        plf_data bd = {bx, by, m, o.delta};
        int ok = 0;
        for (int t = 0; t < o.nboot; t++) {
            for (int k = 0, j = 0; k < ns; k++)
                for (int q = 0; q < cnt[k]; q++, j++) {
                    int src = start[k] + (int)mim_rng_below(&r, (uint64_t)cnt[k]);
                    bx[j] = x[src]; by[j] = y[src];
                }
            double p[3];
            memcpy(p, bp, sizeof p);
            if (isfinite(plf_minimise(&bd, p))) { pa[ok] = exp(p[0]); pal[ok] = p[1]; pe[ok] = exp(p[2]); ok++; }
        }
        out->nboot = o.nboot; out->nboot_ok = ok;
        mim_stats_interval95(pa, ok, &out->A_lo, &out->A_hi);
        mim_stats_interval95(pal, ok, &out->alpha_lo, &out->alpha_hi);
        mim_stats_interval95(pe, ok, &out->E_lo, &out->E_hi);
        free(pb);
    }
    gsl_set_error_handler(old);
done:
    free(buf);
    free(grp);
    return rc;
}

// ------------------------------------------------------------ closed form

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
