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

// ---- the class list and the images ------------------------------------------

typedef struct { char** v; size_t n, cap; } strv;

static int strv_push(strv* s, const char* x) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? 2 * s->cap : 256;
        char** nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) return mim_err(MIM_ENOMEM, "out of memory");
        s->v = nv; s->cap = nc;
    }
    if (!(s->v[s->n] = strdup(x))) return mim_err(MIM_ENOMEM, "out of memory");
    s->n++;
    return MIM_OK;
}

static void strv_free(strv* s) {
    for (size_t i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

// Index of name in the class list (linear: lists are short), -1 if absent.
static int class_of(const strv* cl, const char* name) {
    for (size_t i = 0; i < cl->n; i++) if (!strcmp(cl->v[i], name)) return (int)i;
    return -1;
}

// Lines of a text file into v (trailing whitespace and blank lines dropped).
static int read_lines(const char* path, strv* v) {
    FILE* f = fopen(path, "r");
    if (!f) return mim_err(MIM_EIO, "cannot open %s: %s", path, strerror(errno));
    char line[4096];
    int rc = MIM_OK;
    while (rc == MIM_OK && fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) line[--n] = 0;
        if (n) rc = strv_push(v, line);
    }
    fclose(f);
    return rc;
}

// Every image file under dir, at any depth (sorted by path), into items
// with the given label; other files counted in st->n_not_image.
static int collect(const char* dir, int32_t label, item** items, size_t* ni, size_t* icap, mim_pack_stats* st, int depth) {
    if (depth > 32) return mim_err(MIM_EARG, "pack: %s: folders nested more than 32 deep", dir);
    char** files = NULL; size_t nf = 0;
    int rc = list_dir(dir, 0, &files, &nf);
    for (size_t i = 0; rc == MIM_OK && i < nf; i++) {
        const char* ext;
        if (!is_image(files[i], &ext)) { st->n_not_image++; continue; }
        if (*ni == *icap) {
            *icap = *icap ? 2 * *icap : 1024;
            item* n2 = realloc(*items, *icap * sizeof **items);
            if (!n2) { rc = mim_err(MIM_ENOMEM, "out of memory"); break; }
            *items = n2;
        }
        size_t L = strlen(dir) + strlen(files[i]) + 2;
        if (!((*items)[*ni].path = malloc(L))) { rc = mim_err(MIM_ENOMEM, "out of memory"); break; }
        snprintf((*items)[*ni].path, L, "%s/%s", dir, files[i]);
        (*items)[*ni].label = label;
        (*ni)++;
    }
    if (files) { for (size_t i = 0; i < nf; i++) free(files[i]); free(files); }
    char** subs = NULL; size_t ns = 0;
    if (rc == MIM_OK) rc = list_dir(dir, 1, &subs, &ns);
    for (size_t i = 0; rc == MIM_OK && i < ns; i++) {
        char sub[4096];
        snprintf(sub, sizeof sub, "%s/%s", dir, subs[i]);
        rc = collect(sub, label, items, ni, icap, st, depth + 1);
    }
    if (subs) { for (size_t i = 0; i < ns; i++) free(subs[i]); free(subs); }
    return rc;
}

static const char* base_name(const char* p) {
    const char* b = strrchr(p, '/');
    return b ? b + 1 : p;
}

typedef struct { char* name; int32_t label; } ann;
static int cmp_ann(const void* a, const void* b) { return strcmp(((const ann*)a)->name, ((const ann*)b)->name); }

// The annotation file's "IMAGE CLASS" pairs, sorted by image name; classes
// not in cl are appended to it when fixed is 0, an error when it is 1.
static int read_annotations(const char* path, strv* cl, int fixed, ann** out, size_t* n) {
    FILE* f = fopen(path, "r");
    if (!f) return mim_err(MIM_EIO, "--labels-from %s: %s", path, strerror(errno));
    size_t cap = 0;
    *out = NULL; *n = 0;
    char line[4096], img[2048], cls[1024];
    int rc = MIM_OK, lineno = 0;
    strv names = {0};
    while (rc == MIM_OK && fgets(line, sizeof line, f)) {
        lineno++;
        if (sscanf(line, "%2047s %1023s", img, cls) != 2) {
            if (strspn(line, " \t\r\n") == strlen(line)) continue;
            rc = mim_err(MIM_EFORMAT, "--labels-from %s:%d: want 'IMAGE CLASS ...', got '%.60s'", path, lineno, line);
            break;
        }
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            ann* a2 = realloc(*out, cap * sizeof **out);
            if (!a2) { rc = mim_err(MIM_ENOMEM, "out of memory"); break; }
            *out = a2;
        }
        (*out)[*n].name = strdup(base_name(img));
        (*out)[*n].label = -1;
        if (!(*out)[*n].name || (rc = strv_push(&names, cls))) { free((*out)[*n].name); rc = rc ? rc : MIM_ENOMEM; break; }
        (*n)++;
    }
    fclose(f);
    if (rc == MIM_OK && !fixed) {   // the classes the file names, sorted
        strv sorted = {0};
        for (size_t i = 0; rc == MIM_OK && i < names.n; i++) if (class_of(&sorted, names.v[i]) < 0) rc = strv_push(&sorted, names.v[i]);
        if (rc == MIM_OK) qsort(sorted.v, sorted.n, sizeof *sorted.v, cmp_str);
        for (size_t i = 0; rc == MIM_OK && i < sorted.n; i++) rc = strv_push(cl, sorted.v[i]);
        strv_free(&sorted);
    }
    for (size_t i = 0; rc == MIM_OK && i < *n; i++) {
        int c = class_of(cl, names.v[i]);
        if (c < 0) rc = mim_err(MIM_EARG, "--labels-from %s: class '%s' (of %s) is not in the --classes list", path,
                                names.v[i], (*out)[i].name);
        (*out)[i].label = c;
    }
    strv_free(&names);
    if (rc == MIM_OK) qsort(*out, *n, sizeof **out, cmp_ann);
    return rc;
}

int mim_pack_imagefolder_ex(const char* root, const char* prefix, const mim_pack_opts* o, mim_pack_stats* st) {
    memset(st, 0, sizeof *st);
    if (o->per_shard == 0) return mim_err(MIM_EARG, "pack: samples per shard must be > 0");
    strv cl = {0};
    item* items = NULL; size_t ni = 0, icap = 0;
    ann* an = NULL; size_t nan_ = 0;
    int rc = o->classes ? read_lines(o->classes, &cl) : MIM_OK;
    if (rc == MIM_OK && o->classes && cl.n == 0) rc = mim_err(MIM_EARG, "--classes %s lists no class", o->classes);
    if (rc == MIM_OK && o->labels_from) {
        rc = read_annotations(o->labels_from, &cl, o->classes != NULL, &an, &nan_);
        if (rc == MIM_OK) rc = collect(root, -1, &items, &ni, &icap, st, 0);
        size_t k = 0;
        for (size_t i = 0; rc == MIM_OK && i < ni; i++) {   // label by file name; unnamed images are lost
            ann key = {(char*)base_name(items[i].path), 0};
            ann* hit = bsearch(&key, an, nan_, sizeof *an, cmp_ann);
            if (!hit) {
                st->n_unlabelled++;
                if (!st->first_unreadable[0])
                    snprintf(st->first_unreadable, sizeof st->first_unreadable, "%s: not in %s", items[i].path, o->labels_from);
                free(items[i].path);
                continue;
            }
            items[i].label = hit->label;
            items[k++] = items[i];
        }
        if (rc == MIM_OK) ni = k;
    } else if (rc == MIM_OK) {
        char** dirs = NULL; size_t nd = 0;
        rc = list_dir(root, 1, &dirs, &nd);
        if (rc == MIM_OK && nd == 0)
            rc = mim_err(MIM_EARG, "pack: %s has no class folders (want ROOT/<class>/.../*.jpg; for a flat folder of "
                         "images with an annotation file use --labels-from FILE)", root);
        if (rc == MIM_OK && !o->classes)
            for (size_t c = 0; rc == MIM_OK && c < nd; c++) rc = strv_push(&cl, dirs[c]);
        for (size_t c = 0; rc == MIM_OK && c < nd; c++) {
            int label = class_of(&cl, dirs[c]);
            if (label < 0) {
                rc = mim_err(MIM_EARG, "pack: class folder '%s' is not in --classes %s (its labels would not match)",
                             dirs[c], o->classes);
                break;
            }
            char dir[4096]; snprintf(dir, sizeof dir, "%s/%s", root, dirs[c]);
            rc = collect(dir, label, &items, &ni, &icap, st, 1);
        }
        if (dirs) { for (size_t c = 0; c < nd; c++) free(dirs[c]); free(dirs); }
    }
    if (rc == MIM_OK && ni == 0)
        rc = mim_err(MIM_EDATA, "pack: no image under %s (%llu other files, %llu images not in the annotation file): "
                     "nothing written; images must be .jpg/.jpeg/.png/.webp%s", root, (unsigned long long)st->n_not_image,
                     (unsigned long long)st->n_unlabelled, o->labels_from ? "" : " inside ROOT/<class>/ folders");
    if (rc == MIM_OK && o->shuffle) {
        mim_rng r; mim_rng_seed(&r, o->seed);
        for (size_t i = ni; i > 1; i--) { size_t j = (size_t)mim_rng_below(&r, i); item t = items[i - 1]; items[i - 1] = items[j]; items[j] = t; }
    }
    shard_writer w = { prefix, o->per_shard, 0, 0, NULL };
    uint8_t* buf = NULL; size_t cap = 0;
    for (size_t i = 0; i < ni && rc == MIM_OK; i++) {
        FILE* f = fopen(items[i].path, "rb");
        char why[128] = "";
        off_t L = -1;
        if (!f) snprintf(why, sizeof why, "%s", strerror(errno));
        else {
            fseeko(f, 0, SEEK_END); L = ftello(f); fseeko(f, 0, SEEK_SET);
            if (L <= 0) snprintf(why, sizeof why, "empty or unreadable");
            else if ((uint64_t)L > UINT32_MAX) snprintf(why, sizeof why, "over 4 GiB");
        }
        if (!why[0] && (size_t)L > cap) {
            uint8_t* nb = realloc(buf, (size_t)L);
            if (!nb) { fclose(f); rc = mim_err(MIM_ENOMEM, "out of memory"); break; }
            buf = nb; cap = (size_t)L;
        }
        if (!why[0] && fread(buf, 1, (size_t)L, f) != (size_t)L) snprintf(why, sizeof why, "short read");
        if (f) fclose(f);
        if (why[0]) {
            st->n_unreadable++;
            if (!st->first_unreadable[0]) snprintf(st->first_unreadable, sizeof st->first_unreadable, "%s: %s", items[i].path, why);
            continue;
        }
        const char* ext = "jpg"; is_image(items[i].path, &ext);
        char lext[8]; size_t k = 0;
        for (; ext[k] && k < 7; k++) lext[k] = (char)((ext[k] >= 'A' && ext[k] <= 'Z') ? ext[k] + 32 : ext[k]);
        lext[k] = 0;
        rc = sw_member(&w, st->n_samples, lext, buf, (uint64_t)L, items[i].label);
        st->n_samples++;
    }
    int rc2 = sw_close(&w);
    if (rc == MIM_OK) rc = rc2;
    if (rc == MIM_OK && st->n_samples == 0)
        rc = mim_err(MIM_EDATA, "pack: none of the %zu images under %s could be read (first: %s)", ni, root, st->first_unreadable);
    st->n_shards = w.shard; st->n_classes = (int)cl.n;
    st->n_skipped = st->n_unreadable + st->n_not_image + st->n_unlabelled;
    if (rc == MIM_OK) {
        char p[4096]; snprintf(p, sizeof p, "%s-classes.txt", prefix);
        FILE* f = fopen(p, "w");
        if (!f) rc = mim_err(MIM_EIO, "cannot create %s", p);
        else { for (size_t c = 0; c < cl.n; c++) fprintf(f, "%s\n", cl.v[c]); fclose(f); }
    }
    for (size_t i = 0; i < ni; i++) free(items[i].path);
    for (size_t i = 0; i < nan_; i++) free(an[i].name);
    free(an);
    strv_free(&cl);
    free(items); free(buf);
    return rc;
}

int mim_pack_imagefolder(const char* root, const char* prefix, uint64_t per_shard, int shuffle, uint64_t seed,
                         mim_pack_stats* st) {
    mim_pack_opts o = {.per_shard = per_shard, .shuffle = shuffle, .seed = seed};
    return mim_pack_imagefolder_ex(root, prefix, &o, st);
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
