// test_hostile.c: regressions for hostile-input bugs the fuzzers found
// (fuzz/), replayed as ordinary files so `make test` (and the ASan build,
// where a huge malloc aborts) keeps them fixed.
#include "testutil.h"
#include "data/idx.h"
#include "data/index.h"
#include "data/source.h"
#include "data/tar.h"
#include "study/study.h"
#include <stdint.h>

static char dir[256];

static void put(const char* name, const void* p, size_t n, char* path, size_t cap) {
    snprintf(path, cap, "%s/%s", dir, name);
    FILE* f = fopen(path, "wb");
    CHECK(f);
    CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/mim_test_hostile_XXXXXX");
    CHECK(mkdtemp(dir));
    char p[512], q[512];

    // IDX header claiming 2^28 images of 7x7 (13 GB) over 20 bytes of pixels:
    // the reader used to malloc the claimed size first.
    uint8_t h[16 + 20] = {0, 0, 8, 3, 0x10, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 7};
    put("big-images", h, sizeof h, p, sizeof p);
    mim_idx d;
    int rc = mim_idx_load(&d, p, NULL);
    TU_CHECK(rc == MIM_EFORMAT && strstr(mim_err_msg(), "truncated") && !d.pixels,
             "IDX header claiming 13 GB over 20 bytes: truncated (%d: %s), no huge allocation", rc, mim_err_msg());
    // a valid file still loads, labels matched
    uint8_t ok[16 + 2 * 9] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3};
    for (int i = 0; i < 18; i++) ok[16 + i] = (uint8_t)i;
    uint8_t lab[8 + 2] = {0, 0, 8, 1, 0, 0, 0, 2, 7, 9};
    put("ok-images", ok, sizeof ok, p, sizeof p);
    put("ok-labels", lab, sizeof lab, q, sizeof q);
    rc = mim_idx_load(&d, p, q);
    TU_CHECK(rc == 0 && d.n == 2 && d.h == 3 && d.pixels[17] == 17 && d.labels[1] == 9, "a small valid IDX pair loads");
    mim_idx_free(&d);

    // a study grid of 1000 seeds x 1000 sizes (8 KB of JSON) used to expand
    // into a million runs (14 s, 380 MB)
    char js[16384];
    int n = snprintf(js, sizeof js, "{\"data\": {\"idx\": \"x\"}, \"models\": [{\"preset\": \"vit_nano\", \"patch\": 7}], "
                     "\"budget\": {\"epochs\": 1}, \"pretrain\": {\"batch\": 1}, \"subsets\": {\"sizes\": [");
    for (int i = 1; i <= 1000; i++) n += snprintf(js + n, sizeof js - (size_t)n, "%s%d", i > 1 ? "," : "", i);
    n += snprintf(js + n, sizeof js - (size_t)n, "]}, \"seeds\": [");
    for (int i = 0; i < 1000; i++) n += snprintf(js + n, sizeof js - (size_t)n, "%s%d", i ? "," : "", i);
    snprintf(js + n, sizeof js - (size_t)n, "]}");
    mim_study s;
    rc = mim_study_parse(&s, js, "big.json");
    mim_study_run* runs = NULL;
    int nr = rc ? rc : mim_study_expand(&s, &runs);
    TU_CHECK(rc == 0 && nr == MIM_EARG && !runs && strstr(mim_err_msg(), "1000000 runs"),
             "a million-run grid is refused before allocating it (%d: %s)", nr, mim_err_msg());
    free(runs);
    if (!rc) mim_study_free(&s);

    // a .cls of 2147483647 (a hostile shard, or an index edited to say so):
    // the class count used to overflow (label + 1) and would size the heads
    snprintf(p, sizeof p, "%s/cls-000000.tar", dir);
    FILE* f = fopen(p, "wb");
    CHECK(f);
    static const uint8_t fake_jpeg[4] = {0xff, 0xd8, 0xff, 0xd9};   // indexing does not decode
    const char* cls[3] = {"3", "2147483647", "1"};
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "%05d.jpg", i); CHECK(mim_tar_write_member(f, name, fake_jpeg, 4) == 0);
        snprintf(name, sizeof name, "%05d.cls", i); CHECK(mim_tar_write_member(f, name, cls[i], strlen(cls[i])) == 0);
    }
    CHECK(mim_tar_write_end(f) == 0);
    fclose(f);
    char* shards[1] = {p};
    snprintf(q, sizeof q, "%s/cls.idx", dir);
    mim_index_build_opts bo = {.n_threads = 1, .progress = 0};
    rc = mim_index_build(q, shards, 1, &bo, NULL);
    mim_source* src = NULL;
    mim_source_config sc = {.path = q, .channels = 3, .height = 8, .width = 8, .batch = 1, .world = 1, .threads = 1};
    int src_rc = rc ? rc : mim_source_open(&src, &sc);
    int K = src ? mim_source_num_classes(src) : -1;
    TU_CHECK(rc == 0 && src_rc == 0 && K == 4, "a label of 2147483647 is not counted as a class (classes %d, want 4)", K);
    mim_source_close(src);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_hostile", 0, NULL);
}
