// test_data_subset.c: subset strategies on synthetic indexes: exact sizes,
// nesting, determinism, seed dependence, label balance, independence from
// index order, and subset files refused against the wrong index.
#include "testutil.h"
#include "data/index.h"
#include "data/subset.h"
#include "data/tar.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

// n records, one shard; label = skewed over 10 classes (class 9 has ~1%);
// reversed: same records in reverse order.
static void make_index(const char* path, uint64_t n, int reversed) {
    char* shards[1] = { "/nonexistent/shard.tar" };
    mim_index_writer* w;
    CHECK(mim_index_writer_open(&w, path, shards, 1) == 0);
    for (uint64_t k = 0; k < n; k++) {
        uint64_t i = reversed ? n - 1 - k : k;
        mim_index_record r; memset(&r, 0, sizeof r);
        r.offset = i * 1024; r.size = 1000; r.key_hash = mim_key_hash((const char*)&i, 8);
        r.label = (i % 100 == 0) ? 9 : (int32_t)(i % 9);
        r.format = 1;
        CHECK(mim_index_writer_add(w, &r, 1) == 0);
    }
    mim_index_stats st; memset(&st, 0, sizeof st); st.n_labels = 10;
    CHECK(mim_index_writer_close(w, &st) == 0);
}

static mim_subset* open_sub(const char* p, const mim_index* ix) {
    mim_subset* s;
    if (mim_subset_open(&s, p, ix) != 0) { fprintf(stderr, "%s\n", mim_err_msg()); CHECK(0); }
    return s;
}

// every id of a is in b (both ascending)
static int contained(const mim_subset* a, const mim_subset* b) {
    const uint64_t *x = mim_subset_ids(a), *y = mim_subset_ids(b);
    uint64_t j = 0, nb = mim_subset_count(b);
    for (uint64_t i = 0; i < mim_subset_count(a); i++) {
        while (j < nb && y[j] < x[i]) j++;
        if (j == nb || y[j] != x[i]) return 0;
    }
    return 1;
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/mim_test_data_subset_%d", (int)getpid());
    CHECK(mkdir(dir, 0755) == 0);
    const uint64_t N = 200000;
    char ip[300], ipr[300];
    snprintf(ip, sizeof ip, "%s/a.idx", dir); snprintf(ipr, sizeof ipr, "%s/rev.idx", dir);
    make_index(ip, N, 0); make_index(ipr, N, 1);
    mim_index *ix, *ixr;
    CHECK(mim_index_open(&ix, ip) == 0 && mim_index_open(&ixr, ipr) == 0);
    uint64_t sizes[4] = { 50000, 1000, 200000, 7 };   // any order, including all of N
    char* p[4]; char* q[4]; char* o[4];
    for (int i = 0; i < 4; i++) { p[i] = malloc(300); q[i] = malloc(300); o[i] = malloc(300); }
    static const char* sname[3] = { "random", "first", "stratified" };
    for (int strat = 0; strat < 3; strat++) {
        for (int i = 0; i < 4; i++) {
            snprintf(p[i], 300, "%s/s%d-%d.sub", dir, strat, i);
            snprintf(q[i], 300, "%s/t%d-%d.sub", dir, strat, i);    // same seed again
            snprintf(o[i], 300, "%s/o%d-%d.sub", dir, strat, i);    // other seed
        }
        TU_CHECK(mim_subset_make(ix, (mim_subset_strategy)strat, 42, sizes, 4, p) == 0, "%s: make sizes 50000, 1000, 200000, 7 (seed 42)", sname[strat]);
        TU_CHECK(mim_subset_make(ix, (mim_subset_strategy)strat, 42, sizes, 4, q) == 0, "%s: make again with seed 42", sname[strat]);
        TU_CHECK(mim_subset_make(ix, (mim_subset_strategy)strat, 43, sizes, 4, o) == 0, "%s: make with seed 43", sname[strat]);
        mim_subset* s[4]; mim_subset* t[4]; mim_subset* u[4];
        for (int i = 0; i < 4; i++) { s[i] = open_sub(p[i], ix); t[i] = open_sub(q[i], ix); u[i] = open_sub(o[i], ix); }
        for (int i = 0; i < 4; i++) {
            TU_CHECK(mim_subset_count(s[i]) == sizes[i], "%s size %llu: count %llu", sname[strat], (unsigned long long)sizes[i], (unsigned long long)mim_subset_count(s[i]));
            TU_CHECK(!memcmp(mim_subset_ids(s[i]), mim_subset_ids(t[i]), sizes[i] * 8), "%s size %llu: same seed, same ids", sname[strat], (unsigned long long)sizes[i]);   // same seed, same subset
            int nested = 1;
            for (int j = 0; j < 4; j++) if (sizes[i] <= sizes[j]) nested &= contained(s[i], s[j]);
            TU_CHECK(nested, "%s size %llu: inside every larger subset (nested)", sname[strat], (unsigned long long)sizes[i]);   // nested
        }
        if (strat != MIM_SUBSET_FIRST) TU_CHECK(memcmp(mim_subset_ids(s[0]), mim_subset_ids(u[0]), sizes[0] * 8) != 0, "%s: another seed, another 50000-subset", sname[strat]);
        if (strat == MIM_SUBSET_FIRST) TU_CHECK(mim_subset_ids(s[0])[sizes[0] - 1] == sizes[0] - 1, "first: the 50000-subset is ids 0..49999");
        if (strat == MIM_SUBSET_STRATIFIED) {
            // 50000 over 10 labels: class 9 has 2000 samples (all taken), the other 9 share 48000
            uint64_t cnt[10] = { 0 };
            for (uint64_t i = 0; i < sizes[0]; i++) cnt[mim_index_get(ix, mim_subset_ids(s[0])[i])->label]++;
            TU_CHECK(cnt[9] == 2000, "stratified 50000: all 2000 of the rare class 9 taken (got %llu)", (unsigned long long)cnt[9]);
            int even = 1;
            for (int l = 0; l < 9; l++) even &= cnt[l] == 48000 / 9 || cnt[l] == 48000 / 9 + 1;
            TU_CHECK(even, "stratified 50000: classes 0..8 get 48000 / 9 each (+-1)");
            uint64_t c7[10] = { 0 };
            for (uint64_t i = 0; i < 7; i++) c7[mim_index_get(ix, mim_subset_ids(s[3])[i])->label]++;
            int one_each = 1;
            for (int l = 0; l < 10; l++) one_each &= c7[l] == (l < 7 ? 1u : 0u);
            TU_CHECK(one_each, "stratified 7: one sample of each of classes 0..6");
        }
        if (strat == MIM_SUBSET_RANDOM) {
            // the same keys are chosen whatever the index order
            char rp[300]; snprintf(rp, sizeof rp, "%s/rev.sub", dir);
            char* rpp[1] = { rp };
            TU_CHECK(mim_subset_make(ixr, MIM_SUBSET_RANDOM, 42, sizes, 1, rpp) == 0, "random on the reversed index: seed 42, size 50000");
            mim_subset* r = open_sub(rp, ixr);
            uint64_t* a = malloc(sizes[0] * 8); uint64_t* b = malloc(sizes[0] * 8);
            uint64_t xa = 0, xb = 0, sa = 0, sb = 0;   // order-free set fingerprints
            for (uint64_t i = 0; i < sizes[0]; i++) {
                a[i] = mim_index_get(ix, mim_subset_ids(s[0])[i])->key_hash;
                b[i] = mim_index_get(ixr, mim_subset_ids(r)[i])->key_hash;
                xa ^= a[i]; xb ^= b[i]; sa += a[i] * 0x9e3779b97f4a7c15ULL; sb += b[i] * 0x9e3779b97f4a7c15ULL;
            }
            TU_CHECK(xa == xb && sa == sb, "random: the same keys chosen whatever the index order");
            free(a); free(b);
            mim_subset_close(r);
            // subset of one index refused by another of a different size
            mim_index* small; char sp[300]; snprintf(sp, sizeof sp, "%s/small.idx", dir);
            make_index(sp, 1000, 0); CHECK(mim_index_open(&small, sp) == 0);
            mim_subset* bad;
            TU_CHECK(mim_subset_open(&bad, p[0], small) == MIM_EFORMAT, "subset of a 200000-sample index refused by a 1000-sample one: MIM_EFORMAT (%s)", mim_err_msg());
            mim_index_close(small);
        }
        for (int i = 0; i < 4; i++) { mim_subset_close(s[i]); mim_subset_close(t[i]); mim_subset_close(u[i]); }
    }
    uint64_t too_big = N + 1;
    TU_CHECK(mim_subset_make(ix, MIM_SUBSET_RANDOM, 1, &too_big, 1, p) == MIM_EARG, "size N + 1 refused with MIM_EARG (%s)", mim_err_msg());
    for (int i = 0; i < 4; i++) { free(p[i]); free(q[i]); free(o[i]); }
    mim_index_close(ix); mim_index_close(ixr);
    char cmd[300]; snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return tu_summary("test_data_subset", 0, NULL);
}
