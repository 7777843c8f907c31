// teacher.h: a frozen ViT teacher, forward only, whose patch-token features
// serve as targets for masked image modelling (MaskFeat / MILAN / EVA-style
// "strong targets"). Weights come from a safetensors file; nothing here
// trains, and there is no backward.
//
// Usage:
//   mim_teacher t;
//   if (mim_teacher_load(&t, "clip_b16.safetensors", gh, gw, max_batch))
//       { fprintf(stderr, "%s\n", mim_err_msg()); ... }
//   mim_teacher_set_input(&t, C, H, W, mean, std);   // the student's images (required)
//   float* feats;   // (B, gh*gw, mim_teacher_dim(&t))
//   mim_teacher_forward(&t, feats, imgs, B, -1);     // last block, final norm
//   mim_teacher_free(&t);
//
// Recognised files (the scheme is read off the tensor names; no config file):
//  1. timm / MAE / mimscale ViT: patch_embed.proj.{weight,bias}, cls_token,
//     pos_embed (1, 1+L, D), blocks.N.{norm1, attn.qkv, attn.proj, norm2,
//     mlp.fc1, mlp.fc2}, norm (or fc_norm, as MAE's global-pool fine-tunes
//     write; if both are present norm is used), optional norm_pre (timm's
//     CLIP ports); patch_embed.proj.bias optional. Ignored: decoder_*,
//     mask_token, head.*. GELU (erf; timm's ports of OpenAI CLIP need
//     metadata act=quick_gelu), LayerNorm eps 1e-6. Expected input
//     mean/std: mimscale's (ImageNet for 3 channels, their channel average for
//     1; mim_transform_default in data/augment.h).
//  2. OpenAI CLIP / open_clip visual tower: visual.conv1.weight (no bias),
//     visual.class_embedding (D), visual.positional_embedding (1+L, D),
//     visual.ln_pre, visual.transformer.resblocks.N.{ln_1,
//     attn.in_proj_weight (3D, D) / in_proj_bias, attn.out_proj, ln_2,
//     mlp.c_fc, mlp.c_proj}, visual.ln_post; visual.proj is read for shape
//     only and NOT applied (patch features live in the width-D token space;
//     proj maps the class token to the joint embedding). The same names
//     without "visual." are accepted; with the prefix, every tensor outside
//     it (the text tower) is ignored. QuickGELU x*sigmoid(1.702x) (OpenAI
//     weights; open_clip's own LAION models use GELU: set metadata act=gelu),
//     LayerNorm eps 1e-5, CLIP mean/std (0.48145466, 0.4578275, 0.40821073) /
//     (0.26862954, 0.26130258, 0.27577711).
//  3. Hugging Face CLIPVisionModel / CLIPModel: vision_model.embeddings.
//     {patch_embedding.weight, class_embedding, position_embedding.weight},
//     vision_model.pre_layrnorm (sic), vision_model.encoder.layers.N.
//     {layer_norm1, self_attn.{q,k,v,out}_proj, layer_norm2, mlp.fc1,
//     mlp.fc2}, vision_model.post_layernorm. Accepted with or without the
//     "vision_model." prefix; with it, text_model.*, visual_projection,
//     text_projection, logit_scale are ignored, as is the position_ids
//     buffer. quick_gelu, eps 1e-5, CLIP mean/std.
// Any other tensor within the recognised tower, a missing one or a wrong
// shape is an error naming the tensor and the expected shape.
//
// Inferred from the shapes: width D and channels C and patch p (the patch
// embedding), depth (the highest block index + 1), MLP width (fc1 rows),
// native grid (pos-embedding rows - 1 = gh0*gw0: a square unless the
// metadata has img_h, img_w and patch, as mimscale checkpoints do). Heads:
// from __metadata__ "num_heads", "heads", "num_attention_heads" or
// "n_heads" (first present), else D/64 (16 for D = 1280, ViT-H), an error
// when D is not a multiple of 64. Metadata may also override "act"
// ("gelu" | "quick_gelu", HF's "hidden_act" too) and "layer_norm_eps".
//
// Geometry. The teacher runs on the STUDENT's patch grid gh x gw, i.e. at
// (gh*p) x (gw*p) pixels, so that its patch token l is the student's patch l.
// When the native grid differs, the grid part of the position embedding is
// resized once at load with bicubic interpolation exactly as MAE's
// interpolate_pos_embed (torch F.interpolate mode=bicubic,
// align_corners=False, A = -0.75, no antialias; timm's resample_abs_pos_embed
// additionally antialiases when shrinking, which this does not); the class
// row is kept. Images are resized at forward time when the student's image
// size differs from (gh*p, gw*p): bilinear as torch F.interpolate
// mode=bilinear, align_corners=False, antialias=False.
//
// Features. layer i in [0, depth) takes block i's output (residual stream,
// no norm); layer -1 or depth-1 takes the last block's output after the
// final norm (timm/MAE: norm; CLIP: ln_post; HF: post_layernorm), applied to
// every token here (CLIP and HF apply it to the class token only; the
// tests' PyTorch reference does the same). The class token is dropped.
#pragma once
#include <stddef.h>
#include <stdio.h>
#include "model/vit.h"

typedef enum { MIM_TEACHER_TIMM = 1, MIM_TEACHER_CLIP = 2, MIM_TEACHER_HF = 3 } mim_teacher_scheme;
typedef enum { MIM_ACT_GELU = 0, MIM_ACT_QUICK_GELU = 1 } mim_teacher_act;

typedef struct {
    // architecture (read from the file)
    mim_teacher_scheme scheme;
    char prefix[16];       // "", "visual." or "vision_model."
    int C, p, D, depth, heads, hidden;   // channels, patch, width, blocks, heads, MLP width Hm
    int gh0, gw0;          // native grid (pos-embedding rows - 1 = gh0 * gw0)
    mim_teacher_act act;
    float ln_eps;
    int has_pre_norm;      // CLIP ln_pre, HF pre_layrnorm, timm norm_pre
    const char* heads_from;       // where heads came from, for describe
    const char* final_norm;       // name of the final norm tensor (no .weight)
    float mean[3], std[3];        // the teacher's expected input normalisation
    // run geometry
    int gh, gw, L, T;      // student grid, L = gh*gw patches, T = 1 + L tokens
    int H, W;              // teacher input: gh*p x gw*p pixels
    int max_batch;
    // student images (mim_teacher_set_input; in_C 0 until then)
    int in_C, in_H, in_W;
    float in_mean[3], in_std[3];

    // weights, one allocation
    float* params;
    size_t num_params;     // floats in params (native and resized pos included)
    size_t num_weights;    // elements of the tower's tensors in the file
    float *pe_w, *pe_b;    // (D, C*p*p), (D) (zero when the file has no bias)
    float* cls;            // (D) class token (no position added)
    float* pos;            // (T, D) position embedding at the run grid
    float *pre_w, *pre_b;  // (D) pre-norm, when has_pre_norm
    mim_vit_block_w* blocks;      // [depth] (model/vit.h)
    float *norm_w, *norm_b;       // (D) final norm

    // activations for max_batch, one allocation
    float* acts;
    float* img;            // (B, C, H, W) re-normalised, resized images
    float* col;            // (B, L, C*p*p) im2col patches
    float* x;              // (B, T, D) residual stream
    float* ln;             // (B, T, D) norm outputs, patch embeddings, proj output
    float* qkv;            // (B, T, 3D)
    float* atty;           // (B, T, D) attention output, fc2 output
    float* hid;            // (B, T, Hm)
    float *mean_s, *rstd_s;       // (B, T) layernorm statistics (unused)
    float* lse;            // (B, heads, T) attention row log-sum-exp (unused)
    attn_ws attn;          // attention workspace (ops.h), in acts
} mim_teacher;

// Loads the teacher in PATH for a student patch grid grid_h x grid_w and
// batches up to max_batch, allocating every buffer. mim_teacher_set_input
// must then describe the student's images before the first forward (the
// grid alone does not give their size). Returns 0 or a negative MIM_E*
// code with mim_err_msg() set (the file name and the first offending tensor
// or value); *t is then zeroed and needs no free. grid_h or grid_w <= 0:
// the teacher's native grid.
int mim_teacher_load(mim_teacher* t, const char* path, int grid_h, int grid_w, int max_batch);

// Describes the student's images: (C, H, W) normalised as (x - mean) / std
// per channel on the [0, 1] pixel scale (mean, std: C values, e.g. from
// mim_source_normalization; NULL for mimscale's defaults, ImageNet or its
// gray average, see mim_transform_default). C must equal the
// teacher's channels, or be 1 (replicated to the teacher's channels). Any
// H, W >= 1: the images are resized to the teacher's input. 0 or MIM_EARG.
int mim_teacher_set_input(mim_teacher* t, int C, int H, int W, const float* mean, const float* std);

// Feature width D.
int mim_teacher_dim(const mim_teacher* t);

// out (B, gh*gw, D) = the patch tokens (no class token) of block `layer`
// (-1 = last, with the final norm; see the top) for imgs (B, in_C, in_H,
// in_W) normalised with the input mean/std. B <= max_batch. Allocates
// nothing; layer outside [-1, depth), B out of range or no
// mim_teacher_set_input yet is a CHECK.
void mim_teacher_forward(mim_teacher* t, float* out, const float* imgs, int B, int layer);

void mim_teacher_free(mim_teacher* t);

// Multi-line human-readable summary: scheme, architecture, width, depth,
// heads, patch, native resolution, run grid, MLP width, activation, norms,
// mean/std.
void mim_teacher_describe(const mim_teacher* t, FILE* f);

// "timm/MAE", "OpenAI CLIP", "HF CLIP".
const char* mim_teacher_scheme_name(mim_teacher_scheme s);
