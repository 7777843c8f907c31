// lars.h: LARS, as MAE's util/lars.py (used by its linear probe; no
// rate scaling or weight decay on 1-D parameters and biases):
//   for each tensor p with gradient g:
//     if p.ndim > 1:  g = g + wd * p
//                     q = trust * |p| / |g| if |p| > 0 and |g| > 0 else 1
//                     g = q * g
//     mu = momentum * mu + g;   p -= lr * mu
// (mu starts at zero, so the first step is p -= lr * g.) Not a general
// optimiser zoo: SGD+momentum is this with trust scaling off (ndim 1).
#pragma once
#include <stddef.h>
#include "model/mae.h"

typedef struct {
    float lr, momentum, weight_decay, trust;   // MAE: trust_coefficient 0.001, momentum 0.9
} mim_lars_hparams;

typedef struct {
    size_t n;      // floats, equal to the parameter buffer it updates
    float* mu;     // momentum buffer (n), zero at init
} mim_lars;

// 0 or MIM_ENOMEM.
int mim_lars_init(mim_lars* opt, size_t n);
void mim_lars_free(mim_lars* opt);
// One update of every trainable tensor of the table (params / grads are the
// buffers the table's offsets index; opt->n must cover them). Adaptation and
// weight decay apply where param->ndim > 1.
void mim_lars_step(mim_lars* opt, const mim_param* table, int nparams,
                   float* params, const float* grads, const mim_lars_hparams* hp);
// One tensor: p, g, mu (n); adapt = apply decay and the trust ratio.
void mim_lars_update(float* p, const float* g, float* mu, size_t n, int adapt, const mim_lars_hparams* hp);
