// pretrain.c: the pre-training loop (see pretrain.h).
#include "train/pretrain.h"
#include "core/check.h"
#include "core/rng.h"
#include "data/idx.h"
#include "model/mae.h"
#include "train/checkpoint.h"
#include "train/optim.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void openblas_set_num_threads(int);

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

// Seeds for independent streams: data order per epoch, noise per step.
static uint64_t stream_seed(uint64_t seed, uint64_t kind, uint64_t i) {
    return seed * 0x9e3779b97f4a7c15ULL ^ (kind << 56) ^ (i * 0xd1b54a32d192ed03ULL);
}

// The in-memory dataset (IDX) with its normalisation.
typedef struct {
    mim_idx idx;
    float mean, std;
    uint32_t* order;       // permutation of the current epoch
    int64_t order_epoch;
} dataset;

static void dataset_order(dataset* d, uint64_t seed, int64_t epoch) {
    if (d->order_epoch == epoch) return;
    for (int64_t i = 0; i < d->idx.n; i++) d->order[i] = (uint32_t)i;
    mim_rng r;
    mim_rng_seed(&r, stream_seed(seed, 1, (uint64_t)epoch));
    mim_rng_shuffle_u32(&r, d->order, (uint64_t)d->idx.n);
    d->order_epoch = epoch;
}

// Fills imgs (B, 1, H, W) with samples [pos, pos+B) of the epoch order,
// normalised, with per-sample flips drawn from r.
static void dataset_batch(const dataset* d, float* imgs, int64_t pos, int B, int flip, mim_rng* r) {
    int H = d->idx.h, W = d->idx.w;
    float inv = 1.0f / (255.0f * d->std), off = d->mean / d->std;
    for (int b = 0; b < B; b++) {
        const uint8_t* src = d->idx.pixels + (size_t)d->order[pos + b] * H * W;
        float* dst = imgs + (size_t)b * H * W;
        int fl = flip && (mim_rng_u64(r) & 1);
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                dst[y * W + x] = src[y * W + (fl ? W - 1 - x : x)] * inv - off;
    }
}

static char* args_json(const mim_pretrain_args* a, const mim_config* c) {
    cJSON* j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "model", c->name);
    cJSON_AddNumberToObject(j, "img_h", c->img_h); cJSON_AddNumberToObject(j, "img_w", c->img_w);
    cJSON_AddNumberToObject(j, "in_chans", c->in_chans); cJSON_AddNumberToObject(j, "patch", c->patch);
    cJSON_AddNumberToObject(j, "dim", c->dim); cJSON_AddNumberToObject(j, "depth", c->depth);
    cJSON_AddNumberToObject(j, "heads", c->heads); cJSON_AddNumberToObject(j, "dec_dim", c->dec_dim);
    cJSON_AddNumberToObject(j, "dec_depth", c->dec_depth); cJSON_AddNumberToObject(j, "dec_heads", c->dec_heads);
    cJSON_AddNumberToObject(j, "mask_ratio", c->mask_ratio); cJSON_AddNumberToObject(j, "norm_pix", c->norm_pix);
    cJSON_AddStringToObject(j, "data", a->data);
    cJSON_AddNumberToObject(j, "batch", a->batch); cJSON_AddNumberToObject(j, "accum", a->accum);
    cJSON_AddNumberToObject(j, "epochs", a->epochs); cJSON_AddNumberToObject(j, "steps", (double)a->steps);
    cJSON_AddNumberToObject(j, "blr", a->blr); cJSON_AddNumberToObject(j, "lr", a->lr);
    cJSON_AddNumberToObject(j, "min_lr", a->min_lr); cJSON_AddNumberToObject(j, "warmup_epochs", a->warmup_epochs);
    cJSON_AddNumberToObject(j, "weight_decay", a->weight_decay);
    cJSON_AddNumberToObject(j, "clip_grad", a->clip_grad); cJSON_AddNumberToObject(j, "flip", a->flip);
    cJSON_AddNumberToObject(j, "seed", (double)a->seed);
    char* s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return s;
}

// On resume, drops metrics rows past the checkpoint (they will be redone).
static void metrics_truncate(const char* path, int64_t step) {
    FILE* f = fopen(path, "r");
    if (!f) return;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE* o = fopen(tmp, "w");
    if (!o) { fclose(f); return; }
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        cJSON* j = cJSON_Parse(line);
        cJSON* s = j ? cJSON_GetObjectItem(j, "step") : NULL;
        if (s && cJSON_IsNumber(s) && s->valuedouble <= (double)step) fputs(line, o);
        cJSON_Delete(j);
    }
    fclose(f);
    if (fclose(o) == 0) rename(tmp, path);
}

static void fmt_eta(char* buf, size_t n, double s) {
    if (!(s >= 0) || s > 1e7) { snprintf(buf, n, "?"); return; }
    int h = (int)(s / 3600), m = (int)(fmod(s, 3600) / 60), sec = (int)fmod(s, 60);
    if (h) snprintf(buf, n, "%dh%02dm", h, m); else snprintf(buf, n, "%dm%02ds", m, sec);
}

int mim_pretrain_run(const mim_pretrain_args* a) {
    if (a->threads > 0) { omp_set_num_threads(a->threads); openblas_set_num_threads(a->threads); }
    dataset d = {.order_epoch = -1};
    int rc = mim_idx_load_dir(&d.idx, a->data, "train");
    if (rc) return rc;
    mim_config c = a->model;
    if (!c.img_h) { c.img_h = d.idx.h; c.img_w = d.idx.w; c.in_chans = 1; }
    if (c.img_h != d.idx.h || c.img_w != d.idx.w || c.in_chans != 1) {
        rc = mim_err(MIM_EARG, "model input %dx%dx%d does not match the data (%dx%dx1)",
                     c.img_h, c.img_w, c.in_chans, d.idx.h, d.idx.w);
        mim_idx_free(&d.idx);
        return rc;
    }
    // dataset statistics for normalisation
    double s1 = 0, s2 = 0;
    size_t np = (size_t)d.idx.n * d.idx.h * d.idx.w;
    for (size_t i = 0; i < np; i++) { double v = d.idx.pixels[i] / 255.0; s1 += v; s2 += v * v; }
    d.mean = (float)(s1 / np);
    d.std = (float)sqrt(fmax(s2 / np - (s1 / np) * (s1 / np), 1e-12));
    d.order = mim_malloc(sizeof(uint32_t) * (size_t)d.idx.n);

    int64_t per_step = (int64_t)a->batch * a->accum;
    int64_t steps_per_epoch = d.idx.n / per_step;
    mim_mae m = {0};
    mim_adamw opt = {0};
    float *imgs = NULL, *noise = NULL;
    char* aj = NULL;
    FILE* mf = NULL;
    if (!d.order) { rc = MIM_ENOMEM; goto done; }
    if (steps_per_epoch < 1) {
        rc = mim_err(MIM_EARG, "batch %d x accum %d is larger than the data set (%lld images)",
                     a->batch, a->accum, (long long)d.idx.n);
        goto done;
    }
    int64_t total = a->steps > 0 ? a->steps : (int64_t)ceil(a->epochs * steps_per_epoch);
    if (total < 1) { rc = mim_err(MIM_EARG, "training length is zero steps"); goto done; }
    int64_t warmup = (int64_t)(a->warmup_epochs * steps_per_epoch);
    if (warmup > total) warmup = total;
    float lr = a->lr > 0 ? a->lr : a->blr * (float)per_step / 256.0f;

    if ((rc = mim_mae_init(&m, &c, a->batch))) goto done;
    if ((rc = mim_adamw_init(&opt, m.num_floats))) goto done;
    imgs = mim_malloc(sizeof(float) * (size_t)a->batch * c.in_chans * c.img_h * c.img_w);
    noise = mim_malloc(sizeof(float) * (size_t)a->batch * m.L);
    if (!imgs || !noise) { rc = MIM_ENOMEM; goto done; }
    if (mkdir(a->out, 0755) != 0 && errno != EEXIST) {
        rc = mim_err(MIM_EIO, "cannot create run folder %s: %s", a->out, strerror(errno));
        goto done;
    }
    aj = args_json(a, &c);
    mim_train_state st = {0};
    int64_t step = 0;
    char mpath[4096];
    snprintf(mpath, sizeof mpath, "%s/metrics.jsonl", a->out);
    if (a->resume) {
        rc = mim_ckpt_load_run(a->out, &m, &opt, &st);
        if (rc == MIM_ENOTFOUND) {
            if (!a->quiet) fprintf(stderr, "resume: %s has no checkpoint yet, starting fresh\n", a->out);
            mim_mae_init_weights(&m, a->seed);
            rc = 0;
        } else if (rc) {
            goto done;
        } else {
            if (strcmp(st.args_json, aj) != 0) {
                rc = mim_err(MIM_EARG, "cannot resume %s: its settings differ from this command's\n  saved: %s\n  now:   %s",
                             a->out, st.args_json, aj);
                goto done;
            }
            step = st.step;
            metrics_truncate(mpath, step);
            if (!a->quiet) fprintf(stderr, "resumed %s at step %lld\n", a->out, (long long)step);
        }
    } else {
        mim_mae_init_weights(&m, a->seed);
    }
    snprintf(st.args_json, sizeof st.args_json, "%s", aj);
    mf = fopen(mpath, a->resume ? "a" : "w");
    if (!mf) { rc = mim_err(MIM_EIO, "cannot write %s: %s", mpath, strerror(errno)); goto done; }
    if (!a->quiet)
        fprintf(stderr, "pretrain %s: %dx%dx%d patch %d, %.2fM params, %lld images, %lld steps (%lld/epoch), "
                "batch %d x %d, lr %.3g, %d threads, fp32\n",
                c.name, c.img_h, c.img_w, c.in_chans, c.patch, mim_config_params_total(&c) / 1e6,
                (long long)d.idx.n, (long long)total, (long long)steps_per_epoch, a->batch, a->accum, lr,
                omp_get_max_threads());

    mim_adamw_hparams hp = {.beta1 = a->beta1, .beta2 = a->beta2, .eps = 1e-8f, .weight_decay = a->weight_decay};
    int64_t end = a->stop_at > 0 && a->stop_at < total ? a->stop_at : total;
    double t0 = now_s(), tlast = t0;
    int64_t step0 = step, last_logged = step;
    while (step < end) {
        hp.lr = mim_lr_at(step, total, warmup, lr, a->min_lr);
        mim_rng r;
        mim_rng_seed(&r, stream_seed(a->seed, 2, (uint64_t)step));
        mim_mae_zero_grad(&m);
        double loss_sum = 0;
        for (int k = 0; k < a->accum; k++) {
            int64_t g = step * per_step + (int64_t)k * a->batch;   // global sample counter
            int64_t epoch = g / (steps_per_epoch * per_step), pos = g % (steps_per_epoch * per_step);
            dataset_order(&d, a->seed, epoch);
            dataset_batch(&d, imgs, pos, a->batch, a->flip, &r);
            for (size_t i = 0; i < (size_t)a->batch * m.L; i++) noise[i] = mim_rng_uniform(&r);
            float loss = mim_mae_forward(&m, imgs, noise, a->batch);
            if (!isfinite(loss)) {
                rc = mim_err(MIM_PRETRAIN_NAN, "loss is %f at step %lld; stopping (last checkpoint kept)",
                             loss, (long long)step);
                goto done;
            }
            loss_sum += loss;
            mim_mae_backward(&m, 1.0f / a->accum);
        }
        double gnorm = mim_clip_grad_norm(m.table, m.nparams, m.grads, a->clip_grad);
        if (!isfinite(gnorm)) {
            rc = mim_err(MIM_PRETRAIN_NAN, "gradient norm is %f at step %lld; stopping (last checkpoint kept)",
                         gnorm, (long long)step);
            goto done;
        }
        mim_adamw_step(&opt, m.table, m.nparams, m.params, m.grads, &hp);
        step++;
        double loss = loss_sum / a->accum, t = now_s();
        if (step % a->log_every == 0 || step == end) {
            double ips = (double)(step - last_logged) * per_step / (t - tlast);
            fprintf(mf, "{\"step\": %lld, \"epoch\": %.4f, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, "
                        "\"img_per_s\": %.2f, \"time_s\": %.3f}\n",
                    (long long)step, (double)step / steps_per_epoch, loss, hp.lr, gnorm, ips, t - t0);
            fflush(mf);
            if (!a->quiet) {
                char eta[32];
                fmt_eta(eta, sizeof eta, (t - t0) / (step - step0) * (end - step));
                fprintf(stderr, "\rstep %lld/%lld | loss %.4f | lr %.3g | gnorm %.3f | %.1f img/s | ETA %s   ",
                        (long long)step, (long long)total, loss, hp.lr, gnorm, ips, eta);
            }
            tlast = t; last_logged = step;
        }
        if ((a->save_every > 0 && step % a->save_every == 0) || step == end) {
            int64_t g = step * per_step;
            st.step = step;
            st.data_epoch = g / (steps_per_epoch * per_step);
            st.data_index = g % (steps_per_epoch * per_step);
            if ((rc = mim_ckpt_save_run(a->out, &m, &opt, &st, a->keep))) goto done;
        }
    }
    if (!a->quiet) fprintf(stderr, "\ndone: %lld steps, final loss logged in %s\n", (long long)step, mpath);
done:
    if (mf) fclose(mf);
    free(aj); free(imgs); free(noise); free(d.order);
    mim_adamw_free(&opt);
    if (m.params) mim_mae_free(&m);
    mim_idx_free(&d.idx);
    return rc;
}
