// launch_slurm.c: the Slurm launcher: each run is one sbatch job whose
// script (runs/<id>/job.sh) runs `mimscale study run-one` for it, so a run's
// pre-training and evaluations stay in one job, in order (no
// --dependency chains). The jobs outlive `study run`; runs/<id>/slurm.json
// records the job id, and a later `study run` / `study status` asks
// `scontrol show job` what became of it (no sacct: accounting is optional).
//
// Time limits: jobs get --requeue --signal=B:TERM@120 --open-mode=append;
// the script's TERM trap passes TERM to the worker (which checkpoints and
// exits 4) and then requeues its own job (Slurm does not requeue a job that
// hits its time limit), so the rerun resumes from the checkpoint. A job
// cancelled with scancel is not requeued (scontrol says COMPLETING then, not
// RUNNING); the next `study run` resubmits it, and it resumes.
// Assumes a file system shared by the submit host and the nodes (the study
// folder, the study file and the mimscale binary at the same paths).
#include "study/launch.h"
#include "core/check.h"
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
    char dir[4200], script[4400], log[4400], rec[4400];
    snprintf(dir, sizeof dir, "%s/runs/%s", o->out, r->id);
    snprintf(script, sizeof script, "%s/job.sh", dir);
    snprintf(log, sizeof log, "%s/slurm.out", dir);
    snprintf(rec, sizeof rec, "%s/slurm.json", dir);
    char runs_dir[4200];
    snprintf(runs_dir, sizeof runs_dir, "%s/runs", o->out);
    if (mkdir(runs_dir, 0755) && errno != EEXIST) return mim_err(MIM_EIO, "cannot create %s: %s", runs_dir, strerror(errno));
    int made_dir = mkdir(dir, 0755) == 0;
    if (!made_dir && errno != EEXIST) return mim_err(MIM_EIO, "cannot create %s: %s", dir, strerror(errno));
    char threads[32] = "";
    if (o->threads > 0) snprintf(threads, sizeof threads, " --threads %d", o->threads);
    // TERM (the B:TERM@120 warning before the time limit): pass it to the
    // worker, wait for its checkpoint, requeue this job (trap "" first: the
    // requeue signals every process of the job, scontrol included). Only
    // while the job is RUNNING (the time-limit warning): during a scancel
    // or an outside requeue scontrol says COMPLETING, and the job is left
    // to that.
    char* text = NULL;
    if (asprintf(&text,
                 "#!/bin/sh\n"
                 "# one run of study %s, written by `mimscale study run --launcher slurm`\n"
                 "echo \"[$(date '+%%F %%T')] job $SLURM_JOB_ID (restart ${SLURM_RESTART_COUNT:-0}) on $(hostname): run %s\"\n"
                 "pid=\n"
                 "trap 'trap \"\" TERM; [ -n \"$pid\" ] && kill -TERM $pid 2>/dev/null && wait $pid\n"
                 "      case $(scontrol show job \"$SLURM_JOB_ID\" 2>/dev/null) in *JobState=RUNNING*) ;; *) exit 143;; esac\n"
                 "      scontrol requeue \"$SLURM_JOB_ID\"; exit 0' TERM\n"
                 "'%s' study run-one '%s' --id '%s' --out '%s' --mimscale '%s'%s%s%s &\n"
                 "pid=$!\n"
                 "wait $pid\n",
                 L->w.s->name, r->id, L->self, L->w.study_path, r->id, o->out, o->bin, threads, o->retry_failed ? " --retry-failed" : "",
                 o->quiet ? " --quiet" : "") < 0)
        return mim_err(MIM_ENOMEM, "out of memory");
    int rc = write_file(script, text, 0755);
    free(text);
    if (rc) return rc;
    // sbatch argv: ours, then the user's, then the script.
    char a_name[300], a_out[4500], a_chdir[2100], a_p[300], a_a[300], a_q[300], a_t[300], a_c[64];
    char* argv[32 + 64];
    int n = 0;
    argv[n++] = sbatch; argv[n++] = "--parsable";
    snprintf(a_name, sizeof a_name, "--job-name=mim-%s", r->id); argv[n++] = a_name;
    snprintf(a_out, sizeof a_out, "--output=%s", log); argv[n++] = a_out;
    argv[n++] = "--open-mode=append"; argv[n++] = "--requeue"; argv[n++] = "--signal=B:TERM@120";
    snprintf(a_chdir, sizeof a_chdir, "--chdir=%s", L->cwd); argv[n++] = a_chdir;
    const mim_slurm_opts* so = &L->so;
    if (so->partition && so->partition[0]) { snprintf(a_p, sizeof a_p, "--partition=%s", so->partition); argv[n++] = a_p; }
    if (so->account && so->account[0]) { snprintf(a_a, sizeof a_a, "--account=%s", so->account); argv[n++] = a_a; }
    if (so->qos && so->qos[0]) { snprintf(a_q, sizeof a_q, "--qos=%s", so->qos); argv[n++] = a_q; }
    if (so->time && so->time[0]) { snprintf(a_t, sizeof a_t, "--time=%s", so->time); argv[n++] = a_t; }
    int cpus = so->cpus > 0 ? so->cpus : L->w.s->threads > 0 ? L->w.s->threads : 0;
    if (o->threads > 0 && (cpus == 0 || cpus > o->threads)) cpus = o->threads;
    if (cpus > 0) { snprintf(a_c, sizeof a_c, "--cpus-per-task=%d", cpus); argv[n++] = a_c; }
    for (int i = 0; i < so->nextra && n < 32 + 62; i++) argv[n++] = (char*)so->extra[i];
    argv[n++] = script; argv[n] = NULL;
    char out[512], err[2048];
    rc = capture(argv, out, sizeof out, err, sizeof err);
    if (rc != 0) {
        unlink(script);
        if (made_dir) rmdir(dir);   // nothing of a refused job is left behind
        if (rc < 0) return rc;
        return mim_err(MIM_EARG, "sbatch refused run %s (exit %d): %s", r->id, rc, err[0] ? err : "(no message)");
    }
    char job[32];
    snprintf(job, sizeof job, "%.*s", (int)strcspn(out, ";\n "), out);   // --parsable: "id" or "id;cluster"
    if (!job[0] || strspn(job, "0123456789") != strlen(job))
        return mim_err(MIM_EFORMAT, "sbatch for run %s printed no job id (stdout \"%s\", stderr \"%s\")", r->id, out, err);
    time_t t = time(NULL);
    char ts[64];
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", localtime(&t));
    cJSON* j = cJSON_CreateObject();
    CHECK(j);
    cJSON_AddStringToObject(j, "job_id", job);
    cJSON_AddStringToObject(j, "job_name", a_name + strlen("--job-name="));
    cJSON_AddStringToObject(j, "submitted_at", ts);
    cJSON_AddStringToObject(j, "log", log);
    cJSON_AddStringToObject(j, "script", script);
    char* txt = cJSON_Print(j);
    cJSON_Delete(j);
    CHECK(txt);
    char* line = NULL;
    rc = asprintf(&line, "%s\n", txt) < 0 ? MIM_ENOMEM : write_file(rec, line, 0644);
    free(txt); free(line);
    if (rc) return rc;
    if (!o->quiet) fprintf(stderr, "study: run %s: submitted as Slurm job %s (log %s)\n", r->id, job, log);
    return 0;
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

static int slurm_status(mim_launcher* l, const mim_study_run* r, mim_launch_info* info) {
    slurm_impl* L = l->impl;
    memset(info, 0, sizeof *info);
    char rec[4400];
    snprintf(rec, sizeof rec, "%s/runs/%s/slurm.json", L->w.o->out, r->id);
    FILE* f = fopen(rec, "r");
    if (!f) return 0;   // never submitted
    char text[8192];
    size_t m = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[m] = 0;
    cJSON* j = cJSON_Parse(text);
    const cJSON* id = cJSON_GetObjectItemCaseSensitive(j, "job_id");
    const cJSON* name = cJSON_GetObjectItemCaseSensitive(j, "job_name");
    const cJSON* log = cJSON_GetObjectItemCaseSensitive(j, "log");
    if (!cJSON_IsString(id)) { cJSON_Delete(j); return 0; }   // unreadable record: as never submitted
    snprintf(info->job, sizeof info->job, "%s", id->valuestring);
    if (cJSON_IsString(log)) snprintf(info->log, sizeof info->log, "%s", log->valuestring);
    char want[256];
    snprintf(want, sizeof want, "%s", cJSON_IsString(name) ? name->valuestring : "");
    cJSON_Delete(j);
    char scontrol[4200];
    if (!on_path("scontrol", scontrol, sizeof scontrol))
        return mim_err(MIM_ENOTFOUND, "scontrol not found on PATH: cannot tell the state of Slurm job %s (run %s)", info->job, r->id);
    char* argv[] = {scontrol, "show", "job", "-o", info->job, NULL};
    char out[8192], err[1024];
    int rc = capture(argv, out, sizeof out, err, sizeof err);
    if (rc < 0) return rc;
    info->state = MIM_LAUNCH_ENDED;
    if (rc != 0) {   // "Invalid job id specified": gone from slurmctld (MinJobAge), or another cluster
        snprintf(info->detail, sizeof info->detail, "gone");
        return 0;
    }
    char st[64], nm[256];
    field(out, "JobState", st, sizeof st);
    field(out, "JobName", nm, sizeof nm);
    if (want[0] && strcmp(nm, want)) {   // job ids restart with a fresh cluster: someone else's job now
        snprintf(info->detail, sizeof info->detail, "gone");
        return 0;
    }
    snprintf(info->detail, sizeof info->detail, "%s", st);
    static const char* pending[] = {"PENDING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SUSPENDED", "RESV_DEL_HOLD", "SPECIAL_EXIT"};
    static const char* running[] = {"RUNNING", "CONFIGURING", "COMPLETING", "RESIZING", "SIGNALING", "STAGE_OUT", "STOPPED"};
    for (size_t k = 0; k < sizeof pending / sizeof *pending; k++) if (!strcmp(st, pending[k])) info->state = MIM_LAUNCH_PENDING;
    for (size_t k = 0; k < sizeof running / sizeof *running; k++) if (!strcmp(st, running[k])) info->state = MIM_LAUNCH_RUNNING;
    return 0;
}

static int slurm_poll(mim_launcher* l, char* id, size_t cap, int* status) { return -1; }   // jobs are not awaited
static void slurm_signal(mim_launcher* l, int sig) {}
static void slurm_free(mim_launcher* l) {
    if (!l) return;
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
    *l = (mim_launcher){"slurm", slurm_submit, slurm_poll, slurm_status, slurm_signal, slurm_free, L};
    return l;
}
