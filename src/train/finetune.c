// finetune.c: the fine-tuning engine (see finetune.h) on the training
// harness (train/run.h): the encoder is a mim_mae built without decoder and
// without masking, the head (model/head.h) has its own small parameter
// table and AdamW state; evaluation (top-1 / top-5) runs inside the loop.
#include "train/finetune.h"
#include "core/check.h"
#include "core/prof.h"
#include "core/rng.h"
#include "data/randaug.h"
#include "data/index.h"
#include "data/source.h"
#include "model/head.h"
#include "model/mae.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include "train/run.h"
#include "train/mixup.h"
#include "train/optim.h"
#include "train/pretrain.h"
#include "core/mem.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <string.h>


// ---------------------------------------------------------------- eval

static int64_t divisor_at_most(int64_t n, int64_t want) {
    for (int64_t b = want < n ? want : n; b >= 1; b--)
        if (n % b == 0) return b;
    return 1;
}

// Top-1 / top-5 over every sample of the eval split. Data parallel: each
// rank takes a contiguous run of whole batches (the batches one process
// would use) and the counts are summed. A sample that cannot be read, or has
// no label among the K classes, is left out and counted in *n_skip (never
// replaced: each counted sample is a distinct one); past max_skip_frac, or
// with nothing counted, MIM_EDATA. Collective.
static int evaluate(mim_mae* m, mim_cls_head* h, const mim_source_config* base, int global_pool, double max_skip_frac,
                    float* top1, float* top5, int64_t* n_eval, int64_t* n_skip) {
    const mim_dist* d = mim_dist_get();
    mim_source_config sc = *base;
    sc.augment = 0; sc.shuffle = 0; sc.batch = 1; sc.rank = 0; sc.world = 1; sc.no_replace = 1;
    mim_source* s = NULL;
    float* imgs = NULL;
    int32_t* labels = NULL;
    int64_t c1 = 0, c5 = 0, seen = 0, K = h->K, n = 0;
    int rc = mim_source_open(&s, &sc);   // batch 1 first, to learn the size
    if (rc) goto out;
    n = mim_source_size(s);
    mim_source_close(s);
    s = NULL;
    sc.batch = (int)divisor_at_most(n, m->max_batch);
    if ((rc = mim_source_open(&s, &sc))) goto out;
    int C, H, W;
    mim_source_geometry(s, &C, &H, &W);
    imgs = mim_malloc(sizeof(float) * (size_t)sc.batch * C * H * W);
    labels = mim_malloc(sizeof(int32_t) * (size_t)sc.batch);
    if (!imgs || !labels) { rc = MIM_ENOMEM; goto out; }
    m->drop_active = 0;
    int64_t nb = n / sc.batch, b0 = nb * d->rank / d->world, b1 = nb * (d->rank + 1) / d->world;
    if ((rc = mim_source_set_position(s, (mim_source_pos){0, b0 * sc.batch}))) goto out;
    for (int64_t i = b0; i < b1; i++) {
        if ((rc = mim_source_next(s, imgs, labels))) goto out;
        const float* lat = mim_mae_encode(m, imgs, sc.batch);
        mim_cls_head_forward(h, m, lat, sc.batch, global_pool);
        for (int b = 0; b < sc.batch; b++) {
            const float* lg = h->logits + (size_t)b * K;
            int y = labels[b], rank = 0;
            if (y < 0 || y >= K) continue;
            for (int k = 0; k < K; k++) rank += lg[k] > lg[y] || (lg[k] == lg[y] && k < y);
            c1 += rank == 0; c5 += rank < 5; seen++;
        }
    }
out:;
    double v[4] = {(double)c1, (double)c5, (double)seen, rc != 0};
    mim_dist_allreduce_sum_dv(v, 4);   // every rank, failed or not
    if (!rc && v[3] > 0) rc = mim_err(MIM_EIO, "evaluation failed on another rank (see its message)");
    *top1 = v[2] > 0 ? (float)(v[0] / v[2]) : 0;
    *top5 = v[2] > 0 ? (float)(v[1] / v[2]) : 0;
    *n_eval = (int64_t)v[2];
    *n_skip = n - (int64_t)v[2];
    if (!rc) {
        double allow = max_skip_frac > 0 ? max_skip_frac : MIM_DEFAULT_SKIP_FRAC;
        if (*n_eval == 0)
            rc = mim_err(MIM_EDATA, "%s: no evaluation sample could be read with a label among the %lld classes (%lld "
                         "samples)", base->path, (long long)K, (long long)n);
        else if ((double)*n_skip / (double)n > allow)
            rc = mim_err(MIM_EDATA, "%s: %lld of %lld evaluation samples left out (unreadable, corrupt or unlabelled), "
                         "more than the %.3g%% allowed; fix the data or allow it with --max-skip-frac", base->path,
                         (long long)*n_skip, (long long)n, 100 * allow);
    }
    free(imgs); free(labels);
    mim_source_close(s);
    return rc;
}

// ---------------------------------------------------------------- training

// Layer id as MAE's lr_decay.get_layer_id_for_vit: embeddings 0, block i ->
// i + 1, everything after the blocks depth + 1.
int mim_vit_layer_id(const char* name, int depth) {
    if (!strcmp(name, "cls_token") || !strcmp(name, "pos_embed") || !strncmp(name, "patch_embed", 11)) return 0;
    if (!strncmp(name, "blocks.", 7)) return atoi(name + 7) + 1;
    return depth + 1;
}

// The settings a resume must match (not threads, quiet, resume, keep, ...).
static char* args_json(const mim_finetune_args* a, const mim_config* c) {
    cJSON* j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "init", a->init_random ? "random" : (a->ckpt ? a->ckpt : ""));
    cJSON_AddStringToObject(j, "model", c->name);
    cJSON_AddNumberToObject(j, "img_h", c->img_h); cJSON_AddNumberToObject(j, "img_w", c->img_w);
    cJSON_AddNumberToObject(j, "in_chans", c->in_chans); cJSON_AddNumberToObject(j, "patch", c->patch);
    cJSON_AddNumberToObject(j, "dim", c->dim); cJSON_AddNumberToObject(j, "depth", c->depth);
    cJSON_AddNumberToObject(j, "heads", c->heads);
    cJSON_AddStringToObject(j, "data", a->data ? a->data : "");
    cJSON_AddStringToObject(j, "data_split", a->data_split ? a->data_split : "");
    cJSON_AddStringToObject(j, "subset", a->subset ? a->subset : "");
    cJSON_AddStringToObject(j, "eval_data", a->eval_data ? a->eval_data : "");
    cJSON_AddStringToObject(j, "eval_split", a->eval_split ? a->eval_split : "");
    mim_run_args_schedule(j, (int64_t)a->batch * a->accum * mim_dist_get()->world, a->epochs, a->steps, a->blr, a->lr,
                          a->min_lr, a->warmup_epochs, a->warmup_steps);
    cJSON_AddNumberToObject(j, "weight_decay", a->weight_decay); cJSON_AddNumberToObject(j, "layer_decay", a->layer_decay);
    cJSON_AddNumberToObject(j, "drop_path", a->drop_path); cJSON_AddNumberToObject(j, "smoothing", a->smoothing);
    cJSON_AddNumberToObject(j, "mixup", a->mixup); cJSON_AddNumberToObject(j, "cutmix", a->cutmix);
    cJSON_AddNumberToObject(j, "reprob", a->reprob);
    cJSON_AddStringToObject(j, "aa", a->aa ? a->aa : "");
    cJSON_AddNumberToObject(j, "global_pool", a->global_pool);
    cJSON_AddNumberToObject(j, "seed", (double)a->seed);
    char* s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

// Accuracies so far and the running training loss, as the checkpoint's
// "engine" metadata (%.17g: a resumed run prints the same numbers).
static void engine_format(char* buf, size_t cap, const mim_finetune_result* res, double loss_acc, int nloss) {
    snprintf(buf, cap, "{\"best_top1\": %.9g, \"top1\": %.9g, \"top5\": %.9g, \"loss_acc\": %.17g, \"nloss\": %d}",
             res->best_top1, res->top1, res->top5, loss_acc, nloss);
}

static int engine_parse(const char* js, mim_finetune_result* res, double* loss_acc, int* nloss) {
    cJSON* j = cJSON_Parse(js);
    const char* keys[] = {"best_top1", "top1", "top5", "loss_acc", "nloss"};
    double v[5];
    int ok = j != NULL;
    for (int k = 0; k < 5 && ok; k++) {
        const cJSON* x = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
        ok = cJSON_IsNumber(x);
        if (ok) v[k] = x->valuedouble;
    }
    cJSON_Delete(j);
    if (!ok) return -1;
    res->best_top1 = (float)v[0]; res->top1 = (float)v[1]; res->top5 = (float)v[2];
    *loss_acc = v[3]; *nloss = (int)v[4];
    return 0;
}

// What fine-tuning with this batch will hold: the encoder (mim_mae_bytes),
// AdamW's moments, the head for up to 1000 classes (its parameters,
// gradients, moments and activations), the batch buffers and the training
// and evaluation sources. 0 for an invalid config (mim_mae_init says why).
// With accumulation (accum > 1, or a batch below the asked one, which the
// gate's hint pairs with --accum) also the accumulators (train/optim.h).
typedef struct { const mim_config* c; const mim_source_config *sc, *ec; int batch, accum; } need_ctx;
static uint64_t finetune_need(void* ctx, int batch, char* detail, size_t cap) {
    const need_ctx* nx = ctx;
    const mim_config* c = nx->c;
    const mim_source_config *sc = nx->sc, *ec = nx->ec;
    mim_mae_mem mm;
    if (!mim_mae_bytes(c, batch, &mm)) return 0;
    uint64_t data = mim_run_data_bytes(sc, ec, batch);
    uint64_t D = (uint64_t)c->dim, K = 1000, B = (uint64_t)batch, T = (uint64_t)mim_config_num_patches(c) + 1;
    uint64_t head = 4 * (2 * D + K * D + K) * 4 + (B * (4 * D + 2 + 5 * K) + B * T * D) * 4;
    uint64_t optim = 2 * (uint64_t)mm.num_floats * sizeof(float);
    int acc = nx->accum > 1 || batch < nx->batch;
    if (acc) optim += (uint64_t)mm.num_floats * sizeof(float) + (2 * D + K * D + K) * 4;
    uint64_t per = (uint64_t)c->in_chans * c->img_h * c->img_w;
    uint64_t bufs = B * (per * 4 + 4) + per * 3 * (uint64_t)omp_get_max_threads();
    mim_run_need_detail(detail, cap, mm.acts + mm.scratch + bufs + head, batch, mm.params + mm.grads,
                        acc ? " + accumulators" : "", optim, data);
    return mm.total + optim + head + bufs + data;
}

// The loop's state: what every step reads, the running loss and accuracies.
typedef struct {
    const mim_finetune_args* a;
    const mim_dist* d;
    const mim_config* c;
    mim_mae* m;
    mim_cls_head* h;
    mim_adamw *opt, *hopt;
    mim_grad_accum *ga, *ga_head;
    mim_source* src;
    const mim_source_config* ec;   // the evaluation data
    const mim_randaug* ra;         // NULL: no RandAugment
    float* imgs;
    int32_t* labels;
    uint8_t* u8;
    uint64_t* dp_seeds;
    const float* lr_scale;
    const uint8_t* decay;
    size_t per;                    // floats per image
    int K;
    float mean[3], stdv[3];
    mim_adamw_hparams hp;
    mim_mixup mx;
    int64_t total, warmup, spe, per_step;
    float lr;
    double step_loss, loss_acc;    // the last step's loss (summed over micro-batches), the running sum
    int nloss;
    mim_finetune_result* res;
    char best_path[4200], last_path[4200];
} ft_loop;

// One optimizer step: accum micro-batches of RandAugment, erasing, mixup /
// cutmix, drop path, encoder + head forward and backward; the all-reduce;
// AdamW with layer-wise lr decay on the encoder, plain on the head.
static int ft_step(void* ctx, mim_run* r, int64_t step) {
    ft_loop* x = ctx;
    const mim_finetune_args* a = x->a;
    const mim_dist* d = x->d;
    const mim_config* c = x->c;
    mim_mae* m = x->m;
    mim_cls_head* h = x->h;
    int K = x->K, rc;
    size_t per = x->per;
    x->hp.lr = mim_lr_at(step, x->total, x->warmup, x->lr, a->min_lr);
    mim_mae_zero_grad(m);
    memset(h->grads, 0, sizeof(float) * h->n);
    double step_loss = 0;
    for (int k = 0; k < a->accum; k++) {
        if ((rc = mim_source_next(x->src, x->imgs, x->labels)) == 0)
            for (int b = 0; b < a->batch; b++)   // the targets index by label: a data error, not a CHECK
                if (x->labels[b] < 0 || x->labels[b] >= K) {
                    rc = mim_err(MIM_EFORMAT, "%s: a training sample has label %d, outside the %d classes (unlabelled "
                                 "or corrupt sample; fine-tuning needs every sample labelled)", a->data, x->labels[b], K);
                    break;
                }
        if (rc && d->world > 1) {   // the others wait in a collective
            fprintf(stderr, "rank %d: error: %s\n", d->rank, mim_err_msg());
            mim_dist_abort(1);
        }
        if (rc) return rc;
        // randomness from the global micro-batch index: rank r's k-th is the
        // step's micro-batch k * world + r (data/loader.h), so N ranks and
        // 1 process x accum N draw alike
        uint64_t mb = (uint64_t)step * a->accum * d->world + (uint64_t)k * d->world + (uint64_t)d->rank;
        uint64_t sseed = a->seed * 0x9e3779b97f4a7c15ULL + mb;
        for (int b = 0; b < a->batch; b++)
            x->dp_seeds[b] = (sseed ^ 0x5bd1e9955bd1e995ULL) + (uint64_t)b * 0x94d049bb133111ebULL;
        // RandAugment (on uint8 pixels) and random erasing, per sample
        #pragma omp parallel for schedule(static)
        for (int b = 0; b < a->batch; b++) {
            mim_rng rs;
            mim_rng_seed(&rs, sseed ^ ((uint64_t)b * 0xd1b54a32d192ed03ULL));
            float* im = x->imgs + (size_t)b * per;
            if (x->ra) {
                uint8_t* px = x->u8 + per * 3 * (size_t)omp_get_thread_num();
                int HW = c->img_h * c->img_w, C = c->in_chans;
                for (int ch = 0; ch < C; ch++)
                    for (int i = 0; i < HW; i++) {
                        float v = (im[(size_t)ch * HW + i] * x->stdv[ch] + x->mean[ch]) * 255.0f + 0.5f;
                        px[(size_t)i * C + ch] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
                    }
                mim_randaug_apply(x->ra, &rs, px, c->img_h, c->img_w, C, px + per);
                for (int ch = 0; ch < C; ch++)
                    for (int i = 0; i < HW; i++)
                        im[(size_t)ch * HW + i] = (px[(size_t)i * C + ch] / 255.0f - x->mean[ch]) / x->stdv[ch];
            }
            if (a->reprob > 0) mim_random_erase(im, c->in_chans, c->img_h, c->img_w, a->reprob, &rs);
        }
        // mixup / cutmix within the micro-batch (x.flip(0), as timm does on
        // each rank of a DDP run), one draw per micro-batch
        mim_rng rb;
        mim_rng_seed(&rb, sseed ^ 0xabcdef);
        mim_mix_params mp;
        mim_mixup_draw(&mp, &x->mx, &rb, c->img_h, c->img_w);
        mim_mixup_apply(x->imgs, &mp, a->batch, c->in_chans, c->img_h, c->img_w);
        mim_mixup_targets(h->targets, x->labels, mp.lam, x->mx.label_smoothing, a->batch, K);
        mim_mae_drop_path_seeded(m, a->drop_path, a->batch, x->dp_seeds);
        const float* lat = mim_mae_encode(m, x->imgs, a->batch);
        mim_cls_head_forward(h, m, lat, a->batch, a->global_pool);
        step_loss += mim_soft_ce_forward(h->logits, h->targets, h->probs, a->batch, K);
        memset(h->dlogits, 0, sizeof(float) * (size_t)a->batch * K);
        // the mean over the global batch
        mim_soft_ce_backward(h->dlogits, h->probs, h->targets, 1.0f / ((float)a->accum * d->world), a->batch, K);
        // without accumulation the encoder backward hands finished blocks
        // to MPI (with it, a block is final only after the fold)
        int overlap = a->accum == 1 && d->world > 1;
        if (overlap) mim_dist_grads_begin(m->grads, m->num_floats);
        m->grad_ready = overlap ? mim_dist_grads_ready : NULL;
        mim_cls_head_backward(h, m, a->batch, a->global_pool);
        m->grad_ready = NULL;
        if (k < a->accum - 1) { mim_grad_accum_push(x->ga, m->grads, k); mim_grad_accum_push(x->ga_head, h->grads, k); }
    }
    mim_grad_accum_finish(x->ga, m->grads);
    mim_grad_accum_finish(x->ga_head, h->grads);
    if (d->world > 1) {   // sums in rank order (train/dist.h)
        if (a->accum > 1) mim_dist_grads_begin(m->grads, m->num_floats);
        mim_dist_grads_finish(1.0f);
        mim_dist_allreduce_sum(h->grads, h->n);
        step_loss = mim_dist_allreduce_sum_d(step_loss) / d->world;
    }
    if (!isfinite(step_loss))   // the same verdict on every rank
        return mim_err(MIM_EARG, "loss is %f at step %lld; stopping", step_loss / a->accum, (long long)step + 1);
    x->step_loss = step_loss;
    x->loss_acc += step_loss; x->nloss += a->accum;
    mim_adamw_step_groups(x->opt, m->table, m->nparams, m->params, m->grads, &x->hp, x->lr_scale, x->decay);
    mim_adamw_step(x->hopt, h->table, MIM_HEAD_N, h->params, h->grads, &x->hp);
    return 0;
}

static int ft_end_of_epoch(const ft_loop* x, int64_t done) { return done % x->spe == 0 || done == x->total; }

// After `done` steps: the metrics row, progress, and at the end of each
// eval_every-th epoch the evaluation with the best / last model files.
static int ft_after(void* ctx, mim_run* r, int64_t done) {
    ft_loop* x = ctx;
    const mim_finetune_args* a = x->a;
    mim_finetune_result* res = x->res;
    int rc = 0;
    int ee = a->eval_every > 1 ? a->eval_every : 1;
    int do_eval = (done % (x->spe * ee) == 0) || done == x->total;
    if (a->log_every > 0 && done % a->log_every == 0)
        mim_run_metric(r, "{\"step\": %lld, \"loss\": %.6f, \"lr\": %.6g}", (long long)done, x->step_loss / a->accum,
                       x->hp.lr);
    if (done % 10 == 0 || ft_end_of_epoch(x, done))
        mim_run_progress(r, "step %lld/%lld | loss %.4f | lr %.3g | %.1f img/s", (long long)done, (long long)x->total,
                         x->loss_acc / (x->nloss ? x->nloss : 1), x->hp.lr,
                         (double)(done - r->step0) * x->per_step / (mim_now_s() - r->t0));
    if (do_eval) {
        float t1, t5;
        if ((rc = evaluate(x->m, x->h, x->ec, a->global_pool, a->max_skip_frac, &t1, &t5, &res->n_eval, &res->n_skipped)))
            return rc;
        int best = t1 > res->best_top1;
        if (best) res->best_top1 = t1;
        if (x->d->rank == 0) {
            if (best) rc = mim_ckpt_save_classifier(x->best_path, x->m, x->h, a->global_pool);
            if (!rc) rc = mim_ckpt_save_classifier(x->last_path, x->m, x->h, a->global_pool);
        }
        if (x->d->world > 1 && mim_dist_allreduce_max_i64(rc != 0) && !rc)   // rank 0's write failed: all stop
            rc = mim_err(MIM_EIO, "rank 0 could not write the checkpoint");
        if (rc) return rc;
        res->top1 = t1; res->top5 = t5;
        mim_run_metric(r, "{\"epoch\": %.3f, \"step\": %lld, \"train_loss\": %.5f, \"lr\": %.4g, \"top1\": %.4f, "
                          "\"top5\": %.4f, \"best_top1\": %.4f, \"time_s\": %.1f}",
                       (double)done / x->spe, (long long)done, x->loss_acc / (x->nloss ? x->nloss : 1), x->hp.lr, t1,
                       t5, res->best_top1, r->t_before + (mim_now_s() - r->t0));
        if (r->loud)
            fprintf(stderr, "%sepoch %.2f: top-1 %.2f%% top-5 %.2f%% (best %.2f%%)\n", r->nl, (double)done / x->spe,
                    100 * t1, 100 * t5, 100 * res->best_top1);
        x->loss_acc = 0; x->nloss = 0;
    }
    res->steps = done;
    return 0;
}

// The run checkpoint: every save_every steps (0: each epoch).
static int ft_save_due(void* ctx, int64_t done) {
    const ft_loop* x = ctx;
    return x->a->save_every > 0 ? done % x->a->save_every == 0 : ft_end_of_epoch(x, done);
}

static void ft_save_extra(void* ctx, mim_train_state* st) {
    const ft_loop* x = ctx;
    engine_format(st->engine_json, sizeof st->engine_json, x->res, x->loss_acc, x->nloss);
}

int mim_finetune_run(const mim_finetune_args* a, mim_finetune_result* res) {
    memset(res, 0, sizeof *res);
    const mim_dist* d = mim_dist_get();
    int loud = !a->quiet && d->rank == 0;   // one progress line per job
    mim_run_threads(a->threads);
    double t_start = mim_now_s();
    mim_config c;
    int ck_gh = 0, ck_gw = 0, rc;
    if (a->init_random) {
        c = a->model;
    } else {
        if (!a->ckpt) return mim_err(MIM_EARG, "fine-tuning needs --ckpt (or --init random)");
        if ((rc = mim_ckpt_read_config(a->ckpt, &c))) return rc;
        ck_gh = c.img_h / c.patch; ck_gw = c.img_w / c.patch;
    }
    if (a->img > 0) c.img_h = c.img_w = a->img;
    c.mask_ratio = 0.0f;
    c.dec_dim = 0; c.dec_depth = 0; c.dec_heads = 1;

    mim_source_config sc = {.path = a->data, .split = a->data_split ? a->data_split : "train", .subset = a->subset,
                            .channels = c.in_chans, .height = c.img_h, .width = c.img_w, .batch = a->batch,
                            .augment = 1, .crop_min_scale = 0.08f, .shuffle = 1, .seed = a->seed,
                            .rank = d->rank, .world = d->world, .threads = a->data_threads,
                            .max_skip_frac = a->max_skip_frac};
    mim_source_config ec = sc;
    ec.path = a->eval_data ? a->eval_data : a->data;
    ec.split = a->eval_split ? a->eval_split : "t10k";
    ec.subset = NULL;
    if ((rc = mim_index_classes_check(sc.path, ec.path))) return rc;   // labels mean the same in both
    mim_source* src = NULL;
    uint64_t eb;
    int gc, gh, gw;
    if (mim_source_estimate(&sc, &eb, &gc, &gh, &gw) == 0) {   // the memory estimate, before allocating
        mim_config ce = c;
        ce.in_chans = gc; ce.img_h = gh; ce.img_w = gw;
        mim_source_config e2 = ec;
        e2.channels = gc; e2.height = gh; e2.width = gw;
        need_ctx nc = {&ce, &sc, &e2, a->batch, a->accum};
        if ((rc = mim_mem_gate("finetune", a->batch, a->accum, a->max_ram, loud, finetune_need, &nc))) return rc;
    }
    if ((rc = mim_source_open(&src, &sc))) return rc;
    mim_source_geometry(src, &c.in_chans, &c.img_h, &c.img_w);
    if ((rc = mim_check_input_geometry(&c, a->img > 0 ? NULL : a->init_random ? "the data's" : "the checkpoint's",
                                       a->init_random))) {
        mim_source_close(src);
        return rc;
    }
    sc.channels = ec.channels = c.in_chans; sc.height = ec.height = c.img_h; sc.width = ec.width = c.img_w;
    int K = mim_source_num_classes(src);

    mim_mae m = {0};
    mim_cls_head h = {0};
    mim_adamw opt = {0}, hopt = {0};
    mim_grad_accum ga = {0}, ga_head = {0};
    mim_randaug ra;
    char* aj = NULL;
    float *imgs = NULL, *lr_scale = NULL;
    uint8_t *decay = NULL, *u8 = NULL;
    int32_t *labels = NULL;
    uint64_t* dp_seeds = NULL;
    mim_run run = {0};
    int use_ra = a->aa && a->aa[0] && strcmp(a->aa, "none") != 0;
    if (K < 2) { rc = mim_err(MIM_EARG, "%s: fine-tuning needs labels (found %d classes)", a->data, K); goto done; }
    if (use_ra && (rc = mim_randaug_parse(&ra, a->aa))) goto done;
    if (use_ra) ra.interp = MIM_RA_BICUBIC;   // MAE passes interpolation='bicubic' to create_transform
    if ((rc = mim_mae_init(&m, &c, a->batch))) goto done;
    if ((rc = mim_mae_set_precision(&m, a->precision, a->bf16_backend))) goto done;
    mim_rng r;
    mim_rng_seed(&r, a->seed ^ 0x5eed);
    if (a->init_random) {
        mim_mae_init_weights(&m, a->seed);
    } else if ((rc = mim_ckpt_load_encoder(&m, a->ckpt, ck_gh, ck_gw))) {
        goto done;
    }
    if ((rc = mim_cls_head_init(&h, c.dim, K, a->batch, m.T, &r))) goto done;
    mim_dist_bcast(m.params, m.num_floats, 0);   // identical start on every rank, whatever happened
    mim_dist_bcast(h.params, h.n, 0);
    // fine-tuning learns pos_embed; no decay on pos_embed / cls_token (MAE's no_weight_decay)
    lr_scale = mim_malloc(sizeof(float) * (size_t)m.nparams);
    decay = mim_malloc((size_t)m.nparams);
    if (!lr_scale || !decay) { rc = MIM_ENOMEM; goto done; }
    for (int i = 0; i < m.nparams; i++) {
        mim_param* p = &m.table[i];
        if (!strcmp(p->name, "pos_embed")) p->trainable = 1;
        if (a->global_pool && !strncmp(p->name, "norm.", 5)) p->trainable = 0;   // unused
        decay[i] = p->decay && strcmp(p->name, "cls_token") && strcmp(p->name, "pos_embed");
        lr_scale[i] = powf(a->layer_decay, (float)(c.depth + 1 - mim_vit_layer_id(p->name, c.depth)));
    }
    if ((rc = mim_adamw_init(&opt, m.num_floats)) || (rc = mim_adamw_init(&hopt, h.n)) ||
        (rc = mim_grad_accum_init(&ga, a->accum, m.num_floats)) || (rc = mim_grad_accum_init(&ga_head, a->accum, h.n)))
        goto done;
    size_t per = (size_t)c.in_chans * c.img_h * c.img_w;
    imgs = mim_malloc(sizeof(float) * per * a->batch);
    labels = mim_malloc(sizeof(int32_t) * a->batch);
    u8 = mim_malloc(per * 3 * (size_t)omp_get_max_threads());
    dp_seeds = mim_malloc(sizeof(uint64_t) * a->batch);
    if (!imgs || !labels || !u8 || !dp_seeds) { rc = MIM_ENOMEM; goto done; }
    int64_t spe = mim_source_batches_per_epoch(src) / a->accum;
    if (spe < 1) { rc = mim_err(MIM_EARG, "batch %d x accum %d is larger than the data set", a->batch, a->accum); goto done; }

    // Resume: encoder, head, both AdamW states, data position, accuracies.
    mim_ckpt_extra hx = {h.table, MIM_HEAD_N, h.params, &hopt};
    aj = args_json(a, &c);
    if (!aj) { rc = mim_err(MIM_ENOMEM, "out of memory"); goto done; }
    res->best_top1 = -1;
    mim_run_config rcfg = {.what = "finetune", .out = a->out, .quiet = a->quiet, .resume = a->resume, .keep = a->keep,
                           .io_retries = a->io_retries, .stopped_code = MIM_FINETUNE_STOPPED};
    if ((rc = mim_run_begin(&run, &rcfg, src, &m, &opt, &hx, aj))) goto done;
    ft_loop x = {.a = a, .d = d, .c = &c, .m = &m, .h = &h, .opt = &opt, .hopt = &hopt, .ga = &ga, .ga_head = &ga_head,
                 .src = src, .ec = &ec, .ra = use_ra ? &ra : NULL, .imgs = imgs, .labels = labels, .u8 = u8,
                 .dp_seeds = dp_seeds, .lr_scale = lr_scale, .decay = decay, .per = per, .K = K, .spe = spe, .res = res};
    if (run.resumed && engine_parse(run.st.engine_json, res, &x.loss_acc, &x.nloss)) {
        rc = mim_err(MIM_EFORMAT, "%s: the latest checkpoint lacks the fine-tuning state (metadata \"engine\")", a->out);
        goto done;
    }
    x.total = a->steps > 0 ? a->steps : (int64_t)ceil(a->epochs * spe);
    x.warmup = a->warmup_steps > 0 ? a->warmup_steps : (int64_t)(a->warmup_epochs * spe);
    if (x.warmup > x.total) x.warmup = x.total;
    x.per_step = (int64_t)a->batch * a->accum * d->world;   // images per optimizer step, all ranks
    x.lr = a->lr > 0 ? a->lr : a->blr * (float)x.per_step / 256.0f;
    mim_source_normalization(src, x.mean, x.stdv);
    x.hp = (mim_adamw_hparams){.beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = a->weight_decay};
    mim_mixup_default(&x.mx, K);
    x.mx.mixup_alpha = a->mixup; x.mx.cutmix_alpha = a->cutmix; x.mx.label_smoothing = a->smoothing;
    if (loud)
        fprintf(stderr, "finetune %s%s: %dx%dx%d, %d classes, %lld steps (%lld/epoch), batch %d x %d x %d ranks, "
                "lr %.3g, layer decay %.2f, drop path %.2f, mixup %.2f cutmix %.2f, %s, %d threads, %s\n",
                c.name, a->init_random ? " (from scratch)" : "", c.img_h, c.img_w, c.in_chans, K, (long long)x.total,
                (long long)spe, a->batch, a->accum, d->world, x.lr, a->layer_decay, a->drop_path, a->mixup, a->cutmix,
                use_ra ? a->aa : "no RandAugment", omp_get_max_threads(), mim_mae_precision_name(&m));
    snprintf(x.best_path, sizeof x.best_path, "%s/checkpoint-best.safetensors", a->out);
    snprintf(x.last_path, sizeof x.last_path, "%s/checkpoint-last.safetensors", a->out);
    res->steps = run.step0;
    mim_run_hooks hooks = {.step = ft_step, .after = ft_after, .save_due = ft_save_due, .save_extra = ft_save_extra};
    if ((rc = mim_run_loop(&run, x.total, x.total, &hooks, &x))) goto done;
    rc = mim_run_end(&run, x.total > run.step0 ? x.total : run.step0, a->max_skip_frac, "finetune (training data)", NULL);
done:
    res->seconds = mim_now_s() - t_start;
    mim_run_close(&run);
    free(aj);
    free(imgs); free(labels); free(dp_seeds); free(u8); free(lr_scale); free(decay);
    mim_adamw_free(&opt); mim_adamw_free(&hopt);
    mim_grad_accum_free(&ga); mim_grad_accum_free(&ga_head);
    mim_cls_head_free(&h);
    if (m.params) mim_mae_free(&m);
    mim_source_close(src);
    return rc;
}
