// findings.c: the report's computed findings (see findings.h for the rules).
#include "study/findings.h"
#include "study/internal.h"
#include "core/check.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAXV 1024   // sizes per strategy

const char* mim_verdict_name(mim_verdict v) {
    switch (v) {
    case MIM_VERDICT_SHOWN: return "shown";
    case MIM_VERDICT_NOT_SHOWN: return "not shown";
    case MIM_VERDICT_INCONCLUSIVE: return "inconclusive";
    default: return "not tested by this study";
    }
}

const char* mim_finding_title(int id) {
    return id == 1 ? "MIM raises model capacity most when data is small"
         : id == 2 ? "Strong targets raise downstream capacity"
                   : "Sampling strategy barely matters";
}

mim_obs mim_obs_make(mim_run_kind kind, int model, mim_target target, const char* strategy, int64_t size, uint64_t seed) {
    mim_obs o = {.kind = kind, .model = model, .target = target, .size = size, .seed = seed};
    snprintf(o.strategy, sizeof o.strategy, "%s", strategy);
    for (int e = 0; e < MIM_EVAL_COUNT; e++) o.top1[e] = NAN;
    return o;
}

// ------------------------------------------------------------ verdict rules
mim_verdict mim_verdict_positive(mim_est q) {
    if (!mim_est_has_ci(q)) return MIM_VERDICT_INCONCLUSIVE;
    if (q.lo > 0) return MIM_VERDICT_SHOWN;
    if (q.hi <= 0) return MIM_VERDICT_NOT_SHOWN;
    return MIM_VERDICT_INCONCLUSIVE;
}

mim_verdict mim_verdict_small_data(mim_est q, mim_est gap_small) {
    if (!mim_est_has_ci(q) || !mim_est_has_ci(gap_small)) return MIM_VERDICT_INCONCLUSIVE;
    if (q.hi <= 0 || gap_small.hi <= 0) return MIM_VERDICT_NOT_SHOWN;
    if (q.lo > 0 && gap_small.lo > 0) return MIM_VERDICT_SHOWN;
    return MIM_VERDICT_INCONCLUSIVE;
}

mim_verdict mim_verdict_equivalent(const mim_est* d, int n, double margin) {
    int all_inside = n > 0;
    for (int i = 0; i < n; i++) {
        if (!mim_est_has_ci(d[i])) { all_inside = 0; continue; }
        if (d[i].lo >= margin || d[i].hi <= -margin) return MIM_VERDICT_NOT_SHOWN;
        all_inside &= d[i].lo > -margin && d[i].hi < margin;
    }
    return all_inside ? MIM_VERDICT_SHOWN : MIM_VERDICT_INCONCLUSIVE;
}

// "+3.1 [1.0, 5.2]" in points, or "+3.1 (1 seed: no interval)".
static const char* pts(mim_est e, char* buf, size_t cap) {
    if (!e.n) mim_study_pathf(buf, cap, "no estimate");
    else if (mim_est_has_ci(e)) mim_study_pathf(buf, cap, "%+.1f [%+.1f, %+.1f]", 100 * e.mean, 100 * e.lo, 100 * e.hi);
    else mim_study_pathf(buf, cap, "%+.1f (1 seed: no interval)", 100 * e.mean);
    return buf;
}

static void row_init(mim_finding* f, int id, const char* scope) {
    memset(f, 0, sizeof *f);
    f->id = id;
    f->q = (mim_est){NAN, NAN, NAN, NAN, NAN, 0};
    f->verdict = MIM_VERDICT_UNTESTED;
    mim_study_pathf(f->scope, sizeof f->scope, "%s", scope);
}

// Room for ngroups groups of values, in->nobs + 1 each (no group can hold
// more than every run); NULL, with the reason in f, when out of memory.
static double* pool(const mim_findings_in* in, int ngroups, mim_finding* f) {
    double* p = malloc((size_t)ngroups * (size_t)(in->nobs + 1) * sizeof *p);
    if (!p) { f->verdict = MIM_VERDICT_INCONCLUSIVE; mim_study_pathf(f->why, sizeof f->why, "out of memory for %d groups of %d runs", ngroups, in->nobs); }
    return p;
}

// Values of evaluation ev over the runs of (kind, model, target (MIM), strategy, size).
static int collect(const mim_findings_in* in, mim_run_kind kind, int model, mim_target t, const char* strategy, int64_t size,
                   int ev, double* out) {
    int k = 0;
    for (int i = 0; i < in->nobs; i++) {
        const mim_obs* o = &in->obs[i];
        if (o->kind != kind || o->model != model || o->size != size || strcmp(o->strategy, strategy)) continue;
        if (kind == MIM_RUN_MIM && o->target != t) continue;
        double v = o->top1[ev];
        if (isfinite(v)) out[k++] = v;
    }
    return k;
}

// Sorted distinct sizes of a strategy in the study's design.
static int design_sizes(const mim_study* s, const char* strategy, int64_t* out) {
    int n = 0;
    for (int i = 0; i < s->nsubsets; i++) {
        if (strcmp(s->subsets[i].strategy, strategy)) continue;
        int have = 0;
        for (int k = 0; k < n; k++) have |= out[k] == s->subsets[i].size;
        if (!have && n < MAXV) out[n++] = s->subsets[i].size;
    }
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && out[k - 1] > out[k]; k--) { int64_t t = out[k]; out[k] = out[k - 1]; out[k - 1] = t; }
    return n;
}

static int has_target(const mim_study* s, mim_target t) {
    for (int i = 0; i < s->ntargets; i++) if (s->targets[i] == t) return 1;
    return 0;
}

static int nboot(const mim_findings_in* in) { return in->nboot > 0 ? in->nboot : MIM_STATS_NBOOT; }
static double margin(const mim_findings_in* in) { return in->margin > 0 ? in->margin : MIM_FINDING_MARGIN; }

// ------------------------------------------------------------ 1. small data
static const char* f1_untested(const mim_study* s) {
    if (!s->evals[MIM_EVAL_SCRATCH]) return "the study has no from-scratch runs (evaluation \"scratch\")";
    if (!s->evals[MIM_EVAL_FINETUNE]) return "the study has no fine-tune evaluation of the MIM runs (MIM is compared with scratch fine-tune to fine-tune)";
    int64_t z[MAXV];
    if (design_sizes(s, s->subsets[0].strategy, z) < 2) return "the study has one data size";
    return NULL;
}

void mim_finding_small_data(const mim_findings_in* in, int model, mim_target t, mim_finding* f) {
    const mim_study* s = in->s;
    char scope[160], a[96], b[96];
    mim_study_pathf(scope, sizeof scope, "%s, %s", s->models[model].label, mim_target_name(t));
    row_init(f, 1, scope);
    const char* no = f1_untested(s);
    if (no) { mim_study_pathf(f->quantity, sizeof f->quantity, "gap(smallest D) - gap(largest D)"); mim_study_pathf(f->why, sizeof f->why, "%s", no); return; }
    const char* st = s->subsets[0].strategy;
    int64_t z[MAXV];
    int nz = design_sizes(s, st, z), lo = -1, hi = -1, stride = in->nobs + 1;
    double* p = pool(in, 4, f);
    if (!p) return;
    double* buf[4] = {p, p + stride, p + 2 * stride, p + 3 * stride};
    for (int i = 0; i < nz; i++) {
        int nm = collect(in, MIM_RUN_MIM, model, t, st, z[i], MIM_EVAL_FINETUNE, buf[0]);
        int ns = collect(in, MIM_RUN_SCRATCH, model, t, st, z[i], MIM_EVAL_SCRATCH, buf[1]);
        if (nm && ns) { if (lo < 0) lo = i; hi = i; }
    }
    f->verdict = MIM_VERDICT_INCONCLUSIVE;
    if (lo < 0 || lo == hi) {
        mim_study_pathf(f->quantity, sizeof f->quantity, "gap(smallest D) - gap(largest D)");
        mim_study_pathf(f->why, sizeof f->why, "finished runs cover %s size with both MIM fine-tune and scratch: no gap to compare", lo < 0 ? "no" : "one");
        free(p);
        return;
    }
    int n0 = collect(in, MIM_RUN_MIM, model, t, st, z[lo], MIM_EVAL_FINETUNE, buf[0]);
    int n1 = collect(in, MIM_RUN_SCRATCH, model, t, st, z[lo], MIM_EVAL_SCRATCH, buf[1]);
    int n2 = collect(in, MIM_RUN_MIM, model, t, st, z[hi], MIM_EVAL_FINETUNE, buf[2]);
    int n3 = collect(in, MIM_RUN_SCRATCH, model, t, st, z[hi], MIM_EVAL_SCRATCH, buf[3]);
    mim_stats_group g[4] = {{buf[0], n0, 1}, {buf[1], n1, -1}, {buf[2], n2, -1}, {buf[3], n3, 1}};
    mim_stats_group gg[2] = {{buf[2], n2, 1}, {buf[3], n3, -1}};   // gap(largest), for the reading
    mim_est gs = mim_stats_boot_lincomb(g, 2, nboot(in), in->seed), gl = mim_stats_boot_lincomb(gg, 2, nboot(in), in->seed);
    f->q = mim_stats_boot_lincomb(g, 4, nboot(in), in->seed);
    f->verdict = mim_verdict_small_data(f->q, gs);
    mim_study_pathf(f->quantity, sizeof f->quantity, "gap(%lld) - gap(%lld); gap = fine-tune top-1 of MIM - of scratch", (long long)z[lo], (long long)z[hi]);
    pts(gs, a, sizeof a); pts(gl, b, sizeof b);
    char c[96];
    switch (f->verdict) {
    case MIM_VERDICT_SHOWN:
        mim_study_pathf(f->why, sizeof f->why, "interval above 0, and MIM beats scratch at %lld: gap %s; at %lld: %s", (long long)z[lo], a, (long long)z[hi], b);
        break;
    case MIM_VERDICT_NOT_SHOWN:
        if (gs.hi <= 0) mim_study_pathf(f->why, sizeof f->why, "MIM does not beat scratch at the smallest size %lld: gap %s", (long long)z[lo], a);
        else mim_study_pathf(f->why, sizeof f->why, "interval at or below 0: the gap does not shrink with data (%lld: %s; %lld: %s)", (long long)z[lo], a, (long long)z[hi], b);
        break;
    default:
        if (!mim_est_has_ci(f->q) || !mim_est_has_ci(gs))
            mim_study_pathf(f->why, sizeof f->why, "a group of runs has 1 seed: no interval (gap at %lld: %+.1f, at %lld: %+.1f points)", (long long)z[lo],
                 100 * gs.mean, (long long)z[hi], 100 * gl.mean);
        else mim_study_pathf(f->why, sizeof f->why, "an interval contains 0: q %s, gap at %lld: %s", pts(f->q, c, sizeof c), (long long)z[lo], a);
    }
    free(p);
}

// ------------------------------------------------------------ 2. strong targets
static mim_target weak_target(const mim_study* s) { return has_target(s, MIM_TARGET_PIXEL_NORM) ? MIM_TARGET_PIXEL_NORM : MIM_TARGET_PIXEL; }

static const char* f2_untested(const mim_study* s) {
    if (!has_target(s, MIM_TARGET_HOG) && !has_target(s, MIM_TARGET_TEACHER)) return "the study has no strong target (hog or teacher)";
    if (!has_target(s, MIM_TARGET_PIXEL) && !has_target(s, MIM_TARGET_PIXEL_NORM)) return "the study has no pixel or pixel-norm target to compare the strong targets with";
    if (!s->evals[MIM_EVAL_FINETUNE] && !s->evals[MIM_EVAL_LINPROBE]) return "the study has neither a fine-tune nor a linear-probe evaluation";
    return NULL;
}

void mim_finding_strong_target(const mim_findings_in* in, int model, mim_target strong, mim_eval_kind e, mim_finding* f) {
    const mim_study* s = in->s;
    mim_target weak = weak_target(s);
    char scope[160];
    mim_study_pathf(scope, sizeof scope, "%s, %s vs %s, %s", s->models[model].label, mim_target_name(strong), mim_target_name(weak), mim_eval_name(e));
    row_init(f, 2, scope);
    mim_study_pathf(f->quantity, sizeof f->quantity, "%s - %s %s top-1, mean over sizes", mim_target_name(strong), mim_target_name(weak), mim_eval_name(e));
    const char* no = f2_untested(s);
    if (!no && !has_target(s, strong)) no = "the study does not have this target";
    if (!no && !s->evals[e]) no = "the study does not have this evaluation";
    if (no) { mim_study_pathf(f->why, sizeof f->why, "%s", no); return; }
    const char* st = s->subsets[0].strategy;
    int64_t z[MAXV];
    int nz = design_sizes(s, st, z), k = 0, stride = in->nobs + 1;
    double* p = pool(in, 2 * nz, f);
    mim_stats_group* g = malloc((size_t)(2 * nz + 1) * sizeof *g);
    if (!p || !g) { free(p); free(g); f->verdict = MIM_VERDICT_INCONCLUSIVE; mim_study_pathf(f->why, sizeof f->why, "out of memory"); return; }
    char used[192] = "";
    // Sizes where both targets have 2+ seeds carry an interval; when there are
    // any, the mean is over those only (a one-seed size would leave the whole
    // mean without an interval), and the quantity names them.
    int seeded = 0;
    for (int i = 0; i < nz; i++)
        seeded |= collect(in, MIM_RUN_MIM, model, strong, st, z[i], e, p) >= 2 && collect(in, MIM_RUN_MIM, model, weak, st, z[i], e, p) >= 2;
    for (int i = 0; i < nz; i++) {
        double *vs = p + (size_t)(2 * k) * stride, *vw = vs + stride;
        int ns = collect(in, MIM_RUN_MIM, model, strong, st, z[i], e, vs);
        int nw = collect(in, MIM_RUN_MIM, model, weak, st, z[i], e, vw);
        if (!ns || !nw) continue;
        if (seeded && (ns < 2 || nw < 2)) continue;
        g[2 * k] = (mim_stats_group){vs, ns, 1};
        g[2 * k + 1] = (mim_stats_group){vw, nw, -1};
        size_t ul = strlen(used);
        mim_study_pathf(used + ul, sizeof used - ul, "%s%lld", k ? ", " : "", (long long)z[i]);
        k++;
    }
    f->verdict = MIM_VERDICT_INCONCLUSIVE;
    if (!k) { mim_study_pathf(f->why, sizeof f->why, "no size has finished runs of both targets"); free(p); free(g); return; }
    for (int i = 0; i < 2 * k; i++) g[i].coef /= k;
    mim_study_pathf(f->quantity, sizeof f->quantity, "%s - %s %s top-1, mean over sizes %s%s", mim_target_name(strong), mim_target_name(weak), mim_eval_name(e), used,
         seeded && k < nz ? " (the sizes with 2+ seeds)" : "");
    f->q = mim_stats_boot_lincomb(g, 2 * k, nboot(in), in->seed);
    f->verdict = mim_verdict_positive(f->q);
    char a[96];
    pts(f->q, a, sizeof a);
    switch (f->verdict) {
    case MIM_VERDICT_SHOWN: mim_study_pathf(f->why, sizeof f->why, "interval above 0: %s points", a); break;
    case MIM_VERDICT_NOT_SHOWN: mim_study_pathf(f->why, sizeof f->why, "interval at or below 0: %s points", a); break;
    default:
        if (!mim_est_has_ci(f->q)) mim_study_pathf(f->why, sizeof f->why, "a group of runs has 1 seed: no interval");
        else mim_study_pathf(f->why, sizeof f->why, "interval contains 0: %s points", a);
    }
    free(p);
    free(g);
}

// ------------------------------------------------------------ 3. strategies
static const char* strat_names[3] = {"random", "first", "stratified"};

// Strategies of the design at size z (bitmask over strat_names).
static int design_strats(const mim_study* s, int64_t z, int target) {   // target < 0: any target
    int mask = 0;
    for (int i = 0; i < s->nsubsets; i++)
        for (int q = 0; q < 3; q++)
            if (s->subsets[i].size == z && !strcmp(s->subsets[i].strategy, strat_names[q]) &&
                (target < 0 || mim_study_subset_has_target(&s->subsets[i], (mim_target)target)))
                mask |= 1 << q;
    return mask;
}
static int popcount3(int m) { return (m & 1) + (m >> 1 & 1) + (m >> 2 & 1); }

static const char* f3_untested(const mim_findings_in* in) {
    const mim_study* s = in->s;
    int multi = 0;
    for (int i = 0; i < s->nsubsets; i++) multi |= popcount3(design_strats(s, s->subsets[i].size, -1)) > 1;
    if (!multi) return "the study runs one sampling strategy at every size";
    if (in->metric < 0 || in->metric >= MIM_EVAL_SCRATCH || !s->evals[in->metric]) return "the study has no evaluation of the MIM runs";
    return NULL;
}

void mim_finding_strategy(const mim_findings_in* in, int model, mim_target t, int64_t size, mim_finding* f) {
    const mim_study* s = in->s;
    char scope[160];
    mim_study_pathf(scope, sizeof scope, "%s, %s, %lld", s->models[model].label, mim_target_name(t), (long long)size);
    row_init(f, 3, scope);
    double m = margin(in);
    const char* no = f3_untested(in);
    if (!no && popcount3(design_strats(s, size, (int)t)) < 2) no = "one sampling strategy at this size for this target";
    if (no) { mim_study_pathf(f->quantity, sizeof f->quantity, "largest difference between strategies"); mim_study_pathf(f->why, sizeof f->why, "%s", no); return; }
    const char* en = mim_eval_name((mim_eval_kind)in->metric);
    int nv[3], have = 0, mask = design_strats(s, size, (int)t), stride = in->nobs + 1;
    double* p = pool(in, 3, f);
    if (!p) return;
    double* vals[3] = {p, p + stride, p + 2 * stride};
    for (int q = 0; q < 3; q++) {
        nv[q] = mask >> q & 1 ? collect(in, MIM_RUN_MIM, model, t, strat_names[q], size, in->metric, vals[q]) : 0;
        have += nv[q] > 0;
    }
    f->verdict = MIM_VERDICT_INCONCLUSIVE;
    mim_study_pathf(f->quantity, sizeof f->quantity, "largest difference between strategies (%s top-1)", en);
    if (have < 2) { mim_study_pathf(f->why, sizeof f->why, "fewer than 2 strategies with finished runs at this size"); free(p); return; }
    mim_est d[3];
    int pa[3], pb[3], np = 0, best = 0;
    double ss = 0;
    int dof = 0;
    for (int a = 0; a < 3; a++) {
        if (nv[a] > 1) { double mu, sd; mim_stats_mean_sd(vals[a], nv[a], &mu, &sd); ss += sd * sd * (nv[a] - 1); dof += nv[a] - 1; }
        for (int b = a + 1; b < 3; b++) {
            if (!nv[a] || !nv[b]) continue;
            mim_stats_group g[2] = {{vals[a], nv[a], 1}, {vals[b], nv[b], -1}};
            d[np] = mim_stats_boot_lincomb(g, 2, nboot(in), in->seed);
            pa[np] = a; pb[np] = b;
            if (fabs(d[np].mean) > fabs(d[best].mean)) best = np;
            np++;
        }
    }
    f->q = d[best];
    f->verdict = mim_verdict_equivalent(d, np, m);
    mim_study_pathf(f->quantity, sizeof f->quantity, "%s - %s %s top-1 (the largest of %d strateg%s' differences)", strat_names[pa[best]], strat_names[pb[best]], en,
         have, have == 1 ? "y" : "ies");
    char a[96], sdtxt[64] = "";
    pts(f->q, a, sizeof a);
    if (dof) mim_study_pathf(sdtxt, sizeof sdtxt, "; seed-to-seed sd %.1f points", 100 * sqrt(ss / dof));
    switch (f->verdict) {
    case MIM_VERDICT_SHOWN: mim_study_pathf(f->why, sizeof f->why, "every pair's interval inside ±%.1f points: largest %s%s", 100 * m, a, sdtxt); break;
    case MIM_VERDICT_NOT_SHOWN: {
        int k = 0;   // the pair wholly outside the margin
        for (int i = 0; i < np; i++) if (mim_est_has_ci(d[i]) && (d[i].lo >= m || d[i].hi <= -m)) { k = i; break; }
        mim_study_pathf(f->why, sizeof f->why, "%s - %s interval wholly outside ±%.1f points: %s%s", strat_names[pa[k]], strat_names[pb[k]], 100 * m,
             pts(d[k], a, sizeof a), sdtxt);
        break;
    }
    default: {
        int noci = 0;
        for (int i = 0; i < np; i++) noci |= !mim_est_has_ci(d[i]);
        if (noci) mim_study_pathf(f->why, sizeof f->why, "a strategy has 1 seed: no interval");
        else mim_study_pathf(f->why, sizeof f->why, "an interval straddles ±%.1f points: largest %s%s", 100 * m, a, sdtxt);
    }
    }
    free(p);
}

// ------------------------------------------------------------ all rows
int mim_findings_all(const mim_findings_in* in, mim_finding** out) {
    const mim_study* s = in->s;
    size_t cap = (size_t)s->nmodels * (s->ntargets * (1 + s->nsubsets) + 4) + 3;
    mim_finding* f = mim_calloc(cap, sizeof *f);
    *out = f;
    if (!f) return MIM_ENOMEM;
    int n = 0;
    const char* no = f1_untested(s);
    if (no) { row_init(&f[n], 1, "study"); mim_study_pathf(f[n].quantity, sizeof f[n].quantity, "gap(smallest D) - gap(largest D)"); mim_study_pathf(f[n].why, sizeof f[n].why, "%s", no); n++; }
    else
        for (int m = 0; m < s->nmodels; m++)
            for (int t = 0; t < s->ntargets; t++) mim_finding_small_data(in, m, s->targets[t], &f[n++]);
    no = f2_untested(s);
    if (no) { row_init(&f[n], 2, "study"); mim_study_pathf(f[n].quantity, sizeof f[n].quantity, "strong - pixel target top-1"); mim_study_pathf(f[n].why, sizeof f[n].why, "%s", no); n++; }
    else {
        static const mim_target strong[2] = {MIM_TARGET_HOG, MIM_TARGET_TEACHER};
        static const mim_eval_kind ev[2] = {MIM_EVAL_FINETUNE, MIM_EVAL_LINPROBE};
        for (int m = 0; m < s->nmodels; m++)
            for (int k = 0; k < 2; k++)
                for (int e = 0; e < 2; e++)
                    if (has_target(s, strong[k]) && s->evals[ev[e]]) mim_finding_strong_target(in, m, strong[k], ev[e], &f[n++]);
    }
    no = f3_untested(in);
    if (no) { row_init(&f[n], 3, "study"); mim_study_pathf(f[n].quantity, sizeof f[n].quantity, "largest difference between strategies"); mim_study_pathf(f[n].why, sizeof f[n].why, "%s", no); n++; }
    else
        for (int i = 0; i < s->nsubsets; i++) {
            int first = 1;   // each size once
            for (int k = 0; k < i; k++) first &= s->subsets[k].size != s->subsets[i].size;
            if (!first || popcount3(design_strats(s, s->subsets[i].size, -1)) < 2) continue;
            for (int m = 0; m < s->nmodels; m++)
                for (int t = 0; t < s->ntargets; t++)   // only the targets run with several strategies at this size
                    if (popcount3(design_strats(s, s->subsets[i].size, (int)s->targets[t])) > 1)
                        mim_finding_strategy(in, m, s->targets[t], s->subsets[i].size, &f[n++]);
        }
    CHECK((size_t)n <= cap);
    return n;
}
