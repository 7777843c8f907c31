// test_dist.c: data-parallel training with MPI (mpirun --oversubscribe -np 2
// on one machine), against the single-process run it must reproduce:
//  - 2 ranks x batch B/2 = 1 process x batch B: same losses (<= 1e-5) and
//    parameters after 10 steps (<= 1e-4: the all-reduce sums in another
//    order, and Adam rescales tiny gradients), ranks never drift apart;
//  - a 2-rank checkpoint resumed by 1 process continues the same run;
//  - killing one rank ends the job in bounded time with a non-zero status and
//    leaves the last checkpoint intact.
// Skips when built without MPI or when mpirun is missing.
#include "testutil.h"
#include "data/idx.h"
#include "train/checkpoint.h"
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

static char bin[512], tmpdir[256];

#define COMMON "--model vit_nano --patch 4 --dec-dim 64 --dec-depth 1 --dec-heads 2 --log-every 1 --threads 1 " \
               "--lr 1e-3 --warmup-epochs 0 --quiet"

static int sh(const char* fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char* fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

// Loss at each logged step from metrics.jsonl (steps 1..n).
static int losses(const char* run, float* out, int n) {
    char p[600], line[1024];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    FILE* f = fopen(p, "r");
    if (!f) return 0;
    int k = 0;
    while (k < n && fgets(line, sizeof line, f)) {
        char* q = strstr(line, "\"loss\": ");
        if (q) out[k++] = strtof(q + 8, NULL);
    }
    fclose(f);
    return k;
}

// maxrel between two model files over all tensors but the attention biases
// (whose key third has an exact gradient of 0: Adam turns its rounding noise
// into +-lr steps, see test_mae.c).
static double model_diff(const char* a, const char* b) {
    mim_st *x, *y;
    if (mim_st_open(&x, a) || mim_st_open(&y, b)) return INFINITY;
    double worst = 0;
    for (int i = 0; i < mim_st_count(x); i++) {
        const mim_st_tensor* t = mim_st_get(x, i);
        if (strstr(t->name, "qkv.bias")) continue;
        float* u = tu_alloc(t->numel);
        float* v = tu_alloc(t->numel);
        if (mim_st_read_f32(x, t->name, u, t->ndim, t->shape) || mim_st_read_f32(y, t->name, v, t->ndim, t->shape))
            return INFINITY;
        double r = tu_relerr(u, v, t->numel, NULL);
        if (r > worst) worst = r;
    }
    mim_st_close(x); mim_st_close(y);
    return worst;
}

int main(void) {
#ifndef MIM_MPI
    printf("SKIP: built without MPI\n");
    return TU_SKIP;
#else
    if (sh("command -v mpirun >/dev/null")) { printf("SKIP: mpirun not installed\n"); return TU_SKIP; }
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);   // CI runs as root
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    snprintf(bin, sizeof bin, "%s/mimscale", build);
    struct stat sb;
    if (stat(bin, &sb) || stat(MIM_FASHION_MNIST_DIR "/train-images-idx3-ubyte.gz", &sb)) {
        printf("SKIP: needs %s and Fashion-MNIST\n", bin);
        return TU_SKIP;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_dist_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    const char* mpirun = "mpirun --oversubscribe -np 2";
    int rc = sh("%s pretrain " COMMON " --steps 10 --save-every 5 --batch 32 --out %s/one", bin, tmpdir);
    TU_CHECK(rc == 0, "1 process x batch 32, 10 steps: exit %d", rc);
    rc = sh("%s %s pretrain " COMMON " --steps 10 --save-every 5 --batch 16 --dist-check-every 1 --out %s/two",
            mpirun, bin, tmpdir);
    TU_CHECK(rc == 0, "2 ranks x batch 16, weights checked identical across ranks every step: exit %d", rc);
    char a[600], b[600];
    snprintf(a, sizeof a, "%s/one", tmpdir);
    snprintf(b, sizeof b, "%s/two", tmpdir);
    float la[10], lb[10];
    if (TU_CHECK(losses(a, la, 10) == 10 && losses(b, lb, 10) == 10, "10 losses logged by each"))
        tu_close("2 ranks vs 1 process: loss curve", lb, la, 10, 1e-5);
    snprintf(a, sizeof a, "%s/one/ckpt-000000010/model.safetensors", tmpdir);
    snprintf(b, sizeof b, "%s/two/ckpt-000000010/model.safetensors", tmpdir);
    double d = model_diff(a, b);
    TU_CHECK(d <= 1e-4, "2 ranks vs 1 process: parameters after 10 steps, maxrel %.2e (tol 1e-4)", d);

    // a 2-rank checkpoint (step 5) resumed by one process with the same global batch
    rc = sh("%s %s pretrain " COMMON " --steps 10 --save-every 5 --stop-at 5 --batch 16 --out %s/mix",
            mpirun, bin, tmpdir);
    rc |= sh("%s pretrain " COMMON " --steps 10 --save-every 5 --batch 32 --resume --out %s/mix", bin, tmpdir);
    snprintf(b, sizeof b, "%s/mix/ckpt-000000010/model.safetensors", tmpdir);
    d = model_diff(a, b);
    TU_CHECK(rc == 0 && d <= 1e-4, "2-rank checkpoint resumed by 1 process: exit %d, maxrel %.2e vs the 1-process run", rc, d);

    // kill one rank mid-run
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "exec %s %s pretrain " COMMON " --steps 100000 --save-every 3 --batch 16 --out %s/kill "
             ">%s/kill.log 2>&1", mpirun, bin, tmpdir, tmpdir);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char*)NULL); _exit(127); }
    char latest[600];
    snprintf(latest, sizeof latest, "%s/kill/latest", tmpdir);
    for (int i = 0; i < 600 && stat(latest, &sb) != 0; i++) usleep(100000);
    usleep(500000);
    // the ranks are mpirun's children: kill exactly one of them
    int killed = sh("kill -KILL $(pgrep -P %d -f 'mimscale pretrain' | head -n 1)", (int)pid) == 0;
    TU_CHECK(killed, "one rank killed with SIGKILL");
    time_t t0 = time(NULL);
    int st = 0, done = 0;
    while (time(NULL) - t0 < 60) {
        if (waitpid(pid, &st, WNOHANG) == pid) { done = 1; break; }
        usleep(100000);
    }
    if (!done) { kill(pid, SIGKILL); waitpid(pid, &st, 0); }
    mim_config cfg;
    char ck[700];
    FILE* f = fopen(latest, "r");
    char name[64] = {0};
    if (f) { if (fscanf(f, "%63s", name) != 1) name[0] = 0; fclose(f); }
    snprintf(ck, sizeof ck, "%s/kill/%s/model.safetensors", tmpdir, name);
    TU_CHECK(done && !(WIFEXITED(st) && WEXITSTATUS(st) == 0), "a killed rank ends the job within %ld s, non-zero status",
             (long)(time(NULL) - t0));
    TU_CHECK(mim_ckpt_read_config(ck, &cfg) == 0, "the last checkpoint (%s) is intact", name);
    sh("rm -rf %s", tmpdir);
    tu_free_all();
    return tu_summary("test_dist", 0, NULL);
#endif
}
