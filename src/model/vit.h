// vit.h: the Vision Transformer's pre-norm block, one implementation for the
// MAE encoder and decoder (model/mae.c, and through it fine-tuning and the
// scratch baseline) and the frozen teacher (model/teacher.c):
//   - the block's weights (mim_vit_block_w) and saved activations
//     (mim_vit_block_acts), laid out in one allocation by the carver;
//   - mim_vit_block_forward / mim_vit_block_backward, the training pair
//     (drop path per sample and branch, fp32 or bf16 linears);
//   - mim_vit_block_infer, an inference-only forward that keeps nothing for
//     a backward (the teacher: GELU or QuickGELU, its own LayerNorm eps);
//   - mim_pos_embed_resize, the one bicubic resize of a position-embedding
//     grid (fine-tuning at another resolution, a teacher on another grid).
// Shapes: B batch, T tokens, D width, NH heads, Hm MLP width; N = B * T.
// Nothing here allocates.
#pragma once
#include <stddef.h>
#include "ops/ops.h"

#define MIM_VIT_LN_EPS 1e-6f   // timm / MAE LayerNorm eps

// Bump allocation of named buffers from one block of floats: a first pass
// with mem == NULL only counts (c.used), a second carves the allocation.
// Pieces are rounded to 16 floats (64-byte aligned).
typedef struct { float* mem; size_t used; } mim_carver;
float* mim_carve(mim_carver* c, size_t n);

typedef struct {           // one pre-norm block; qkv in timm's (3, heads, hd) row order
    float *ln1w, *ln1b;    // (D)
    float *qkvw, *qkvb;    // (3D, D), (3D)
    float *projw, *projb;  // (D, D), (D)
    float *ln2w, *ln2b;    // (D)
    float *fc1w, *fc1b;    // (Hm, D), (Hm)
    float *fc2w, *fc2b;    // (D, Hm), (D)
} mim_vit_block_w;

typedef struct {           // saved activations of one block over (B, T, width)
    float *ln1, *ln1_mean, *ln1_rstd;  // (B,T,D), (B,T), (B,T)
    float *qkv;                        // (B,T,3D)
    float *lse;                        // (B,NH,T) attention row log-sum-exp (ops.h)
    float *atty;                       // (B,T,D) attention output before proj
    float *res1;                       // (B,T,D) x + proj(atty)
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fc1, *gelu;                 // (B,T,Hm)
    float *out;                        // (B,T,D) res1 + fc2(gelu)
} mim_vit_block_acts;

// Carves a's buffers for up to B samples of T tokens.
void mim_vit_block_carve(mim_carver* c, mim_vit_block_acts* a, size_t B, size_t T, size_t D, size_t NH, size_t Hm);

// How the block computes: its linear layers multiply in fp32 (sgemm) or bf16
// inputs with the weights' bf16 shadow (ops.h "bf16 linear"); in bf16 mode
// every weight points into params (num_floats floats) and params_bf16 is its
// shadow at the same offsets. attn: the fused attention's workspace (ops.h),
// sized for every block it serves.
typedef struct {
    mim_precision precision;
    const float* params;
    const mim_bf16* params_bf16;
    size_t num_floats;
    mim_bf16_ctx* mm;
    const attn_ws* attn;
} mim_vit_linear;

// out (N, OC) = inp (N, C) @ weight (OC, C)^T + bias (OC), bias may be NULL.
void mim_vit_linear_forward(const mim_vit_linear* l, float* out, const float* inp, const float* weight,
                            const float* bias, int N, int C, int OC);
// Accumulates dinp (N, C) (may be NULL), dweight (OC, C), dbias (OC).
void mim_vit_linear_backward(const mim_vit_linear* l, float* dinp, float* dweight, float* dbias,
                             const float* dout, const float* inp, const float* weight, int N, int C, int OC);

// The same with dinp OVERWRITTEN (dinp = dout @ weight): no clearing pass.
void mim_vit_linear_backward_set(const mim_vit_linear* l, float* dinp, float* dweight, float* dbias,
                                 const float* dout, const float* inp, const float* weight, int N, int C, int OC);

// Backward scratch, each sized for the widest block it serves at max batch:
// dres, dln, datty, dscaled (B, T, D); dqkv (B, T, 3D);
// dfc1, dgelu (B, T, Hm).
typedef struct {
    float *dres, *dln, *datty, *dqkv, *dfc1, *dgelu, *dscaled;
} mim_vit_scratch;

// x (B,T,D) -> a->out (B,T,D): x + attn(ln1(x)), then + mlp(ln2(.)), GELU
// MLP, LayerNorm eps MIM_VIT_LN_EPS. drop (B, 2) or NULL: per-sample drop-path
// scales of the two branches (0 or 1 / keep probability).
void mim_vit_block_forward(const mim_vit_linear* l, mim_vit_block_acts* a, const mim_vit_block_w* w,
                           const float* x, int B, int T, int D, int NH, int Hm, const float* drop);
// d/d of mim_vit_block_forward(a->out, x): dout (B,T,D) is the gradient of
// the block output; dx (B,T,D) is OVERWRITTEN with the gradient of its input
// (dx may be dout). Accumulates into g.
void mim_vit_block_backward(const mim_vit_linear* l, const mim_vit_scratch* s, float* dx, const float* dout,
                            const mim_vit_block_acts* a, const mim_vit_block_w* w, mim_vit_block_w* g,
                            const float* x, int B, int T, int D, int NH, int Hm, const float* drop);

// Buffers and options of the inference-only forward.
typedef struct {
    float *ln, *atty;      // (B, T, D) scratch
    float *qkv;            // (B, T, 3D)
    float *hid;            // (B, T, Hm)
    float *mean, *rstd;    // (B, T) LayerNorm statistics (not used after)
    float *lse;            // (B, NH, T) attention row log-sum-exp (not used after)
    const attn_ws* attn;   // attention workspace (ops.h)
    float ln_eps;
    int quick_gelu;        // 1: x * sigmoid(1.702 x) (OpenAI CLIP), 0: GELU
} mim_vit_infer;

// x (B,T,D) updated in place to the block's output, fp32 linears.
void mim_vit_block_infer(const mim_vit_block_w* w, float* x, const mim_vit_infer* s, int B, int T, int D, int NH, int Hm);

// Bicubic resize of a position-embedding grid, as torch.nn.functional.
// interpolate(mode='bicubic', align_corners=False) with clamped taps (MAE
// interpolate_pos_embed, timm resample_abs_pos_embed): in (gh*gw, D) patch
// rows -> out (nh*nw, D), in double, rounded once.
void mim_pos_embed_resize(float* out, const float* in, int D, int gh, int gw, int nh, int nw);
