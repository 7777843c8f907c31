// linprobe.c: the linear probe on cached features (see linprobe.h).
// One allocation per buffer class: head parameters / grads / LARS momentum
// (one table of two tensors), batch activations, eval activations.
#include "eval/linprobe.h"
#include "core/check.h"
#include "core/rng.h"
#include "ops/batchnorm.h"
#include "ops/ops.h"
#include "train/lars.h"
#include "train/optim.h"
#include <math.h>
#include <omp.h>
#include <string.h>
#include <unistd.h>

#define BN_EPS 1e-6f
#define BN_MOMENTUM 0.1f
#define EVAL_CHUNK 4096

float mim_xent_forward(float* probs, const float* logits, const int32_t* labels, int N, int C) {
    double loss = 0.0;
    #pragma omp parallel for reduction(+ : loss) if ((size_t)N * C >= 65536)
    for (int n = 0; n < N; n++) {
        const float* l = logits + (size_t)n * C;
        float* p = probs + (size_t)n * C;
        float mx = l[0];
        for (int c = 1; c < C; c++) mx = l[c] > mx ? l[c] : mx;
        double s = 0.0;
        for (int c = 0; c < C; c++) s += exp((double)l[c] - mx);
        for (int c = 0; c < C; c++) p[c] = (float)(exp((double)l[c] - mx) / s);
        loss += log(s) + mx - l[labels[n]];
    }
    return (float)(loss / N);
}

void mim_xent_backward(float* dlogits, const float* probs, const int32_t* labels, float dloss, int N, int C) {
    float sc = dloss / N;
    for (int n = 0; n < N; n++) {
        float* d = dlogits + (size_t)n * C;
        const float* p = probs + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += sc * (p[c] - (c == labels[n]));
    }
}

void mim_linprobe_args_default(mim_linprobe_args* a) {
    memset(a, 0, sizeof *a);
    a->epochs = 20; a->batch = 256; a->blr = 10.0f; a->lr = 0; a->min_lr = 0;
    a->warmup_epochs = 2; a->weight_decay = 0; a->momentum = 0.9f; a->trust = 0.001f; a->seed = 0;
}

void mim_linprobe_result_free(mim_linprobe_result* r) {
    free(r->history);
    r->history = NULL;
}

// rank of the label among the logits: classes above it (ties: lower index first)
static int label_rank(const float* l, int C, int y) {
    int r = 0;
    for (int c = 0; c < C; c++) r += l[c] > l[y] || (l[c] == l[y] && c < y);
    return r;
}

typedef struct {
    int D, C;
    mim_param table[2];
    float *params, *grads;      // (C*D + C)
    float *W, *b, *dW, *db;     // views: (C, D), (C)
    float *run_mean, *run_var;  // (D) BatchNorm running statistics
} head;

static void evaluate(const head* h, const mim_features* ev, float* xb, float* logits, float* probs,
                     double* loss, double* top1, double* top5) {
    const int D = h->D, C = h->C;
    double l = 0.0;
    int64_t c1 = 0, c5 = 0;
    for (int64_t i0 = 0; i0 < ev->n; i0 += EVAL_CHUNK) {
        int n = (int)(ev->n - i0 < EVAL_CHUNK ? ev->n - i0 : EVAL_CHUNK);
        batchnorm1d_forward_eval(xb, ev->x + (size_t)i0 * D, h->run_mean, h->run_var, n, D, BN_EPS);
        matmul_forward(logits, xb, h->W, h->b, n, D, C);
        l += (double)mim_xent_forward(probs, logits, ev->labels + i0, n, C) * n;
        for (int i = 0; i < n; i++) {
            int r = label_rank(logits + (size_t)i * C, C, ev->labels[i0 + i]);
            c1 += r < 1;
            c5 += r < 5;
        }
    }
    *loss = l / ev->n;
    *top1 = (double)c1 / ev->n;
    *top5 = (double)c5 / ev->n;
}

int mim_linprobe_train(mim_linprobe_result* res, const mim_features* tr, const mim_features* ev,
                       const mim_linprobe_args* a) {
    memset(res, 0, sizeof *res);
    if (tr->dim != ev->dim || tr->dim < 1) return mim_err(MIM_EARG, "linprobe: feature widths differ (%d, %d)", tr->dim, ev->dim);
    if (tr->n < 2 || ev->n < 1) return mim_err(MIM_EARG, "linprobe: needs >= 2 train and >= 1 eval samples");
    if (a->epochs < 1 || a->batch < 1) return mim_err(MIM_EARG, "linprobe: epochs and batch must be >= 1");
    const int D = tr->dim, C = tr->num_classes > ev->num_classes ? tr->num_classes : ev->num_classes;
    if (C < 2) return mim_err(MIM_EARG, "linprobe: needs at least 2 classes (found %d)", C);
    int B = a->batch > tr->n ? (int)tr->n : a->batch;
    if (B < 2) B = 2;   // batch statistics need two samples
    const int64_t spe = tr->n / B, total = spe * a->epochs;
    const int64_t warm = (int64_t)llround((double)a->warmup_epochs * spe);
    const float lr = a->lr > 0 ? a->lr : a->blr * B / 256.0f;

    head h = {.D = D, .C = C};
    size_t np = (size_t)C * D + C;
    int ec = ev->n < EVAL_CHUNK ? (int)ev->n : EVAL_CHUNK, mx = B > ec ? B : ec;
    h.params = mim_calloc(2 * np + 2 * (size_t)D, sizeof(float));
    float* act = mim_malloc(((size_t)mx * D + 3 * (size_t)mx * C + 2 * (size_t)D) * sizeof(float));
    int32_t* lab = mim_malloc(sizeof(int32_t) * (size_t)B);
    uint32_t* order = mim_malloc(sizeof(uint32_t) * (size_t)tr->n);
    float* xin = mim_malloc(sizeof(float) * (size_t)B * D);
    mim_linprobe_epoch* hist = mim_calloc((size_t)a->epochs, sizeof *hist);
    mim_lars opt = {0};
    int rc = 0;
    if (!h.params || !act || !lab || !order || !xin || !hist || mim_lars_init(&opt, np)) { rc = MIM_ENOMEM; goto done; }
    h.grads = h.params + np;
    h.run_mean = h.grads + np;
    h.run_var = h.run_mean + D;
    h.W = h.params; h.b = h.params + (size_t)C * D;
    h.dW = h.grads; h.db = h.grads + (size_t)C * D;
    h.table[0] = (mim_param){.name = "head.1.weight", .ndim = 2, .shape = {C, D}, .offset = 0, .numel = (size_t)C * D, .trainable = 1, .decay = 1};
    h.table[1] = (mim_param){.name = "head.1.bias", .ndim = 1, .shape = {C}, .offset = (size_t)C * D, .numel = (size_t)C, .trainable = 1};
    float *xb = act, *logits = xb + (size_t)mx * D, *probs = logits + (size_t)mx * C, *dlogits = probs + (size_t)mx * C;
    float *bmean = dlogits + (size_t)mx * C, *brstd = bmean + D;
    for (int d = 0; d < D; d++) h.run_var[d] = 1.0f;   // torch's initial running stats: 0, 1

    mim_rng rng;
    mim_rng_seed(&rng, a->seed ^ 0x11e4a7b0be5ULL);
    for (size_t i = 0; i < (size_t)C * D; i++) h.W[i] = 0.01f * mim_rng_normal(&rng);   // trunc_normal_(std=0.01) in MAE: cut at +-2, i.e. 200 std
    for (int64_t i = 0; i < tr->n; i++) order[i] = (uint32_t)i;

    int tty = isatty(2);
    double t0 = omp_get_wtime();
    int64_t step = 0;
    mim_lars_hparams hp = {.momentum = a->momentum, .weight_decay = a->weight_decay, .trust = a->trust};
    for (int ep = 0; ep < a->epochs; ep++) {
        mim_rng_shuffle_u32(&rng, order, (uint64_t)tr->n);
        double lsum = 0.0;
        for (int64_t it = 0; it < spe; it++, step++) {
            for (int i = 0; i < B; i++) {
                uint32_t j = order[it * B + i];
                memcpy(xin + (size_t)i * D, tr->x + (size_t)j * D, sizeof(float) * D);
                lab[i] = tr->labels[j];
            }
            batchnorm1d_forward(xb, bmean, brstd, h.run_mean, h.run_var, xin, B, D, BN_EPS, BN_MOMENTUM);
            matmul_forward(logits, xb, h.W, h.b, B, D, C);
            lsum += mim_xent_forward(probs, logits, lab, B, C);
            memset(dlogits, 0, sizeof(float) * (size_t)B * C);
            mim_xent_backward(dlogits, probs, lab, 1.0f, B, C);
            memset(h.grads, 0, sizeof(float) * np);
            // the features are frozen and the BatchNorm has no parameters: no gradient flows below the linear
            matmul_backward(NULL, h.dW, h.db, dlogits, xb, h.W, B, D, C);
            hp.lr = mim_lr_at(step, total, warm, lr, a->min_lr);
            mim_lars_step(&opt, h.table, 2, h.params, h.grads, &hp);
        }
        mim_linprobe_epoch* e = &hist[ep];
        e->epoch = ep + 1;
        e->train_loss = lsum / spe;
        e->lr = hp.lr;
        evaluate(&h, ev, xb, logits, probs, &e->eval_loss, &e->top1, &e->top5);
        if (!isfinite(e->train_loss)) { rc = mim_err(MIM_EARG, "linprobe: the loss went non-finite at epoch %d (lower --blr)", ep + 1); goto done; }
        if (a->log)
            fprintf(a->log, "{\"epoch\":%d,\"train_loss\":%.6f,\"lr\":%.6g,\"eval_loss\":%.6f,\"top1\":%.6f,\"top5\":%.6f}\n",
                    e->epoch, e->train_loss, e->lr, e->eval_loss, e->top1, e->top5);
        if (!a->quiet) {
            double el = omp_get_wtime() - t0, eta = el / (ep + 1) * (a->epochs - ep - 1);
            fprintf(stderr, "%slinprobe epoch %d/%d | loss %.4f | top1 %.4f | top5 %.4f | ETA %.0fs   %s",
                    tty ? "\r" : "", ep + 1, a->epochs, e->train_loss, e->top1, e->top5, eta,
                    tty && ep + 1 < a->epochs ? "" : "\n");
            fflush(stderr);
        }
        if (e->top1 > res->best_top1) res->best_top1 = e->top1;
    }
    res->top1 = hist[a->epochs - 1].top1;
    res->top5 = hist[a->epochs - 1].top5;
    res->eval_loss = hist[a->epochs - 1].eval_loss;
    res->n_train = tr->n; res->n_eval = ev->n;
    res->batch = B; res->steps = (int)total; res->lr = lr; res->epochs = a->epochs;
    res->history = hist;
    hist = NULL;
done:
    free(h.params); free(act); free(lab); free(order); free(xin); free(hist);
    mim_lars_free(&opt);
    return rc;
}
