// proc.c: the study runner's files and subprocesses (see study/internal.h).
#include "study/internal.h"
#include "core/check.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "train/signals.h"
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

// snprintf for paths and arguments; truncation is checked where it matters
// (paths are bounded by the study folder, itself bounded at resolve time).
void mim_study_pathf(char* buf, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
void mim_study_pathf(char* buf, size_t cap, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

int mim_study_exists(const char* p) { struct stat st; return stat(p, &st) == 0; }

int mim_study_mkdir_p(const char* path) {
    char buf[4096];
    mim_study_pathf(buf, sizeof buf, "%s", path);
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
int mim_study_write_atomic(const char* path, const char* text) {
    char tmp[4200];
    mim_study_pathf(tmp, sizeof tmp, "%s.tmp", path);
    FILE* f = fopen(tmp, "w");
    if (!f) return mim_err(MIM_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fputs(text, f) >= 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path)) { unlink(tmp); return mim_err(MIM_EIO, "cannot write %s: %s", path, strerror(errno)); }
    return 0;
}

char* mim_study_read_text(const char* path, off_t from) {
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
int mim_study_run_cmd(char** argv, const char* log_path, off_t* log_off) {
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
void mim_study_last_line(const char* log_path, off_t off, char* out, size_t cap) {
    out[0] = 0;
    char* t = mim_study_read_text(log_path, off);
    if (!t) return;
    char* end = t + strlen(t);
    while (end > t && (end[-1] == '\n' || end[-1] == '\r' || end[-1] == ' ')) *--end = 0;
    char* beg = end;
    while (beg > t && beg[-1] != '\n' && beg[-1] != '\r') beg--;
    mim_study_pathf(out, cap, "%s", beg);
    free(t);
}

// ---------------------------------------------------------------- results lock
// The exclusive lock every writer of results.jsonl / results.csv holds
// around its append and rewrite (workers of one study finish at any time).
// Returns the descriptor (closing it unlocks), or -1 when the lock file
// cannot be opened (the write then goes ahead unlocked, as before locks).
int mim_study_results_lock(const char* out) {
    char path[4200];
    mim_study_pathf(path, sizeof path, "%s/results.jsonl.lock", out);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    while (flock(fd, LOCK_EX) && errno == EINTR) {}
    return fd;
}
void mim_study_results_unlock(int fd) { if (fd >= 0) close(fd); }

// The status of a row: 0 ok, 1 failed, -1 no row.
int mim_study_row_status(const cJSON* row) {
    if (!row) return -1;
    const cJSON* st = cJSON_GetObjectItemCaseSensitive(row, "status");
    return cJSON_IsString(st) && !strcmp(st->valuestring, "ok") ? 0 : 1;
}
