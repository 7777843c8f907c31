// distutil.h: helpers shared by the MPI tests (test_dist*.c), header-only,
// on top of testutil.h: shell commands, the binary and mpirun, metrics rows,
// comparing two safetensors files, a job started in the background and
// waited for with a bound.
#pragma once
#include "testutil.h"
#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

// Runs a shell command (printf-style); its exit status, -1 if it did not exit.
__attribute__((format(printf, 1, 2), unused))
static int du_sh(const char* fmt, ...) {
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Finds the binary ($MIM_BUILD/mimscale) and mpirun, and lets OpenMPI run as
// root (CI does). 0, or 1 with *why set: the test should skip.
__attribute__((unused))
static int du_setup(char* bin, size_t n, const char** why) {
    if (du_sh("command -v mpirun >/dev/null 2>&1")) { *why = "mpirun not installed"; return 1; }
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    setenv("OMP_NUM_THREADS", "1", 1);
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    snprintf(bin, n, "%s/mimscale", build);
    struct stat sb;
    if (stat(bin, &sb)) { *why = "needs the mimscale binary (make)"; return 1; }
    return 0;
}

// The values of "key": in the rows of RUN/metrics.jsonl that have it, in
// order, at most n. Returns how many.
__attribute__((unused))
static int du_metric(const char* run, const char* key, float* out, int n) {
    char p[1024], line[4096], pat[128];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    FILE* f = fopen(p, "r");
    if (!f) return 0;
    int k = 0;
    while (k < n && fgets(line, sizeof line, f)) {
        char* q = strstr(line, pat);
        if (q) out[k++] = strtof(q + strlen(pat), NULL);
    }
    fclose(f);
    return k;
}

// maxrel (testutil.h) between the F32 tensors of two safetensors files, over
// every tensor of a whose name does not contain skip (NULL: none); *bits gets
// 1 when all compared tensors (and the I32 ones) have identical bytes.
// INFINITY when a file or tensor is missing or shapes differ.
__attribute__((unused))
static double du_st_diff(const char* a, const char* b, const char* skip, int* bits) {
    mim_st *x, *y;
    if (bits) *bits = 0;
    if (mim_st_open(&x, a)) return INFINITY;
    if (mim_st_open(&y, b)) { mim_st_close(x); return INFINITY; }
    double worst = 0;
    int same = 1;
    for (int i = 0; i < mim_st_count(x) && worst < INFINITY; i++) {
        const mim_st_tensor* t = mim_st_get(x, i);
        const mim_st_tensor* u = mim_st_find(y, t->name);
        if (!u || u->nbytes != t->nbytes || u->dtype != t->dtype) { worst = INFINITY; break; }
        same &= memcmp(t->data, u->data, t->nbytes) == 0;
        if (t->dtype != MIM_F32 || (skip && strstr(t->name, skip))) continue;
        float* p = tu_alloc(t->numel);
        float* q = tu_alloc(t->numel);
        if (mim_st_read_f32(x, t->name, p, t->ndim, t->shape) || mim_st_read_f32(y, t->name, q, t->ndim, t->shape)) {
            worst = INFINITY;
            break;
        }
        double r = tu_relerr(p, q, t->numel, NULL);
        if (r > worst) worst = r;
    }
    if (bits) *bits = same && worst < INFINITY;
    mim_st_close(x); mim_st_close(y);
    return worst;
}

// Starts `sh -c "exec CMD"` in the background (CMD: mpirun ..., so the pid
// is mpirun's and the ranks are its children). Returns the pid.
__attribute__((unused))
static pid_t du_spawn(const char* cmd) {
    char full[8192];
    snprintf(full, sizeof full, "exec %s", cmd);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", full, (char*)NULL); _exit(127); }
    return pid;
}

// Waits for pid at most secs seconds; 1 when it ended (status in *st), else
// kills it (SIGKILL), reaps it and returns 0. *took gets the seconds waited.
__attribute__((unused))
static int du_wait(pid_t pid, int secs, int* st, double* took) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int done = 0;
    for (;;) {
        if (waitpid(pid, st, WNOHANG) == pid) { done = 1; break; }
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec + 1e-9 * (t.tv_nsec - t0.tv_nsec) > secs) break;
        usleep(100000);
    }
    clock_gettime(CLOCK_MONOTONIC, &t);
    *took = t.tv_sec - t0.tv_sec + 1e-9 * (t.tv_nsec - t0.tv_nsec);
    if (!done) { kill(pid, SIGKILL); waitpid(pid, st, 0); }
    return done;
}

// The pid of one rank (the first child of mpirun `parent` whose command line
// matches pattern), or -1.
__attribute__((unused))
static pid_t du_child(pid_t parent, const char* pattern) {
    char cmd[512];
    snprintf(cmd, sizeof cmd, "pgrep -P %d -f '%s' | head -n 1", (int)parent, pattern);
    FILE* p = popen(cmd, "r");
    if (!p) return -1;
    int pid = -1;
    if (fscanf(p, "%d", &pid) != 1) pid = -1;
    pclose(p);
    return pid;
}

// Waits (at most secs) until PATH exists; 1 when it does.
__attribute__((unused))
static int du_wait_file(const char* path, int secs) {
    struct stat sb;
    for (int i = 0; i < secs * 10; i++) {
        if (stat(path, &sb) == 0) return 1;
        usleep(100000);
    }
    return 0;
}

// The checkpoint folder named by RUN/latest ("" if none) into name.
__attribute__((unused))
static void du_latest(const char* run, char* name, size_t n) {
    char p[1024];
    snprintf(p, sizeof p, "%s/latest", run);
    name[0] = 0;
    FILE* f = fopen(p, "r");
    if (!f) return;
    if (!fgets(name, (int)n, f)) name[0] = 0;
    fclose(f);
    name[strcspn(name, "\r\n ")] = 0;
}
