// mae.h: the masked autoencoder (models_mae.py semantics) with hand-written
// forward and backward.
//
// Usage:
//   mim_mae m; mim_mae_init(&m, &cfg, max_batch);   // allocates everything
//   mim_mae_init_weights(&m, seed);                 // MAE init (or load)
//   mim_mae_zero_grad(&m);
//   float loss = mim_mae_forward(&m, imgs, noise, B);   // imgs (B,C,H,W)
//   (or mim_mae_forward_target(&m, imgs, noise, target, B) for HOG/teacher targets)
//   mim_mae_backward(&m);                           // grads += dloss/dparam
//   ... optimizer on m.params / m.grads ...
//   mim_mae_free(&m);
// One allocation per buffer class (parameters, gradients, activations,
// backward scratch); nothing is allocated in forward or backward.
// Parameters are described by a table (name, shape, offset) whose names and
// order are the PyTorch MAE state_dict's, used by checkpoints and the
// optimizer.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "core/rng.h"
#include "model/config.h"
#include "model/vit.h"

#define MIM_MAX_PARAMS 1024

typedef struct {
    char name[64];         // state_dict name, e.g. "blocks.0.attn.qkv.weight"
    int ndim;
    int64_t shape[4];
    size_t offset, numel;  // into the parameter buffer, in floats
    int trainable;         // 0 for the fixed sin-cos position embeddings
    int decay;             // AdamW weight decay applies (ndim >= 2, not bias)
} mim_param;

typedef struct {           // every weight of the MAE, as pointers into a buffer
    float* cls_token;      // (1, 1, D)
    float* pos_embed;      // (1, 1+L, D) fixed
    float *pe_w, *pe_b;    // patch_embed.proj: (D, C, p, p), (D)
    mim_vit_block_w* blocks;   // [depth]
    float *norm_w, *norm_b;            // (D)
    float* mask_token;     // (1, 1, Dd)
    float* dec_pos_embed;  // (1, 1+L, Dd) fixed
    float *dec_embed_w, *dec_embed_b;  // decoder_embed: (Dd, D), (Dd)
    mim_vit_block_w* dec_blocks;       // [dec_depth]
    float *dec_norm_w, *dec_norm_b;    // (Dd)
    float *pred_w, *pred_b;            // decoder_pred: (Pt, Dd), (Pt)
} mim_weights;

typedef struct {
    mim_config cfg;
    int max_batch, B;      // capacity and the batch of the last forward
    int L, T, Td, P, K;    // patches, encoder tokens (1+keep), decoder tokens (1+L), p*p*C, C*p*p
    int Pt;                // target width per patch: P for pixels, cfg.target_dim otherwise

    mim_param table[MIM_MAX_PARAMS];
    int nparams;
    size_t num_floats;     // total parameter floats
    float* params;         // (num_floats)
    float* grads;          // (num_floats)
    mim_weights w, g;      // pointer views into params and grads

    // activations (capacity max_batch)
    float* act_mem;
    float *imgs_col;       // (B, L, K) conv-order patches
    float *pe_out;         // (B, L, D) patch embedding + pos
    float *x0;             // (B, T, D) cls + kept tokens
    mim_vit_block_acts* enc;   // [depth]
    float *latent, *lat_mean, *lat_rstd;   // (B,T,D), (B,T)
    float *dec_emb;        // (B, T, Dd) decoder_embed(latent)
    float *dec_x0;         // (B, Td, Dd) unshuffled + mask tokens + pos
    mim_vit_block_acts* dec;   // [dec_depth]
    float* drop_scale;     // (depth, max_batch, 2) drop-path scales per block, sample, branch
    int drop_active;       // 1: forward/backward apply drop_scale (set by mim_mae_drop_path)
    float *dec_norm, *dec_norm_mean, *dec_norm_rstd;   // (B,Td,Dd), (B,Td)
    float *pred_full;      // (B, Td, Pt)
    float *pred;           // (B, L, Pt) without the cls row
    float *target;         // (B, L, Pt) patchified (and normalised) images, or the external target
    float *mask;           // (B, L) 1 = removed
    int32_t *ids_shuffle, *ids_restore;    // (B, L)
    float loss;

    // backward scratch (capacity max_batch, sized for the wider of enc/dec)
    float* scratch_mem;
    mim_vit_scratch scr;   // the blocks' backward scratch (model/vit.h)
    attn_ws attn;          // the attention workspace (ops.h), in scratch_mem
    float* s_dnext;        // (B, max(T, Td, L), width) gradient of the residual stream
    // Called during backward when a block's gradients are final (offset and
    // count in floats of m->grads), so data-parallel training can start
    // reducing them while the backward goes on. NULL: not called.
    void (*grad_ready)(size_t offset, size_t count);
    float *s_dpred;        // (B, Td, Pt)

    // matmul precision (mim_mae_set_precision); fp32 unless set
    mim_precision precision;   // ops.h
    uint16_t* params_bf16; // (num_floats) bf16 shadow of params, same offsets
    struct mim_bf16_ctx* mm;   // bf16 matmul backend and its scratch
} mim_mae;

// Builds the parameter table and allocates all buffers for batches up to
// max_batch. Returns 0, MIM_EARG (invalid config) or MIM_ENOMEM.
int mim_mae_init(mim_mae* m, const mim_config* cfg, int max_batch);

// What mim_mae_init(cfg, max_batch) allocates, in bytes, computed by the
// same code without allocating it (for memory limits checked up front).
typedef struct {
    size_t params, grads;  // parameter floats x 4, each
    size_t acts;           // saved activations for max_batch
    size_t scratch;        // backward scratch for max_batch
    size_t other;          // per-block pointer arrays
    size_t total;
    size_t num_floats;     // parameter count (an optimizer's state is a multiple of it)
} mim_mae_mem;
// Returns parts->total (parts may be NULL), or 0 for an invalid config
// (mim_err_msg() says why).
size_t mim_mae_bytes(const mim_config* cfg, int max_batch, mim_mae_mem* parts);
void mim_mae_free(mim_mae* m);
// MAE's initialisation from a seed: xavier_uniform linears (patch embedding
// viewed as 2-D), zero linear biases (the patch-embedding bias keeps
// PyTorch's conv default, as MAE), LayerNorm 1/0, cls/mask tokens N(0, 0.02),
// fixed 2-D sin-cos position embeddings (cls row zero).
void mim_mae_init_weights(mim_mae* m, uint64_t seed);
// Writes the 2-D sin-cos embedding (1+gh*gw, D), cls row zero, as MAE's
// get_2d_sincos_pos_embed generalised to gh x gw grids.
void mim_sincos_pos_embed(float* out, int D, int gh, int gw);
const mim_param* mim_mae_find(const mim_mae* m, const char* name);

void mim_mae_zero_grad(mim_mae* m);
// imgs (B, C, H, W) normalised pixels; noise (B, L) masking noise (lower =
// kept). Returns the loss (cfg.loss on the masked patches) against pixel
// targets (cfg.target pixel or pixel-norm); saves what backward needs.
float mim_mae_forward(mim_mae* m, const float* imgs, const float* noise, int B);
// The same against an externally computed target (B, L, Pt), e.g. HOG
// features (model/hog.h) or teacher tokens, row l = patch l in row-major grid
// order. Any cfg.target; the target is copied, so it may be reused at once.
float mim_mae_forward_target(mim_mae* m, const float* imgs, const float* noise, const float* target, int B);
// Accumulates d(loss * dloss_scale)/d(params) into m->grads (scale for
// gradient accumulation: 1/accum_iter).
void mim_mae_backward(mim_mae* m, float dloss_scale);
// Encoder only, on every patch (evaluation, fine-tuning): requires a model
// built with mask_ratio 0 (so T = 1 + L); dec_dim 0 builds no decoder.
// Returns the final-norm tokens (B, 1+L, D), cls first; the last block's
// output (before that norm) is m->enc[depth-1].out. Activations are saved
// for mim_mae_encode_backward and valid until the next forward.
const float* mim_mae_encode(mim_mae* m, const float* imgs, int B);
// d/d of mim_mae_encode: dlatent (B, T, D) = gradient of the final-norm
// tokens, dlast (B, T, D) = gradient of the last block's output; either may
// be NULL. Accumulates into m->grads (encoder tensors).
void mim_mae_encode_backward(mim_mae* m, const float* dlatent, const float* dlast);
// Precision of the linear layers (patch embedding, qkv, proj, fc1, fc2,
// decoder embed, decoder pred; attention's own matmuls stay fp32):
// MIM_PREC_FP32 (the default: sgemm, bit-identical to a model that never
// called this) or MIM_PREC_BF16: bf16 inputs and weights, fp32 accumulation
// and outputs (ops.h, "bf16 linear"), with backend MIM_BF16_ONEDNN,
// MIM_BF16_EMULATED or MIM_BF16_AUTO. Parameters, gradients, optimizer
// state, activations and the loss stay fp32; bf16 mode adds a bf16 shadow
// of the parameters (2 bytes per parameter) and the backend's scratch,
// sized for max_batch here, so the step still allocates nothing.
// Returns 0, MIM_ENOMEM or MIM_EARG (backend unavailable).
int mim_mae_set_precision(mim_mae* m, mim_precision precision, mim_bf16_backend backend);
// "fp32", "bf16 (oneDNN)" or "bf16 (emulated)" (or the tests' "bf16 (oneDNN
// fp32 check)"), for start-up lines.
const char* mim_mae_precision_name(const mim_mae* m);
// Rounds the fp32 parameters into the bf16 shadow. mim_mae_forward and
// mim_mae_encode call it first, so the shadow always matches the masters
// however they changed (optimizer, checkpoint load, MPI broadcast): once
// per step with accum 1, an O(params) pass against O(params x B x T) of
// matmul work. No-op in fp32 mode.
void mim_mae_refresh_bf16(mim_mae* m);
// Stochastic depth (timm drop_path) for the next forward/backward pairs:
// block i drops each sample's residual branches with probability
// rate * i / (depth - 1), scaling kept ones by 1 / keep. rate 0 (or rng
// NULL) turns it off. Draws B * depth * 2 values from rng.
void mim_mae_drop_path(mim_mae* m, float rate, int B, mim_rng* rng);
// The same, with each sample's 2 * depth draws (block 0 attention, block 0
// MLP, block 1 ...) from its own stream seeded by seeds[b] (B entries), so
// a sample's drops do not depend on the batch it is in (data parallel:
// N ranks x B/N drop what 1 x B drops).
void mim_mae_drop_path_seeded(mim_mae* m, float rate, int B, const uint64_t* seeds);
