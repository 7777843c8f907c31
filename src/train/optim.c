// optim.c: AdamW, gradient clipping, learning-rate schedule (see optim.h).
#include "train/optim.h"
#include "core/check.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

int mim_adamw_init(mim_adamw* opt, size_t n) {
    memset(opt, 0, sizeof *opt);
    opt->n = n;
    opt->m = mim_calloc(n, sizeof(float));
    opt->v = mim_calloc(n, sizeof(float));
    if (!opt->m || !opt->v) { mim_adamw_free(opt); return MIM_ENOMEM; }
    return 0;
}

void mim_adamw_free(mim_adamw* opt) {
    free(opt->m); free(opt->v);
    memset(opt, 0, sizeof *opt);
}

void mim_adamw_step(mim_adamw* opt, const mim_param* table, int nparams,
                    float* params, const float* grads, const mim_adamw_hparams* hp) {
    mim_adamw_step_groups(opt, table, nparams, params, grads, hp, NULL, NULL);
}

void mim_adamw_step_groups(mim_adamw* opt, const mim_param* table, int nparams, float* params,
                           const float* grads, const mim_adamw_hparams* hp,
                           const float* lr_scale, const uint8_t* decay_on) {
    opt->t++;
    double bc1 = 1.0 - pow(hp->beta1, (double)opt->t);
    double bc2 = 1.0 - pow(hp->beta2, (double)opt->t);
    float inv_sqrt_bc2 = (float)(1.0 / sqrt(bc2));
    float b1 = hp->beta1, b2 = hp->beta2, eps = hp->eps;
    for (int k = 0; k < nparams; k++) {
        const mim_param* p = &table[k];
        if (!p->trainable) continue;
        float lr = hp->lr * (lr_scale ? lr_scale[k] : 1.0f);
        float step = (float)(lr / bc1);
        int dk = decay_on ? decay_on[k] : p->decay;
        float decay = dk ? 1.0f - lr * hp->weight_decay : 1.0f;
        float* x = params + p->offset;
        const float* g = grads + p->offset;
        float* m = opt->m + p->offset;
        float* v = opt->v + p->offset;
        size_t n = p->numel;
        #pragma omp parallel for simd if (n >= 16384)
        for (size_t i = 0; i < n; i++) {
            float gi = g[i];
            m[i] = b1 * m[i] + (1.0f - b1) * gi;
            v[i] = b2 * v[i] + (1.0f - b2) * gi * gi;
            x[i] = x[i] * decay - step * m[i] / (sqrtf(v[i]) * inv_sqrt_bc2 + eps);
        }
    }
}

double mim_grad_norm(const mim_param* table, int nparams, const float* grads) {
    double s = 0.0;
    for (int k = 0; k < nparams; k++) {
        if (!table[k].trainable) continue;
        const float* g = grads + table[k].offset;
        double t = 0.0;
        #pragma omp parallel for reduction(+:t) if (table[k].numel >= 16384)
        for (size_t i = 0; i < table[k].numel; i++) t += (double)g[i] * g[i];
        s += t;
    }
    return sqrt(s);
}

double mim_clip_grad_norm(const mim_param* table, int nparams, float* grads, double max_norm) {
    double norm = mim_grad_norm(table, nparams, grads);
    if (max_norm > 0 && norm > max_norm) {
        float k = (float)(max_norm / (norm + 1e-6));
        for (int j = 0; j < nparams; j++) {
            if (!table[j].trainable) continue;
            float* g = grads + table[j].offset;
            for (size_t i = 0; i < table[j].numel; i++) g[i] *= k;
        }
    }
    return norm;
}

float mim_lr_at(int64_t s, int64_t total, int64_t warmup, float lr, float min_lr) {
    if (s < warmup) return lr * (float)s / (float)warmup;
    if (total <= warmup) return lr;
    double prog = (double)(s - warmup) / (double)(total - warmup);
    if (prog > 1.0) prog = 1.0;
    return (float)(min_lr + (lr - min_lr) * 0.5 * (1.0 + cos(M_PI * prog)));
}

int mim_grad_accum_init(mim_grad_accum* ga, int accum, size_t n) {
    ga->acc = NULL; ga->n = n; ga->accum = accum;
    if (accum <= 1) return MIM_OK;
    ga->acc = mim_malloc(sizeof(float) * (n ? n : 1));
    return ga->acc ? MIM_OK : mim_err(MIM_ENOMEM, "out of memory for the gradient accumulator (%zu floats)", n);
}

void mim_grad_accum_free(mim_grad_accum* ga) { free(ga->acc); ga->acc = NULL; }

void mim_grad_accum_push(mim_grad_accum* ga, float* grads, int k) {
    CHECK(ga->acc && k >= 0 && k < ga->accum - 1);
    float* acc = ga->acc;
    if (k == 0) {
        memcpy(acc, grads, sizeof(float) * ga->n);
    } else {
        #pragma omp parallel for schedule(static) if (ga->n >= 65536)
        for (size_t i = 0; i < ga->n; i++) acc[i] = acc[i] + grads[i];
    }
    memset(grads, 0, sizeof(float) * ga->n);
}

void mim_grad_accum_finish(const mim_grad_accum* ga, float* grads) {
    if (!ga->acc) return;
    const float* acc = ga->acc;
    #pragma omp parallel for schedule(static) if (ga->n >= 65536)
    for (size_t i = 0; i < ga->n; i++) grads[i] = acc[i] + grads[i];
}
