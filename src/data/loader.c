// loader.c: worker threads, batch ring, epoch permutation and resume (see
// loader.h).
#include "data/loader.h"
#include "core/check.h"
#include "data/index.h"
#include "data/subset.h"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// ---- permutation ------------------------------------------------------------------

void mim_perm_init(mim_perm* p, uint64_t n, uint64_t seed, uint64_t epoch) {
    memset(p, 0, sizeof *p);
    p->n = n;
    int bits = 2;
    while (bits < 64 && ((uint64_t)1 << bits) < n) bits += 2;   // even: two equal halves
    p->half_bits = bits / 2;
    p->half_mask = ((uint64_t)1 << p->half_bits) - 1;
    uint64_t k = mix64(seed ^ mix64(epoch + 0x1234567ULL));
    for (int r = 0; r < 4; r++) p->key[r] = k = mix64(k + (uint64_t)r);
}

uint64_t mim_perm_apply(const mim_perm* p, uint64_t i) {
    CHECK(i < p->n);
    uint64_t x = i;
    do {   // cycle-walking: the Feistel domain is < 4n, expected < 4 rounds
        uint64_t L = x >> p->half_bits, R = x & p->half_mask;
        for (int r = 0; r < 4; r++) {
            uint64_t t = L ^ (mix64(R ^ p->key[r]) & p->half_mask);
            L = R; R = t;
        }
        x = (L << p->half_bits) | R;
    } while (x >= p->n);
    return x;
}

// ---- loader ---------------------------------------------------------------------------

typedef struct {
    float* imgs;       // (B, C, H, W)
    int32_t* labels;   // (B)
    int64_t* ids;      // (B) index sample ids (-1: slot left empty)
    uint64_t batch;    // stream batch number this slot holds or will hold
    int done;          // items written
    mim_loader_counters cnt;   // of this batch; added to the total when handed out
} slot;

typedef struct {
    struct mim_loader* l;
    pthread_t th;
    mim_aug_scratch* aug;
    mim_sample_reader rd;
    uint8_t* buf;
    size_t cap;
} worker;

struct mim_loader {
    mim_loader_config cfg;
    mim_transform tf;
    mim_index* ix;
    mim_subset* sub;
    uint64_t M;            // samples in the set
    uint64_t per_rank;     // M / world
    uint64_t nb;           // batches per epoch per rank
    size_t img_floats;     // C*H*W
    int R;                 // ring slots
    slot* slots;
    worker* workers;
    int n_workers;
    // state under mu
    pthread_mutex_t mu;
    pthread_cond_t cv_space, cv_ready;
    uint64_t start_batch;  // absolute batch (epoch * nb + b) of stream batch 0
    uint64_t next_item;    // next stream item to claim
    uint64_t released;     // stream batches whose slots are free again
    uint64_t consumed;     // stream batches handed out
    int lent;              // a batch is lent (its slot is released at the next call)
    int stop;
    mim_loader_counters cnt;
};

void mim_loader_config_default(mim_loader_config* c) {
    memset(c, 0, sizeof *c);
    c->batch_size = 64; c->channels = 3; c->height = c->width = 224;
    c->augment = 1; c->shuffle = 1; c->world = 1; c->n_threads = 4;
}

// Sample id at (epoch, rank-local item t).
static uint64_t sample_at(const mim_loader* l, uint64_t epoch, uint64_t t, uint64_t* gpos) {
    uint64_t p = mim_rank_position(t, (uint64_t)l->cfg.batch_size, (uint64_t)l->cfg.rank, (uint64_t)l->cfg.world);
    uint64_t q = p;
    if (l->cfg.shuffle) {
        mim_perm pm;   // cheap to rebuild: a few mixes
        mim_perm_init(&pm, l->M, l->cfg.seed, epoch);
        q = mim_perm_apply(&pm, p);
    }
    *gpos = p;
    return l->sub ? mim_subset_ids(l->sub)[q] : q;
}

static void count_err(mim_loader_counters* c, int rc) {
    if (rc == MIM_EIO) c->read_errors++;
    else if (rc == MIM_ETOOBIG) c->too_big++;
    else if (rc == MIM_EUNSUPPORTED) c->unsupported++;
    else c->decode_errors++;
}

// Fill one item; returns the counters delta in *d.
static void fill_item(worker* w, uint64_t epoch, uint64_t t, float* img, int32_t* label, int64_t* sid,
                      mim_loader_counters* d) {
    mim_loader* l = w->l;
    int tries = l->cfg.no_replace ? 0 : 8;
    for (int attempt = 0; attempt <= tries; attempt++) {
        uint64_t tt = t;
        if (attempt > 0) tt = mix64(l->cfg.seed ^ mix64(epoch * 0x9e37ULL + t) ^ (uint64_t)attempt) % (l->nb * (uint64_t)l->cfg.batch_size);
        uint64_t gpos;
        uint64_t id = sample_at(l, epoch, tt, &gpos);
        mim_rng rng;
        mim_rng_seed(&rng, mix64(l->cfg.seed) ^ mix64(epoch * 0x100000001b3ULL ^ mix64(gpos)));
        size_t n = 0;
        int rc = mim_sample_reader_read(&w->rd, id, &w->buf, &w->cap, &n);
        if (rc == MIM_OK) rc = mim_transform_apply(&l->tf, w->aug, w->buf, n, &rng, img, NULL);
        if (rc == MIM_OK) {
            *label = mim_index_get(l->ix, id)->label;
            *sid = (int64_t)id;
            d->samples++;
            if (attempt > 0) d->replaced++;
            return;
        }
        if (rc == MIM_ENOMEM || rc == MIM_EARG) rc = MIM_EFORMAT;
        count_err(d, rc);
    }
    memset(img, 0, l->img_floats * sizeof(float));
    *label = -1;
    *sid = -1;
    if (l->cfg.no_replace) d->left_out++;
    else d->unfilled++;
}

static void add_counters(mim_loader_counters* a, const mim_loader_counters* b) {
    a->samples += b->samples; a->read_errors += b->read_errors; a->decode_errors += b->decode_errors;
    a->too_big += b->too_big; a->unsupported += b->unsupported; a->replaced += b->replaced; a->unfilled += b->unfilled;
    a->left_out += b->left_out;
}

static void* worker_main(void* arg) {
    worker* w = arg;
    mim_loader* l = w->l;
    const uint64_t B = (uint64_t)l->cfg.batch_size;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->next_item / B >= l->released + (uint64_t)l->R) pthread_cond_wait(&l->cv_space, &l->mu);
        if (l->stop) break;
        uint64_t item = l->next_item++;
        pthread_mutex_unlock(&l->mu);
        uint64_t g = item / B, j = item % B;
        uint64_t abs = l->start_batch + g;
        uint64_t epoch = abs / l->nb, t = (abs % l->nb) * B + j;
        slot* s = &l->slots[g % (uint64_t)l->R];
        mim_loader_counters d;
        memset(&d, 0, sizeof d);
        fill_item(w, epoch, t, s->imgs + j * l->img_floats, &s->labels[j], &s->ids[j], &d);
        pthread_mutex_lock(&l->mu);
        add_counters(&s->cnt, &d);
        CHECK(s->batch == g);
        if (++s->done == (int)B) pthread_cond_broadcast(&l->cv_ready);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static void stop_workers(mim_loader* l) {
    pthread_mutex_lock(&l->mu);
    l->stop = 1;
    pthread_cond_broadcast(&l->cv_space);
    pthread_mutex_unlock(&l->mu);
    for (int i = 0; i < l->n_workers; i++) pthread_join(l->workers[i].th, NULL);
}

static int start_workers(mim_loader* l, uint64_t start_batch) {
    l->stop = 0; l->start_batch = start_batch; l->next_item = 0; l->released = 0; l->consumed = 0; l->lent = 0;
    for (int r = 0; r < l->R; r++) { l->slots[r].batch = (uint64_t)r; l->slots[r].done = 0; memset(&l->slots[r].cnt, 0, sizeof l->slots[r].cnt); }
    for (int i = 0; i < l->n_workers; i++) {
        if (pthread_create(&l->workers[i].th, NULL, worker_main, &l->workers[i]) != 0) {
            l->n_workers = i;   // join those that started
            stop_workers(l);
            return mim_err(MIM_ENOMEM, "loader: cannot start worker thread %d", i);
        }
    }
    return MIM_OK;
}

void mim_loader_close(mim_loader* l) {
    if (!l) return;
    if (l->workers) {
        stop_workers(l);
        for (int i = 0; i < l->cfg.n_threads; i++) {
            worker* w = &l->workers[i];
            mim_aug_scratch_free(w->aug);
            mim_sample_reader_free(&w->rd);
            free(w->buf);
        }
    }
    free(l->workers);
    if (l->slots) for (int r = 0; r < l->R; r++) { free(l->slots[r].imgs); free(l->slots[r].labels); free(l->slots[r].ids); }
    free(l->slots);
    mim_subset_close(l->sub);
    mim_index_close(l->ix);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv_space);
    pthread_cond_destroy(&l->cv_ready);
    free(l);
}

// Samples of the set (the subset, or the whole index) in index ids [lo, hi).
static uint64_t set_count_in(const mim_loader* l, uint64_t lo, uint64_t hi) {
    if (!l->sub) return hi - lo;
    const uint64_t* ids = mim_subset_ids(l->sub);
    uint64_t n = mim_subset_count(l->sub), a = 0, b = n;
    while (a < b) { uint64_t m = a + (b - a) / 2; if (ids[m] < lo) a = m + 1; else b = m; }   // first >= lo
    uint64_t i0 = a;
    b = n;
    while (a < b) { uint64_t m = a + (b - a) / 2; if (ids[m] < hi) a = m + 1; else b = m; }   // first >= hi
    return a - i0;
}

// Every shard holding samples of the set exists and reaches its last
// sample's end (see "How much may be lost" in loader.h). One stat per shard.
static int check_shards(mim_loader* l) {
    uint64_t ns = mim_index_n_shards(l->ix), nbad = 0, lost = 0;
    char first_bad[1200] = "";
    for (uint64_t s = 0; s < ns; s++) {
        uint64_t lo = mim_index_shard_first(l->ix, (uint32_t)s), hi = mim_index_shard_first(l->ix, (uint32_t)s + 1);
        if (hi <= lo) continue;
        uint64_t k = set_count_in(l, lo, hi);
        if (k == 0) continue;
        const mim_index_record* r = mim_index_get(l->ix, hi - 1);
        uint64_t need = r->offset + r->size;
        const char* path = mim_index_shard_path(l->ix, (uint32_t)s);
        struct stat sb;
        char why[256] = "";
        if (stat(path, &sb) != 0) snprintf(why, sizeof why, "%s", strerror(errno));
        else if ((uint64_t)sb.st_size < need)
            snprintf(why, sizeof why, "truncated: %lld bytes, the index expects at least %llu", (long long)sb.st_size,
                     (unsigned long long)need);
        if (!why[0]) continue;
        if (!nbad++) snprintf(first_bad, sizeof first_bad, "%s: %s", path, why);
        lost += k;
    }
    if (!nbad) return MIM_OK;
    double frac = l->M ? (double)lost / (double)l->M : 1.0;
    double allow = l->cfg.max_skip_frac;
    if (allow <= 0 || frac > allow || lost >= l->M)
        return mim_err(MIM_EDATA, "%s: %llu unreadable shard%s holding %llu of its %llu samples (%.1f%%), first %s; "
                       "re-run `mimscale index` on the shards that exist, or allow the loss with --max-skip-frac %.2g",
                       l->cfg.index_path, (unsigned long long)nbad, nbad > 1 ? "s" : "", (unsigned long long)lost,
                       (unsigned long long)l->M, 100 * frac, first_bad, frac < 1 ? (frac * 1.01 > 1 ? 1 : frac * 1.01) : 1.0);
    if (l->cfg.rank == 0)
        fprintf(stderr, "warning: %s: %llu unreadable shard%s (%llu samples, %.1f%%, allowed by --max-skip-frac %.3g), "
                "first %s\n", l->cfg.index_path, (unsigned long long)nbad, nbad > 1 ? "s" : "", (unsigned long long)lost,
                100 * frac, allow, first_bad);
    return MIM_OK;
}

int mim_loader_open(mim_loader** out, const mim_loader_config* cfg) {
    if (!cfg->index_path) return mim_err(MIM_EARG, "loader: no index path");
    if (cfg->batch_size <= 0 || cfg->n_threads <= 0 || cfg->n_threads > 1024 || cfg->world <= 0 ||
        cfg->rank < 0 || cfg->rank >= cfg->world)
        return mim_err(MIM_EARG, "loader: bad batch size (%d), threads (%d) or rank/world (%d/%d)", cfg->batch_size,
                       cfg->n_threads, cfg->rank, cfg->world);
    if ((cfg->channels != 1 && cfg->channels != 3) || cfg->height <= 0 || cfg->width <= 0 || cfg->height > 8192 || cfg->width > 8192)
        return mim_err(MIM_EARG, "loader: bad input shape (%d, %d, %d): channels 1 or 3", cfg->channels, cfg->height, cfg->width);
    mim_loader* l = calloc(1, sizeof *l);
    if (!l) return mim_err(MIM_ENOMEM, "out of memory");
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_space, NULL);
    pthread_cond_init(&l->cv_ready, NULL);
    l->cfg = *cfg;
    if (cfg->transform) l->tf = *cfg->transform;
    else mim_transform_default(&l->tf, cfg->channels, cfg->height, cfg->width, cfg->augment);
    l->tf.channels = cfg->channels; l->tf.out_h = cfg->height; l->tf.out_w = cfg->width;
    int rc = mim_index_open(&l->ix, cfg->index_path);
    if (rc < 0) goto fail;
    l->M = mim_index_count(l->ix);
    if (cfg->subset_path) {
        rc = mim_subset_open(&l->sub, cfg->subset_path, l->ix);
        if (rc < 0) goto fail;
        l->M = mim_subset_count(l->sub);
    }
    if ((rc = check_shards(l)) < 0) goto fail;
    l->per_rank = l->M / (uint64_t)cfg->world;
    l->nb = l->per_rank / (uint64_t)cfg->batch_size;
    if (l->nb == 0) {
        rc = mim_err(MIM_EARG, "loader: %llu samples are fewer than one batch of %d per rank x %d ranks",
                     (unsigned long long)l->M, cfg->batch_size, cfg->world);
        goto fail;
    }
    l->img_floats = (size_t)cfg->channels * cfg->height * cfg->width;
    l->R = cfg->prefetch >= 2 ? cfg->prefetch : 2 + cfg->n_threads / 4;
    l->slots = calloc((size_t)l->R, sizeof *l->slots);
    if (!l->slots) { rc = mim_err(MIM_ENOMEM, "out of memory"); goto fail; }
    for (int r = 0; r < l->R; r++) {
        l->slots[r].imgs = mim_calloc((size_t)cfg->batch_size * l->img_floats, sizeof(float));
        l->slots[r].labels = mim_calloc((size_t)cfg->batch_size, sizeof(int32_t));
        l->slots[r].ids = mim_calloc((size_t)cfg->batch_size, sizeof(int64_t));
        if (!l->slots[r].imgs || !l->slots[r].labels || !l->slots[r].ids) { rc = mim_err(MIM_ENOMEM, "loader: out of memory for the batch ring"); goto fail; }
    }
    l->workers = calloc((size_t)cfg->n_threads, sizeof *l->workers);
    if (!l->workers) { rc = mim_err(MIM_ENOMEM, "out of memory"); goto fail; }
    for (int i = 0; i < cfg->n_threads; i++) { l->workers[i].l = l; mim_sample_reader_init(&l->workers[i].rd, l->ix); }
    for (int i = 0; i < cfg->n_threads; i++) {
        worker* w = &l->workers[i];
        rc = mim_aug_scratch_init(&w->aug, l->tf.max_pixels);
        if (rc < 0) goto fail;
    }
    l->n_workers = cfg->n_threads;
    rc = start_workers(l, 0);
    if (rc < 0) goto fail;
    *out = l;
    return MIM_OK;
fail:
    l->n_workers = 0;   // none running
    mim_loader_close(l);
    return rc;
}

int mim_loader_next_lend(mim_loader* l, const float** imgs, const int32_t** labels) {
    return mim_loader_next_lend_ids(l, imgs, labels, NULL);
}

int mim_loader_next_lend_ids(mim_loader* l, const float** imgs, const int32_t** labels, const int64_t** ids) {
    pthread_mutex_lock(&l->mu);
    if (l->lent) {   // free the previous batch's slot for batch released + R
        slot* s = &l->slots[l->released % (uint64_t)l->R];
        s->batch = l->released + (uint64_t)l->R;
        s->done = 0;
        l->released++;
        l->lent = 0;
        pthread_cond_broadcast(&l->cv_space);
    }
    uint64_t g = l->consumed;
    slot* s = &l->slots[g % (uint64_t)l->R];
    while (!(s->batch == g && s->done == l->cfg.batch_size)) pthread_cond_wait(&l->cv_ready, &l->mu);
    add_counters(&l->cnt, &s->cnt);   // counters cover delivered batches only: deterministic
    memset(&s->cnt, 0, sizeof s->cnt);
    l->consumed++;
    l->lent = 1;
    pthread_mutex_unlock(&l->mu);
    *imgs = s->imgs;
    if (labels) *labels = s->labels;
    if (ids) *ids = s->ids;
    return MIM_OK;
}

int mim_loader_next(mim_loader* l, float* imgs, int32_t* labels) {
    return mim_loader_next_ids(l, imgs, labels, NULL);
}

int mim_loader_next_ids(mim_loader* l, float* imgs, int32_t* labels, int64_t* ids) {
    const float* im; const int32_t* lb; const int64_t* id;
    int rc = mim_loader_next_lend_ids(l, &im, &lb, &id);
    if (rc < 0) return rc;
    memcpy(imgs, im, (size_t)l->cfg.batch_size * l->img_floats * sizeof(float));
    if (labels) memcpy(labels, lb, (size_t)l->cfg.batch_size * sizeof(int32_t));
    if (ids) memcpy(ids, id, (size_t)l->cfg.batch_size * sizeof(int64_t));
    return MIM_OK;
}

uint64_t mim_loader_id_space(const mim_loader* l) { return mim_index_count(l->ix); }

mim_loader_pos mim_loader_get_position(const mim_loader* l) {
    mim_loader* m = (mim_loader*)l;
    pthread_mutex_lock(&m->mu);
    uint64_t abs = l->start_batch + l->consumed;
    pthread_mutex_unlock(&m->mu);
    mim_loader_pos p = { abs / l->nb, (abs % l->nb) * (uint64_t)l->cfg.batch_size };
    return p;
}

int mim_loader_set_position(mim_loader* l, mim_loader_pos pos) {
    uint64_t b = pos.index / (uint64_t)l->cfg.batch_size;
    if (pos.epoch > UINT64_MAX / l->nb - 2) return mim_err(MIM_EARG, "loader: epoch %llu out of range", (unsigned long long)pos.epoch);
    uint64_t abs = b >= l->nb ? (pos.epoch + 1) * l->nb : pos.epoch * l->nb + b;
    stop_workers(l);
    return start_workers(l, abs);
}

uint64_t mim_loader_batches_per_epoch(const mim_loader* l) { return l->nb; }
uint64_t mim_loader_epoch_size(const mim_loader* l) { return l->M; }

mim_loader_counters mim_loader_get_counters(const mim_loader* l) {
    mim_loader* m = (mim_loader*)l;
    pthread_mutex_lock(&m->mu);
    mim_loader_counters c = l->cnt;
    pthread_mutex_unlock(&m->mu);
    return c;
}

uint64_t mim_loader_counters_failed(const mim_loader_counters* c) {
    return c->read_errors + c->decode_errors + c->too_big + c->unsupported;
}

void mim_loader_counters_format(const mim_loader_counters* c, char* out, size_t cap) {
    uint64_t bad = mim_loader_counters_failed(c);
    int n = snprintf(out, cap,
                     "loader: %llu samples, skipped %llu (%llu corrupt, %llu unreadable, %llu too big, %llu unsupported), "
                     "%llu replaced, %llu unfilled",
                     (unsigned long long)c->samples, (unsigned long long)bad, (unsigned long long)c->decode_errors,
                     (unsigned long long)c->read_errors, (unsigned long long)c->too_big, (unsigned long long)c->unsupported,
                     (unsigned long long)c->replaced, (unsigned long long)c->unfilled);
    if (c->left_out && n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, ", %llu left out", (unsigned long long)c->left_out);
}

int mim_loader_counters_check(const mim_loader_counters* c, double max_skip_frac, const char* what) {
    uint64_t bad = mim_loader_counters_failed(c), tries = c->samples + bad;
    char cnt[512];
    mim_loader_counters_format(c, cnt, sizeof cnt);
    if (c->samples == 0)
        return mim_err(MIM_EDATA, "%s: no usable sample (%s); check that the shards the index names exist and decode",
                       what, cnt);
    double frac = (double)bad / (double)tries;
    double allow = max_skip_frac > 0 ? max_skip_frac : MIM_DEFAULT_SKIP_FRAC;
    if (frac > allow)
        return mim_err(MIM_EDATA, "%s: %llu of %llu sample reads failed (%.2f%%), more than the %.3g%% allowed (%s); "
                       "fix or re-index the data, or allow it with --max-skip-frac %.2g", what, (unsigned long long)bad,
                       (unsigned long long)tries, 100 * frac, 100 * allow, cnt, frac * 1.01 > 1 ? 1.0 : frac * 1.01);
    return MIM_OK;
}
