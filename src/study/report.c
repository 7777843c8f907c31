// report.c: `mimscale study report`: results.jsonl -> report.md (tables),
// figure data (report-data/*.dat), one gnuplot script (report.gp) and its
// PNG figures. Seeds are averaged (mean +- standard deviation). Error for
// the power law is 1 - top1 (top1 in [0, 1]). Without gnuplot the tables are
// still written and the report says the figures are missing.
#include "study/study.h"
#include "study/fit.h"
#include "study/results.h"
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

// snprintf without gcc's truncation warnings (paths are bounded by the study folder).
static void pathf(char* buf, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char* buf, size_t cap, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

static double num(const cJSON* row, const char* key) {
    const cJSON* v = row ? cJSON_GetObjectItemCaseSensitive(row, key) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}
static int row_ok(const cJSON* row) {
    const cJSON* st = row ? cJSON_GetObjectItemCaseSensitive(row, "status") : NULL;
    return cJSON_IsString(st) && !strcmp(st->valuestring, "ok");
}

typedef struct { double mean, sd; int n; } agg_t;

// Mean over seeds of key for the ok runs matching (kind, model, target, strategy index, size).
static agg_t agg(const mim_study* s, const mim_study_run* runs, int n, const mim_results* res, int kind, int model,
                int target, const char* strategy, int64_t size, const char* key) {
    double sum = 0, sq = 0;
    int k = 0;
    for (int i = 0; i < n; i++) {
        const mim_study_run* r = &runs[i];
        if ((int)r->kind != kind || r->model != model || r->size != size || strcmp(s->subsets[r->subset].strategy, strategy)) continue;
        if (kind == MIM_RUN_MIM && (int)r->target != target) continue;
        const cJSON* row = mim_results_find(res, r->id);
        double v = row_ok(row) ? num(row, key) : NAN;
        if (isnan(v)) continue;
        sum += v; sq += v * v; k++;
    }
    agg_t st = {NAN, NAN, k};
    if (k) { st.mean = sum / k; st.sd = k > 1 ? sqrt(fmax(0, (sq - sum * sum / k) / (k - 1))) : 0; }
    return st;
}

static void cell(FILE* f, agg_t st, int pct) {
    if (!st.n) { fprintf(f, " - |"); return; }
    double m = pct ? 100 * st.mean : st.mean, d = pct ? 100 * st.sd : st.sd;
    if (st.n > 1) fprintf(f, pct ? " %.1f ± %.1f |" : " %.4f ± %.4f |", m, d);
    else fprintf(f, pct ? " %.1f |" : " %.4f |", m);
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
    pathf(path, cap, "%s/%s", dir, name);
    FILE* f = fopen(path, "w");
    if (!f) mim_err(MIM_EIO, "cannot write %s: %s", path, strerror(errno));
    return f;
}

int mim_study_report(const mim_study* s, const mim_study_opts* oin) {
    char outbuf[2048], binbuf[2048];
    mim_study_opts o;
    mim_study_opts_resolve(s, oin, &o, outbuf, sizeof outbuf, binbuf, sizeof binbuf);
    mim_study_run* runs = NULL;
    int n = mim_study_expand(s, &runs);
    if (n < 0) return n;
    char rpath[4096], path[4200], ddir[4096];
    pathf(rpath, sizeof rpath, "%s/results.jsonl", o.out);
    mim_results res;
    int rc = mim_results_load(&res, rpath);
    if (rc) { free(runs); return rc; }
    pathf(ddir, sizeof ddir, "%s/report-data", o.out);
    if (mkdir(o.out, 0755) && errno != EEXIST) { rc = mim_err(MIM_EIO, "cannot create %s: %s", o.out, strerror(errno)); goto out; }
    if (mkdir(ddir, 0755) && errno != EEXIST) { rc = mim_err(MIM_EIO, "cannot create %s: %s", ddir, strerror(errno)); goto out; }

    const char* main_st = s->subsets[0].strategy;
    // Evaluations of MIM runs, in order of preference for "the" downstream metric.
    const int pref[3] = {MIM_EVAL_FINETUNE, MIM_EVAL_LINPROBE, MIM_EVAL_KNN};
    int evs[3], nev = 0;
    for (int i = 0; i < 3; i++) if (s->evals[pref[i]]) evs[nev++] = pref[i];
    int primary = s->report_metric >= 0 ? s->report_metric : nev ? evs[0] : -1;
    char pkey[64] = "";
    if (primary >= 0) pathf(pkey, sizeof pkey, "%s_top1", mim_eval_name((mim_eval_kind)primary));
    int64_t sizes[256];
    int nsz = sizes_of(s, main_st, sizes);

    FILE* md = openf(o.out, "report.md", path, sizeof path);
    if (!md) { rc = MIM_EIO; goto out; }
    int ndone = 0, nfail = 0, nmiss = 0;
    for (int i = 0; i < n; i++) {
        const cJSON* row = mim_results_find(&res, runs[i].id);
        if (!row) nmiss++; else if (row_ok(row)) ndone++; else nfail++;
    }
    fprintf(md, "# Study %s\n\nStudy file `%s`; %d runs: %d finished, %d failed, %d missing. Budget: %g %s per pre-training run; "
                "accuracies in %% (top-1), mean ± sd over %d seed(s).\n\n",
            s->name, s->path, n, ndone, nfail, nmiss, s->budget, mim_budget_name(s->budget_kind), s->nseeds);

    // 1. Main table: one block per model and target.
    fprintf(md, "## Downstream accuracy vs data size (%s subsets)\n\n| model | target | size | images seen | final loss |", main_st);
    for (int e = 0; e < nev; e++) fprintf(md, " %s |", mim_eval_name((mim_eval_kind)evs[e]));
    if (s->evals[MIM_EVAL_SCRATCH]) fprintf(md, " scratch |");
    fprintf(md, "\n|---|---|---|---|---|");
    for (int e = 0; e < nev + s->evals[MIM_EVAL_SCRATCH]; e++) fprintf(md, "---|");
    fprintf(md, "\n");
    for (int m = 0; m < s->nmodels; m++)
        for (int t = 0; t < s->ntargets; t++)
            for (int z = 0; z < nsz; z++) {
                agg_t im = agg(s, runs, n, &res, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], "images_seen");
                fprintf(md, "| %s | %s | %lld |", s->models[m].label, mim_target_name(s->targets[t]), (long long)sizes[z]);
                if (im.n) fprintf(md, " %.0f |", im.mean); else fprintf(md, " - |");
                cell(md, agg(s, runs, n, &res, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], "final_loss_avg"), 0);
                for (int e = 0; e < nev; e++) {
                    char key[64];
                    pathf(key, sizeof key, "%s_top1", mim_eval_name((mim_eval_kind)evs[e]));
                    cell(md, agg(s, runs, n, &res, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], key), 1);
                }
                if (s->evals[MIM_EVAL_SCRATCH]) cell(md, agg(s, runs, n, &res, MIM_RUN_SCRATCH, m, 0, main_st, sizes[z], "scratch_top1"), 1);
                fprintf(md, "\n");
            }

    // 2. Power-law fits of the error of the primary metric.
    fprintf(md, "\n## Power-law fit: error = a · D^-b + c (error = 1 - %s top-1, D = subset size)\n\n", primary >= 0 ? mim_eval_name((mim_eval_kind)primary) : "?");
    fprintf(md, "| model | target | points | a | b (exponent) | c (floor) | rmse | note |\n|---|---|---|---|---|---|---|---|\n");
    mim_powerlaw fits[64][MIM_TARGET_COUNT];
    int fit_ok[64][MIM_TARGET_COUNT];
    memset(fit_ok, 0, sizeof fit_ok);
    for (int m = 0; m < s->nmodels && m < 64; m++)
        for (int t = 0; t < s->ntargets; t++) {
            double D[256], E[256];
            int k = 0;
            for (int z = 0; z < nsz && primary >= 0; z++) {
                agg_t st = agg(s, runs, n, &res, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], pkey);
                if (st.n) { D[k] = (double)sizes[z]; E[k] = 1 - (st.mean > 1 ? st.mean / 100 : st.mean); k++; }
            }
            fprintf(md, "| %s | %s | %d |", s->models[m].label, mim_target_name(s->targets[t]), k);
            if (k >= 2 && mim_powerlaw_fit(D, E, k, &fits[m][t]) == 0) {
                fit_ok[m][t] = 1;
                mim_powerlaw* f = &fits[m][t];
                fprintf(md, " %.4g | %.4f | %.4f | %.4f | %s |\n", f->a, f->b, f->c, f->rmse,
                        k == 2 ? "2 points: c fixed at 0" : k == 3 ? "3 points for 3 parameters: exponent weakly constrained" : "");
            } else fprintf(md, " - | - | - | - | too few points |\n");
        }

    // 3. Sampling strategies, at sizes run with more than one.
    int multi = 0;
    for (int i = 0; i < s->nsubsets; i++) multi |= strcmp(s->subsets[i].strategy, main_st) != 0;
    FILE* sdat = openf(ddir, "strategy.dat", path, sizeof path);
    if (!sdat) { rc = MIM_EIO; fclose(md); goto out; }
    int nstrat_rows = 0, has_st[3] = {0, 0, 0};
    if (multi && primary >= 0) {
        const char* sts[3] = {"random", "first", "stratified"};
        fprintf(md, "\n## Sampling strategy (%s top-1 %%)\n\n| model | target | size | random | first | stratified |\n|---|---|---|---|---|---|\n",
                mim_eval_name((mim_eval_kind)primary));
        fprintf(sdat, "# group random first stratified\n");
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
                        agg_t st = agg(s, runs, n, &res, MIM_RUN_MIM, m, s->targets[t], sts[q], s->subsets[i].size, pkey);
                        cell(md, st, 1);
                        if (st.n) { fprintf(sdat, " %.3f", 100 * st.mean); has_st[q] = 1; } else fprintf(sdat, " NaN");
                    }
                    fprintf(md, "\n"); fprintf(sdat, "\n");
                    nstrat_rows++;
                }
        }
    }
    fclose(sdat);

    // 4. Missing and failed runs.
    fprintf(md, "\n## Missing and failed runs\n\n");
    if (!nfail && !nmiss) fprintf(md, "None: every run of the grid has a finished row.\n");
    for (int i = 0; i < n; i++) {
        const cJSON* row = mim_results_find(&res, runs[i].id);
        if (row && row_ok(row)) continue;
        const cJSON* why = row ? cJSON_GetObjectItemCaseSensitive(row, "reason") : NULL;
        fprintf(md, "- `%s`: %s%s\n", runs[i].id, row ? "failed: " : "missing (not run yet)",
                row ? (cJSON_IsString(why) ? why->valuestring : "?") : "");
    }

    // Figure data: per (model, target) downstream vs size; scratch; loss curves; scatter.
    char gpath[4200];
    FILE* gp = openf(o.out, "report.gp", gpath, sizeof gpath);
    if (!gp) { rc = MIM_EIO; fclose(md); goto out; }
    fprintf(gp, "# generated by `mimscale study report`; run from this folder: gnuplot report.gp\n"
                "set terminal pngcairo size 900,600 noenhanced font ',10'\nset grid\nset key outside right\n");
    char lbl[256];
    int nfig = 0;
    const char* figs[8];
    for (int e = 0; e < nev; e++) {
        const char* en = mim_eval_name((mim_eval_kind)evs[e]);
        char key[64];
        pathf(key, sizeof key, "%s_top1", en);
        fprintf(gp, "set output 'fig-%s-vs-size.png'\nset logscale x\nset xlabel 'pre-training images (subset size, %s)'\n"
                    "set ylabel '%s top-1 (%%)'\nset title '%s top-1 vs data size'\nplot ", en, main_st, en, en);
        int first = 1;
        for (int m = 0; m < s->nmodels; m++)
            for (int t = 0; t < s->ntargets; t++) {
                char name[128];
                pathf(name, sizeof name, "%s-%s-%s.dat", en, s->models[m].label, mim_target_name(s->targets[t]));
                FILE* f = openf(ddir, name, path, sizeof path);
                if (!f) continue;
                for (int z = 0; z < nsz; z++) {
                    agg_t st = agg(s, runs, n, &res, MIM_RUN_MIM, m, s->targets[t], main_st, sizes[z], key);
                    if (st.n) fprintf(f, "%lld %.4f %.4f\n", (long long)sizes[z], 100 * st.mean, 100 * st.sd);
                }
                fclose(f);
                pathf(lbl, sizeof lbl, "%s %s", s->models[m].label, mim_target_name(s->targets[t]));
                fprintf(gp, "%s'report-data/%s' using 1:2:3 with yerrorlines title '%s'", first ? "" : ", ", name, lbl);
                first = 0;
                if (evs[e] == primary && m < 64 && fit_ok[m][t]) {
                    mim_powerlaw* fp = &fits[m][t];
                    fprintf(gp, ", [%g:%g] 100*(1-(%.10g*x**(-%.10g)+%.10g)) with lines dashtype 2 title '%s fit b=%.3f'",
                            (double)sizes[0] * 0.9, (double)sizes[nsz - 1] * 1.1, fp->a, fp->b, fp->c, lbl, fp->b);
                }
            }
        fprintf(gp, "\nunset logscale x\n");
        static char fnames[3][64];
        pathf(fnames[e], sizeof fnames[e], "fig-%s-vs-size.png", en);
        figs[nfig++] = fnames[e];
    }
    // MIM vs scratch.
    if (s->evals[MIM_EVAL_SCRATCH] && primary >= 0) {
        fprintf(gp, "set output 'fig-mim-vs-scratch.png'\nset logscale x\nset xlabel 'labelled images (subset size)'\n"
                    "set ylabel 'top-1 (%%)'\nset title 'MIM (%s) vs from scratch'\nplot ", mim_eval_name((mim_eval_kind)primary));
        int first = 1;
        for (int m = 0; m < s->nmodels; m++) {
            char name[128];
            pathf(name, sizeof name, "scratch-%s.dat", s->models[m].label);
            FILE* f = openf(ddir, name, path, sizeof path);
            if (!f) continue;
            for (int z = 0; z < nsz; z++) {
                agg_t st = agg(s, runs, n, &res, MIM_RUN_SCRATCH, m, 0, main_st, sizes[z], "scratch_top1");
                if (st.n) fprintf(f, "%lld %.4f %.4f\n", (long long)sizes[z], 100 * st.mean, 100 * st.sd);
            }
            fclose(f);
            fprintf(gp, "%s'report-data/scratch-%s.dat' using 1:2:3 with yerrorlines dashtype 2 title '%s scratch'", first ? "" : ", ",
                    s->models[m].label, s->models[m].label);
            first = 0;
            for (int t = 0; t < s->ntargets; t++)
                fprintf(gp, ", 'report-data/%s-%s-%s.dat' using 1:2:3 with yerrorlines title '%s MIM %s'", mim_eval_name((mim_eval_kind)primary),
                        s->models[m].label, mim_target_name(s->targets[t]), s->models[m].label, mim_target_name(s->targets[t]));
        }
        fprintf(gp, "\nunset logscale x\n");
        figs[nfig++] = "fig-mim-vs-scratch.png";
    }
    // Pre-training loss curves (main strategy, first seed).
    {
        fprintf(gp, "set output 'fig-loss-curves.png'\nset logscale x\nset xlabel 'images seen'\nset ylabel 'pre-training loss'\n"
                    "set title 'MAE pre-training loss'\nplot ");
        int first = 1;
        for (int i = 0; i < n; i++) {
            const mim_study_run* r = &runs[i];
            if (r->kind != MIM_RUN_MIM || r->seed != s->seeds[0] || strcmp(s->subsets[r->subset].strategy, main_st)) continue;
            char mp[4400];
            pathf(mp, sizeof mp, "%s/runs/%s/pretrain/metrics.jsonl", o.out, r->id);
            FILE* in = fopen(mp, "r");
            if (!in) continue;
            char name[200];
            pathf(name, sizeof name, "loss-%s.dat", r->id);
            FILE* f = openf(ddir, name, path, sizeof path);
            if (!f) { fclose(in); continue; }
            char* line = NULL;
            size_t cap = 0;
            while (getline(&line, &cap, in) > 0) {
                cJSON* j = cJSON_Parse(line);
                double st = num(j, "step"), l = num(j, "loss");
                if (!isnan(st) && !isnan(l)) fprintf(f, "%.0f %.6f\n", st * s->batch, l);
                cJSON_Delete(j);
            }
            free(line);
            fclose(in); fclose(f);
            pathf(lbl, sizeof lbl, "%s %s %lld", s->models[r->model].label, mim_target_name(r->target), (long long)r->size);
            fprintf(gp, "%s'report-data/%s' using 1:2 with lines title '%s'", first ? "" : ", ", name, lbl);
            first = 0;
        }
        if (first) fprintf(gp, "NaN notitle");
        fprintf(gp, "\nunset logscale x\n");
        figs[nfig++] = "fig-loss-curves.png";
    }
    // Final loss vs downstream accuracy.
    if (primary >= 0) {
        fprintf(gp, "set output 'fig-loss-vs-acc.png'\nset xlabel 'validation reconstruction loss (held-out set, fixed masks)'\n"
                    "set ylabel '%s top-1 (%%)'\nset title 'pre-training loss vs downstream accuracy (every run)'\nplot ", mim_eval_name((mim_eval_kind)primary));
        int first = 1;
        for (int m = 0; m < s->nmodels; m++) {
            char name[128];
            pathf(name, sizeof name, "scatter-%s.dat", s->models[m].label);
            FILE* f = openf(ddir, name, path, sizeof path);
            if (!f) continue;
            for (int i = 0; i < n; i++) {
                if (runs[i].kind != MIM_RUN_MIM || runs[i].model != m) continue;
                const cJSON* row = mim_results_find(&res, runs[i].id);
                double l = num(row, "val_loss"), a = num(row, pkey);
                if (isnan(l)) l = num(row, "final_loss_avg");   // rows from before validation loss
                if (row_ok(row) && !isnan(l) && !isnan(a)) fprintf(f, "%.6f %.4f\n", l, 100 * a);
            }
            fclose(f);
            fprintf(gp, "%s'report-data/%s' using 1:2 with points pointsize 1.5 title '%s'", first ? "" : ", ", name, s->models[m].label);
            first = 0;
        }
        fprintf(gp, "\n");
        figs[nfig++] = "fig-loss-vs-acc.png";
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

    // Draw.
    char log[4200];
    pathf(log, sizeof log, "%s/report-data/gnuplot.log", o.out);
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
    } else if (gst == 127) {
        fprintf(md, "Not drawn: gnuplot is not installed (Debian: `apt install gnuplot-nox`), then re-run `mimscale study report`. "
                    "The data and script are in report-data/ and report.gp.\n");
        fprintf(stderr, "warning: gnuplot not found (apt install gnuplot-nox): figures not drawn; tables written\n");
    } else {
        fprintf(md, "Not drawn: gnuplot failed (exit %d), see report-data/gnuplot.log.\n", gst);
        fprintf(stderr, "warning: gnuplot failed (exit %d), see %s\n", gst, log);
    }
    fprintf(md, "\nRaw rows: results.jsonl, results.csv. The scatter uses each run's validation reconstruction loss (held-out set, fixed masks; the training loss for rows without one); the tables show the training loss.\n");
    if (fclose(md)) rc = mim_err(MIM_EIO, "cannot write %s/report.md", o.out);
    if (!rc) printf("report: %s/report.md (%d/%d runs finished, %d failed, %d missing)%s\n", o.out, ndone, n, nfail, nmiss,
                    gst == 0 ? "" : "; figures not drawn");
out:
    mim_results_free(&res);
    free(runs);
    return rc;
}
