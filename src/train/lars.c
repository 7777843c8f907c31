// lars.c: MAE's LARS (see lars.h). Norms are accumulated in double.
#include "train/lars.h"
#include "core/check.h"
#include <math.h>
#include <string.h>

int mim_lars_init(mim_lars* opt, size_t n) {
    opt->n = n;
    opt->mu = mim_calloc(n ? n : 1, sizeof(float));
    return opt->mu ? 0 : MIM_ENOMEM;
}

void mim_lars_free(mim_lars* opt) {
    free(opt->mu);
    opt->mu = NULL;
    opt->n = 0;
}

void mim_lars_update(float* p, const float* g, float* mu, size_t n, int adapt, const mim_lars_hparams* hp) {
    const float mom = hp->momentum, lr = hp->lr;
    if (!adapt) {
        for (size_t i = 0; i < n; i++) {
            mu[i] = mom * mu[i] + g[i];
            p[i] -= lr * mu[i];
        }
        return;
    }
    const float wd = hp->weight_decay;
    double pn = 0.0, un = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)g[i] + (double)wd * p[i];
        pn += (double)p[i] * p[i];
        un += d * d;
    }
    pn = sqrt(pn); un = sqrt(un);
    float q = (pn > 0.0 && un > 0.0) ? (float)(hp->trust * pn / un) : 1.0f;
    for (size_t i = 0; i < n; i++) {
        float d = (g[i] + wd * p[i]) * q;
        mu[i] = mom * mu[i] + d;
        p[i] -= lr * mu[i];
    }
}

void mim_lars_step(mim_lars* opt, const mim_param* table, int nparams,
                   float* params, const float* grads, const mim_lars_hparams* hp) {
    for (int t = 0; t < nparams; t++) {
        const mim_param* p = &table[t];
        if (!p->trainable) continue;
        CHECK(p->offset + p->numel <= opt->n);
        mim_lars_update(params + p->offset, grads + p->offset, opt->mu + p->offset, p->numel, p->ndim > 1, hp);
    }
}
