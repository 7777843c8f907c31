// ops.h: the layers of the ViT / MAE as forward/backward pairs, llm.c style.
//
// Conventions (all ops):
//  - fp32, row-major, contiguous. Argument order: outputs, saved-for-backward
//    buffers, inputs and weights, then dimensions.
//  - Ops never allocate; scratch buffers are passed in by the caller.
//  - Backward functions ACCUMULATE (+=) into every gradient they write
//    (dinp, dweight, dbias), like llm.c; one zero_grad per step clears them.
//    A NULL gradient pointer means "not needed" and is skipped.
//  - Each op with a fast path has a plain `_ref` twin (single-threaded loops)
//    that only the tests call: the reference the fast path is checked against.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "core/cpu.h"

// ---------------------------------------------------------------- sgemm
// C (M, N) = alpha * op(A) @ op(B) + beta * C, row-major, op = transpose when
// ta / tb: the fp32 product under every linear layer and attention head
// (sgemm.c). Backend: OpenBLAS, or oneDNN's dnnl_sgemm on AVX-512 CPUs where
// Debian's OpenBLAS is several times slower (MIM_SGEMM=openblas|onednn
// overrides; chosen once per process).
enum { MIM_SGEMM_OPENBLAS = 0, MIM_SGEMM_ONEDNN = 1 };
void mim_sgemm(int ta, int tb, int M, int N, int K, float alpha, const float* A, int lda, const float* B, int ldb,
               float beta, float* C, int ldc);
int mim_sgemm_backend(void);                 // MIM_SGEMM_*
void mim_sgemm_set_backend(int backend);     // tests; ONEDNN falls back to OpenBLAS when not built
const char* mim_sgemm_backend_name(void);    // "OpenBLAS sgemm" / "oneDNN sgemm"

// ---------------------------------------------------------------- linear
// out (N, OC) = inp (N, C) @ weight(OC, C)^T + bias (OC); bias may be NULL.
// weight has PyTorch nn.Linear layout.
void matmul_forward(float* out, const float* inp, const float* weight, const float* bias,
                    int N, int C, int OC);
// d/d of the forward above: dinp (N, C) += dout @ weight; dweight (OC, C) +=
// dout^T @ inp; dbias (OC) += sum_n dout. dinp, dweight, dbias may be NULL.
void matmul_backward(float* dinp, float* dweight, float* dbias,
                     const float* dout, const float* inp, const float* weight,
                     int N, int C, int OC);
// The same with dinp OVERWRITTEN: dinp = dout @ weight (no clearing pass
// before it); dweight and dbias still accumulate.
void matmul_backward_set(float* dinp, float* dweight, float* dbias,
                         const float* dout, const float* inp, const float* weight,
                         int N, int C, int OC);
void matmul_forward_ref(float* out, const float* inp, const float* weight, const float* bias,
                        int N, int C, int OC);
void matmul_backward_ref(float* dinp, float* dweight, float* dbias,
                         const float* dout, const float* inp, const float* weight,
                         int N, int C, int OC);

// ---------------------------------------------------------------- bf16 linear
// The same linear layer with bf16 inputs: the activations, the weights and
// the output gradient enter the multiply rounded to bf16 (round to nearest
// even), products accumulate in fp32, outputs and gradients are fp32. The
// bias and its gradient stay fp32 (a broadcast and a column sum, not matmuls).
// Used by the model in precision mode bf16 (mim_mae_set_precision); fp32 mode
// never comes here and stays bit-identical to matmul_forward/backward.
//
// Two backends behind one context (matmul_bf16.c):
//  - MIM_BF16_ONEDNN (built with -DMIM_DNNL, a CPU with AMX-BF16 or
//    AVX512-BF16): oneDNN matmul primitives on bf16 memory, one per
//    (M, N, K, transposes, accumulate), created at first use and cached in
//    the context; activations converted into the context's bf16 scratch.
//  - MIM_BF16_EMULATED (any CPU): inputs rounded to bf16 into fp32 scratch,
//    then OpenBLAS sgemm: numerically bf16 inputs with fp32 accumulation,
//    and slower than fp32 (the rounding is extra work), for testing the
//    numerics on CPUs without native bf16.
// Weights come as a bf16 copy (the model keeps a shadow of its parameters,
// refreshed from the fp32 masters before each forward). The context owns
// all scratch, sized at init for the largest shapes; forward and backward
// never allocate (oneDNN primitives are created at the first call of each
// shape, i.e. in the first step, and reused after).
typedef uint16_t mim_bf16;
typedef enum { MIM_PREC_FP32 = 0, MIM_PREC_BF16 = 1 } mim_precision;
// MIM_BF16_ONEDNN_F32 is for tests: the oneDNN code path (layouts,
// transposes, accumulation, primitive cache, scratchpad) run as fp32
// matmuls on bf16-rounded values, so CPUs without native bf16 exercise it.
typedef enum { MIM_BF16_AUTO = 0, MIM_BF16_EMULATED = 1, MIM_BF16_ONEDNN = 2, MIM_BF16_ONEDNN_F32 = 3 } mim_bf16_backend;
typedef struct mim_bf16_ctx mim_bf16_ctx;

// fp32 -> bf16 round to nearest even (NaN stays NaN, overflow goes to Inf).
static inline mim_bf16 mim_f32_to_bf16(float x) {
    union { float f; uint32_t u; } v = {x};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (mim_bf16)((v.u >> 16) | 0x40);   // quiet NaN
    return (mim_bf16)((v.u + 0x7fffu + ((v.u >> 16) & 1)) >> 16);
}
static inline float mim_bf16_to_f32(mim_bf16 h) {
    union { uint32_t u; float f; } v = {(uint32_t)h << 16};
    return v.f;
}
// Elementwise over n (OpenMP-parallel for large n).
void bf16_from_f32(mim_bf16* out, const float* inp, size_t n);
void bf16_to_f32(float* out, const mim_bf16* inp, size_t n);
// out = fp32(bf16(inp)): the value bf16 keeps, in fp32 storage; out may be inp.
void bf16_round_f32(float* out, const float* inp, size_t n);

// Creates a context for linears up to: max_inp = N*C (inputs), max_dout =
// N*OC (output gradients), max_weight = OC*C. backend AUTO takes oneDNN
// when it has a native bf16 matmul here, else the emulation. Returns 0,
// MIM_ENOMEM, or MIM_EARG (backend ONEDNN asked for but not available,
// with the reason; ONEDNN_F32 without oneDNN).
int mim_bf16_ctx_init(mim_bf16_ctx** ctx, mim_bf16_backend backend,
                      size_t max_inp, size_t max_dout, size_t max_weight);
void mim_bf16_ctx_free(mim_bf16_ctx* ctx);
mim_bf16_backend mim_bf16_ctx_backend(const mim_bf16_ctx* ctx);
// oneDNN primitives created so far and calls served from the cache.
void mim_bf16_ctx_stats(const mim_bf16_ctx* ctx, long* created, long* reused);

// out (N, OC) = bf16(inp (N, C)) @ weight (OC, C)^T + bias (OC); bias may be
// NULL. ctx first (it is the scratch), then llm.c's order.
void matmul_forward_bf16(mim_bf16_ctx* ctx, float* out, const float* inp, const mim_bf16* weight,
                         const float* bias, int N, int C, int OC);
// d/d of matmul_forward_bf16: dinp (N, C) += bf16(dout) @ weight; dweight
// (OC, C) += bf16(dout)^T @ bf16(inp); dbias (OC) += sum_n dout (fp32).
// Any of dinp, dweight, dbias may be NULL.
void matmul_backward_bf16(mim_bf16_ctx* ctx, float* dinp, float* dweight, float* dbias,
                          const float* dout, const float* inp, const mim_bf16* weight,
                          int N, int C, int OC);
// The same with dinp OVERWRITTEN (dinp = bf16(dout) @ weight).
void matmul_backward_bf16_set(mim_bf16_ctx* ctx, float* dinp, float* dweight, float* dbias,
                              const float* dout, const float* inp, const mim_bf16* weight,
                              int N, int C, int OC);
// Plain-loop twins on fp32 weights: every input of a product is rounded to
// bf16, sums in double. The tests' reference for both backends.
void matmul_forward_bf16_ref(float* out, const float* inp, const float* weight, const float* bias,
                             int N, int C, int OC);
void matmul_backward_bf16_ref(float* dinp, float* dweight, float* dbias,
                              const float* dout, const float* inp, const float* weight,
                              int N, int C, int OC);

// ---- choosing the precision (the --precision flag)
// The CPU facts (mim_cpu_bf16_isa, mim_onednn_built) are in core/cpu.h.
// 1 when oneDNN creates a bf16 matmul primitive here that is not its
// reference (plain C) implementation; why (may be NULL) gets the chosen
// implementation's name or the reason there is none. Probed once, cached.
int mim_onednn_bf16_native(char* why, size_t n);
// The --precision policy (auto / fp32 / bf16) is model/precision.h.

// ---------------------------------------------------------------- layernorm
// out (N, C) = (inp - mean) * rstd * weight + bias, per row; mean, rstd (N)
// are saved for backward. rstd = 1 / sqrt(var + eps), biased variance.
void layernorm_forward(float* out, float* mean, float* rstd,
                       const float* inp, const float* weight, const float* bias,
                       int N, int C, float eps);
// Fused residual + layernorm: res (N, C) += x, then out = layernorm(res)
// with mean, rstd (N) saved; bit-identical to add_inplace + layernorm_forward.
// Backward: layernorm_backward with inp = res, plus the identity to x.
void residual_layernorm_forward(float* res, float* out, float* mean, float* rstd, const float* x,
                                const float* weight, const float* bias, int N, int C, float eps);
// d/d of layernorm_forward(out, mean, rstd, inp, weight, bias).
void layernorm_backward(float* dinp, float* dweight, float* dbias,
                        const float* dout, const float* inp, const float* weight,
                        const float* mean, const float* rstd, int N, int C);

// ---------------------------------------------------------------- gelu
// GELU, the erf form (not the tanh approximation): out = x * 0.5 * (1 +
// erf(x / sqrt(2))), elementwise over n, with erf from Abramowitz & Stegun
// 7.1.26 (absolute error <= 1.5e-7, elementwise.c): PyTorch's
// approximate='none' to fp32 rounding, not bit for bit.
void gelu_forward(float* out, const float* inp, size_t n);
// Fused bias + GELU: pre (N, C) += bias (C), out = gelu(pre); the backward
// is gelu_backward on pre, then the bias gradient is d(pre)'s column sum.
void bias_gelu_forward(float* pre, float* out, const float* bias, int N, int C);
// dinp += dout * gelu'(inp)
void gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);
// dinp = dout * gelu'(inp), OVERWRITING dinp (which may be dout)
void gelu_backward_set(float* dinp, const float* inp, const float* dout, size_t n);
// QuickGELU (OpenAI CLIP, HF quick_gelu): out = x * sigmoid(1.702 x),
// elementwise over n; out may alias inp.
void quick_gelu_forward(float* out, const float* inp, size_t n);
// d/d of quick_gelu_forward(out, inp): dinp += dout * (s + 1.702 x s (1 - s)),
// s = sigmoid(1.702 x).
void quick_gelu_backward(float* dinp, const float* inp, const float* dout, size_t n);

// ---------------------------------------------------------------- softmax
// Row softmax: out (N, C) = softmax(inp (N, C)) along C.
void softmax_forward(float* out, const float* inp, int N, int C);
// dinp += out * (dout - sum(dout * out)) per row; takes the forward's output.
void softmax_backward(float* dinp, const float* dout, const float* out, int N, int C);

// ---------------------------------------------------------------- attention
// Multi-head self-attention core (the qkv and proj linears are separate).
// qkv (B, T, 3C) laid out as timm's Attention: [q | k | v], each C = NH*hs,
//   head h occupies columns h*hs .. h*hs+hs-1 of its part.
// out (B, T, C): softmax(q k^T / sqrt(hs)) v, heads concatenated.
// Fused per (sample, head): no (B, NH, T, T) tensor exists; the forward saves
// lse (B, NH, T), each row's log-sum-exp of its scaled scores, and the
// backward recomputes the probabilities from it.
// The workspace: `threads` slices of per_thread floats, one per OpenMP thread
// (the op runs on at most `threads`); per_thread >= attention_ws_floats(T, hs),
// a multiple of 16 floats, mem 64-byte aligned.
typedef struct { float* mem; size_t per_thread; int threads; } attn_ws;
size_t attention_ws_floats(int T, int hs);
void attention_forward(float* out, float* lse, const float* qkv, int B, int T, int C, int NH, const attn_ws* ws);
// d/d of attention_forward(out, lse, qkv): takes the forward's out and lse;
// dqkv (B, T, 3C) is accumulated.
void attention_backward(float* dqkv, const float* dout, const float* out, const float* qkv, const float* lse,
                        int B, int T, int C, int NH, const attn_ws* ws);
// The same with dqkv OVERWRITTEN (no clearing pass before it).
void attention_backward_set(float* dqkv, const float* dout, const float* out, const float* qkv, const float* lse,
                            int B, int T, int C, int NH, const attn_ws* ws);
// The twins, straight from the definition: att (B, NH, T, T) holds the
// probabilities, datt is scratch of that size.
void attention_forward_ref(float* out, float* att, const float* qkv, int B, int T, int C, int NH);
void attention_backward_ref(float* dqkv, float* datt, const float* dout,
                            const float* qkv, const float* att, int B, int T, int C, int NH);

// ---------------------------------------------------------------- elementwise
// out = a + b over n (out may alias a or b). Backward: da += dout, db += dout,
// which callers do with add_inplace.
void residual_forward(float* out, const float* a, const float* b, size_t n);
// y += x over n.
void add_inplace(float* y, const float* x, size_t n);

// ---------------------------------------------------------------- patches
// MAE patchify: imgs (B, C, H, W) -> out (B, L, p*p*C) with L = (H/p)*(W/p),
// patches in row-major grid order, each patch flattened in (pr, pc, c) order
// (models_mae.py: einsum('nchpwq->nhwpqc')). H and W must be divisible by p.
void patchify_forward(float* out, const float* imgs, int B, int C, int H, int W, int p);
// d/d of patchify: dimgs (B, C, H, W) += unpatchify(dout). Also the inverse
// (unpatchify) when dimgs starts zeroed.
void patchify_backward(float* dimgs, const float* dout, int B, int C, int H, int W, int p);
// Conv-order im2col for the patch embedding: imgs (B, C, H, W) ->
// out (B, L, C*p*p) with each patch flattened in (c, pr, pc) order, so that
// out @ W^T with W = conv weight (D, C, p, p) viewed as (D, C*p*p) equals
// the stride-p convolution.
void im2col_forward(float* out, const float* imgs, int B, int C, int H, int W, int p);
// d/d of im2col_forward: dimgs (B, C, H, W) += col2im(dout).
void im2col_backward(float* dimgs, const float* dout, int B, int C, int H, int W, int p);

// ---------------------------------------------------------------- masking
// Per-sample random masking by noise argsort (MAE random_masking): for each
// b, ids_shuffle = argsort(noise[b, :L]) ascending (stable: ties keep index
// order); ids_restore = argsort(ids_shuffle); the first len_keep of
// ids_shuffle are kept (ids_keep (B, len_keep)); mask (B, L) is 0 for kept,
// 1 for removed patches, in the original order.
// ids_shuffle, ids_restore: (B, L).
void masking_forward(int32_t* ids_shuffle, int32_t* ids_restore, float* mask,
                     const float* noise, int B, int L, int len_keep);
// Row gather: out (B, Tout, C)[b, t] = inp (B, Tin, C)[b, ids[b, t]],
// ids (B, Tout) in [0, Tin).
void gather_forward(float* out, const float* inp, const int32_t* ids, int B, int Tin, int Tout, int C);
// d/d of gather_forward: dinp[b, ids[b, t]] += dout[b, t].
void gather_backward(float* dinp, const float* dout, const int32_t* ids, int B, int Tin, int Tout, int C);

// ---------------------------------------------------------------- loss
// MAE loss: per-patch mean over P of (pred - target)^2, averaged over the
// masked patches: loss = sum_{b,l} mask[b,l] * mean_p (pred-target)^2 / sum mask.
// pred, target (B, L, P), mask (B, L). Returns the loss (double accumulation).
float mae_loss_forward(const float* pred, const float* target, const float* mask, int B, int L, int P);
// dpred (B, L, P) += dloss * 2 (pred - target) mask / (P * sum mask).
void mae_loss_backward(float* dpred, const float* pred, const float* target, const float* mask,
                       float dloss, int B, int L, int P);
// norm_pix target: each row of target (N, P) becomes (x - mean) / sqrt(var + 1e-6)
// with the unbiased variance (torch.var default), in place.
void norm_pix_rows(float* target, int N, int P);
// Teacher-token normalisation: each row of x (N, C) becomes
// (x - mean) / sqrt(var + eps) with the biased variance, in place
// (F.layer_norm without affine).
void layernorm_rows(float* x, int N, int C, float eps);

// Cosine loss (MILAN, EVA): per patch 2 - 2 cos(pred, target), with each
// vector divided by max(|v|_2, 1e-12) (F.normalize), averaged over the masked
// patches: loss = sum_{b,l} mask * (2 - 2 <pred^, target^>) / sum mask.
// pred, target (B, L, P), mask (B, L). Returns the loss (double accumulation).
float cos_loss_forward(const float* pred, const float* target, const float* mask, int B, int L, int P);
// d/d of cos_loss_forward scaled by dloss: per masked row with |pred| > eps,
// dpred += -2 dloss mask / sum mask * (t^ - <p^, t^> p^) / |pred|.
void cos_loss_backward(float* dpred, const float* pred, const float* target, const float* mask,
                       float dloss, int B, int L, int P);
// Smooth-L1 (Huber with beta), elementwise on d = pred - target:
// 0.5 d^2 / beta if |d| < beta, else |d| - 0.5 beta; averaged over the masked
// elements: sum_{b,l} mask * sum_p f(d) / (P * sum mask), as
// F.smooth_l1_loss(pred[mask], target[mask], beta=beta).
float smooth_l1_loss_forward(const float* pred, const float* target, const float* mask, int B, int L, int P, float beta);
// dpred += dloss * mask * clamp(d / beta, -1, 1) / (P * sum mask).
void smooth_l1_loss_backward(float* dpred, const float* pred, const float* target, const float* mask,
                             float dloss, int B, int L, int P, float beta);
