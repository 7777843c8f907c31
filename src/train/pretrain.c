// pretrain.c: the pre-training loop (see pretrain.h).
#include "train/pretrain.h"
#include "core/check.h"
#include "core/fault.h"
#include "core/mem.h"
#include "core/rng.h"
#include "core/prof.h"
#include "data/source.h"
#include "model/hog.h"
#include "model/mae.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include "train/signals.h"
#include "train/dist.h"
#include "train/run.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "model/teacher.h"
#include "train/tcache.h"


// Seeds for independent streams: data order per epoch, noise per step.
static uint64_t stream_seed(uint64_t seed, uint64_t kind, uint64_t i) {
    return seed * 0x9e3779b97f4a7c15ULL ^ (kind << 56) ^ (i * 0xd1b54a32d192ed03ULL);
}

// ---------------------------------------------------------------- targets
// Where a micro-batch's targets come from. Pixel targets need nothing here
// (the model patchifies); hog and teacher fill buf (B, L, Pt) per batch.
typedef struct {
    mim_target kind;
    mim_hog_params hog;
    float* buf;            // (batch, L, Pt); NULL for pixel targets
    mim_teacher teacher;
    int teacher_loaded, layer, norm;
    mim_tcache cache;      // --teacher-cache: per-sample tokens on disk
    int cached;
} target_gen;

// Sets c->target_dim for the target of c and prepares tg (loads the
// teacher). 0 or an MIM_E* code with a message.
static int target_open(target_gen* tg, const mim_pretrain_args* a, mim_config* c, const mim_source* src) {
    memset(tg, 0, sizeof *tg);
    tg->kind = c->target;
    int rc;
    if (tg->kind == MIM_TARGET_HOG) {
        tg->hog = (mim_hog_params){.cell = a->hog_cell > 0 ? a->hog_cell : 8, .nbins = 9, .window = c->patch};
        if ((rc = mim_hog_check(&tg->hog, c->in_chans, c->img_h, c->img_w, c->patch))) {
            char why[512];
            snprintf(why, sizeof why, "%s", mim_err_msg());
            return mim_err(rc, "--target hog: %s", why);
        }
        c->target_dim = mim_hog_dim(&tg->hog, c->in_chans, c->patch);
    } else if (tg->kind == MIM_TARGET_TEACHER) {
        if (!a->teacher || !a->teacher[0]) return mim_err(MIM_EARG, "--target teacher needs --teacher FILE (the teacher checkpoint)");
        if ((rc = mim_teacher_load(&tg->teacher, a->teacher, c->img_h / c->patch, c->img_w / c->patch, a->batch))) return rc;
        tg->teacher_loaded = 1;
        float mean[3], std[3];   // the student's normalisation, which the teacher undoes
        mim_source_normalization(src, mean, std);
        if ((rc = mim_teacher_set_input(&tg->teacher, c->in_chans, c->img_h, c->img_w, mean, std))) {
            char why[512];
            snprintf(why, sizeof why, "%s", mim_err_msg());
            return mim_err(rc, "--teacher %s: %s", a->teacher, why);
        }
        tg->layer = a->teacher_layer;
        tg->norm = a->teacher_norm;
        c->target_dim = mim_teacher_dim(&tg->teacher);
        if (a->teacher_cache && a->teacher_cache[0]) {
            if (a->augment)
                return mim_err(MIM_EARG, "--teacher-cache needs --augment=0: augmented crops differ at every epoch, "
                               "so their teacher tokens cannot be reused");
            char key[8192];
            if ((rc = mim_tcache_key(key, sizeof key, a->teacher, a->teacher_layer, a->data, "train", c->in_chans,
                                     c->img_h, c->img_w, mean, std)))
                return rc;
            int L = (c->img_h / c->patch) * (c->img_w / c->patch);
            if ((rc = mim_tcache_open(&tg->cache, a->teacher_cache, key, mim_source_id_space(src), L, c->target_dim,
                                      a->batch, (size_t)c->in_chans * c->img_h * c->img_w)))
                return rc;
            tg->cached = 1;
        }
    } else {
        c->target_dim = 0;
        return 0;
    }
    size_t n = (size_t)a->batch * (c->img_h / c->patch) * (c->img_w / c->patch) * (size_t)c->target_dim;
    tg->buf = mim_malloc(sizeof(float) * n);
    return tg->buf ? 0 : MIM_ENOMEM;
}

static void target_close(target_gen* tg) {
    free(tg->buf);
    if (tg->cached) mim_tcache_close(&tg->cache);
    if (tg->teacher_loaded) mim_teacher_free(&tg->teacher);
    memset(tg, 0, sizeof *tg);
}

// The model's forward on one micro-batch with tg's targets, computed from
// the same (augmented, normalised) imgs the student sees. ids (B): the
// samples' ids, for the teacher cache (NULL: compute every target).
static float forward_with_target(mim_mae* m, target_gen* tg, const float* imgs, const int64_t* ids,
                                 const float* noise, int B) {
    if (!tg->buf) return mim_mae_forward(m, imgs, noise, B);
    const mim_config* c = &m->cfg;
    if (tg->kind == MIM_TARGET_HOG) {
        PROF(PROF_TARGET, mim_hog_forward(tg->buf, imgs, B, c->in_chans, c->img_h, c->img_w, c->patch, &tg->hog));
    } else {
        if (tg->cached && ids) PROF(PROF_TARGET, mim_tcache_features(&tg->cache, &tg->teacher, tg->buf, imgs, ids, B, tg->layer));
        else PROF(PROF_TARGET, mim_teacher_forward(&tg->teacher, tg->buf, imgs, B, tg->layer));
        if (tg->norm) PROF(PROF_TARGET, layernorm_rows(tg->buf, B * m->L, m->Pt, 1e-6f));
    }
    return mim_mae_forward_target(m, imgs, noise, tg->buf, B);
}

static char* args_json(const mim_pretrain_args* a, const mim_config* c) {
    cJSON* j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", c->name);
    cJSON_AddNumberToObject(j, "img_h", c->img_h); cJSON_AddNumberToObject(j, "img_w", c->img_w);
    cJSON_AddNumberToObject(j, "in_chans", c->in_chans); cJSON_AddNumberToObject(j, "patch", c->patch);
    cJSON_AddNumberToObject(j, "dim", c->dim); cJSON_AddNumberToObject(j, "depth", c->depth);
    cJSON_AddNumberToObject(j, "heads", c->heads); cJSON_AddNumberToObject(j, "dec_dim", c->dec_dim);
    cJSON_AddNumberToObject(j, "dec_depth", c->dec_depth); cJSON_AddNumberToObject(j, "dec_heads", c->dec_heads);
    cJSON_AddNumberToObject(j, "mask_ratio", c->mask_ratio); cJSON_AddNumberToObject(j, "norm_pix", c->target == MIM_TARGET_PIXEL_NORM);
    // Only for feature targets or another loss, so runs from before they
    // existed (pixel, mse) keep their settings string and still resume.
    mim_target t = c->target;
    if (t == MIM_TARGET_HOG || t == MIM_TARGET_TEACHER || c->loss != MIM_LOSS_MSE) {
        cJSON_AddStringToObject(j, "target", mim_target_name(t));
        cJSON_AddStringToObject(j, "loss", mim_loss_name(c->loss));
        cJSON_AddNumberToObject(j, "target_dim", c->target_dim);
        if (t == MIM_TARGET_HOG) cJSON_AddNumberToObject(j, "hog_cell", a->hog_cell > 0 ? a->hog_cell : 8);
        if (t == MIM_TARGET_TEACHER) {
            cJSON_AddStringToObject(j, "teacher", a->teacher ? a->teacher : "");
            cJSON_AddNumberToObject(j, "teacher_layer", a->teacher_layer);
            cJSON_AddNumberToObject(j, "teacher_norm", a->teacher_norm);
        }
    }
    cJSON_AddStringToObject(j, "data", a->data);
    cJSON_AddStringToObject(j, "subset", a->subset ? a->subset : "");
    mim_run_args_schedule(j, (int64_t)a->batch * a->accum * mim_dist_get()->world, a->epochs, a->steps, a->blr, a->lr,
                          a->min_lr, a->warmup_epochs, a->warmup_steps);
    cJSON_AddNumberToObject(j, "weight_decay", a->weight_decay);
    cJSON_AddNumberToObject(j, "clip_grad", a->clip_grad); cJSON_AddNumberToObject(j, "augment", a->augment);
    cJSON_AddNumberToObject(j, "seed", (double)a->seed);
    cJSON_AddNumberToObject(j, "on_nan", a->on_nan);
    char* s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

// Mean masked loss over the first nb batches of vs (file order, eval
// transform) with fixed masks: noise of batch i from (seed, i), the same at
// every validation, so the curve compares like with like.
static int validation_loss(mim_mae* m, target_gen* tg, mim_source* vs, int nb, uint64_t seed, float* imgs, float* noise,
                           double* out) {
    int rc = mim_source_set_position(vs, (mim_source_pos){0, 0});
    double sum = 0;
    int B = m->max_batch;
    for (int i = 0; i < nb && !rc; i++) {
        if ((rc = mim_source_next(vs, imgs, NULL))) break;
        mim_rng r;
        mim_rng_seed(&r, stream_seed(seed, 3, (uint64_t)i));
        for (size_t k = 0; k < (size_t)B * m->L; k++) noise[k] = mim_rng_uniform(&r);
        sum += forward_with_target(m, tg, imgs, NULL, noise, B);
    }
    *out = mim_dist_allreduce_sum_d(sum / nb) / mim_dist_get()->world;
    return rc;
}

// The first tensor of the table whose values (buf = params or grads) are
// not all finite, or NULL.
static const char* first_nonfinite(const mim_mae* m, const float* buf) {
    for (int k = 0; k < m->nparams; k++) {
        const float* x = buf + m->table[k].offset;
        for (size_t i = 0; i < m->table[k].numel; i++)
            if (!isfinite(x[i])) return m->table[k].name;
    }
    return NULL;
}

static void fmt_eta(char* buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "?"); return; }
    int h = (int)(s / 3600), m = (int)(fmod(s, 3600) / 60), sec = (int)fmod(s, 60);
    if (h) snprintf(buf, n, "%dh%02dm", h, m); else snprintf(buf, n, "%dm%02ds", m, sec);
}

// Fills noise (B, L) for the local micro-batch k of a step: each sample's
// masking noise comes from (seed, step, its position in the global batch),
// micro-batch k of rank r being the step's micro-batch k * world + r
// (data/loader.h), so N ranks x batch B and 1 process x batch B x accum N
// mask the same images alike.
static void step_noise(float* noise, int B, int L, int k, uint64_t seed, int64_t step, const mim_dist* d) {
    for (int b = 0; b < B; b++) {
        uint64_t gpos = ((uint64_t)k * d->world + (uint64_t)d->rank) * B + (uint64_t)b;
        mim_rng r;
        mim_rng_seed(&r, stream_seed(seed, 2, (uint64_t)step) ^ (gpos * 0xbf58476d1ce4e5b9ULL + 1));
        for (int l = 0; l < L; l++) noise[(size_t)b * L + l] = mim_rng_uniform(&r);
    }
}

// What a run with this batch will hold: the model (mim_mae_bytes), AdamW's
// two moments, the step's image and noise buffers, and the data sources.
// 0 when the config is invalid (mim_mae_init will say why).
// With accumulation (accum > 1, or a batch below the asked one, which the
// gate's hint pairs with --accum) also the accumulator (train/optim.h).
typedef struct { const mim_config* c; const mim_source_config *sc, *vc; int batch, accum; } need_ctx;   // vc may be NULL
static uint64_t pretrain_need(void* ctx, int batch, char* detail, size_t cap) {
    const need_ctx* nx = ctx;
    const mim_config* c = nx->c;
    const mim_source_config *sc = nx->sc, *vc = nx->vc;
    mim_mae_mem mm;
    if (!mim_mae_bytes(c, batch, &mm)) return 0;
    uint64_t data = mim_run_data_bytes(sc, vc, batch);
    uint64_t optim = 2 * (uint64_t)mm.num_floats * sizeof(float);
    int acc = nx->accum > 1 || batch < nx->batch;
    if (acc) optim += (uint64_t)mm.num_floats * sizeof(float);
    uint64_t bufs = (uint64_t)batch * ((uint64_t)c->in_chans * c->img_h * c->img_w + (uint64_t)mim_config_num_patches(c)) * 4;
    mim_run_need_detail(detail, cap, mm.acts + mm.scratch + bufs, batch, mm.params + mm.grads, acc ? " + accumulator" : "",
                        optim, data);
    return mm.total + optim + bufs + data;
}

int mim_check_input_geometry(const mim_config* c, const char* size_from, int patch_flag) {
    int p = c->patch, h = c->img_h, w = c->img_w;
    char from[128], pf[32];
    if (size_from) snprintf(from, sizeof from, "input %dx%d (%s size)", h, w, size_from);
    else snprintf(from, sizeof from, "--img %d", h);
    snprintf(pf, sizeof pf, patch_flag ? "--patch %d" : "the patch size %d", p);
    if (p < 1 || h < 1 || w < 1)
        return mim_err(MIM_EARG, "%s with %s: sizes must be >= 1 (give --img N)", from, pf);
    if (h % p || w % p) {
        int lo = (h < w ? h : w) / p * p, hi = ((h > w ? h : w) / p + 1) * p;
        char use[64];
        if (lo > 0) snprintf(use, sizeof use, "--img %d or %d", lo, hi);
        else snprintf(use, sizeof use, "--img %d", hi);
        return mim_err(MIM_EARG, "%s is not divisible by %s: use %s%s", from, pf, use, patch_flag ? ", or another --patch" : "");
    }
    if (mim_config_len_keep(c) < 1)
        return mim_err(MIM_EARG, "%s with %s gives %d patch(es), and mask ratio %g leaves none visible: a larger --img%s",
                       from, pf, mim_config_num_patches(c), c->mask_ratio, patch_flag ? " or a smaller --patch" : "");
    return 0;
}

// The loop's state: what every step reads and the run's counters.
typedef struct {
    const mim_pretrain_args* a;
    const mim_dist* d;
    mim_mae* m;
    mim_adamw* opt;
    mim_grad_accum* ga;
    target_gen* tg;
    mim_source *src, *vsrc;
    int val_batches;
    float *imgs, *noise;
    int64_t* ids;
    mim_adamw_hparams hp;
    int64_t total, warmup, end, steps_per_epoch, per_step;
    float lr;
    double loss_sum, gnorm;    // of the last step (loss summed over its micro-batches)
    int64_t last_logged, nan_skipped;
    double tlast;
} pt_loop;

// One optimizer step: accum micro-batches forward and backward, the
// all-reduce, the non-finite check, clipping and AdamW.
static int pt_step(void* ctx, mim_run* r, int64_t step) {
    pt_loop* x = ctx;
    const mim_pretrain_args* a = x->a;
    const mim_dist* d = x->d;
    mim_mae* m = x->m;
    int rc;
    x->hp.lr = mim_lr_at(step, x->total, x->warmup, x->lr, a->min_lr);
    mim_mae_zero_grad(m);
    double loss_sum = 0;
    const char* bad = NULL;   // what went non-finite this step
    for (int k = 0; k < a->accum; k++) {
        PROF(PROF_DATA, rc = mim_source_next_ids(x->src, x->imgs, NULL, x->ids));
        if (rc && d->world > 1) {   // the other ranks wait in a collective: end the job
            fprintf(stderr, "rank %d: error: %s\n", d->rank, mim_err_msg());
            mim_dist_abort(1);
        }
        if (rc) return rc;
        if (a->debug_nan_at == step + 1) { x->imgs[0] = NAN; x->ids[0] = -1; }   // nothing to cache from it
        step_noise(x->noise, a->batch, m->L, k, a->seed, step, d);
        float loss = forward_with_target(m, x->tg, x->imgs, x->ids, x->noise, a->batch);
        loss_sum += loss;
        // without accumulation the backward hands finished blocks to MPI
        // (with it, a block is final only after the fold)
        int overlap = a->accum == 1 && d->world > 1;
        if (overlap) mim_dist_grads_begin(m->grads, m->num_floats);
        m->grad_ready = overlap ? mim_dist_grads_ready : NULL;
        mim_mae_backward(m, 1.0f / ((float)a->accum * d->world));   // the mean over the global batch
        m->grad_ready = NULL;
        if (k < a->accum - 1) PROF(PROF_OPTIM, mim_grad_accum_push(x->ga, m->grads, k));
    }
    PROF(PROF_OPTIM, mim_grad_accum_finish(x->ga, m->grads));
    if (d->world > 1) {
        if (a->accum > 1) mim_dist_grads_begin(m->grads, m->num_floats);
        mim_dist_grads_finish(1.0f);   // sums in rank order (train/dist.h)
        loss_sum = mim_dist_allreduce_sum_d(loss_sum) / d->world;
    }
    if (!isfinite(loss_sum)) bad = "loss";
    double gnorm = bad ? NAN : mim_clip_grad_norm(m->table, m->nparams, m->grads, a->clip_grad);
    if (!bad && !isfinite(gnorm)) bad = "gradient";
    x->loss_sum = loss_sum;
    x->gnorm = gnorm;
    if (bad) {
        const char* t = first_nonfinite(m, m->params);
        const char* g = t ? NULL : first_nonfinite(m, m->grads);
        char what[160];
        if (t) snprintf(what, sizeof what, "parameter %s is not finite", t);
        else if (g) snprintf(what, sizeof what, "first non-finite gradient: %s", g);
        else snprintf(what, sizeof what, "parameters finite (non-finite input data or activations)");
        if (!a->on_nan)
            return mim_err(MIM_PRETRAIN_NAN, "non-finite %s at step %lld (%s); stopping, last checkpoint kept "
                           "(--on-nan skip to skip such steps)", bad, (long long)step + 1, what);
        x->nan_skipped++;
        mim_run_metric(r, "{\"step\": %lld, \"skipped_nonfinite\": \"%s\", \"detail\": \"%s\"}", (long long)step + 1,
                       bad, what);
        if (r->loud) fprintf(stderr, "%sstep %lld: non-finite %s (%s), step skipped\n", r->nl, (long long)step + 1, bad, what);
    } else {
        PROF(PROF_OPTIM, mim_adamw_step(x->opt, m->table, m->nparams, m->params, m->grads, &x->hp));
    }
    return 0;
}

// After `done` steps: the first step's data check, the replica check, the
// metrics row and progress line, the validation loss.
static int pt_after(void* ctx, mim_run* r, int64_t done) {
    pt_loop* x = ctx;
    const mim_pretrain_args* a = x->a;
    const mim_dist* d = x->d;
    int rc;
    if (done == r->step0 + 1) {   // nothing usable in the first step: stop before training on zeros
        x->tlast = r->t0;
        mim_loader_counters lc1;
        char c1[512];
        if (mim_run_counters(x->src, &lc1, c1, sizeof c1) && lc1.samples == 0)
            return mim_loader_counters_check(&lc1, a->max_skip_frac, "pretrain");
    }
    double loss = x->loss_sum / a->accum, t = mim_now_s();
    if (a->dist_check_every > 0 && done % a->dist_check_every == 0 && !mim_dist_same_everywhere(x->m->params, x->m->num_floats))
        return mim_err(MIM_EARG, "parameters differ between ranks after step %lld", (long long)done);
    if (done % a->log_every == 0 || done == x->end) {
        double ips = (double)(done - x->last_logged) * x->per_step / (t - x->tlast);
        mim_run_metric(r, "{\"step\": %lld, \"epoch\": %.4f, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, "
                          "\"img_per_s\": %.2f, \"time_s\": %.3f}",
                       (long long)done, (double)done / x->steps_per_epoch, loss, x->hp.lr, x->gnorm, ips,
                       r->t_before + (t - r->t0));
        char eta[32];
        fmt_eta(eta, sizeof eta, (t - r->t0) / (done - r->step0) * (x->end - done));
        mim_run_progress(r, "step %lld/%lld | loss %.4f | lr %.3g | gnorm %.3f | %.1f img/s | ETA %s", (long long)done,
                         (long long)x->total, loss, x->hp.lr, x->gnorm, ips, eta);
        x->tlast = t; x->last_logged = done;
    }
    if (x->vsrc && ((a->val_every > 0 && done % a->val_every == 0) || done == x->end)) {
        double vl;
        if ((rc = validation_loss(x->m, x->tg, x->vsrc, x->val_batches, a->seed, x->imgs, x->noise, &vl))) return rc;
        mim_run_metric(r, "{\"step\": %lld, \"val_loss\": %.6f, \"val_images\": %d}", (long long)done, vl,
                       x->val_batches * a->batch * d->world);
        if (r->loud) fprintf(stderr, "%sstep %lld: validation loss %.4f on %d images\n", r->nl, (long long)done, vl,
                             x->val_batches * a->batch * d->world);
    }
    return 0;
}

static int pt_save_due(void* ctx, int64_t done) {
    const pt_loop* x = ctx;
    return x->a->save_every > 0 && done % x->a->save_every == 0;
}

int mim_pretrain_check_args(const mim_pretrain_args* a) {
    mim_target t = a->model.target;
    if (t == MIM_TARGET_TEACHER && !(a->teacher && a->teacher[0]))
        return mim_err(MIM_EARG, "--target teacher needs --teacher FILE (the teacher checkpoint)");
    if (t != MIM_TARGET_TEACHER && ((a->teacher && a->teacher[0]) || (a->teacher_cache && a->teacher_cache[0]) ||
                                    a->teacher_layer > 0 || a->teacher_norm))
        return mim_err(MIM_EARG, "--teacher, --teacher-layer, --teacher-norm and --teacher-cache apply to --target teacher only");
    if (t != MIM_TARGET_HOG && a->hog_cell != 0) return mim_err(MIM_EARG, "--hog-cell applies to --target hog only");
    if (a->on_nan != 0 && a->on_nan != 1) return mim_err(MIM_EARG, "on_nan must be 0 (stop) or 1 (skip), got %d", a->on_nan);
    return 0;
}

int mim_pretrain_run(const mim_pretrain_args* a) {
    int rc = mim_pretrain_check_args(a);
    if (rc) return rc;
    mim_run_threads(a->threads);
    const mim_dist* d = mim_dist_get();
    int loud = !a->quiet && d->rank == 0;   // one progress line per job
    mim_config c = a->model;
    mim_source_config sc = {.path = a->data, .split = "train", .subset = a->subset,
                            .channels = c.in_chans, .height = c.img_h, .width = c.img_w,
                            .batch = a->batch, .augment = a->augment, .shuffle = 1, .seed = a->seed,
                            .rank = d->rank, .world = d->world, .threads = a->data_threads,
                            .max_skip_frac = a->max_skip_frac};
    mim_source* src = NULL, *vsrc = NULL;
    // the memory estimate, before anything large is allocated
    uint64_t eb;
    int ec, eh, ew;
    if (mim_source_estimate(&sc, &eb, &ec, &eh, &ew) == 0) {
        mim_config ce = c;
        ce.in_chans = ec; ce.img_h = eh; ce.img_w = ew;
        mim_source_config evc = sc;
        evc.path = a->val_data; evc.split = a->val_split ? a->val_split : "t10k"; evc.subset = NULL;
        evc.channels = ec; evc.height = eh; evc.width = ew;
        need_ctx nc = {&ce, &sc, a->val_data ? &evc : NULL, a->batch, a->accum};   // refuse a run over --max-ram or the RAM
        if ((rc = mim_mem_gate("pretrain", a->batch, a->accum, a->max_ram, loud, pretrain_need, &nc))) return rc;
    }
    rc = mim_source_open(&src, &sc);
    if (rc) return rc;
    mim_source_geometry(src, &c.in_chans, &c.img_h, &c.img_w);
    if ((rc = mim_check_input_geometry(&c, a->model.img_h ? NULL : "the data's", 1))) { mim_source_close(src); return rc; }
    int val_batches = 0;
    if (a->val_data) {
        mim_source_config vc = sc;
        vc.path = a->val_data; vc.split = a->val_split ? a->val_split : "t10k"; vc.subset = NULL;
        vc.channels = c.in_chans; vc.height = c.img_h; vc.width = c.img_w;
        vc.augment = 0; vc.shuffle = 0;
        if ((rc = mim_source_open(&vsrc, &vc))) { mim_source_close(src); return rc; }
        int64_t avail = mim_source_batches_per_epoch(vsrc);
        val_batches = a->val_samples / a->batch;
        if (val_batches < 1) val_batches = 1;
        if (val_batches > avail) val_batches = (int)avail;
    }

    int64_t per_step = (int64_t)a->batch * a->accum * d->world;   // images per optimizer step, all ranks
    int64_t steps_per_epoch = mim_source_batches_per_epoch(src) / a->accum;
    mim_mae m = {0};
    mim_adamw opt = {0};
    mim_grad_accum ga = {0};
    target_gen tg = {0};
    mim_run run = {0};
    float *imgs = NULL, *noise = NULL;
    int64_t* ids = NULL;
    char* aj = NULL;
    if (steps_per_epoch < 1) {
        rc = mim_err(MIM_EARG, "batch %d x accum %d is larger than the data set (%lld images)",
                     a->batch, a->accum, (long long)mim_source_size(src));
        goto done;
    }
    int64_t total = a->steps > 0 ? a->steps : (int64_t)ceil(a->epochs * steps_per_epoch);
    if (total < 1) { rc = mim_err(MIM_EARG, "training length is zero steps"); goto done; }
    int64_t warmup = a->warmup_steps > 0 ? a->warmup_steps : (int64_t)(a->warmup_epochs * steps_per_epoch);
    if (warmup > total) warmup = total;
    float lr = a->lr > 0 ? a->lr : a->blr * (float)per_step / 256.0f;

    if ((rc = target_open(&tg, a, &c, src))) goto done;
    if ((rc = mim_mae_init(&m, &c, a->batch))) goto done;
    if ((rc = mim_mae_set_precision(&m, a->precision, a->bf16_backend))) goto done;
    if ((rc = mim_adamw_init(&opt, m.num_floats)) || (rc = mim_grad_accum_init(&ga, a->accum, m.num_floats))) goto done;
    imgs = mim_malloc(sizeof(float) * (size_t)a->batch * c.in_chans * c.img_h * c.img_w);
    noise = mim_malloc(sizeof(float) * (size_t)a->batch * m.L);
    ids = mim_malloc(sizeof(int64_t) * (size_t)a->batch);
    if (!imgs || !noise || !ids) { rc = MIM_ENOMEM; goto done; }
    mim_mae_init_weights(&m, a->seed);   // a resume overwrites them
    aj = args_json(a, &c);
    mim_run_config rcfg = {.what = "pretrain", .out = a->out, .quiet = a->quiet, .resume = a->resume, .keep = a->keep,
                           .io_retries = a->io_retries, .stopped_code = MIM_PRETRAIN_STOPPED};
    if ((rc = mim_run_begin(&run, &rcfg, src, &m, &opt, NULL, aj))) goto done;
    mim_dist_bcast(m.params, m.num_floats, 0);   // identical start on every rank, whatever happened
    if (loud)
        fprintf(stderr, "pretrain %s: %dx%dx%d patch %d, %.2fM params, %lld images, %lld steps (%lld/epoch), "
                "batch %d x %d x %d ranks, lr %.3g, %d threads, %s, target %s (%d per patch), loss %s\n",
                c.name, c.img_h, c.img_w, c.in_chans, c.patch, mim_config_params_total(&c) / 1e6,
                (long long)mim_source_size(src) * d->world, (long long)total, (long long)steps_per_epoch, a->batch,
                a->accum, d->world, lr, omp_get_max_threads(), mim_mae_precision_name(&m),
                mim_target_name(c.target), mim_config_target_dim(&c), mim_loss_name(c.loss));

    pt_loop x = {.a = a, .d = d, .m = &m, .opt = &opt, .ga = &ga, .tg = &tg, .src = src, .vsrc = vsrc,
                 .val_batches = val_batches, .imgs = imgs, .noise = noise, .ids = ids,
                 .hp = {.beta1 = a->beta1, .beta2 = a->beta2, .eps = 1e-8f, .weight_decay = a->weight_decay},
                 .total = total, .warmup = warmup, .end = a->stop_at > 0 && a->stop_at < total ? a->stop_at : total,
                 .steps_per_epoch = steps_per_epoch, .per_step = per_step, .lr = lr, .last_logged = run.step0};
    mim_run_hooks hooks = {.step = pt_step, .after = pt_after, .save_due = pt_save_due};
    mim_prof_on = a->profile;
    mim_prof_reset();
    if ((rc = mim_run_loop(&run, total, x.end, &hooks, &x))) goto done;
    int64_t step = x.end > run.step0 ? x.end : run.step0;
    char summary[96];
    snprintf(summary, sizeof summary, "%lld steps (%lld skipped as non-finite)", (long long)step, (long long)x.nan_skipped);
    if ((rc = mim_run_end(&run, step, a->max_skip_frac, "pretrain", summary))) goto done;
    if (tg.cached) mim_tcache_sum_ranks(&tg.cache);   // every rank
    if (tg.cached && d->rank == 0 && !a->quiet) {
        char tc[4608];
        mim_tcache_format(&tg.cache, tc, sizeof tc);
        fprintf(stderr, "%s\n", tc);
    }
    if (a->profile && step > run.step0 && d->rank == 0) {
        double tot = mim_now_s() - run.t0, acc = 0;
        fprintf(stderr, "profile (ms per step over %lld steps%s):", (long long)(step - run.step0),
                d->world > 1 ? ", rank 0" : "");
        for (int k = 0; k < PROF_NCLASS; k++) {
            fprintf(stderr, " %s %.1f |", mim_prof_name(k), 1e3 * mim_prof_secs[k] / (step - run.step0));
            acc += mim_prof_secs[k];
        }
        fprintf(stderr, " other %.1f\n", 1e3 * (tot - acc) / (step - run.step0));
    }
done:
    mim_prof_on = 0;
    mim_run_close(&run);
    free(aj); free(imgs); free(noise); free(ids);
    target_close(&tg);
    mim_adamw_free(&opt);
    mim_grad_accum_free(&ga);
    if (m.params) mim_mae_free(&m);
    mim_source_close(src);
    mim_source_close(vsrc);
    return rc;
}
