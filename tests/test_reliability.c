// test_reliability.c: long runs survive what clusters do to them, driving
// the real `mimscale` binary as a child process:
//  - SIGTERM: the run finishes its step, writes a checkpoint, exits 4;
//    --resume then ends with the same bits as an uninterrupted run;
//  - SIGUSR1: a checkpoint without stopping;
//  - SIGKILL at 20 random moments (checkpoints every step, so many kills
//    land inside checkpoint writes), resuming after each: same final bits;
//  - a non-finite loss: stop (exit 3, message names the step) with the last
//    checkpoint intact, or --on-nan skip;
//  - a full disk (file-size limit): the checkpoint write fails with a clear
//    error, the previous checkpoint stays loadable, no temp files remain;
//  - the same for finetune (SIGTERM, exit 4, --resume: same bits and
//    accuracies) and for `study run` (SIGTERM reaches the running finetune,
//    exit 4, nothing recorded; the re-run resumes it, one row per run);
//  - injected write faults (MIM_FAULT_WRITE: ENOSPC, EIO, at the first write
//    of a checkpoint or at its `latest` pointer, once or for good) in
//    pretrain, finetune and the study's results.jsonl, with and without
//    --io-retries; and a real full disk (a 1.5-checkpoint tmpfs) when the
//    test may mount one.
#include "testutil.h"
#include "train/checkpoint.h"
#include <cjson/cJSON.h>
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
    tu_write_idx(dir, "t10k", n / 4, H, W, px, lab);   // the evaluation split of finetune and the study
}

// Runs `ENV exec mimscale ARGS >>LOG 2>&1` in a shell (ENV: "" or "K=V ...";
// limit_kb > 0 sets a file-size limit first); returns the child's pid.
static pid_t spawn(const char* env, const char* args, const char* log, long limit_kb) {
    static char cmd[8192];
    char lim[64] = "";
    if (limit_kb > 0) snprintf(lim, sizeof lim, "ulimit -f %ld; ", limit_kb * 2);   // 512-byte blocks
    snprintf(cmd, sizeof cmd, "%s%s exec %s %s >>%s 2>&1", lim, env, bin, args, log);
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char*)NULL);
        _exit(127);
    }
    return pid;
}

// Starts `mimscale pretrain` with the common tiny config plus extra flags;
// returns the child's pid. limit_kb > 0 sets a file-size limit first.
static pid_t start_env(const char* out, const char* extra, long limit_kb, const char* env) {
    static char args[4096], log[600];
    snprintf(args, sizeof args,
             "pretrain --data %s --out %s --model vit_nano --patch 4 --dec-dim 16 --dec-depth 1 "
             "--dec-heads 2 --batch 16 --steps 40 --lr 1e-3 --warmup-epochs 0.1 --threads 1 --quiet --keep 3 %s",
             data, out, extra);
    snprintf(log, sizeof log, "%s.log", out);
    return spawn(env, args, log, limit_kb);
}

static pid_t start(const char* out, const char* extra, long limit_kb) { return start_env(out, extra, limit_kb, ""); }

static int wait_exit(pid_t pid) {
    int st;
    waitpid(pid, &st, 0);
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return -1;
}

static int run(const char* out, const char* extra) { return wait_exit(start(out, extra, 0)); }
static int run_env(const char* out, const char* extra, const char* env) { return wait_exit(start_env(out, extra, 0, env)); }

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
        char pa[1024], pb[1024];
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

// Tensors in a safetensors file (0 when it cannot be opened).
static int tensor_count(const char* path) {
    mim_st* st;
    if (mim_st_open(&st, path)) return 0;
    int n = mim_st_count(st);
    mim_st_close(st);
    return n;
}

// Writes one checkpoint makes through the fault hook: each safetensors file
// is its header plus one write per tensor, then `latest`.
static int writes_per_ckpt(const char* ckdir) {
    char p[700], q[700];
    snprintf(p, sizeof p, "%s/optim.safetensors", ckdir);
    snprintf(q, sizeof q, "%s/model.safetensors", ckdir);
    return tensor_count(p) + 1 + tensor_count(q) + 1 + 1;
}

static int file_has(const char* path, const char* what) {
    uint8_t* t = NULL;
    size_t n = tu_slurp(path, &t);
    return n && memmem(t, n, what, strlen(what)) != NULL;
}

static int latest_is(const char* run, const char* name) {
    char p[700];
    snprintf(p, sizeof p, "%s/latest", run);
    uint8_t* t = NULL;
    return tu_slurp(p, &t) && !strncmp((char*)t, name, strlen(name));
}

static int exists(const char* p) { struct stat sb; return stat(p, &sb) == 0; }

// Injected write faults in pretrain: ENOSPC at the first write of the next
// checkpoint, EIO at its `latest` pointer, a disk that stays full with
// --io-retries, and one transient failure that a retry absorbs.
static void test_pretrain_faults(const char* ref) {
    char out[512], p[1024], env[128], ck[700];
    snprintf(out, sizeof out, "%s/fault", tmpdir);
    int rc = run(out, "--save-every 10 --stop-at 10");
    snprintf(ck, sizeof ck, "%s/ckpt-000000010", out);
    int W = writes_per_ckpt(ck);
    TU_CHECK(rc == 0 && W > 5, "pretrain to step 10 (a checkpoint is %d writes)", W);
    snprintf(p, sizeof p, "%s/model.safetensors", ck);
    uint8_t* before = NULL;
    size_t nb = tu_slurp(p, &before);
    snprintf(p, sizeof p, "%s.log", out);

    truncate(p, 0);
    rc = run_env(out, "--save-every 10 --resume", "MIM_FAULT_WRITE=1");
    int says = file_has(p, "ckpt-000000020/optim.safetensors") && file_has(p, "No space left on device") &&
               file_has(p, "previous checkpoint is intact");
    TU_CHECK(rc == 1 && says, "ENOSPC at the first write of checkpoint 20: exit %d (want 1), the error names the file and the errno", rc);
    snprintf(ck, sizeof ck, "%s/ckpt-000000020", out);
    TU_CHECK(latest_is(out, "ckpt-000000010") && !exists(ck) && !has_tmp_files(out),
             "ckpt-10 still 'latest', no half-written ckpt-20 folder, no temp files");

    truncate(p, 0);
    snprintf(env, sizeof env, "MIM_FAULT_WRITE=%d:EIO", W);
    rc = run_env(out, "--save-every 10 --resume", env);
    says = file_has(p, "latest") && file_has(p, "Input/output error");
    TU_CHECK(rc == 1 && says && latest_is(out, "ckpt-000000010") && !exists(ck),
             "EIO on the 'latest' pointer after both files of ckpt-20 were written: exit %d, ckpt-10 stays latest, ckpt-20 removed", rc);

    truncate(p, 0);
    rc = run_env(out, "--save-every 10 --resume --io-retries 2", "MIM_RETRY_WAIT_MS=10 MIM_FAULT_WRITE=1+");
    TU_CHECK(rc == 1 && file_has(p, "retry 2 of 2") && latest_is(out, "ckpt-000000010"),
             "a disk that stays full: 2 retries, then exit %d with ckpt-10 intact", rc);
    snprintf(p, sizeof p, "%s/ckpt-000000010/model.safetensors", out);
    uint8_t* after = NULL;
    size_t na = tu_slurp(p, &after);
    mim_config cfg;
    TU_CHECK(nb > 0 && nb == na && !memcmp(before, after, nb) && mim_ckpt_read_config(p, &cfg) == 0,
             "after 4 failed checkpoint writes the step-10 checkpoint is byte-identical and loads");

    snprintf(p, sizeof p, "%s.log", out);
    truncate(p, 0);
    rc = run_env(out, "--save-every 10 --resume --io-retries 1", "MIM_RETRY_WAIT_MS=10 MIM_FAULT_WRITE=3");
    TU_CHECK(rc == 0 && file_has(p, "retry 1 of 1") && same_final(ref, out, 40),
             "one transient failure with --io-retries 1: retried, run completes (exit %d) bit-identical to the uninterrupted run", rc);
}

// A real full disk: a tmpfs that holds one and a half checkpoints, so the
// second (written before the first is pruned, --keep 1) cannot fit.
static void test_tmpfs(void) {
    char mnt[512], out[600], p[700], cmd[1200];
    snprintf(mnt, sizeof mnt, "%s/small", tmpdir);
    mkdir(mnt, 0755);
    snprintf(p, sizeof p, "%s/ref/ckpt-000000040", tmpdir);
    struct stat a, b;
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/model.safetensors", p);
    snprintf(pb, sizeof pb, "%s/optim.safetensors", p);
    if (stat(pa, &a) || stat(pb, &b)) { TU_CHECK(0, "tmpfs: reference checkpoint sizes"); return; }
    long size = (long)((a.st_size + b.st_size) * 3 / 2 + 65536) / 4096 * 4096;
    snprintf(cmd, sizeof cmd, "mount -t tmpfs -o size=%ld tmpfs %s 2>/dev/null", size, mnt);
    if (system(cmd) != 0) { printf("skip: cannot mount a tmpfs here (not root?); the injected faults cover it\n"); return; }
    snprintf(out, sizeof out, "%s/run", mnt);
    int rc = run(out, "--save-every 10 --keep 1");
    snprintf(p, sizeof p, "%s.log", out);
    int says = file_has(p, "No space left on device") && file_has(p, "ckpt-000000020");
    snprintf(p, sizeof p, "%s/ckpt-000000010/model.safetensors", out);
    mim_config cfg;
    TU_CHECK(rc == 1 && says && latest_is(out, "ckpt-000000010") && mim_ckpt_read_config(p, &cfg) == 0 && !has_tmp_files(out),
             "a %ld KB tmpfs fills at checkpoint 20: exit %d, ENOSPC named, ckpt-10 intact and latest, no temp files",
             size / 1024, rc);
    snprintf(cmd, sizeof cmd, "umount %s || umount -l %s", mnt, mnt);
    if (system(cmd)) {}
}

#define FT_ARGS "finetune --init random --model vit_nano --patch 4 --data %s --batch 16 --steps 40 --threads 1 " \
                "--save-every 4 --keep 2 --quiet --out %s"

// The final JSON line of a finetune log, from its last '{'.
static const char* final_line(const char* log, char* buf, size_t cap) {
    uint8_t* t = NULL;
    size_t n = tu_slurp(log, &t);
    buf[0] = 0;
    if (!n) return buf;
    char* b = strrchr((char*)t, '{');
    if (b) snprintf(buf, cap, "%.*s", (int)strcspn(b, "\n"), b);
    char* sec = strstr(buf, ", \"seconds\"");   // wall time differs
    if (sec) *sec = 0;
    return buf;
}

// finetune: SIGTERM (exit 4, checkpoint), --resume to the end with the same
// bits and accuracies; injected write faults like pretrain's.
static void test_finetune(void) {
    char ref[512], out[512], args[2048], log[600], p[700], ck[700], env[64], l1[512], l2[512];
    snprintf(ref, sizeof ref, "%s/ft_ref", tmpdir);
    snprintf(args, sizeof args, FT_ARGS, data, ref);
    snprintf(log, sizeof log, "%s.log", ref);
    int rc = wait_exit(spawn("", args, log, 0));
    TU_CHECK(rc == 0 && latest_is(ref, "ckpt-000000040"), "finetune: uninterrupted 40-step run (exit %d)", rc);
    final_line(log, l1, sizeof l1);

    snprintf(out, sizeof out, "%s/ft_term", tmpdir);
    snprintf(args, sizeof args, FT_ARGS, data, out);
    snprintf(log, sizeof log, "%s.log", out);
    pid_t pid = spawn("", args, log, 0);
    snprintf(p, sizeof p, "%s/latest", out);
    for (int i = 0; i < 4000 && !exists(p); i++) sleep_ms(5);
    kill(pid, SIGTERM);
    rc = wait_exit(pid);
    uint8_t* lt = NULL;
    size_t nl = tu_slurp(p, &lt);
    long long at = nl > 5 ? atoll((char*)lt + 5) : -1;
    snprintf(ck, sizeof ck, "%s/ckpt-%09lld/model.safetensors", out, at);
    mim_st* st = NULL;
    int loads = mim_st_open(&st, ck) == 0 && mim_st_find(st, "head.weight") && mim_st_meta(st, "img_h");
    if (st) mim_st_close(st);
    TU_CHECK(rc == 4 && at > 0 && at < 40 && loads && file_has(log, "stopped by signal 15"),
             "finetune SIGTERM: exit %d (want 4), checkpoint at step %lld with encoder and head", rc, at);
    snprintf(args, sizeof args, FT_ARGS " --resume", data, out);
    rc = wait_exit(spawn("", args, log, 0));
    final_line(log, l2, sizeof l2);
    TU_CHECK(rc == 0 && same_final(ref, out, 40) && l1[0] && !strcmp(l1, l2),
             "finetune --resume after SIGTERM: exit %d, final weights, optimizer and accuracies identical (%s)", rc, l2);

    // faults: the checkpoint of step 8 (after those of step 4)
    snprintf(ck, sizeof ck, "%s/ckpt-000000040", ref);
    int W = writes_per_ckpt(ck);
    snprintf(out, sizeof out, "%s/ft_fault", tmpdir);
    snprintf(args, sizeof args, FT_ARGS, data, out);
    snprintf(log, sizeof log, "%s.log", out);
    snprintf(env, sizeof env, "MIM_FAULT_WRITE=%d", W + 1);
    rc = wait_exit(spawn(env, args, log, 0));
    snprintf(ck, sizeof ck, "%s/ckpt-000000008", out);
    TU_CHECK(rc == 1 && file_has(log, "No space left on device") && file_has(log, "ckpt-000000008/optim.safetensors") &&
             latest_is(out, "ckpt-000000004") && !exists(ck) && !has_tmp_files(out),
             "finetune: ENOSPC at checkpoint 8 -> exit %d, the error names the file, ckpt-4 stays latest", rc);
    snprintf(args, sizeof args, FT_ARGS " --resume --io-retries 1", data, out);
    rc = wait_exit(spawn("MIM_RETRY_WAIT_MS=10 MIM_FAULT_WRITE=2:EIO", args, log, 0));
    final_line(log, l2, sizeof l2);
    TU_CHECK(rc == 0 && file_has(log, "Input/output error") && file_has(log, "retry 1 of 1") && same_final(ref, out, 40) &&
             !strcmp(l1, l2), "finetune: resume through a retried EIO completes (exit %d), identical to the uninterrupted run", rc);
}

// Rows of a results.jsonl that parse, and whether their ids are distinct.
static int result_rows(const char* path, int* distinct) {
    uint8_t* t = NULL;
    size_t n = tu_slurp(path, &t);
    int rows = 0;
    *distinct = 1;
    char ids[16][200];
    for (char* line = n ? strtok((char*)t, "\n") : NULL; line; line = strtok(NULL, "\n")) {
        cJSON* j = cJSON_Parse(line);
        const cJSON* id = cJSON_GetObjectItemCaseSensitive(j, "id");
        if (cJSON_IsString(id) && rows < 16) {
            for (int k = 0; k < rows; k++) *distinct &= strcmp(ids[k], id->valuestring) != 0;
            snprintf(ids[rows++], sizeof ids[0], "%s", id->valuestring);
        }
        cJSON_Delete(j);
    }
    return rows;
}

static const char* study_fmt =
    "{\"name\": \"%s\", \"data\": {\"idx\": \"%s\", \"img\": 16, \"eval_size\": 64},\n"
    " \"subsets\": {\"sizes\": %s},\n"
    " \"models\": [{\"preset\": \"vit_nano\", \"patch\": 4, \"dec_dim\": 16, \"dec_depth\": 1, \"dec_heads\": 2}],\n"
    " \"budget\": {\"epochs\": %d}, \"pretrain\": {\"batch\": 16, \"save_every\": 4, \"threads\": 1},\n"
    " \"evaluations\": %s, \"baselines\": false}\n";

static void write_study(const char* path, const char* name, const char* sizes, int epochs, const char* evals) {
    FILE* f = fopen(path, "w");
    CHECK(f);
    fprintf(f, study_fmt, name, data, sizes, epochs, evals);
    fclose(f);
}

// study run: SIGTERM while a finetune runs: it checkpoints, the study exits 4
// with no row; the re-run resumes the finetune and records one row. Then a
// results.jsonl append that fails (ENOSPC): the study stops naming the file,
// the earlier row intact; the re-run (one retried failure) completes.
static void test_study(void) {
    char sj[512], out[512], args[2048], log[600], p[700];
    snprintf(sj, sizeof sj, "%s/sig.json", tmpdir);
    write_study(sj, "sig", "[128]", 2, "{\"knn\": {\"k\": 5}, \"finetune\": {\"steps\": 24, \"batch\": 16, \"save-every\": 2}}");
    snprintf(out, sizeof out, "%s/study_sig", tmpdir);
    snprintf(args, sizeof args, "study run %s --out %s --quiet", sj, out);
    snprintf(log, sizeof log, "%s.log", out);
    pid_t pid = spawn("", args, log, 0);
    // the run folder's finetune checkpoint appears: the finetune is running
    char pat[700], found[1024] = "";
    snprintf(pat, sizeof pat, "ls -d %s/runs/*/finetune/ckpt-* 2>/dev/null | head -1", out);
    for (int i = 0; i < 3000 && !found[0]; i++) {
        FILE* f = popen(pat, "r");
        if (f) { if (!fgets(found, sizeof found, f)) found[0] = 0; pclose(f); }
        if (!found[0]) sleep_ms(10);
    }
    found[strcspn(found, "\n")] = 0;
    kill(pid, SIGTERM);
    int rc = wait_exit(pid);
    snprintf(p, sizeof p, "%s/results.jsonl", out);
    int distinct, rows = result_rows(p, &distinct);
    char ftdir[1024], ck[1100];
    snprintf(ftdir, sizeof ftdir, "%.*s", (int)(strrchr(found, '/') ? strrchr(found, '/') - found : 0), found);
    uint8_t* lt = NULL;
    snprintf(ck, sizeof ck, "%s/latest", ftdir);
    size_t nl = tu_slurp(ck, &lt);
    if (nl) lt[strcspn((char*)lt, "\n")] = 0;
    snprintf(ck, sizeof ck, "%s/%s/model.safetensors", ftdir, nl ? (char*)lt : "?");
    int loads = tensor_count(ck) > 0;
    char json[1100];
    snprintf(json, sizeof json, "%.*s/finetune.json", (int)(strrchr(ftdir, '/') ? strrchr(ftdir, '/') - ftdir : 0), ftdir);
    TU_CHECK(found[0] && rc == 4 && rows == 0 && loads && !exists(json) && file_has(log, "stopped by signal 15"),
             "study SIGTERM during finetune: exit %d (want 4), %d rows, the finetune's checkpoint loads, no finetune.json", rc, rows);
    rc = wait_exit(spawn("", args, log, 0));
    rows = result_rows(p, &distinct);
    snprintf(ck, sizeof ck, "%s/metrics.jsonl", ftdir);
    uint8_t* mt = NULL;
    size_t nm = tu_slurp(ck, &mt);
    int increasing = nm > 0;
    long last = 0;
    for (char* q = nm ? strstr((char*)mt, "\"step\": ") : NULL; q; q = strstr(q + 1, "\"step\": ")) {
        long st = atol(q + 8);
        increasing &= st > last;
        last = st;
    }
    TU_CHECK(rc == 0 && rows == 1 && distinct && exists(json) && increasing && last == 24,
             "study re-run: exit %d, %d row, the finetune resumed (metrics steps increasing to %ld, none repeated)", rc, rows, last);

    // results append faults: write 1 = row 1, 2 = results.csv, 3 = row 2
    snprintf(sj, sizeof sj, "%s/io.json", tmpdir);
    write_study(sj, "io", "[32, 64]", 1, "[\"knn\"]");
    snprintf(out, sizeof out, "%s/study_io", tmpdir);
    snprintf(args, sizeof args, "study run %s --out %s --quiet", sj, out);
    snprintf(log, sizeof log, "%s.log", out);
    rc = wait_exit(spawn("MIM_FAULT_WRITE=3", args, log, 0));
    snprintf(p, sizeof p, "%s/results.jsonl", out);
    rows = result_rows(p, &distinct);
    TU_CHECK(rc == 1 && rows == 1 && count_lines(p) == 1 && file_has(log, "results.jsonl") &&
             file_has(log, "No space left on device") && file_has(log, "rows before it are intact"),
             "study: the second row's append fails (ENOSPC): exit %d, the error names results.jsonl, the first row intact (%d rows)", rc, rows);
    snprintf(args, sizeof args, "study run %s --out %s --quiet --io-retries 1", sj, out);
    rc = wait_exit(spawn("MIM_RETRY_WAIT_MS=10 MIM_FAULT_WRITE=1", args, log, 0));
    rows = result_rows(p, &distinct);
    TU_CHECK(rc == 0 && rows == 2 && distinct && count_lines(p) == 2 && file_has(log, "retry 1 of 1"),
             "study re-run with --io-retries 1 through one more failed append: exit %d, %d distinct rows", rc, rows);
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

    test_pretrain_faults(ref);
    {   // metrics.jsonl on a device that is always full: one warning, the run
        // goes on and its checkpoints are written
        snprintf(out, sizeof out, "%s/fullmetrics", tmpdir);
        mkdir(out, 0755);
        snprintf(p, sizeof p, "%s/metrics.jsonl", out);
        if (symlink("/dev/full", p) == 0) {
            rc = run(out, "--save-every 20");
            snprintf(p, sizeof p, "%s.log", out);
            n = tu_slurp(p, &txt);
            const char* w = "warning: cannot write";
            int warns = 0;
            for (const uint8_t* q = txt; n && (q = memmem(q, n - (size_t)(q - txt), w, strlen(w))); q++) warns++;
            int nospace = n && memmem(txt, n, "No space left", 13) != NULL;
            snprintf(p, sizeof p, "%s/ckpt-000000040/model.safetensors", out);
            TU_CHECK(rc == 0 && warns == 1 && nospace && exists(p),
                     "metrics.jsonl on a full device: exit %d, %d warning(s) (want 1), the step-40 checkpoint written", rc, warns);
        } else {
            printf("skip: cannot symlink to /dev/full\n");
        }
    }
    test_tmpfs();
    test_finetune();
    test_study();

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_reliability", 0, NULL);
}
