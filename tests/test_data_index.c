// test_data_index.c: tar reader (ustar, GNU long names, pax), shard lists,
// round trip pack -> index -> read back byte-identical with labels, and the
// corrupt-input suite read to the end with exact skip counts. Also indexes
// the CIFAR-10 shards under the shared data folder (testutil.h
// tu_shared_data; without them that part makes the test a skip, 77).
#include "testutil.h"
#include "data/augment.h"
#include "data/decode.h"
#include "data/index.h"
#include "data/loader.h"
#include "data/pack.h"
#include "data/tar.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static void make_jpeg(int w, int h, int seed, uint8_t** out, size_t* n) {
    uint8_t* px = malloc((size_t)w * h * 3);
    for (int i = 0; i < w * h * 3; i++) px[i] = (uint8_t)(i * 7 + seed * 31 + (i / 3 / w) * 3);
    CHECK(mim_jpeg_encode(px, w, h, 3, 85, out, n) == 0);
    free(px);
}

// a pax header member "path=..." followed by a regular member
static void write_pax(FILE* f, const char* path, const void* data, size_t n) {
    char rec[600];
    int body = (int)strlen(path) + 7;   // " path=" + path + "\n"
    int len = body + 1;                 // one digit guess
    while (snprintf(NULL, 0, "%d", len) + body != len) len++;
    int k = snprintf(rec, sizeof rec, "%d path=%s\n", len, path);
    CHECK(k == len);
    // write an 'x' member by hand-patching a regular header's type
    long at = ftell(f);
    CHECK(mim_tar_write_member(f, "PaxHeader", rec, (uint64_t)k) == 0);
    long end = ftell(f);
    uint8_t h[512];
    fseek(f, at, SEEK_SET); CHECK(fread(h, 1, 512, f) == 512);
    h[156] = 'x';
    memset(h + 148, ' ', 8);
    unsigned s = 0; for (int i = 0; i < 512; i++) s += h[i];
    snprintf((char*)h + 148, 8, "%06o", s); h[155] = ' ';
    fseek(f, at, SEEK_SET); fwrite(h, 1, 512, f); fseek(f, end, SEEK_SET);
    CHECK(mim_tar_write_member(f, "short-name-replaced-by-pax.jpg", data, n) == 0);
}

static void test_tar_names(void) {
    char p[512]; snprintf(p, sizeof p, "%s/names.tar", dir);
    FILE* f = fopen(p, "w+b");
    char longname[300];
    memset(longname, 'a', 250); strcpy(longname + 250, "/deep/sample0001.jpg");
    CHECK(mim_tar_write_member(f, longname, "JJJJ", 4) == 0);
    CHECK(mim_tar_write_member(f, "a/deep/sample0001.cls", "7\n", 2) == 0);
    write_pax(f, "pax/dir/sample0002.jpeg", "PPPPP", 5);
    CHECK(mim_tar_write_member(f, "pax/dir/sample0002.cls", "3", 1) == 0);
    CHECK(mim_tar_write_member(f, "noimage.txt", "caption", 7) == 0);
    CHECK(mim_tar_write_end(f) == 0);
    fclose(f);
    mim_tar* t; CHECK(mim_tar_open_file(&t, p) == 0);
    mim_tar_member m;
    TU_CHECK(mim_tar_next(t, &m) == 1 && !strcmp(m.name, longname) && m.size == 4, "tar: GNU long name (270 chars) read back, size 4");
    mim_tar_close(t);
    CHECK(mim_tar_open_file(&t, p) == 0);
    mim_wds_sample* s = malloc(sizeof *s);
    TU_CHECK(mim_wds_next(t, s) == 1, "wds: first sample group read");
    // the long key and the .cls with a different prefix are two groups
    TU_CHECK(s->img_format == MIM_IMG_JPEG && s->img_size == 4 && s->label == -1 && strlen(s->key) == 250 + 16, "wds: long-key JPEG sample: 4 bytes, no label, key of 266 chars");
    TU_CHECK(mim_wds_next(t, s) == 1 && s->img_format == MIM_IMG_NONE && s->label == 7, "wds: .cls with another prefix is its own group (no image, label 7)");
    TU_CHECK(mim_wds_next(t, s) == 1 && !strcmp(s->key, "pax/dir/sample0002") && s->img_size == 5 && s->label == 3, "wds: pax path names the sample: key pax/dir/sample0002, 5 bytes, label 3");
    TU_CHECK(mim_wds_next(t, s) == 1 && s->img_format == MIM_IMG_NONE && s->has_txt, "wds: caption-only member: a group without image, has_txt");
    TU_CHECK(mim_wds_next(t, s) == 0, "wds: end of archive");
    free(s);
    mim_tar_close(t);
    TU_CHECK(mim_key_hash("abc", 3) == mim_key_hash("abc", 3) && mim_key_hash("abc", 3) != mim_key_hash("abd", 3), "key hash: deterministic, differs for another key");
}

static void test_shard_lists(void) {
    mim_shard_list l = { 0 };
    TU_CHECK(mim_shards_expand(&l, "d/train-{000008..000011}.tar") == 0 && l.n == 4, "shard list: {000008..000011} expands to 4 paths");
    TU_CHECK(l.n == 4 && !strcmp(l.paths[0], "d/train-000008.tar") && !strcmp(l.paths[3], "d/train-000011.tar"), "shard list: zero-padded first and last paths");
    TU_CHECK(mim_shards_expand(&l, "x{1..2}-{0..1}") == 0 && l.n == 8 && !strcmp(l.paths[7], "x2-1"), "shard list: two ranges expand to 8 (cumulative), last x2-1");
    TU_CHECK(mim_shards_expand(&l, "bad-{5..1}.tar") < 0, "shard list: descending range refused");
    char p[512]; snprintf(p, sizeof p, "%s/list.txt", dir);
    FILE* f = fopen(p, "w"); fprintf(f, "# shards\n a.tar\n\nb.tar\r\n"); fclose(f);
    char spec[520]; snprintf(spec, sizeof spec, "@%s", p);
    TU_CHECK(mim_shards_expand(&l, spec) == 0 && l.n == 10 && !strcmp(l.paths[9], "b.tar"), "shard list: @file (comment, blanks, CRLF) appends 2, last b.tar");
    snprintf(spec, sizeof spec, "%s/*.txt", dir);
    TU_CHECK(mim_shards_expand(&l, spec) == 0 && l.n == 11, "shard list: glob *.txt matches the list file");
    snprintf(spec, sizeof spec, "%s/*.nothing", dir);
    TU_CHECK(mim_shards_expand(&l, spec) < 0, "shard list: glob matching nothing refused");
    mim_shards_free(&l);
}

// ImageFolder -> pack -> index -> every sample byte-identical with its label
static void test_round_trip(void) {
    char root[512], p[600];
    snprintf(root, sizeof root, "%s/folder", dir);
    mkdir(root, 0755);
    const char* classes[3] = { "cat", "dog", "zebra" };
    int count = 0;
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "%s/%s", root, classes[c]); mkdir(p, 0755);
        for (int i = 0; i < 5 + c; i++) {
            uint8_t* j; size_t n;
            make_jpeg(8 + i, 6 + c, c * 10 + i, &j, &n);
            snprintf(p, sizeof p, "%s/%s/img%02d.%s", root, classes[c], i, i % 2 ? "JPG" : "jpeg");
            FILE* f = fopen(p, "wb"); fwrite(j, 1, n, f); fclose(f); free(j);
            count++;
        }
        snprintf(p, sizeof p, "%s/%s/notes.md", root, classes[c]);
        FILE* f = fopen(p, "w"); fputs("x", f); fclose(f);
    }
    char prefix[600]; snprintf(prefix, sizeof prefix, "%s/packed", dir);
    mim_pack_stats ps;
    TU_CHECK(mim_pack_imagefolder(root, prefix, 4, 1, 1, &ps) == 0, "pack imagefolder: %s", mim_err_msg());
    TU_CHECK(ps.n_samples == (uint64_t)count && ps.n_classes == 3 && ps.n_shards == (uint64_t)(count + 3) / 4 && ps.n_skipped == 3, "pack stats: %llu samples (want %d), %llu classes, %llu shards, %llu skipped non-images (want 3)", (unsigned long long)ps.n_samples, count, (unsigned long long)ps.n_classes, (unsigned long long)ps.n_shards, (unsigned long long)ps.n_skipped);
    char spec[700]; snprintf(spec, sizeof spec, "%s-*.tar", prefix);
    mim_shard_list l = { 0 };
    CHECK(mim_shards_expand(&l, spec) == 0);
    char idxp[600]; snprintf(idxp, sizeof idxp, "%s/rt.idx", dir);
    mim_index_build_opts o = { 2, 0 };
    mim_index_stats st;
    TU_CHECK(mim_index_build(idxp, l.paths, l.n, &o, &st) == 0, "index the packed shards");
    TU_CHECK(st.n_samples == (uint64_t)count && st.n_labels == 3 && st.n_labelled == (uint64_t)count, "index stats: %llu samples, %lld labels, %llu labelled (want %d, 3, %d)", (unsigned long long)st.n_samples, (long long)st.n_labels, (unsigned long long)st.n_labelled, count, count);
    mim_shards_free(&l);
    mim_index* ix; CHECK(mim_index_open(&ix, idxp) == 0);
    TU_CHECK(mim_index_count(ix) == (uint64_t)count, "index count %llu == %d packed", (unsigned long long)mim_index_count(ix), count);
    mim_sample_reader rd; mim_sample_reader_init(&rd, ix);
    uint8_t* buf = NULL; size_t cap = 0, n;
    int seen = 0, labels_ok = 0;
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < 5 + c; i++) {
            snprintf(p, sizeof p, "%s/%s/img%02d.%s", root, classes[c], i, i % 2 ? "JPG" : "jpeg");
            FILE* f = fopen(p, "rb"); uint8_t want[8192]; size_t wn = fread(want, 1, sizeof want, f); fclose(f);
            // find it in the index (pack shuffled the order)
            int found = 0;
            for (uint64_t k = 0; k < mim_index_count(ix) && !found; k++) {
                const mim_index_record* r = mim_index_get(ix, k);
                if (r->size != wn) continue;
                CHECK(mim_sample_reader_read(&rd, k, &buf, &cap, &n) == 0);
                if (n == wn && !memcmp(buf, want, wn)) { found = 1; labels_ok += r->label == c; }
            }
            if (!found) printf("note: %s not found in the index\n", p);
            seen += found;
        }
    TU_CHECK(seen == count, "round trip: %d / %d packed files found byte-identical in the index", seen, count);
    TU_CHECK(labels_ok == count, "round trip: %d / %d found samples carry their folder's label", labels_ok, count);
    mim_sample_reader_free(&rd);
    free(buf);
    mim_index_close(ix);
}

// The corrupt-input suite: every kind of junk, one shard truncated, one
// missing. Index counts, then every sample decoded: exact per-kind counts.
static void test_corrupt_suite(void) {
    char p1[600], p2[600], p3[600], idxp[600];
    snprintf(p1, sizeof p1, "%s/bad-000000.tar", dir);
    snprintf(p2, sizeof p2, "%s/bad-000001.tar", dir);
    snprintf(p3, sizeof p3, "%s/bad-000002.tar", dir);   // never created: unreadable
    snprintf(idxp, sizeof idxp, "%s/bad.idx", dir);
    FILE* f = fopen(p1, "wb");
    uint8_t* j; size_t n;
    int good = 0, key = 0;
    char name[64];
#define MEMBER(ext, data, len) do { snprintf(name, sizeof name, "%06d.%s", key, ext); CHECK(mim_tar_write_member(f, name, data, len) == 0); } while (0)
    for (int i = 0; i < 6; i++) { make_jpeg(16, 12, i, &j, &n); MEMBER("jpg", j, n); MEMBER("cls", "1", 1); free(j); key++; good++; }
    MEMBER("txt", "no image here", 13); MEMBER("json", "{}", 2); key++;          // no image
    MEMBER("jpg", "", 0); MEMBER("cls", "2", 1); key++;                           // zero-byte image
    uint8_t junk[300]; for (int i = 0; i < 300; i++) junk[i] = (uint8_t)(i * 73 + 5);
    junk[0] = 0xFF; junk[1] = 0xD8; junk[2] = 0xFF;
    MEMBER("jpg", junk, sizeof junk); key++;                                      // corrupt jpeg (decode error)
    make_jpeg(64, 48, 9, &j, &n); MEMBER("jpg", j, n / 2); key++;                 // truncated jpeg (decode error)
    // absurd dimensions: patch SOF0 to 60000 x 60000 (too big)
    for (size_t k = 0; k + 8 < n; k++)
        if (j[k] == 0xFF && (j[k + 1] == 0xC0 || j[k + 1] == 0xC2)) { j[k + 5] = 0xEA; j[k + 6] = 0x60; j[k + 7] = 0xEA; j[k + 8] = 0x60; break; }
    MEMBER("jpg", j, n); key++;
    free(j);
    // WebP decodes when libwebp.so.7 is present at run time, else it is unsupported
    int webp = mim_webp_version() != 0, undecodable = 5;
    MEMBER("webp", "RIFF\x10\0\0\0WEBPVP8 ", 16); key++;                         // corrupt, or unsupported
    static const char tiny_webp[] =   // 3x2 lossless, made by PIL
        "\x52\x49\x46\x46\x42\x00\x00\x00\x57\x45\x42\x50\x56\x50\x38\x4c\x36\x00\x00\x00\x2f\x02\x40\x00\x00\x2f"
        "\x40\x90\x6d\xb3\x41\xdc\xeb\xfe\x32\xd3\x20\x93\xb6\xc9\x5f\xff\x76\x66\x6d\x64\xd2\x36\xad\x87\xfd\xf3"
        "\xaf\xb2\xf3\x1f\x68\xe4\x91\xac\xfb\x06\x04\x02\x94\xb1\xe2\x81\x6d\x22\xfa\x1f\xe3\x05";
    MEMBER("webp", tiny_webp, sizeof tiny_webp - 1); key++;                       // fine, or unsupported
    if (webp) good++; else undecodable++;
    MEMBER("png", "\x89PNG\r\n\x1a\n garbage", 16); key++;                       // corrupt png (decode error)
    uint8_t gray[20 * 10]; for (int i = 0; i < 200; i++) gray[i] = (uint8_t)i;
    CHECK(mim_jpeg_encode(gray, 20, 10, 1, 90, &j, &n) == 0); MEMBER("jpeg", j, n); free(j); key++; good++;  // grayscale: fine
    CHECK(mim_tar_write_end(f) == 0);
    fclose(f);
    // second shard: 3 good samples then a member cut in half (truncated tar)
    f = fopen(p2, "wb");
    for (int i = 0; i < 3; i++) { make_jpeg(10, 10, 50 + i, &j, &n); MEMBER("jpg", j, n); free(j); key++; good++; }
    make_jpeg(40, 40, 99, &j, &n); MEMBER("jpg", j, n); free(j);
    long L = ftell(f);
    fclose(f);
    CHECK(truncate(p2, L - 300) == 0);
    char* shards[3] = { p1, p2, p3 };
    mim_index_build_opts o = { 1, 0 };
    mim_index_stats st;
    TU_CHECK(mim_index_build(idxp, shards, 3, &o, &st) == 0, "corrupt suite: index build succeeds");
    printf("corrupt suite index: n=%llu no_image=%llu empty=%llu bad_shards=%llu unreadable=%llu\n",
           (unsigned long long)st.n_samples, (unsigned long long)st.n_no_image, (unsigned long long)st.n_empty,
           (unsigned long long)st.n_bad_shards, (unsigned long long)st.n_unreadable);
    TU_CHECK(st.n_no_image == 1 && st.n_empty == 1 && st.n_bad_shards == 1 && st.n_unreadable == 1, "corrupt suite index: 1 without image, 1 empty image, 1 truncated shard, 1 unreadable shard");
    TU_CHECK(st.n_samples == (uint64_t)(good + undecodable), "corrupt suite index: %llu samples == %d good + %d undecodable", (unsigned long long)st.n_samples, good, undecodable);   // indexed, then found undecodable
    // decode every sample: exact skip counts per kind
    mim_index* ix; CHECK(mim_index_open(&ix, idxp) == 0);
    mim_sample_reader rd; mim_sample_reader_init(&rd, ix);
    mim_aug_scratch* s; CHECK(mim_aug_scratch_init(&s, 0) == 0);
    mim_transform t; mim_transform_default(&t, 3, 8, 8, 1);
    float out[3 * 8 * 8];
    int ok = 0, corrupt = 0, big = 0, unsup = 0;
    uint8_t* buf = NULL; size_t cap = 0;
    mim_rng rng; mim_rng_seed(&rng, 3);
    for (uint64_t i = 0; i < mim_index_count(ix); i++) {
        CHECK(mim_sample_reader_read(&rd, i, &buf, &cap, &n) == 0);
        int rc = mim_transform_apply(&t, s, buf, n, &rng, out, NULL);
        if (rc == 0) ok++; else if (rc == MIM_ETOOBIG) big++; else if (rc == MIM_EUNSUPPORTED) unsup++; else corrupt++;
    }
    printf("corrupt suite decode (libwebp %s): ok=%d corrupt=%d too_big=%d unsupported=%d\n", webp ? "present" : "absent",
           ok, corrupt, big, unsup);
    TU_CHECK(ok == good && corrupt == 3 + webp && big == 1 && unsup == (webp ? 0 : 2), "corrupt suite decode: ok %d (want %d), corrupt %d (want %d), too big %d (want 1), unsupported %d (want %d)", ok, good, corrupt, 3 + webp, big, unsup, webp ? 0 : 2);
    mim_sample_reader_free(&rd); free(buf);
    mim_aug_scratch_free(s);
    mim_index_close(ix);
    // the loader reads the whole set to the end: every slot filled, bad ones replaced
    mim_loader_config c; mim_loader_config_default(&c);
    c.index_path = idxp; c.batch_size = 4; c.height = c.width = 8; c.n_threads = 2; c.shuffle = 0;
    mim_loader* ld;
    CHECK(mim_loader_open(&ld, &c) == 0);
    float* im = malloc(sizeof(float) * 4 * 3 * 64); int32_t lb[4];   // 16 samples: 4 whole batches
    for (uint64_t b = 0; b < mim_loader_batches_per_epoch(ld); b++) CHECK(mim_loader_next(ld, im, lb) == 0);
    mim_loader_counters lc = mim_loader_get_counters(ld);
    char line[300]; mim_loader_counters_format(&lc, line, sizeof line); printf("%s\n", line);
    TU_CHECK(lc.samples + lc.unfilled == (uint64_t)(good + undecodable) && lc.replaced + lc.unfilled == (uint64_t)undecodable, "loader to the end: every undecodable slot replaced or counted unfilled");
    TU_CHECK(lc.decode_errors >= 3 && lc.too_big >= 1 && lc.unsupported >= (webp ? 0u : 1u), "loader counters: >= 3 decode errors, >= 1 too big, unsupported counted without libwebp");
    mim_loader_close(ld);
    free(im);
    // corrupt index files are refused with a message
    f = fopen(idxp, "r+b"); fseek(f, 0, SEEK_END); long il = ftell(f); fclose(f);
    CHECK(truncate(idxp, il - 7) == 0);
    TU_CHECK(mim_index_open(&ix, idxp) == MIM_EFORMAT, "truncated index refused with MIM_EFORMAT: %s", mim_err_msg());
    printf("truncated index refused: %s\n", mim_err_msg());
}

// No sample at all (shards without image members, or unreadable): no index
// file is left behind, not even a temporary, and the stats say why.
static void test_zero_samples(void) {
    char p1[600], p2[600], idxp[600];
    snprintf(p1, sizeof p1, "%s/empty-000000.tar", dir);
    snprintf(p2, sizeof p2, "%s/empty-missing.tar", dir);
    snprintf(idxp, sizeof idxp, "%s/empty.idx", dir);
    FILE* f = fopen(p1, "wb");
    CHECK(mim_tar_write_member(f, "000000.txt", "only a caption", 14) == 0);
    CHECK(mim_tar_write_member(f, "000000.json", "{}", 2) == 0);
    CHECK(mim_tar_write_end(f) == 0);
    fclose(f);
    char* shards[2] = { p1, p2 };
    mim_index_build_opts o = { 1, 0 };
    mim_index_stats st;
    TU_CHECK(mim_index_build(idxp, shards, 2, &o, &st) == MIM_ENOTFOUND, "zero samples: index build returns MIM_ENOTFOUND (%s)", mim_err_msg());
    printf("zero samples: %s\n", mim_err_msg());
    TU_CHECK(st.n_samples == 0 && st.n_no_image == 1 && st.n_unreadable == 1, "zero samples stats: 0 samples, 1 without image, 1 unreadable shard");
    TU_CHECK(access(idxp, F_OK) != 0, "zero samples: no index file left behind");
    char cmd[700]; snprintf(cmd, sizeof cmd, "ls %s | grep -c empty.idx", dir);
    FILE* ls = popen(cmd, "r"); int cnt = -1;
    if (ls) { if (fscanf(ls, "%d", &cnt) != 1) cnt = -1; pclose(ls); }
    TU_CHECK(cnt == 0, "zero samples: no temporary index file left behind");   // no empty.idx.tmp* either
}

static void test_cifar(void) {
    mim_shard_list l = { 0 };
    char shard[4096], spec[4200];
    for (int i = 0; i < 10; i++) {   // the 10 train shards of SOURCE.md; any absent: this part is a skip
        char rel[64];
        snprintf(rel, sizeof rel, "cifar10/train-%06d.tar", i);
        if (!tu_shared_data(shard, sizeof shard, rel)) return;
    }
    *strrchr(shard, '/') = 0;
    snprintf(spec, sizeof spec, "%s/train-{000000..000009}.tar", shard);
    CHECK(mim_shards_expand(&l, spec) == 0);
    char idxp[600]; snprintf(idxp, sizeof idxp, "%s/cifar.idx", dir);
    mim_index_build_opts o = { 2, 0 };
    mim_index_stats st;
    TU_CHECK(mim_index_build(idxp, l.paths, l.n, &o, &st) == 0, "cifar10 train: index build succeeds");
    struct stat sb; stat(idxp, &sb);
    printf("cifar10 train: %llu samples, %lld classes, %.1f MB/s, index %.1f bytes/sample\n", (unsigned long long)st.n_samples,
           (long long)st.n_labels, st.bytes / 1e6 / st.seconds, (double)sb.st_size / (double)st.n_samples);
    TU_CHECK(st.n_samples == 50000 && st.n_labels == 10 && st.n_labelled == 50000 && st.n_bad_shards == 0, "cifar10 train: %llu samples, %lld labels, %llu labelled, %llu bad shards (want 50000, 10, 50000, 0)", (unsigned long long)st.n_samples, (long long)st.n_labels, (unsigned long long)st.n_labelled, (unsigned long long)st.n_bad_shards);
    mim_shards_free(&l);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/mim_test_data_index_%d", (int)getpid());
    CHECK(mkdir(dir, 0755) == 0);
    test_tar_names();
    test_shard_lists();
    test_round_trip();
    test_corrupt_suite();
    test_zero_samples();
    test_cifar();
    char cmd[300]; snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return tu_summary("test_data_index", 0, NULL);
}
