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

// snprintf for paths and arguments; truncation is checked where it matters
// (paths are bounded by the study folder, itself bounded at resolve time).
static void pathf(char* buf, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static void pathf(char* buf, size_t cap, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

static int exists(const char* p) { struct stat st; return stat(p, &st) == 0; }

static int mkdir_p(const char* path) {
    char buf[4096];
    pathf(buf, sizeof buf, "%s", path);
    for (char* p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            if (mkdir(buf, 0755) && errno != EEXIST) return mim_err(MIM_EIO, "cannot create %s: %s", buf, strerror(errno));
            *p = '/';
        }
    if (mkdir(buf, 0755) && errno != EEXIST) return mim_err(MIM_EIO, "cannot create %s: %s", buf, strerror(errno));
    return 0;
}

// Writes text to path atomically (tmp + fsync + rename).
static int write_atomic(const char* path, const char* text) {
    char tmp[4200];
    pathf(tmp, sizeof tmp, "%s.tmp", path);
    FILE* f = fopen(tmp, "w");
    if (!f) return mim_err(MIM_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path)) { unlink(tmp); return mim_err(MIM_EIO, "cannot write %s: %s", path, strerror(errno)); }
    return 0;
}

static char* read_text(const char* path, off_t from) {
    FILE* f = fopen(path, "rb");
    if (!f) return NULL;
    if (from > 0 && fseeko(f, from, SEEK_SET)) { fclose(f); return NULL; }
    size_t cap = 4096, n = 0;
    char* b = malloc(cap);
    while (b) {
        if (n + 4096 + 1 > cap) { char* nb = realloc(b, cap *= 2); if (!nb) { free(b); b = NULL; break; } b = nb; }
        size_t r = fread(b + n, 1, 4096, f);
        n += r;
        if (r < 4096) break;
    }
    fclose(f);
    if (b) b[n] = 0;
    return b;
}

void mim_study_opts_resolve(const mim_study* s, const mim_study_opts* o, mim_study_opts* res, char* outbuf,
                            size_t outcap, char* binbuf, size_t bincap) {
    *res = *o;
    if (!o->out || !o->out[0]) { pathf(outbuf, outcap, "runs/study-%s", s->name); res->out = outbuf; }
    if (!o->bin || !o->bin[0]) {
        const char* env = getenv("MIMSCALE_BIN");
        if (env && env[0]) pathf(binbuf, bincap, "%s", env);
        else {
            ssize_t n = readlink("/proc/self/exe", binbuf, bincap - 1);
            if (n < 0) n = 0;
            binbuf[n] = 0;
            if (!n) pathf(binbuf, bincap, "mimscale");
        }
        res->bin = binbuf;
    }
}

// ---------------------------------------------------------------- subprocess
static void log_cmd(int fd, char** argv) {
    time_t t = time(NULL);
    char ts[64];
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", localtime(&t));
    dprintf(fd, "\n[%s] $", ts);
    for (char** a = argv; *a; a++) dprintf(fd, " %s", *a);
    dprintf(fd, "\n");
}

// Runs argv with stdout and stderr appended to log_path; *log_off gets the
// log's size before the command. Returns the exit status (128 + signal when
// killed), or a negative code when it could not be started.
static int run_cmd(char** argv, const char* log_path, off_t* log_off) {
    int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return mim_err(MIM_EIO, "cannot open log %s: %s", log_path, strerror(errno));
    log_cmd(fd, argv);
    if (log_off) *log_off = lseek(fd, 0, SEEK_END);
    fflush(stdout); fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { close(fd); return mim_err(MIM_EIO, "fork failed: %s", strerror(errno)); }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) _exit(127);
        unsetenv("MIM_FAULT_WRITE");   // injected write faults are the runner's own (core/fault.h)
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(fd, 1); dup2(fd, 2);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    // stop signals go on to the child; one that came before it was named is passed now
    mim_signals_forward_to(pid);
    int sig = mim_signals_stop_requested();
    if (sig) kill(pid, sig);
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) { mim_signals_forward_to(0); return mim_err(MIM_EIO, "waitpid failed: %s", strerror(errno)); }
    mim_signals_forward_to(0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// The last non-empty line of the log from off (for failure reasons).
static void last_line(const char* log_path, off_t off, char* out, size_t cap) {
    out[0] = 0;
    char* t = read_text(log_path, off);
    if (!t) return;
    char* end = t + strlen(t);
    while (end > t && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) *--end = 0;
    char* beg = end;
    while (beg > t && beg[-1] != '\n' && beg[-1] != '\r') beg--;
    pathf(out, cap, "%s", beg);
    free(t);
}

// --------------------------------------------------------------- data setup
static int prep_cmd(char** argv, const char* log, const char* what) {
    int rc = run_cmd(argv, log, NULL);
    if (rc < 0) return rc;
    if (rc) {
        char ll[512];
        last_line(log, 0, ll, sizeof ll);
        return mim_err(MIM_EIO, "%s failed (exit %d, log %s): %s", what, rc, log, ll);
    }
    return 0;
}

static const char* idx_file(const char* dir, const char* stem, char* buf, size_t cap) {
    pathf(buf, cap, "%s/%s.gz", dir, stem);
    if (exists(buf)) return buf;
    pathf(buf, cap, "%s/%s", dir, stem);
    return buf;
}

static int prepare_data(const mim_study* s, const mim_study_opts* o, const mim_study_paths* p, int quiet) {
    char dir[4096], log[4200], buf[4200], a1[4200], a2[4200];
    pathf(dir, sizeof dir, "%s/data", o->out);
    int rc = mkdir_p(p->subset_dir);
    if (rc) return rc;
    pathf(log, sizeof log, "%s/prepare.log", dir);
    if (s->idx_dir) {
        pathf(buf, sizeof buf, "%s/.packed", dir);
        if (!exists(buf)) {
            if (!quiet) fprintf(stderr, "study: packing %s into shards (once)\n", s->idx_dir);
            const char* splits[2][3] = {{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "train"},
                                        {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "eval"}};
            for (int i = 0; i < 2; i++) {
                char img[4200], lab[4200], prefix[4200];
                idx_file(s->idx_dir, splits[i][0], img, sizeof img);
                idx_file(s->idx_dir, splits[i][1], lab, sizeof lab);
                if (!exists(img)) return mim_err(MIM_ENOTFOUND, "data.idx: %s not found (Debian: apt install dataset-fashion-mnist)", img);
                pathf(prefix, sizeof prefix, "%s/%s", dir, splits[i][2]);
                pathf(a1, sizeof a1, "--labels=%s", lab);
                pathf(a2, sizeof a2, "--out=%s", prefix);
                char per[64];
                // eval_size: the first shard holds exactly the eval set (pack keeps IDX order).
                pathf(per, sizeof per, "--per-shard=%lld", (long long)(i == 1 && s->eval_size > 0 ? s->eval_size : 10000));
                char* argv[] = {(char*)o->bin, "pack", img, a1, a2, per, NULL};
                if ((rc = prep_cmd(argv, log, "mimscale pack"))) return rc;
            }
            if ((rc = write_atomic(buf, "packed\n"))) return rc;
        }
    }
    const char* pats[2] = {s->shards, s->eval_shards};
    const char* idxs[2] = {p->index, p->eval_index};
    char defpat[2][4200];
    if (s->idx_dir) {
        pathf(defpat[0], sizeof defpat[0], "%s/train-*.tar", dir);
        pathf(defpat[1], sizeof defpat[1], s->eval_size > 0 ? "%s/eval-000000.tar" : "%s/eval-*.tar", dir);
        pats[0] = defpat[0]; pats[1] = defpat[1];
    }
    for (int i = 0; i < 2; i++) {
        if (exists(idxs[i])) continue;
        if (!pats[i]) return mim_err(MIM_ENOTFOUND, "%s: %s does not exist and data.%s is not given to build it",
                                     s->path, idxs[i], i ? "eval_shards" : "shards");
        if (!quiet) fprintf(stderr, "study: indexing %s -> %s\n", pats[i], idxs[i]);
        pathf(a2, sizeof a2, "--out=%s", idxs[i]);
        char* argv[] = {(char*)o->bin, "index", (char*)pats[i], a2, "--quiet", NULL};
        if ((rc = prep_cmd(argv, log, "mimscale index"))) return rc;
    }
    // The fixed probe set of knn / linprobe.
    if (s->probe_size > 0) {
        mim_study_probe_path(s, p, buf, sizeof buf);
        if (!exists(buf)) {
            char a3[64], a4[64], a5[4200];
            pathf(a1, sizeof a1, "--sizes=%lld", (long long)s->probe_size);
            pathf(a3, sizeof a3, "--strategy=stratified");
            pathf(a4, sizeof a4, "--seed=%" PRIu64, s->subset_seed);
            pathf(a5, sizeof a5, "--out=%s/probe", p->subset_dir);
            char* argv[] = {(char*)o->bin, "subset", (char*)p->index, a1, a3, a4, a5, "--quiet", NULL};
            if ((rc = prep_cmd(argv, log, "mimscale subset (probe set)"))) return rc;
            if (!exists(buf)) return mim_err(MIM_ENOTFOUND, "mimscale subset did not write %s (see %s)", buf, log);
        }
    }
    // Subset files, one `mimscale subset` per strategy for the sizes missing.
    for (int i = 0; i < s->nsubsets; i++) {
        int first = 1;
        for (int k = 0; k < i; k++) first &= strcmp(s->subsets[k].strategy, s->subsets[i].strategy) != 0;
        if (!first) continue;
        char sizes[4096] = "";
        size_t n = 0;
        for (int k = i; k < s->nsubsets; k++) {
            if (strcmp(s->subsets[k].strategy, s->subsets[i].strategy)) continue;
            mim_study_run r = {.subset = k, .size = s->subsets[k].size};
            mim_study_subset_path(s, p, &r, buf, sizeof buf);
            if (exists(buf)) continue;
            n += (size_t)snprintf(sizes + n, sizeof sizes - n, "%s%" PRId64, n ? "," : "", s->subsets[k].size);
            if (n >= sizeof sizes) return mim_err(MIM_EARG, "too many subset sizes");
        }
        if (!n) continue;
        if (!quiet) fprintf(stderr, "study: subset files %s %s\n", s->subsets[i].strategy, sizes);
        char a3[64], a4[64], a5[4200], a6[4200];
        pathf(a1, sizeof a1, "--sizes=%s", sizes);
        pathf(a3, sizeof a3, "--strategy=%s", s->subsets[i].strategy);
        pathf(a4, sizeof a4, "--seed=%" PRIu64, s->subset_seed);
        pathf(a5, sizeof a5, "--out=%s/train", p->subset_dir);
        pathf(a6, sizeof a6, "%s", p->index);
        char* argv[] = {(char*)o->bin, "subset", a6, a1, a3, a4, a5, "--quiet", NULL};
        if ((rc = prep_cmd(argv, log, "mimscale subset"))) return rc;
        for (int k = i; k < s->nsubsets; k++) {
            if (strcmp(s->subsets[k].strategy, s->subsets[i].strategy)) continue;
            mim_study_run r = {.subset = k, .size = s->subsets[k].size};
            mim_study_subset_path(s, p, &r, buf, sizeof buf);
            if (!exists(buf)) return mim_err(MIM_ENOTFOUND, "mimscale subset did not write %s (is the data set smaller than %" PRId64 "? see %s)", buf, s->subsets[k].size, log);
        }
    }
    return 0;
}

// ------------------------------------------------------------------ one run
// Pre-training metrics: last loss, mean of the last 5 logged losses, last step and time.
static void pretrain_metrics(const char* run_dir, cJSON* row) {
    char path[4200];
    pathf(path, sizeof path, "%s/pretrain/metrics.jsonl", run_dir);
    char* t = read_text(path, 0);
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
    pathf(run_dir, sizeof run_dir, "%s/runs/%s", o->out, r->id);
    mim_study_subset_path(s, p, r, subset, sizeof subset);
    cJSON* row = base_row(s, r);
    int failed = 0;
    if (mkdir_p(run_dir)) { add_reason(reason, sizeof reason, "%s", mim_err_msg()); failed = 1; goto finish; }
    ckpt[0] = 0;
    if (r->kind == MIM_RUN_MIM) {
        char done[4400];
        pathf(done, sizeof done, "%s/pretrain.done", run_dir);
        if (!exists(done) && !(allow & STEP_PRETRAIN)) { *incomplete = 1; cJSON_Delete(row); return NULL; }
        if (!exists(done)) {
            if (!o->quiet) fprintf(stderr, "%s %s: pretrain (%" PRId64 " steps%s)\n", progress, r->id, r->steps, o->ranks > 1 ? ", MPI through srun" : "");
            char** argv = mim_study_pretrain_argv(s, r, p, o->bin, run_dir, subset);
            if (argv && o->ranks > 1) argv = mpi_wrap(argv, o);
            if (!argv) { add_reason(reason, sizeof reason, "%s", mim_err_msg()); failed = 1; goto finish; }
            pathf(log, sizeof log, "%s/pretrain.log", run_dir);
            off_t off = 0;
            int rc = run_cmd(argv, log, &off);
            mim_argv_free(argv);
            if (mim_signals_stop_requested()) { cJSON_Delete(row); return NULL; }
            if (rc) {
                char ll[512];
                if (rc < 0) pathf(ll, sizeof ll, "%s", mim_err_msg()); else last_line(log, off, ll, sizeof ll);
                add_reason(reason, sizeof reason, "pretrain exited with status %d (runs/%s/pretrain.log): %s", rc, r->id, ll);
                failed = 1;
                goto finish;
            }
            if (write_atomic(done, "done\n")) { add_reason(reason, sizeof reason, "%s", mim_err_msg()); failed = 1; goto finish; }
        }
        pretrain_metrics(run_dir, row);
        pathf(buf, sizeof buf, "%s/pretrain/latest", run_dir);
        char* latest = read_text(buf, 0);
        if (latest) latest[strcspn(latest, "\r\n")] = 0;
        if (!latest || !latest[0]) { add_reason(reason, sizeof reason, "pretrain left no checkpoint (%s)", buf); free(latest); failed = 1; goto finish; }
        pathf(ckpt, sizeof ckpt, "%s/pretrain/%s/model.safetensors", run_dir, latest);
        free(latest);
    }
    for (int e = 0; e < MIM_EVAL_COUNT; e++) {
        if (!run_has_eval(s, r, e)) continue;   // baselines: the probe evaluations; scratch is its own run
        const char* en = mim_eval_name((mim_eval_kind)e);
        char jpath[4400];
        pathf(jpath, sizeof jpath, "%s/%s.json", run_dir, en);
        cJSON* res = mim_json_read_file(jpath);   // written by the command when it finished (core/jsonfile.h)
        if (res && !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(res, "top1"))) { cJSON_Delete(res); res = NULL; }
        if (!res && !(allow & STEP_EVAL(e))) { *incomplete = 1; continue; }   // another job's step
        if (!res) {
            if (!o->quiet) fprintf(stderr, "%s %s: %s\n", progress, r->id, en);
            char** argv = mim_study_eval_argv(s, r, (mim_eval_kind)e, p, o->bin, run_dir, subset, ckpt);
            if (!argv) { add_reason(reason, sizeof reason, "%s", mim_err_msg()); failed = 1; continue; }
            pathf(log, sizeof log, "%s/%s.log", run_dir, en);
            off_t off = 0;
            int rc = run_cmd(argv, log, &off);
            mim_argv_free(argv);
            if (mim_signals_stop_requested()) { cJSON_Delete(row); return NULL; }
            if (rc == 0) {
                res = mim_json_read_file(jpath);
                if (res && !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(res, "top1"))) { cJSON_Delete(res); res = NULL; }
            }
            if (!res) {
                char ll[512];
                if (rc < 0) pathf(ll, sizeof ll, "%s", mim_err_msg()); else last_line(log, off, ll, sizeof ll);
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
            pathf(buf, sizeof buf, "%s_%s", en, keys[k]);
            cJSON_AddNumberToObject(row, buf, v->valuedouble * scale);
        }
        cJSON_Delete(res);
    }
    if (*incomplete && !failed) { cJSON_Delete(row); return NULL; }   // other steps still to come: no row yet
    *incomplete = 0;
finish:
    if (allow == STEP_ALL || failed) {   // the knn / linprobe feature cache (study.c); absent is fine
        pathf(buf, sizeof buf, "%s/features.safetensors", run_dir);
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

// ------------------------------------------------------------------ the plan
static void fmt_time(double s, char* out, size_t cap) {
    if (!isfinite(s) || s < 0) pathf(out, cap, "?");
    else if (s < 90) pathf(out, cap, "%.0fs", s);
    else if (s < 5400) pathf(out, cap, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else pathf(out, cap, "%.0fh%02.0fm", floor(s / 3600), fmod(s / 60, 60));
}

static const char* run_state(const mim_results* res, const char* out, const mim_study_run* r) {
    cJSON* row = mim_results_find(res, r->id);
    if (row) {
        const cJSON* st = cJSON_GetObjectItemCaseSensitive(row, "status");
        return cJSON_IsString(st) && !strcmp(st->valuestring, "ok") ? "done" : "failed";
    }
    char d[4400];
    pathf(d, sizeof d, "%s/runs/%s", out, r->id);
    return exists(d) ? "partial" : "todo";
}

static int print_plan(const mim_study* s, const mim_study_opts* o, const mim_study_run* runs, int n, const mim_results* res, double gflops) {
    int nbl = 0;
    for (int i = 0; i < n; i++) nbl += runs[i].kind == MIM_RUN_BASELINE;
    char bls[96] = "";
    if (nbl) pathf(bls, sizeof bls, " + %d feature baselines (raw pixels, random-init; knn / linprobe only)", nbl);
    int nmim = 0, nscr = 0, narrow = 0;
    for (int i = 0; i < n; i++) { nmim += runs[i].kind == MIM_RUN_MIM; nscr += runs[i].kind == MIM_RUN_SCRATCH; }
    for (int i = 0; i < s->nsubsets; i++) narrow |= s->subsets[i].nseeds || s->subsets[i].target_mask;
    char scr[48] = "";
    if (nscr) pathf(scr, sizeof scr, " + %d scratch baselines", nscr);
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
        fmt_time(r->est_flops / (gflops * 1e9), tm, sizeof tm);
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
    fmt_time(tot / (gflops * 1e9), t1, sizeof t1);
    fmt_time(left / (gflops * 1e9), t2, sizeof t2);
    printf("\ntotal %.3f PFLOP (evaluations included), about %s; %d/%d done, %s left\n", tot / 1e15, t1, ndone, n, t2);
    return 0;
}

// The results so far, one line per run, on stdout.
static void print_table(const mim_study* s, const mim_study_run* runs, int n, const mim_results* res) {
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
            pathf(key, sizeof key, "%s_top1", mim_eval_name((mim_eval_kind)e));
            const cJSON* v = row ? cJSON_GetObjectItemCaseSensitive(row, key) : NULL;
            if (cJSON_IsNumber(v)) printf(" %8.2f%%", 100 * v->valuedouble); else printf(" %9s", "-");
        }
        if (cJSON_IsNumber(w)) printf(" %8.0f\n", w->valuedouble); else printf(" %8s\n", "-");
    }
    fflush(stdout);
}

// Training speed measured from finished rows (FLOPs / wall seconds), or 0.
static double measured_gflops(const mim_study* s, const mim_study_run* runs, int n, const mim_results* res) {
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

// ------------------------------------------------------------------ workers
// The exclusive lock every writer of results.jsonl / results.csv holds
// around its append and rewrite (workers of one study finish at any time).
// Returns the descriptor (closing it unlocks), or -1 when the lock file
// cannot be opened (the write then goes ahead unlocked, as before locks).
static int results_lock(const char* out) {
    char path[4200];
    pathf(path, sizeof path, "%s/results.jsonl.lock", out);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    while (flock(fd, LOCK_EX) && errno == EINTR) {}
    return fd;
}
static void results_unlock(int fd) { if (fd >= 0) close(fd); }

// The status of a row: 0 ok, 1 failed, -1 no row.
static int row_status(const cJSON* row) {
    if (!row) return -1;
    const cJSON* st = cJSON_GetObjectItemCaseSensitive(row, "status");
    return cJSON_IsString(st) && !strcmp(st->valuestring, "ok") ? 0 : 1;
}

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
    if (!exists(subset))
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
    pathf(run_dir, sizeof run_dir, "%s/runs/%s", o->out, r->id);
    int rc = mkdir_p(run_dir);
    if (rc) return rc;
    pathf(lpath, sizeof lpath, "%s/.lock%s%s", run_dir, only ? "-" : "", only ? only : "");
    int lock = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB)) {
        if (lock >= 0) close(lock);
        return mim_err(MIM_EIO, "run %s%s%s is being run by another worker (lock %s)", r->id, only ? ", step " : "", only ? only : "", lpath);
    }
    pathf(rpath, sizeof rpath, "%s/results.jsonl", o->out);
    pathf(cpath, sizeof cpath, "%s/results.csv", o->out);
    mim_results res;
    if ((rc = mim_results_load(&res, rpath))) { close(lock); return rc; }
    int old = row_status(mim_results_find(&res, r->id));
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
    pathf(prog, sizeof prog, "[worker %d]", (int)getpid());
    int incomplete = 0;
    cJSON* row = do_run(&sc, o, &p, r, prog, allow, &incomplete);
    if (!row && !incomplete) {
        fprintf(stderr, "study: stopped by signal %d during run %s; nothing recorded for it (its checkpoints are kept)\n",
                mim_signals_stop_requested(), r->id);
        close(lock);
        return MIM_STUDY_STOPPED;
    }
    // The row: under the run's row lock, if no worker appended it meanwhile.
    pathf(rlpath, sizeof rlpath, "%s/.lock-row", run_dir);
    int rowlock = open(rlpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    while (rowlock >= 0 && flock(rowlock, LOCK_EX) && errno == EINTR) {}
    if ((rc = mim_results_load(&res, rpath))) { cJSON_Delete(row); if (rowlock >= 0) close(rowlock); close(lock); return rc; }
    old = row_status(mim_results_find(&res, r->id));
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
    int st = row_status(row);
    int rl = results_lock(o->out);
    for (int t = 0; (rc = mim_results_append(rpath, row)) == MIM_EIO &&
                    mim_retry_wait(t, o->io_retries, "results append", mim_err_msg()); t++) {}
    cJSON_Delete(row);
    if (!rc && !(rc = mim_results_load(&res, rpath))) {   // results.csv from every worker's rows
        for (int t = 0; (rc = mim_results_write_csv(&res, cpath)) == MIM_EIO &&
                        mim_retry_wait(t, o->io_retries, "results.csv write", mim_err_msg()); t++) {}
        mim_results_free(&res);
    }
    results_unlock(rl);
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
    pathf(rpath, sizeof rpath, "%s/results.jsonl", o->out);
    pathf(cpath, sizeof cpath, "%s/results.csv", o->out);
    int max_active = !strcmp(l->name, "local") ? (o->jobs > 1 ? o->jobs : 1) : 1 << 30;
    int next = 0, active = 0, submitted = 0, queued = 0, attempted = 0, rc = 0, stopsig = 0;
    double t_start = mim_now_s();
    for (;;) {
        int sig = mim_signals_stop_requested();
        if (sig && !stopsig) { stopsig = sig; l->signal(l, sig); }   // SIGTERM reaches every worker
        while (!stopsig && active < max_active && next < n && !(o->max_runs && attempted >= o->max_runs)) {
            const mim_study_run* r = &runs[next++];
            int st = row_status(mim_results_find(res, r->id));
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
                st = row_status(mim_results_find(res, r->id));
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
        int st = row_status(mim_results_find(res, id));
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
        fmt_time(mim_now_s() - t_start, t, sizeof t);
        fprintf(stderr, "study %s: %d/%d runs done, %d failed, this session %s; results %s\n", s->name, done, n, failed, t, rpath);
    }
    if (rc >= 0) rc = done == n ? 0 : 1;
    if (res->n && !exists(cpath)) mim_results_write_csv(res, cpath);
    if (!o->quiet) print_table(s, runs, n, res);
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
    pathf(rpath, sizeof rpath, "%s/results.jsonl", o.out);
    pathf(cpath, sizeof cpath, "%s/results.csv", o.out);
    mim_results res;
    int rc = mim_results_load(&res, rpath);
    if (rc) { free(runs); return rc; }
    if (res.torn) fprintf(stderr, "warning: %s: %d line(s) that do not parse were ignored (torn write?)\n", rpath, res.torn);
    double gflops = o.gflops > 0 ? o.gflops : measured_gflops(s, runs, n, &res);
    if (!(gflops > 0)) gflops = s->est_gflops;
    if (o.dry_run) {
        print_plan(s, &o, runs, n, &res, gflops);
        mim_results_free(&res); free(runs);
        return 0;
    }
    int lock = -1;
    if ((rc = mkdir_p(o.out))) goto out;
    char lpath[4200];
    pathf(lpath, sizeof lpath, "%s/.lock", o.out);
    lock = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (lock < 0 || flock(lock, LOCK_EX | LOCK_NB)) {
        rc = mim_err(MIM_EIO, "%s is in use by another `mimscale study run` (lock %s)", o.out, lpath);
        goto out;
    }
    mim_study_paths p;
    mim_study_data_paths(s, o.out, &p);
    rc = prepare_data(s, &o, &p, o.quiet);
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
        fmt_time(left / speed, eta, sizeof eta);
        pathf(prog, sizeof prog, "[%d/%d done, %d failed, ETA %s]", done, n, failed, eta);
        int incomplete;
        cJSON* row = do_run(s, &o, &p, r, prog, STEP_ALL, &incomplete);
        if (!row) {
            fprintf(stderr, "\nstudy: stopped by signal %d during run %s; nothing recorded for it (its checkpoints are kept); "
                    "run the same command again to resume\n", mim_signals_stop_requested(), r->id);
            rc = MIM_STUDY_STOPPED;
            goto out;
        }
        int rlock = results_lock(o.out);
        for (int t = 0; (rc = mim_results_append(rpath, row)) == MIM_EIO &&
                        mim_retry_wait(t, o.io_retries, "results append", mim_err_msg()); t++) {}
        if (rc) { results_unlock(rlock); cJSON_Delete(row); goto out; }
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
        results_unlock(rlock);
        if (rc) goto out;
        left -= r->est_flops;
        flops_done += r->est_flops;
    }
    if (!o.quiet) {
        char t[32];
        fmt_time(mim_now_s() - t_start, t, sizeof t);
        fprintf(stderr, "study %s: %d/%d runs done, %d failed, this session %s; results %s\n", s->name, done, n, failed, t, rpath);
    }
    rc = mim_signals_stop_requested() ? MIM_STUDY_STOPPED : done == n ? 0 : 1;
    if (res.n && !exists(cpath)) mim_results_write_csv(&res, cpath);
    if (!o.quiet) print_table(s, runs, n, &res);
out:
    if (lock >= 0) close(lock);
    mim_results_free(&res);
    free(runs);
    return rc;
}

int mim_study_run_all(const mim_study* s, const mim_study_opts* o) { return run_all(s, o, NULL); }
int mim_study_run_launched(const mim_study* s, const mim_study_opts* o, mim_launcher* l) { return run_all(s, o, l); }

int mim_study_status(const mim_study* s, const mim_study_opts* oin, mim_launcher* l) {
    char outbuf[2048], binbuf[2048], rpath[4200];
    mim_study_opts o;
    mim_study_opts_resolve(s, oin, &o, outbuf, sizeof outbuf, binbuf, sizeof binbuf);
    mim_study_run* runs = NULL;
    int n = mim_study_expand(s, &runs);
    if (n < 0) return n;
    pathf(rpath, sizeof rpath, "%s/results.jsonl", o.out);
    mim_results res;
    int rc = mim_results_load(&res, rpath);
    if (rc) { free(runs); return rc; }
    static const char* names[] = {"done", "failed", "pending", "running", "not submitted"};
    int count[5] = {0};
    printf("%-52s %-13s %-24s %s\n", "run", "state", l->name, "log");
    for (int i = 0; i < n; i++) {
        mim_launch_info info;
        if ((rc = l->status(l, &runs[i], &info)) < 0) break;
        int st = row_status(mim_results_find(&res, runs[i].id));
        if (st < 0 && info.state == MIM_LAUNCH_ENDED) {   // its row may have come since results.jsonl was read
            mim_results fresh;
            if ((rc = mim_results_load(&fresh, rpath))) break;
            mim_results_free(&res);
            res = fresh;
            st = row_status(mim_results_find(&res, runs[i].id));
        }
        int k = st == 0 ? 0 : st == 1 ? 1 : info.state == MIM_LAUNCH_PENDING ? 2 : info.state == MIM_LAUNCH_RUNNING ? 3
              : info.state == MIM_LAUNCH_ENDED ? 1 : 4;   // a job that ended without a row failed
        count[k]++;
        char job[128] = "-";
        if (info.job[0]) pathf(job, sizeof job, "job %s %s", info.job, info.detail);
        printf("%-52s %-13s %-24s %s\n", runs[i].id, names[k], job, info.log[0] ? info.log : "-");
    }
    if (rc >= 0)
        printf("\n%d runs: %d done, %d failed, %d pending, %d running, %d not submitted\n", n, count[0], count[1], count[2], count[3], count[4]);
    fflush(stdout);
    mim_results_free(&res);
    free(runs);
    return rc < 0 ? rc : 0;
}
