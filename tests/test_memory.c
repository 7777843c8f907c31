// test_memory.c: the memory estimate behind --max-ram. mim_mae_bytes must be
// within 5% of what mim_mae_init really allocates (measured with mallinfo2,
// or the sanitizer's allocator counters under ASan) across configs and
// batches; sizes parse as documented; and the CLI prints the estimate and
// refuses a run over --max-ram, naming a batch that fits, before it
// allocates (a batch that would need tens of GB must fail in well under a
// second).
#include "testutil.h"
#include "core/mem.h"
#include "model/mae.h"
#include <malloc.h>
#include <sys/stat.h>
#include <time.h>

#ifdef __SANITIZE_ADDRESS__
size_t __sanitizer_get_current_allocated_bytes(void);
static size_t allocated(void) { return __sanitizer_get_current_allocated_bytes(); }
#else
static size_t allocated(void) {
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}
#endif

static void check_estimate(const char* label, const mim_config* c, int batch) {
    mim_mae_mem parts;
    size_t est = mim_mae_bytes(c, batch, &parts);
    mim_mae* m = calloc(1, sizeof *m);
    CHECK(m);
    size_t before = allocated();
    int rc = mim_mae_init(m, c, batch);
    size_t real = allocated() - before;
    double rel = real ? fabs((double)est - (double)real) / (double)real : 1;
    TU_CHECK(rc == 0 && est > 0 && rel <= 0.05, "%-34s estimate %10zu B, allocated %10zu B (%.2f%% off)", label, est, real, 100 * rel);
    if (rc == 0) mim_mae_free(m);
    free(m);
}

static int run_sh(const char* cmd, char* out, size_t cap) {
    FILE* f = popen(cmd, "r");
    if (!f) return -1;
    size_t n = fread(out, 1, cap - 1, f);
    out[n] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
    mim_config c;
    CHECK(mim_config_preset(&c, "vit_nano") == 0);
    c.img_h = c.img_w = 32; c.in_chans = 3; c.patch = 4; c.dec_dim = 64; c.dec_depth = 2; c.dec_heads = 4;
    check_estimate("vit_nano 32x32 p4 dec64x2, batch 8", &c, 8);
    check_estimate("vit_nano 32x32 p4 dec64x2, batch 64", &c, 64);
    mim_config e = c;
    e.dec_dim = 0; e.dec_depth = 0; e.dec_heads = 1; e.mask_ratio = 0;
    check_estimate("vit_nano encoder only, batch 32", &e, 32);
    CHECK(mim_config_preset(&c, "vit_tiny") == 0);
    c.img_h = 16; c.img_w = 12; c.in_chans = 1; c.patch = 4; c.dec_dim = 32; c.dec_depth = 1; c.dec_heads = 2;
    check_estimate("vit_tiny 16x12 gray, batch 16", &c, 16);
    mim_config bad = c;
    bad.patch = 5;
    TU_CHECK(mim_mae_bytes(&bad, 8, NULL) == 0 && strstr(mim_err_msg(), "divisible"), "invalid config: 0 with the reason");

    uint64_t v[4] = {0};
    int prc[4] = {mim_parse_size("4G", &v[0]), mim_parse_size("512M", &v[1]), mim_parse_size("1.5GiB", &v[2]),
                  mim_parse_size("1000", &v[3])};
    TU_CHECK(!prc[0] && !prc[1] && !prc[2] && !prc[3] && v[0] == 4ull << 30 && v[1] == 512ull << 20 && v[2] == 3ull << 29 &&
             v[3] == 1000, "4G, 512M, 1.5GiB, 1000 = %llu, %llu, %llu, %llu bytes", (unsigned long long)v[0],
             (unsigned long long)v[1], (unsigned long long)v[2], (unsigned long long)v[3]);
    uint64_t w;
    TU_CHECK(mim_parse_size("12Q", &w) == MIM_EARG && mim_parse_size("-1G", &w) == MIM_EARG && mim_parse_size("G", &w) == MIM_EARG,
             "12Q, -1G, G are refused");

    // the CLI: estimate printed; over --max-ram refused with a batch that fits
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    char bin[512], dir[256], cmd[2048], out[8192];
    snprintf(bin, sizeof bin, "%s/mimscale", build);
    struct stat sb;
    if (stat(bin, &sb) != 0) {
        tu_free_all();
        return tu_summary("test_memory", 1, "mimscale not built (CLI checks skipped)");
    }
    snprintf(dir, sizeof dir, "/tmp/mim_test_memory_XXXXXX");
    CHECK(mkdtemp(dir));
    uint8_t* px = tu_alloc_bytes(64 * 16 * 16);
    uint8_t* lab = tu_alloc_bytes(64);
    for (int i = 0; i < 64; i++) lab[i] = (uint8_t)(i % 10);
    tu_write_idx(dir, "train", 64, 16, 16, px, lab);
    tu_write_idx(dir, "t10k", 64, 16, 16, px, lab);
    snprintf(cmd, sizeof cmd, "%s pretrain --data %s --out %s/run --model vit_nano --patch 4 --dec-dim 16 --dec-depth 1 "
             "--dec-heads 2 --batch 16 --steps 1 --threads 1 --max-ram 1G 2>&1", bin, dir, dir);
    int rc = run_sh(cmd, out, sizeof out);
    TU_CHECK(rc == 0 && strstr(out, "memory: ~") && strstr(out, "activations"), "pretrain prints its estimate and runs within 1G (exit %d)", rc);
    double t0 = now_s();
    snprintf(cmd, sizeof cmd, "%s pretrain --data %s --out %s/run2 --model vit_base --patch 4 --batch 100000 --steps 1 "
             "--threads 1 --max-ram 8G 2>&1", bin, dir, dir);
    rc = run_sh(cmd, out, sizeof out);
    double dt = now_s() - t0;
    char* hint = strstr(out, "try --batch ");
    int b = hint ? atoi(hint + 12) : 0;
    TU_CHECK(rc == 1 && strstr(out, "more than --max-ram 8.0 GiB") && b > 0 && b < 100000 && dt < 5,
             "pretrain batch 100000 of vit_base over --max-ram 8G: exit %d in %.2f s, suggests --batch %d", rc, dt, b);
    // the suggested batch passes the check (its run is not started: it would be slow)
    mim_config vb;
    CHECK(mim_config_preset(&vb, "vit_base") == 0);
    vb.img_h = vb.img_w = 16; vb.in_chans = 1; vb.patch = 4; vb.dec_dim = 128; vb.dec_depth = 2; vb.dec_heads = 4;
    TU_CHECK(b > 0 && (b & (b - 1)) == 0 && mim_mae_bytes(&vb, b, NULL) < (8ull << 30) && mim_mae_bytes(&vb, 2 * b, NULL) > (6ull << 30),
             "the suggestion is a power of two (%d) that fits in 8G by the model estimate; twice it nearly does not", b);
    snprintf(cmd, sizeof cmd, "%s finetune --init random --model vit_nano --patch 4 --data %s --out %s/ft --batch 64 "
             "--steps 1 --threads 1 --max-ram 2M 2>&1", bin, dir, dir);
    rc = run_sh(cmd, out, sizeof out);
    TU_CHECK(rc == 1 && strstr(out, "memory: ~") && strstr(out, "finetune with batch 64 needs") && strstr(out, "--max-ram 2.0 MiB"),
             "finetune over --max-ram 2M: exit %d with the estimate and the limit", rc);

    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_memory", 0, NULL);
}
