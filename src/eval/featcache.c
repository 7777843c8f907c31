// featcache.c: see featcache.h.
#include "eval/featcache.h"
#include "core/check.h"
#include "core/safetensors.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char* nz(const char* s) { return s && *s ? s : "-"; }

int mim_featcache_key(char* key, size_t cap, const mim_eval_common* a) {
    // what the features are of: a checkpoint (its identity on disk), the
    // pixels at a geometry, or a random encoder (preset, patch, geometry, seed)
    char src[2048];
    int n;
    if (a->mode == MIM_FEAT_CKPT) {
        struct stat st;
        if (!a->ckpt || stat(a->ckpt, &st) != 0) return mim_err(MIM_EIO, "cannot stat checkpoint %s", nz(a->ckpt));
        n = snprintf(src, sizeof src, "features=ckpt;ckpt=%s;size=%lld;mtime=%lld.%09ld;pool=%s", a->ckpt, (long long)st.st_size,
                     (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec, mim_pool_name(a->pool));
    } else if (a->mode == MIM_FEAT_PIXELS) {
        n = snprintf(src, sizeof src, "features=pixels;img=%d;chans=%d", a->img, a->in_chans);
    } else {
        n = snprintf(src, sizeof src, "features=random-init;model=%s;patch=%d;img=%d;chans=%d;seed=%llu;pool=%s",
                     nz(a->model), a->patch, a->img, a->in_chans, (unsigned long long)a->seed, mim_pool_name(a->pool));
    }
    if (n < 0 || (size_t)n >= sizeof src) return mim_err(MIM_EARG, "feature cache key longer than %zu bytes", sizeof src);
    n = snprintf(key, cap, "v2;%s;data=%s;split=%s;subset=%s;eval=%s;esplit=%s;esubset=%s", src, nz(a->data),
                 nz(a->data_split), nz(a->subset), nz(a->eval_data ? a->eval_data : a->data), nz(a->eval_split),
                 nz(a->eval_subset));
    if (n < 0 || (size_t)n >= cap) return mim_err(MIM_EARG, "feature cache key longer than %zu bytes", cap);
    return 0;
}

// Copies set NAME ("train"/"eval") out of st into f. 0 or MIM_EFORMAT.
static int load_set(const mim_st* st, const char* name, mim_features* f) {
    char xn[32], ln[32];
    snprintf(xn, sizeof xn, "%s_x", name);
    snprintf(ln, sizeof ln, "%s_y", name);
    const mim_st_tensor* x = mim_st_find(st, xn);
    const mim_st_tensor* l = mim_st_find(st, ln);
    if (!x || !l || x->dtype != MIM_F32 || x->ndim != 2 || l->dtype != MIM_I32 || l->ndim != 1 ||
        l->shape[0] != x->shape[0] || x->shape[0] < 1 || x->shape[1] < 1 || x->shape[1] > (1 << 20))
        return mim_err(MIM_EFORMAT, "tensors %s / %s missing or malformed", xn, ln);
    memset(f, 0, sizeof *f);
    f->n = x->shape[0];
    f->dim = (int)x->shape[1];
    f->x = malloc(x->nbytes);
    f->labels = malloc(l->nbytes);
    if (!f->x || !f->labels) { mim_features_free(f); return mim_err(MIM_ENOMEM, "feature cache: out of memory"); }
    memcpy(f->x, x->data, x->nbytes);
    memcpy(f->labels, l->data, l->nbytes);
    int maxl = -1;
    for (int64_t i = 0; i < f->n; i++) {
        if (f->labels[i] < 0 || f->labels[i] > (1 << 24)) { mim_features_free(f); return mim_err(MIM_EFORMAT, "bad label in %s", ln); }
        if (f->labels[i] > maxl) maxl = f->labels[i];
    }
    f->num_classes = maxl + 1;
    return 0;
}

int mim_featcache_load(const char* path, const char* key, mim_features* tr, mim_features* ev) {
    memset(tr, 0, sizeof *tr);
    memset(ev, 0, sizeof *ev);
    struct stat sb;
    if (stat(path, &sb) != 0) return 1;
    mim_st* st = NULL;
    if (mim_st_open(&st, path)) {
        fprintf(stderr, "warning: feature cache %s unreadable (%s): extracting again\n", path, mim_err_msg());
        return 1;
    }
    const char* k = mim_st_meta(st, "key");
    const char* sk = mim_st_meta(st, "skipped");   // "train eval": samples left out at extraction
    int rc = 1;
    if (k && strcmp(k, key) == 0) {
        if (load_set(st, "train", tr) || load_set(st, "eval", ev) || tr->dim != ev->dim) {
            fprintf(stderr, "warning: feature cache %s malformed (%s): extracting again\n", path, mim_err_msg());
            mim_features_free(tr);
            mim_features_free(ev);
        } else {
            long long a = 0, b = 0;
            if (sk && sscanf(sk, "%lld %lld", &a, &b) == 2) { tr->n_skipped = a; ev->n_skipped = b; }
            rc = 0;
        }
    }
    mim_st_close(st);
    return rc;
}

int mim_featcache_save(const char* path, const char* key, const mim_features* tr, const mim_features* ev) {
    mim_st_entry e[4] = {
        {"train_x", MIM_F32, 2, {tr->n, tr->dim}, tr->x},
        {"train_y", MIM_I32, 1, {tr->n}, tr->labels},
        {"eval_x", MIM_F32, 2, {ev->n, ev->dim}, ev->x},
        {"eval_y", MIM_I32, 1, {ev->n}, ev->labels},
    };
    char sk[64];
    snprintf(sk, sizeof sk, "%lld %lld", (long long)tr->n_skipped, (long long)ev->n_skipped);
    const char* meta[4] = {"skipped", sk, "key", key};
    return mim_st_write(path, e, 4, meta, key ? 2 : 1);
}
