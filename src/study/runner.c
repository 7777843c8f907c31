// runner.c: `mimscale study run`: prepares the data (pack, index, subset
// files), then runs each grid point that has no results row yet as
// subprocesses of the mimscale binary (pretrain --resume, then the
// evaluations), appending one row per run to results.jsonl. Baseline runs
// pre-train nothing: their knn / linprobe run on raw pixels or a random-init
// encoder, with the MIM rows' flags, probe and eval sets.
//
// Crash safety: pretrain resumes from its last checkpoint (--resume);
// pretrain.done marks a finished pre-training; a finished evaluation leaves
// <eval>.json (written by rename), anything else is re-run. The row is the
// last thing written for a run, in one append, so a killed study either has
// the row (the run is skipped) or not (the run continues from its files).
// Children get SIGKILL when the runner dies (PR_SET_PDEATHSIG), so a re-run
// never races an orphan writing into the same run folder; a lock file keeps
// two runners off one study folder.
//
// Workers (study/launch.h): mim_study_run_one is one run of the above for
// `mimscale study run-one` and every launcher; its row goes in under a
// flock of results.jsonl.lock, which the sequential loop takes too. With
// o->jobs > 1 or a launcher, run_launched submits the runs instead of
// running them here (local: forked workers, waited for; slurm: sbatch jobs,
// reconciled with `scontrol show job` on the next call).
//
// SIGTERM / SIGINT (with the handlers of train/signals.h installed, as the
// CLI does): the signal goes on to the running child (pretrain and finetune
// checkpoint and exit 4; knn / linprobe just end), the runner waits for it,
// records nothing for that run (no marker, no evaluation file, no row) and
// returns MIM_STUDY_STOPPED; a re-run resumes it. A row that cannot be
// appended (full disk, I/O error) stops the study with the error, after
// io_retries more tries; results.jsonl keeps every earlier row.
#include "study/study.h"
#include "study/internal.h"
#include "core/jsonfile.h"
#include "study/results.h"
#include "study/launch.h"
#include "core/check.h"
#include "core/prof.h"
#include "core/fault.h"
#include "model/teacher.h"
#include "train/dist.h"
#include "train/signals.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void mim_study_opts_resolve(const mim_study* s, const mim_study_opts* o, mim_study_opts* res, char* outbuf,
                            size_t outcap, char* binbuf, size_t bincap) {
    *res = *o;
    if (!o->out || !o->out[0]) { mim_study_pathf(outbuf, outcap, "runs/study-%s", s->name); res->out = outbuf; }
    if (!o->bin || !o->bin[0]) {
        const char* env = getenv("MIMSCALE_BIN");
        if (env && env[0]) mim_study_pathf(binbuf, bincap, "%s", env);
        else {
            ssize_t n = readlink("/proc/self/exe", binbuf, bincap - 1);
            if (n < 0) n = 0;
            binbuf[n] = 0;
            if (!n) mim_study_pathf(binbuf, bincap, "mimscale");
        }
        res->bin = binbuf;
    }
}

// ------------------------------------------------------------------ one run
// Pre-training metrics: last loss, mean of the last 5 logged losses, last step and time.
static void pretrain_metrics(const char* run_dir, cJSON* row) {
    char path[4200];
    mim_study_pathf(path, sizeof path, "%s/pretrain/metrics.jsonl", run_dir);
    char* t = mim_study_read_text(path, 0);
    if (!t) return;
    double last5[5];
    int n = 0;
    double tsec = -1, step = -1, val = NAN;
    for (char* line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON* j = cJSON_Parse(line);
        const cJSON* v = cJSON_GetObjectItemCaseSensitive(j, "val_loss");
        if (cJSON_IsNumber(v)) val = v->valuedouble;
        const cJSON* l = cJSON_GetObjectItemCaseSensitive(j, "loss");
        if (cJSON_IsNumber(l)) {
            last5[n % 5] = l->valuedouble; n++;
            const cJSON* ts = cJSON_GetObjectItemCaseSensitive(j, "time_s");
            const cJSON* st = cJSON_GetObjectItemCaseSensitive(j, "step");
            if (cJSON_IsNumber(ts)) tsec = ts->valuedouble;
            if (cJSON_IsNumber(st)) step = st->valuedouble;
        }
        cJSON_Delete(j);
    }
    free(t);
    if (!n) return;
    double sum = 0;
    int m = n < 5 ? n : 5;
    for (int i = 0; i < m; i++) sum += last5[i];
    cJSON_AddNumberToObject(row, "final_loss", last5[(n - 1) % 5]);
    cJSON_AddNumberToObject(row, "final_loss_avg", sum / m);
    if (!isnan(val)) cJSON_AddNumberToObject(row, "val_loss", val);
    if (tsec >= 0) cJSON_AddNumberToObject(row, "pretrain_s", tsec);
    if (step >= 0) cJSON_AddNumberToObject(row, "last_logged_step", step);
}

static const char* kind_name(mim_run_kind k) { return k == MIM_RUN_MIM ? "mim" : k == MIM_RUN_SCRATCH ? "scratch" : "baseline"; }

// The fields every row has. A baseline row (the report's contract): "kind":
// "baseline", "baseline": "pixels" ("model": "pixels") or "random" ("model":
// the model's label, as in the MIM rows), "features" as the commands say it,
// size = the train set of its knn / linprobe (the probe set, else the subset).
static cJSON* base_row(const mim_study* s, const mim_study_run* r) {
    const mim_study_model* m = &s->models[r->model];
    int px = r->kind == MIM_RUN_BASELINE && r->baseline == MIM_BASELINE_PIXELS;
    cJSON* j = cJSON_CreateObject();
    CHECK(j);
    cJSON_AddStringToObject(j, "id", r->id);
    cJSON_AddStringToObject(j, "study", s->name);
    cJSON_AddStringToObject(j, "kind", kind_name(r->kind));
    cJSON_AddStringToObject(j, "status", "ok");
    if (r->kind == MIM_RUN_BASELINE) {
        cJSON_AddStringToObject(j, "baseline", mim_baseline_name(r->baseline));
        cJSON_AddStringToObject(j, "features", px ? "pixels" : "random-init");
    }
    cJSON_AddStringToObject(j, "model", px ? "pixels" : m->label);
    if (!px) {
        cJSON_AddStringToObject(j, "preset", m->preset);
        cJSON_AddNumberToObject(j, "patch", m->patch);
    }
    if (r->kind != MIM_RUN_BASELINE) {
        cJSON_AddNumberToObject(j, "dec_dim", m->dec_dim);
        cJSON_AddNumberToObject(j, "dec_depth", m->dec_depth);
        cJSON_AddNumberToObject(j, "dec_heads", m->dec_heads);
    }
    cJSON_AddNumberToObject(j, "img", s->img);
    cJSON_AddNumberToObject(j, "in_chans", s->in_chans);
    cJSON_AddStringToObject(j, "target", r->kind == MIM_RUN_MIM ? mim_target_name(r->target) : "none");
    cJSON_AddStringToObject(j, "strategy", mim_study_run_strategy(s, r));
    cJSON_AddNumberToObject(j, "size", (double)r->size);
    cJSON_AddNumberToObject(j, "subset_seed", (double)s->subset_seed);
    cJSON_AddNumberToObject(j, "seed", (double)r->seed);
    cJSON_AddNumberToObject(j, "eval_size", (double)s->eval_size);
    cJSON_AddNumberToObject(j, "probe_size", (double)s->probe_size);
    if (r->kind == MIM_RUN_MIM) {
        cJSON_AddStringToObject(j, "budget_kind", mim_budget_name(s->budget_kind));
        cJSON_AddNumberToObject(j, "budget", s->budget);
        cJSON_AddNumberToObject(j, "batch", s->batch);
        cJSON_AddNumberToObject(j, "blr", s->blr);
        cJSON_AddNumberToObject(j, "steps", (double)r->steps);
        cJSON_AddNumberToObject(j, "epochs", r->epochs);
        cJSON_AddNumberToObject(j, "images_seen", (double)r->images_seen);
        cJSON_AddNumberToObject(j, "params", (double)mim_config_params_total(&r->cfg));
        cJSON_AddNumberToObject(j, "flops_per_image", r->flops_per_image);
    } else {
        cJSON_AddNumberToObject(j, "params", px ? 0 : (double)mim_config_params_encoder(&r->cfg));
    }
    cJSON_AddNumberToObject(j, "flops", r->flops);
    return j;
}

static void add_reason(char* reason, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static void add_reason(char* reason, size_t cap, const char* fmt, ...) {
    size_t n = strlen(reason);
    if (n && n + 3 < cap) { strcat(reason, "; "); n += 2; }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason + n, cap - n, fmt, ap);
    va_end(ap);
}

// Runs (or finishes) run r; returns its row (status ok or failed), or NULL
// when a stop signal came (nothing of this run recorded; a re-run resumes).
// The steps of a run as a mask for do_run: bit 0 pretrain, bit 1 + e evaluation e.
#define STEP_PRETRAIN 1u
#define STEP_EVAL(e) (2u << (e))
#define STEP_ALL (~0u)

// The evaluations run r has (baselines: the probe ones; scratch: its fine-tune).
static int run_has_eval(const mim_study* s, const mim_study_run* r, int e) {
    if (!s->evals[e]) return 0;
    if (r->kind == MIM_RUN_BASELINE) return e == MIM_EVAL_KNN || e == MIM_EVAL_LINPROBE;
    return (r->kind == MIM_RUN_MIM) != (e == MIM_EVAL_SCRATCH);
}

// The pretrain argv as `srun` runs it for o->ranks MPI ranks: srun
// --ntasks=N [--mpi=X] --kill-on-bad-exit=1 <argv>, each rank --batch / N
// (rank r takes global micro-batch k N + r: the global batch stays the study's).
static char** mpi_wrap(char** argv, const mim_study_opts* o) {
    int n = 0;
    while (argv[n]) n++;
    char** w = calloc((size_t)n + 6, sizeof *w);
    if (!w) { mim_argv_free(argv); mim_err(MIM_ENOMEM, "out of memory"); return NULL; }
    int k = 0, oom = 0;
    oom |= !(w[k++] = strdup("srun"));
    oom |= asprintf(&w[k++], "--ntasks=%d", o->ranks) < 0;
    if (o->mpi && o->mpi[0]) oom |= asprintf(&w[k++], "--mpi=%s", o->mpi) < 0;
    oom |= !(w[k++] = strdup("--kill-on-bad-exit=1"));
    for (int i = 0; i < n; i++) {
        int b;
        if (sscanf(argv[i], "--batch=%d", &b) == 1 && b % o->ranks == 0) {
            oom |= asprintf(&w[k++], "--batch=%d", b / o->ranks) < 0;
            free(argv[i]);
        } else w[k++] = argv[i];
    }
    free(argv);
    if (oom) { mim_argv_free(w); mim_err(MIM_ENOMEM, "out of memory"); return NULL; }
    return w;
}

// Runs (or resumes) the steps of run r in allow that are not done yet, and
// builds its row. A step outside allow that is not done sets *incomplete
// (then no row: NULL); so does a stop signal (NULL, *incomplete 0).
static cJSON* do_run(const mim_study* s, const mim_study_opts* o, const mim_study_paths* p, const mim_study_run* r,
                     const char* progress, unsigned allow, int* incomplete) {
    *incomplete = 0;
    double t0 = mim_now_s();
    char run_dir[4200], buf[4400], log[4400], subset[4400], ckpt[4600], reason[2048] = "";
    mim_study_pathf(run_dir, sizeof run_dir, "%s/runs/%s", o->out, r->id);
    mim_study_subset_path(s, p, r, subset, sizeof subset);
    cJSON* row = base_row(s, r);
    int failed = 0;
    if (mim_study_mkdir_p(run_dir)) { add_reason(reason, sizeof reason, "%s", mim_err_msg()); failed = 1; goto finish; }
    ckpt[0] = 0;
    if (r->kind == MIM_RUN_MIM) {
        char done[4400];
        mim_study_pathf(done, sizeof done, "%s/pretrain.done", run_dir);
        if (!mim_study_exists(done) && !(allow & STEP_PRETRAIN)) { *incomplete = 1; cJSON_Delete(row); return NULL; }
        if (!mim_study_exists(done)) {
            if (!o->quiet) fprintf(stderr, "%s %s: pretrain (%" PRId64 " steps%s)\n", progress, r->id, r->steps, o->ranks > 1 ? ", MPI through srun" : "");
            char** argv = mim_study_pretrain_argv(s, r, p, o->bin, run_dir, subset);
            if (argv && o->ranks > 1) argv = mpi_wrap(argv, o);
            if (!argv) { add_reason(reason, sizeof reason, "%s", mim_err_msg()); failed = 1; goto finish; }
            mim_study_pathf(log, sizeof log, "%s/pretrain.log", run_dir);
            off_t off = 0;
            int rc = mim_study_run_cmd(argv, log, &off);
            mim_argv_free(argv);
            if (mim_signals_stop_requested()) { cJSON_Delete(row); return NULL; }
            if (rc) {
                char ll[512];
                if (rc < 0) mim_study_pathf(ll, sizeof ll, "%s", mim_err_msg()); else mim_study_last_line(log, off, ll, sizeof ll);
                add_reason(reason, sizeof reason, "pretrain exited with status %d (runs/%s/pretrain.log): %s", rc, r->id, ll);
                failed = 1;
                goto finish;
            }
            if (mim_study_write_atomic(done, "done\n")) { add_reason(reason, sizeof reason, "%s", mim_err_msg()); failed = 1; goto finish; }
        }
        pretrain_metrics(run_dir, row);
        mim_study_pathf(buf, sizeof buf, "%s/pretrain/latest", run_dir);
        char* latest = mim_study_read_text(buf, 0);
        if (latest) latest[strcspn(latest, "\r\n")] = 0;
        if (!latest || !latest[0]) { add_reason(reason, sizeof reason, "pretrain left no checkpoint (%s)", buf); free(latest); failed = 1; goto finish; }
        mim_study_pathf(ckpt, sizeof ckpt, "%s/pretrain/%s/model.safetensors", run_dir, latest);
        free(latest);
    }
    for (int e = 0; e < MIM_EVAL_COUNT; e++) {
        if (!run_has_eval(s, r, e)) continue;   // baselines: the probe evaluations; scratch is its own run
        const char* en = mim_eval_name((mim_eval_kind)e);
        char jpath[4400];
        mim_study_pathf(jpath, sizeof jpath, "%s/%s.json", run_dir, en);
        cJSON* res = mim_json_read_file(jpath);   // written by the command when it finished (core/jsonfile.h)
        if (res && !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(res, "top1"))) { cJSON_Delete(res); res = NULL; }
        if (!res && !(allow & STEP_EVAL(e))) { *incomplete = 1; continue; }   // another job's step
        if (!res) {
            if (!o->quiet) fprintf(stderr, "%s %s: %s\n", progress, r->id, en);
            char** argv = mim_study_eval_argv(s, r, (mim_eval_kind)e, p, o->bin, run_dir, subset, ckpt);
            if (!argv) { add_reason(reason, sizeof reason, "%s", mim_err_msg()); failed = 1; continue; }
            mim_study_pathf(log, sizeof log, "%s/%s.log", run_dir, en);
            off_t off = 0;
            int rc = mim_study_run_cmd(argv, log, &off);
            mim_argv_free(argv);
            if (mim_signals_stop_requested()) { cJSON_Delete(row); return NULL; }
            if (rc == 0) {
                res = mim_json_read_file(jpath);
                if (res && !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(res, "top1"))) { cJSON_Delete(res); res = NULL; }
            }
            if (!res) {
                char ll[512];
                if (rc < 0) mim_study_pathf(ll, sizeof ll, "%s", mim_err_msg()); else mim_study_last_line(log, off, ll, sizeof ll);
                if (rc) add_reason(reason, sizeof reason, "%s exited with status %d (runs/%s/%s.log): %s", en, rc, r->id, en, ll);
                else add_reason(reason, sizeof reason, "%s wrote no result with \"top1\" to runs/%s/%s.json (runs/%s/%s.log)", en, r->id, en, r->id, en);
                failed = 1;
                continue;
            }
        }
        // Accuracies in [0, 1] in the row; a command that prints percentages
        // (top1 > 1: no 10-class model is below 1%) is rescaled.
        static const char* keys[] = {"top1", "top5", "best_top1"};
        const cJSON* t1 = cJSON_GetObjectItemCaseSensitive(res, "top1");
        double scale = cJSON_IsNumber(t1) && t1->valuedouble > 1.0 ? 0.01 : 1.0;
        for (int k = 0; k < 3; k++) {
            const cJSON* v = cJSON_GetObjectItemCaseSensitive(res, keys[k]);
            if (!cJSON_IsNumber(v)) continue;
            mim_study_pathf(buf, sizeof buf, "%s_%s", en, keys[k]);
            cJSON_AddNumberToObject(row, buf, v->valuedouble * scale);
        }
        cJSON_Delete(res);
    }
    if (*incomplete && !failed) { cJSON_Delete(row); return NULL; }   // other steps still to come: no row yet
    *incomplete = 0;
finish:
    if (allow == STEP_ALL || failed) {   // the knn / linprobe feature cache (study.c); absent is fine
        mim_study_pathf(buf, sizeof buf, "%s/features.safetensors", run_dir);
        unlink(buf);
    }
    if (failed) {
        cJSON_ReplaceItemInObjectCaseSensitive(row, "status", cJSON_CreateString("failed"));
        cJSON_AddStringToObject(row, "reason", reason);
    }
    cJSON_AddNumberToObject(row, "wall_s", mim_now_s() - t0);
    time_t t = time(NULL);
    char ts[64];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", localtime(&t));
    cJSON_AddStringToObject(row, "finished_at", ts);
    return row;
}

// ------------------------------------------------------------------ workers
// run-one for run r of the resolved options o: the whole run, or with
// o->only one step of it (the Slurm launcher's jobs: pre-training, then each
// evaluation as its own job). Each step has its own lock (a second worker on
// the same step is refused). The row is appended under the run's row lock by
// whichever worker finds every step done (each writes its step's result
// before it looks), or at once by a step that fails.
static int run_one_at(const mim_study* s, const mim_study_opts* o, const mim_study_run* r) {
    mim_study_paths p;
    mim_study_data_paths(s, o->out, &p);
    char subset[4400], run_dir[4200], lpath[4400], rlpath[4400], rpath[4200], cpath[4200];
    // a feature baseline on the probe set reads the probe subset (its size is the probe's, not a subset's)
    if (r->kind == MIM_RUN_BASELINE && s->probe_size > 0) mim_study_probe_path(s, &p, subset, sizeof subset);
    else mim_study_subset_path(s, &p, r, subset, sizeof subset);
    if (!mim_study_exists(subset))
        return mim_err(MIM_ENOTFOUND, "%s not found: the study's data is not prepared (`mimscale study run` prepares it before it starts workers)", subset);
    unsigned allow = STEP_ALL;
    const char* only = o->only && o->only[0] ? o->only : NULL;
    if (only && !strcmp(only, "pretrain")) {
        if (r->kind != MIM_RUN_MIM) return mim_err(MIM_EARG, "--only pretrain: run %s has no pre-training (a %s run)", r->id, kind_name(r->kind));
        allow = STEP_PRETRAIN;
    } else if (only) {
        int e = -1;
        for (int k = 0; k < MIM_EVAL_COUNT; k++) if (!strcmp(only, mim_eval_name((mim_eval_kind)k))) e = k;
        if (e < 0 || !run_has_eval(s, r, e)) return mim_err(MIM_EARG, "--only %s: not a step of run %s (pretrain or one of its evaluations)", only, r->id);
        allow = STEP_EVAL(e);
    }
    mim_study_pathf(run_dir, sizeof run_dir, "%s/runs/%s", o->out, r->id);
    int rc = mim_study_mkdir_p(run_dir);
    if (rc) return rc;
    mim_study_pathf(lpath, sizeof lpath, "%s/.lock%s%s", run_dir, only ? "-" : "", only ? only : "");
    int lock = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB)) {
        if (lock >= 0) close(lock);
        return mim_err(MIM_EIO, "run %s%s%s is being run by another worker (lock %s)", r->id, only ? ", step " : "", only ? only : "", lpath);
    }
    mim_study_pathf(rpath, sizeof rpath, "%s/results.jsonl", o->out);
    mim_study_pathf(cpath, sizeof cpath, "%s/results.csv", o->out);
    mim_results res;
    if ((rc = mim_results_load(&res, rpath))) { close(lock); return rc; }
    int old = mim_study_row_status(mim_results_find(&res, r->id));
    mim_results_free(&res);
    if (old == 0 || (old == 1 && !o->retry_failed)) {
        if (!o->quiet) fprintf(stderr, "study: run %s already has a row (%s); nothing to do\n", r->id, old ? "failed" : "ok");
        close(lock);
        return old;
    }
    // --threads: a cap on every command's threads (N workers share the cores).
    mim_study sc = *s;
    if (o->threads > 0) {
        if (sc.threads == 0 || sc.threads > o->threads) sc.threads = o->threads;
        if (sc.eval_threads == 0 || sc.eval_threads > o->threads) sc.eval_threads = o->threads;
    }
    if (o->ranks > 1 && !mim_dist_built()) {
        close(lock);
        return mim_err(MIM_EARG, "--ranks %d: this mimscale was built without MPI (install libopenmpi-dev and rebuild)", o->ranks);
    }
    if (o->ranks > 1 && s->batch % o->ranks) {
        close(lock);
        return mim_err(MIM_EARG, "--ranks %d does not divide the study's batch %d", o->ranks, s->batch);
    }
    char prog[160];
    mim_study_pathf(prog, sizeof prog, "[worker %d]", (int)getpid());
    int incomplete = 0;
    cJSON* row = do_run(&sc, o, &p, r, prog, allow, &incomplete);
    if (!row && !incomplete) {
        fprintf(stderr, "study: stopped by signal %d during run %s; nothing recorded for it (its checkpoints are kept)\n",
                mim_signals_stop_requested(), r->id);
        close(lock);
        return MIM_STUDY_STOPPED;
    }
    // The row: under the run's row lock, if no worker appended it meanwhile.
    mim_study_pathf(rlpath, sizeof rlpath, "%s/.lock-row", run_dir);
    int rowlock = open(rlpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    while (rowlock >= 0 && flock(rowlock, LOCK_EX) && errno == EINTR) {}
    if ((rc = mim_results_load(&res, rpath))) { cJSON_Delete(row); if (rowlock >= 0) close(rowlock); close(lock); return rc; }
    old = mim_study_row_status(mim_results_find(&res, r->id));
    mim_results_free(&res);
    if (old == 0 || (old == 1 && !o->retry_failed)) {   // another step's worker wrote it
        cJSON_Delete(row);
        if (rowlock >= 0) close(rowlock);
        close(lock);
        return old;
    }
    if (!row) {   // this step is done: collect the others' results (runs nothing)
        row = do_run(&sc, o, &p, r, prog, 0u, &incomplete);
        if (!row) {
            if (!o->quiet) fprintf(stderr, "study: run %s: step %s done; its row waits for the run's other steps\n", r->id, only ? only : "?");
            if (rowlock >= 0) close(rowlock);
            close(lock);
            return incomplete ? 0 : MIM_STUDY_STOPPED;
        }
    }
    int st = mim_study_row_status(row);
    int rl = mim_study_results_lock(o->out);
    for (int t = 0; (rc = mim_results_append(rpath, row)) == MIM_EIO &&
                    mim_retry_wait(t, o->io_retries, "results append", mim_err_msg()); t++) {}
    cJSON_Delete(row);
    if (!rc && !(rc = mim_results_load(&res, rpath))) {   // results.csv from every worker's rows
        for (int t = 0; (rc = mim_results_write_csv(&res, cpath)) == MIM_EIO &&
                        mim_retry_wait(t, o->io_retries, "results.csv write", mim_err_msg()); t++) {}
        mim_results_free(&res);
    }
    mim_study_results_unlock(rl);
    if (rowlock >= 0) close(rowlock);
    close(lock);
    return rc ? rc : st;
}

// The resolved options (paths into outbuf / binbuf, 2048 bytes each) and
// the expanded grid with its estimates (teacher forward included): what
// every entry point of the runner starts from. The run count, or < 0.
static int plan_load(const mim_study* s, const mim_study_opts* oin, mim_study_opts* o, char* outbuf, char* binbuf,
                     mim_study_run** runs) {
    mim_study_opts_resolve(s, oin, o, outbuf, 2048, binbuf, 2048);
    mim_study_teacher_shape ts;
    mim_study_teacher_shape_read(s, &ts);
    *runs = NULL;
    return mim_study_expand_est(s, &ts, runs);
}

int mim_study_run_one(const mim_study* s, const mim_study_opts* oin, const char* id) {
    char outbuf[2048], binbuf[2048];
    mim_study_opts o;
    mim_study_run* runs;
    int n = plan_load(s, oin, &o, outbuf, binbuf, &runs);
    if (n < 0) return n;
    int i = 0;
    while (i < n && strcmp(runs[i].id, id)) i++;
    int rc = i < n ? run_one_at(s, &o, &runs[i])
                   : mim_err(MIM_ENOTFOUND, "study %s has no run %s (`mimscale study run %s --dry-run` lists them)", s->name, id, s->path);
    free(runs);
    return rc;
}

// study run through a launcher: every run without a row (or with a failed
// one, --retry-failed) whose worker is not queued or running already is
// submitted; then, for a launcher whose workers are this process's
// children (local), waits for them all. The data is prepared by then.
static int run_launched(const mim_study* s, const mim_study_opts* o, const mim_study_run* runs, int n, mim_results* res,
                        mim_launcher* l, int done, int failed) {
    char rpath[4200], cpath[4200];
    mim_study_pathf(rpath, sizeof rpath, "%s/results.jsonl", o->out);
    mim_study_pathf(cpath, sizeof cpath, "%s/results.csv", o->out);
    int max_active = !strcmp(l->name, "local") ? (o->jobs > 1 ? o->jobs : 1) : 1 << 30;
    int next = 0, active = 0, submitted = 0, queued = 0, attempted = 0, rc = 0, stopsig = 0;
    double t_start = mim_now_s();
    for (;;) {
        int sig = mim_signals_stop_requested();
        if (sig && !stopsig) { stopsig = sig; l->signal(l, sig); }   // SIGTERM reaches every worker
        while (!stopsig && active < max_active && next < n && !(o->max_runs && attempted >= o->max_runs)) {
            const mim_study_run* r = &runs[next++];
            int st = mim_study_row_status(mim_results_find(res, r->id));
            if (st == 0 || (st == 1 && !o->retry_failed)) continue;
            mim_launch_info info;
            if ((rc = l->status(l, r, &info)) < 0) goto out;
            if (info.state == MIM_LAUNCH_PENDING || info.state == MIM_LAUNCH_RUNNING) {
                if (!o->quiet) fprintf(stderr, "study: run %s: already %s (%s job %s), not submitted again\n", r->id,
                                       info.state == MIM_LAUNCH_PENDING ? "queued" : "running", l->name, info.job);
                queued++;
                continue;
            }
            if (info.state == MIM_LAUNCH_ENDED) {   // it may have ended, with its row, since results.jsonl was read
                mim_results fresh;
                if ((rc = mim_results_load(&fresh, rpath))) goto out;
                mim_results_free(res);
                *res = fresh;
                st = mim_study_row_status(mim_results_find(res, r->id));
                if (st == 0 || (st == 1 && !o->retry_failed)) { if (st == 0) done++; else failed++; continue; }
            }
            if ((rc = l->submit(l, r)) < 0) goto out;
            attempted++; submitted++; active++;
        }
        char id[256];
        int wst = 0, pr = l->poll(l, id, sizeof id, &wst);
        int more = !stopsig && next < n && !(o->max_runs && attempted >= o->max_runs);
        if (pr < 0 || (pr == 0 && active == 0 && !more)) break;
        if (pr == 0) { struct timespec ts = {0, 20 * 1000 * 1000}; nanosleep(&ts, NULL); continue; }
        active--;
        mim_results fresh;
        if ((rc = mim_results_load(&fresh, rpath))) goto out;
        mim_results_free(res);
        *res = fresh;
        int st = mim_study_row_status(mim_results_find(res, id));
        if (st == 0) done++;
        else if (st == 1) {
            failed++;
            const cJSON* why = cJSON_GetObjectItemCaseSensitive(mim_results_find(res, id), "reason");
            fprintf(stderr, "study: run %s FAILED: %s\n", id, cJSON_IsString(why) ? why->valuestring : "?");
        } else if (wst != MIM_STUDY_STOPPED) {
            fprintf(stderr, "study: the worker of run %s ended with status %d and no row (see its messages above)\n", id, wst);
            if (!rc) rc = 1;
        }
        if (!o->quiet && !stopsig) fprintf(stderr, "[%d/%d done, %d failed, %d running]\n", done, n, failed, active);
    }
    if (strcmp(l->name, "local")) {   // detached workers (slurm): submit what was queued, report it
        int njobs = 0;
        if (l->flush && (njobs = l->flush(l)) < 0) { rc = njobs; goto out; }
        if (!o->quiet || submitted || queued)
            fprintf(stderr, "study %s: %d runs, %d done, %d failed; submitted %d run(s) as %d %s job array(s), %d already queued or running; "
                    "`mimscale study status %s` shows their state\n", s->name, n, done, failed, submitted, njobs, l->name, queued, s->path);
        rc = 0;
        goto out;
    }
    if (stopsig) {
        fprintf(stderr, "\nstudy: stopped by signal %d; nothing recorded for the runs that were running (their checkpoints are kept); "
                "run the same command again to resume\n", stopsig);
        rc = MIM_STUDY_STOPPED;
        goto out;
    }
    if (!o->quiet) {
        char t[32];
        mim_study_fmt_time(mim_now_s() - t_start, t, sizeof t);
        fprintf(stderr, "study %s: %d/%d runs done, %d failed, this session %s; results %s\n", s->name, done, n, failed, t, rpath);
    }
    if (rc >= 0) rc = done == n ? 0 : 1;
    if (res->n && !mim_study_exists(cpath)) mim_results_write_csv(res, cpath);
    if (!o->quiet) mim_study_print_table(s, runs, n, res);
out:
    return rc;
}

int mim_study_teacher_shape_read(const mim_study* s, mim_study_teacher_shape* ts) {
    memset(ts, 0, sizeof *ts);
    int want = 0;
    for (int t = 0; t < s->ntargets; t++) want |= s->targets[t] == MIM_TARGET_TEACHER;
    struct stat st;
    if (!want || !s->teacher || stat(s->teacher, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    mim_teacher t;
    if (mim_teacher_load(&t, s->teacher, 1, 1, 1) != 0) return 0;
    *ts = (mim_study_teacher_shape){1, t.C, t.p, t.D, t.depth, t.hidden};
    mim_teacher_free(&t);
    return 1;
}

static int run_all(const mim_study* s, const mim_study_opts* oin, mim_launcher* l) {
    char outbuf[2048], binbuf[2048];
    mim_study_opts o;
    mim_study_run* runs;
    int n = plan_load(s, oin, &o, outbuf, binbuf, &runs);
    if (n < 0) return n;
    char rpath[4200], cpath[4200];
    mim_study_pathf(rpath, sizeof rpath, "%s/results.jsonl", o.out);
    mim_study_pathf(cpath, sizeof cpath, "%s/results.csv", o.out);
    mim_results res;
    int rc = mim_results_load(&res, rpath);
    if (rc) { free(runs); return rc; }
    if (res.torn) fprintf(stderr, "warning: %s: %d line(s) that do not parse were ignored (torn write?)\n", rpath, res.torn);
    double gflops = o.gflops > 0 ? o.gflops : mim_study_measured_gflops(s, runs, n, &res);
    if (!(gflops > 0)) gflops = s->est_gflops;
    if (o.dry_run) {
        mim_study_print_plan(s, &o, runs, n, &res, gflops);
        mim_results_free(&res); free(runs);
        return 0;
    }
    int lock = -1;
    if ((rc = mim_study_mkdir_p(o.out))) goto out;
    char lpath[4200];
    mim_study_pathf(lpath, sizeof lpath, "%s/.lock", o.out);
    lock = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB)) {
        rc = mim_err(MIM_EIO, "%s is in use by another `mimscale study run` (lock %s)", o.out, lpath);
        goto out;
    }
    mim_study_paths p;
    mim_study_data_paths(s, o.out, &p);
    rc = mim_study_prepare_data(s, &o, &p, o.quiet);
    if (mim_signals_stop_requested()) {
        fprintf(stderr, "\nstudy: stopped by signal %d while preparing the data; run the same command again to resume\n",
                mim_signals_stop_requested());
        rc = MIM_STUDY_STOPPED;
    }
    if (rc) goto out;

    int done = 0, failed = 0, attempted = 0;
    double left = 0;
    for (int i = 0; i < n; i++) {
        cJSON* row = mim_results_find(&res, runs[i].id);
        const cJSON* st = row ? cJSON_GetObjectItemCaseSensitive(row, "status") : NULL;
        int ok = cJSON_IsString(st) && !strcmp(st->valuestring, "ok");
        if (ok) done++;
        else if (row && !o.retry_failed) failed++;
        else left += runs[i].est_flops;
    }
    if (!o.quiet)
        fprintf(stderr, "study %s: %d runs, %d done, %d failed (kept%s), %d to run; folder %s\n", s->name, n, done, failed,
                failed ? "; --retry-failed re-runs them" : "", n - done - failed, o.out);
    if (l || o.jobs > 1) {
        mim_worker_spec w = {s, s->path, &o};
        mim_launcher* own = l ? NULL : mim_launcher_local(&w);
        if (!l && !own) { rc = MIM_ENOMEM; goto out; }
        rc = run_launched(s, &o, runs, n, &res, l ? l : own, done, failed);
        if (own) own->free(own);
        goto out;
    }
    double t_start = mim_now_s(), flops_done = 0;
    for (int i = 0; i < n; i++) {
        const mim_study_run* r = &runs[i];
        cJSON* old = mim_results_find(&res, r->id);
        if (old) {
            const cJSON* st = cJSON_GetObjectItemCaseSensitive(old, "status");
            if ((cJSON_IsString(st) && !strcmp(st->valuestring, "ok")) || !o.retry_failed) continue;
        }
        if (o.max_runs && attempted >= o.max_runs) break;
        if (mim_signals_stop_requested()) break;
        attempted++;
        double el = mim_now_s() - t_start;
        double speed = flops_done > 0 && el > 1 ? flops_done / el : gflops * 1e9;
        char eta[32], prog[128];
        mim_study_fmt_time(left / speed, eta, sizeof eta);
        mim_study_pathf(prog, sizeof prog, "[%d/%d done, %d failed, ETA %s]", done, n, failed, eta);
        int incomplete;
        cJSON* row = do_run(s, &o, &p, r, prog, STEP_ALL, &incomplete);
        if (!row) {
            fprintf(stderr, "\nstudy: stopped by signal %d during run %s; nothing recorded for it (its checkpoints are kept); "
                    "run the same command again to resume\n", mim_signals_stop_requested(), r->id);
            rc = MIM_STUDY_STOPPED;
            goto out;
        }
        int rlock = mim_study_results_lock(o.out);
        for (int t = 0; (rc = mim_results_append(rpath, row)) == MIM_EIO &&
                        mim_retry_wait(t, o.io_retries, "results append", mim_err_msg()); t++) {}
        if (rc) { mim_study_results_unlock(rlock); cJSON_Delete(row); goto out; }
        const cJSON* st = cJSON_GetObjectItemCaseSensitive(row, "status");
        int ok = cJSON_IsString(st) && !strcmp(st->valuestring, "ok");
        if (ok) done++;
        else {
            failed++;
            const cJSON* why = cJSON_GetObjectItemCaseSensitive(row, "reason");
            fprintf(stderr, "study: run %s FAILED: %s\n", r->id, cJSON_IsString(why) ? why->valuestring : "?");
        }
        mim_results_put(&res, row);
        for (int t = 0; (rc = mim_results_write_csv(&res, cpath)) == MIM_EIO &&
                        mim_retry_wait(t, o.io_retries, "results.csv write", mim_err_msg()); t++) {}
        mim_study_results_unlock(rlock);
        if (rc) goto out;
        left -= r->est_flops;
        flops_done += r->est_flops;
    }
    if (!o.quiet) {
        char t[32];
        mim_study_fmt_time(mim_now_s() - t_start, t, sizeof t);
        fprintf(stderr, "study %s: %d/%d runs done, %d failed, this session %s; results %s\n", s->name, done, n, failed, t, rpath);
    }
    rc = mim_signals_stop_requested() ? MIM_STUDY_STOPPED : done == n ? 0 : 1;
    if (res.n && !mim_study_exists(cpath)) mim_results_write_csv(&res, cpath);
    if (!o.quiet) mim_study_print_table(s, runs, n, &res);
out:
    if (lock >= 0) close(lock);
    mim_results_free(&res);
    free(runs);
    return rc;
}

int mim_study_run_all(const mim_study* s, const mim_study_opts* o) { return run_all(s, o, NULL); }
int mim_study_run_launched(const mim_study* s, const mim_study_opts* o, mim_launcher* l) { return run_all(s, o, l); }
