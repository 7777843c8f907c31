// checkpoint.c: model and run checkpoints (see checkpoint.h).
#include "train/checkpoint.h"
#include "core/safetensors.h"
#include "core/check.h"
#include "core/fault.h"
#include "train/dist.h"
#include <cjson/cJSON.h>
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
    snprintf(buf[12], 64, "%d", c->target == MIM_TARGET_PIXEL_NORM);   // MAE's key
    snprintf(buf[13], 64, "%s", c->name);
    snprintf(buf[14], 64, "%s", mim_target_name(c->target));
    snprintf(buf[15], 64, "%d", c->target_dim);
    snprintf(buf[16], 64, "%s", mim_loss_name(c->loss));
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
    int norm_pix = 0;
    struct { const char* k; int* v; } f[] = {
        {"img_h", &c->img_h}, {"img_w", &c->img_w}, {"in_chans", &c->in_chans}, {"patch", &c->patch},
        {"embed_dim", &c->dim}, {"depth", &c->depth}, {"num_heads", &c->heads},
        {"decoder_embed_dim", &c->dec_dim}, {"decoder_depth", &c->dec_depth},
        {"decoder_num_heads", &c->dec_heads}, {"mlp_ratio", &c->mlp_ratio}, {"norm_pix_loss", &norm_pix}};
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
        mim_target t = norm_pix ? MIM_TARGET_PIXEL_NORM : MIM_TARGET_PIXEL;
        mim_loss l = MIM_LOSS_MSE;
        if (tg && mim_target_parse(tg, &t)) rc = mim_err(MIM_EFORMAT, "%s: metadata 'target': %s", path, mim_err_msg());
        if (!rc && ls && mim_loss_parse(ls, &l)) rc = mim_err(MIM_EFORMAT, "%s: metadata 'loss': %s", path, mim_err_msg());
        if (!rc && mim_st_meta(st, "target_dim")) rc = meta_int(st, path, "target_dim", &c->target_dim);
        // pixel kinds: norm_pix_loss decides (the key MAE's own files carry)
        if (t == MIM_TARGET_PIXEL || t == MIM_TARGET_PIXEL_NORM) t = norm_pix ? MIM_TARGET_PIXEL_NORM : MIM_TARGET_PIXEL;
        else if (!rc && norm_pix)
            rc = mim_err(MIM_EFORMAT, "%s: stored config is invalid: norm_pix_loss applies to pixel targets only (target %s)",
                         path, mim_target_name(t));
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

int mim_ckpt_mkdirs(const char* path) {
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) return mim_err(MIM_EIO, "path too long: %.200s...", path);
    size_t n = strlen(p);
    if (!n) return mim_err(MIM_EIO, "cannot create a folder with an empty name");
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    for (char* s = p + 1; ; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        struct stat st;
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return mim_err(MIM_EIO, "cannot create folder %s: %s", p, strerror(errno));
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
            return mim_err(MIM_EIO, "cannot create folder %s: a file of that name is in the way", p);
        if (!c) break;
        *s = c;
    }
    return 0;
}

// DIR/state.json: the train state beside the weights that may differ
// between an interrupted and an uninterrupted run (wall time). Temp file +
// rename; not counted by the fault hook (it counts the weight files).
static int write_state(const char* dir, const mim_train_state* st) {
    char path[4200], tmp[4300];
    snprintf(path, sizeof path, "%s/state.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE* f = fopen(tmp, "w");
    if (!f) return mim_err(MIM_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = fprintf(f, "{\"elapsed_s\": %.3f}\n", st->elapsed_s) > 0 && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
    if (ok && rename(tmp, path) != 0) { ok = 0; e = errno; }
    if (!ok) {
        unlink(tmp);
        return mim_err(MIM_EIO, "cannot write %s: %s", path, strerror(e));
    }
    return 0;
}

// Reads DIR/state.json into st; an absent or unreadable file leaves the
// defaults (checkpoints from before it existed).
static void read_state(const char* dir, mim_train_state* st) {
    char path[4200], buf[256];
    snprintf(path, sizeof path, "%s/state.json", dir);
    FILE* f = fopen(path, "r");
    if (!f) return;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    cJSON* j = cJSON_Parse(buf);
    cJSON* e = j ? cJSON_GetObjectItem(j, "elapsed_s") : NULL;
    if (e && cJSON_IsNumber(e) && e->valuedouble >= 0) st->elapsed_s = e->valuedouble;
    cJSON_Delete(j);
}

static int write_latest(const char* run_dir, const char* name) {
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/latest", run_dir);
    snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid());
    FILE* f = fopen(tmp, "w");
    if (!f) return mim_err(MIM_EIO, "cannot write %s: %s", tmp, strerror(errno));
    int ok = !mim_fault_write() && fprintf(f, "%s\n", name) > 0;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (fclose(f) != 0 && ok) { ok = 0; e = errno; }
    if (ok && rename(tmp, path) != 0) { ok = 0; e = errno; }
    if (!ok) {
        unlink(tmp);
        return mim_err(MIM_EIO, "cannot update %s: %s", path, strerror(e));
    }
    return fsync_dir(run_dir);
}

// 1 when RUN/latest names `name`.
static int latest_names(const char* run_dir, const char* name) {
    char path[4096], got[256] = "";
    snprintf(path, sizeof path, "%s/latest", run_dir);
    FILE* f = fopen(path, "r");
    if (!f) return 0;
    int ok = fscanf(f, "%255s", got) == 1 && !strcmp(got, name);
    fclose(f);
    return ok;
}

static int cmp_desc(const void* a, const void* b) { return strcmp(*(char* const*)b, *(char* const*)a); }

static void remove_ckpt_dir(const char* run_dir, const char* name) {
    char p[4096];
    static const char* files[] = {"model.safetensors", "optim.safetensors", "state.json"};
    for (int k = 0; k < 3; k++) { snprintf(p, sizeof p, "%s/%s/%s", run_dir, name, files[k]); unlink(p); }
    snprintf(p, sizeof p, "%s/%s", run_dir, name);
    rmdir(p);
}

// Keeps `current` (the checkpoint `latest` now names) and the keep - 1
// newest before it; removes older ones and any newer than it: those are
// left from a timeline the run has since resumed before (an interrupted or
// failed write), and would otherwise count as the newest and push out
// `current` itself. Names sort by step.
static void prune(const char* run_dir, int keep, const char* current) {
    DIR* d = opendir(run_dir);
    if (!d) return;
    char* names[4096];
    int n = 0;
    struct dirent* e;
    while ((e = readdir(d)) && n < 4096)
        if (strncmp(e->d_name, "ckpt-", 5) == 0 && !strchr(e->d_name, '.') && (names[n] = strdup(e->d_name))) n++;
    closedir(d);
    qsort(names, n, sizeof(char*), cmp_desc);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int c = strcmp(names[i], current);
        if (c > 0 || (c < 0 && kept >= keep)) remove_ckpt_dir(run_dir, names[i]);
        else kept++;
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

// Entries for the tensors of table t (trainable ones only, if asked) with
// data in buf, appended to e at n: named as in the table, or `prefix`.name
// (names[] holds those). Returns the new count.
static int table_entries(mim_st_entry* e, char (*names)[80], int n, const mim_param* t, int nt, const float* buf,
                         const char* prefix, int trainable_only) {
    for (int i = 0; i < nt; i++) {
        const mim_param* p = &t[i];
        if (trainable_only && !p->trainable) continue;
        if (prefix) { snprintf(names[n], 80, "%s.%s", prefix, p->name); e[n].name = names[n]; }
        else e[n].name = p->name;
        e[n].dtype = MIM_F32; e[n].ndim = p->ndim;
        for (int d = 0; d < p->ndim; d++) e[n].shape[d] = p->shape[d];
        e[n].data = buf + p->offset;
        n++;
    }
    return n;
}

// exp_avg.<name>, exp_avg_sq.<name> per trainable tensor of t, in table order.
static int moment_entries(mim_st_entry* e, char (*names)[80], int n, const mim_param* t, int nt, const mim_adamw* opt) {
    for (int i = 0; i < nt; i++) {
        n = table_entries(e, names, n, &t[i], 1, opt->m, "exp_avg", 1);
        n = table_entries(e, names, n, &t[i], 1, opt->v, "exp_avg_sq", 1);
    }
    return n;
}

int mim_ckpt_save_run(const char* run_dir, const mim_mae* m, const mim_adamw* opt,
                      const mim_train_state* st, int keep) {
    return mim_ckpt_save_run_ex(run_dir, m, opt, NULL, st, keep);
}

int mim_ckpt_save_run_ex(const char* run_dir, const mim_mae* m, const mim_adamw* opt, const mim_ckpt_extra* x,
                         const mim_train_state* st, int keep) {
    char name[64], dir[4096], path[4200];
    snprintf(name, sizeof name, "ckpt-%09lld", (long long)st->step);
    snprintf(dir, sizeof dir, "%s/%s", run_dir, name);
    int fresh = mkdir(dir, 0755) == 0;   // a new folder: removed again if this save fails
    if (!fresh && errno != EEXIST)
        return mim_err(MIM_EIO, "cannot create %s: %s", dir, strerror(errno));

    char sstep[32], st_t[32], sep[32], sidx[32];
    snprintf(sstep, sizeof sstep, "%lld", (long long)st->step);
    snprintf(st_t, sizeof st_t, "%lld", (long long)opt->t);
    snprintf(sep, sizeof sep, "%lld", (long long)st->data_epoch);
    snprintf(sidx, sizeof sidx, "%lld", (long long)st->data_index);
    const char* meta[] = {"step", sstep, "adam_t", st_t, "data_epoch", sep, "data_index", sidx, "args", st->args_json,
                          "engine", st->engine_json};
    int nmeta = st->engine_json[0] ? 6 : 5;

    // optimizer moments, named after the parameters
    int nx = x ? x->n : 0, cap = 2 * (m->nparams + nx) + 1;
    mim_st_entry* e = mim_calloc((size_t)cap, sizeof *e);
    char (*names)[80] = mim_calloc((size_t)cap, 80);
    if (!e || !names) { free(e); free(names); return MIM_ENOMEM; }
    int n = 0;
    n = moment_entries(e, names, n, m->table, m->nparams, opt);
    if (x) n = moment_entries(e, names, n, x->table, x->n, x->opt);
    snprintf(path, sizeof path, "%s/optim.safetensors", dir);
    int rc = mim_st_write(path, e, n, meta, nmeta);
    if (!rc && !x) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = mim_ckpt_save_model(path, m, meta, 1);   // the step, for humans
    } else if (!rc) {   // the model's tensors and the extra table's, with the config
        const char* kv[2 * (NMETA + 1)];
        char buf[NMETA][64];
        int nm = config_meta(&m->cfg, kv, buf);
        kv[2 * nm] = meta[0]; kv[2 * nm + 1] = meta[1];
        n = table_entries(e, names, 0, m->table, m->nparams, m->params, NULL, 0);
        n = table_entries(e, names, n, x->table, x->n, x->params, NULL, 0);
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = mim_st_write(path, e, n, kv, nm + 1);
    }
    free(e); free(names);
    if (!rc) rc = write_state(dir, st);
    if (!rc) rc = fsync_dir(dir);
    if (!rc) rc = write_latest(run_dir, name);
    if (rc) {
        // A half-written new folder would only confuse pruning and people;
        // unless `latest` got to name it (only its folder's fsync failed).
        if (fresh && !latest_names(run_dir, name)) remove_ckpt_dir(run_dir, name);
        return rc;
    }
    if (keep > 0) prune(run_dir, keep, name);
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

// Reads the tensors `prefix`.name (or name) of table t's trainable (or all)
// entries from s into buf.
static int read_table(mim_st* s, const char* path, const mim_param* t, int nt, float* buf, const char* prefix,
                      int trainable_only) {
    char tn[80];
    for (int i = 0; i < nt; i++) {
        const mim_param* p = &t[i];
        if (trainable_only && !p->trainable) continue;
        if (prefix) snprintf(tn, sizeof tn, "%s.%s", prefix, p->name);
        else snprintf(tn, sizeof tn, "%s", p->name);
        int rc = mim_st_read_f32(s, tn, buf + p->offset, p->ndim, p->shape);
        if (rc) {   // the reader's message lacks the file name
            char why[512];
            snprintf(why, sizeof why, "%s", mim_err_msg());
            return mim_err(rc, "%s: %s", path, why);
        }
    }
    return 0;
}

int mim_ckpt_load_run(const char* run_dir, mim_mae* m, mim_adamw* opt, mim_train_state* st) {
    return mim_ckpt_load_run_ex(run_dir, m, opt, NULL, st);
}

int mim_ckpt_load_run_ex(const char* run_dir, mim_mae* m, mim_adamw* opt, const mim_ckpt_extra* x, mim_train_state* st) {
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
    mim_st* s;
    if (x) {
        if ((rc = mim_st_open(&s, path))) return rc;
        rc = read_table(s, path, x->table, x->n, x->params, NULL, 0);
        mim_st_close(s);
        if (rc) return rc;
    }
    snprintf(path, sizeof path, "%s/%s/optim.safetensors", run_dir, name);
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
    const char* eng = mim_st_meta(s, "engine");
    snprintf(st->engine_json, sizeof st->engine_json, "%s", eng ? eng : "");
    if (!ok) rc = mim_err(MIM_EFORMAT, "%s: missing or bad step/adam_t/data position metadata", path);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", run_dir, name);
    read_state(dir, st);
    if (!rc) rc = read_table(s, path, m->table, m->nparams, opt->m, "exp_avg", 1);
    if (!rc) rc = read_table(s, path, m->table, m->nparams, opt->v, "exp_avg_sq", 1);
    if (!rc && x) {
        x->opt->t = opt->t;
        rc = read_table(s, path, x->table, x->n, x->opt->m, "exp_avg", 1);
        if (!rc) rc = read_table(s, path, x->table, x->n, x->opt->v, "exp_avg_sq", 1);
    }
    mim_st_close(s);
    return rc;
}

void mim_ckpt_metrics_truncate(const char* path, int64_t step) {
    if (mim_dist_get()->rank != 0) return;   // one writer: rank 0 owns the log
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

// ---------------------------------------------------------------- fine-tuning

// Loads the encoder tensors of CKPT into m (decoder tensors in the file are
// ignored); pos_embed is interpolated when the grids differ.
int mim_ckpt_load_encoder(mim_mae* m, const char* path, int ck_gh, int ck_gw) {
    mim_st* st;
    int rc = mim_st_open(&st, path);
    if (rc) return rc;
    const mim_config* c = &m->cfg;
    int gh = c->img_h / c->patch, gw = c->img_w / c->patch, D = c->dim;
    for (int i = 0; i < m->nparams && !rc; i++) {
        const mim_param* p = &m->table[i];
        float* dst = m->params + p->offset;
        if (!strcmp(p->name, "pos_embed") && (ck_gh != gh || ck_gw != gw)) {
            float* tmp = mim_malloc(sizeof(float) * (size_t)(1 + ck_gh * ck_gw) * D);
            if (!tmp) { rc = MIM_ENOMEM; break; }
            rc = mim_st_read_f32(st, p->name, tmp, 3, (int64_t[]){1, 1 + ck_gh * ck_gw, D});
            if (!rc) {
                memcpy(dst, tmp, sizeof(float) * D);   // cls row
                mim_pos_embed_resize(dst + D, tmp + D, D, ck_gh, ck_gw, gh, gw);
            }
            free(tmp);
        } else {
            rc = mim_st_read_f32(st, p->name, dst, p->ndim, p->shape);
        }
        if (rc) {
            char why[512];
            snprintf(why, sizeof why, "%s", mim_err_msg());
            rc = mim_err(rc, "%s: %s", path, why);
        }
    }
    mim_st_close(st);
    return rc;
}

int mim_ckpt_save_classifier(const char* path, const mim_mae* m, const mim_cls_head* h, int global_pool) {
    mim_st_entry e[MIM_MAX_PARAMS + MIM_HEAD_N];
    int n = 0;
    for (int i = 0; i < m->nparams; i++) {
        const mim_param* p = &m->table[i];
        if (global_pool && !strncmp(p->name, "norm.", 5)) continue;   // MAE drops it with global_pool
        e[n] = (mim_st_entry){.name = p->name, .dtype = MIM_F32, .ndim = p->ndim, .data = m->params + p->offset};
        for (int d = 0; d < p->ndim; d++) e[n].shape[d] = p->shape[d];
        n++;
    }
    for (int i = 0; i < MIM_HEAD_N; i++) {
        const mim_param* p = &h->table[i];
        if (!global_pool && i <= MIM_HEAD_NORM_B) continue;
        e[n] = (mim_st_entry){.name = p->name, .dtype = MIM_F32, .ndim = p->ndim, .data = h->params + p->offset};
        for (int d = 0; d < p->ndim; d++) e[n].shape[d] = p->shape[d];
        n++;
    }
    char kb[16], gp[4];
    snprintf(kb, sizeof kb, "%d", h->K);
    snprintf(gp, sizeof gp, "%d", global_pool);
    const mim_config* c = &m->cfg;
    char v[8][32];
    snprintf(v[0], 32, "%d", c->img_h); snprintf(v[1], 32, "%d", c->img_w); snprintf(v[2], 32, "%d", c->in_chans);
    snprintf(v[3], 32, "%d", c->patch); snprintf(v[4], 32, "%d", c->dim); snprintf(v[5], 32, "%d", c->depth);
    snprintf(v[6], 32, "%d", c->heads); snprintf(v[7], 32, "%d", c->mlp_ratio);
    const char* meta[] = {"img_h", v[0], "img_w", v[1], "in_chans", v[2], "patch", v[3], "embed_dim", v[4],
                          "depth", v[5], "num_heads", v[6], "mlp_ratio", v[7], "decoder_embed_dim", "0",
                          "decoder_depth", "0", "decoder_num_heads", "1", "mask_ratio", "0", "norm_pix_loss", "0",
                          "model", c->name, "num_classes", kb, "global_pool", gp};
    return mim_st_write(path, e, n, meta, 16);
}
