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
