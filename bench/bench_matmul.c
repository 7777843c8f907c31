// bench_matmul.c: GFLOP/s of the linear-layer matmul on ViT shapes, the
// denominator of mimscale's MFU: OpenBLAS sgemm (the fp32 path), oneDNN fp32
// and oneDNN bf16 (where this CPU runs it natively: AMX-BF16 / AVX512-BF16),
// and mimscale's own bf16 linear (matmul_forward_bf16: the same oneDNN call
// plus converting the activations to bf16). Shapes are the encoder's four
// linears, out (M, N) = inp (M, K) @ W (N, K)^T with M = tokens x batch
// (tokens 50 = 1 + 196/4 kept patches of a 224px image at mask 0.75).
// Not a training benchmark (bench_mae is); built by `make bench`.
//   bench_matmul --model all --batch 64 --tokens 50 --threads 0 --seconds 0.5
//   bench_matmul --model vit_tiny --batch 4 --seconds 0.02     (a smoke run)
#include "core/check.h"
#include "core/rng.h"
#include "ops/ops.h"
#include "benchutil.h"
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#ifdef MIM_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

void openblas_set_num_threads(int);

typedef struct { const char* name; int M, K, N; } shape;

// Calls fn until `seconds` have passed (after one warm-up call); GFLOP/s.
static double gflops(void (*fn)(void*), void* arg, double flop, double seconds) {
    fn(arg);
    double t0 = omp_get_wtime(), t;
    long n = 0;
    do { fn(arg); n++; t = omp_get_wtime() - t0; } while (t < seconds);
    return flop * n / t / 1e9;
}

typedef struct {
    const shape* s;
    float *a, *w, *c;
    mim_bf16 *ab, *wb;
    mim_bf16_ctx* ctx;
#ifdef MIM_DNNL
    dnnl_primitive_t prim;
    dnnl_stream_t stream;
    dnnl_memory_t ma, mw, mc;
#endif
} job;

static void run_sgemm(void* p) {
    job* j = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->s->M, j->s->N, j->s->K, 1.0f, j->a, j->s->K, j->w,
                j->s->K, 0.0f, j->c, j->s->N);
}

static void run_mim_bf16(void* p) {
    job* j = p;
    matmul_forward_bf16(j->ctx, j->c, j->a, j->wb, NULL, j->s->M, j->s->K, j->s->N);
}

#ifdef MIM_DNNL
static void run_dnnl(void* p) {
    job* j = p;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, j->ma}, {DNNL_ARG_WEIGHTS, j->mw}, {DNNL_ARG_DST, j->mc}};
    CHECK(dnnl_primitive_execute(j->prim, j->stream, 3, args) == dnnl_success);
    CHECK(dnnl_stream_wait(j->stream) == dnnl_success);
}

// A oneDNN matmul in dt on the forward's layouts (W stored (N, K));
// returns 0 with its implementation name, or -1 when oneDNN has none.
static int dnnl_setup(job* j, dnnl_engine_t eng, dnnl_data_type_t dt, const char** impl) {
    const shape* s = j->s;
    dnnl_memory_desc_t a, w, c;
    dnnl_dims_t da = {s->M, s->K}, sa = {s->K, 1}, dw = {s->K, s->N}, sw = {1, s->K}, dc = {s->M, s->N}, sc = {s->N, 1};
    CHECK(dnnl_memory_desc_init_by_strides(&a, 2, da, dt, sa) == dnnl_success);
    CHECK(dnnl_memory_desc_init_by_strides(&w, 2, dw, dt, sw) == dnnl_success);
    CHECK(dnnl_memory_desc_init_by_strides(&c, 2, dc, dnnl_f32, sc) == dnnl_success);
    dnnl_matmul_desc_t d;
    CHECK(dnnl_matmul_desc_init(&d, &a, &w, NULL, &c) == dnnl_success);
    dnnl_primitive_desc_t pd;
    if (dnnl_primitive_desc_create(&pd, &d, NULL, eng, NULL) != dnnl_success) return -1;
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, impl);
    CHECK(dnnl_primitive_create(&j->prim, pd) == dnnl_success);
    int bf = dt == dnnl_bf16;
    CHECK(dnnl_memory_create(&j->ma, &a, eng, bf ? (void*)j->ab : (void*)j->a) == dnnl_success);
    CHECK(dnnl_memory_create(&j->mw, &w, eng, bf ? (void*)j->wb : (void*)j->w) == dnnl_success);
    CHECK(dnnl_memory_create(&j->mc, &c, eng, j->c) == dnnl_success);
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

static void dnnl_teardown(job* j) {
    dnnl_memory_destroy(j->ma); dnnl_memory_destroy(j->mw); dnnl_memory_destroy(j->mc);
    dnnl_primitive_destroy(j->prim);
}
#endif

int main(int argc, char** argv) {
    const char* model = "all";
    int batch = 64, tokens = 50, threads = 0;
    double seconds = 0.5;
    const bench_flag fl[] = {{"model", .s = &model}, {"batch", .i = &batch}, {"tokens", .i = &tokens},
                             {"threads", .i = &threads}, {"seconds", .d = &seconds}};
    if (bench_flags_parse(argc, argv, fl, (int)(sizeof fl / sizeof fl[0]))) return 2;
    if (threads > 0) { omp_set_num_threads(threads); openblas_set_num_threads(threads); }
    int M = batch * tokens;
    struct { const char* name; int D; } models[] = {{"vit_tiny", 192}, {"vit_small", 384}, {"vit_base", 768}};
    shape sh[12];
    int ns = 0;
    static char names[12][32];
    for (int m = 0; m < 3; m++) {
        if (strcmp(model, "all") && strcmp(model, models[m].name)) continue;
        int D = models[m].D;
        const char* lin[4] = {"qkv", "proj", "fc1", "fc2"};
        int KN[4][2] = {{D, 3 * D}, {D, D}, {D, 4 * D}, {4 * D, D}};
        for (int l = 0; l < 4; l++) {
            snprintf(names[ns], sizeof names[ns], "%s.%s", models[m].name, lin[l]);
            sh[ns] = (shape){names[ns], M, KN[l][0], KN[l][1]};
            ns++;
        }
    }
    if (!ns) { fprintf(stderr, "unknown --model %s (vit_tiny, vit_small, vit_base, all)\n", model); return 2; }

    const char* isa = mim_cpu_bf16_isa();
    char why[256];
    int native = mim_onednn_bf16_native(why, sizeof why);
    printf("bench_matmul: M = %d tokens x %d batch, %d threads, cpu bf16: %s, oneDNN %s; bf16: %s\n", tokens, batch,
           omp_get_max_threads(), isa ? isa : "none", mim_onednn_built() ? "built in" : "not built", why);
    size_t mk = 0, kn = 0, mn = 0;
    for (int i = 0; i < ns; i++) {
        size_t a = (size_t)sh[i].M * sh[i].K, b = (size_t)sh[i].K * sh[i].N, c = (size_t)sh[i].M * sh[i].N;
        if (a > mk) mk = a;
        if (b > kn) kn = b;
        if (c > mn) mn = c;
    }
    job j = {0};
    j.a = malloc(mk * 4); j.w = malloc(kn * 4); j.c = malloc(mn * 4);
    j.ab = malloc(mk * 2); j.wb = malloc(kn * 2);
    CHECK(j.a && j.w && j.c && j.ab && j.wb);
    mim_rng r;
    mim_rng_seed(&r, 1);
    for (size_t i = 0; i < mk; i++) j.a[i] = mim_rng_normal(&r);
    for (size_t i = 0; i < kn; i++) j.w[i] = 0.05f * mim_rng_normal(&r);
    bf16_from_f32(j.ab, j.a, mk);
    bf16_from_f32(j.wb, j.w, kn);
    if (native) CHECK(mim_bf16_ctx_init(&j.ctx, MIM_BF16_ONEDNN, mk, mn, kn) == 0);
#ifdef MIM_DNNL
    dnnl_engine_t eng;
    CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0) == dnnl_success);
    CHECK(dnnl_stream_create(&j.stream, eng, dnnl_stream_default_flags) == dnnl_success);
#endif
    printf("%-16s %6s %5s %5s | %14s | %14s | %14s | %14s | GFLOP/s\n", "linear", "M", "K", "N", "OpenBLAS sgemm",
           "oneDNN fp32", "oneDNN bf16", "mimscale bf16");
    double sum_s = 0, sum_b = 0;
    for (int i = 0; i < ns; i++) {
        j.s = &sh[i];
        double flop = 2.0 * sh[i].M * sh[i].K * sh[i].N;
        double gs = gflops(run_sgemm, &j, flop, seconds), gf = 0, gb = 0, gm = 0;
        const char *impl_f = "-", *impl_b = "-";
#ifdef MIM_DNNL
        if (dnnl_setup(&j, eng, dnnl_f32, &impl_f) == 0) { gf = gflops(run_dnnl, &j, flop, seconds); dnnl_teardown(&j); }
        if (native && dnnl_setup(&j, eng, dnnl_bf16, &impl_b) == 0) { gb = gflops(run_dnnl, &j, flop, seconds); dnnl_teardown(&j); }
#endif
        if (native) gm = gflops(run_mim_bf16, &j, flop, seconds);
        char cf[32] = "-", cb[32] = "-", cm[32] = "-";
        if (gf) snprintf(cf, sizeof cf, "%.1f", gf);
        if (gb) snprintf(cb, sizeof cb, "%.1f (%.2fx)", gb, gb / gs);
        if (gm) snprintf(cm, sizeof cm, "%.1f (%.2fx)", gm, gm / gs);
        printf("%-16s %6d %5d %5d | %14.1f | %14s | %14s | %14s | %s, %s\n", sh[i].name, sh[i].M, sh[i].K, sh[i].N, gs,
               cf, cb, cm, impl_f, impl_b);
        fflush(stdout);
        sum_s += flop / gs; sum_b += gm ? flop / gm : 0;
    }
    if (native) printf("all shapes: mimscale bf16 linear / sgemm time ratio %.2fx faster\n", sum_s / sum_b);
#ifdef MIM_DNNL
    dnnl_stream_destroy(j.stream);
    dnnl_engine_destroy(eng);
#endif
    mim_bf16_ctx_free(j.ctx);
    free(j.a); free(j.w); free(j.c); free(j.ab); free(j.wb);
    return 0;
}
