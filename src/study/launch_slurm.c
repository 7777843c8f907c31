// launch_slurm.c: the Slurm launcher. submit queues runs; flush turns the
// queue into job arrays of `mimscale study run-one --only STEP` (one task per
// run, its id read from the array's .ids file by SLURM_ARRAY_TASK_ID):
//
//   P  pre-training of every queued MIM run          resources slurm.pretrain
//   Ee each evaluation e of those runs, after its    slurm.eval
//      own pre-training: --dependency=aftercorr:P
//      --kill-on-invalid-dep=yes (a failed or
//      cancelled pre-training cancels its task)
//   S  the scratch fine-tunings (independent)         slurm.scratch
//   B  the feature baselines (independent; knn and    slurm.baseline
//      linprobe in one task)
//
// Evaluations run in parallel once their pre-training is done; the step that
// finds the run complete appends its row (runner.c). A pre-training with
// slurm.pretrain.ntasks > 1 runs as that many MPI ranks through srun inside
// its job. The jobs outlive `study run`; runs/<id>/slurm.json names the
// run's jobs, and a later `study run` / `study status` asks `scontrol show
// job` what became of them (no sacct: accounting is optional).
//
// Time limits: jobs get --requeue --signal=B:TERM@120 --open-mode=append;
// the script's TERM trap passes TERM to the worker (which checkpoints and
// exits 4) and then requeues its own job (Slurm does not requeue a job that
// hits its time limit), so the rerun resumes from the checkpoint. A job
// requeued from outside (`scontrol requeue`, preemption) gets TERM too and
// resumes the same way. A job cancelled with scancel is not requeued
// (scontrol says COMPLETING then, not RUNNING); the next `study run`
// resubmits its run, and it resumes.
// Assumes a file system shared by the submit host and the nodes (the study
// folder, the study file and the mimscale binary at the same paths).
#include "study/launch.h"
#include "core/check.h"
#include "train/dist.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    mim_worker_spec w;
    mim_slurm_opts so;
    char cwd[2048];
    char self[2048];        // this mimscale binary: the worker (o->bin, maybe a stand-in, runs the steps)
    mim_study_run* q; int nq, capq;   // queued by submit, submitted by flush
} slurm_impl;

// The full path of prog on PATH into buf, 1 when found.
static int on_path(const char* prog, char* buf, size_t cap) {
    const char* path = getenv("PATH");
    if (!path) path = "/usr/bin:/bin";
    for (const char* p = path; *p;) {
        size_t n = strcspn(p, ":");
        snprintf(buf, cap, "%.*s/%s", (int)n, p, prog);
        if (n && access(buf, X_OK) == 0) return 1;
        p += n + (p[n] == ':');
    }
    return 0;
}

// Runs argv, its stdout into out and stderr into err (truncated to cap,
// trailing newlines cut). Returns the exit status, 127 when it could not be
// started, or a negative code.
static int capture(char** argv, char* out, size_t ocap, char* err, size_t ecap) {
    int po[2], pe[2];
    if (pipe(po)) return mim_err(MIM_EIO, "pipe failed: %s", strerror(errno));
    if (pipe(pe)) { close(po[0]); close(po[1]); return mim_err(MIM_EIO, "pipe failed: %s", strerror(errno)); }
    fflush(stdout); fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) { close(po[0]); close(po[1]); close(pe[0]); close(pe[1]); return mim_err(MIM_EIO, "fork failed: %s", strerror(errno)); }
    if (pid == 0) {
        int nul = open("/dev/null", O_RDONLY);
        if (nul >= 0) dup2(nul, 0);
        dup2(po[1], 1); dup2(pe[1], 2);
        close(po[0]); close(pe[0]);
        execvp(argv[0], argv);
        dprintf(2, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    close(po[1]); close(pe[1]);
    size_t no = 0, ne = 0;
    struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
    int open_n = 2;
    char junk[4096];
    while (open_n) {
        if (poll(fds, 2, -1) < 0) { if (errno == EINTR) continue; break; }
        for (int k = 0; k < 2; k++) {
            if (fds[k].fd < 0 || !(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            char* b = k ? err : out; size_t* n = k ? &ne : &no; size_t cap = k ? ecap : ocap;
            ssize_t r = *n + 1 < cap ? read(fds[k].fd, b + *n, cap - 1 - *n) : read(fds[k].fd, junk, sizeof junk);
            if (r <= 0) { close(fds[k].fd); fds[k].fd = -1; open_n--; continue; }
            if (*n + 1 < cap) *n += (size_t)r;
        }
    }
    out[no] = 0; err[ne] = 0;
    while (no && (out[no - 1] == '\n' || out[no - 1] == '\r')) out[--no] = 0;
    while (ne && (err[ne - 1] == '\n' || err[ne - 1] == '\r')) err[--ne] = 0;
    int st = 0;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR) return mim_err(MIM_EIO, "waitpid failed: %s", strerror(errno));
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int write_file(const char* path, const char* text, mode_t mode) {
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return mim_err(MIM_EIO, "cannot write %s: %s", tmp, strerror(errno));
    size_t n = strlen(text);
    int ok = write(fd, text, n) == (ssize_t)n && fsync(fd) == 0;
    ok &= close(fd) == 0;
    if (!ok || rename(tmp, path)) { unlink(tmp); return mim_err(MIM_EIO, "cannot write %s: %s", path, strerror(errno)); }
    return 0;
}

// Paths go into the job script in single quotes.
static int quotable(const char* s) { return !strchr(s, '\''); }

static int slurm_submit(mim_launcher* l, const mim_study_run* r) {
    slurm_impl* L = l->impl;
    const mim_study_opts* o = L->w.o;
    char sbatch[4200];
    if (!on_path("sbatch", sbatch, sizeof sbatch))
        return mim_err(MIM_ENOTFOUND, "sbatch not found on PATH (%s): --launcher slurm needs Slurm's client commands "
                       "(Debian: apt install slurm-client)", getenv("PATH") ? getenv("PATH") : "");
    if (!quotable(o->bin) || !quotable(L->self) || !quotable(L->w.study_path) || !quotable(o->out) || !quotable(L->cwd))
        return mim_err(MIM_EARG, "--launcher slurm: a path with a single quote is not supported (%s, %s, %s)", o->bin, L->w.study_path, o->out);
    int nt = L->w.s->slurm[MIM_SLURM_PRETRAIN].ntasks;
    if (nt > 1 && !mim_dist_built())
        return mim_err(MIM_EARG, "slurm.pretrain.ntasks %d asks for MPI ranks, but this mimscale (%s) was built without MPI "
                       "(install libopenmpi-dev and rebuild, or set ntasks 1)", nt, L->self);
    if (L->nq == L->capq) {
        int nc = L->capq ? 2 * L->capq : 16;
        mim_study_run* nq = realloc(L->q, sizeof *nq * (size_t)nc);
        if (!nq) return mim_err(MIM_ENOMEM, "out of memory");
        L->q = nq; L->capq = nc;
    }
    L->q[L->nq++] = *r;
    return 0;
}

// One array: its step, resources, members (indexes into L->q) and job id.
typedef struct {
    const char* step;       // "pretrain", an evaluation name, or "run" (the whole run: baselines)
    mim_slurm_kind kind;
    int* idx; int n;
    int after;              // index of the array this one follows task by task (aftercorr), or -1
    char job[32];           // the array's job id once submitted
} array_plan;

static int cpus_for(const slurm_impl* L, mim_slurm_kind k) {
    const mim_study* s = L->w.s;
    int c = s->slurm[k].cpus_per_task;
    if (!c && L->so.cpus > 0) c = L->so.cpus;
    if (!c) c = k == MIM_SLURM_PRETRAIN ? s->threads : s->eval_threads;
    if (L->w.o->threads > 0 && (c == 0 || c > L->w.o->threads)) c = L->w.o->threads;
    return c > 0 ? c : 1;
}

static void scancel_all(const char* const* jobs, int n) {
    char sc[4200];
    if (!n || !on_path("scancel", sc, sizeof sc)) return;
    char* argv[64 + 2];
    int k = 0;
    argv[k++] = sc;
    for (int i = 0; i < n && k < 64; i++) argv[k++] = (char*)jobs[i];
    argv[k] = NULL;
    char out[256], err[256];
    capture(argv, out, sizeof out, err, sizeof err);
}

// Writes the array's .ids and .sh and submits it; a->job gets the id.
static int submit_array(slurm_impl* L, array_plan* a, const array_plan* plans, const char* stamp, const char* sbatch) {
    const mim_study_opts* o = L->w.o;
    const mim_study* s = L->w.s;
    char base[4300], ids[4400], script[4400], out_pat[4400];
    snprintf(base, sizeof base, "%s/slurm/%s-%s", o->out, stamp, a->step);
    snprintf(ids, sizeof ids, "%s.ids", base);
    snprintf(script, sizeof script, "%s.sh", base);
    snprintf(out_pat, sizeof out_pat, "--output=%s-%%a.out", base);
    size_t cap = 64 + (size_t)a->n * (sizeof L->q[0].id + 1);
    char* list = malloc(cap);
    if (!list) return mim_err(MIM_ENOMEM, "out of memory");
    size_t m = 0;
    for (int i = 0; i < a->n; i++) m += (size_t)snprintf(list + m, cap - m, "%s\n", L->q[a->idx[i]].id);
    int rc = write_file(ids, list, 0644);
    free(list);
    if (rc) return rc;
    int cpus = cpus_for(L, a->kind);
    const mim_slurm_res* R = &s->slurm[a->kind];
    int ranks = a->kind == MIM_SLURM_PRETRAIN && R->ntasks > 1 ? R->ntasks : 1;
    char only[64] = "", mpi[80] = "";
    if (strcmp(a->step, "run")) snprintf(only, sizeof only, " --only %s", a->step);
    if (ranks > 1) snprintf(mpi, sizeof mpi, " --ranks %d%s%s", ranks, s->slurm_mpi[0] ? " --mpi " : "", s->slurm_mpi);
    // TERM (the B:TERM@120 warning before the time limit, or an outside
    // requeue): pass it to the worker, wait for its checkpoint, and, while
    // the job is still RUNNING (the time-limit warning), requeue it (trap ""
    // first: the requeue signals every process of the job, scontrol
    // included). During a scancel or an outside requeue scontrol says
    // COMPLETING, and the job is left to that.
    char* text = NULL;
    if (asprintf(&text,
                 "#!/bin/sh\n"
                 "# step %s of the runs in %s.ids (task i: line i + 1), study %s; written by `mimscale study run --launcher slurm`\n"
                 "id=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" '%s')\n"
                 "[ -n \"$id\" ] || { echo \"no run for array task $SLURM_ARRAY_TASK_ID in %s\" >&2; exit 2; }\n"
                 "mkdir -p '%s/runs/'\"$id\" && exec >> '%s/runs/'\"$id\"'/slurm-%s.out' 2>&1\n"
                 "echo \"[$(date '+%%F %%T')] job $SLURM_JOB_ID (array $SLURM_ARRAY_JOB_ID task $SLURM_ARRAY_TASK_ID, restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): run $id, step %s\"\n"
                 "pid=\n"
                 "trap 'trap \"\" TERM; [ -n \"$pid\" ] && kill -TERM $pid 2>/dev/null && wait $pid\n"
                 "      case $(scontrol show job \"$SLURM_JOB_ID\" 2>/dev/null) in *JobState=RUNNING*) ;; *) exit 143;; esac\n"
                 "      scontrol requeue \"$SLURM_JOB_ID\"; exit 0' TERM\n"
                 "'%s' study run-one '%s' --id \"$id\" --out '%s' --mimscale '%s' --threads %d%s%s%s%s &\n"
                 "pid=$!\n"
                 "wait $pid\n",
                 a->step, base, s->name, ids, ids, o->out, o->out, a->step, a->step, L->self, L->w.study_path, o->out, o->bin, cpus,
                 only, mpi, o->retry_failed ? " --retry-failed" : "", o->quiet ? " --quiet" : "") < 0)
        return mim_err(MIM_ENOMEM, "out of memory");
    rc = write_file(script, text, 0755);
    free(text);
    if (rc) return rc;
    // sbatch argv: ours, then the resources, then the user's, then the script.
    char a_name[300], a_arr[64], a_chdir[2100], a_p[300], a_a[300], a_q[300], a_t[300], a_c[64], a_n[64], a_N[64], a_m[64], a_d[128];
    char* argv[40 + 64];
    int n = 0;
    argv[n++] = (char*)sbatch; argv[n++] = "--parsable";
    snprintf(a_name, sizeof a_name, "--job-name=mim-%s-%s", s->name, a->step); argv[n++] = a_name;
    snprintf(a_arr, sizeof a_arr, "--array=0-%d", a->n - 1); argv[n++] = a_arr;
    argv[n++] = out_pat;
    argv[n++] = "--open-mode=append"; argv[n++] = "--requeue"; argv[n++] = "--signal=B:TERM@120";
    snprintf(a_chdir, sizeof a_chdir, "--chdir=%s", L->cwd); argv[n++] = a_chdir;
    const mim_slurm_opts* so = &L->so;
    if (so->partition && so->partition[0]) { snprintf(a_p, sizeof a_p, "--partition=%s", so->partition); argv[n++] = a_p; }
    if (so->account && so->account[0]) { snprintf(a_a, sizeof a_a, "--account=%s", so->account); argv[n++] = a_a; }
    if (so->qos && so->qos[0]) { snprintf(a_q, sizeof a_q, "--qos=%s", so->qos); argv[n++] = a_q; }
    const char* tl = R->time[0] ? R->time : so->time && so->time[0] ? so->time : NULL;   // the study's per kind, else --time
    if (tl) { snprintf(a_t, sizeof a_t, "--time=%s", tl); argv[n++] = a_t; }
    snprintf(a_c, sizeof a_c, "--cpus-per-task=%d", cpus); argv[n++] = a_c;
    if (ranks > 1) { snprintf(a_n, sizeof a_n, "--ntasks=%d", ranks); argv[n++] = a_n; }
    if (R->nodes > 0) { snprintf(a_N, sizeof a_N, "--nodes=%d", R->nodes); argv[n++] = a_N; }
    if (R->mem[0]) { snprintf(a_m, sizeof a_m, "--mem=%s", R->mem); argv[n++] = a_m; }
    if (a->after >= 0) {
        snprintf(a_d, sizeof a_d, "--dependency=aftercorr:%s", plans[a->after].job); argv[n++] = a_d;
        argv[n++] = "--kill-on-invalid-dep=yes";
    }
    for (int i = 0; i < so->nextra && n < 40 + 62; i++) argv[n++] = (char*)so->extra[i];
    argv[n++] = script; argv[n] = NULL;
    char out[512], err[2048];
    rc = capture(argv, out, sizeof out, err, sizeof err);
    if (rc != 0) {
        unlink(script); unlink(ids);
        if (rc < 0) return rc;
        return mim_err(MIM_EARG, "sbatch refused the %s array of %d run(s) (%s ...) (exit %d): %s", a->step, a->n, L->q[a->idx[0]].id, rc,
                       err[0] ? err : "(no message)");
    }
    snprintf(a->job, sizeof a->job, "%.*s", (int)strcspn(out, ";\n "), out);   // --parsable: "id" or "id;cluster"
    if (!a->job[0] || strspn(a->job, "0123456789") != strlen(a->job))
        return mim_err(MIM_EFORMAT, "sbatch for the %s array printed no job id (stdout \"%s\", stderr \"%s\")", a->step, out, err);
    return 0;
}

static int slurm_flush(mim_launcher* l) {
    slurm_impl* L = l->impl;
    const mim_study_opts* o = L->w.o;
    const mim_study* s = L->w.s;
    if (!L->nq) return 0;
    char sbatch[4200];
    if (!on_path("sbatch", sbatch, sizeof sbatch)) return mim_err(MIM_ENOTFOUND, "sbatch not found on PATH");
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/slurm", o->out);
    if (mkdir(dir, 0755) && errno != EEXIST) return mim_err(MIM_EIO, "cannot create %s: %s", dir, strerror(errno));
    snprintf(dir, sizeof dir, "%s/runs", o->out);
    if (mkdir(dir, 0755) && errno != EEXIST) return mim_err(MIM_EIO, "cannot create %s: %s", dir, strerror(errno));
    // The plan: P, then one array per evaluation the MIM runs have, S, B.
    array_plan plans[3 + MIM_EVAL_COUNT];
    int np = 0, rc = 0;
    int* mem = calloc((size_t)L->nq * (3 + MIM_EVAL_COUNT), sizeof *mem);
    if (!mem) return mim_err(MIM_ENOMEM, "out of memory");
    array_plan P = {"pretrain", MIM_SLURM_PRETRAIN, mem, 0, -1, ""};
    for (int i = 0; i < L->nq; i++) if (L->q[i].kind == MIM_RUN_MIM) P.idx[P.n++] = i;
    if (P.n) {
        plans[np++] = P;
        for (int e = 0; e < MIM_EVAL_COUNT; e++) {
            if (!s->evals[e] || e == MIM_EVAL_SCRATCH) continue;
            array_plan E = {mim_eval_name((mim_eval_kind)e), MIM_SLURM_EVAL, mem + (size_t)np * L->nq, P.n, 0, ""};
            memcpy(E.idx, P.idx, sizeof *E.idx * (size_t)P.n);   // task i of E follows task i of P
            plans[np++] = E;
        }
    }
    array_plan S = {"scratch", MIM_SLURM_SCRATCH, mem + (size_t)np * L->nq, 0, -1, ""};
    for (int i = 0; i < L->nq; i++) if (L->q[i].kind == MIM_RUN_SCRATCH) S.idx[S.n++] = i;
    if (S.n) plans[np++] = S;
    array_plan B = {"run", MIM_SLURM_BASELINE, mem + (size_t)np * L->nq, 0, -1, ""};
    for (int i = 0; i < L->nq; i++) if (L->q[i].kind == MIM_RUN_BASELINE) B.idx[B.n++] = i;
    if (B.n) plans[np++] = B;
    time_t t = time(NULL);
    char stamp[64], ts[64];
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", localtime(&t));
    snprintf(stamp + strlen(stamp), sizeof stamp - strlen(stamp), "-%d", (int)getpid());
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", localtime(&t));
    int nsub = 0;
    for (; nsub < np; nsub++)
        if ((rc = submit_array(L, &plans[nsub], plans, stamp, sbatch))) break;
    if (rc) {   // nothing of this flush stays submitted
        const char* jobs[3 + MIM_EVAL_COUNT];
        for (int k = 0; k < nsub; k++) jobs[k] = plans[k].job;
        char keep[2048];
        snprintf(keep, sizeof keep, "%s", mim_err_msg());
        scancel_all(jobs, nsub);
        mim_err(rc, "%s", keep);
        free(mem);
        L->nq = 0;
        return rc;
    }
    // Each run's record: its jobs ("<array>_<task>"), steps and logs.
    for (int i = 0; i < L->nq && !rc; i++) {
        const mim_study_run* r = &L->q[i];
        cJSON* j = cJSON_CreateObject();
        CHECK(j);
        cJSON* js = cJSON_AddArrayToObject(j, "jobs");
        for (int k = 0; k < np; k++)
            for (int m = 0; m < plans[k].n; m++) {
                if (plans[k].idx[m] != i) continue;
                char id[64], log[4400], name[300];
                snprintf(id, sizeof id, "%s_%d", plans[k].job, m);
                snprintf(log, sizeof log, "%s/runs/%s/slurm-%s.out", o->out, r->id, plans[k].step);
                snprintf(name, sizeof name, "mim-%s-%s", s->name, plans[k].step);
                cJSON* e = cJSON_CreateObject();
                CHECK(e);
                cJSON_AddStringToObject(e, "step", plans[k].step);
                cJSON_AddStringToObject(e, "job_id", id);
                cJSON_AddStringToObject(e, "job_name", name);
                cJSON_AddStringToObject(e, "log", log);
                cJSON_AddItemToArray(js, e);
            }
        cJSON_AddStringToObject(j, "submitted_at", ts);
        char* txt = cJSON_Print(j);
        cJSON_Delete(j);
        CHECK(txt);
        char rec[4400], *line = NULL;
        snprintf(dir, sizeof dir, "%s/runs/%s", o->out, r->id);
        if (mkdir(dir, 0755) && errno != EEXIST) rc = mim_err(MIM_EIO, "cannot create %s: %s", dir, strerror(errno));
        snprintf(rec, sizeof rec, "%s/slurm.json", dir);
        if (!rc) rc = asprintf(&line, "%s\n", txt) < 0 ? MIM_ENOMEM : write_file(rec, line, 0644);
        free(txt); free(line);
    }
    if (!o->quiet)
        for (int k = 0; k < np; k++) {
            char dep[80] = "";
            if (plans[k].after >= 0) snprintf(dep, sizeof dep, ", task i after task i of %s (aftercorr)", plans[plans[k].after].job);
            fprintf(stderr, "study: Slurm job array %s: %s of %d run(s)%s; logs runs/<id>/slurm-%s.out\n", plans[k].job, plans[k].step,
                    plans[k].n, dep, plans[k].step);
        }
    free(mem);
    L->nq = 0;
    return rc ? rc : np;
}

// The value of KEY= in scontrol's one-line output, into buf.
static void field(const char* text, const char* key, char* buf, size_t cap) {
    buf[0] = 0;
    size_t kl = strlen(key);
    for (const char* p = text; (p = strstr(p, key)); p += kl)
        if ((p == text || p[-1] == ' ' || p[-1] == '\n') && p[kl] == '=') {
            snprintf(buf, cap, "%.*s", (int)strcspn(p + kl + 1, " \n"), p + kl + 1);
            return;
        }
}

// One job's state from `scontrol show job -o ID`: 0, with st ("" when the
// job is gone from slurmctld, or its id now names another job) and reason.
static int job_state(const char* scontrol, const char* job, const char* want_name, char* st, size_t scap, char* reason, size_t rcap) {
    char* argv[] = {(char*)scontrol, "show", "job", "-o", (char*)job, NULL};
    char out[8192], err[1024], nm[256];
    st[0] = reason[0] = 0;
    int rc = capture(argv, out, sizeof out, err, sizeof err);
    if (rc < 0) return rc;
    if (rc != 0) return 0;   // "Invalid job id specified": gone (MinJobAge), or another cluster
    field(out, "JobName", nm, sizeof nm);
    if (want_name && want_name[0] && strcmp(nm, want_name)) return 0;   // job ids restart with a fresh cluster
    field(out, "JobState", st, scap);
    field(out, "Reason", reason, rcap);
    return 0;
}

static int slurm_status(mim_launcher* l, const mim_study_run* r, mim_launch_info* info) {
    slurm_impl* L = l->impl;
    memset(info, 0, sizeof *info);
    char rec[4400];
    snprintf(rec, sizeof rec, "%s/runs/%s/slurm.json", L->w.o->out, r->id);
    FILE* f = fopen(rec, "r");
    if (!f) return 0;   // never submitted
    char text[16384];
    size_t m = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[m] = 0;
    cJSON* j = cJSON_Parse(text);
    const cJSON* jobs = cJSON_GetObjectItemCaseSensitive(j, "jobs");
    if (!cJSON_IsArray(jobs) || !cJSON_GetArraySize(jobs)) { cJSON_Delete(j); return 0; }   // unreadable record: as never submitted
    char scontrol[4200];
    if (!on_path("scontrol", scontrol, sizeof scontrol)) {
        cJSON_Delete(j);
        return mim_err(MIM_ENOTFOUND, "scontrol not found on PATH: cannot tell the state of the Slurm jobs of run %s", r->id);
    }
    static const char* pending[] = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESV_DEL_HOLD", "SPECIAL_EXIT"};
    static const char* running[] = {"RUNNING", "CONFIGURING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"};
    int any_run = 0, any_pend = 0, rc = 0;
    char first_bad[64] = "", run_step[64] = "", pend_step[64] = "";
    size_t jn = 0;
    for (const cJSON* e = jobs->child; e; e = e->next) {
        const cJSON* id = cJSON_GetObjectItemCaseSensitive(e, "job_id");
        const cJSON* nm = cJSON_GetObjectItemCaseSensitive(e, "job_name");
        const cJSON* st = cJSON_GetObjectItemCaseSensitive(e, "step");
        const cJSON* lg = cJSON_GetObjectItemCaseSensitive(e, "log");
        if (!cJSON_IsString(id)) continue;
        const char* step = cJSON_IsString(st) ? st->valuestring : "?";
        if (jn < sizeof info->job - 1) jn += (size_t)snprintf(info->job + jn, sizeof info->job - jn, "%s%s", jn ? "," : "", id->valuestring);
        char state[64], reason[128];
        if ((rc = job_state(scontrol, id->valuestring, cJSON_IsString(nm) ? nm->valuestring : NULL, state, sizeof state, reason, sizeof reason)) < 0) break;
        int k = 0;   // 0 ended, 1 pending, 2 running
        for (size_t q = 0; q < sizeof pending / sizeof *pending; q++) if (!strcmp(state, pending[q])) k = 1;
        for (size_t q = 0; q < sizeof running / sizeof *running; q++) if (!strcmp(state, running[q])) k = 2;
        if (k == 1 && !strcmp(reason, "DependencyNeverSatisfied")) k = 0;   // never runs (no --kill-on-invalid-dep on this cluster)
        if (k == 2 && !any_run) { any_run = 1; snprintf(run_step, sizeof run_step, "%s %s", step, state); if (cJSON_IsString(lg)) snprintf(info->log, sizeof info->log, "%s", lg->valuestring); }
        if (k == 1 && !any_pend) { any_pend = 1; snprintf(pend_step, sizeof pend_step, "%s %s", step, state); }
        if (k == 0 && strcmp(state, "COMPLETED") && !first_bad[0]) snprintf(first_bad, sizeof first_bad, "%s %s", step, state[0] ? state : "gone");
        if (!info->log[0] && cJSON_IsString(lg)) snprintf(info->log, sizeof info->log, "%s", lg->valuestring);
    }
    cJSON_Delete(j);
    if (rc < 0) return rc;
    info->state = any_run ? MIM_LAUNCH_RUNNING : any_pend ? MIM_LAUNCH_PENDING : MIM_LAUNCH_ENDED;
    snprintf(info->detail, sizeof info->detail, "%s", any_run ? run_step : any_pend ? pend_step : first_bad[0] ? first_bad : "COMPLETED");
    return 0;
}

static int slurm_poll(mim_launcher* l, char* id, size_t cap, int* status) { return -1; }   // jobs are not awaited
static void slurm_signal(mim_launcher* l, int sig) {}
static void slurm_free(mim_launcher* l) {
    if (!l) return;
    slurm_impl* L = l->impl;
    if (L) free(L->q);
    free(l->impl);
    free(l);
}

mim_launcher* mim_launcher_slurm(const mim_worker_spec* w, const mim_slurm_opts* so) {
    mim_launcher* l = calloc(1, sizeof *l);
    slurm_impl* L = calloc(1, sizeof *L);
    if (!l || !L) { free(l); free(L); mim_err(MIM_ENOMEM, "out of memory"); return NULL; }
    L->w = *w;
    if (so) L->so = *so;
    if (!getcwd(L->cwd, sizeof L->cwd)) snprintf(L->cwd, sizeof L->cwd, "/");
    ssize_t n = readlink("/proc/self/exe", L->self, sizeof L->self - 1);
    L->self[n > 0 ? n : 0] = 0;
    if (n <= 0) snprintf(L->self, sizeof L->self, "%s", w->o->bin);
    *l = (mim_launcher){"slurm", slurm_submit, slurm_flush, slurm_poll, slurm_status, slurm_signal, slurm_free, L};
    return l;
}
