// test_numerics.c: how far one MAE step's gradients may move when only the
// order of fp32 sums changes, on any CPU. The reference is one step of
// batch 32 on OpenBLAS with 1 thread; each variant changes what a user or
// another machine changes (the sgemm backend, the thread count, the split
// of the batch into accumulated micro-batches), which reorders the sums
// inside the GEMMs and reductions but not the maths. Per tensor it checks
//     e = ||g - g_ref||_2 / ||g_ref||_2 <= TOL_SUM
// and the loss to the same bound. (An elementwise maxrel of parameters after
// many AdamW steps, as this suite once used, is no measure: Adam divides by
// sqrt(v), so a last-bit change of a near-zero gradient becomes a full lr
// step.)
//
// The bound. Summing K fp32 terms in two orders differs by at most
// 2 gamma_K sum|x_i| (Higham, Accuracy and Stability, 4.2), gamma_K ~ K u,
// u = 2^-24; the longest sums here are the weight gradients over the B x T
// rows of the decoder (K = 32 x 65 = 2080), so with sum|x_i| ~ |sum x_i|:
// e <= 2 K u = 2.5e-4. Rounding errors of different orders are nearly
// independent, so typical errors are ~ sqrt(K) u = 3e-6; measured on an AMD
// EPYC (avx512f, avx512_bf16, no amx; oneDNN and OpenBLAS, 1 and 2 threads,
// 32 / 2x16 / 4x8): worst tensor 9.7e-7 (see the printed lines). TOL_SUM =
// K u = 1.2e-4 sits between the typical and the worst-case value.
//
// Tensors whose reference gradient is zero in exact arithmetic (the fixed
// position embeddings; the key third of qkv.bias would be, but its tensor's
// norm is carried by the query and value thirds) have no relative error to
// speak of: they are checked to stay at rounding level, ||g|| <= TOL_SUM x
// the gradient's global norm x sqrt(numel / total).
#include "testutil.h"
#include "model/mae.h"
#include "ops/ops.h"
#include "train/optim.h"
#include <omp.h>

void openblas_set_num_threads(int);

#define B 32
#define K_LONGEST (32.0 * 65.0)
#define TOL_SUM (K_LONGEST * 0x1p-24)

typedef struct {
    const char* name;
    int backend;   // MIM_SGEMM_*
    int threads;
    int split;     // micro-batches (B / split each), accumulated
} variant;

static mim_config config(void) {
    mim_config c;
    CHECK(mim_config_preset(&c, "vit_nano") == 0);
    c.img_h = c.img_w = 32; c.in_chans = 3; c.patch = 4;
    c.dim = 64; c.depth = 2; c.heads = 2;
    c.dec_dim = 32; c.dec_depth = 1; c.dec_heads = 2;
    c.mask_ratio = 0.75f;
    return c;
}

// One optimizer step's gradients (m->grads) and loss under variant v.
static double step_grads(mim_mae* m, const variant* v, const float* imgs, const float* noise) {
    mim_sgemm_set_backend(v->backend);
    omp_set_num_threads(v->threads);
    openblas_set_num_threads(v->threads);
    int mb = B / v->split;
    size_t per = (size_t)m->cfg.in_chans * m->cfg.img_h * m->cfg.img_w;
    mim_grad_accum ga;
    CHECK(mim_grad_accum_init(&ga, v->split, m->num_floats) == 0);
    mim_mae_zero_grad(m);
    double loss = 0;
    for (int k = 0; k < v->split; k++) {
        loss += mim_mae_forward(m, imgs + (size_t)k * mb * per, noise + (size_t)k * mb * m->L, mb);
        mim_mae_backward(m, 1.0f / v->split);
        if (k < v->split - 1) mim_grad_accum_push(&ga, m->grads, k);
    }
    mim_grad_accum_finish(&ga, m->grads);
    mim_grad_accum_free(&ga);
    return loss / v->split;
}

static double norm2(const float* x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s);
}

int main(void) {
    mim_config c = config();
    mim_mae m;
    CHECK(mim_mae_init(&m, &c, B) == 0);
    mim_mae_init_weights(&m, 7);
    size_t per = (size_t)c.in_chans * c.img_h * c.img_w;
    float* imgs = tu_alloc((size_t)B * per);
    float* noise = tu_alloc((size_t)B * m.L);
    float* ref = tu_alloc(m.num_floats);
    mim_rng r;
    mim_rng_seed(&r, 11);
    tu_fill_normal(&r, imgs, (size_t)B * per, 1.0f);
    tu_fill_uniform(&r, noise, (size_t)B * m.L, 0.0f, 1.0f);
    int onednn = mim_onednn_built();

    variant base = {"OpenBLAS, 1 thread, batch 32", MIM_SGEMM_OPENBLAS, 1, 1};
    double lref = step_grads(&m, &base, imgs, noise);
    memcpy(ref, m.grads, sizeof(float) * m.num_floats);
    double gnorm = norm2(ref, m.num_floats);
    size_t ntrain = 0;
    for (int i = 0; i < m.nparams; i++) ntrain += m.table[i].trainable ? m.table[i].numel : 0;
    TU_CHECK(isfinite(lref) && gnorm > 0, "reference step: loss %.6f, gradient norm %.4g", lref, gnorm);

    // the same variant again: the same bits (determinism at a fixed thread count)
    double l2 = step_grads(&m, &base, imgs, noise);
    TU_CHECK(l2 == lref && !memcmp(ref, m.grads, sizeof(float) * m.num_floats),
             "the reference repeated: loss and gradients bit-identical");

    variant vs[] = {
        {"OpenBLAS, 2 threads, batch 32", MIM_SGEMM_OPENBLAS, 2, 1},
        {"OpenBLAS, 1 thread, 2 x 16 accumulated", MIM_SGEMM_OPENBLAS, 1, 2},
        {"oneDNN, 1 thread, batch 32", MIM_SGEMM_ONEDNN, 1, 1},
        {"oneDNN, 2 threads, 4 x 8 accumulated", MIM_SGEMM_ONEDNN, 2, 4},
    };
    for (size_t v = 0; v < sizeof vs / sizeof vs[0]; v++) {
        if (vs[v].backend == MIM_SGEMM_ONEDNN && !onednn) {
            printf("note: built without oneDNN: %s not run\n", vs[v].name);
            continue;
        }
        double l = step_grads(&m, &vs[v], imgs, noise);
        double el = fabs(l - lref) / fabs(lref);
        TU_CHECK(el <= TOL_SUM, "%-40s loss rel. error %.2e (tol %.1e)", vs[v].name, el, TOL_SUM);
        double worst = 0;
        const char* wname = "";
        int bad = 0, zero = 0;
        for (int i = 0; i < m.nparams; i++) {
            const mim_param* p = &m.table[i];
            const float* g = m.grads + p->offset;
            const float* g0 = ref + p->offset;
            double d = 0;
            for (size_t k = 0; k < p->numel; k++) d += ((double)g[k] - g0[k]) * ((double)g[k] - g0[k]);
            d = sqrt(d);
            double n0 = norm2(g0, p->numel), floor = TOL_SUM * gnorm * sqrt((double)p->numel / ntrain);
            if (n0 <= floor) {   // zero in exact arithmetic: stays at rounding level
                double n1 = norm2(g, p->numel);
                if (!(n1 <= floor)) {
                    bad++;
                    tu_report(0, "%s: %s should be ~0 (ref %.2e), has norm %.2e > %.2e", vs[v].name, p->name, n0, n1, floor);
                }
                zero++;
                continue;
            }
            double e = d / n0;
            if (!(e <= TOL_SUM)) {
                bad++;
                tu_report(0, "%s: %s norm-relative error %.2e > %.1e", vs[v].name, p->name, e, TOL_SUM);
            }
            if (!(e <= worst)) { worst = e; wname = p->name; }
        }
        TU_CHECK(!bad, "%-40s gradients, %d tensors (%d ~0): worst norm-relative error %.2e (%s), tol %.1e",
                 vs[v].name, m.nparams, zero, worst, wname, TOL_SUM);
    }

    // the check can fail: a single wrong element in one small tensor (the
    // patch-embedding bias, 64 floats) off by 1% of its norm
    const mim_param* pb = mim_mae_find(&m, "patch_embed.proj.bias");
    CHECK(pb != NULL);
    memcpy(m.grads, ref, sizeof(float) * m.num_floats);
    m.grads[pb->offset + 3] += 0.01f * (float)norm2(ref + pb->offset, pb->numel);
    double d = 0;
    for (size_t k = 0; k < pb->numel; k++) {
        double x = (double)m.grads[pb->offset + k] - ref[pb->offset + k];
        d += x * x;
    }
    double e = sqrt(d) / norm2(ref + pb->offset, pb->numel);
    TU_CHECK(e > TOL_SUM, "a planted 1%% error in one element of %s is caught: error %.2e > tol %.1e", pb->name, e,
             TOL_SUM);

    mim_sgemm_set_backend(onednn ? MIM_SGEMM_ONEDNN : MIM_SGEMM_OPENBLAS);
    mim_mae_free(&m);
    tu_free_all();
    return tu_summary("test_numerics", 0, NULL);
}
