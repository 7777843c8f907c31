// study.c: the study file (JSON, cJSON) -> mim_study, every field checked
// with "FILE: field X: why" errors. The grid and the command lines are
// plan.c; the runner runner.c; the report report.c.
#include "study/study.h"
#include "data/subset.h"
#include "core/check.h"
#include "model/hog.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char* eval_names[MIM_EVAL_COUNT] = {"knn", "linprobe", "finetune", "scratch"};
const char* mim_eval_name(mim_eval_kind e) { return e < MIM_EVAL_COUNT ? eval_names[e] : "?"; }
const char* mim_budget_name(mim_budget_kind b) { return b == MIM_BUDGET_IMAGES ? "images_seen" : "epochs"; }
const char* mim_baseline_name(mim_baseline_kind b) { return b == MIM_BASELINE_RANDOM ? "random" : "pixels"; }

static char* dupstr(const char* s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char* d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

// ------------------------------------------------------------ field helpers
// Each returns 0 or MIM_EARG/EFORMAT with "FILE: field X: why".
typedef struct { const char* file; } ctx;

static int bad(const ctx* c, const char* field, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(const ctx* c, const char* field, const char* fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return mim_err(MIM_EARG, "%s: field \"%s\": %s", c->file, field, msg);
}

// Optional number in [lo, hi]; absent leaves *v.
static int get_num(const ctx* c, const cJSON* o, const char* key, const char* field, double lo, double hi, double* v) {
    const cJSON* j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return 0;
    if (!cJSON_IsNumber(j)) return bad(c, field, "expected a number");
    if (!(j->valuedouble >= lo && j->valuedouble <= hi)) return bad(c, field, "%g is out of range [%g, %g]", j->valuedouble, lo, hi);
    *v = j->valuedouble;
    return 0;
}
static int get_int(const ctx* c, const cJSON* o, const char* key, const char* field, double lo, double hi, int* v) {
    double d = *v;
    int rc = get_num(c, o, key, field, lo, hi, &d);
    if (rc) return rc;
    if (d != floor(d)) return bad(c, field, "expected an integer, got %g", d);
    *v = (int)d;
    return 0;
}
static int get_str(const ctx* c, const cJSON* o, const char* key, const char* field, char** v) {
    const cJSON* j = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!j) return 0;
    if (!cJSON_IsString(j) || !j->valuestring[0]) return bad(c, field, "expected a non-empty string");
    free(*v);
    *v = dupstr(j->valuestring);
    return *v ? 0 : mim_err(MIM_ENOMEM, "out of memory");
}

static int check_keys(const ctx* c, const cJSON* o, const char* field, const char* const* known) {
    for (const cJSON* it = o ? o->child : NULL; it; it = it->next) {
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= !strcmp(it->string, known[i]);
        if (!ok) {
            char list[512] = "";
            for (int i = 0; known[i]; i++) {
                strncat(list, known[i], sizeof list - strlen(list) - 1);
                if (known[i + 1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            return bad(c, field, "unknown key \"%s\" (known: %s)", it->string, list);
        }
    }
    return 0;
}

// A JSON object of flags {"k": 20, "norm-pix": true, "aa": "none"} -> "--k=20" ...
static int argv_from_object(const ctx* c, const cJSON* o, const char* field, mim_argv_list* out) {
    if (!o) return 0;
    if (!cJSON_IsObject(o)) return bad(c, field, "expected an object of command flags, e.g. {\"epochs\": 10}");
    int n = cJSON_GetArraySize(o);
    out->argv = calloc((size_t)n + 1, sizeof(char*));
    if (!out->argv) return mim_err(MIM_ENOMEM, "out of memory");
    for (const cJSON* it = o->child; it; it = it->next) {
        char val[256];
        if (cJSON_IsNumber(it)) snprintf(val, sizeof val, "%.17g", it->valuedouble);
        else if (cJSON_IsBool(it)) snprintf(val, sizeof val, "%d", cJSON_IsTrue(it) ? 1 : 0);
        else if (cJSON_IsString(it)) snprintf(val, sizeof val, "%s", it->valuestring);
        else return bad(c, field, "flag \"%s\" must be a number, boolean or string", it->string);
        if (!it->string[0] || it->string[0] == '-') return bad(c, field, "flag names go without dashes (\"%s\")", it->string);
        size_t len = strlen(it->string) + strlen(val) + 4;
        char* a = malloc(len);
        if (!a) return mim_err(MIM_ENOMEM, "out of memory");
        snprintf(a, len, "--%s=%s", it->string, val);
        out->argv[out->argc++] = a;
    }
    return 0;
}

static void argv_list_free(mim_argv_list* l) {
    for (int i = 0; i < l->argc; i++) free(l->argv[i]);
    free(l->argv);
    l->argv = NULL; l->argc = 0;
}

void mim_study_free(mim_study* s) {
    free(s->name); free(s->path); free(s->idx_dir); free(s->shards); free(s->eval_shards);
    free(s->index); free(s->eval_index); free(s->subsets); free(s->models); free(s->seeds); free(s->teacher);
    argv_list_free(&s->pretrain_extra);
    for (int e = 0; e < MIM_EVAL_COUNT; e++) argv_list_free(&s->eval_extra[e]);
    memset(s, 0, sizeof *s);
}

static const char* const strategies[] = {"random", "first", "stratified", NULL};

static int parse_subset_entry(const ctx* c, const cJSON* e, const char* field, mim_study* s) {
    static const char* const keys[] = {"sizes", "strategy", "strategies", "seeds", "targets", NULL};
    if (!cJSON_IsObject(e)) return bad(c, field, "expected an object {\"sizes\": [...], \"strategy\": \"random\"}");
    int rc = check_keys(c, e, field, keys);
    if (rc) return rc;
    const cJSON* sizes = cJSON_GetObjectItemCaseSensitive(e, "sizes");
    if (!cJSON_IsArray(sizes) || cJSON_GetArraySize(sizes) == 0) return bad(c, field, "\"sizes\" must be a non-empty array of image counts");
    const cJSON* st1 = cJSON_GetObjectItemCaseSensitive(e, "strategy");
    const cJSON* stn = cJSON_GetObjectItemCaseSensitive(e, "strategies");
    if (st1 && stn) return bad(c, field, "give \"strategy\" or \"strategies\", not both");
    const char* names[8];
    int nst = 0;
    if (!st1 && !stn) names[nst++] = "random";
    else if (st1) {
        if (!cJSON_IsString(st1)) return bad(c, field, "\"strategy\" must be a string");
        names[nst++] = st1->valuestring;
    } else {
        if (!cJSON_IsArray(stn) || cJSON_GetArraySize(stn) == 0) return bad(c, field, "\"strategies\" must be a non-empty array");
        for (const cJSON* it = stn->child; it; it = it->next) {
            if (!cJSON_IsString(it)) return bad(c, field, "\"strategies\" must hold strings");
            if (nst == 8) return bad(c, field, "too many strategies");
            names[nst++] = it->valuestring;
        }
    }
    for (int i = 0; i < nst; i++) {
        int ok = 0;
        for (int k = 0; strategies[k]; k++) ok |= !strcmp(names[i], strategies[k]);
        if (!ok) return bad(c, field, "unknown strategy \"%s\" (random, first, stratified)", names[i]);
    }
    // optional: this entry's seeds and targets
    mim_study_subset proto = {0};
    const cJSON* sd = cJSON_GetObjectItemCaseSensitive(e, "seeds");
    if (sd) {
        if (!cJSON_IsArray(sd) || cJSON_GetArraySize(sd) == 0) return bad(c, field, "\"seeds\" must be a non-empty array of integers");
        for (const cJSON* it = sd->child; it; it = it->next) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 9e15 || it->valuedouble != floor(it->valuedouble))
                return bad(c, field, "seeds must be integers >= 0");
            if (proto.nseeds == MIM_STUDY_MAX_SUBSET_SEEDS) return bad(c, field, "at most %d seeds per entry", MIM_STUDY_MAX_SUBSET_SEEDS);
            for (int k = 0; k < proto.nseeds; k++)
                if (proto.seeds[k] == (uint64_t)it->valuedouble) return bad(c, field, "seed %.0f listed twice", it->valuedouble);
            proto.seeds[proto.nseeds++] = (uint64_t)it->valuedouble;
        }
    }
    const cJSON* tg = cJSON_GetObjectItemCaseSensitive(e, "targets");
    if (tg) {
        if (!cJSON_IsArray(tg) || cJSON_GetArraySize(tg) == 0) return bad(c, field, "\"targets\" must be a non-empty array, e.g. [\"pixel-norm\"]");
        for (const cJSON* it = tg->child; it; it = it->next) {
            mim_target t;
            if (!cJSON_IsString(it) || mim_target_parse(it->valuestring, &t))
                return bad(c, field, "unknown target in \"targets\" (known: pixel, pixel-norm, hog, teacher)");
            proto.target_mask |= 1u << t;
        }
    }
    for (int i = 0; i < nst; i++)
        for (const cJSON* it = sizes->child; it; it = it->next) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 1 || it->valuedouble > 1e12 || it->valuedouble != floor(it->valuedouble))
                return bad(c, field, "sizes must be positive integers");
            mim_study_subset sub = proto;
            sub.size = (int64_t)it->valuedouble;
            snprintf(sub.strategy, sizeof sub.strategy, "%s", names[i]);
            int dup = 0;
            for (int k = 0; k < s->nsubsets; k++)
                dup |= s->subsets[k].size == sub.size && !strcmp(s->subsets[k].strategy, sub.strategy);
            if (dup && (sd || tg)) return bad(c, field, "%s %lld repeats an earlier entry; give its seeds / targets there", sub.strategy, (long long)sub.size);
            if (dup) continue;
            mim_study_subset* n = realloc(s->subsets, sizeof *n * (size_t)(s->nsubsets + 1));
            if (!n) return mim_err(MIM_ENOMEM, "out of memory");
            s->subsets = n;
            s->subsets[s->nsubsets++] = sub;
        }
    return 0;
}

static int parse_model(const ctx* c, const cJSON* m, const char* field, mim_study* s, mim_study_model* out) {
    static const char* const keys[] = {"preset", "name", "patch", "dec_dim", "dec_depth", "dec_heads", "label", NULL};
    memset(out, 0, sizeof *out);
    const char* preset = NULL;
    if (cJSON_IsString(m)) preset = m->valuestring;
    else if (cJSON_IsObject(m)) {
        int rc = check_keys(c, m, field, keys);
        if (rc) return rc;
        const cJSON* p = cJSON_GetObjectItemCaseSensitive(m, "preset");
        if (!p) p = cJSON_GetObjectItemCaseSensitive(m, "name");
        if (!cJSON_IsString(p)) return bad(c, field, "needs \"preset\": a model name (see `mimscale models`)");
        preset = p->valuestring;
    } else return bad(c, field, "expected a preset name or an object {\"preset\": \"vit_nano\", \"patch\": 7, ...}");
    mim_config cfg;
    if (mim_config_preset(&cfg, preset)) return bad(c, field, "%s", mim_err_msg());
    snprintf(out->preset, sizeof out->preset, "%s", preset);
    // Small-image defaults: the study's images are small; MAE's 16 / 512x8 would not fit.
    out->patch = cfg.patch; out->dec_dim = 128; out->dec_depth = 2; out->dec_heads = 4;
    if (cJSON_IsObject(m)) {
        int rc;
        if ((rc = get_int(c, m, "patch", field, 1, 1024, &out->patch)) || (rc = get_int(c, m, "dec_dim", field, 4, 1 << 16, &out->dec_dim)) ||
            (rc = get_int(c, m, "dec_depth", field, 0, 1024, &out->dec_depth)) ||
            (rc = get_int(c, m, "dec_heads", field, 1, 1024, &out->dec_heads)))
            return rc;
        const cJSON* l = cJSON_GetObjectItemCaseSensitive(m, "label");
        if (l && (!cJSON_IsString(l) || !l->valuestring[0] || strlen(l->valuestring) >= sizeof out->label))
            return bad(c, field, "\"label\" must be a short non-empty string");
        if (l) snprintf(out->label, sizeof out->label, "%s", l->valuestring);
    }
    if (!out->label[0]) snprintf(out->label, sizeof out->label, "%s-p%d", out->preset, out->patch);
    for (const char* q = out->label; *q; q++)
        if (!(('a' <= *q && *q <= 'z') || ('A' <= *q && *q <= 'Z') || ('0' <= *q && *q <= '9') || *q == '_' || *q == '-' || *q == '.'))
            return bad(c, field, "label \"%s\": use letters, digits, '_', '-', '.'", out->label);
    // The full config must be valid at the study's image size.
    cfg.patch = out->patch; cfg.dec_dim = out->dec_dim; cfg.dec_depth = out->dec_depth; cfg.dec_heads = out->dec_heads;
    cfg.img_h = cfg.img_w = s->img; cfg.in_chans = s->in_chans;
    if (mim_config_validate(&cfg)) return bad(c, field, "at %dx%dx%d: %s", s->img, s->img, s->in_chans, mim_err_msg());
    return 0;
}

// ------------------------------------------------ the scratch baseline's schedule
// Flags of `finetune` that do not change what is trained or measured: the
// scratch entry may set them apart from finetune's. Every other flag is
// the schedule (length, batch, lr and its shape, regularisation,
// augmentation, head, precision) and must be the MIM rows'.
static const char* const ft_operational[] = {"threads", "data-threads", "log-every", "dist-timeout", "save-every", "keep",
                                             "max-ram", "max-skip-frac", "io-retries", "quiet", NULL};

// "--name=value" -> name (cap bytes) and a pointer to the value.
static const char* split_flag(const char* arg, char* name, size_t cap) {
    const char* a = arg + 2, *eq = strchr(a, '=');
    size_t n = eq ? (size_t)(eq - a) : strlen(a);
    if (n >= cap) n = cap - 1;
    memcpy(name, a, n);
    name[n] = 0;
    return eq ? eq + 1 : "";
}
static const char* find_flag(const mim_argv_list* l, const char* name) {
    char nm[128];
    for (int i = 0; i < l->argc; i++) {
        split_flag(l->argv[i], nm, sizeof nm);
        if (!strcmp(nm, name)) return l->argv[i];
    }
    return NULL;
}

// With both finetune and scratch: the scratch run's flags become finetune's
// (so it trains with exactly the MIM rows' fine-tuning schedule), with the
// operational flags scratch gives overriding or added. A scratch flag of
// the schedule that finetune lacks or sets otherwise is refused, naming it.
static int scratch_schedule(const ctx* c, mim_study* s) {
    mim_argv_list* ft = &s->eval_extra[MIM_EVAL_FINETUNE];
    mim_argv_list* sc = &s->eval_extra[MIM_EVAL_SCRATCH];
    char nm[128];
    for (int i = 0; i < sc->argc; i++) {
        const char* v = split_flag(sc->argv[i], nm, sizeof nm);
        int op = 0;
        for (int k = 0; ft_operational[k]; k++) op |= !strcmp(nm, ft_operational[k]);
        if (op) continue;
        const char* fa = find_flag(ft, nm);
        char fn[128];
        if (!fa)
            return bad(c, "evaluations.scratch", "\"%s\" is set for scratch but not for finetune; the scratch baseline fine-tunes with "
                       "the finetune evaluation's schedule, so set it in \"finetune\" (scratch inherits it)", nm);
        if (strcmp(fa, sc->argv[i]))
            return bad(c, "evaluations.scratch", "\"%s\" is %s here but %s in \"finetune\"; the scratch baseline fine-tunes with the "
                       "finetune evaluation's schedule: drop it from \"scratch\" (it inherits finetune's flags)", nm, v, split_flag(fa, fn, sizeof fn));
    }
    mim_argv_list m = {calloc((size_t)(ft->argc + sc->argc) + 1, sizeof(char*)), 0};
    if (!m.argv) return mim_err(MIM_ENOMEM, "out of memory");
    for (int i = 0; i < ft->argc; i++) {   // finetune's, in its order; an operational one scratch sets is scratch's
        split_flag(ft->argv[i], nm, sizeof nm);
        const char* o = find_flag(sc, nm);
        if (!(m.argv[m.argc++] = dupstr(o ? o : ft->argv[i]))) { argv_list_free(&m); return mim_err(MIM_ENOMEM, "out of memory"); }
    }
    for (int i = 0; i < sc->argc; i++) {   // then scratch's operational flags finetune lacks
        split_flag(sc->argv[i], nm, sizeof nm);
        if (find_flag(ft, nm)) continue;
        if (!(m.argv[m.argc++] = dupstr(sc->argv[i]))) { argv_list_free(&m); return mim_err(MIM_ENOMEM, "out of memory"); }
    }
    argv_list_free(sc);
    *sc = m;
    s->eval_epochs[MIM_EVAL_SCRATCH] = s->eval_epochs[MIM_EVAL_FINETUNE];
    s->eval_steps[MIM_EVAL_SCRATCH] = s->eval_steps[MIM_EVAL_FINETUNE];
    s->eval_batch[MIM_EVAL_SCRATCH] = s->eval_batch[MIM_EVAL_FINETUNE];
    return 0;
}

int mim_study_parse(mim_study* s, const char* json, const char* path) {
    memset(s, 0, sizeof *s);
    ctx c = {path};
    const char* endp = NULL;
    cJSON* root = cJSON_ParseWithOpts(json, &endp, 1);
    if (!root) {
        int line = 1;
        for (const char* q = json; endp && q < endp; q++) line += *q == '\n';
        return mim_err(MIM_EFORMAT, "%s: not valid JSON near line %d", path, line);
    }
    int rc = 0;
#define TRY(x) do { if ((rc = (x)) != 0) goto done; } while (0)
    if (!cJSON_IsObject(root)) { rc = mim_err(MIM_EFORMAT, "%s: the study must be a JSON object", path); goto done; }
    static const char* const top[] = {"name", "description", "data", "subsets", "models", "targets", "teacher", "budget",
                                      "pretrain", "evaluations", "baselines", "seeds", "estimate", "report", "slurm", NULL};
    TRY(check_keys(&c, root, "(top level)", top));
    s->path = dupstr(path);
    TRY(get_str(&c, root, "name", "name", &s->name));
    if (!s->name) {
        const char* b = strrchr(path, '/');
        b = b ? b + 1 : path;
        s->name = dupstr(b);
        char* dot = s->name ? strrchr(s->name, '.') : NULL;
        if (dot && dot != s->name) *dot = 0;
    }
    if (!s->name || !s->path) { rc = mim_err(MIM_ENOMEM, "out of memory"); goto done; }

    // data
    const cJSON* d = cJSON_GetObjectItemCaseSensitive(root, "data");
    if (!cJSON_IsObject(d)) { rc = bad(&c, "data", "required: an object naming the images (\"idx\" or \"shards\"/\"index\")"); goto done; }
    static const char* const dkeys[] = {"idx", "shards", "eval_shards", "index", "eval_index", "img", "in_chans", "subset_seed",
                                        "eval_size", "probe_size", NULL};
    TRY(check_keys(&c, d, "data", dkeys));
    TRY(get_str(&c, d, "idx", "data.idx", &s->idx_dir));
    TRY(get_str(&c, d, "shards", "data.shards", &s->shards));
    TRY(get_str(&c, d, "eval_shards", "data.eval_shards", &s->eval_shards));
    TRY(get_str(&c, d, "index", "data.index", &s->index));
    TRY(get_str(&c, d, "eval_index", "data.eval_index", &s->eval_index));
    if (s->idx_dir && (s->shards || s->index || s->eval_shards || s->eval_index)) { rc = bad(&c, "data.idx", "give either \"idx\" or \"shards\"/\"index\", not both"); goto done; }
    if (!s->idx_dir && !s->shards && !s->index) { rc = bad(&c, "data", "needs \"idx\" (an IDX folder) or \"shards\" / \"index\""); goto done; }
    if (!s->idx_dir && !s->eval_shards && !s->eval_index) { rc = bad(&c, "data", "needs \"eval_shards\" or \"eval_index\" (the evaluation set)"); goto done; }
    s->img = s->idx_dir ? 28 : 0;
    s->in_chans = s->idx_dir ? 1 : 3;
    TRY(get_int(&c, d, "img", "data.img", 1, 1 << 14, &s->img));
    TRY(get_int(&c, d, "in_chans", "data.in_chans", 1, 64, &s->in_chans));
    if (!s->img) { rc = bad(&c, "data.img", "required for shard data (the square training size, e.g. 32)"); goto done; }
    double sseed = 0;
    TRY(get_num(&c, d, "subset_seed", "data.subset_seed", 0, 9e15, &sseed));
    s->subset_seed = (uint64_t)sseed;
    double esz = 0, psz = 0;
    TRY(get_num(&c, d, "eval_size", "data.eval_size", 0, 1e12, &esz));
    TRY(get_num(&c, d, "probe_size", "data.probe_size", 0, 1e12, &psz));
    if (esz > 0 && !s->idx_dir) { rc = bad(&c, "data.eval_size", "only for \"idx\" data (for shards, index fewer eval shards)"); goto done; }
    s->eval_size = (int64_t)esz; s->probe_size = (int64_t)psz;

    // subsets
    const cJSON* sub = cJSON_GetObjectItemCaseSensitive(root, "subsets");
    if (cJSON_IsObject(sub)) TRY(parse_subset_entry(&c, sub, "subsets", s));
    else if (cJSON_IsArray(sub) && cJSON_GetArraySize(sub) > 0) {
        int i = 0;
        for (const cJSON* it = sub->child; it; it = it->next, i++) {
            char f[32];
            snprintf(f, sizeof f, "subsets[%d]", i);
            TRY(parse_subset_entry(&c, it, f, s));
        }
    } else { rc = bad(&c, "subsets", "required: {\"sizes\": [1000, 6000], \"strategies\": [\"random\"]} or an array of such"); goto done; }

    // models
    const cJSON* ms = cJSON_GetObjectItemCaseSensitive(root, "models");
    if (!cJSON_IsArray(ms) || cJSON_GetArraySize(ms) == 0) { rc = bad(&c, "models", "required: a non-empty array of presets or {\"preset\", \"patch\", \"dec_dim\", ...}"); goto done; }
    s->models = calloc((size_t)cJSON_GetArraySize(ms), sizeof *s->models);
    if (!s->models) { rc = mim_err(MIM_ENOMEM, "out of memory"); goto done; }
    {
        int i = 0;
        for (const cJSON* it = ms->child; it; it = it->next, i++) {
            char f[32];
            snprintf(f, sizeof f, "models[%d]", i);
            TRY(parse_model(&c, it, f, s, &s->models[i]));
            for (int k = 0; k < i; k++)
                if (!strcmp(s->models[k].label, s->models[i].label)) { rc = bad(&c, f, "label \"%s\" repeats models[%d]'s; give a \"label\"", s->models[i].label, k); goto done; }
        }
        s->nmodels = i;
    }

    // targets
    const cJSON* ts = cJSON_GetObjectItemCaseSensitive(root, "targets");
    if (!ts) { s->targets[0] = MIM_TARGET_PIXEL; s->ntargets = 1; }
    else if (!cJSON_IsArray(ts) || cJSON_GetArraySize(ts) == 0) { rc = bad(&c, "targets", "expected a non-empty array, e.g. [\"pixel\", \"pixel-norm\"]"); goto done; }
    else
        for (const cJSON* it = ts->child; it; it = it->next) {
            mim_target t;
            if (!cJSON_IsString(it) || mim_target_parse(it->valuestring, &t)) {
                rc = bad(&c, "targets", "unknown target %s%s%s (known: pixel, pixel-norm, hog, teacher)",
                         cJSON_IsString(it) ? "\"" : "", cJSON_IsString(it) ? it->valuestring : "(not a string)", cJSON_IsString(it) ? "\"" : "");
                goto done;
            }
            for (int k = 0; k < s->ntargets; k++) if (s->targets[k] == t) { rc = bad(&c, "targets", "\"%s\" listed twice", mim_target_name(t)); goto done; }
            s->targets[s->ntargets++] = t;
        }

    // an entry's "targets" must be the study's
    for (int i = 0; i < s->nsubsets; i++) {
        unsigned all = 0;
        for (int k = 0; k < s->ntargets; k++) all |= 1u << s->targets[k];
        if (s->subsets[i].target_mask & ~all) { rc = bad(&c, "subsets", "%s %lld: its \"targets\" must be among the study's \"targets\"", s->subsets[i].strategy, (long long)s->subsets[i].size); goto done; }
    }

    // teacher: "path" or {"path": "...", "layer": -1, "norm": true}; needed by target "teacher"
    const cJSON* te = cJSON_GetObjectItemCaseSensitive(root, "teacher");
    s->teacher_layer = -1;
    if (te && cJSON_IsString(te)) TRY(get_str(&c, root, "teacher", "teacher", &s->teacher));
    else if (te && cJSON_IsObject(te)) {
        static const char* const tkeys[] = {"path", "layer", "norm", NULL};
        TRY(check_keys(&c, te, "teacher", tkeys));
        TRY(get_str(&c, te, "path", "teacher.path", &s->teacher));
        TRY(get_int(&c, te, "layer", "teacher.layer", -1, 1024, &s->teacher_layer));
        const cJSON* tn = cJSON_GetObjectItemCaseSensitive(te, "norm");
        if (tn && !cJSON_IsBool(tn)) { rc = bad(&c, "teacher.norm", "expected true or false"); goto done; }
        s->teacher_norm = tn && cJSON_IsTrue(tn);
        if (!s->teacher) { rc = bad(&c, "teacher", "needs \"path\": the teacher checkpoint"); goto done; }
    } else if (te) { rc = bad(&c, "teacher", "expected a checkpoint path or {\"path\": ..., \"layer\": -1, \"norm\": true}"); goto done; }
    {
        int want = 0;
        for (int k = 0; k < s->ntargets; k++) want |= s->targets[k] == MIM_TARGET_TEACHER;
        if (want && !s->teacher) { rc = bad(&c, "teacher", "target \"teacher\" needs the teacher checkpoint: \"teacher\": \"path\""); goto done; }
        if (!want && s->teacher) { rc = bad(&c, "teacher", "given, but no target is \"teacher\""); goto done; }
    }

    // budget
    const cJSON* b = cJSON_GetObjectItemCaseSensitive(root, "budget");
    static const char* const bkeys[] = {"epochs", "images_seen", NULL};
    if (!cJSON_IsObject(b)) { rc = bad(&c, "budget", "required: {\"epochs\": E} or {\"images_seen\": N} per run"); goto done; }
    TRY(check_keys(&c, b, "budget", bkeys));
    {
        const cJSON* be = cJSON_GetObjectItemCaseSensitive(b, "epochs");
        const cJSON* bi = cJSON_GetObjectItemCaseSensitive(b, "images_seen");
        if (!!be == !!bi) { rc = bad(&c, "budget", "give exactly one of \"epochs\" and \"images_seen\""); goto done; }
        s->budget_kind = be ? MIM_BUDGET_EPOCHS : MIM_BUDGET_IMAGES;
        TRY(get_num(&c, b, be ? "epochs" : "images_seen", be ? "budget.epochs" : "budget.images_seen", 1e-6, 1e15, &s->budget));
    }

    // pretrain settings shared by every run
    const cJSON* p = cJSON_GetObjectItemCaseSensitive(root, "pretrain");
    static const char* const pkeys[] = {"batch", "blr", "warmup_frac", "save_every", "threads", "eval_threads", "hog_cell",
                                        "extra", NULL};
    s->batch = 128; s->blr = 1.5e-4; s->warmup_frac = 0.05; s->save_every = 200; s->threads = 0; s->eval_threads = -1;
    if (p && !cJSON_IsObject(p)) { rc = bad(&c, "pretrain", "expected an object"); goto done; }
    if (p) {
        TRY(check_keys(&c, p, "pretrain", pkeys));
        TRY(get_int(&c, p, "batch", "pretrain.batch", 1, 1 << 20, &s->batch));
        TRY(get_num(&c, p, "blr", "pretrain.blr", 0, 10, &s->blr));
        TRY(get_num(&c, p, "warmup_frac", "pretrain.warmup_frac", 0, 1, &s->warmup_frac));
        TRY(get_int(&c, p, "save_every", "pretrain.save_every", 1, 1 << 30, &s->save_every));
        TRY(get_int(&c, p, "threads", "pretrain.threads", 0, 4096, &s->threads));
        TRY(get_int(&c, p, "eval_threads", "pretrain.eval_threads", 0, 4096, &s->eval_threads));
        TRY(get_int(&c, p, "hog_cell", "pretrain.hog_cell", 1, 1024, &s->hog_cell));
        TRY(argv_from_object(&c, cJSON_GetObjectItemCaseSensitive(p, "extra"), "pretrain.extra", &s->pretrain_extra));
    }
    if (s->eval_threads < 0) s->eval_threads = s->threads;
    for (int i = 0; i < s->nsubsets; i++)
        if (s->subsets[i].size < s->batch) {
            rc = bad(&c, "pretrain.batch", "%d is larger than the smallest subset (%" PRId64 " images); lower it", s->batch, s->subsets[i].size);
            goto done;
        }

    // evaluations: ["knn", "linprobe"] or {"knn": {flags}, "linprobe": {}}
    const cJSON* ev = cJSON_GetObjectItemCaseSensitive(root, "evaluations");
    if (ev && !cJSON_IsArray(ev) && !cJSON_IsObject(ev)) { rc = bad(&c, "evaluations", "expected [\"knn\", ...] or {\"knn\": {flags}, ...}"); goto done; }
    for (const cJSON* it = ev ? ev->child : NULL; it; it = it->next) {
        const char* nm = cJSON_IsObject(ev) ? it->string : (cJSON_IsString(it) ? it->valuestring : "");
        int e = -1;
        for (int k = 0; k < MIM_EVAL_COUNT; k++) if (!strcmp(nm, eval_names[k])) e = k;
        if (e < 0) { rc = bad(&c, "evaluations", "unknown evaluation \"%s\" (knn, linprobe, finetune, scratch)", nm); goto done; }
        if (s->evals[e]) { rc = bad(&c, "evaluations", "\"%s\" listed twice", nm); goto done; }
        s->evals[e] = 1;
        if (cJSON_IsObject(ev)) {
            char f[48];
            snprintf(f, sizeof f, "evaluations.%s", nm);
            TRY(argv_from_object(&c, it, f, &s->eval_extra[e]));
            const cJSON* ep = cJSON_GetObjectItemCaseSensitive(it, "epochs");
            if (cJSON_IsNumber(ep)) s->eval_epochs[e] = ep->valuedouble;
            const cJSON* es = cJSON_GetObjectItemCaseSensitive(it, "steps");
            const cJSON* eb = cJSON_GetObjectItemCaseSensitive(it, "batch");
            if (cJSON_IsNumber(es)) s->eval_steps[e] = es->valuedouble;
            if (cJSON_IsNumber(eb)) s->eval_batch[e] = eb->valuedouble;
        }
    }

    if (s->evals[MIM_EVAL_FINETUNE] && s->evals[MIM_EVAL_SCRATCH]) TRY(scratch_schedule(&c, s));

    // baselines: true (default) or false
    const cJSON* bl = cJSON_GetObjectItemCaseSensitive(root, "baselines");
    if (bl && !cJSON_IsBool(bl)) { rc = bad(&c, "baselines", "expected true or false (raw-pixel and random-init knn / linprobe runs)"); goto done; }
    s->baselines = !bl || cJSON_IsTrue(bl);

    // seeds
    const cJSON* sd = cJSON_GetObjectItemCaseSensitive(root, "seeds");
    if (!sd) {
        s->seeds = calloc(1, sizeof *s->seeds);
        if (!s->seeds) { rc = mim_err(MIM_ENOMEM, "out of memory"); goto done; }
        s->nseeds = 1;
    } else {
        if (!cJSON_IsArray(sd) || cJSON_GetArraySize(sd) == 0) { rc = bad(&c, "seeds", "expected a non-empty array of integers, e.g. [0, 1, 2]"); goto done; }
        s->seeds = calloc((size_t)cJSON_GetArraySize(sd), sizeof *s->seeds);
        if (!s->seeds) { rc = mim_err(MIM_ENOMEM, "out of memory"); goto done; }
        for (const cJSON* it = sd->child; it; it = it->next) {
            if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 9e15 || it->valuedouble != floor(it->valuedouble)) { rc = bad(&c, "seeds", "seeds must be integers >= 0"); goto done; }
            for (int k = 0; k < s->nseeds; k++) if (s->seeds[k] == (uint64_t)it->valuedouble) { rc = bad(&c, "seeds", "seed %.0f listed twice", it->valuedouble); goto done; }
            s->seeds[s->nseeds++] = (uint64_t)it->valuedouble;
        }
    }

    // report: {"metric": "knn"}
    s->report_metric = -1;
    const cJSON* rp = cJSON_GetObjectItemCaseSensitive(root, "report");
    static const char* const rkeys[] = {"metric", NULL};
    if (rp) {
        if (!cJSON_IsObject(rp)) { rc = bad(&c, "report", "expected {\"metric\": \"knn\"}"); goto done; }
        TRY(check_keys(&c, rp, "report", rkeys));
        const cJSON* mt = cJSON_GetObjectItemCaseSensitive(rp, "metric");
        if (mt) {
            for (int k = 0; k < MIM_EVAL_SCRATCH; k++) if (cJSON_IsString(mt) && !strcmp(mt->valuestring, eval_names[k])) s->report_metric = k;
            if (s->report_metric < 0 || !s->evals[s->report_metric]) { rc = bad(&c, "report.metric", "must name one of this study's evaluations (knn, linprobe, finetune)"); goto done; }
        }
    }

    // slurm: {"pretrain": {"nodes", "ntasks", "cpus_per_task", "mem", "time"}, "eval": {...}, "scratch", "baseline", "mpi": "pmix"}
    const cJSON* sl = cJSON_GetObjectItemCaseSensitive(root, "slurm");
    if (sl) {
        static const char* const skeys[] = {"pretrain", "eval", "scratch", "baseline", "mpi", NULL};
        static const char* const rkeys2[] = {"nodes", "ntasks", "cpus_per_task", "mem", "time", NULL};
        if (!cJSON_IsObject(sl)) { rc = bad(&c, "slurm", "expected {\"pretrain\": {\"ntasks\": 2, \"cpus_per_task\": 4, \"time\": \"02:00:00\"}, \"eval\": {...}}"); goto done; }
        TRY(check_keys(&c, sl, "slurm", skeys));
        for (int k = 0; k < MIM_SLURM_KINDS; k++) {
            const cJSON* e = cJSON_GetObjectItemCaseSensitive(sl, skeys[k]);
            if (!e) continue;
            char f[48];
            snprintf(f, sizeof f, "slurm.%s", skeys[k]);
            if (!cJSON_IsObject(e)) { rc = bad(&c, f, "expected an object of nodes, ntasks, cpus_per_task, mem, time"); goto done; }
            TRY(check_keys(&c, e, f, rkeys2));
            mim_slurm_res* R = &s->slurm[k];
            char ff[80];
            snprintf(ff, sizeof ff, "%s.nodes", f); TRY(get_int(&c, e, "nodes", ff, 1, 100000, &R->nodes));
            snprintf(ff, sizeof ff, "%s.ntasks", f); TRY(get_int(&c, e, "ntasks", ff, 1, 1000000, &R->ntasks));
            snprintf(ff, sizeof ff, "%s.cpus_per_task", f); TRY(get_int(&c, e, "cpus_per_task", ff, 1, 4096, &R->cpus_per_task));
            for (int q = 0; q < 2; q++) {
                const char* key = q ? "time" : "mem";
                const cJSON* v = cJSON_GetObjectItemCaseSensitive(e, key);
                if (!v) continue;
                snprintf(ff, sizeof ff, "%s.%s", f, key);
                if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= sizeof R->mem || strpbrk(v->valuestring, " '\"\\\n"))
                    { rc = bad(&c, ff, "expected a short string as sbatch takes it (\"%s\")", q ? "02:00:00" : "8G"); goto done; }
                snprintf(q ? R->time : R->mem, sizeof R->mem, "%s", v->valuestring);
            }
            if (k != MIM_SLURM_PRETRAIN && R->ntasks > 1) { rc = bad(&c, f, "\"ntasks\": only pre-training runs as several MPI ranks (slurm.pretrain)"); goto done; }
        }
        int nt = s->slurm[MIM_SLURM_PRETRAIN].ntasks;
        if (nt > 1 && s->batch % nt) { rc = bad(&c, "slurm.pretrain.ntasks", "%d ranks do not divide pretrain.batch %d (each rank takes batch / ntasks)", nt, s->batch); goto done; }
        const cJSON* mp = cJSON_GetObjectItemCaseSensitive(sl, "mpi");
        if (mp && (!cJSON_IsString(mp) || strlen(mp->valuestring) >= sizeof s->slurm_mpi || strspn(mp->valuestring, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(mp->valuestring)))
            { rc = bad(&c, "slurm.mpi", "expected an srun --mpi plugin name, e.g. \"pmix\""); goto done; }
        if (mp) snprintf(s->slurm_mpi, sizeof s->slurm_mpi, "%s", mp->valuestring);
    }

    // estimate
    s->est_gflops = 20; s->est_eval_size = s->eval_size > 0 ? s->eval_size : 10000;
    const cJSON* es = cJSON_GetObjectItemCaseSensitive(root, "estimate");
    static const char* const ekeys[] = {"gflops", "eval_size", NULL};
    if (es) {
        if (!cJSON_IsObject(es)) { rc = bad(&c, "estimate", "expected {\"gflops\": G, \"eval_size\": N}"); goto done; }
        TRY(check_keys(&c, es, "estimate", ekeys));
        TRY(get_num(&c, es, "gflops", "estimate.gflops", 1e-3, 1e9, &s->est_gflops));
        double n = (double)s->est_eval_size;
        TRY(get_num(&c, es, "eval_size", "estimate.eval_size", 0, 1e12, &n));
        s->est_eval_size = (int64_t)n;
    }
#undef TRY
done:
    cJSON_Delete(root);
    if (rc) mim_study_free(s);
    return rc;
}

int mim_study_load(mim_study* s, const char* path) {
    memset(s, 0, sizeof *s);
    FILE* f = fopen(path, "rb");
    if (!f) return mim_err(MIM_EIO, "cannot open study file %s: %s", path, strerror(errno));
    char* buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            if (cap > (64u << 20)) { free(buf); fclose(f); return mim_err(MIM_EFORMAT, "%s: larger than 64 MB; not a study file", path); }
            char* nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); return mim_err(MIM_ENOMEM, "out of memory"); }
            buf = nb;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r < 4096) break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) { free(buf); return mim_err(MIM_EIO, "cannot read %s", path); }
    buf[n] = 0;
    int rc = mim_study_parse(s, buf, path);
    free(buf);
    return rc;
}
