// test_reliability.c: long runs survive what clusters do to them, driving
// the real `mimscale pretrain` binary as a child process:
//  - SIGTERM: the run finishes its step, writes a checkpoint, exits 4;
//    --resume then ends with the same bits as an uninterrupted run;
//  - SIGUSR1: a checkpoint without stopping;
//  - SIGKILL at 20 random moments (checkpoints every step, so many kills
//    land inside checkpoint writes), resuming after each: same final bits;
//  - a non-finite loss: stop (exit 3, message names the step) with the last
//    checkpoint intact, or --on-nan skip;
//  - a full disk (file-size limit): the checkpoint write fails with a clear
//    error, the previous checkpoint stays loadable, no temp files remain.
#include "testutil.h"
#include "train/checkpoint.h"
#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <zlib.h>

static char tmpdir[256], data[512], bin[512];

static void write_idx(const char* dir, int n, int H, int W) {
    mim_rng r;
    mim_rng_seed(&r, 9);
    uint8_t* px = tu_alloc_bytes((size_t)n * H * W);
    uint8_t* lab = tu_alloc_bytes((size_t)n);
    for (size_t k = 0; k < (size_t)n * H * W; k++) px[k] = (uint8_t)mim_rng_below(&r, 256);
    for (int i = 0; i < n; i++) lab[i] = (uint8_t)(i % 10);
    tu_write_idx(dir, "train", n, H, W, px, lab);
}

// Starts `mimscale pretrain` with the common tiny config plus extra flags;
// returns the child's pid. limit_kb > 0 sets a file-size limit first.
static pid_t start(const char* out, const char* extra, long limit_kb) {
    static char cmd[8192];
    char lim[64] = "";
    if (limit_kb > 0) snprintf(lim, sizeof lim, "ulimit -f %ld; ", limit_kb * 2);   // 512-byte blocks
    snprintf(cmd, sizeof cmd,
             "%sexec %s pretrain --data %s --out %s --model vit_nano --patch 4 --dec-dim 16 --dec-depth 1 "
             "--dec-heads 2 --batch 16 --steps 40 --lr 1e-3 --warmup-epochs 0.1 --threads 1 --quiet --keep 3 %s "
             ">>%s.log 2>&1", lim, bin, data, out, extra, out);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char*)NULL);
        _exit(127);
    }
    return pid;
}

static int wait_exit(pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

static int run(const char* out, const char* extra) { return wait_exit(start(out, extra, 0)); }

static void sleep_ms(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static int count_lines(const char* path) {
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    int n = 0, c;
    while ((c = fgetc(f)) != EOF) n += c == '\n';
    fclose(f);
    return n;
}

static int same_final(const char* a, const char* b, int64_t step) {
    int same = 1;
    for (int k = 0; k < 2; k++) {
        char pa[700], pb[700];
        const char* fn = k ? "optim.safetensors" : "model.safetensors";
        snprintf(pa, sizeof pa, "%s/ckpt-%09lld/%s", a, (long long)step, fn);
        snprintf(pb, sizeof pb, "%s/ckpt-%09lld/%s", b, (long long)step, fn);
        uint8_t *x = NULL, *y = NULL;
        size_t nx = tu_slurp(pa, &x), ny = tu_slurp(pb, &y);
        same &= nx > 0 && nx == ny && !memcmp(x, y, nx);
    }
    return same;
}

static int has_tmp_files(const char* dir) {
    char cmd[700];
    snprintf(cmd, sizeof cmd, "find %s -name '*.tmp*' | grep -q .", dir);
    return system(cmd) == 0;
}

int main(void) {
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    snprintf(bin, sizeof bin, "%s/mimscale", build);
    struct stat sb;
    if (stat(bin, &sb) != 0) { printf("SKIP: %s not built\n", bin); return TU_SKIP; }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_rel_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    snprintf(data, sizeof data, "%s/data", tmpdir);
    mkdir(data, 0755);
    write_idx(data, 256, 16, 12);
    char ref[512], out[512], p[700];

    snprintf(ref, sizeof ref, "%s/ref", tmpdir);
    int rc = run(ref, "--save-every 10");
    TU_CHECK(rc == 0, "uninterrupted 40-step run: exit %d", rc);

    // SIGTERM mid-run, then resume
    snprintf(out, sizeof out, "%s/term", tmpdir);
    pid_t pid = start(out, "--save-every 10 --log-every 1", 0);
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    for (int i = 0; i < 3000 && count_lines(p) < 5; i++) sleep_ms(5);
    // SIGUSR1 first: a checkpoint appears and the run goes on
    kill(pid, SIGUSR1);
    int lines_at_usr1 = count_lines(p);
    sleep_ms(300);
    kill(pid, SIGTERM);
    rc = wait_exit(pid);
    mim_config cfg;
    char latest[700];
    snprintf(latest, sizeof latest, "%s/latest", out);
    uint8_t* lt = NULL;
    size_t nl = tu_slurp(latest, &lt);
    long long stopped_at = nl > 5 ? atoll((char*)lt + 5) : -1;
    TU_CHECK(rc == 4 && stopped_at > 0 && stopped_at < 40, "SIGTERM: exit %d (want 4), checkpoint at step %lld", rc, stopped_at);
    snprintf(p, sizeof p, "%s/ckpt-%09lld/model.safetensors", out, stopped_at);
    TU_CHECK(mim_ckpt_read_config(p, &cfg) == 0, "the stop checkpoint is complete and loadable");
    DIR* d = opendir(out);
    int nck = 0;
    struct dirent* e;
    while (d && (e = readdir(d))) nck += !strncmp(e->d_name, "ckpt-", 5);
    if (d) closedir(d);
    TU_CHECK(nck >= 2 || (stopped_at >= 10 && nck >= 1), "SIGUSR1 (at %d logged steps) added a checkpoint without stopping (%d checkpoints)",
             lines_at_usr1, nck);
    rc = run(out, "--save-every 10 --log-every 1 --resume");
    TU_CHECK(rc == 0 && same_final(ref, out, 40), "resume after SIGTERM: exit %d, final model and optimizer bit-identical", rc);

    // 20 SIGKILLs at random moments, checkpoints every step
    snprintf(out, sizeof out, "%s/kill", tmpdir);
    mim_rng r;
    mim_rng_seed(&r, 2024);
    int kills = 0, finished = 0;
    for (int attempt = 0; attempt < 200 && !finished; attempt++) {
        pid = start(out, "--save-every 1 --resume", 0);
        if (kills < 20) {
            sleep_ms(5 + (long)mim_rng_below(&r, 120));
            kill(pid, SIGKILL);
            rc = wait_exit(pid);
            if (rc == 128 + SIGKILL) kills++;
            else finished = rc == 0;
        } else {
            finished = wait_exit(pid) == 0;
        }
    }
    TU_CHECK(kills == 20 && finished, "%d SIGKILLs survived, run completed", kills);
    TU_CHECK(same_final(ref, out, 40), "after 20 kills: final model and optimizer bit-identical to the uninterrupted run");
    TU_CHECK(!has_tmp_files(out), "stale temp files of killed writers removed on resume");

    // non-finite loss: stop with a clear message, the last checkpoint intact
    snprintf(out, sizeof out, "%s/nan", tmpdir);
    rc = run(out, "--save-every 4 --debug-nan-at 7");
    snprintf(p, sizeof p, "%s.log", out);
    uint8_t* txt = NULL;
    size_t n = tu_slurp(p, &txt);
    int named = n && memmem(txt, n, "at step 7", 9) && memmem(txt, n, "non-finite loss", 15);
    snprintf(p, sizeof p, "%s/ckpt-000000004/model.safetensors", out);
    TU_CHECK(rc == 3 && named && mim_ckpt_read_config(p, &cfg) == 0,
             "NaN at step 7: exit %d (want 3), message names step and cause, step-4 checkpoint intact", rc);
    snprintf(out, sizeof out, "%s/nanskip", tmpdir);
    rc = run(out, "--save-every 20 --debug-nan-at 7 --on-nan skip");
    snprintf(p, sizeof p, "%s/metrics.jsonl", out);
    n = tu_slurp(p, &txt);
    int logged = n && memmem(txt, n, "skipped_nonfinite", 17);
    TU_CHECK(rc == 0 && logged, "--on-nan skip: run completes (exit %d), skipped step logged", rc);

    // full disk: a 40 KB file-size limit makes the next checkpoint write fail
    snprintf(out, sizeof out, "%s/disk", tmpdir);
    rc = run(out, "--save-every 10 --stop-at 10");
    TU_CHECK(rc == 0, "run to step 10 with a checkpoint");
    snprintf(p, sizeof p, "%s/ckpt-000000010/model.safetensors", out);
    uint8_t* before = NULL;
    size_t nb = tu_slurp(p, &before);
    rc = wait_exit(start(out, "--save-every 10 --resume", 40));
    snprintf(p, sizeof p, "%s.log", out);
    n = tu_slurp(p, &txt);
    int says = n && (memmem(txt, n, "too large", 9) || memmem(txt, n, "No space", 8) || memmem(txt, n, "cannot", 6));
    snprintf(p, sizeof p, "%s/ckpt-000000010/model.safetensors", out);
    uint8_t* after = NULL;
    size_t na = tu_slurp(p, &after);
    char lp[700];
    snprintf(lp, sizeof lp, "%s/latest", out);
    uint8_t* l2 = NULL;
    tu_slurp(lp, &l2);
    TU_CHECK(rc == 1 && says, "write failure on a full disk: exit %d (want 1) with a clear error", rc);
    TU_CHECK(nb > 0 && nb == na && !memcmp(before, after, nb) && l2 && !strncmp((char*)l2, "ckpt-000000010", 14),
             "previous checkpoint untouched and still 'latest'");
    TU_CHECK(!has_tmp_files(out), "no temp files left after the failed write");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_reliability", 0, NULL);
}
