// launch_local.c: the local launcher: each run's worker is a forked child
// of `study run` that runs mim_study_run_one (what `mimscale study run-one`
// runs), at most o->jobs at once, each with --threads cores/jobs (unless
// o->threads is set). Not a pool of long-lived processes: one child per run.
#include "study/launch.h"
#include "core/check.h"
#include "train/signals.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    pid_t pid;
    char id[128];
} worker;

typedef struct {
    mim_worker_spec w;
    mim_study_opts o;       // the workers' options (threads set)
    worker* ws; int nw, cap;
} local_impl;

static int local_submit(mim_launcher* l, const mim_study_run* r) {
    local_impl* L = l->impl;
    if (L->nw == L->cap) {
        int cap = L->cap ? 2 * L->cap : 8;
        worker* nw = realloc(L->ws, (size_t)cap * sizeof *nw);
        if (!nw) return mim_err(MIM_ENOMEM, "out of memory");
        L->ws = nw; L->cap = cap;
    }
    fflush(stdout); fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) return mim_err(MIM_EIO, "fork failed for run %s", r->id);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   // never outlive the runner (its re-run would race us)
        if (getppid() != parent) _exit(127);
        mim_signals_forward_to(0);
        int rc = mim_study_run_one(L->w.s, &L->o, r->id);
        if (rc < 0) fprintf(stderr, "study: run %s: %s\n", r->id, mim_err_msg());
        fflush(stdout); fflush(stderr);
        _exit(rc < 0 ? 2 : rc);
    }
    worker* w = &L->ws[L->nw++];
    w->pid = pid;
    snprintf(w->id, sizeof w->id, "%s", r->id);
    return 0;
}

static int local_poll(mim_launcher* l, char* id, size_t cap, int* status) {
    local_impl* L = l->impl;
    if (!L->nw) return -1;
    for (int i = 0; i < L->nw; i++) {
        int st = 0;
        pid_t p = waitpid(L->ws[i].pid, &st, WNOHANG);
        if (p == 0 || (p < 0 && errno == EINTR)) continue;
        *status = p < 0 ? 2 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        snprintf(id, cap, "%s", L->ws[i].id);
        L->ws[i] = L->ws[--L->nw];
        return 1;
    }
    return 0;
}

static int local_status(mim_launcher* l, const mim_study_run* r, mim_launch_info* info) {
    local_impl* L = l->impl;
    memset(info, 0, sizeof *info);
    for (int i = 0; i < L->nw; i++)
        if (!strcmp(L->ws[i].id, r->id)) {
            info->state = MIM_LAUNCH_RUNNING;
            snprintf(info->detail, sizeof info->detail, "pid %d", (int)L->ws[i].pid);
        }
    return 0;
}

static void local_signal(mim_launcher* l, int sig) {
    local_impl* L = l->impl;
    for (int i = 0; i < L->nw; i++) kill(L->ws[i].pid, sig);
}

static void local_free(mim_launcher* l) {
    if (!l) return;
    local_impl* L = l->impl;
    free(L->ws);
    free(L);
    free(l);
}

mim_launcher* mim_launcher_local(const mim_worker_spec* w) {
    mim_launcher* l = calloc(1, sizeof *l);
    local_impl* L = calloc(1, sizeof *L);
    if (!l || !L) { free(l); free(L); mim_err(MIM_ENOMEM, "out of memory"); return NULL; }
    L->w = *w;
    L->o = *w->o;
    int jobs = L->o.jobs > 1 ? L->o.jobs : 1;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (L->o.threads <= 0 && jobs > 1) L->o.threads = cores / jobs > 1 ? (int)(cores / jobs) : 1;
    *l = (mim_launcher){"local", local_submit, NULL, local_poll, local_status, local_signal, local_free, L};
    return l;
}
