// pack.c: ImageFolder / IDX -> webdataset shards (see pack.h).
#include "data/pack.h"
#include "core/check.h"
#include "core/rng.h"
#include "data/idx.h"
#include "data/tar.h"
#include <dirent.h>
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

typedef struct { char* path; int32_t label; } item;

static int cmp_str(const void* a, const void* b) { return strcmp(*(char* const*)a, *(char* const*)b); }

static int is_image(const char* name, const char** ext) {
    const char* dot = strrchr(name, '.');
    if (!dot) return 0;
    *ext = dot + 1;
    return !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png") || !strcasecmp(dot, ".webp");
}

// Sorted names of the entries of dir (files or dirs), without . and ..
static int list_dir(const char* dir, int want_dir, char*** out, size_t* n) {
    DIR* d = opendir(dir);
    if (!d) return mim_err(MIM_EIO, "cannot open directory %s: %s", dir, strerror(errno));
    size_t cap = 64; *n = 0;
    char** v = malloc(cap * sizeof *v);
    struct dirent* e;
    while (v && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) != 0 || (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))) continue;
        if (*n == cap) { cap *= 2; char** nv = realloc(v, cap * sizeof *v); if (!nv) { break; } v = nv; }
        v[(*n)++] = strdup(e->d_name);
    }
    closedir(d);
    if (!v) return mim_err(MIM_ENOMEM, "out of memory");
    qsort(v, *n, sizeof *v, cmp_str);
    *out = v;
    return MIM_OK;
}

typedef struct {
    const char* prefix;
    uint64_t per_shard, in_shard, shard;
    FILE* f;
} shard_writer;

static int sw_member(shard_writer* w, uint64_t key, const char* ext, const void* data, uint64_t n, int32_t label) {
    if (!w->f || w->in_shard == w->per_shard) {
        if (w->f) { if (mim_tar_write_end(w->f) < 0 || fclose(w->f)) return mim_err(MIM_EIO, "write shard failed"); w->shard++; }
        char p[4096];
        snprintf(p, sizeof p, "%s-%06llu.tar", w->prefix, (unsigned long long)w->shard);
        w->f = fopen(p, "wb");
        if (!w->f) return mim_err(MIM_EIO, "cannot create %s: %s", p, strerror(errno));
        w->in_shard = 0;
    }
    char name[64];
    snprintf(name, sizeof name, "%09llu.%s", (unsigned long long)key, ext);
    int rc = mim_tar_write_member(w->f, name, data, n);
    if (rc == MIM_OK && label >= 0) {
        char lb[16]; int k = snprintf(lb, sizeof lb, "%d\n", label);
        snprintf(name, sizeof name, "%09llu.cls", (unsigned long long)key);
        rc = mim_tar_write_member(w->f, name, lb, (uint64_t)k);
    }
    w->in_shard++;
    return rc;
}

static int sw_close(shard_writer* w) {
    if (!w->f) return MIM_OK;
    int rc = mim_tar_write_end(w->f);
    if (fclose(w->f) && rc == MIM_OK) rc = mim_err(MIM_EIO, "closing shard failed");
    w->f = NULL; w->shard++;
    return rc;
}

int mim_pack_imagefolder(const char* root, const char* prefix, uint64_t per_shard, int shuffle, uint64_t seed,
                         mim_pack_stats* st) {
    memset(st, 0, sizeof *st);
    if (per_shard == 0) return mim_err(MIM_EARG, "pack: samples per shard must be > 0");
    char** classes; size_t nc;
    int rc = list_dir(root, 1, &classes, &nc);
    if (rc < 0) return rc;
    if (nc == 0) { free(classes); return mim_err(MIM_EARG, "pack: %s has no class subdirectories (want root/<class>/*.jpg)", root); }
    item* items = NULL; size_t ni = 0, icap = 0;
    for (size_t c = 0; c < nc && rc == MIM_OK; c++) {
        char dir[4096]; snprintf(dir, sizeof dir, "%s/%s", root, classes[c]);
        char** files = NULL; size_t nf = 0;
        rc = list_dir(dir, 0, &files, &nf);
        for (size_t i = 0; rc == MIM_OK && i < nf; i++) {
            const char* ext;
            if (!is_image(files[i], &ext)) { st->n_skipped++; continue; }
            if (ni == icap) { icap = icap ? 2 * icap : 1024; item* n2 = realloc(items, icap * sizeof *items); if (!n2) { rc = mim_err(MIM_ENOMEM, "out of memory"); break; } items = n2; }
            size_t L = strlen(dir) + strlen(files[i]) + 2;
            items[ni].path = malloc(L); snprintf(items[ni].path, L, "%s/%s", dir, files[i]);
            items[ni].label = (int32_t)c; ni++;
        }
        if (files) { for (size_t i = 0; i < nf; i++) free(files[i]); free(files); }
    }
    if (rc == MIM_OK && shuffle) {
        mim_rng r; mim_rng_seed(&r, seed);
        for (size_t i = ni; i > 1; i--) { size_t j = (size_t)mim_rng_below(&r, i); item t = items[i - 1]; items[i - 1] = items[j]; items[j] = t; }
    }
    shard_writer w = { prefix, per_shard, 0, 0, NULL };
    uint8_t* buf = NULL; size_t cap = 0;
    for (size_t i = 0; i < ni && rc == MIM_OK; i++) {
        FILE* f = fopen(items[i].path, "rb");
        if (!f) { st->n_skipped++; fprintf(stderr, "pack: skipped unreadable %s\n", items[i].path); continue; }
        fseeko(f, 0, SEEK_END); off_t L = ftello(f); fseeko(f, 0, SEEK_SET);
        if (L < 0 || (uint64_t)L > UINT32_MAX) { fclose(f); st->n_skipped++; continue; }
        if ((size_t)L > cap) { uint8_t* nb = realloc(buf, (size_t)L ? (size_t)L : 1); if (!nb) { fclose(f); rc = mim_err(MIM_ENOMEM, "out of memory"); break; } buf = nb; cap = (size_t)L; }
        size_t got = fread(buf, 1, (size_t)L, f);
        fclose(f);
        if (got != (size_t)L) { st->n_skipped++; continue; }
        const char* ext = "jpg"; is_image(items[i].path, &ext);
        char lext[8]; size_t k = 0;
        for (; ext[k] && k < 7; k++) lext[k] = (char)((ext[k] >= 'A' && ext[k] <= 'Z') ? ext[k] + 32 : ext[k]);
        lext[k] = 0;
        rc = sw_member(&w, st->n_samples, lext, buf, (uint64_t)L, items[i].label);
        st->n_samples++;
    }
    int rc2 = sw_close(&w);
    if (rc == MIM_OK) rc = rc2;
    st->n_shards = w.shard; st->n_classes = (int)nc;
    if (rc == MIM_OK) {
        char p[4096]; snprintf(p, sizeof p, "%s-classes.txt", prefix);
        FILE* f = fopen(p, "w");
        if (!f) rc = mim_err(MIM_EIO, "cannot create %s", p);
        else { for (size_t c = 0; c < nc; c++) fprintf(f, "%s\n", classes[c]); fclose(f); }
    }
    for (size_t i = 0; i < ni; i++) free(items[i].path);
    for (size_t c = 0; c < nc; c++) free(classes[c]);
    free(items); free(classes); free(buf);
    return rc;
}

int mim_pack_idx(const char* images_path, const char* labels_path, const char* prefix, uint64_t per_shard,
                 mim_pack_stats* st) {
    memset(st, 0, sizeof *st);
    if (per_shard == 0) return mim_err(MIM_EARG, "pack: samples per shard must be > 0");
    mim_idx d;
    int rc = mim_idx_load(&d, images_path, labels_path);
    if (rc < 0) return rc;
    shard_writer w = { prefix, per_shard, 0, 0, NULL };
    void* png = NULL; size_t cap = 0;
    int32_t maxl = -1;
    for (int64_t i = 0; i < d.n && rc == MIM_OK; i++) {
        png_image im; memset(&im, 0, sizeof im);
        im.version = PNG_IMAGE_VERSION; im.width = (png_uint_32)d.w; im.height = (png_uint_32)d.h; im.format = PNG_FORMAT_GRAY;
        png_alloc_size_t n = 0;
        const uint8_t* px = d.pixels + (size_t)i * d.h * d.w;
        if (!png_image_write_to_memory(&im, NULL, &n, 0, px, d.w, NULL)) { rc = mim_err(MIM_EFORMAT, "png encode failed: %s", im.message); break; }
        if (n > cap) { void* nb = realloc(png, n); if (!nb) { rc = mim_err(MIM_ENOMEM, "out of memory"); break; } png = nb; cap = n; }
        if (!png_image_write_to_memory(&im, png, &n, 0, px, d.w, NULL)) { rc = mim_err(MIM_EFORMAT, "png encode failed: %s", im.message); break; }
        int32_t lb = d.labels ? d.labels[i] : -1;
        if (lb > maxl) maxl = lb;
        rc = sw_member(&w, (uint64_t)i, "png", png, n, lb);
        st->n_samples++;
    }
    int rc2 = sw_close(&w);
    if (rc == MIM_OK) rc = rc2;
    st->n_shards = w.shard; st->n_classes = maxl + 1;
    free(png);
    mim_idx_free(&d);
    return rc;
}
