// checkpoint.c: model and run checkpoints (see checkpoint.h).
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "core/check.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#define NMETA 17

// Config as metadata strings; buf holds the values.
static int config_meta(const mim_config* c, const char** kv, char buf[NMETA][64]) {
    const char* keys[NMETA] = {"img_h", "img_w", "in_chans", "patch", "embed_dim", "depth", "num_heads",
                               "decoder_embed_dim", "decoder_depth", "decoder_num_heads", "mlp_ratio",
                               "mask_ratio", "norm_pix_loss", "model", "target", "target_dim", "loss"};
    int vals[12] = {c->img_h, c->img_w, c->in_chans, c->patch, c->dim, c->depth, c->heads,
                    c->dec_dim, c->dec_depth, c->dec_heads, c->mlp_ratio, 0};
    for (int i = 0; i < 11; i++) snprintf(buf[i], 64, "%d", vals[i]);
    snprintf(buf[11], 64, "%.9g", c->mask_ratio);
    snprintf(buf[12], 64, "%d", c->norm_pix);
    snprintf(buf[13], 64, "%s", c->name);
    snprintf(buf[14], 64, "%s", mim_target_name(mim_config_target(c)));
    snprintf(buf[15], 64, "%d", c->target_dim);
    snprintf(buf[16], 64, "%s", mim_loss_name((mim_loss)c->loss));
    for (int i = 0; i < NMETA; i++) { kv[2 * i] = keys[i]; kv[2 * i + 1] = buf[i]; }
    return NMETA;
}

int mim_ckpt_save_model(const char* path, const mim_mae* m, const char* const* extra_meta, int n_extra) {
    mim_st_entry* e = mim_calloc((size_t)m->nparams, sizeof *e);
    const char** kv = mim_calloc((size_t)(NMETA + n_extra) * 2, sizeof(char*));
    char buf[NMETA][64];
    if (!e || !kv) { free(e); free(kv); return MIM_ENOMEM; }
    for (int i = 0; i < m->nparams; i++) {
        const mim_param* p = &m->table[i];
        e[i].name = p->name; e[i].dtype = MIM_F32; e[i].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) e[i].shape[d] = p->shape[d];
        e[i].data = m->params + p->offset;
    }
    int nm = config_meta(&m->cfg, kv, buf);
    for (int i = 0; i < 2 * n_extra; i++) kv[2 * nm + i] = extra_meta[i];
    int rc = mim_st_write(path, e, m->nparams, kv, nm + n_extra);
    free(e); free(kv);
    return rc;
}

static int meta_int(const mim_st* st, const char* path, const char* key, int* out) {
    const char* v = mim_st_meta(st, key);
    if (!v) return mim_err(MIM_EFORMAT, "%s: metadata has no '%s' (not a mimscale model file?)", path, key);
    char* end;
    long x = strtol(v, &end, 10);
    if (*end || x < 0 || x > 1 << 24) return mim_err(MIM_EFORMAT, "%s: metadata '%s' = '%s' is not a valid count", path, key, v);
    *out = (int)x;
    return 0;
}

int mim_ckpt_read_config(const char* path, mim_config* c) {
    mim_st* st;
    int rc = mim_st_open(&st, path);
    if (rc) return rc;
    memset(c, 0, sizeof *c);
    struct { const char* k; int* v; } f[] = {
        {"img_h", &c->img_h}, {"img_w", &c->img_w}, {"in_chans", &c->in_chans}, {"patch", &c->patch},
        {"embed_dim", &c->dim}, {"depth", &c->depth}, {"num_heads", &c->heads},
        {"decoder_embed_dim", &c->dec_dim}, {"decoder_depth", &c->dec_depth},
        {"decoder_num_heads", &c->dec_heads}, {"mlp_ratio", &c->mlp_ratio}, {"norm_pix_loss", &c->norm_pix}};
    for (size_t i = 0; i < sizeof f / sizeof f[0] && !rc; i++) rc = meta_int(st, path, f[i].k, f[i].v);
    if (!rc) {
        const char* mr = mim_st_meta(st, "mask_ratio");
        c->mask_ratio = mr ? strtof(mr, NULL) : 0.75f;
        const char* name = mim_st_meta(st, "model");
        snprintf(c->name, sizeof c->name, "%s", name ? name : "custom");
        // target, target_dim, loss: absent in files from before feature
        // targets (pixel targets, mse)
        const char* tg = mim_st_meta(st, "target");
        const char* ls = mim_st_meta(st, "loss");
        mim_target t = c->norm_pix ? MIM_TARGET_PIXEL_NORM : MIM_TARGET_PIXEL;
        mim_loss l = MIM_LOSS_MSE;
        if (tg && mim_target_parse(tg, &t)) rc = mim_err(MIM_EFORMAT, "%s: metadata 'target': %s", path, mim_err_msg());
        if (!rc && ls && mim_loss_parse(ls, &l)) rc = mim_err(MIM_EFORMAT, "%s: metadata 'loss': %s", path, mim_err_msg());
        if (!rc && mim_st_meta(st, "target_dim")) rc = meta_int(st, path, "target_dim", &c->target_dim);
        // pixel kinds: norm_pix_loss decides (the key MAE's own files carry)
        if (t == MIM_TARGET_PIXEL || t == MIM_TARGET_PIXEL_NORM) t = c->norm_pix ? MIM_TARGET_PIXEL_NORM : MIM_TARGET_PIXEL;
        c->target = t; c->loss = l;
    }
    if (!rc) {
        rc = mim_config_validate(c);
        if (rc) rc = mim_err(MIM_EFORMAT, "%s: stored config is invalid: %s", path, mim_err_msg());
    }
    mim_st_close(st);
    return rc;
}

static int is_decoder(const char* name) {
    return strncmp(name, "decoder", 7) == 0 || strcmp(name, "mask_token") == 0;
}

int mim_ckpt_load_model(const char* path, mim_mae* m, int allow_missing_decoder) {
    mim_st* st;
    int rc = mim_st_open(&st, path);
    if (rc) return rc;
    for (int i = 0; i < m->nparams && !rc; i++) {
        const mim_param* p = &m->table[i];
        rc = mim_st_read_f32(st, p->name, m->params + p->offset, p->ndim, p->shape);
        if (rc == MIM_ENOTFOUND && allow_missing_decoder && is_decoder(p->name)) rc = 0;
        else if (rc) {   // the reader's message lacks the file name
            char why[512];
            snprintf(why, sizeof why, "%s", mim_err_msg());
            rc = mim_err(rc, "%s: %s", path, why);
        }
    }
    mim_st_close(st);
    return rc;
}

// ---------------------------------------------------------------- run folders

static int fsync_dir(const char* dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return mim_err(MIM_EIO, "cannot open folder %s: %s", dir, strerror(errno));
    int r = fsync(fd);
    close(fd);
    return r ? mim_err(MIM_EIO, "fsync %s: %s", dir, strerror(errno)) : 0;
}

static int write_latest(const char* run_dir, const char* name) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/latest", run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE* f = fopen(tmp, "w");
    if (!f) return mim_err(MIM_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fprintf(f, "%s\n", name) > 0;
    ok &= fflush(f) == 0 && fsync(fileno(f)) == 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return mim_err(MIM_EIO, "cannot update %s: %s", path, strerror(e));
    }
    return fsync_dir(run_dir);
}

static int cmp_desc(const void* a, const void* b) { return strcmp(*(char* const*)b, *(char* const*)a); }

// Removes ckpt-* folders other than the newest `keep` (names sort by step).
static void prune(const char* run_dir, int keep) {
    DIR* d = opendir(run_dir);
    if (!d) return;
    char* names[4096];
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d)) && n < 4096)
        if (strncmp(e->d_name, "ckpt-", 5) == 0 && !strchr(e->d_name, '.')) names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, n, sizeof(char*), cmp_desc);
    for (int i = 0; i < n; i++) {
        if (i >= keep) {
            char p[4096];
            const char* files[] = {"model.safetensors", "optim.safetensors"};
            for (int k = 0; k < 2; k++) { snprintf(p, sizeof p, "%s/%s/%s", run_dir, names[i], files[k]); unlink(p); }
            snprintf(p, sizeof p, "%s/%s", run_dir, names[i]);
            rmdir(p);
        }
        free(names[i]);
    }
}

// Unlinks DIR/NAME.tmp.PID files whose writer is gone; recurses one level
// into ckpt-* folders.
static int clean_dir(const char* dir, int depth) {
    DIR* d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d))) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        const char* t = strstr(e->d_name, ".tmp.");
        if (t) {
            char* end;
            long pid = strtol(t + 5, &end, 10);
            if (*end == 0 && pid > 0 && pid != getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH)
                n += unlink(p) == 0;
        } else if (depth == 0 && !strncmp(e->d_name, "ckpt-", 5)) {
            n += clean_dir(p, 1);
        }
    }
    closedir(d);
    return n;
}

int mim_ckpt_clean_stale(const char* run_dir) { return clean_dir(run_dir, 0); }

int mim_ckpt_save_run(const char* run_dir, const mim_mae* m, const mim_adamw* opt,
                      const mim_train_state* st, int keep) {
    char name[64], dir[4096], path[4200];
    snprintf(name, sizeof name, "ckpt-%09lld", (long long)st->step);
    snprintf(dir, sizeof dir, "%s/%s", run_dir, name);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return mim_err(MIM_EIO, "cannot create %s: %s", dir, strerror(errno));

    char sstep[32], st_t[32], sep[32], sidx[32];
    snprintf(sstep, sizeof sstep, "%lld", (long long)st->step);
    snprintf(st_t, sizeof st_t, "%lld", (long long)opt->t);
    snprintf(sep, sizeof sep, "%lld", (long long)st->data_epoch);
    snprintf(sidx, sizeof sidx, "%lld", (long long)st->data_index);
    const char* meta[] = {"step", sstep, "adam_t", st_t, "data_epoch", sep, "data_index", sidx, "args", st->args_json};

    // optimizer moments, named after the parameters
    int n = 0;
    mim_st_entry* e = mim_calloc((size_t)m->nparams * 2, sizeof *e);
    char (*names)[80] = mim_calloc((size_t)m->nparams * 2, 80);
    if (!e || !names) { free(e); free(names); return MIM_ENOMEM; }
    for (int i = 0; i < m->nparams; i++) {
        const mim_param* p = &m->table[i];
        if (!p->trainable) continue;
        for (int k = 0; k < 2; k++) {
            snprintf(names[n], 80, "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            e[n].name = names[n]; e[n].dtype = MIM_F32; e[n].ndim = p->ndim;
            for (int d = 0; d < p->ndim; d++) e[n].shape[d] = p->shape[d];
            e[n].data = (k ? opt->v : opt->m) + p->offset;
            n++;
        }
    }
    snprintf(path, sizeof path, "%s/optim.safetensors", dir);
    int rc = mim_st_write(path, e, n, meta, 5);
    free(e); free(names);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    rc = mim_ckpt_save_model(path, m, meta, 1);   // the step, for humans
    if (rc) return rc;
    rc = fsync_dir(dir);
    if (!rc) rc = write_latest(run_dir, name);
    if (!rc && keep > 0) prune(run_dir, keep);
    return rc;
}

static int64_t meta_i64(const mim_st* st, const char* key, int* ok) {
    const char* v = mim_st_meta(st, key);
    if (!v) { *ok = 0; return 0; }
    char* end;
    long long x = strtoll(v, &end, 10);
    if (*end || x < 0) *ok = 0;
    return x;
}

int mim_ckpt_load_run(const char* run_dir, mim_mae* m, mim_adamw* opt, mim_train_state* st) {
    char path[4096], name[256] = {0};
    snprintf(path, sizeof path, "%s/latest", run_dir);
    FILE* f = fopen(path, "r");
    if (!f) return mim_err(MIM_ENOTFOUND, "%s has no checkpoint (no 'latest' file)", run_dir);
    int got = fscanf(f, "%255s", name);
    fclose(f);
    if (got != 1 || strncmp(name, "ckpt-", 5) != 0 || strchr(name, '/'))
        return mim_err(MIM_EFORMAT, "%s: malformed contents", path);
    snprintf(path, sizeof path, "%s/%s/model.safetensors", run_dir, name);
    int rc = mim_ckpt_load_model(path, m, 0);
    if (rc) return rc;
    snprintf(path, sizeof path, "%s/%s/optim.safetensors", run_dir, name);
    mim_st* s;
    rc = mim_st_open(&s, path);
    if (rc) return rc;
    int ok = 1;
    memset(st, 0, sizeof *st);
    st->step = meta_i64(s, "step", &ok);
    opt->t = meta_i64(s, "adam_t", &ok);
    st->data_epoch = meta_i64(s, "data_epoch", &ok);
    st->data_index = meta_i64(s, "data_index", &ok);
    const char* args = mim_st_meta(s, "args");
    snprintf(st->args_json, sizeof st->args_json, "%s", args ? args : "");
    if (!ok) rc = mim_err(MIM_EFORMAT, "%s: missing or bad step/adam_t/data position metadata", path);
    char tn[80];
    for (int i = 0; i < m->nparams && !rc; i++) {
        const mim_param* p = &m->table[i];
        if (!p->trainable) continue;
        snprintf(tn, sizeof tn, "exp_avg.%s", p->name);
        rc = mim_st_read_f32(s, tn, opt->m + p->offset, p->ndim, p->shape);
        if (!rc) {
            snprintf(tn, sizeof tn, "exp_avg_sq.%s", p->name);
            rc = mim_st_read_f32(s, tn, opt->v + p->offset, p->ndim, p->shape);
        }
        if (rc) {   // the reader's message lacks the file name
            char why[512];
            snprintf(why, sizeof why, "%s", mim_err_msg());
            rc = mim_err(rc, "%s: %s", path, why);
        }
    }
    mim_st_close(s);
    return rc;
}
