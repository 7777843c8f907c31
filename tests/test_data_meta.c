// test_data_meta.c: subsets driven by img2dataset key.json metadata.
// Shards with key.json members (before or after the image, with captions in
// between, some missing, some malformed) are indexed; the json table must
// locate every key.json byte-exactly. Then `filter` subsets are checked
// against a brute-force selection (the k smallest ranks among the samples
// that pass), for nesting, determinism and seed dependence; `stratified` by
// a width bucket against brute-force water-filled quotas; `first` with a
// filter; the exclusion counts; expression parsing; and format-1 indexes
// (opened, but refused for metadata with a hint) and unknown formats.
#include "testutil.h"
#include "data/index.h"
#include "data/meta.h"
#include "data/subset.h"
#include "data/tar.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

enum { NS = 3, PER = 1000, N = NS * PER };

// Per-sample metadata of the synthetic crawl. kind: 0 normal, 1 no key.json,
// 2 broken json, 3 width null, 4 json not an object.
typedef struct { int kind, width, height; double sim; char json[200]; size_t json_n; } truth;
static truth T[N];

static int kind_of(int i) {
    if (i % 97 == 5) return 1;
    if (i % 89 == 7) return 2;
    if (i % 83 == 11) return 3;
    if (i % 211 == 13) return 4;
    return 0;
}

static void make_shards(char** paths) {
    for (int s = 0; s < NS; s++) {
        FILE* f = fopen(paths[s], "wb");
        CHECK(f);
        for (int k = 0; k < PER; k++) {
            int i = s * PER + k;
            truth* t = &T[i];
            t->kind = kind_of(i);
            t->width = 64 + (i * 37) % 700;
            t->height = 64 + (i * 53) % 500;
            t->sim = (double)((i * 7) % 100) / 100.0;
            switch (t->kind) {
            case 2: snprintf(t->json, sizeof t->json, "{\"width\": %d, \"height\": ", t->width); break;
            case 3: snprintf(t->json, sizeof t->json, "{\"width\": null, \"height\": %d}", t->height); break;
            case 4: snprintf(t->json, sizeof t->json, "[%d, %d]", t->width, t->height); break;
            default:
                snprintf(t->json, sizeof t->json,
                         "{\"key\": \"%09d\", \"status\": \"success\", \"width\": %d, \"height\": %d, "
                         "\"similarity\": %.2f, \"exif\": {\"w\": %d}}", i, t->width, t->height, t->sim, t->width);
            }
            t->json_n = strlen(t->json);
            char name[64];
            uint8_t img[700];   // fake image bytes: the index never decodes
            size_t img_n = 100 + (size_t)(i * 13) % 600;
            memset(img, i & 0xff, img_n);
            img[0] = 0xFF; img[1] = 0xD8;
            int json_first = i % 3 == 0;   // img2dataset order varies with the writer
            if (json_first && t->kind != 1) { snprintf(name, sizeof name, "%09d.json", i); CHECK(mim_tar_write_member(f, name, t->json, t->json_n) == 0); }
            snprintf(name, sizeof name, "%09d.jpg", i); CHECK(mim_tar_write_member(f, name, img, img_n) == 0);
            snprintf(name, sizeof name, "%09d.txt", i); CHECK(mim_tar_write_member(f, name, "a caption of some length", 24) == 0);
            if (!json_first && t->kind != 1) { snprintf(name, sizeof name, "%09d.json", i); CHECK(mim_tar_write_member(f, name, t->json, t->json_n) == 0); }
        }
        CHECK(mim_tar_write_end(f) == 0);
        fclose(f);
    }
}

static mim_subset* open_sub(const char* p, const mim_index* ix) {
    mim_subset* s;
    if (mim_subset_open(&s, p, ix) != 0) { fprintf(stderr, "%s\n", mim_err_msg()); CHECK(0); }
    return s;
}

static int contained(const mim_subset* a, const mim_subset* b) {
    const uint64_t *x = mim_subset_ids(a), *y = mim_subset_ids(b);
    uint64_t j = 0, nb = mim_subset_count(b);
    for (uint64_t i = 0; i < mim_subset_count(a); i++) {
        while (j < nb && y[j] < x[i]) j++;
        if (j == nb || y[j] != x[i]) return 0;
    }
    return 1;
}

typedef struct { uint64_t rank, id; } rk;
static int rk_cmp(const void* a, const void* b) {
    const rk *x = a, *y = b;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}
static int u64_cmp(const void* a, const void* b) {
    uint64_t x = *(const uint64_t*)a, y = *(const uint64_t*)b;
    return x < y ? -1 : x > y;
}

// Brute force: the k smallest (rank, id) among ids with ok[id] (and group g
// when grp != NULL), ascending ids appended to out. Returns how many passed.
static uint64_t brute(const mim_index* ix, uint64_t seed, const int* ok, const int* grp, int g, uint64_t k, uint64_t* out) {
    rk* v = malloc(sizeof(rk) * N);
    uint64_t n = 0;
    for (uint64_t i = 0; i < N; i++)
        if (ok[i] && (!grp || grp[i] == g)) v[n++] = (rk){ mim_subset_rank(seed, mim_index_get(ix, i)->key_hash), i };
    qsort(v, n, sizeof *v, rk_cmp);
    for (uint64_t j = 0; j < k && j < n; j++) out[j] = v[j].id;
    if (k <= n) qsort(out, k, 8, u64_cmp);
    free(v);
    return n;
}

static void sub_path(char* p, const char* tag, int i) { snprintf(p, 300, "%s/%s-%d.sub", dir, tag, i); }

static void test_parse(void) {
    mim_meta_spec m;
    mim_meta_spec_init(&m);
    TU_CHECK(mim_meta_parse_filter(&m, " width >= 256 , height<300,similarity!=0.5,exif.w==70,original_width>1e3,x=2,y<=-1.5") == 0, "parse a 7-condition filter (spaces, all operators, dotted field, 1e3, -1.5)");
    TU_CHECK(m.n_cond == 7, "7 conditions parsed (got %d)", m.n_cond);
    TU_CHECK(m.cond[0].op == MIM_CMP_GE && m.cond[0].value == 256 && !strcmp(m.cond[0].field, "width"), "condition 0: width >= 256");
    TU_CHECK(m.cond[1].op == MIM_CMP_LT && m.cond[2].op == MIM_CMP_NE && m.cond[3].op == MIM_CMP_EQ, "conditions 1..3: <, !=, ==");
    TU_CHECK(m.cond[4].op == MIM_CMP_GT && m.cond[4].value == 1000 && m.cond[5].op == MIM_CMP_EQ && m.cond[6].op == MIM_CMP_LE, "conditions 4..6: > 1000 (from 1e3), = as ==, <=");
    TU_CHECK(m.cond[6].value == -1.5 && !strcmp(m.cond[3].field, "exif.w"), "condition 6 value -1.5; condition 3 field exif.w");
    const char* bad[] = { "", "width", ">=3", "width>=abc", "width>=1,", "width>>3", "width>=3 4", "wi dth>=3", "width>=nan", "width=>3" };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        mim_meta_spec_init(&m);
        int rc = mim_meta_parse_filter(&m, bad[i]);
        TU_CHECK(rc == MIM_EARG, "bad filter '%s' refused with MIM_EARG (%d)", bad[i], rc);
    }
    mim_meta_spec_init(&m);
    TU_CHECK(mim_meta_parse_buckets(&m, "width", "128,256,512") == 0 && mim_meta_n_groups(&m) == 4, "buckets 128,256,512: 4 groups");
    TU_CHECK(mim_meta_bucket(&m, 127.9) == 0 && mim_meta_bucket(&m, 128) == 1 && mim_meta_bucket(&m, 511) == 2 && mim_meta_bucket(&m, 512) == 3, "bucket edges: 127.9 -> 0, 128 -> 1, 511 -> 2, 512 -> 3");
    TU_CHECK(mim_meta_parse_buckets(&m, "width", "256,128") == MIM_EARG, "buckets not ascending refused");
    TU_CHECK(mim_meta_parse_buckets(&m, "width", "1,,2") == MIM_EARG, "buckets with an empty edge refused");
    TU_CHECK(mim_meta_parse_buckets(&m, "", "1") == MIM_EARG, "buckets without a field refused");
    // classification of json bytes (not NUL-terminated)
    mim_meta_spec_init(&m);
    CHECK(mim_meta_parse_filter(&m, "width>=256,exif.w<1000") == 0);
    const char* j = "{\"width\": 300, \"exif\": {\"w\": 3}}XXXX";
    TU_CHECK(mim_meta_classify(&m, (const uint8_t*)j, strlen(j) - 4) == 0, "classify: passing json (not NUL-terminated) accepted");
    TU_CHECK(mim_meta_classify(&m, (const uint8_t*)"{\"width\": 255, \"exif\": {\"w\": 3}}", 32) == MIM_META_REJECTED, "classify: width 255 rejected");
    TU_CHECK(mim_meta_classify(&m, (const uint8_t*)"{\"width\": \"300\"}", 16) == MIM_META_NO_FIELD, "classify: width as a string is no field");
    TU_CHECK(mim_meta_classify(&m, (const uint8_t*)"{\"width\": 3", 11) == MIM_META_BAD_JSON, "classify: truncated json is bad json");
    TU_CHECK(mim_meta_classify(&m, (const uint8_t*)"", 0) == MIM_META_BAD_JSON, "classify: empty bytes are bad json");
    TU_CHECK(mim_meta_spec_hash(&m) != 0, "spec hash non-zero");
    mim_meta_spec m2; mim_meta_spec_init(&m2);
    CHECK(mim_meta_parse_filter(&m2, "width >= 256, exif.w < 1000") == 0);   // same spec, other spelling
    TU_CHECK(mim_meta_spec_hash(&m) == mim_meta_spec_hash(&m2), "spec hash: same spec spelled otherwise, same hash");
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    snprintf(dir, sizeof dir, "/tmp/mim_test_data_meta_%d", (int)getpid());
    CHECK(mkdir(dir, 0755) == 0);
    test_parse();
    char* shards[NS];
    for (int s = 0; s < NS; s++) { shards[s] = malloc(300); snprintf(shards[s], 300, "%s/crawl-%06d.tar", dir, s); }
    make_shards(shards);
    char ip[300]; snprintf(ip, sizeof ip, "%s/crawl.idx", dir);
    mim_index_build_opts bo = { 2, 0 };
    mim_index_stats ist;
    CHECK(mim_index_build(ip, shards, NS, &bo, &ist) == 0);
    uint64_t want_json = 0;
    for (int i = 0; i < N; i++) want_json += T[i].kind != 1;
    printf("index: %llu samples, %llu with key.json (want %llu)\n", (unsigned long long)ist.n_samples,
           (unsigned long long)ist.n_json, (unsigned long long)want_json);
    TU_CHECK(ist.n_samples == N && ist.n_json == want_json, "index: %llu samples (want %d), %llu key.json (want %llu)", (unsigned long long)ist.n_samples, N, (unsigned long long)ist.n_json, (unsigned long long)want_json);
    mim_index* ix; CHECK(mim_index_open(&ix, ip) == 0);
    TU_CHECK(mim_index_has_json(ix) && mim_index_header_get(ix)->stats.n_json == want_json, "index header: has the json table, n_json as built");
    struct stat sb; CHECK(stat(ip, &sb) == 0);
    printf("index file: %lld bytes, %.1f bytes/sample (32 record + 8 json)\n", (long long)sb.st_size, (double)sb.st_size / N);

    // every key.json byte-identical through the json table
    mim_sample_reader rd; mim_sample_reader_init(&rd, ix);
    uint8_t* buf = NULL; size_t cap = 0, n;
    int json_ok = 0, absent_ok = 0, n_absent = 0;
    for (uint64_t i = 0; i < N; i++) {
        int rc = mim_sample_reader_read_json(&rd, i, &buf, &cap, &n);
        if (T[i].kind == 1) { n_absent++; absent_ok += rc == MIM_ENOTFOUND; continue; }
        if (rc == 0 && n == T[i].json_n && !memcmp(buf, T[i].json, n)) json_ok++;
    }
    TU_CHECK(absent_ok == n_absent, "samples without key.json: %d / %d give MIM_ENOTFOUND", absent_ok, n_absent);
    TU_CHECK((uint64_t)json_ok == want_json, "json table: %d / %llu key.json byte-identical", json_ok, (unsigned long long)want_json);
    mim_sample_reader_free(&rd); free(buf);

    // ---- filter: brute force agreement, nesting, determinism
    int* ok = calloc(N, sizeof *ok);
    uint64_t want_elig = 0, want_rej = 0, want_nofield = 0, want_bad = 0, want_nojson = 0;
    for (int i = 0; i < N; i++) {
        int k = T[i].kind;
        if (k == 1) want_nojson++;
        else if (k == 2 || k == 4) want_bad++;
        else if (k == 3) want_nofield++;
        else if (T[i].width >= 256 && T[i].height < 400) { ok[i] = 1; want_elig++; }
        else want_rej++;
    }
    mim_meta_spec m; mim_meta_spec_init(&m);
    CHECK(mim_meta_parse_filter(&m, "width>=256,height<400") == 0);
    mim_subset_opts so = { &m, 2, 0 };
    uint64_t sizes[4] = { 500, 7, want_elig, 120 };
    char* p[4]; char* q[4]; char* o[4];
    for (int i = 0; i < 4; i++) { p[i] = malloc(300); q[i] = malloc(300); o[i] = malloc(300); sub_path(p[i], "f", i); sub_path(q[i], "g", i); sub_path(o[i], "h", i); }
    mim_subset_stats st;
    TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_FILTER, 42, sizes, 4, p, &so, &st) == 0, "filter width>=256,height<400: make 4 sizes (seed 42)");
    char line[1024]; mim_subset_stats_format(&st, N, line, sizeof line); printf("filter width>=256,height<400: %s\n", line);
    TU_CHECK(st.eligible == want_elig && st.no_json == want_nojson && st.bad_json == want_bad && st.no_field == want_nofield &&
           st.rejected == want_rej && st.read_errors == 0, "filter stats == brute force: eligible %llu (want %llu), no json, bad json, no field, rejected, no read errors", (unsigned long long)st.eligible, (unsigned long long)want_elig);
    TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_FILTER, 42, sizes, 4, q, &so, NULL) == 0, "filter: make again with seed 42");
    TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_FILTER, 43, sizes, 4, o, &so, NULL) == 0, "filter: make with seed 43");
    mim_subset* s[4]; mim_subset* t[4]; mim_subset* u[4];
    uint64_t* want = malloc(8 * N);
    for (int i = 0; i < 4; i++) { s[i] = open_sub(p[i], ix); t[i] = open_sub(q[i], ix); u[i] = open_sub(o[i], ix); }
    for (int i = 0; i < 4; i++) {
        TU_CHECK(mim_subset_count(s[i]) == sizes[i], "filter size %llu: count", (unsigned long long)sizes[i]);
        TU_CHECK(!memcmp(mim_subset_ids(s[i]), mim_subset_ids(t[i]), sizes[i] * 8), "filter size %llu: same seed, same ids", (unsigned long long)sizes[i]);
        int nested = 1;
        for (int j = 0; j < 4; j++) if (sizes[i] <= sizes[j]) nested &= contained(s[i], s[j]);
        TU_CHECK(nested, "filter size %llu: nested in every larger one", (unsigned long long)sizes[i]);
        int all_pass = 1;
        for (uint64_t k = 0; k < sizes[i]; k++) all_pass &= ok[mim_subset_ids(s[i])[k]];
        TU_CHECK(all_pass, "filter size %llu: every chosen sample passes the filter", (unsigned long long)sizes[i]);
        brute(ix, 42, ok, NULL, 0, sizes[i], want);
        TU_CHECK(!memcmp(mim_subset_ids(s[i]), want, sizes[i] * 8), "filter size %llu: exactly the smallest ranks among the passing (brute force)", (unsigned long long)sizes[i]);   // exactly the k smallest ranks among those passing
        TU_CHECK(mim_subset_header_get(s[i])->strategy == MIM_SUBSET_FILTER && mim_subset_header_get(s[i])->spec_hash == mim_meta_spec_hash(&m), "filter size %llu: header records strategy filter and the spec hash", (unsigned long long)sizes[i]);
    }
    TU_CHECK(memcmp(mim_subset_ids(s[0]), mim_subset_ids(u[0]), sizes[0] * 8) != 0, "filter: another seed, another 500-subset");   // other seed, other subset
    TU_CHECK(!memcmp(mim_subset_ids(s[2]), mim_subset_ids(u[2]), sizes[2] * 8), "filter: all eligible, same set whatever the seed");       // all eligible: the same set
    for (int i = 0; i < 4; i++) { mim_subset_close(s[i]); mim_subset_close(t[i]); mim_subset_close(u[i]); }
    uint64_t too_big = want_elig + 1;
    TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_FILTER, 42, &too_big, 1, p, &so, &st) == MIM_EARG, "filter: eligible + 1 refused with MIM_EARG (%s)", mim_err_msg());
    printf("refused: %s\n", mim_err_msg());
    TU_CHECK(st.eligible == want_elig, "filter refused: stats still count the eligible");

    // the other operators, against brute force counts
    const char* exprs[] = { "width>300", "width<=300", "height==100", "height!=100", "similarity>=0.5,width<200", "exif.w<128" };
    for (size_t e = 0; e < sizeof exprs / sizeof *exprs; e++) {
        mim_meta_spec_init(&m);
        CHECK(mim_meta_parse_filter(&m, exprs[e]) == 0);
        uint64_t cnt = 0;
        for (int i = 0; i < N; i++) {
            if (T[i].kind == 1 || T[i].kind == 2 || T[i].kind == 4) continue;
            if (T[i].kind == 3 && e != 2 && e != 3) continue;   // width null: only height conditions can pass
            int w = T[i].width, h = T[i].height, pass;
            switch (e) {
            case 0: pass = w > 300; break;
            case 1: pass = w <= 300; break;
            case 2: pass = h == 100; break;
            case 3: pass = h != 100; break;
            case 4: pass = T[i].sim >= 0.5 && w < 200; break;
            default: pass = w < 128;
            }
            cnt += pass;
        }
        uint64_t one = 1;
        TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_FILTER, 1, &one, 1, p, &so, &st) == 0, "filter %s: make a 1-subset", exprs[e]);
        printf("filter %-26s eligible %llu (brute force %llu)\n", exprs[e], (unsigned long long)st.eligible, (unsigned long long)cnt);
        TU_CHECK(st.eligible == cnt, "filter %s: eligible %llu == brute force %llu", exprs[e], (unsigned long long)st.eligible, (unsigned long long)cnt);
    }

    // first + filter: the first k passing samples in index order
    mim_meta_spec_init(&m);
    CHECK(mim_meta_parse_filter(&m, "width>=256,height<400") == 0);
    uint64_t fs[2] = { 300, 50 };
    TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_FIRST, 0, fs, 2, p, &so, NULL) == 0, "first + filter: make 300 and 50");
    for (int i = 0; i < 2; i++) {
        mim_subset* f = open_sub(p[i], ix);
        uint64_t k = 0, good = 1;
        for (uint64_t id = 0; id < N && k < fs[i]; id++) if (ok[id]) good &= mim_subset_ids(f)[k++] == id;
        TU_CHECK(mim_subset_count(f) == fs[i] && good, "first + filter %llu: the first passing samples in index order", (unsigned long long)fs[i]);
        mim_subset_close(f);
    }

    // ---- stratified by a width bucket: brute-force water-filled quotas, nested
    mim_meta_spec_init(&m);
    CHECK(mim_meta_parse_buckets(&m, "width", "128,256,512") == 0);
    int* grp = calloc(N, sizeof *grp);
    int* has = calloc(N, sizeof *has);
    uint64_t bc[4] = { 0 };
    for (int i = 0; i < N; i++) {
        if (T[i].kind) continue;
        has[i] = 1;
        grp[i] = T[i].width < 128 ? 0 : T[i].width < 256 ? 1 : T[i].width < 512 ? 2 : 3;
        bc[grp[i]]++;
    }
    printf("width buckets <128, [128,256), [256,512), >=512: %llu %llu %llu %llu\n", (unsigned long long)bc[0],
           (unsigned long long)bc[1], (unsigned long long)bc[2], (unsigned long long)bc[3]);
    uint64_t bs[3] = { 1200, 400, 2 };
    TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_STRATIFIED, 9, bs, 3, p, &so, &st) == 0, "stratified by width buckets: make 1200, 400, 2 (seed 9)");
    mim_subset_stats_format(&st, N, line, sizeof line); printf("stratified by width: %s\n", line);
    TU_CHECK(st.n_groups == 4, "stratified: %d groups (want 4)", st.n_groups);
    for (int g = 0; g < 4; g++) TU_CHECK(st.group_count[g] == bc[g], "stratified: bucket %d holds %llu (brute force %llu)", g, (unsigned long long)st.group_count[g], (unsigned long long)bc[g]);
    mim_subset* b[3];
    for (int i = 0; i < 3; i++) b[i] = open_sub(p[i], ix);
    TU_CHECK(contained(b[1], b[0]) && contained(b[2], b[1]), "stratified: 2 in 400 in 1200 (nested)");
    for (int i = 0; i < 3; i++) {
        // water-filling by brute force: raise a common level until the total reaches k
        uint64_t L = 0, tot = 0, quota[4];
        for (;;) {
            uint64_t t2 = 0;
            for (int g = 0; g < 4; g++) t2 += bc[g] < L + 1 ? bc[g] : L + 1;
            if (t2 > bs[i]) break;
            L++; tot = t2;
            if (L > N) break;
        }
        for (int g = 0; g < 4; g++) quota[g] = bc[g] < L ? bc[g] : L;
        for (int g = 0; g < 4 && tot < bs[i]; g++) if (bc[g] > L) { quota[g]++; tot++; }
        uint64_t got[4] = { 0 };
        for (uint64_t k = 0; k < bs[i]; k++) got[grp[mim_subset_ids(b[i])[k]]]++;
        printf("  %llu samples: per bucket %llu %llu %llu %llu (quota %llu %llu %llu %llu)\n", (unsigned long long)bs[i],
               (unsigned long long)got[0], (unsigned long long)got[1], (unsigned long long)got[2], (unsigned long long)got[3],
               (unsigned long long)quota[0], (unsigned long long)quota[1], (unsigned long long)quota[2], (unsigned long long)quota[3]);
        for (int g = 0; g < 4; g++) {
            TU_CHECK(got[g] == quota[g], "stratified %llu, bucket %d: %llu taken == water-filled quota %llu", (unsigned long long)bs[i], g, (unsigned long long)got[g], (unsigned long long)quota[g]);
            // within a bucket: the quota smallest ranks
            uint64_t* w2 = malloc(8 * (quota[g] + 1));
            brute(ix, 9, has, grp, g, quota[g], w2);
            uint64_t k2 = 0, same = 1;
            for (uint64_t k = 0; k < bs[i]; k++) {
                uint64_t id = mim_subset_ids(b[i])[k];
                if (grp[id] == g) same &= k2 < quota[g] && w2[k2++] == id;
            }
            TU_CHECK(same && k2 == quota[g], "stratified %llu, bucket %d: the quota smallest ranks of the bucket", (unsigned long long)bs[i], g);
            free(w2);
        }
    }
    for (int i = 0; i < 3; i++) mim_subset_close(b[i]);
    // misuse: buckets outside stratified, filter without conditions
    TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_RANDOM, 9, bs, 1, p, &so, NULL) == MIM_EARG, "buckets with strategy random refused");
    mim_meta_spec_init(&m);
    TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_FILTER, 9, bs, 1, p, &so, NULL) == MIM_EARG, "filter without conditions refused");
    // a shard cut short after indexing: its unreadable key.json are counted, not fatal
    struct stat sh;
    CHECK(stat(shards[NS - 1], &sh) == 0 && truncate(shards[NS - 1], sh.st_size / 2) == 0);
    CHECK(mim_meta_parse_filter(&m, "width>=256,height<400") == 0);
    TU_CHECK(mim_subset_make_ex(ix, MIM_SUBSET_FILTER, 42, sizes, 1, p, &so, &st) == 0, "after truncating a shard: the filter subset is still made");
    mim_subset_stats_format(&st, N, line, sizeof line); printf("after truncating a shard: %s\n", line);
    TU_CHECK(st.read_errors > PER / 3 && st.read_errors < PER && st.eligible < want_elig &&
           st.eligible + st.rejected + st.no_field + st.bad_json + st.no_json + st.read_errors == N, "after truncating a shard: %llu read errors counted, totals add up to %d", (unsigned long long)st.read_errors, N);
    mim_index_close(ix);

    // ---- a first shard without any key.json: the json table starts late, zero-filled
    {
        char plain[300], ip2[300];
        snprintf(plain, sizeof plain, "%s/plain.tar", dir);
        snprintf(ip2, sizeof ip2, "%s/mixed.idx", dir);
        FILE* f = fopen(plain, "wb");
        for (int i = 0; i < 5; i++) {
            char name[32]; snprintf(name, sizeof name, "p%d.jpg", i);
            CHECK(mim_tar_write_member(f, name, "\xff\xd8\xff", 3) == 0);
        }
        CHECK(mim_tar_write_end(f) == 0);
        fclose(f);
        char* sh2[2] = { plain, shards[0] };
        CHECK(mim_index_build(ip2, sh2, 2, &bo, &ist) == 0);
        mim_index* ix2; CHECK(mim_index_open(&ix2, ip2) == 0);
        mim_sample_reader r2; mim_sample_reader_init(&r2, ix2);
        uint8_t* b2 = NULL; size_t c2 = 0, n2;
        int good = 1;
        for (uint64_t i = 0; i < 5 + PER; i++) {
            int rc = mim_sample_reader_read_json(&r2, i, &b2, &c2, &n2);
            if (i < 5 || T[i - 5].kind == 1) good &= rc == MIM_ENOTFOUND;
            else good &= rc == 0 && n2 == T[i - 5].json_n && !memcmp(b2, T[i - 5].json, n2);
        }
        TU_CHECK(mim_index_count(ix2) == 5 + PER && mim_index_has_json(ix2) && good, "first shard without key.json: later key.json found, earlier ones absent");
        mim_sample_reader_free(&r2); free(b2);
        mim_index_close(ix2);
    }

    // ---- format 1 (no json table) still opens; metadata asks for a rebuild.
    // tests/ref/data_index_v1.idx was written by the format-1 code (commit
    // f090f48): 12 samples, labels 0..3, every record flagged as having json.
    mim_index* i1;
    const char* v1 = "tests/ref/data_index_v1.idx";
    int rc_v1 = mim_index_open(&i1, v1);
    TU_CHECK(rc_v1 == 0, "format-1 index %s opens (%d)", v1, rc_v1);
    if (rc_v1 == 0) {
        const mim_index_header* h = mim_index_header_get(i1);
        TU_CHECK(h->version == 1 && mim_index_count(i1) == 12 && !mim_index_has_json(i1), "format 1: version 1, 12 samples, no json table");
        TU_CHECK(h->stats.n_labels == 4 && h->stats.n_labelled == 12 && h->stats.bytes == 12345 && h->stats.seconds == 1.5 && h->stats.n_json == 0, "format 1: stats as written by the format-1 code");
        uint64_t off; uint32_t sz;
        TU_CHECK(!mim_index_json_get(i1, 3, &off, &sz), "format 1: no json entry");
        mim_meta_spec_init(&m); CHECK(mim_meta_parse_filter(&m, "width>=1") == 0);
        uint64_t four = 4;
        TU_CHECK(mim_subset_make_ex(i1, MIM_SUBSET_FILTER, 0, &four, 1, p, &so, NULL) == MIM_EARG, "format 1 + filter refused with MIM_EARG");
        printf("format 1 + filter refused: %s\n", mim_err_msg());
        TU_CHECK(strstr(mim_err_msg(), "rebuild") != NULL, "format 1 + filter: message asks to rebuild (%s)", mim_err_msg());
        TU_CHECK(mim_subset_make_ex(i1, MIM_SUBSET_STRATIFIED, 0, &four, 1, p, NULL, NULL) == 0, "format 1: stratified still works");   // plain strategies still work
        mim_subset* s1 = open_sub(p[0], i1);
        int per[4] = { 0 };
        for (int k = 0; k < 4; k++) per[mim_index_get(i1, mim_subset_ids(s1)[k])->label]++;
        TU_CHECK(per[0] == 1 && per[1] == 1 && per[2] == 1 && per[3] == 1, "format 1: stratified 4 over 4 labels, one each");
        mim_subset_close(s1);
        mim_index_close(i1);
    }
    // a format from the future is refused
    char v3[300]; snprintf(v3, sizeof v3, "%s/v3.idx", dir);
    {
        FILE* in = fopen(v1, "rb"); FILE* out = fopen(v3, "wb");
        CHECK(in && out);
        uint8_t b3[4096]; size_t k = fread(b3, 1, sizeof b3, in);
        uint32_t ver = MIM_INDEX_VERSION + 1;   // one past what this build writes
        memcpy(b3 + 8, &ver, 4);
        CHECK(fwrite(b3, 1, k, out) == k);
        fclose(in); fclose(out);
    }
    TU_CHECK(mim_index_open(&i1, v3) == MIM_EFORMAT, "format %d (from the future) refused with MIM_EFORMAT (%s)", MIM_INDEX_VERSION + 1, mim_err_msg());

    for (int i = 0; i < 4; i++) { free(p[i]); free(q[i]); free(o[i]); }
    for (int s2 = 0; s2 < NS; s2++) free(shards[s2]);
    free(ok); free(want); free(grp); free(has);
    char cmd[300]; snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return tu_summary("test_data_meta", 0, NULL);
}
