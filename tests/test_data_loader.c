// test_data_loader.c: the threaded loader on a synthetic shard set whose
// label is the sample number: same bits whatever the thread count, resume
// from a saved position (across an epoch boundary), disjoint (rank, world)
// slices, a fresh order each epoch, the epoch permutation a bijection, and
// the sample ids reported with each batch.
#include "testutil.h"
#include "data/decode.h"
#include "data/index.h"
#include "data/loader.h"
#include "data/tar.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { NS = 96, B = 8, HW = 16 };
static char idxp[300];

static mim_loader* open_loader(int threads, int rank, int world, uint64_t seed) {
    mim_loader_config c; mim_loader_config_default(&c);
    c.index_path = idxp; c.batch_size = B; c.channels = 3; c.height = c.width = HW;
    c.n_threads = threads; c.rank = rank; c.world = world; c.seed = seed;
    mim_loader* l;
    if (mim_loader_open(&l, &c) != 0) { fprintf(stderr, "%s\n", mim_err_msg()); CHECK(0); }
    return l;
}

int main(void) {
    // permutation: bijection for awkward sizes
    for (uint64_t n = 1; n < 300; n += 37) {
        mim_perm p; mim_perm_init(&p, n, 5, 1);
        uint8_t* seen = calloc(n, 1);
        int bij = 1;
        for (uint64_t i = 0; i < n; i++) { uint64_t v = mim_perm_apply(&p, i); bij &= v < n && !seen[v]; if (v < n) seen[v] = 1; }
        TU_CHECK(bij, "permutation of %llu: a bijection onto [0, n)", (unsigned long long)n);
        free(seen);
    }
    char dir[256]; snprintf(dir, sizeof dir, "/tmp/mim_test_data_loader_%d", (int)getpid());
    CHECK(mkdir(dir, 0755) == 0);
    char sp[2][300];
    for (int s = 0; s < 2; s++) {
        snprintf(sp[s], 300, "%s/l-%06d.tar", dir, s);
        FILE* f = fopen(sp[s], "wb");
        for (int i = s * NS / 2; i < (s + 1) * NS / 2; i++) {
            int w = 20 + i % 13, h = 18 + i % 7;
            uint8_t* px = malloc((size_t)w * h * 3);
            for (int k = 0; k < w * h * 3; k++) px[k] = (uint8_t)(k * 5 + i * 11);
            uint8_t* j; size_t n;
            CHECK(mim_jpeg_encode(px, w, h, 3, 90, &j, &n) == 0);
            char name[32], lb[16];
            snprintf(name, sizeof name, "%05d.jpg", i); CHECK(mim_tar_write_member(f, name, j, n) == 0);
            int k = snprintf(lb, sizeof lb, "%d", i);
            snprintf(name, sizeof name, "%05d.cls", i); CHECK(mim_tar_write_member(f, name, lb, (uint64_t)k) == 0);
            free(j); free(px);
        }
        CHECK(mim_tar_write_end(f) == 0);
        fclose(f);
    }
    snprintf(idxp, sizeof idxp, "%s/l.idx", dir);
    char* shards[2] = { sp[0], sp[1] };
    mim_index_build_opts o = { 1, 0 };
    CHECK(mim_index_build(idxp, shards, 2, &o, NULL) == 0);

    const size_t F = (size_t)B * 3 * HW * HW;
    const int NB = 30;   // 30 batches of 8 = 2.5 epochs of 96
    float* a = malloc(F * NB * sizeof(float)); int32_t* la = malloc(B * NB * sizeof(int32_t));
    float* b = malloc(F * sizeof(float)); int32_t lb[B];
    mim_loader* l1 = open_loader(1, 0, 1, 7);
    TU_CHECK(mim_loader_batches_per_epoch(l1) == NS / B, "batches per epoch %llu == %d / %d", (unsigned long long)mim_loader_batches_per_epoch(l1), NS, B);
    for (int k = 0; k < NB; k++) CHECK(mim_loader_next(l1, a + k * F, la + k * B) == 0);
    mim_loader_pos end = mim_loader_get_position(l1);
    TU_CHECK(end.epoch == 2 && end.index == (uint64_t)(NB - 24) * B, "position after %d batches: epoch 2, index %d (got %llu, %llu)", NB, (NB - 24) * B, (unsigned long long)end.epoch, (unsigned long long)end.index);
    mim_loader_close(l1);
    // each epoch: every sample once; epochs ordered differently
    for (int e = 0; e < 2; e++) {
        int seen[NS] = { 0 }, once = 1;
        for (int k = 0; k < NS; k++) { int32_t v = la[e * NS + k]; once &= v >= 0 && v < NS && !seen[v]; if (v >= 0 && v < NS) seen[v] = 1; }
        TU_CHECK(once, "epoch %d: every one of the %d samples exactly once", e, NS);
    }
    TU_CHECK(memcmp(la, la + NS, NS * sizeof(int32_t)) != 0, "epochs 0 and 1 in different orders");
    // 3 threads: same bits
    mim_loader* l3 = open_loader(3, 0, 1, 7);
    int same = 0;
    for (int k = 0; k < NB; k++) {
        CHECK(mim_loader_next(l3, b, lb) == 0);
        same += !memcmp(b, a + k * F, F * sizeof(float)) && !memcmp(lb, la + k * B, sizeof lb);
    }
    TU_CHECK(same == NB, "3 threads: %d / %d batches (pixels and labels) bit-identical to 1 thread", same, NB);
    // resume from batch 10 (epoch 0, index 80) on a fresh loader, across the epoch boundary
    mim_loader_close(l3);
    l3 = open_loader(2, 0, 1, 7);
    mim_loader_pos pos = { 0, 80 };
    TU_CHECK(mim_loader_set_position(l3, pos) == 0, "set_position (epoch 0, index 80) on a fresh loader");
    same = 0;
    for (int k = 10; k < NB; k++) {
        CHECK(mim_loader_next(l3, b, lb) == 0);
        same += !memcmp(b, a + k * F, F * sizeof(float)) && !memcmp(lb, la + k * B, sizeof lb);
    }
    TU_CHECK(same == NB - 10, "resumed at batch 10 (2 threads): %d / %d batches equal the uninterrupted run, across epochs", same, NB - 10);
    // mid-stream set_position back to batch 2 restarts the workers cleanly
    pos.epoch = 0; pos.index = 16;
    TU_CHECK(mim_loader_set_position(l3, pos) == 0, "set_position mid-stream back to index 16");
    CHECK(mim_loader_next(l3, b, lb) == 0);
    TU_CHECK(!memcmp(b, a + 2 * F, F * sizeof(float)), "after the mid-stream set_position: batch 2 again");
    mim_loader_counters c = mim_loader_get_counters(l3);
    TU_CHECK(c.decode_errors == 0 && c.unfilled == 0, "no decode errors, no unfilled slots (%llu, %llu)", (unsigned long long)c.decode_errors, (unsigned long long)c.unfilled);
    mim_loader_close(l3);
    // two ranks: disjoint slices covering 2 * (NS/2) samples per epoch
    mim_loader* r0 = open_loader(1, 0, 2, 7);
    mim_loader* r1 = open_loader(2, 1, 2, 7);
    TU_CHECK(mim_loader_batches_per_epoch(r0) == NS / 2 / B, "two ranks: %llu batches per epoch each (want %d)", (unsigned long long)mim_loader_batches_per_epoch(r0), NS / 2 / B);
    int seen[NS] = { 0 }, dup = 0;
    for (uint64_t k = 0; k < mim_loader_batches_per_epoch(r0); k++) {
        CHECK(mim_loader_next(r0, b, lb) == 0);
        for (int i = 0; i < B; i++) { dup += seen[lb[i]] != 0; seen[lb[i]]++; }
        CHECK(mim_loader_next(r1, b, lb) == 0);
        for (int i = 0; i < B; i++) { dup += seen[lb[i]] != 0; seen[lb[i]]++; }
    }
    TU_CHECK(dup == 0, "two ranks: no sample twice in an epoch (%d repeats)", dup);
    int total = 0; for (int i = 0; i < NS; i++) total += seen[i];
    TU_CHECK(total == NS, "two ranks: %d samples together == %d", total, NS);
    mim_loader_close(r0); mim_loader_close(r1);
    // sample ids: the label is the sample number here, so ids == labels, and
    // mim_loader_next_ids returns the same batch as mim_loader_next
    {
        mim_loader* li = open_loader(2, 0, 1, 7);
        TU_CHECK(mim_loader_id_space(li) == NS, "id space %llu == %d samples", (unsigned long long)mim_loader_id_space(li), NS);
        int64_t ids[B];
        int px_same = 0, id_same = 0;
        for (int k = 0; k < 14; k++) {
            CHECK(mim_loader_next_ids(li, b, lb, ids) == 0);
            px_same += memcmp(b, a + k * F, F * sizeof(float)) == 0;
            for (int j = 0; j < B; j++) id_same += ids[j] == lb[j] && lb[j] == la[k * B + j];
        }
        TU_CHECK(px_same == 14, "next_ids: %d / 14 batches equal mim_loader_next's", px_same);
        TU_CHECK(id_same == 14 * B, "next_ids: %d / %d ids == labels == the reference order", id_same, 14 * B);
        mim_loader_close(li);
    }
    // a different seed gives a different order
    mim_loader* ls = open_loader(1, 0, 1, 8);
    CHECK(mim_loader_next(ls, b, lb) == 0);
    TU_CHECK(memcmp(lb, la, sizeof lb) != 0, "another seed gives another first batch");
    mim_loader_close(ls);
    // bad configs are refused with a message
    mim_loader_config cfg; mim_loader_config_default(&cfg);
    cfg.index_path = idxp; cfg.batch_size = 1000; mim_loader* bad;
    TU_CHECK(mim_loader_open(&bad, &cfg) == MIM_EARG, "batch 1000 > data set refused with MIM_EARG (%s)", mim_err_msg());
    cfg.batch_size = 4; cfg.rank = 2; cfg.world = 2;
    TU_CHECK(mim_loader_open(&bad, &cfg) == MIM_EARG, "rank 2 of world 2 refused with MIM_EARG (%s)", mim_err_msg());
    cfg.rank = 0; cfg.index_path = "/nonexistent.idx";
    TU_CHECK(mim_loader_open(&bad, &cfg) == MIM_EIO, "missing index file refused with MIM_EIO (%s)", mim_err_msg());
    free(a); free(la); free(b);
    char cmd[300]; snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return tu_summary("test_data_loader", 0, NULL);
}
