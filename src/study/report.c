// report.c: `mimscale study report`: results.jsonl -> report.md (tables and
// the computed Findings), figure data (report-data/*.dat), one gnuplot
// script (report.gp) and its PNG figures. Every number in report.md comes
// from results.jsonl through this file, stats.c, fit.c and findings.c;
// nothing is typed in by hand.
//
// Cells that aggregate seeds show mean ± sd and the 95% percentile-bootstrap
// interval of the mean (stats.h: 2000 resamples, fixed seed, so the report
// is reproducible); one seed: no interval. Error for the power law is
// 1 - top1 (top1 in [0, 1]). Baselines come from rows with "kind":
// "baseline" ("baseline": "pixels" for raw-pixel kNN / linear probe,
// "random" with "model" for a random-init encoder's features; one row per
// seed, optionally per "size") and from the scratch runs; MIM is compared
// with scratch fine-tune to fine-tune only. Without gnuplot the tables are
// still written and the report says the figures are missing.
//
// Length (about 770 lines): one pass over the same aggregates writes the
// markdown tables and the figure data, so each number in a table and its
// point in a figure come from one computation; splitting the figures off
// would mean a second walk over the results or a shared aggregate cache.
#include "study/study.h"
#include "study/internal.h"
#include "study/findings.h"
#include "study/fit.h"
#include "study/results.h"
#include "study/stats.h"
#include "core/check.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static double num(const cJSON* row, const char* key) {
    const cJSON* v = row ? cJSON_GetObjectItemCaseSensitive(row, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}
static const char* str(const cJSON* row, const char* key) {
    const cJSON* v = row ? cJSON_GetObjectItemCaseSensitive(row, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}
static int row_ok(const cJSON* row) {
    const char* st = str(row, "status");
    return st && !strcmp(st, "ok");
}

// The report's shared state: the study, its grid, the rows, one scratch
// buffer of values (a cell never has more values than the grid has runs).
typedef struct {
    const mim_study* s;
    const mim_study_run* runs;
    int n;
    const mim_results* res;
    double* v;        // 2 n + res->n + 1 values
} rep;

// Values of key over the ok runs matching (kind, model, target (MIM only),
// strategy, size): one per seed, into r->v.
static int vals(const rep* r, int kind, int model, int target, const char* strategy, int64_t size, const char* key) {
    int k = 0;
    for (int i = 0; i < r->n; i++) {
        const mim_study_run* u = &r->runs[i];
        if ((int)u->kind != kind || u->model != model || u->size != size || strcmp(r->s->subsets[u->subset].strategy, strategy)) continue;
        if (kind == MIM_RUN_MIM && (int)u->target != target) continue;
        const cJSON* row = mim_results_find(r->res, u->id);
        double x = row_ok(row) ? num(row, key) : NAN;
        if (isfinite(x)) r->v[k++] = x;
    }
    return k;
}
static mim_est agg(const rep* r, int kind, int model, int target, const char* strategy, int64_t size, const char* key) {
    int k = vals(r, kind, model, target, strategy, size, key);
    return mim_stats_boot_mean(r->v, k, 0, 0);
}

// Fine-tune top-1 of MIM - of scratch at (model, target, strategy, size),
// with its interval: the two groups side by side in r->v (disjoint runs, so
// together at most r->n values).
static mim_est gap_est(const rep* r, int model, int target, const char* strategy, int64_t size) {
    int k1 = vals(r, MIM_RUN_MIM, model, target, strategy, size, "finetune_top1");
    rep r2 = *r;
    r2.v = r->v + k1;
    int k2 = vals(&r2, MIM_RUN_SCRATCH, model, 0, strategy, size, "scratch_top1");
    mim_stats_group g[2] = {{r->v, k1, 1}, {r2.v, k2, -1}};
    return mim_stats_boot_lincomb(g, 2, 0, 0);
}

// "28.4 ± 0.3 [28.1, 28.7]" (pct: x 100) or "28.4 (1 seed)" or "-".
static void est_str(char* buf, size_t cap, mim_est e, int pct) {
    double k = pct ? 100 : 1;
    const char* f1 = pct ? "%.1f" : "%.4f";
    char m[32], d[32], lo[32], hi[32];
    if (!e.n) { mim_study_pathf(buf, cap, "-"); return; }
    mim_study_pathf(m, sizeof m, f1, k * e.mean);
    if (e.n == 1 || !mim_est_has_ci(e)) { mim_study_pathf(buf, cap, "%s (1 seed)", m); return; }
    mim_study_pathf(d, sizeof d, f1, k * e.sd); mim_study_pathf(lo, sizeof lo, f1, k * e.lo); mim_study_pathf(hi, sizeof hi, f1, k * e.hi);
    mim_study_pathf(buf, cap, "%s ± %s [%s, %s]", m, d, lo, hi);
}
static void cell(FILE* f, mim_est e, int pct) {
    char b[160];
    est_str(b, sizeof b, e, pct);
    fprintf(f, " %s |", b);
}
// A figure-data line: x, mean, sd, lo, hi (the mean for lo / hi without an interval), n; all in points.
static void dat_line(FILE* f, double x, mim_est e) {
    int ci = mim_est_has_ci(e);
    fprintf(f, "%.6g %.4f %.4f %.4f %.4f %d\n", x, 100 * e.mean, 100 * (isfinite(e.sd) ? e.sd : 0), 100 * (ci ? e.lo : e.mean),
            100 * (ci ? e.hi : e.mean), e.n);
}

// Sorted distinct sizes of a strategy.
static int sizes_of(const mim_study* s, const char* strategy, int64_t* out) {
    int n = 0;
    for (int i = 0; i < s->nsubsets; i++) {
        if (strcmp(s->subsets[i].strategy, strategy)) continue;
        int have = 0;
        for (int k = 0; k < n; k++) have |= out[k] == s->subsets[i].size;
        if (!have) out[n++] = s->subsets[i].size;
    }
    for (int i = 1; i < n; i++)
        for (int k = i; k > 0 && out[k - 1] > out[k]; k--) { int64_t t = out[k]; out[k] = out[k - 1]; out[k - 1] = t; }
    return n;
}

static FILE* openf(const char* dir, const char* name, char* path, size_t cap) {
    mim_study_pathf(path, cap, "%s/%s", dir, name);
    FILE* f = fopen(path, "w");
    if (!f) mim_err(MIM_EIO, "cannot write %s: %s", path, strerror(errno));
    return f;
}

// ------------------------------------------------------------ baselines
// A group of baseline rows: (baseline, model label or "", size or -1).
typedef struct { char name[32], model[64]; int64_t size; int order; } bl_group;
#define MAX_BL 256

static int bl_match(const cJSON* row, const bl_group* g) {
    const char* k = str(row, "kind"), *b = str(row, "baseline"), *m = str(row, "model");
    double z = num(row, "size");
    return row_ok(row) && k && !strcmp(k, "baseline") && b && !strcmp(b, g->name) && !strcmp(m ? m : "", g->model) &&
           (isfinite(z) ? (int64_t)z : -1) == g->size;
}
static int bl_cmp(const void* a, const void* b) {
    const bl_group *x = a, *y = b;
    if (x->order != y->order) return x->order - y->order;
    int c = strcmp(x->name, y->name);
    if (c) return c;
    c = strcmp(x->model, y->model);
    return c ? c : (x->size > y->size) - (x->size < y->size);
}
// The baseline groups of the rows: raw pixels first, then random-init in
// the study's model order, then anything else.
static int bl_groups(const mim_study* s, const mim_results* res, bl_group* g) {
    int n = 0;
    for (int i = 0; i < res->n; i++) {
        const cJSON* row = res->rows[i];
        const char* k = str(row, "kind"), *b = str(row, "baseline"), *m = str(row, "model");
        if (!row_ok(row) || !k || strcmp(k, "baseline") || !b) continue;
        bl_group x = {.size = isfinite(num(row, "size")) ? (int64_t)num(row, "size") : -1};
        mim_study_pathf(x.name, sizeof x.name, "%s", b);
        mim_study_pathf(x.model, sizeof x.model, "%s", m ? m : "");
        x.order = !strcmp(b, "pixels") ? 0 : 1 + s->nmodels;
        for (int q = 0; q < s->nmodels && x.order; q++) if (!strcmp(x.model, s->models[q].label)) x.order = 1 + q;
        int have = 0;
        for (int q = 0; q < n; q++) have |= !bl_cmp(&g[q], &x);
        if (!have && n < MAX_BL) g[n++] = x;
    }
    qsort(g, (size_t)n, sizeof *g, bl_cmp);
    return n;
}
static mim_est bl_agg(const rep* r, const bl_group* g, const char* key) {
    int k = 0;
    for (int i = 0; i < r->res->n; i++) {
        const cJSON* row = r->res->rows[i];
        double x = num(row, key);
        if (bl_match(row, g) && isfinite(x)) r->v[k++] = x;
    }
    return mim_stats_boot_mean(r->v, k, 0, 0);
}
static void bl_label(const bl_group* g, char* buf, size_t cap) {
    if (!strcmp(g->name, "pixels")) mim_study_pathf(buf, cap, "raw pixels");
    else if (!strcmp(g->name, "random")) mim_study_pathf(buf, cap, "random-init %s", g->model);
    else mim_study_pathf(buf, cap, "%s%s%s", g->name, *g->model ? " " : "", g->model);
}

// Whether the MIM features beat the baselines, said plainly: per kNN /
// linear probe, the best MIM row (mean over seeds) against raw pixels and
// against the same model at random initialisation (means; an interval
// where both sides have seeds). A reader must not have to compare columns
// to learn that pre-training did not beat its input.
static void write_against_baselines(FILE* md, const rep* r, const bl_group* bl, int nbl, const int* evs, int nev,
                                    const char* main_st, const int64_t* sizes, int nsz) {
    const mim_study* s = r->s;
    char beats[128] = "", nots[128] = "";
    int tested = 0;
    fprintf(md, "\n### Against the baselines\n\n");
    for (int e = 0; e < nev; e++) {
        if (evs[e] != MIM_EVAL_KNN && evs[e] != MIM_EVAL_LINPROBE) continue;
        const char* en = mim_eval_name((mim_eval_kind)evs[e]);
        char key[64];
        mim_study_pathf(key, sizeof key, "%s_top1", en);
        mim_est best = {0};
        int bm = -1, bt = 0;
        int64_t bz = 0;
        for (int m = 0; m < s->nmodels; m++)
            for (int t = 0; t < s->ntargets; t++)
                for (int z = 0; z < nsz; z++) {
                    mim_est x = agg(r, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], key);
                    if (x.n && (bm < 0 || x.mean > best.mean)) { best = x; bm = m; bt = t; bz = sizes[z]; }
                }
        mim_est px = {0}, rnd = {0};
        for (int b = 0; b < nbl; b++) {
            if (!strcmp(bl[b].name, "pixels") && !px.n) px = bl_agg(r, &bl[b], key);
            if (bm >= 0 && !strcmp(bl[b].name, "random") && !strcmp(bl[b].model, s->models[bm].label) && !rnd.n)
                rnd = bl_agg(r, &bl[b], key);
        }
        if (bm < 0 || !px.n) continue;
        tested = 1;
        int win = best.mean > px.mean;
        char* list = win ? beats : nots;
        size_t L = strlen(list);
        mim_study_pathf(list + L, 128 - L, "%s%s", L ? ", " : "", en);
        fprintf(md, "- %s: the best MIM row (%s %s, %lld images) reaches %.1f, %s raw pixels (%.1f, %+.1f points)", en,
                s->models[bm].label, mim_target_name(s->targets[bt]), (long long)bz, 100 * best.mean,
                win ? "above" : "not above", 100 * px.mean, 100 * (best.mean - px.mean));
        if (rnd.n)
            fprintf(md, " and %s the same model at random initialisation (%.1f, %+.1f)", best.mean > rnd.mean ? "above" : "not above",
                    100 * rnd.mean, 100 * (best.mean - rnd.mean));
        fprintf(md, "%s.\n", best.n < 2 || px.n < 2 ? " (means of single runs: no interval)" : "");
    }
    if (!tested) { fprintf(md, "Not compared: no kNN / linear-probe evaluation with a raw-pixel baseline.\n"); return; }
    if (beats[0]) fprintf(md, "\n**MIM features beat raw pixels on: %s%s%s.**\n", beats, nots[0] ? "; not on: " : "", nots);
    else
        fprintf(md, "\n**MIM features beat raw pixels on no evaluation (%s)**: at this study's budget the pre-trained "
                    "encoders have not learned features better than their input, so its other comparisons say little about MIM.\n",
                nots);
}

// ------------------------------------------------------------ figures
// One figure's gnuplot commands, in memory until we know a curve has data.
typedef struct { FILE* f; char* buf; size_t len; int items, first; } fig_t;
static int fig_begin(fig_t* g) {
    memset(g, 0, sizeof *g);
    g->first = 1;
    g->f = open_memstream(&g->buf, &g->len);
    return g->f ? 0 : mim_err(MIM_ENOMEM, "out of memory for a figure");
}
// ", " between plot elements.
static const char* fig_sep(fig_t* g) {
    const char* s = g->first ? "" : ", ";
    g->first = 0;
    return s;
}
// Writes the figure into gp and lists it when some curve had data.
static void fig_end(fig_t* g, FILE* gp, const char* name, const char** figs, int* nfig) {
    fclose(g->f);
    if (g->items) { fwrite(g->buf, 1, g->len, gp); figs[(*nfig)++] = name; }
    free(g->buf);
}

// ------------------------------------------------------------ findings
static int write_findings(FILE* md, const rep* r, int primary) {
    const mim_study* s = r->s;
    mim_obs* obs = mim_calloc((size_t)r->n + 1, sizeof *obs);
    if (!obs) return MIM_ENOMEM;
    int no = 0;
    for (int i = 0; i < r->n; i++) {
        const mim_study_run* u = &r->runs[i];
        const cJSON* row = mim_results_find(r->res, u->id);
        if (!row_ok(row)) continue;
        mim_obs o = mim_obs_make(u->kind, u->model, u->target, s->subsets[u->subset].strategy, u->size, u->seed);
        for (int e = 0; e < MIM_EVAL_COUNT; e++) {
            char key[64];
            mim_study_pathf(key, sizeof key, "%s_top1", mim_eval_name((mim_eval_kind)e));
            o.top1[e] = num(row, key);
        }
        obs[no++] = o;
    }
    mim_findings_in in = {.s = s, .obs = obs, .nobs = no, .metric = primary};
    mim_finding* f;
    int nf = mim_findings_all(&in, &f);
    free(obs);
    if (nf < 0) return nf;
    fprintf(md, "## Findings\n\nComputed from the runs by `study report` (src/study/findings.c), not written by hand. Quantities in "
                "points of top-1; 95%% percentile-bootstrap intervals over seeds (%d resamples, fixed seed; each group of runs "
                "redrawn independently).\n\n| # | finding | scope | quantity | estimate [95%% interval] | verdict | reading |\n"
                "|---|---|---|---|---|---|---|\n", MIM_STATS_NBOOT);
    for (int i = 0; i < nf; i++) {
        char q[96];
        if (!f[i].q.n) mim_study_pathf(q, sizeof q, "-");
        else if (mim_est_has_ci(f[i].q)) mim_study_pathf(q, sizeof q, "%+.1f [%+.1f, %+.1f]", 100 * f[i].q.mean, 100 * f[i].q.lo, 100 * f[i].q.hi);
        else mim_study_pathf(q, sizeof q, "%+.1f (no interval)", 100 * f[i].q.mean);
        fprintf(md, "| %d | %s | %s | %s | %s | **%s** | %s |\n", f[i].id, mim_finding_title(f[i].id), f[i].scope, f[i].quantity, q,
                mim_verdict_name(f[i].verdict), f[i].why);
    }
    free(f);
    fprintf(md, "\nRules (an interval is the 95%% bootstrap interval; gap(D) = fine-tune top-1 of MIM - of scratch at size D, "
                "main strategy):\n\n"
                "1. q = gap(smallest D) - gap(largest D). **shown**: q's interval and gap(smallest D)'s lie above 0; "
                "**not shown**: either lies at or below 0; **inconclusive**: otherwise, or no interval (1 seed).\n"
                "2. q = strong (hog, teacher) - pixel-norm (else pixel) top-1, fine-tune and linear probe, mean over the sizes "
                "run with both. **shown**: interval above 0; **not shown**: at or below 0; **inconclusive**: contains 0, or no interval.\n"
                "3. At each size run with several strategies, every pair's difference of mean top-1; q is the largest. "
                "**shown**: every pair's interval lies inside ±%.0f points (an equivalence margin); **not shown**: some pair's interval "
                "lies wholly outside ±%.0f points; **inconclusive**: otherwise, or no interval.\n\n"
                "A finding the grid cannot test is \"not tested by this study\", with the reason.\n\n",
            100 * MIM_FINDING_MARGIN, 100 * MIM_FINDING_MARGIN);
    return 0;
}

int mim_study_report(const mim_study* s, const mim_study_opts* oin) {
    char outbuf[2048], binbuf[2048];
    mim_study_opts o;
    mim_study_opts_resolve(s, oin, &o, outbuf, sizeof outbuf, binbuf, sizeof binbuf);
    mim_study_run* runs = NULL;
    int n = mim_study_expand(s, &runs);
    if (n < 0) return n;
    char rpath[4096], path[4200], ddir[4096];
    mim_study_pathf(rpath, sizeof rpath, "%s/results.jsonl", o.out);
    mim_results res;
    int rc = mim_results_load(&res, rpath);
    if (rc) { free(runs); return rc; }
    bl_group* bl = NULL;
    rep R = {s, runs, n, &res, mim_malloc((2 * (size_t)n + (size_t)res.n + 1) * sizeof(double))};
    FILE *md = NULL, *sdat = NULL, *gp = NULL;
    if (!R.v) { rc = MIM_ENOMEM; goto out; }
    mim_study_pathf(ddir, sizeof ddir, "%s/report-data", o.out);
    if (mkdir(o.out, 0755) && errno != EEXIST) { rc = mim_err(MIM_EIO, "cannot create %s: %s", o.out, strerror(errno)); goto out; }
    if (mkdir(ddir, 0755) && errno != EEXIST) { rc = mim_err(MIM_EIO, "cannot create %s: %s", ddir, strerror(errno)); goto out; }

    const char* main_st = s->subsets[0].strategy;
    // Evaluations of MIM runs, in order of preference for "the" downstream metric.
    const int pref[3] = {MIM_EVAL_FINETUNE, MIM_EVAL_LINPROBE, MIM_EVAL_KNN};
    int evs[3], nev = 0;
    for (int i = 0; i < 3; i++) if (s->evals[pref[i]]) evs[nev++] = pref[i];
    int primary = s->report_metric >= 0 ? s->report_metric : nev ? evs[0] : -1;
    char pkey[64] = "";
    if (primary >= 0) mim_study_pathf(pkey, sizeof pkey, "%s_top1", mim_eval_name((mim_eval_kind)primary));
    int64_t sizes[256];
    int nsz = sizes_of(s, main_st, sizes);
    int has_scr = s->evals[MIM_EVAL_SCRATCH], has_ft = s->evals[MIM_EVAL_FINETUNE];
    bl = mim_calloc(MAX_BL, sizeof *bl);
    if (!bl) { rc = MIM_ENOMEM; goto out; }
    int nbl = bl_groups(s, &res, bl);

    md = openf(o.out, "report.md", path, sizeof path);
    if (!md) { rc = MIM_EIO; goto out; }
    int ndone = 0, nfail = 0, nmiss = 0;
    for (int i = 0; i < n; i++) {
        const cJSON* row = mim_results_find(&res, runs[i].id);
        if (!row) nmiss++; else if (row_ok(row)) ndone++; else nfail++;
    }
    fprintf(md, "# Study %s\n\nStudy file `%s`; %d runs: %d finished, %d failed, %d missing. Budget: %g %s per pre-training run; "
                "accuracies in %% (top-1) over %d seed(s): mean ± sd [95%% bootstrap interval of the mean] (percentile, %d resamples, "
                "fixed seed); a cell of one run says \"1 seed\" and has no interval.\n\n",
            s->name, s->path, n, ndone, nfail, nmiss, s->budget, mim_budget_name(s->budget_kind), s->nseeds, MIM_STATS_NBOOT);

    // 0. Findings, computed.
    if ((rc = write_findings(md, &R, primary))) goto out;

    // 1. Main table: one block per model and target, then the baselines.
    fprintf(md, "## Downstream accuracy vs data size (%s subsets)\n\n| model | target | size | images seen | final loss |", main_st);
    for (int e = 0; e < nev; e++) fprintf(md, " %s |", mim_eval_name((mim_eval_kind)evs[e]));
    if (has_scr) fprintf(md, " scratch (fine-tune from random init) |");
    fprintf(md, "\n|---|---|---|---|---|");
    for (int e = 0; e < nev + has_scr; e++) fprintf(md, "---|");
    fprintf(md, "\n");
    for (int m = 0; m < s->nmodels; m++)
        for (int t = 0; t < s->ntargets; t++)
            for (int z = 0; z < nsz; z++) {
                mim_est im = agg(&R, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], "images_seen");
                fprintf(md, "| %s | %s | %lld |", s->models[m].label, mim_target_name(s->targets[t]), (long long)sizes[z]);
                if (im.n) fprintf(md, " %.0f |", im.mean); else fprintf(md, " - |");
                cell(md, agg(&R, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], "final_loss_avg"), 0);
                for (int e = 0; e < nev; e++) {
                    char key[64];
                    mim_study_pathf(key, sizeof key, "%s_top1", mim_eval_name((mim_eval_kind)evs[e]));
                    cell(md, agg(&R, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], key), 1);
                }
                if (has_scr) cell(md, agg(&R, MIM_RUN_SCRATCH, m, 0, main_st, sizes[z], "scratch_top1"), 1);
                fprintf(md, "\n");
            }
    for (int b = 0; b < nbl; b++) {   // baseline levels next to the MIM rows
        char lbl[160], zs[32];
        bl_label(&bl[b], lbl, sizeof lbl);
        if (bl[b].size >= 0) mim_study_pathf(zs, sizeof zs, "%lld", (long long)bl[b].size); else mim_study_pathf(zs, sizeof zs, "any");
        fprintf(md, "| %s | baseline: %s | %s | - | - |", *bl[b].model ? bl[b].model : "-", lbl, zs);
        for (int e = 0; e < nev; e++) {
            if (evs[e] == MIM_EVAL_FINETUNE) { fprintf(md, " - |"); continue; }
            char key[64];
            mim_study_pathf(key, sizeof key, "%s_top1", mim_eval_name((mim_eval_kind)evs[e]));
            cell(md, bl_agg(&R, &bl[b], key), 1);
        }
        if (has_scr) fprintf(md, " - |");
        fprintf(md, "\n");
    }

    // 2. Baselines.
    fprintf(md, "\n## Baselines\n\n");
    if (!nbl) fprintf(md, "No baseline rows in results.jsonl (rows with \"kind\": \"baseline\": raw-pixel kNN / linear probe, "
                          "random-init encoders).%s\n", has_scr ? " The from-scratch fine-tuning is the scratch column above." : "");
    else {
        fprintf(md, "The same kNN and linear-probe protocol on features that no pre-training made: raw pixels, and each model's "
                    "encoder at random initialisation.%s\n\n| baseline | model | size | seeds | knn | linprobe |\n|---|---|---|---|---|---|\n",
                has_scr ? " The fine-tuning baseline is the scratch column above." : "");
        for (int b = 0; b < nbl; b++) {
            char lbl[160], zs[32];
            bl_label(&bl[b], lbl, sizeof lbl);
            if (bl[b].size >= 0) mim_study_pathf(zs, sizeof zs, "%lld", (long long)bl[b].size); else mim_study_pathf(zs, sizeof zs, "any");
            mim_est k = bl_agg(&R, &bl[b], "knn_top1"), l = bl_agg(&R, &bl[b], "linprobe_top1");
            fprintf(md, "| %s | %s | %s | %d |", lbl, *bl[b].model ? bl[b].model : "-", zs, k.n > l.n ? k.n : l.n);
            cell(md, k, 1); cell(md, l, 1);
            fprintf(md, "\n");
        }
        write_against_baselines(md, &R, bl, nbl, evs, nev, main_st, sizes, nsz);
    }

    // 3. MIM vs scratch, fine-tune with fine-tune.
    int scr_fig = has_scr && has_ft;
    fprintf(md, "\n## MIM vs scratch (fine-tune top-1)\n\n");
    if (!has_scr) fprintf(md, "Not compared: the study has no from-scratch runs (evaluation \"scratch\").\n");
    else if (!has_ft)
        fprintf(md, "Not compared: the study has no fine-tune evaluation of the MIM runs, and scratch is a fine-tuning result; "
                    "kNN or linear-probe accuracy of MIM against fine-tuned scratch would compare different protocols.\n");
    else {
        fprintf(md, "| model | target | size | MIM fine-tune | scratch | gap (points) |\n|---|---|---|---|---|---|\n");
        for (int m = 0; m < s->nmodels; m++)
            for (int t = 0; t < s->ntargets; t++)
                for (int z = 0; z < nsz; z++) {
                    fprintf(md, "| %s | %s | %lld |", s->models[m].label, mim_target_name(s->targets[t]), (long long)sizes[z]);
                    cell(md, agg(&R, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], "finetune_top1"), 1);
                    cell(md, agg(&R, MIM_RUN_SCRATCH, m, 0, main_st, sizes[z], "scratch_top1"), 1);
                    mim_est d = gap_est(&R, m, s->targets[t], main_st, sizes[z]);
                    if (!d.n) fprintf(md, " - |\n");
                    else if (mim_est_has_ci(d)) fprintf(md, " %+.1f [%+.1f, %+.1f] |\n", 100 * d.mean, 100 * d.lo, 100 * d.hi);
                    else fprintf(md, " %+.1f (1 seed) |\n", 100 * d.mean);
                }
    }

    // 4. Power-law fits of the error of the primary metric, every run a point.
    fprintf(md, "\n## Power-law fit: error = E + A · D^-alpha (error = 1 - %s top-1, D = subset size)\n\n"
                "Fitted as Chinchilla's third approach: Huber loss (delta 1e-3) of log predicted - log observed error over every "
                "run (each seed a point), BFGS + Nelder-Mead (GSL) from a grid of starting points; 95%% intervals from %d bootstrap "
                "resamples of the runs within each size, refitted. At least 4 distinct sizes.\n\n",
            primary >= 0 ? mim_eval_name((mim_eval_kind)primary) : "?", MIM_PLFIT_NBOOT);
    fprintf(md, "| model | target | runs | sizes | A | alpha (exponent) | E (irreducible) | rmse | note |\n|---|---|---|---|---|---|---|---|---|\n");
    mim_plfit fits[64][MIM_TARGET_COUNT];
    int fit_ok[64][MIM_TARGET_COUNT];
    memset(fit_ok, 0, sizeof fit_ok);
    for (int m = 0; m < s->nmodels && m < 64; m++)
        for (int t = 0; t < s->ntargets; t++) {
            double* D = R.v, *E = R.v + n;   // at most n runs
            int k = 0;
            for (int i = 0; i < n && primary >= 0; i++) {
                const mim_study_run* u = &runs[i];
                if (u->kind != MIM_RUN_MIM || u->model != m || u->target != s->targets[t] || strcmp(s->subsets[u->subset].strategy, main_st)) continue;
                const cJSON* row = mim_results_find(&res, u->id);
                double a = row_ok(row) ? num(row, pkey) : NAN;
                if (isfinite(a)) { D[k] = (double)u->size; E[k] = 1 - a; k++; }
            }
            // the runs' distinct sizes, for the table
            int nd = 0;
            for (int i = 0; i < k; i++) {
                int seen = 0;
                for (int q = 0; q < i; q++) seen |= D[q] == D[i];
                nd += !seen;
            }
            fprintf(md, "| %s | %s | %d | %d |", s->models[m].label, mim_target_name(s->targets[t]), k, nd);
            mim_plfit* f = &fits[m][t];
            if (nd < 4) { fprintf(md, " - | - | - | - | fewer than 4 sizes: no fit |\n"); continue; }
            if (mim_plfit_huber(D, E, k, NULL, f)) { fprintf(md, " - | - | - | - | no fit: %s |\n", mim_err_msg()); continue; }
            fit_ok[m][t] = 1;
            char weak[96] = "";
            if (k <= 5) mim_study_pathf(weak, sizeof weak, "; %d runs for 3 parameters: weakly constrained", k);
            if (isfinite(f->alpha_lo))
                fprintf(md, " %.4g [%.4g, %.4g] | %.3f [%.3f, %.3f] | %.4f [%.4f, %.4f] | %.4f | bootstrap: %d / %d refits%s |\n",
                        f->A, f->A_lo, f->A_hi, f->alpha, f->alpha_lo, f->alpha_hi, f->E, f->E_lo, f->E_hi, f->rmse, f->nboot_ok, f->nboot, weak);
            else fprintf(md, " %.4g | %.3f | %.4f | %.4f | 1 seed per size: no interval%s |\n", f->A, f->alpha, f->E, f->rmse, weak);
        }

    // 5. Sampling strategies, at sizes run with more than one.
    int multi = 0;
    for (int i = 0; i < s->nsubsets; i++) multi |= strcmp(s->subsets[i].strategy, main_st) != 0;
    sdat = openf(ddir, "strategy.dat", path, sizeof path);
    if (!sdat) { rc = MIM_EIO; goto out; }
    int nstrat_rows = 0, has_st[3] = {0, 0, 0};
    if (multi && primary >= 0) {
        const char* sts[3] = {"random", "first", "stratified"};
        fprintf(md, "\n## Sampling strategy (%s top-1 %%)\n\n| model | target | size | random | first | stratified |\n|---|---|---|---|---|---|\n",
                mim_eval_name((mim_eval_kind)primary));
        fprintf(sdat, "# group random first stratified (mean, points)\n");
        for (int i = 0; i < s->nsubsets; i++) {
            int cnt = 0;
            for (int k = 0; k < s->nsubsets; k++) cnt += s->subsets[k].size == s->subsets[i].size;
            int firsti = 1;
            for (int k = 0; k < i; k++) firsti &= s->subsets[k].size != s->subsets[i].size;
            if (cnt < 2 || !firsti) continue;
            for (int m = 0; m < s->nmodels; m++)
                for (int t = 0; t < s->ntargets; t++) {
                    fprintf(md, "| %s | %s | %lld |", s->models[m].label, mim_target_name(s->targets[t]), (long long)s->subsets[i].size);
                    fprintf(sdat, "\"%s/%s/%lld\"", s->models[m].label, mim_target_name(s->targets[t]), (long long)s->subsets[i].size);
                    for (int q = 0; q < 3; q++) {
                        mim_est st = agg(&R, MIM_RUN_MIM, m, s->targets[t], sts[q], s->subsets[i].size, pkey);
                        cell(md, st, 1);
                        if (st.n) { fprintf(sdat, " %.3f", 100 * st.mean); has_st[q] = 1; } else fprintf(sdat, " NaN");
                    }
                    fprintf(md, "\n"); fprintf(sdat, "\n");
                    nstrat_rows++;
                }
        }
    }
    fclose(sdat);
    sdat = NULL;

    // 6. Missing and failed runs.
    fprintf(md, "\n## Missing and failed runs\n\n");
    if (!nfail && !nmiss) fprintf(md, "None: every run of the grid has a finished row.\n");
    for (int i = 0; i < n; i++) {
        const cJSON* row = mim_results_find(&res, runs[i].id);
        if (row && row_ok(row)) continue;
        const char* why = str(row, "reason");
        fprintf(md, "- `%s`: %s%s\n", runs[i].id, row ? "failed: " : "missing (not run yet)", row ? (why ? why : "?") : "");
    }

    // Figure data and script. Each figure's commands are built in memory and
    // written only when some curve has data (gnuplot stops the whole script
    // at a plot with no points: a partial study would lose every later figure).
    char gpath[4200];
    gp = openf(o.out, "report.gp", gpath, sizeof gpath);
    if (!gp) { rc = MIM_EIO; goto out; }
    fprintf(gp, "# generated by `mimscale study report`; run from this folder: gnuplot report.gp\n"
                "# error bars: 95%% bootstrap interval of the mean over seeds (none with one seed)\n"
                "set terminal pngcairo size 900,600 noenhanced font ',10'\nset grid\nset key outside right\n");
    char lbl[256], xr[96] = "";
    if (nsz) mim_study_pathf(xr, sizeof xr, "set xrange [%g:%g]\n", (double)sizes[0] / 1.25, (double)sizes[nsz - 1] * 1.25);
    int nfig = 0;
    const char* figs[8];
    static char fnames[3][64];
    fig_t fg;
    // Scratch data per model (the fine-tune figure's baseline).
    int scr_pts[64] = {0};
    for (int m = 0; m < s->nmodels && m < 64 && has_scr; m++) {
        char name[128];
        mim_study_pathf(name, sizeof name, "scratch-%s.dat", s->models[m].label);
        FILE* f = openf(ddir, name, path, sizeof path);
        if (!f) continue;
        fprintf(f, "# size mean sd lo hi n (scratch top-1, points)\n");
        for (int z = 0; z < nsz; z++) {
            mim_est st = agg(&R, MIM_RUN_SCRATCH, m, 0, main_st, sizes[z], "scratch_top1");
            if (st.n) { dat_line(f, (double)sizes[z], st); scr_pts[m]++; }
        }
        fclose(f);
    }
    for (int e = 0; e < nev; e++) {
        const char* en = mim_eval_name((mim_eval_kind)evs[e]);
        char key[64];
        mim_study_pathf(key, sizeof key, "%s_top1", en);
        if (fig_begin(&fg)) { rc = MIM_ENOMEM; goto out; }
        fprintf(fg.f, "set output 'fig-%s-vs-size.png'\nset logscale x\n%sset xlabel 'pre-training images (subset size, %s)'\n"
                      "set ylabel '%s top-1 (%%)'\nset title '%s top-1 vs data size (dotted: baselines)'\nplot ", en, xr, main_st, en, en);
        for (int m = 0; m < s->nmodels; m++)
            for (int t = 0; t < s->ntargets; t++) {
                char name[128];
                mim_study_pathf(name, sizeof name, "%s-%s-%s.dat", en, s->models[m].label, mim_target_name(s->targets[t]));
                FILE* f = openf(ddir, name, path, sizeof path);
                if (!f) continue;
                fprintf(f, "# size mean sd lo hi n (%s top-1, points)\n", en);
                int pts = 0;
                for (int z = 0; z < nsz; z++) {
                    mim_est st = agg(&R, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], key);
                    if (st.n) { dat_line(f, (double)sizes[z], st); pts++; }
                }
                fclose(f);
                if (!pts) continue;
                mim_study_pathf(lbl, sizeof lbl, "%s %s", s->models[m].label, mim_target_name(s->targets[t]));
                fprintf(fg.f, "%s'report-data/%s' using 1:2:4:5 with yerrorlines title '%s'", fig_sep(&fg), name, lbl);
                fg.items++;
                if (evs[e] == primary && m < 64 && fit_ok[m][t]) {
                    mim_plfit* fp = &fits[m][t];
                    fprintf(fg.f, ", [%g:%g] 100*(1-(%.10g+%.10g*x**(-%.10g))) with lines dashtype 2 title '%s fit alpha=%.3f'",
                            (double)sizes[0] * 0.9, (double)sizes[nsz - 1] * 1.1, fp->E, fp->A, fp->alpha, lbl, fp->alpha);
                }
            }
        // Baselines: scratch for fine-tuning; raw pixels / random init for kNN and linear probe.
        if (evs[e] == MIM_EVAL_FINETUNE)
            for (int m = 0; m < s->nmodels && m < 64 && has_scr; m++)
                if (scr_pts[m])
                    fprintf(fg.f, "%s'report-data/scratch-%s.dat' using 1:2:4:5 with yerrorlines dashtype 3 title '%s scratch (baseline)'",
                            fig_sep(&fg), s->models[m].label, s->models[m].label);
        if (evs[e] != MIM_EVAL_FINETUNE)
            for (int b = 0; b < nbl; b++) {
                mim_est be = bl_agg(&R, &bl[b], key);
                if (!be.n) continue;
                bl_label(&bl[b], lbl, sizeof lbl);
                if (bl[b].size < 0) { fprintf(fg.f, "%s%.4f with lines dashtype 3 lw 2 title '%s (baseline)'", fig_sep(&fg), 100 * be.mean, lbl); continue; }
                int firstsz = 1;   // sized baselines: one curve per (baseline, model), at its first group
                for (int c = 0; c < b; c++) firstsz &= strcmp(bl[c].name, bl[b].name) || strcmp(bl[c].model, bl[b].model) || bl[c].size < 0;
                if (!firstsz) continue;
                char name[200];
                mim_study_pathf(name, sizeof name, "baseline-%s-%s-%s.dat", en, bl[b].name, *bl[b].model ? bl[b].model : "none");
                FILE* f = openf(ddir, name, path, sizeof path);
                if (!f) continue;
                for (int c = 0; c < nbl; c++)
                    if (!strcmp(bl[c].name, bl[b].name) && !strcmp(bl[c].model, bl[b].model) && bl[c].size >= 0) {
                        mim_est ce = bl_agg(&R, &bl[c], key);
                        if (ce.n) dat_line(f, (double)bl[c].size, ce);
                    }
                fclose(f);
                fprintf(fg.f, "%s'report-data/%s' using 1:2:4:5 with yerrorlines dashtype 3 title '%s (baseline)'", fig_sep(&fg), name, lbl);
            }
        fprintf(fg.f, "\nunset logscale x\nset autoscale x\n");
        mim_study_pathf(fnames[e], sizeof fnames[e], "fig-%s-vs-size.png", en);
        fig_end(&fg, gp, fnames[e], figs, &nfig);
    }
    // MIM vs scratch: the fine-tune gap with its interval, per model and target.
    if (scr_fig) {
        if (fig_begin(&fg)) { rc = MIM_ENOMEM; goto out; }
        fprintf(fg.f, "set output 'fig-mim-vs-scratch.png'\nset logscale x\n%sset xlabel 'labelled images (subset size)'\n"
                      "set ylabel 'fine-tune top-1: MIM - scratch (points)'\nset title 'MIM vs from scratch, fine-tune with fine-tune'\n"
                      "plot 0 with lines lc 'black' notitle", xr);
        fg.first = 0;
        for (int m = 0; m < s->nmodels; m++)
            for (int t = 0; t < s->ntargets; t++) {
                char name[128];
                mim_study_pathf(name, sizeof name, "gap-%s-%s.dat", s->models[m].label, mim_target_name(s->targets[t]));
                FILE* f = openf(ddir, name, path, sizeof path);
                if (!f) continue;
                fprintf(f, "# size gap sd lo hi n (fine-tune top-1 MIM - scratch, points)\n");
                int pts = 0;
                for (int z = 0; z < nsz; z++) {
                    mim_est d = gap_est(&R, m, s->targets[t], main_st, sizes[z]);
                    if (d.n) { dat_line(f, (double)sizes[z], d); pts++; }
                }
                fclose(f);
                if (!pts) continue;
                fprintf(fg.f, ", 'report-data/%s' using 1:2:4:5 with yerrorlines title '%s %s'", name, s->models[m].label, mim_target_name(s->targets[t]));
                fg.items++;
            }
        fprintf(fg.f, "\nunset logscale x\nset autoscale x\n");
        fig_end(&fg, gp, "fig-mim-vs-scratch.png", figs, &nfig);
    }
    // Pre-training loss curves (main strategy, first seed).
    if (fig_begin(&fg)) { rc = MIM_ENOMEM; goto out; }
    fprintf(fg.f, "set output 'fig-loss-curves.png'\nset logscale x\nset xlabel 'images seen'\nset ylabel 'pre-training loss'\n"
                  "set title 'MAE pre-training loss'\nplot ");
    for (int i = 0; i < n; i++) {
        const mim_study_run* r = &runs[i];
        if (r->kind != MIM_RUN_MIM || r->seed != s->seeds[0] || strcmp(s->subsets[r->subset].strategy, main_st)) continue;
        char mp[4400];
        mim_study_pathf(mp, sizeof mp, "%s/runs/%s/pretrain/metrics.jsonl", o.out, r->id);
        FILE* in = fopen(mp, "r");
        if (!in) continue;
        char name[200];
        mim_study_pathf(name, sizeof name, "loss-%s.dat", r->id);
        FILE* f = openf(ddir, name, path, sizeof path);
        if (!f) { fclose(in); continue; }
        char* line = NULL;
        size_t cap = 0;
        int pts = 0;
        while (getline(&line, &cap, in) > 0) {
            cJSON* j = cJSON_Parse(line);
            double st = num(j, "step"), l = num(j, "loss");
            if (!isnan(st) && !isnan(l)) { fprintf(f, "%.0f %.6f\n", st * s->batch, l); pts++; }
            cJSON_Delete(j);
        }
        free(line);
        fclose(in); fclose(f);
        if (!pts) continue;
        mim_study_pathf(lbl, sizeof lbl, "%s %s %lld", s->models[r->model].label, mim_target_name(r->target), (long long)r->size);
        fprintf(fg.f, "%s'report-data/%s' using 1:2 with lines title '%s'", fig_sep(&fg), name, lbl);
        fg.items++;
    }
    fprintf(fg.f, "\nunset logscale x\n");
    fig_end(&fg, gp, "fig-loss-curves.png", figs, &nfig);
    // Final loss vs downstream accuracy, with the size-free baseline levels of a kNN / linear-probe metric.
    if (primary >= 0) {
        if (fig_begin(&fg)) { rc = MIM_ENOMEM; goto out; }
        fprintf(fg.f, "set output 'fig-loss-vs-acc.png'\nset xlabel 'validation reconstruction loss (held-out set, fixed masks)'\n"
                      "set ylabel '%s top-1 (%%)'\nset title 'pre-training loss vs downstream accuracy (every run)'\nplot ", mim_eval_name((mim_eval_kind)primary));
        for (int m = 0; m < s->nmodels; m++) {
            char name[128];
            mim_study_pathf(name, sizeof name, "scatter-%s.dat", s->models[m].label);
            FILE* f = openf(ddir, name, path, sizeof path);
            if (!f) continue;
            int pts = 0;
            for (int i = 0; i < n; i++) {
                if (runs[i].kind != MIM_RUN_MIM || runs[i].model != m) continue;
                const cJSON* row = mim_results_find(&res, runs[i].id);
                double l = num(row, "val_loss"), a = num(row, pkey);
                if (isnan(l)) l = num(row, "final_loss_avg");   // rows from before validation loss
                if (row_ok(row) && !isnan(l) && !isnan(a)) { fprintf(f, "%.6f %.4f\n", l, 100 * a); pts++; }
            }
            fclose(f);
            if (!pts) continue;
            fprintf(fg.f, "%s'report-data/%s' using 1:2 with points pointsize 1.5 title '%s'", fig_sep(&fg), name, s->models[m].label);
            fg.items++;
        }
        for (int b = 0; b < nbl && primary != MIM_EVAL_FINETUNE; b++) {
            mim_est be = bl_agg(&R, &bl[b], pkey);
            if (!be.n || bl[b].size >= 0) continue;
            bl_label(&bl[b], lbl, sizeof lbl);
            fprintf(fg.f, "%s%.4f with lines dashtype 3 lw 2 title '%s (baseline)'", fig_sep(&fg), 100 * be.mean, lbl);
        }
        fprintf(fg.f, "\n");
        fig_end(&fg, gp, "fig-loss-vs-acc.png", figs, &nfig);
    }
    if (nstrat_rows) {
        fprintf(gp, "set output 'fig-strategy.png'\nset style data histogram\nset style histogram clustered gap 1\nset style fill solid 0.7\n"
                    "set xtics rotate by -20\nset ylabel '%s top-1 (%%)'\nset xlabel ''\nset title 'sampling strategy'\nset yrange [0:*]\n"
                    "set datafile missing 'NaN'\nplot ", mim_eval_name((mim_eval_kind)primary));
        const char* stn[3] = {"random", "first", "stratified"};
        int first = 1;
        for (int q = 0; q < 3; q++)
            if (has_st[q]) { fprintf(gp, "%s'report-data/strategy.dat' using %d:xtic(1) title '%s'", first ? "" : ", ", q + 2, stn[q]); first = 0; }
        fprintf(gp, "\nunset datafile\nset yrange [*:*]\nunset style\nset xtics norotate\n");
        figs[nfig++] = "fig-strategy.png";
    }
    fclose(gp);
    gp = NULL;

    // Draw.
    char log[4200];
    mim_study_pathf(log, sizeof log, "%s/report-data/gnuplot.log", o.out);
    char* argv[] = {"gnuplot", "report.gp", NULL};
    fflush(stdout); fflush(stderr);
    pid_t pid = fork();
    int gst = -1;
    if (pid == 0) {
        if (chdir(o.out)) _exit(126);
        FILE* lf = freopen("report-data/gnuplot.log", "w", stderr);
        (void)lf;
        execvp(argv[0], argv);
        _exit(127);
    } else if (pid > 0) {
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        gst = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    fprintf(md, "\n## Figures\n\n");
    if (gst == 0) {
        for (int i = 0; i < nfig; i++) fprintf(md, "![%s](%s)\n\n", figs[i], figs[i]);
        if (has_scr && !has_ft) fprintf(md, "No MIM-vs-scratch figure: the study has no fine-tune evaluation to compare with scratch fine-tuning.\n\n");
    } else if (gst == 127) {
        fprintf(md, "Not drawn: gnuplot is not installed (Debian: `apt install gnuplot-nox`), then re-run `mimscale study report`. "
                    "The data and script are in report-data/ and report.gp.\n");
        fprintf(stderr, "warning: gnuplot not found (apt install gnuplot-nox): figures not drawn; tables written\n");
    } else {
        fprintf(md, "Not drawn: gnuplot failed (exit %d), see report-data/gnuplot.log.\n", gst);
        fprintf(stderr, "warning: gnuplot failed (exit %d), see %s\n", gst, log);
    }
    fprintf(md, "\nRaw rows: results.jsonl, results.csv. Error bars: 95%% bootstrap intervals of the mean over seeds. The scatter uses each "
                "run's validation reconstruction loss (held-out set, fixed masks; the training loss for rows without one); the tables "
                "show the training loss.\n");
    if (fclose(md)) rc = mim_err(MIM_EIO, "cannot write %s/report.md", o.out);
    md = NULL;
    if (!rc) printf("report: %s/report.md (%d/%d runs finished, %d failed, %d missing)%s\n", o.out, ndone, n, nfail, nmiss,
                    gst == 0 ? "" : "; figures not drawn");
out:
    if (md) fclose(md);
    if (sdat) fclose(sdat);
    if (gp) fclose(gp);
    free(bl);
    free(R.v);
    mim_results_free(&res);
    free(runs);
    return rc;
}
