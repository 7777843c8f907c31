// head.h: the classification head of fine-tuning and the scratch baseline
// (MAE main_finetune.py on timm's VisionTransformer): with global_pool the
// mean of the last block's patch tokens (before the encoder norm) through
// fc_norm, otherwise the cls token after the encoder norm; then head, a
// linear layer to K logits. Its parameters live beside the encoder's (their
// own table, for the optimizer and checkpoints: train/checkpoint.h
// mim_ckpt_extra). Shapes: B batch, T = 1 + L tokens, D width, K classes.
#pragma once
#include <stddef.h>
#include "core/rng.h"
#include "model/mae.h"

enum { MIM_HEAD_NORM_W, MIM_HEAD_NORM_B, MIM_HEAD_W, MIM_HEAD_B, MIM_HEAD_N };

typedef struct {
    mim_param table[MIM_HEAD_N];   // fc_norm.weight/bias (D), head.weight (K, D), head.bias (K)
    float *params, *grads;         // (n)
    size_t n;
    int D, K;
    // activations and gradients for max_batch
    float *pooled, *normed;        // (B, D) pooled tokens, the features the linear layer reads
    float *mean, *rstd;            // (B) fc_norm statistics
    float *logits, *probs, *dlogits, *targets;   // (B, K); targets: soft labels (mixup, smoothing)
    float *dfeat, *dpooled;        // (B, D)
    float *dlast;                  // (B, T, D) gradient handed to the encoder
} mim_cls_head;

// Allocates for batches up to B of T tokens; fc_norm 1/0, head.weight
// N(0, 2e-5) (MAE's trunc_normal_(std=2e-5)) from r, bias 0. 0 or MIM_ENOMEM.
int mim_cls_head_init(mim_cls_head* h, int D, int K, int B, int T, mim_rng* r);
void mim_cls_head_free(mim_cls_head* h);
// latent: m's final-norm tokens (B, T, D) (mim_mae_encode); the pooled path
// reads m->enc[depth-1].out. Fills h->logits (B, K) and what the backward needs.
void mim_cls_head_forward(mim_cls_head* h, const mim_mae* m, const float* latent, int B, int global_pool);
// d/d of mim_cls_head_forward given h->dlogits: accumulates h->grads, then
// runs the encoder's backward (mim_mae_encode_backward) into m->grads.
void mim_cls_head_backward(mim_cls_head* h, mim_mae* m, int B, int global_pool);
