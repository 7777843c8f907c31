// matmul_bf16.c: the bf16 linear layer (see ops.h, "bf16 linear"): bf16
// inputs, fp32 accumulation, fp32 outputs, on oneDNN where the CPU has
// native bf16 (AMX-BF16, AVX512-BF16) or emulated (round to bf16, then fp32
// sgemm) elsewhere; the --precision choice; the plain-loop references.
// Not here: the bf16 copy of the weights (the model's shadow, model/mae.c)
// and attention's matmuls (they stay fp32).
#include "ops/ops.h"
#include "core/check.h"
#include "core/cpu.h"
#include <stdio.h>
#include <string.h>
#ifdef MIM_DNNL
#include <oneapi/dnnl/dnnl.h>
#endif

// ---------------------------------------------------------------- conversion

void bf16_from_f32(mim_bf16* out, const float* inp, size_t n) {
    #pragma omp parallel for simd if (n >= 65536) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = mim_f32_to_bf16(inp[i]);
}

void bf16_to_f32(float* out, const mim_bf16* inp, size_t n) {
    #pragma omp parallel for simd if (n >= 65536) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = mim_bf16_to_f32(inp[i]);
}

void bf16_round_f32(float* out, const float* inp, size_t n) {
    #pragma omp parallel for simd if (n >= 65536) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = mim_bf16_to_f32(mim_f32_to_bf16(inp[i]));
}

static inline float rb(float x) { return mim_bf16_to_f32(mim_f32_to_bf16(x)); }

// ---------------------------------------------------------------- references

void matmul_forward_bf16_ref(float* out, const float* inp, const float* weight, const float* bias,
                             int N, int C, int OC) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double acc = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++) acc += (double)rb(inp[(size_t)n * C + c]) * rb(weight[(size_t)o * C + c]);
            out[(size_t)n * OC + o] = (float)acc;
        }
}

void matmul_backward_bf16_ref(float* dinp, float* dweight, float* dbias,
                              const float* dout, const float* inp, const float* weight,
                              int N, int C, int OC) {
    if (dinp)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) {
                double acc = 0.0;
                for (int o = 0; o < OC; o++) acc += (double)rb(dout[(size_t)n * OC + o]) * rb(weight[(size_t)o * C + c]);
                dinp[(size_t)n * C + c] += (float)acc;
            }
    if (dweight)
        for (int o = 0; o < OC; o++)
            for (int c = 0; c < C; c++) {
                double acc = 0.0;
                for (int n = 0; n < N; n++) acc += (double)rb(dout[(size_t)n * OC + o]) * rb(inp[(size_t)n * C + c]);
                dweight[(size_t)o * C + c] += (float)acc;
            }
    if (dbias)
        for (int o = 0; o < OC; o++) {
            double acc = 0.0;
            for (int n = 0; n < N; n++) acc += dout[(size_t)n * OC + o];
            dbias[o] += (float)acc;
        }
}

// ---------------------------------------------------------------- context

#define CACHE_CAP 96   // primitives per context: the MAE has ~30 (shape x pass)

#ifdef MIM_DNNL
typedef struct {   // one oneDNN matmul: C (M, N) [+]= A (M, K) @ B (K, N)
    int M, N, K, ta, tb, acc;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c, bias, pad;   // bias: acc == 2 only
    size_t pad_bytes;
} dnnl_entry;
#endif

struct mim_bf16_ctx {
    mim_bf16_backend backend;
    size_t cap_inp, cap_dout, cap_w;   // elements
    float* mem;                        // one allocation holding the three below
    float* sa;     // (cap_inp): bf16(inp) as fp32 (emulated) or bf16 (oneDNN)
    float* sd;     // (cap_dout): bf16(dout), likewise
    float* sw;     // (cap_w): weights expanded to fp32 (emulated, oneDNN-fp32 check)
    long created, reused;
#ifdef MIM_DNNL
    dnnl_data_type_t dt;  // of A and B: bf16, or f32 holding bf16 values (MIM_BF16_ONEDNN_F32)
    dnnl_engine_t eng;
    dnnl_stream_t stream;
    dnnl_entry cache[CACHE_CAP];
    int ncache, evict;
    void* pad;            // user scratchpad shared by all primitives (run one at a time)
    size_t pad_bytes;
#endif
};

#ifdef MIM_DNNL
// Memory descriptor of a (rows, cols) matrix stored row-major, or stored as
// its transpose (cols, rows) row-major when t.
static void md2(dnnl_memory_desc_t* md, int rows, int cols, int t, dnnl_data_type_t dt) {
    dnnl_dims_t dims = {rows, cols};
    dnnl_dims_t st = {t ? 1 : cols, t ? rows : 1};
    CHECK(dnnl_memory_desc_init_by_strides(md, 2, dims, dt, st) == dnnl_success);
}

// The primitive descriptor for bf16 A, B -> fp32 C: acc 0 overwrites C, 1
// adds to it (sum post-op), 2 adds an fp32 bias row (1, N) in the epilogue.
// Returns NULL when oneDNN has no implementation.
static dnnl_primitive_desc_t make_pd(dnnl_engine_t eng, dnnl_data_type_t dt, int M, int N, int K, int ta, int tb,
                                     int acc) {
    dnnl_memory_desc_t a, b, c;
    md2(&a, M, K, ta, dt);
    md2(&b, K, N, tb, dt);
    md2(&c, M, N, 0, dnnl_f32);
    dnnl_memory_desc_t bias;
    md2(&bias, 1, N, 0, dnnl_f32);
    dnnl_matmul_desc_t d;
    if (dnnl_matmul_desc_init(&d, &a, &b, acc == 2 ? &bias : NULL, &c) != dnnl_success) return NULL;
    dnnl_primitive_attr_t attr;
    CHECK(dnnl_primitive_attr_create(&attr) == dnnl_success);
    CHECK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user) == dnnl_success);
    if (acc == 1) {
        dnnl_post_ops_t po;
        CHECK(dnnl_post_ops_create(&po) == dnnl_success);
        CHECK(dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success);
        CHECK(dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success);
        dnnl_post_ops_destroy(po);
    }
    dnnl_primitive_desc_t pd = NULL;
    if (dnnl_primitive_desc_create(&pd, &d, attr, eng, NULL) != dnnl_success) pd = NULL;
    dnnl_primitive_attr_destroy(attr);
    return pd;
}

static const char* impl_name(dnnl_primitive_desc_t pd) {
    const char* s = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &s);
    return s;
}

static const char* isa_name(dnnl_cpu_isa_t i) {
    switch (i) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    default: return "older than avx2";
    }
}

static void entry_free(dnnl_entry* e) {
    dnnl_memory_destroy(e->a); dnnl_memory_destroy(e->b); dnnl_memory_destroy(e->c);
    if (e->pad) dnnl_memory_destroy(e->pad);
    if (e->bias) dnnl_memory_destroy(e->bias);
    dnnl_primitive_destroy(e->prim);
    memset(e, 0, sizeof *e);
}

// The cached primitive for this shape, created on first use (the first
// training step), the oldest one evicted when the cache is full.
static dnnl_entry* lookup(mim_bf16_ctx* c, int M, int N, int K, int ta, int tb, int acc) {
    for (int i = 0; i < c->ncache; i++) {
        dnnl_entry* e = &c->cache[i];
        if (e->M == M && e->N == N && e->K == K && e->ta == ta && e->tb == tb && e->acc == acc) {
            c->reused++;
            return e;
        }
    }
    dnnl_entry* e;
    if (c->ncache < CACHE_CAP) e = &c->cache[c->ncache++];
    else { e = &c->cache[c->evict]; c->evict = (c->evict + 1) % CACHE_CAP; entry_free(e); }
    dnnl_primitive_desc_t pd = make_pd(c->eng, c->dt, M, N, K, ta, tb, acc);
    CHECK(pd);   // the probe at init succeeded; a shape it cannot serve is a bug to look at
    *e = (dnnl_entry){.M = M, .N = N, .K = K, .ta = ta, .tb = tb, .acc = acc};
    CHECK(dnnl_primitive_create(&e->prim, pd) == dnnl_success);
    const dnnl_memory_desc_t* pmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    e->pad_bytes = pmd ? dnnl_memory_desc_get_size(pmd) : 0;
    dnnl_memory_desc_t a, b, cc;
    md2(&a, M, K, ta, c->dt);
    md2(&b, K, N, tb, c->dt);
    md2(&cc, M, N, 0, dnnl_f32);
    CHECK(dnnl_memory_create(&e->a, &a, c->eng, DNNL_MEMORY_NONE) == dnnl_success);
    CHECK(dnnl_memory_create(&e->b, &b, c->eng, DNNL_MEMORY_NONE) == dnnl_success);
    CHECK(dnnl_memory_create(&e->c, &cc, c->eng, DNNL_MEMORY_NONE) == dnnl_success);
    if (acc == 2) {
        dnnl_memory_desc_t bmd;
        md2(&bmd, 1, N, 0, dnnl_f32);
        CHECK(dnnl_memory_create(&e->bias, &bmd, c->eng, DNNL_MEMORY_NONE) == dnnl_success);
    }
    if (e->pad_bytes) CHECK(dnnl_memory_create(&e->pad, pmd, c->eng, DNNL_MEMORY_NONE) == dnnl_success);
    dnnl_primitive_desc_destroy(pd);
    if (e->pad_bytes > c->pad_bytes) {   // grows in the first step only
        free(c->pad);
        c->pad_bytes = (e->pad_bytes + 4095) & ~(size_t)4095;
        c->pad = aligned_alloc(4096, c->pad_bytes);
        CHECK(c->pad);
    }
    c->created++;
    return e;
}

// C (M, N) [+]= A (M, K) @ B (K, N); A stored transposed when ta, B when tb.
// acc: 0 C =, 1 C +=, 2 C = ... + bias (N) (bias used only then).
static void dnnl_mm(mim_bf16_ctx* c, int M, int N, int K, const void* A, int ta,
                    const void* B, int tb, float* C, int acc, const float* bias) {
    dnnl_entry* e = lookup(c, M, N, K, ta, tb, acc);
    CHECK(dnnl_memory_set_data_handle(e->a, (void*)A) == dnnl_success);
    CHECK(dnnl_memory_set_data_handle(e->b, (void*)B) == dnnl_success);
    CHECK(dnnl_memory_set_data_handle(e->c, C) == dnnl_success);
    dnnl_exec_arg_t args[5] = {{DNNL_ARG_SRC, e->a}, {DNNL_ARG_WEIGHTS, e->b}, {DNNL_ARG_DST, e->c}};
    int nargs = 3;
    if (acc == 2) {
        CHECK(dnnl_memory_set_data_handle(e->bias, (void*)bias) == dnnl_success);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, e->bias};
    }
    if (e->pad) {
        CHECK(dnnl_memory_set_data_handle(e->pad, c->pad) == dnnl_success);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, e->pad};
    }
    CHECK(dnnl_primitive_execute(e->prim, c->stream, nargs, args) == dnnl_success);
    CHECK(dnnl_stream_wait(c->stream) == dnnl_success);
}
#endif

int mim_onednn_bf16_native(char* why, size_t n) {
    static int probed = 0, native = 0;
    static char reason[256];
    if (!probed) {
#ifdef MIM_DNNL
        dnnl_engine_t eng;
        if (dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) {
            snprintf(reason, sizeof reason, "oneDNN could not create a CPU engine");
        } else {
            // the three layouts the linear uses, on vit_small's fc1 with 1024
            // tokens: forward (W transposed, bias), dinp, dweight (dout transposed)
            static const int shp[3][6] = {{1024, 1536, 384, 0, 1, 2}, {1024, 384, 1536, 0, 0, 0},
                                          {1536, 384, 1024, 1, 0, 1}};
            static const char* pass[3] = {"forward", "dinp", "dweight"};
            char names[3][48];
            native = 1;
            for (int i = 0; i < 3 && native; i++) {
                dnnl_primitive_desc_t pd = make_pd(eng, dnnl_bf16, shp[i][0], shp[i][1], shp[i][2], shp[i][3], shp[i][4],
                                                   shp[i][5]);
                if (!pd) {
                    native = 0;
                    snprintf(reason, sizeof reason, "oneDNN has no bf16 matmul on this CPU (its ISA: %s)",
                             isa_name(dnnl_get_effective_cpu_isa()));
                    break;
                }
                snprintf(names[i], sizeof names[i], "%s", impl_name(pd));
                dnnl_primitive_desc_destroy(pd);
                if (!strncmp(names[i], "ref", 3)) {   // plain C loops: far slower than sgemm
                    native = 0;
                    snprintf(reason, sizeof reason, "oneDNN has only its reference bf16 matmul (%s) for the %s pass",
                             names[i], pass[i]);
                }
            }
            if (native) snprintf(reason, sizeof reason, "%s / %s / %s", names[0], names[1], names[2]);
            dnnl_engine_destroy(eng);
        }
#else
        snprintf(reason, sizeof reason, "built without oneDNN (install libdnnl-dev and rebuild)");
#endif
        probed = 1;
    }
    if (why && n) snprintf(why, n, "%s", reason);
    return native;
}

int mim_bf16_ctx_init(mim_bf16_ctx** out, mim_bf16_backend backend,
                      size_t max_inp, size_t max_dout, size_t max_weight) {
    *out = NULL;
    char why[256];
    int native = mim_onednn_bf16_native(why, sizeof why);
    if (backend == MIM_BF16_AUTO) backend = native ? MIM_BF16_ONEDNN : MIM_BF16_EMULATED;
    if (backend == MIM_BF16_ONEDNN && !native)
        return mim_err(MIM_EARG, "bf16 on oneDNN is not available: %s", why);
    if (backend == MIM_BF16_ONEDNN_F32 && !mim_onednn_built())
        return mim_err(MIM_EARG, "built without oneDNN");
    mim_bf16_ctx* c = mim_calloc(1, sizeof *c);
    if (!c) return MIM_ENOMEM;
    c->backend = backend;
    c->cap_inp = max_inp; c->cap_dout = max_dout;
    c->cap_w = backend == MIM_BF16_ONEDNN ? 0 : max_weight;
    size_t a = (max_inp + 15) & ~(size_t)15, d = (max_dout + 15) & ~(size_t)15, total;
    if (__builtin_add_overflow(a, d, &total) || __builtin_add_overflow(total, c->cap_w, &total) ||
        !mim_mul_ok(total, sizeof(float), &total)) {
        free(c);
        return mim_err(MIM_ENOMEM, "bf16 scratch size overflows");
    }
    c->mem = mim_malloc(total ? total : 1);
    if (!c->mem) { free(c); return MIM_ENOMEM; }
    c->sa = c->mem; c->sd = c->mem + a; c->sw = c->mem + a + d;
#ifdef MIM_DNNL
    if (backend != MIM_BF16_EMULATED) {
        c->dt = backend == MIM_BF16_ONEDNN ? dnnl_bf16 : dnnl_f32;
        if (dnnl_engine_create(&c->eng, dnnl_cpu, 0) != dnnl_success ||
            dnnl_stream_create(&c->stream, c->eng, dnnl_stream_default_flags) != dnnl_success) {
            mim_bf16_ctx_free(c);
            return mim_err(MIM_EARG, "oneDNN could not create a CPU engine and stream");
        }
    }
#endif
    *out = c;
    return 0;
}

void mim_bf16_ctx_free(mim_bf16_ctx* c) {
    if (!c) return;
#ifdef MIM_DNNL
    for (int i = 0; i < c->ncache; i++) entry_free(&c->cache[i]);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->eng) dnnl_engine_destroy(c->eng);
    free(c->pad);
#endif
    free(c->mem);
    free(c);
}

mim_bf16_backend mim_bf16_ctx_backend(const mim_bf16_ctx* c) { return c->backend; }

void mim_bf16_ctx_stats(const mim_bf16_ctx* c, long* created, long* reused) {
    *created = c->created;
    *reused = c->reused;
}

// ---------------------------------------------------------------- the linear

void matmul_forward_bf16(mim_bf16_ctx* c, float* out, const float* inp, const mim_bf16* weight,
                         const float* bias, int N, int C, int OC) {
    size_t nc = (size_t)N * C;
    CHECK(nc <= c->cap_inp);
#ifdef MIM_DNNL
    if (c->backend != MIM_BF16_EMULATED) {
        const void *a = c->sa, *w = weight;
        if (c->backend == MIM_BF16_ONEDNN) {
            bf16_from_f32((mim_bf16*)c->sa, inp, nc);
        } else {   // the fp32 check: bf16 values in fp32 storage
            CHECK((size_t)OC * C <= c->cap_w);
            bf16_round_f32(c->sa, inp, nc);
            bf16_to_f32(c->sw, weight, (size_t)OC * C);
            w = c->sw;
        }
        // out (N, OC) = a (N, C) @ weight^T [+ bias in the epilogue]; weight (OC, C) is (C, OC) transposed
        dnnl_mm(c, N, OC, C, a, 0, w, 1, out, bias ? 2 : 0, bias);
        return;
    }
#endif
    CHECK((size_t)OC * C <= c->cap_w);
    bf16_round_f32(c->sa, inp, nc);
    bf16_to_f32(c->sw, weight, (size_t)OC * C);
    matmul_forward(out, c->sa, c->sw, bias, N, C, OC);
}

// acc 1: dinp accumulates, 0: dinp is overwritten.
static void backward_bf16(mim_bf16_ctx* c, float* dinp, float* dweight, float* dbias, const float* dout,
                          const float* inp, const mim_bf16* weight, int N, int C, int OC, int acc) {
    size_t nc = (size_t)N * C, no = (size_t)N * OC;
    if (dbias) matmul_backward(NULL, NULL, dbias, dout, inp, NULL, N, C, OC);   // fp32 column sums
    if (!dinp && !dweight) return;
    CHECK(no <= c->cap_dout && (!dweight || nc <= c->cap_inp));
#ifdef MIM_DNNL
    if (c->backend != MIM_BF16_EMULATED) {
        int f32 = c->backend == MIM_BF16_ONEDNN_F32;
        const void* w = weight;
        if (f32) bf16_round_f32(c->sd, dout, no); else bf16_from_f32((mim_bf16*)c->sd, dout, no);
        if (dinp) {    // dinp (N, C) (+)= bf16(dout) (N, OC) @ weight (OC, C)
            if (f32) {
                CHECK((size_t)OC * C <= c->cap_w);
                bf16_to_f32(c->sw, weight, (size_t)OC * C);
                w = c->sw;
            }
            dnnl_mm(c, N, C, OC, c->sd, 0, w, 0, dinp, acc, NULL);
        }
        if (dweight) { // dweight (OC, C) += bf16(dout)^T (OC, N) @ bf16(inp) (N, C)
            if (f32) bf16_round_f32(c->sa, inp, nc); else bf16_from_f32((mim_bf16*)c->sa, inp, nc);
            dnnl_mm(c, OC, C, N, c->sd, 1, c->sa, 0, dweight, 1, NULL);
        }
        return;
    }
#endif
    bf16_round_f32(c->sd, dout, no);
    if (dinp) {
        CHECK((size_t)OC * C <= c->cap_w);
        bf16_to_f32(c->sw, weight, (size_t)OC * C);
    }
    if (dweight) bf16_round_f32(c->sa, inp, nc);
    (acc ? matmul_backward : matmul_backward_set)(dinp, dweight, NULL, c->sd, c->sa, c->sw, N, C, OC);
}

void matmul_backward_bf16(mim_bf16_ctx* c, float* dinp, float* dweight, float* dbias,
                          const float* dout, const float* inp, const mim_bf16* weight,
                          int N, int C, int OC) {
    backward_bf16(c, dinp, dweight, dbias, dout, inp, weight, N, C, OC, 1);
}

void matmul_backward_bf16_set(mim_bf16_ctx* c, float* dinp, float* dweight, float* dbias,
                              const float* dout, const float* inp, const mim_bf16* weight,
                              int N, int C, int OC) {
    backward_bf16(c, dinp, dweight, dbias, dout, inp, weight, N, C, OC, 0);
}
