// source.c: IDX (in memory) and index (threaded loader) behind one API.
#include "data/source.h"
#include "core/check.h"
#include "core/rng.h"
#include "data/augment.h"
#include "data/idx.h"
#include "data/index.h"
#include "data/loader.h"
#include <dirent.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

struct mim_source {
    mim_source_config cfg;
    int C, H, W;
    int num_classes;
    // IDX
    mim_idx idx;
    float mean, std;
    uint32_t* order;            // permutation of the current epoch
    int64_t order_epoch;
    mim_source_pos pos;
    mim_aug_scratch** scratch;  // one per OpenMP thread
    int nscratch;
    // index
    mim_loader* loader;
    mim_transform tf;           // index sources
};

static uint64_t mix(uint64_t a, uint64_t b, uint64_t c) {
    return a * 0x9e3779b97f4a7c15ULL ^ (b + 0x632be59bd9b4e019ULL) * 0xd1b54a32d192ed03ULL ^ c * 0x94d049bb133111ebULL;
}

// ---------------------------------------------------------------- setup errors
// A data path that is not what a source reads (a shard or an IDX file where
// an index or IDX folder is expected, a folder without IDX files) gets an
// error saying what the path holds and what to run, rather than the
// reader's "bad magic" or a missing train-images-idx3-ubyte.gz.

static int ends_with(const char* s, const char* tail) {
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && !strcmp(s + n - m, tail);
}

// 1 when path is a tar file: named *.tar, or a ustar header at its start.
static int looks_like_tar(const char* path) {
    if (ends_with(path, ".tar")) return 1;
    FILE* f = fopen(path, "rb");
    if (!f) return 0;
    char h[512];
    size_t n = fread(h, 1, sizeof h, f);
    fclose(f);
    return n == sizeof h && !memcmp(h + 257, "ustar", 5);
}

// From a shard name "DIR/train-000003.tar": the pattern of its siblings
// "DIR/train-*.tar" and an index name "train.idx" (digits, then - _ .
// before them, dropped; "data.idx" when nothing is left).
static void shard_pattern(const char* dir, const char* name, char* pat, size_t np, char* idx, size_t ni) {
    char stem[512];
    snprintf(stem, sizeof stem, "%s", name);
    size_t n = strlen(stem);
    if (n > 4 && !strcmp(stem + n - 4, ".tar")) stem[n -= 4] = 0;
    size_t k = n;
    while (k > 0 && stem[k - 1] >= '0' && stem[k - 1] <= '9') k--;
    if (k < n) snprintf(pat, np, "%s%s%.*s*.tar", dir ? dir : "", dir && dir[0] ? "/" : "", (int)k, stem);
    else snprintf(pat, np, "%s%s%s.tar", dir ? dir : "", dir && dir[0] ? "/" : "", stem);
    while (k > 0 && (stem[k - 1] == '-' || stem[k - 1] == '_' || stem[k - 1] == '.')) k--;
    if (k > 0) snprintf(idx, ni, "%.*s.idx", (int)k, stem);
    else snprintf(idx, ni, "data.idx");
}

// A file given as the data that is not a sample index: 0 when it may be one
// (the index reader then judges), else an MIM_EARG error.
static int not_an_index(const char* path) {
    const char* slash = strrchr(path, '/');
    const char* name = slash ? slash + 1 : path;
    if (looks_like_tar(path)) {
        char dir[4096] = "", pat[4700], idx[600];
        if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
        shard_pattern(dir, name, pat, sizeof pat, idx, sizeof idx);
        return mim_err(MIM_EARG, "%s is a webdataset shard, not a sample index: index the shards once, "
                       "`mimscale index '%s' --out %s`, and pass --data %s", path, pat, idx, idx);
    }
    if (strstr(name, "idx3-ubyte") || strstr(name, "idx1-ubyte"))
        return mim_err(MIM_EARG, "%s is an IDX file; pass its folder instead (--data %.*s), which holds "
                       "train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz", path,
                       slash ? (int)(slash - path) : 1, slash ? path : ".");
    return 0;
}

static int has_image_ext(const char* name) {
    static const char* ext[] = {".jpg", ".jpeg", ".png", ".webp", ".JPG", ".JPEG", ".PNG", ".WEBP"};
    for (size_t i = 0; i < sizeof ext / sizeof ext[0]; i++)
        if (ends_with(name, ext[i])) return 1;
    return 0;
}

// 1 when folder dir has an image file among its first entries.
static int folder_has_images(const char* dir) {
    DIR* d = opendir(dir);
    if (!d) return 0;
    struct dirent* e;
    int seen = 0, hit = 0;
    while (!hit && seen++ < 256 && (e = readdir(d))) hit = has_image_ext(e->d_name);
    closedir(d);
    return hit;
}

// An IDX folder without the images file of `split`: MIM_EIO naming what the
// folder holds (shards, image class folders, other IDX splits) and the
// command that makes it usable; 0 when the file is there.
static int check_idx_dir(const char* path, const char* split) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", path, split);
    struct stat st;
    if (stat(p, &st) == 0) return 0;
    DIR* d = opendir(path);
    if (!d) return mim_err(MIM_EIO, "cannot read folder %s", path);
    char first_tar[256] = "", first_sub[256] = "", first_idx[256] = "";
    int ntar = 0, nsub = 0, nidx = 0, nimg = 0, subs_looked = 0;
    struct dirent* e;
    while ((e = readdir(d))) {
        const char* n = e->d_name;
        if (n[0] == '.') continue;
        if (ends_with(n, ".tar")) {
            if (!ntar++ || strcmp(n, first_tar) < 0) snprintf(first_tar, sizeof first_tar, "%s", n);
        } else if (strstr(n, "-images-idx3-ubyte")) {
            if (!nidx++ || strcmp(n, first_idx) < 0) snprintf(first_idx, sizeof first_idx, "%s", n);
        } else if (has_image_ext(n)) {
            nimg++;
        } else if (subs_looked < 64) {
            char q[4400];
            snprintf(q, sizeof q, "%s/%s", path, n);
            if (stat(q, &st) == 0 && S_ISDIR(st.st_mode)) {
                subs_looked++;
                if (folder_has_images(q) && (!nsub++ || strcmp(n, first_sub) < 0))
                    snprintf(first_sub, sizeof first_sub, "%s", n);
            }
        }
    }
    closedir(d);
    if (ntar) {
        char pat[4700], idx[600];
        shard_pattern(path, first_tar, pat, sizeof pat, idx, sizeof idx);
        return mim_err(MIM_EIO, "%s: no %s-images-idx3-ubyte.gz (IDX data) here, but %d webdataset shard(s) (%s ...): "
                       "index them once, `mimscale index '%s' --out %s`, and pass --data %s", path, split, ntar,
                       first_tar, pat, idx, idx);
    }
    if (nsub)
        return mim_err(MIM_EIO, "%s: no %s-images-idx3-ubyte.gz (IDX data) here, but %d%s folder(s) of images (%s/ ...), "
                       "an image folder: pack it into shards, `mimscale pack %s --out train`, index them, "
                       "`mimscale index 'train-*.tar' --out train.idx`, and pass --data train.idx", path, split, nsub,
                       subs_looked >= 64 ? "+" : "", first_sub, path);
    char plain[128];
    snprintf(plain, sizeof plain, "%s-images-idx3-ubyte", split);
    if (nidx && !strcmp(first_idx, plain))
        return mim_err(MIM_EIO, "%s: no %s-images-idx3-ubyte.gz, but %s uncompressed: the IDX reader takes the .gz "
                       "names; compress the split's two files (`gzip -k %s/%s-*-ubyte`)", path, split, first_idx, path, split);
    if (nidx)
        return mim_err(MIM_EIO, "%s: no %s-images-idx3-ubyte.gz: the folder holds another IDX split (%s); "
                       "the split asked for is '%s'", path, split, first_idx, split);
    if (nimg)
        return mim_err(MIM_EIO, "%s: no %s-images-idx3-ubyte.gz (IDX data) here, but %d image file(s) loose in the folder: "
                       "`mimscale pack` reads class folders (ROOT/<class>/*.jpg): move them into one (e.g. %s/all/), "
                       "pack and index them (`mimscale pack %s --out train`, `mimscale index 'train-*.tar' --out train.idx`) "
                       "and pass --data train.idx", path, split, nimg, path, path);
    return mim_err(MIM_EIO, "%s: no %s-images-idx3-ubyte.gz, no webdataset shards (.tar) and no image folders here; "
                   "the data is an IDX folder (Fashion-MNIST layout) or a sample index from `mimscale index`", path, split);
}

static int open_idx(mim_source* s) {
    const mim_source_config* c = &s->cfg;
    int rc = check_idx_dir(c->path, c->split ? c->split : "train");
    if (rc) return rc;
    rc = mim_idx_load_dir(&s->idx, c->path, c->split ? c->split : "train");
    if (rc) return rc;
    s->C = c->channels ? c->channels : 1;
    s->H = c->height ? c->height : s->idx.h;
    s->W = c->width ? c->width : s->idx.w;
    if (s->C != 1) return mim_err(MIM_EARG, "%s: IDX images are grayscale; the model asks for %d channels", c->path, s->C);
    // normalisation statistics of the TRAINING split, whichever split this
    // is, so that train and eval images are normalised alike
    mim_idx tr = {0};
    const mim_idx* st = &s->idx;
    if (strcmp(c->split ? c->split : "train", "train") != 0 && mim_idx_load_dir(&tr, c->path, "train") == 0 &&
        tr.h == s->idx.h && tr.w == s->idx.w)
        st = &tr;
    double s1 = 0, s2 = 0;
    size_t np = (size_t)st->n * st->h * st->w;
    for (size_t i = 0; i < np; i++) { double v = st->pixels[i] / 255.0; s1 += v; s2 += v * v; }
    s->mean = (float)(s1 / np);
    s->std = (float)sqrt(fmax(s2 / np - (s1 / np) * (s1 / np), 1e-12));
    mim_idx_free(&tr);
    for (int64_t i = 0; i < s->idx.n; i++)
        if (s->idx.labels && s->idx.labels[i] + 1 > s->num_classes) s->num_classes = s->idx.labels[i] + 1;
    s->order = mim_malloc(sizeof(uint32_t) * (size_t)s->idx.n);
    s->nscratch = omp_get_max_threads();
    s->scratch = mim_calloc((size_t)s->nscratch, sizeof *s->scratch);
    if (!s->order || !s->scratch) return MIM_ENOMEM;
    for (int i = 0; i < s->nscratch; i++)
        if ((rc = mim_aug_scratch_init(&s->scratch[i], (int64_t)s->idx.h * s->idx.w))) return rc;
    s->order_epoch = -1;
    if (mim_source_size(s) < c->batch)
        return mim_err(MIM_EARG, "%s: %lld images per rank, fewer than one batch of %d", c->path,
                       (long long)mim_source_size(s), c->batch);
    return 0;
}

// Index data has no size of its own (web images come in every size).
static int need_size(const char* path) {
    return mim_err(MIM_EARG, "%s: index data needs the input size: give --img N (images are resized and cropped to "
                   "N x N; --in-chans, 3 by default)", path);
}

static int open_index(mim_source* s) {
    const mim_source_config* c = &s->cfg;
    int rc = not_an_index(c->path);
    if (rc) return rc;
    if (!c->channels || !c->height || !c->width) return need_size(c->path);
    s->C = c->channels; s->H = c->height; s->W = c->width;
    mim_loader_config lc;
    mim_loader_config_default(&lc);
    lc.index_path = c->path; lc.subset_path = c->subset; lc.batch_size = c->batch;
    lc.channels = s->C; lc.height = s->H; lc.width = s->W;
    lc.augment = c->augment; lc.shuffle = c->shuffle; lc.seed = c->seed;
    lc.rank = c->rank; lc.world = c->world > 0 ? c->world : 1;
    lc.n_threads = c->threads > 0 ? c->threads : 2;
    lc.no_replace = c->no_replace; lc.max_skip_frac = c->max_skip_frac;
    mim_transform_default(&s->tf, s->C, s->H, s->W, c->augment);
    if (c->crop_min_scale > 0) s->tf.scale_min = c->crop_min_scale;
    lc.transform = &s->tf;
    s->num_classes = -1;   // counted on first request (a pass over the index)
    return mim_loader_open(&s->loader, &lc);
}

int mim_source_estimate(const mim_source_config* cfg, uint64_t* bytes, int* c, int* h, int* w) {
    struct stat st;
    if (stat(cfg->path, &st) != 0) return mim_err(MIM_EIO, "cannot open %s: no such file or folder", cfg->path);
    uint64_t B = (uint64_t)(cfg->batch > 0 ? cfg->batch : 1);
    if (S_ISDIR(st.st_mode)) {
        char p[4096];
        const char* split = cfg->split ? cfg->split : "train";
        int rc = check_idx_dir(cfg->path, split);
        if (rc) return rc;
        snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", cfg->path, split);
        int64_t n;
        int ih, iw;
        if ((rc = mim_idx_peek(p, &n, &ih, &iw))) return rc;
        *c = cfg->channels ? cfg->channels : 1;
        *h = cfg->height ? cfg->height : ih;
        *w = cfg->width ? cfg->width : iw;
        // pixels, int32 labels, uint32 order; per thread an augmentation scratch of a few planes
        uint64_t b = (uint64_t)n * ((uint64_t)ih * iw + 8) + (uint64_t)omp_get_max_threads() * (uint64_t)ih * iw * 16;
        int64_t tn;
        snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", cfg->path);
        if (strcmp(split, "train") && mim_idx_peek(p, &tn, &ih, &iw) == 0)
            b += (uint64_t)tn * ((uint64_t)ih * iw + 4);   // read for the statistics, then freed
        *bytes = b;
        return 0;
    }
    int rc = not_an_index(cfg->path);
    if (rc) return rc;
    if (!cfg->channels || !cfg->height || !cfg->width) return need_size(cfg->path);
    *c = cfg->channels; *h = cfg->height; *w = cfg->width;
    // the loader's ring (mim_loader_open: 2 + threads / 4 batches) and per
    // decode worker an allowance for a decoded web image and its resize
    int threads = cfg->threads > 0 ? cfg->threads : 2, R = 2 + threads / 4;
    *bytes = (uint64_t)R * B * ((uint64_t)*c * *h * *w * 4 + 4) + (uint64_t)threads * (16u << 20);
    return 0;
}

int mim_source_default_channels(const char* data) {
    struct stat st;
    return data && stat(data, &st) == 0 && S_ISDIR(st.st_mode) ? 1 : 3;
}

int mim_source_open(mim_source** out, const mim_source_config* cfg) {
    *out = NULL;
    if (cfg->batch < 1) return mim_err(MIM_EARG, "batch must be >= 1");
    mim_source* s = mim_calloc(1, sizeof *s);
    if (!s) return MIM_ENOMEM;
    s->cfg = *cfg;
    if (s->cfg.world < 1) s->cfg.world = 1;
    struct stat st;
    if (stat(cfg->path, &st) != 0) {
        free(s);
        return mim_err(MIM_EIO, "cannot open %s: no such file or folder", cfg->path);
    }
    int rc = S_ISDIR(st.st_mode) ? open_idx(s) : open_index(s);
    if (rc) { mim_source_close(s); return rc; }
    *out = s;
    return 0;
}

void mim_source_close(mim_source* s) {
    if (!s) return;
    if (s->loader) mim_loader_close(s->loader);
    for (int i = 0; i < s->nscratch && s->scratch; i++) mim_aug_scratch_free(s->scratch[i]);
    free(s->scratch);
    free(s->order);
    mim_idx_free(&s->idx);
    free(s);
}

int64_t mim_source_size(const mim_source* s) {
    if (s->loader) return (int64_t)mim_loader_epoch_size(s->loader) / s->cfg.world;
    return s->idx.n / s->cfg.world;
}

int64_t mim_source_batches_per_epoch(const mim_source* s) {
    if (s->loader) return (int64_t)mim_loader_batches_per_epoch(s->loader);
    return mim_source_size(s) / s->cfg.batch;
}

void mim_source_geometry(const mim_source* s, int* c, int* h, int* w) { *c = s->C; *h = s->H; *w = s->W; }
int mim_source_num_classes(mim_source* s) {
    if (s->num_classes >= 0) return s->num_classes;
    s->num_classes = 0;
    mim_index* ix;
    if (mim_index_open(&ix, s->cfg.path) == 0) {
        for (uint64_t i = 0; i < mim_index_count(ix); i++) {
            const mim_index_record* r = mim_index_get(ix, i);
            if (r->label >= 0 && r->label <= MIM_MAX_LABEL && r->label + 1 > s->num_classes) s->num_classes = r->label + 1;
        }
        mim_index_close(ix);
    }
    return s->num_classes;
}

// IDX: epoch permutation from (seed, epoch); rank r takes every world-th
// micro-batch of it (mim_rank_position, data/loader.h).
static void idx_order(mim_source* s, int64_t epoch) {
    if (s->order_epoch == epoch) return;
    for (int64_t i = 0; i < s->idx.n; i++) s->order[i] = (uint32_t)i;
    if (s->cfg.shuffle) {
        mim_rng r;
        mim_rng_seed(&r, mix(s->cfg.seed, 1, (uint64_t)epoch));
        mim_rng_shuffle_u32(&r, s->order, (uint64_t)s->idx.n);
    }
    s->order_epoch = epoch;
}

static void idx_sample(mim_source* s, float* out, int64_t epoch, int64_t slot, uint32_t img) {
    const int H0 = s->idx.h, W0 = s->idx.w;
    mim_image im = {.px = s->idx.pixels + (size_t)img * H0 * W0, .w = W0, .h = H0, .c = 1, .row0 = 0, .full_h = H0};
    mim_aug_scratch* scr = s->scratch[omp_get_thread_num() % s->nscratch];
    float mean[3] = {s->mean, s->mean, s->mean}, std[3] = {s->std, s->std, s->std};
    if (s->cfg.augment) {
        mim_rng r;
        mim_rng_seed(&r, mix(s->cfg.seed, 2 + (uint64_t)epoch, (uint64_t)slot));
        mim_crop cr;
        float smin = s->cfg.crop_min_scale > 0 ? s->cfg.crop_min_scale : 0.2f;
        mim_rrc_params(&r, H0, W0, smin, 1.0f, 3.0f / 4.0f, 4.0f / 3.0f, &cr);
        cr.flip = (mim_rng_u64(&r) >> 11) & 1;
        mim_resample_chw(out, &im, cr.j, cr.i, cr.j + cr.w, cr.i + cr.h, cr.j, cr.j + cr.w, cr.i, cr.i + cr.h,
                         s->W, s->H, MIM_FILTER_BILINEAR, cr.flip, mean, std, scr);
    } else if (s->H == H0 && s->W == W0) {
        const uint8_t* p = im.px;
        float inv = 1.0f / (255.0f * s->std), off = s->mean / s->std;
        for (int i = 0; i < H0 * W0; i++) out[i] = p[i] * inv - off;
    } else {
        mim_resample_chw(out, &im, 0, 0, W0, H0, 0, W0, 0, H0, s->W, s->H, MIM_FILTER_BILINEAR, 0, mean, std, scr);
    }
}

int mim_source_next(mim_source* s, float* imgs, int32_t* labels) {
    return mim_source_next_ids(s, imgs, labels, NULL);
}

int64_t mim_source_id_space(const mim_source* s) {
    return s->loader ? (int64_t)mim_loader_id_space(s->loader) : (int64_t)s->idx.n;
}

int mim_source_next_ids(mim_source* s, float* imgs, int32_t* labels, int64_t* ids) {
    if (s->loader) return mim_loader_next_ids(s->loader, imgs, labels, ids);
    int B = s->cfg.batch;
    if (s->pos.index + B > mim_source_size(s)) { s->pos.epoch++; s->pos.index = 0; }   // drop the last partial batch
    idx_order(s, s->pos.epoch);
    int64_t epoch = s->pos.epoch, base = s->pos.index;
    size_t per = (size_t)s->C * s->H * s->W;
    #pragma omp parallel for schedule(static) if (B >= 16)
    for (int b = 0; b < B; b++) {
        int64_t slot = (int64_t)mim_rank_position((uint64_t)(base + b), (uint64_t)B, (uint64_t)s->cfg.rank,
                                                  (uint64_t)s->cfg.world);
        uint32_t img = s->order[slot];
        idx_sample(s, imgs + (size_t)b * per, epoch, slot, img);
        if (labels) labels[b] = s->idx.labels ? s->idx.labels[img] : -1;
        if (ids) ids[b] = img;
    }
    s->pos.index += B;
    return 0;
}

mim_source_pos mim_source_get_position(const mim_source* s) {
    if (s->loader) {
        mim_loader_pos p = mim_loader_get_position(s->loader);
        return (mim_source_pos){(int64_t)p.epoch, (int64_t)p.index};
    }
    return s->pos;
}

int mim_source_set_position(mim_source* s, mim_source_pos pos) {
    if (pos.epoch < 0 || pos.index < 0) return mim_err(MIM_EARG, "bad data position (%lld, %lld)",
                                                       (long long)pos.epoch, (long long)pos.index);
    if (s->loader) return mim_loader_set_position(s->loader, (mim_loader_pos){(uint64_t)pos.epoch, (uint64_t)pos.index});
    pos.index -= pos.index % s->cfg.batch;   // batch boundaries, as the loader
    s->pos = pos;
    return 0;
}

void mim_source_normalization(const mim_source* s, float mean[3], float std[3]) {
    for (int c = 0; c < 3; c++) {
        mean[c] = s->loader ? s->tf.mean[c] : s->mean;
        std[c] = s->loader ? s->tf.std[c] : s->std;
    }
}

void mim_source_counters(const mim_source* s, char* out, size_t cap) {
    if (!s->loader) { if (cap) out[0] = 0; return; }
    mim_loader_counters c = mim_loader_get_counters(s->loader);
    mim_loader_counters_format(&c, out, cap);
}

int mim_source_get_counters(const mim_source* s, mim_loader_counters* c) {
    memset(c, 0, sizeof *c);
    if (!s->loader) return 0;
    *c = mim_loader_get_counters(s->loader);
    return 1;
}
