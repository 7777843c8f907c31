// plan.c: the study's plan: the grid expansion with deterministic run ids,
// each run's config, steps and FLOP estimate, and the command lines of its
// pre-training and evaluations (what every launcher runs).
#include "study/study.h"
#include "data/subset.h"
#include "core/check.h"
#include "model/hog.h"
#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ------------------------------------------------------------------ grid
static uint64_t fnv(uint64_t h, const char* s) {
    for (; *s; s++) { h ^= (unsigned char)*s; h *= 1099511628211ull; }
    return h;
}

// Fine-tuning FLOPs: training (3x forward, every token) over its images,
// plus one pass over the eval set per epoch (it evaluates each epoch).
static double finetune_flops(const mim_study* s, int e, int64_t size, double enc) {
    double batch = s->eval_batch[e] > 0 ? s->eval_batch[e] : 128;
    double bpe = floor((double)size / batch);
    if (bpe < 1) bpe = 1;
    double steps = s->eval_steps[e] > 0 ? s->eval_steps[e] : bpe * (s->eval_epochs[e] > 0 ? s->eval_epochs[e] : 10);
    double evals = ceil(steps / bpe);
    return 3 * enc * steps * batch + enc * (double)s->est_eval_size * evals;
}

// The teacher's forward on the student's full grid, per image, for the time
// estimate (target teacher runs it on every image seen); 0 without a shape.
static double teacher_flops(const mim_study_teacher_shape* ts, const mim_config* student) {
    if (!ts || !ts->ok) return 0;
    mim_config t = *student;
    int gh = student->img_h / student->patch, gw = student->img_w / student->patch;
    t.dim = ts->D; t.depth = ts->depth; t.mlp_ratio = (float)ts->hidden / (float)ts->D;
    t.patch = ts->p; t.in_chans = ts->C; t.img_h = gh * ts->p; t.img_w = gw * ts->p;
    return mim_config_encoder_flops(&t);
}

// kNN and linear probe on ntr train features of width D, past the one
// extraction they share (the feature cache): the kNN similarities (2 D per
// train x eval pair) and the probe's epochs (forward and backward over the
// train set, forward over the eval set, 10 classes assumed).
static double probe_flops(const mim_study* s, double D, double ntr) {
    double f = 0, ne = (double)s->est_eval_size, C = 10;
    if (s->evals[MIM_EVAL_KNN]) f += 2 * D * ntr * ne;
    if (s->evals[MIM_EVAL_LINPROBE]) {
        double ep = s->eval_epochs[MIM_EVAL_LINPROBE] > 0 ? s->eval_epochs[MIM_EVAL_LINPROBE] : 20;   // linprobe's default
        f += ep * (6 * D * C * ntr + 2 * D * C * ne);
    }
    return f;
}

const char* mim_study_run_strategy(const mim_study* s, const mim_study_run* r) {
    return r->kind == MIM_RUN_BASELINE && s->probe_size > 0 ? "stratified" : s->subsets[r->subset].strategy;
}

static void run_config(const mim_study* s, mim_study_run* r, const mim_study_teacher_shape* ts) {
    const mim_study_model* m = &s->models[r->model];
    if (r->kind == MIM_RUN_BASELINE) {   // no training: one feature extraction, then knn / linprobe
        double ntr = (double)r->size, D;
        if (r->baseline == MIM_BASELINE_PIXELS) {
            memset(&r->cfg, 0, sizeof r->cfg);
            snprintf(r->cfg.name, sizeof r->cfg.name, "pixels");
            r->cfg.img_h = r->cfg.img_w = s->img; r->cfg.in_chans = s->in_chans;
            D = (double)s->img * s->img * s->in_chans;
            r->est_flops = 0;
        } else {
            mim_config_preset(&r->cfg, m->preset);
            r->cfg.patch = m->patch; r->cfg.dec_dim = 0; r->cfg.dec_depth = 0; r->cfg.dec_heads = 1;
            r->cfg.img_h = r->cfg.img_w = s->img; r->cfg.in_chans = s->in_chans; r->cfg.mask_ratio = 0;
            D = r->cfg.dim;
            r->est_flops = mim_config_encoder_flops(&r->cfg) * (ntr + (double)s->est_eval_size);
        }
        r->est_flops += probe_flops(s, D, ntr);
        r->flops = 0;   // no pre-training
        return;
    }
    mim_config_preset(&r->cfg, m->preset);
    r->cfg.patch = m->patch; r->cfg.dec_dim = m->dec_dim; r->cfg.dec_depth = m->dec_depth; r->cfg.dec_heads = m->dec_heads;
    r->cfg.img_h = r->cfg.img_w = s->img; r->cfg.in_chans = s->in_chans;
    r->cfg.target = r->target;
    // decoder_pred's width for the FLOP estimate; a teacher's is unknown
    // here, so it counts at pixel width (a small share of a step either way)
    mim_hog_params hp = {.cell = s->hog_cell ? s->hog_cell : 8, .nbins = 9, .window = m->patch};
    if (r->target == MIM_TARGET_HOG && m->patch % hp.cell == 0) r->cfg.target_dim = mim_hog_dim(&hp, s->in_chans, m->patch);
    int64_t bpe = r->size / s->batch;
    if (bpe < 1) bpe = 1;
    if (s->budget_kind == MIM_BUDGET_EPOCHS) r->steps = (int64_t)ceil(s->budget * (double)bpe - 1e-9);
    else r->steps = (int64_t)ceil(s->budget / s->batch - 1e-9);
    if (r->steps < 1) r->steps = 1;
    r->images_seen = r->steps * s->batch;
    r->epochs = (double)r->steps / (double)bpe;
    r->warmup_epochs = s->warmup_frac * r->epochs;
    r->flops_per_image = mim_config_train_flops(&r->cfg);
    double enc = mim_config_encoder_flops(&r->cfg);
    if (r->kind == MIM_RUN_MIM) {
        r->flops = r->flops_per_image * (double)r->images_seen;
        r->est_flops = r->flops;
        if (r->target == MIM_TARGET_TEACHER) r->est_flops += teacher_flops(ts, &r->cfg) * (double)r->images_seen;
        if (s->evals[MIM_EVAL_FINETUNE]) r->est_flops += finetune_flops(s, MIM_EVAL_FINETUNE, r->size, enc);
        if (s->evals[MIM_EVAL_KNN] || s->evals[MIM_EVAL_LINPROBE]) {   // one extraction for both (the feature cache)
            double ntr = (double)(s->probe_size > 0 ? s->probe_size : r->size);
            r->est_flops += enc * (ntr + (double)s->est_eval_size) + probe_flops(s, r->cfg.dim, ntr);
        }
    } else {
        r->est_flops = finetune_flops(s, MIM_EVAL_SCRATCH, r->size, enc);
        r->flops = r->est_flops;
    }
}

// A baseline's id: "pixels-baseline-<strategy><size>-s<seed>-<hash>" or
// "<model>-random-init-<strategy><size>-s<seed>-<hash>", the hash over what
// its features depend on (no pre-training settings: a new budget keeps them).
// Like the MIM rows' ids, it leaves out the knn / linprobe flags.
static void baseline_id(const mim_study* s, mim_study_run* r) {
    const mim_study_model* m = &s->models[r->model];
    int px = r->baseline == MIM_BASELINE_PIXELS;
    const char* st = mim_study_run_strategy(s, r);
    char key[1024];
    snprintf(key, sizeof key, "v1|baseline|%s|%s|%d|%d|%d|%s|%" PRId64 "|%" PRIu64 "|%" PRIu64 "|%s|%s|%s|%lld|%lld",
             mim_baseline_name(r->baseline), px ? "-" : m->preset, px ? 0 : m->patch, s->img, s->in_chans, st, r->size,
             s->subset_seed, r->seed, s->idx_dir ? s->idx_dir : "", s->shards ? s->shards : "", s->index ? s->index : "",
             (long long)s->eval_size, (long long)s->probe_size);
    uint64_t h = fnv(1469598103934665603ull, key);
    snprintf(r->id, sizeof r->id, "%s-%s-%s%" PRId64 "-s%" PRIu64 "-%08x", px ? "pixels" : m->label, px ? "baseline" : "random-init",
             st, r->size, r->seed, (unsigned)(h ^ (h >> 32)));
}

// The id: "<model>-<target|scratch>-<strategy><size>-s<seed>-<hash of everything that changes the result>".
static void run_id(const mim_study* s, mim_study_run* r) {
    if (r->kind == MIM_RUN_BASELINE) { baseline_id(s, r); return; }
    const mim_study_model* m = &s->models[r->model];
    const mim_study_subset* sub = &s->subsets[r->subset];
    char key[4096];
    int n = snprintf(key, sizeof key, "v1|%s|%s|%d|%d|%d|%d|%d|%d|%s|%s|%" PRId64 "|%" PRIu64 "|%" PRIu64 "|%d|%.9g|%.9g|%d|%s|%.9g",
                     r->kind == MIM_RUN_MIM ? "mim" : "scratch", m->preset, m->patch, m->dec_dim, m->dec_depth, m->dec_heads,
                     s->img, s->in_chans, r->kind == MIM_RUN_MIM ? mim_target_name(r->target) : "-", sub->strategy, sub->size,
                     s->subset_seed, r->seed, s->batch, s->blr, s->warmup_frac, (int)s->budget_kind, "", s->budget);
    const mim_argv_list* extra[2] = {&s->pretrain_extra, NULL};
    if (r->kind == MIM_RUN_SCRATCH) extra[0] = &s->eval_extra[MIM_EVAL_SCRATCH];
    for (int i = 0; i < extra[0]->argc && n < (int)sizeof key - 2; i++) n += snprintf(key + n, sizeof key - (size_t)n, "|%s", extra[0]->argv[i]);
    if (r->kind == MIM_RUN_MIM && r->target == MIM_TARGET_TEACHER && n < (int)sizeof key - 2)   // which teacher, which layer
        n += snprintf(key + n, sizeof key - (size_t)n, "|teacher=%s|%d|%d", s->teacher, s->teacher_layer, s->teacher_norm);
    if (r->kind == MIM_RUN_MIM && r->target == MIM_TARGET_HOG && s->hog_cell && n < (int)sizeof key - 2)
        n += snprintf(key + n, sizeof key - (size_t)n, "|hog_cell=%d", s->hog_cell);
    // The data identity: where the images come from.
    uint64_t h = fnv(1469598103934665603ull, key);
    h = fnv(h, s->idx_dir ? s->idx_dir : "");
    h = fnv(h, s->shards ? s->shards : "");
    h = fnv(h, s->index ? s->index : "");
    char ev[64];
    snprintf(ev, sizeof ev, "|%lld|%lld", (long long)s->eval_size, (long long)s->probe_size);
    h = fnv(h, ev);
    snprintf(r->id, sizeof r->id, "%s-%s-%s%" PRId64 "-s%" PRIu64 "-%08x", m->label,
             r->kind == MIM_RUN_MIM ? mim_target_name(r->target) : "scratch", sub->strategy, sub->size, r->seed,
             (unsigned)(h ^ (h >> 32)));
}

int mim_study_expand(const mim_study* s, mim_study_run** runs) { return mim_study_expand_est(s, NULL, runs); }

int mim_study_expand_est(const mim_study* s, const mim_study_teacher_shape* ts, mim_study_run** runs) {
    size_t nmim = 0, nscr = 0;
    for (int su = 0; su < s->nsubsets; su++) {
        const mim_study_subset* sub = &s->subsets[su];
        size_t ns = (size_t)(sub->nseeds ? sub->nseeds : s->nseeds), nt = 0;
        for (int t = 0; t < s->ntargets; t++) nt += mim_study_subset_has_target(sub, s->targets[t]);
        nmim += ns * (size_t)s->nmodels * nt;
        if (s->evals[MIM_EVAL_SCRATCH]) nscr += ns * (size_t)s->nmodels;
    }
    // baselines: per seed (and per subset without a probe set) pixels + one random-init per model
    int bl_subsets = s->probe_size > 0 ? 1 : s->nsubsets;
    size_t nbl = s->baselines && (s->evals[MIM_EVAL_KNN] || s->evals[MIM_EVAL_LINPROBE])
                     ? (size_t)s->nseeds * (size_t)bl_subsets * (1 + (size_t)s->nmodels) : 0;
    if (nmim + nscr + nbl > 100000) return mim_err(MIM_EARG, "%s: the grid has %zu runs; that is not a study, that is a typo", s->path, nmim + nscr + nbl);
    mim_study_run* r = calloc(nmim + nscr + nbl + 1, sizeof *r);
    if (!r) return mim_err(MIM_ENOMEM, "out of memory");
    int n = 0, max_seeds = s->nseeds;
    for (int su = 0; su < s->nsubsets; su++) if (s->subsets[su].nseeds > max_seeds) max_seeds = s->subsets[su].nseeds;
    for (int kind = 0; kind < 2; kind++) {
        if (kind == MIM_RUN_SCRATCH && !nscr) break;
        for (int si = 0; si < max_seeds; si++)
            for (int su = 0; su < s->nsubsets; su++)
                for (int mo = 0; mo < s->nmodels; mo++)
                    for (int t = 0; t < (kind == MIM_RUN_MIM ? s->ntargets : 1); t++) {
                        const mim_study_subset* sub = &s->subsets[su];
                        if (si >= (sub->nseeds ? sub->nseeds : s->nseeds)) continue;
                        if (kind == MIM_RUN_MIM && !mim_study_subset_has_target(sub, s->targets[t])) continue;
                        mim_study_run* x = &r[n++];
                        x->kind = (mim_run_kind)kind;
                        x->model = mo; x->subset = su; x->seed = sub->nseeds ? sub->seeds[si] : s->seeds[si];
                        x->target = kind == MIM_RUN_MIM ? s->targets[t] : MIM_TARGET_PIXEL;
                        x->size = s->subsets[su].size;
                        run_config(s, x, ts);
                        run_id(s, x);
                    }
    }
    if (nbl)
        for (int si = 0; si < s->nseeds; si++)
            for (int su = 0; su < bl_subsets; su++)
                for (int mo = -1; mo < s->nmodels; mo++) {   // -1: pixels
                    mim_study_run* x = &r[n++];
                    x->kind = MIM_RUN_BASELINE;
                    x->baseline = mo < 0 ? MIM_BASELINE_PIXELS : MIM_BASELINE_RANDOM;
                    x->model = mo < 0 ? 0 : mo; x->subset = su; x->seed = s->seeds[si];
                    x->target = MIM_TARGET_PIXEL;
                    x->size = s->probe_size > 0 ? s->probe_size : s->subsets[su].size;
                    run_config(s, x, ts);
                    run_id(s, x);
                }
    *runs = r;
    return n;
}

// ------------------------------------------------------------ command lines
void mim_study_data_paths(const mim_study* s, const char* out, mim_study_paths* p) {
    if (s->index) snprintf(p->index, sizeof p->index, "%s", s->index);
    else snprintf(p->index, sizeof p->index, "%s/data/train.idx", out);
    if (s->eval_index) snprintf(p->eval_index, sizeof p->eval_index, "%s", s->eval_index);
    else snprintf(p->eval_index, sizeof p->eval_index, "%s/data/eval.idx", out);
    snprintf(p->subset_dir, sizeof p->subset_dir, "%s/data/subsets", out);
}

void mim_study_subset_path(const mim_study* s, const mim_study_paths* p, const mim_study_run* r, char* buf, size_t cap) {
    char prefix[1100];
    snprintf(prefix, sizeof prefix, "%s/train", p->subset_dir);
    mim_subset_path(buf, cap, prefix, s->subsets[r->subset].strategy, NULL, s->subset_seed, (uint64_t)r->size);
}

void mim_study_probe_path(const mim_study* s, const mim_study_paths* p, char* buf, size_t cap) {
    char prefix[1100];
    snprintf(prefix, sizeof prefix, "%s/probe", p->subset_dir);
    mim_subset_path(buf, cap, prefix, "stratified", NULL, s->subset_seed, (uint64_t)s->probe_size);
}

typedef struct { char** v; int n, cap, oom; } argb;
static void add(argb* a, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(argb* a, const char* fmt, ...) {
    if (a->oom) return;
    if (a->n + 2 > a->cap) {
        int nc = a->cap ? a->cap * 2 : 32;
        char** nv = realloc(a->v, sizeof(char*) * (size_t)nc);
        if (!nv) { a->oom = 1; return; }
        a->v = nv; a->cap = nc;
    }
    va_list ap;
    va_start(ap, fmt);
    char* str = NULL;
    if (vasprintf(&str, fmt, ap) < 0) { a->oom = 1; str = NULL; }
    va_end(ap);
    if (!str) { a->oom = 1; return; }
    a->v[a->n++] = str;
    a->v[a->n] = NULL;
}
static char** finish(argb* a) {
    if (a->oom) { mim_argv_free(a->v); mim_err(MIM_ENOMEM, "out of memory"); return NULL; }
    return a->v;
}
void mim_argv_free(char** argv) {
    if (!argv) return;
    for (char** p = argv; *p; p++) free(*p);
    free(argv);
}

char** mim_study_pretrain_argv(const mim_study* s, const mim_study_run* r, const mim_study_paths* p,
                               const char* bin, const char* run_dir, const char* subset_file) {
    argb a = {0};
    const mim_study_model* m = &s->models[r->model];
    add(&a, "%s", bin); add(&a, "pretrain");
    add(&a, "--data=%s", p->index); add(&a, "--subset=%s", subset_file);
    add(&a, "--img=%d", s->img); add(&a, "--in-chans=%d", s->in_chans);
    add(&a, "--model=%s", m->preset); add(&a, "--patch=%d", m->patch);
    add(&a, "--dec-dim=%d", m->dec_dim); add(&a, "--dec-depth=%d", m->dec_depth); add(&a, "--dec-heads=%d", m->dec_heads);
    if (r->target == MIM_TARGET_PIXEL || r->target == MIM_TARGET_PIXEL_NORM) {
        add(&a, "--norm-pix=%d", r->target == MIM_TARGET_PIXEL_NORM);
    } else {
        add(&a, "--target=%s", mim_target_name(r->target));
        if (r->target == MIM_TARGET_HOG && s->hog_cell) add(&a, "--hog-cell=%d", s->hog_cell);
        if (r->target == MIM_TARGET_TEACHER) {
            add(&a, "--teacher=%s", s->teacher); add(&a, "--teacher-layer=%d", s->teacher_layer);
            add(&a, "--teacher-norm=%d", s->teacher_norm);
        }
    }
    add(&a, "--batch=%d", s->batch); add(&a, "--steps=%" PRId64, r->steps);
    add(&a, "--blr=%.9g", s->blr); add(&a, "--warmup-epochs=%.9g", r->warmup_epochs);
    add(&a, "--seed=%" PRIu64, r->seed); add(&a, "--threads=%d", s->threads);
    add(&a, "--save-every=%d", s->save_every); add(&a, "--log-every=%d", r->steps < 200 ? 1 : (int)(r->steps / 200));
    add(&a, "--out=%s/pretrain", run_dir);
    // held-out reconstruction loss at the end (fixed masks): the cheap proxy
    // for downstream quality that Xie et al. (CVPR 2023) found
    add(&a, "--val-data=%s", p->eval_index); add(&a, "--val-samples=1024");
    add(&a, "--resume"); add(&a, "--quiet");
    for (int i = 0; i < s->pretrain_extra.argc; i++) add(&a, "%s", s->pretrain_extra.argv[i]);
    return finish(&a);
}

char** mim_study_eval_argv(const mim_study* s, const mim_study_run* r, mim_eval_kind e, const mim_study_paths* p,
                           const char* bin, const char* run_dir, const char* subset_file, const char* ckpt) {
    argb a = {0};
    const mim_study_model* m = &s->models[r->model];
    add(&a, "%s", bin);
    add(&a, "%s", e == MIM_EVAL_KNN ? "knn" : e == MIM_EVAL_LINPROBE ? "linprobe" : "finetune");
    if (e == MIM_EVAL_SCRATCH) {
        add(&a, "--init=random"); add(&a, "--model=%s", m->preset); add(&a, "--patch=%d", m->patch);
    } else if (r->kind == MIM_RUN_BASELINE) {   // the features flag instead of --ckpt; the rest as the MIM rows'
        if (r->baseline == MIM_BASELINE_PIXELS) add(&a, "--features=pixels");
        else { add(&a, "--init=random"); add(&a, "--model=%s", m->preset); add(&a, "--patch=%d", m->patch); }
        add(&a, "--img=%d", s->img); add(&a, "--in-chans=%d", s->in_chans);   // the geometry the encoders see
        if (r->baseline == MIM_BASELINE_RANDOM && e == MIM_EVAL_KNN) add(&a, "--seed=%" PRIu64, r->seed);   // the encoder's init
    } else add(&a, "--ckpt=%s", ckpt);
    char probe[2048];
    if (s->probe_size > 0 && (e == MIM_EVAL_KNN || e == MIM_EVAL_LINPROBE)) mim_study_probe_path(s, p, probe, sizeof probe);
    else snprintf(probe, sizeof probe, "%s", subset_file);
    add(&a, "--data=%s", p->index); add(&a, "--subset=%s", probe);
    add(&a, "--eval-data=%s", p->eval_index);
    add(&a, "--threads=%d", s->eval_threads);
    if (e == MIM_EVAL_FINETUNE || e == MIM_EVAL_SCRATCH) {
        add(&a, "--img=%d", s->img); add(&a, "--in-chans=%d", s->in_chans);
        add(&a, "--seed=%" PRIu64, r->seed);
        add(&a, "--out=%s/%s", run_dir, mim_eval_name(e));
        add(&a, "--resume");   // an interrupted fine-tuning continues from its checkpoint
        add(&a, "--result=%s/%s.json", run_dir, mim_eval_name(e));   // the result record (core/jsonfile.h)
    } else add(&a, "--out=%s/%s.json", run_dir, mim_eval_name(e));      // knn / linprobe: the same record
    if (e == MIM_EVAL_LINPROBE) add(&a, "--seed=%" PRIu64, r->seed);
    // knn and linprobe of one run share one feature extraction (the runner
    // deletes the file once the run's row is written).
    if (e == MIM_EVAL_KNN || e == MIM_EVAL_LINPROBE) add(&a, "--features-cache=%s/features.safetensors", run_dir);
    add(&a, "--quiet");
    for (int i = 0; i < s->eval_extra[e].argc; i++) add(&a, "%s", s->eval_extra[e].argv[i]);
    return finish(&a);
}
