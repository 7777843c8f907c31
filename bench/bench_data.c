// bench_data.c: data pipeline numbers. Usage:
//   bench_data subset N          synthetic N-entry index -> nested random +
//                                stratified subsets; time and peak RSS
//   bench_data decode [THREADS]  decode + RandomResizedCrop + flip + normalise,
//                                img/s on CIFAR-10 (32->32) and on 500x375
//                                JPEGs (->64, ->224), DCT scaling on and off
//   bench_data meta N [THREADS]  img2dataset-like shards (10000 samples each:
//                                jpg 8 KB, txt, json 0.4 KB) -> index build
//                                MB/s, then a filter and a bucket-stratified
//                                subset: key.json read+parse rate
// Files go to /tmp (the 100M index is 3.2 GB).
#include "core/check.h"
#include "data/augment.h"
#include "data/index.h"
#include "data/meta.h"
#include "data/subset.h"
#include "data/tar.h"
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }
static double rss_mb(void) { struct rusage u; getrusage(RUSAGE_SELF, &u); return u.ru_maxrss / 1024.0; }

static int bench_subset(uint64_t N) {
    const char* p = "/tmp/mim_bench_100m.idx";
    char* shards[1] = { "/nonexistent.tar" };
    double t0 = now();
    mim_index_writer* w; CHECK(mim_index_writer_open(&w, p, shards, 1) == 0);
    mim_index_record* r = calloc(1 << 16, sizeof *r);
    for (uint64_t i = 0; i < N; i += 1 << 16) {
        size_t m = N - i < (1 << 16) ? (size_t)(N - i) : (1 << 16);
        for (size_t k = 0; k < m; k++) { uint64_t id = i + k; r[k].offset = id * 512; r[k].size = 4000; r[k].key_hash = mim_key_hash((char*)&id, 8); r[k].label = (int32_t)(id % 1000); }
        CHECK(mim_index_writer_add(w, r, m) == 0);
    }
    mim_index_stats st; memset(&st, 0, sizeof st); st.n_labels = 1000;
    CHECK(mim_index_writer_close(w, &st) == 0);
    free(r);
    printf("wrote %llu-entry index in %.1f s\n", (unsigned long long)N, now() - t0);
    mim_index* ix; CHECK(mim_index_open(&ix, p) == 0);
    uint64_t sizes[5] = { N / 200, N / 100, N / 20, N / 10, N / 2 };
    char* out[5];
    for (int i = 0; i < 5; i++) { out[i] = malloc(64); snprintf(out[i], 64, "/tmp/mim_bench_sub%d.sub", i); }
    for (int s = 0; s < 3; s += 2) {
        double rss0 = rss_mb();
        t0 = now();
        CHECK(mim_subset_make(ix, (mim_subset_strategy)s, 1, sizes, 5, out) == 0);
        printf("%s subsets of %llu..%llu from %llu: %.2f s, peak RSS %.0f MB (before: %.0f MB; the index is mapped, its pages count as RSS)\n",
               mim_subset_strategy_name((mim_subset_strategy)s), (unsigned long long)sizes[0], (unsigned long long)sizes[4],
               (unsigned long long)N, now() - t0, rss_mb(), rss0);
    }
    for (int i = 0; i < 5; i++) { unlink(out[i]); free(out[i]); }
    mim_index_close(ix);
    unlink(p);
    return 0;
}

static int bench_meta(uint64_t N, int threads) {
    const uint64_t per = 10000;
    size_t ns = (size_t)((N + per - 1) / per);
    char** shards = calloc(ns, sizeof *shards);
    uint8_t* img = calloc(8192, 1);
    img[0] = 0xFF; img[1] = 0xD8;
    double t0 = now();
    for (size_t s = 0; s < ns; s++) {
        shards[s] = malloc(64);
        snprintf(shards[s], 64, "/tmp/mim_bench_meta_%06zu.tar", s);
        FILE* f = fopen(shards[s], "wb");
        CHECK(f);
        for (uint64_t i = s * per; i < (s + 1) * per && i < N; i++) {
            char name[64], js[512];
            int w = 64 + (int)(i * 37 % 1500), h = 64 + (int)(i * 53 % 1100);
            int jn = snprintf(js, sizeof js,
                              "{\"url\": \"https://example.com/images/%llu.jpg\", \"caption\": \"a photo of something, number %llu\", "
                              "\"key\": \"%09llu\", \"status\": \"success\", \"error_message\": null, \"width\": %d, \"height\": %d, "
                              "\"original_width\": %d, \"original_height\": %d, \"exif\": \"{}\", \"sha256\": "
                              "\"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}",
                              (unsigned long long)i, (unsigned long long)i, (unsigned long long)i, w, h, 2 * w, 2 * h);
            snprintf(name, sizeof name, "%09llu.jpg", (unsigned long long)i); CHECK(mim_tar_write_member(f, name, img, 8192) == 0);
            snprintf(name, sizeof name, "%09llu.txt", (unsigned long long)i); CHECK(mim_tar_write_member(f, name, "a caption", 9) == 0);
            snprintf(name, sizeof name, "%09llu.json", (unsigned long long)i); CHECK(mim_tar_write_member(f, name, js, (uint64_t)jn) == 0);
        }
        CHECK(mim_tar_write_end(f) == 0);
        fclose(f);
    }
    printf("wrote %zu shards, %llu samples in %.1f s\n", ns, (unsigned long long)N, now() - t0);
    const char* ip = "/tmp/mim_bench_meta.idx";
    mim_index_build_opts bo = { threads, 0 };
    mim_index_stats st;
    CHECK(mim_index_build(ip, shards, ns, &bo, &st) == 0);
    printf("index: %.2f s, %.0f MB/s, %.0f samples/s (page cache warm)\n", st.seconds, st.bytes / 1e6 / st.seconds, st.n_samples / st.seconds);
    mim_index* ix; CHECK(mim_index_open(&ix, ip) == 0);
    mim_meta_spec m; mim_meta_spec_init(&m);
    CHECK(mim_meta_parse_filter(&m, "width>=256,height>=256") == 0);
    mim_subset_opts so = { &m, threads, 0 };
    mim_subset_stats ss;
    uint64_t sizes[2] = { N / 10, N / 2 };
    char* out[2] = { "/tmp/mim_bench_meta_a.sub", "/tmp/mim_bench_meta_b.sub" };
    double rss0 = rss_mb();
    t0 = now();
    CHECK(mim_subset_make_ex(ix, MIM_SUBSET_FILTER, 1, sizes, 2, out, &so, &ss) == 0);
    double t = now() - t0;
    printf("filter width>=256,height>=256 (%d threads): %.2f s total, key.json pass %.2f s = %.0f samples/s; %llu eligible; peak RSS %.0f MB (before %.0f)\n",
           threads, t, ss.meta_seconds, N / ss.meta_seconds, (unsigned long long)ss.eligible, rss_mb(), rss0);
    mim_meta_spec_init(&m);
    CHECK(mim_meta_parse_buckets(&m, "width", "128,256,512,1024") == 0);
    t0 = now();
    CHECK(mim_subset_make_ex(ix, MIM_SUBSET_STRATIFIED, 1, sizes, 2, out, &so, &ss) == 0);
    printf("stratified by width (5 buckets): %.2f s total, key.json pass %.2f s\n", now() - t0, ss.meta_seconds);
    mim_index_close(ix);
    unlink(ip); unlink(out[0]); unlink(out[1]);
    for (size_t s = 0; s < ns; s++) { unlink(shards[s]); free(shards[s]); }
    free(shards); free(img);
    return 0;
}

typedef struct { uint8_t* b; size_t n; } blob;

static double run(blob* v, int nv, int out, int dct, int threads, int reps) {
    double t0 = now();
    #pragma omp parallel num_threads(threads)
    {
        mim_aug_scratch* s; CHECK(mim_aug_scratch_init(&s, 0) == 0);
        mim_transform t; mim_transform_default(&t, 3, out, out, 1); t.dct_scale = dct;
        float* o = malloc(sizeof(float) * 3 * out * out);
        mim_rng r; mim_rng_seed(&r, (uint64_t)omp_get_thread_num());
        #pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < nv * reps; i++) CHECK(mim_transform_apply(&t, s, v[i % nv].b, v[i % nv].n, &r, o, NULL) == 0);
        free(o); mim_aug_scratch_free(s);
    }
    return nv * reps / (now() - t0);
}

static int bench_decode(int threads) {
    // (a) CIFAR-10 JPEGs
    mim_tar* t;
    if (mim_tar_open_file(&t, "/work/shared/data/cifar10/train-000000.tar") != 0) { printf("cifar absent\n"); return 0; }
    int nv = 2000; blob* v = calloc(nv, sizeof *v);
    mim_wds_sample* s = malloc(sizeof *s);
    uint8_t* big_src[64];
    for (int i = 0; i < nv && mim_wds_next(t, s) > 0; i++) { v[i].n = s->img_size; v[i].b = malloc(v[i].n); CHECK(mim_tar_pread(t, s->img_off, v[i].b, v[i].n) == 0); }
    mim_tar_close(t); free(s);
    printf("threads %d\n", threads);
    printf("  cifar 32x32 -> 32 (RRC+flip+norm): %.0f img/s\n", run(v, nv, 32, 1, threads, 5));
    // (b) 500x375 JPEGs q90 made by upscaling CIFAR images (bilinear)
    mim_decoder* d; mim_decoder_init(&d, 0);
    mim_image im; memset(&im, 0, sizeof im);
    blob bv[64];
    for (int i = 0; i < 64; i++) {
        CHECK(mim_decode(d, v[i].b, v[i].n, 3, &im) == 0);
        uint8_t* px = malloc(500 * 375 * 3);
        for (int y = 0; y < 375; y++) for (int x = 0; x < 500; x++) {
            double sx = x * 31.0 / 499, sy = y * 31.0 / 374; int x0 = (int)sx, y0 = (int)sy, x1 = x0 < 31 ? x0 + 1 : 31, y1 = y0 < 31 ? y0 + 1 : 31;
            double fx = sx - x0, fy = sy - y0;
            for (int c = 0; c < 3; c++) {
                double a = im.px[(y0 * 32 + x0) * 3 + c] * (1 - fx) + im.px[(y0 * 32 + x1) * 3 + c] * fx;
                double b2 = im.px[(y1 * 32 + x0) * 3 + c] * (1 - fx) + im.px[(y1 * 32 + x1) * 3 + c] * fx;
                px[(y * 500 + x) * 3 + c] = (uint8_t)(a * (1 - fy) + b2 * fy + 0.5);
            }
        }
        big_src[i] = px;
        CHECK(mim_jpeg_encode(px, 500, 375, 3, 90, &bv[i].b, &bv[i].n) == 0);
        FILE* f; char p[64]; snprintf(p, sizeof p, "/tmp/mim_bench_big_%02d.jpg", i);
        if ((f = fopen(p, "wb"))) { fwrite(bv[i].b, 1, bv[i].n, f); fclose(f); }
        free(px);
    }
    (void)big_src;
    printf("  500x375 -> 64:  %.0f img/s with DCT scaling, %.0f without\n", run(bv, 64, 64, 1, threads, 10), run(bv, 64, 64, 0, threads, 10));
    printf("  500x375 -> 224: %.0f img/s with DCT scaling, %.0f without\n", run(bv, 64, 224, 1, threads, 5), run(bv, 64, 224, 0, threads, 5));
    mim_image_free(&im); mim_decoder_free(d);
    return 0;
}

int main(int argc, char** argv) {
    if (argc >= 3 && !strcmp(argv[1], "subset")) return bench_subset(strtoull(argv[2], NULL, 10));
    if (argc >= 2 && !strcmp(argv[1], "decode")) return bench_decode(argc >= 3 ? atoi(argv[2]) : 1);
    if (argc >= 3 && !strcmp(argv[1], "meta")) return bench_meta(strtoull(argv[2], NULL, 10), argc >= 4 ? atoi(argv[3]) : 2);
    fprintf(stderr, "usage: bench_data subset N | decode [THREADS] | meta N [THREADS]\n");
    return 2;
}
