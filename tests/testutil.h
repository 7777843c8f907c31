// testutil.h: small helpers shared by the C tests (tests/test_*.c), header-only.
// A pass/fail count with one printed line per check, tensor comparison by max
// relative error, random fill, per-test allocation, reading reference tensors
// from safetensors (src/core/safetensors.h) and running a PyTorch reference
// script. Not a framework: a test is a main() that calls checks and returns
// tu_summary().
//
// Exit codes (tests/run_tests.sh): 0 pass, 1 failure, TU_SKIP (77) skipped.
//
// Relative error, as used by tu_close: per tensor,
//     maxrel = max_i |got_i - want_i| / max(max_i |want_i|, 1e-6)
// i.e. the worst absolute error in units of the reference's largest magnitude.
// Unlike an elementwise |a-b|/|b| it does not blow up on elements that are
// near zero by cancellation, and unlike an absolute tolerance it does not
// depend on the tensor's scale. A NaN or Inf where the reference has a finite
// value counts as an infinite error.
#pragma once
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cjson/cJSON.h>
#include "core/check.h"
#include "core/rng.h"
#include "core/safetensors.h"

#define TU_SKIP 77

static int tu_npass, tu_nfail;
static char tu_skip_reason[512];   // set by tu_need_file: a part skipped for want of data

// Prints one check line, "ok   ..." or "FAIL ...", and counts it. Returns ok.
__attribute__((format(printf, 2, 3), unused))
static int tu_report(int ok, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    fflush(stdout);
    if (ok) tu_npass++; else tu_nfail++;
    return ok;
}

// A boolean check: TU_CHECK(cond, "what %d", x).
#define TU_CHECK(cond, ...) tu_report(!!(cond), __VA_ARGS__)

// maxrel (see the top of the file); *worst gets the index of the largest error.
__attribute__((unused))
static double tu_relerr(const float* got, const float* want, size_t n, size_t* worst) {
    double maxabs = 0.0, maxerr = 0.0;
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        double b = want[i], e = fabs((double)got[i] - b);
        if (isfinite(b) && fabs(b) > maxabs) maxabs = fabs(b);
        if (!(e <= maxerr)) {  // also catches NaN
            if (isnan(e) && got[i] == want[i]) continue;  // Inf == Inf
            maxerr = isnan(e) ? INFINITY : e;
            w = i;
        }
    }
    if (worst) *worst = w;
    return maxerr / (maxabs > 1e-6 ? maxabs : 1e-6);
}

// Compares got with want (the reference) over n floats: passes when maxrel <= tol.
// Returns maxrel.
__attribute__((unused))
static double tu_close(const char* label, const float* got, const float* want, size_t n, double tol) {
    size_t w = 0;
    double rel = tu_relerr(got, want, n, &w);
    if (n == 0) { tu_report(1, "%-44s (empty)", label); return 0.0; }
    tu_report(rel <= tol, "%-44s maxrel %.2e (tol %.0e)  worst [%zu] got % .7e want % .7e",
              label, rel, tol, w, (double)got[w], (double)want[w]);
    return rel;
}

// Prints the summary line and returns the exit code: 1 if any check failed,
// else `skipped ? TU_SKIP : 0`. With skipped, the last line printed starts
// with "SKIP:" and gives skip_reason (run_tests.sh shows the last line). A
// part skipped by tu_need_file also makes the test a skip. No check at all
// is a failure (a test that asserted nothing has not passed).
__attribute__((unused))
static int tu_summary(const char* test, int skipped, const char* skip_reason) {
    if (!skipped && tu_skip_reason[0]) { skipped = 1; skip_reason = tu_skip_reason; }
    printf("%s: %d checks passed, %d failed\n", test, tu_npass, tu_nfail);
    if (tu_npass + tu_nfail == 0 && !skipped) { printf("FAIL: no check ran\n"); return 1; }
    if (tu_nfail) return 1;
    if (skipped) { printf("SKIP: %s\n", skip_reason); return TU_SKIP; }
    return 0;
}

// ---------------------------------------------------------------- memory
// Zeroed allocations owned by the test, released together by tu_free_all()
// (keeps LeakSanitizer quiet without a free per buffer).
#define TU_MAX_ALLOCS 4096
static void* tu_allocs[TU_MAX_ALLOCS];
static int tu_nallocs;

__attribute__((unused))
static void* tu_alloc_bytes(size_t nbytes) {
    CHECK(tu_nallocs < TU_MAX_ALLOCS);
    void* p = calloc(nbytes ? nbytes : 1, 1);
    CHECK(p != NULL);
    tu_allocs[tu_nallocs++] = p;
    return p;
}
__attribute__((unused))
static float* tu_alloc(size_t n) { return (float*)tu_alloc_bytes(n * sizeof(float)); }
__attribute__((unused))
static void tu_free_all(void) {
    for (int i = 0; i < tu_nallocs; i++) free(tu_allocs[i]);
    tu_nallocs = 0;
}

// ---------------------------------------------------------------- random
__attribute__((unused))
static void tu_fill_normal(mim_rng* r, float* x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * mim_rng_normal(r);
}
__attribute__((unused))
static void tu_fill_uniform(mim_rng* r, float* x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * mim_rng_uniform(r);
}

// ---------------------------------------------------------------- safetensors
// Reads tensor NAME (F32/F16/BF16/F64, shape checked) into dst as fp32.
// On failure reports a failed check naming the tensor and returns non-zero.
__attribute__((unused))
static int tu_st_f32(const mim_st* st, const char* name, float* dst, int ndim, const int64_t* shape) {
    int rc = mim_st_read_f32(st, name, dst, ndim, shape);
    if (rc) tu_report(0, "read %s from the reference file: %s (%d)", name, mim_err_msg(), rc);
    return rc;
}

// Reads an I32 tensor NAME of the given shape into dst (the file's data may be
// unaligned, hence memcpy). Reports a failed check and returns non-zero on error.
__attribute__((unused))
static int tu_st_i32(const mim_st* st, const char* name, int32_t* dst, int ndim, const int64_t* shape) {
    const mim_st_tensor* t = mim_st_find(st, name);
    if (!t) { tu_report(0, "read %s from the reference file: absent", name); return MIM_ENOTFOUND; }
    int ok = t->dtype == MIM_I32 && t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        tu_report(0, "read %s from the reference file: dtype %s ndim %d, want I32 ndim %d (shape mismatch)",
                  name, mim_dtype_name(t->dtype), t->ndim, ndim);
        return MIM_ESHAPE;
    }
    memcpy(dst, t->data, t->nbytes);
    return 0;
}

static int tu_repo_root(char* buf, size_t n, const char* probe);

// Removes the test's scratch folder when every check passed; keeps it (and
// says where) when one failed, for a look at what the commands left.
__attribute__((unused))
static void tu_cleanup_dir(const char* dir) {
    if (tu_nfail) { printf("files kept in %s\n", dir); return; }
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) {}
}

// ---------------------------------------------------------------- data the tests read
// Data that ships outside the repository: ../shared/data (beside the
// checkout; $MIM_SHARED_DATA overrides) and Debian's data packages. A test
// calls tu_need_file for each such file before it uses it: 1 when it is
// readable; else 0, and the test's result becomes a skip (exit 77, with the
// path in the reason) unless a check failed. Never a silent pass.
__attribute__((unused))
static int tu_need_file(const char* path) {
    if (access(path, R_OK) == 0) return 1;
    if (!tu_skip_reason[0]) snprintf(tu_skip_reason, sizeof tu_skip_reason, "needs %.400s (absent)", path);
    printf("note: %s is absent; skipping what needs it\n", path);
    return 0;
}

// The path of REL under the shared data folder ($MIM_SHARED_DATA, else
// ../shared/data beside the repository root) into buf, then tu_need_file on it.
__attribute__((unused))
static int tu_shared_data(char* buf, size_t n, const char* rel) {
    const char* env = getenv("MIM_SHARED_DATA");
    if (env && *env) {
        snprintf(buf, n, "%s/%s", env, rel);
    } else {
        char root[2048];
        if (tu_repo_root(root, sizeof root, "tests/testutil.h") != 0) snprintf(root, sizeof root, ".");
        snprintf(buf, n, "%s/../shared/data/%s", root, rel);
    }
    return tu_need_file(buf);
}

// 1 when MIM_REQUIRE_TORCH is set (and not "0"): a missing PyTorch reference
// is then a failure, not a skip (CI sets it).
__attribute__((unused))
static int tu_torch_required(void) {
    const char* req = getenv("MIM_REQUIRE_TORCH");
    return req && *req && strcmp(req, "0") != 0;
}

// ---------------------------------------------------------------- reference scripts
// The repository root: $MIM_REPO if set, else the first of ".", "..", "../..",
// "../../.." (relative to the cwd; run_tests.sh runs from the root), then
// two levels above the test binary's folder, that holds the file `probe`
// (a path relative to the root). Writes it to buf; 0 or -1.
__attribute__((unused))
static int tu_repo_root(char* buf, size_t n, const char* probe) {
    const char* env = getenv("MIM_REPO");
    if (env && *env) { snprintf(buf, n, "%s", env); return 0; }
    static const char* ups[] = {".", "..", "../..", "../../.."};
    char path[4096], exe[2048];
    for (size_t i = 0; i < sizeof ups / sizeof ups[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", ups[i], probe);
        if (access(path, R_OK) == 0) { snprintf(buf, n, "%s", ups[i]); return 0; }
    }
    // then relative to the binary: BUILD/tests/test_x -> BUILD/tests/../..
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = 0;
        char* slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(path, sizeof path, "%s/../../%s", exe, probe);
        if (access(path, R_OK) == 0 && snprintf(buf, n, "%s/../..", exe) < (int)n) return 0;
    }
    return -1;
}

// Runs `$MIM_PYTHON (default /usr/bin/python3) ROOT/script OUT` where OUT is a
// fresh temporary file (name written to out_path; the caller unlinks it).
// Returns 0 on success, 1 when python3 with torch is not available (the
// caller skips what needs it), -1 when the script itself failed (a test
// failure: the reference is broken). Contract with the script: it exits 77
// when `import torch` fails; the shell's 126/127 mean no python3.
__attribute__((unused))
static int tu_run_torch_ref(const char* script, char* out_path, size_t n) {
    const char* py = getenv("MIM_PYTHON");
    if (!py || !*py) py = "/usr/bin/python3";
    char root[2048], cmd[8192];
    if (tu_repo_root(root, sizeof root, script) != 0) {
        fprintf(stderr, "cannot find %s from the cwd; set MIM_REPO to the repository root\n", script);
        return -1;
    }
    const char* tmp = getenv("TMPDIR");
    snprintf(out_path, n, "%s/mim_ref_XXXXXX.safetensors", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemps(out_path, (int)strlen(".safetensors"));
    if (fd < 0) { perror(out_path); return -1; }
    close(fd);
    snprintf(cmd, sizeof cmd, "'%s' '%s/%s' '%s'", py, root, script, out_path);
    int st = system(cmd);
    int code = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (code == 0) return 0;
    unlink(out_path);
    if ((code == TU_SKIP || code == 126 || code == 127) && tu_torch_required()) {
        tu_report(0, "%s: python3 with torch not available (%s) and MIM_REQUIRE_TORCH is set", script, py);
        return -1;
    }
    if (code == TU_SKIP || code == 126 || code == 127) return 1;
    fprintf(stderr, "reference script failed (status %d): %s\n", code, cmd);
    return -1;
}

// ---------------------------------------------------------------- files
// Reads a whole file into a test-owned, zero-terminated buffer (released by
// tu_free_all). Returns its size, 0 when it cannot be read.
__attribute__((unused))
static size_t tu_slurp(const char* path, uint8_t** out) {
    *out = NULL;
    FILE* f = fopen(path, "rb");
    if (!f) return 0;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (n < 0) { fclose(f); return 0; }
    *out = tu_alloc_bytes((size_t)n + 1);
    size_t got = fread(*out, 1, (size_t)n, f);
    fclose(f);
    return got;
}

// ---------------------------------------------------------------- data sets
// Writes DIR/SPLIT-images-idx3-ubyte.gz and DIR/SPLIT-labels-idx1-ubyte.gz
// (the Fashion-MNIST layout the IDX source reads) from pixels (n, H, W) and
// labels (n). H and W must be < 256.
__attribute__((unused))
static void tu_write_idx(const char* dir, const char* split, int n, int H, int W,
                         const uint8_t* pixels, const uint8_t* labels) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", dir, split);
    gzFile f = gzopen(p, "wb");
    CHECK(f != NULL);
    uint8_t hdr[16] = {0, 0, 8, 3, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n,
                       0, 0, 0, (uint8_t)H, 0, 0, 0, (uint8_t)W};
    gzwrite(f, hdr, 16);
    gzwrite(f, pixels, (unsigned)((size_t)n * H * W));
    gzclose(f);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    f = gzopen(p, "wb");
    CHECK(f != NULL);
    uint8_t lh[8] = {0, 0, 8, 1, (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    gzwrite(f, lh, 8);
    gzwrite(f, labels, (unsigned)n);
    gzclose(f);
}

// Writes the train split of n HxW images: bright squares at random places on
// a dark background (a learnable structure), labels = square size class
// (the pre-training tests' data set).
__attribute__((unused))
static void tu_write_squares_idx(const char* dir, int n, int H, int W) {
    mim_rng r;
    mim_rng_seed(&r, 5);
    uint8_t* px = tu_alloc_bytes((size_t)n * H * W);
    uint8_t* lab = tu_alloc_bytes((size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t* img = px + (size_t)i * H * W;
        int s = 3 + (int)mim_rng_below(&r, 6), y = (int)mim_rng_below(&r, H - s), x = (int)mim_rng_below(&r, W - s);
        for (int k = 0; k < H * W; k++) img[k] = (uint8_t)mim_rng_below(&r, 30);
        for (int a = y; a < y + s; a++)
            for (int b = x; b < x + s; b++) img[a * W + b] = 200 + (uint8_t)mim_rng_below(&r, 50);
        lab[i] = (uint8_t)(s - 3);
    }
    tu_write_idx(dir, "train", n, H, W, px, lab);
}

// The value of key in the metrics.jsonl row of step (the last such row) in
// run folder run; NAN when absent.
__attribute__((unused))
static double tu_metric_at(const char* run, int64_t step, const char* key) {
    char p[4200], line[4096];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    FILE* f = fopen(p, "r");
    double v = NAN;
    if (!f) return v;
    while (fgets(line, sizeof line, f)) {
        cJSON* j = cJSON_Parse(line);
        cJSON* s = j ? cJSON_GetObjectItem(j, "step") : NULL;
        cJSON* k = j ? cJSON_GetObjectItem(j, key) : NULL;
        if (s && k && (int64_t)s->valuedouble == step) v = k->valuedouble;
        cJSON_Delete(j);
    }
    fclose(f);
    return v;
}
