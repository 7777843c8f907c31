// status.c: what a study shows of its runs: the plan (runs, state, steps,
// estimated time), the results table, the measured speed, and
// `mimscale study status` (each run's row or its launcher's job state).
#include "study/internal.h"
#include "core/check.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "study/results.h"
#include "study/launch.h"
#include <inttypes.h>
#include <math.h>

// ------------------------------------------------------------------ the plan
void mim_study_fmt_time(double s, char* out, size_t cap) {
    if (!isfinite(s) || s < 0) mim_study_pathf(out, cap, "?");
    else if (s < 90) mim_study_pathf(out, cap, "%.0fs", s);
    else if (s < 5400) mim_study_pathf(out, cap, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else mim_study_pathf(out, cap, "%.0fh%02.0fm", floor(s / 3600), fmod(s / 60, 60));
}

static const char* run_state(const mim_results* res, const char* out, const mim_study_run* r) {
    cJSON* row = mim_results_find(res, r->id);
    if (row) {
        const cJSON* st = cJSON_GetObjectItemCaseSensitive(row, "status");
        return cJSON_IsString(st) && !strcmp(st->valuestring, "ok") ? "done" : "failed";
    }
    char d[4400];
    mim_study_pathf(d, sizeof d, "%s/runs/%s", out, r->id);
    return mim_study_exists(d) ? "partial" : "todo";
}

int mim_study_print_plan(const mim_study* s, const mim_study_opts* o, const mim_study_run* runs, int n, const mim_results* res, double gflops) {
    int nbl = 0;
    for (int i = 0; i < n; i++) nbl += runs[i].kind == MIM_RUN_BASELINE;
    char bls[96] = "";
    if (nbl) mim_study_pathf(bls, sizeof bls, " + %d feature baselines (raw pixels, random-init; knn / linprobe only)", nbl);
    int nmim = 0, nscr = 0, narrow = 0;
    for (int i = 0; i < n; i++) { nmim += runs[i].kind == MIM_RUN_MIM; nscr += runs[i].kind == MIM_RUN_SCRATCH; }
    for (int i = 0; i < s->nsubsets; i++) narrow |= s->subsets[i].nseeds || s->subsets[i].target_mask;
    char scr[48] = "";
    if (nscr) mim_study_pathf(scr, sizeof scr, " + %d scratch baselines", nscr);
    if (narrow)   // some subsets have their own seeds / targets: the product does not hold
        printf("study %s (%s): %d runs = %d MIM runs over %d subsets x %d models x up to %d targets (seeds per subset)%s%s; budget %g %s per run\n",
               s->name, s->path, n, nmim, s->nsubsets, s->nmodels, s->ntargets, scr, bls, s->budget, mim_budget_name(s->budget_kind));
    else
        printf("study %s (%s): %d runs = %d seeds x %d subsets x %d models x %d targets%s%s; budget %g %s per run\n", s->name, s->path, n,
               s->nseeds, s->nsubsets, s->nmodels, s->ntargets, scr, bls, s->budget, mim_budget_name(s->budget_kind));
    printf("folder %s; estimates at %.1f GFLOP/s\n\n", o->out, gflops);
    printf("%-52s %-7s %8s %8s %10s %11s %9s\n", "run", "state", "steps", "epochs", "images", "PFLOP(pre)", "est.time");
    double tot = 0, left = 0;
    int ndone = 0;
    for (int i = 0; i < n; i++) {
        const mim_study_run* r = &runs[i];
        const char* st = run_state(res, o->out, r);
        char tm[32];
        mim_study_fmt_time(r->est_flops / (gflops * 1e9), tm, sizeof tm);
        if (r->kind == MIM_RUN_MIM)
            printf("%-52s %-7s %8" PRId64 " %8.2f %10" PRId64 " %11.4f %9s\n", r->id, st, r->steps, r->epochs, r->images_seen, r->flops / 1e15, tm);
        else if (r->kind == MIM_RUN_BASELINE)   // no training: its time is the feature extraction and the probes
            printf("%-52s %-7s %8s %8s %10s %11s %9s\n", r->id, st, "-", "-", "-", "-", tm);
        else
            printf("%-52s %-7s %8s %8s %10s %11.4f %9s\n", r->id, st, "-", "-", "-", r->flops / 1e15, tm);
        tot += r->est_flops;
        if (strcmp(st, "done")) left += r->est_flops; else ndone++;
    }
    char t1[32], t2[32];
    mim_study_fmt_time(tot / (gflops * 1e9), t1, sizeof t1);
    mim_study_fmt_time(left / (gflops * 1e9), t2, sizeof t2);
    printf("\ntotal %.3f PFLOP (evaluations included), about %s; %d/%d done, %s left\n", tot / 1e15, t1, ndone, n, t2);
    return 0;
}

// The results so far, one line per run, on stdout.
void mim_study_print_table(const mim_study* s, const mim_study_run* runs, int n, const mim_results* res) {
    printf("\n%-14s %-10s %-10s %7s %-7s %8s", "model", "target", "strategy", "size", "status", "loss");
    for (int e = 0; e < MIM_EVAL_COUNT; e++) if (s->evals[e]) printf(" %9s", mim_eval_name((mim_eval_kind)e));
    printf(" %8s\n", "wall_s");
    for (int i = 0; i < n; i++) {
        const mim_study_run* r = &runs[i];
        const cJSON* row = mim_results_find(res, r->id);
        const cJSON* st = row ? cJSON_GetObjectItemCaseSensitive(row, "status") : NULL;
        const cJSON* l = row ? cJSON_GetObjectItemCaseSensitive(row, "final_loss_avg") : NULL;
        const cJSON* w = row ? cJSON_GetObjectItemCaseSensitive(row, "wall_s") : NULL;
        int px = r->kind == MIM_RUN_BASELINE && r->baseline == MIM_BASELINE_PIXELS;
        printf("%-14s %-10s %-10s %7lld %-7s", px ? "pixels" : s->models[r->model].label,
               r->kind == MIM_RUN_MIM ? mim_target_name(r->target) : r->kind == MIM_RUN_SCRATCH ? "(scratch)" : px ? "(baseline)" : "(random)",
               mim_study_run_strategy(s, r), (long long)r->size, cJSON_IsString(st) ? st->valuestring : "missing");
        if (cJSON_IsNumber(l)) printf(" %8.4f", l->valuedouble); else printf(" %8s", "-");
        for (int e = 0; e < MIM_EVAL_COUNT; e++) {
            if (!s->evals[e]) continue;
            char key[64];
            mim_study_pathf(key, sizeof key, "%s_top1", mim_eval_name((mim_eval_kind)e));
            const cJSON* v = row ? cJSON_GetObjectItemCaseSensitive(row, key) : NULL;
            if (cJSON_IsNumber(v)) printf(" %8.2f%%", 100 * v->valuedouble); else printf(" %9s", "-");
        }
        if (cJSON_IsNumber(w)) printf(" %8.0f\n", w->valuedouble); else printf(" %8s\n", "-");
    }
    fflush(stdout);
}

// Training speed measured from finished rows (FLOPs / wall seconds), or 0.
double mim_study_measured_gflops(const mim_study* s, const mim_study_run* runs, int n, const mim_results* res) {
    double fl = 0, sec = 0;
    for (int i = 0; i < n; i++) {
        cJSON* row = mim_results_find(res, runs[i].id);
        const cJSON* w = row ? cJSON_GetObjectItemCaseSensitive(row, "wall_s") : NULL;
        const cJSON* st = row ? cJSON_GetObjectItemCaseSensitive(row, "status") : NULL;
        if (!cJSON_IsNumber(w) || !cJSON_IsString(st) || strcmp(st->valuestring, "ok") || w->valuedouble < 1) continue;
        fl += runs[i].est_flops; sec += w->valuedouble;
    }
    return sec > 0 ? fl / sec / 1e9 : 0;
}

int mim_study_status(const mim_study* s, const mim_study_opts* oin, mim_launcher* l) {
    char outbuf[2048], binbuf[2048], rpath[4200];
    mim_study_opts o;
    mim_study_opts_resolve(s, oin, &o, outbuf, sizeof outbuf, binbuf, sizeof binbuf);
    mim_study_run* runs = NULL;
    int n = mim_study_expand(s, &runs);
    if (n < 0) return n;
    mim_study_pathf(rpath, sizeof rpath, "%s/results.jsonl", o.out);
    mim_results res;
    int rc = mim_results_load(&res, rpath);
    if (rc) { free(runs); return rc; }
    static const char* names[] = {"done", "failed", "pending", "running", "not submitted"};
    int count[5] = {0};
    printf("%-52s %-13s %-24s %s\n", "run", "state", l->name, "log");
    for (int i = 0; i < n; i++) {
        mim_launch_info info;
        if ((rc = l->status(l, &runs[i], &info)) < 0) break;
        int st = mim_study_row_status(mim_results_find(&res, runs[i].id));
        if (st < 0 && info.state == MIM_LAUNCH_ENDED) {   // its row may have come since results.jsonl was read
            mim_results fresh;
            if ((rc = mim_results_load(&fresh, rpath))) break;
            mim_results_free(&res);
            res = fresh;
            st = mim_study_row_status(mim_results_find(&res, runs[i].id));
        }
        int k = st == 0 ? 0 : st == 1 ? 1 : info.state == MIM_LAUNCH_PENDING ? 2 : info.state == MIM_LAUNCH_RUNNING ? 3
              : info.state == MIM_LAUNCH_ENDED ? 1 : 4;   // a job that ended without a row failed
        count[k]++;
        char job[128] = "-";
        if (info.job[0]) mim_study_pathf(job, sizeof job, "job %s %s", info.job, info.detail);
        printf("%-52s %-13s %-24s %s\n", runs[i].id, names[k], job, info.log[0] ? info.log : "-");
    }
    if (rc >= 0)
        printf("\n%d runs: %d done, %d failed, %d pending, %d running, %d not submitted\n", n, count[0], count[1], count[2], count[3], count[4]);
    fflush(stdout);
    mim_results_free(&res);
    free(runs);
    return rc < 0 ? rc : 0;
}
