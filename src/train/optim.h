// optim.h: AdamW (torch.optim.AdamW semantics, decoupled weight decay),
// global gradient-norm clipping, and MAE's learning-rate schedule.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "model/mae.h"

typedef struct {
    float lr, beta1, beta2, eps, weight_decay;
} mim_adamw_hparams;

typedef struct {
    size_t n;          // floats, equal to the model's parameter buffer
    float *m, *v;      // first and second moments (n)
    int64_t t;         // updates applied so far
} mim_adamw;

int mim_adamw_init(mim_adamw* opt, size_t n);
void mim_adamw_free(mim_adamw* opt);
// One update of every trainable tensor of the table: decay only where
// param->decay (no decay on biases and 1-D params, as timm/MAE).
void mim_adamw_step(mim_adamw* opt, const mim_param* table, int nparams,
                    float* params, const float* grads, const mim_adamw_hparams* hp);
// As mim_adamw_step with per-tensor lr multipliers lr_scale[k] (layer-wise lr
// decay) and per-tensor decay switches decay[k] overriding table[k].decay
// (either array may be NULL).
void mim_adamw_step_groups(mim_adamw* opt, const mim_param* table, int nparams, float* params,
                           const float* grads, const mim_adamw_hparams* hp,
                           const float* lr_scale, const uint8_t* decay);
// L2 norm over the trainable gradients (double accumulation).
double mim_grad_norm(const mim_param* table, int nparams, const float* grads);
// Scales the trainable gradients by max_norm / (norm + 1e-6) when norm >
// max_norm (torch.nn.utils.clip_grad_norm_). Returns the norm before.
double mim_clip_grad_norm(const mim_param* table, int nparams, float* grads, double max_norm);

// MAE schedule per optimizer step s of `total`: linear warm-up from 0 over
// `warmup` steps, then half-cycle cosine from lr to min_lr.
float mim_lr_at(int64_t s, int64_t total, int64_t warmup, float lr, float min_lr);

// Gradient accumulation over micro-batches as a fold kept apart from each
// backward: micro-batch k's gradients g_k are computed into zeroed buffers
// and summed ((g_0 + g_1) + g_2) + ..., the order in which the data-parallel
// reduction sums ranks (train/dist.h), so 1 process x --accum N and N ranks
// give the same bits. (A backward accumulating into the previous micro-
// batches' sums would add each partial product to them in another order.)
//   mim_grad_accum_init(&ga, accum, n);
//   per step: zero grads; for k: backward; if k < accum - 1:
//   mim_grad_accum_push(&ga, grads, k) (grads zeroed again); after the last:
//   mim_grad_accum_finish(&ga, grads) (grads = the sum)
// Holds no buffer when accum == 1 (push is never called, finish does nothing).
typedef struct {
    float* acc;            // (n,) the sum of the micro-batches pushed so far; NULL when accum == 1
    size_t n;
    int accum;
} mim_grad_accum;
int mim_grad_accum_init(mim_grad_accum* ga, int accum, size_t n);
void mim_grad_accum_free(mim_grad_accum* ga);
void mim_grad_accum_push(mim_grad_accum* ga, float* grads, int k);
void mim_grad_accum_finish(const mim_grad_accum* ga, float* grads);
