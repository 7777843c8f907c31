// teacher.c: frozen ViT teacher (see teacher.h): recognising the file's
// naming scheme, loading and checking its tensors, resizing the position
// embedding, and the forward pass. Shapes: B batch, C channels, p patch,
// K = C*p*p, D width, Hm MLP width, L = gh*gw patches, T = 1 + L tokens.
#include "model/teacher.h"
#include "core/check.h"
#include "data/augment.h"
#include "ops/ops.h"
#include "core/safetensors.h"
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WIDTH  65536
#define MAX_DEPTH  1024
#define MAX_PATCH  1024
#define MAX_GRID   4096

const char* mim_teacher_scheme_name(mim_teacher_scheme s) {
    switch (s) {
    case MIM_TEACHER_TIMM: return "timm/MAE";
    case MIM_TEACHER_CLIP: return "OpenAI CLIP";
    case MIM_TEACHER_HF: return "HF CLIP";
    }
    return "?";
}

// ---------------------------------------------------------------- names

// Per-scheme tensor names, relative to the tower prefix. Block names take
// the block index as %d.
typedef struct {
    const char *patch, *cls, *pos, *pre, *post;
    const char *blk;   // block prefix, e.g. "blocks.%d."
    const char *ln1, *ln2, *qkv_w, *qkv_b, *proj, *fc1, *fc2;   // within a block
} scheme_names;

static const scheme_names NAMES_TIMM = {
    "patch_embed.proj", "cls_token", "pos_embed", "norm_pre", "norm",
    "blocks.%d.", "norm1", "norm2", "attn.qkv.weight", "attn.qkv.bias", "attn.proj", "mlp.fc1", "mlp.fc2"};
static const scheme_names NAMES_CLIP = {
    "conv1", "class_embedding", "positional_embedding", "ln_pre", "ln_post",
    "transformer.resblocks.%d.", "ln_1", "ln_2", "attn.in_proj_weight", "attn.in_proj_bias", "attn.out_proj",
    "mlp.c_fc", "mlp.c_proj"};
static const scheme_names NAMES_HF = {
    "embeddings.patch_embedding", "embeddings.class_embedding", "embeddings.position_embedding.weight",
    "pre_layrnorm", "post_layernorm",
    "encoder.layers.%d.", "layer_norm1", "layer_norm2", NULL, NULL, "self_attn.out_proj", "mlp.fc1", "mlp.fc2"};

static const scheme_names* names_of(mim_teacher_scheme s) {
    return s == MIM_TEACHER_TIMM ? &NAMES_TIMM : s == MIM_TEACHER_CLIP ? &NAMES_CLIP : &NAMES_HF;
}

// One tensor the loader expects: where it goes and its shape.
typedef struct {
    char name[160];        // full name in the file (prefix included)
    int ndim;
    int64_t shape[4];      // shape[i] < 0: any size (visual.proj's width)
    float** field;         // destination pointer, NULL: checked, not stored
    size_t sub;            // float offset within *field (HF q/k/v into qkv)
    int optional;
    int found;
    size_t numel;          // the file's tensor, when found
} spec;

typedef struct {
    spec* s;
    int n, cap;
} spec_list;

__attribute__((format(printf, 5, 6)))
static void spec_add(spec_list* l, float** field, size_t sub, int optional, const char* fmt, ...) {
    CHECK(l->n < l->cap);
    spec* e = &l->s[l->n++];
    memset(e, 0, sizeof *e);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    e->field = field;
    e->sub = sub;
    e->optional = optional;
}
#define SHAPE(e, ...) do { int64_t s_[] = {__VA_ARGS__}; (e)->ndim = (int)(sizeof s_ / sizeof s_[0]); \
                           memcpy((e)->shape, s_, sizeof s_); } while (0)
#define LAST(l) (&(l)->s[(l)->n - 1])

static void fmt_shape(char* buf, size_t n, int ndim, const int64_t* shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, shape[i] < 0 ? "%s*" : "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

// Adds NAME.weight and NAME.bias of a LayerNorm of width D.
static void spec_ln(spec_list* l, const char* pre, const char* name, float** w, float** b, int D, int optional) {
    spec_add(l, w, 0, optional, "%s%s.weight", pre, name); SHAPE(LAST(l), D);
    spec_add(l, b, 0, optional, "%s%s.bias", pre, name); SHAPE(LAST(l), D);
}
// Adds NAME.weight (OC, C) and NAME.bias (OC) of a linear layer.
static void spec_linear(spec_list* l, const char* pre, const char* name, float** w, float** b, int OC, int C) {
    spec_add(l, w, 0, 0, "%s%s.weight", pre, name); SHAPE(LAST(l), OC, C);
    spec_add(l, b, 0, 0, "%s%s.bias", pre, name); SHAPE(LAST(l), OC);
}

// The whole expected tensor list of t's scheme. pos0 receives the native
// position embedding; final_norm names the final norm (without .weight).
static void build_specs(mim_teacher* t, spec_list* l, float** pos0, const char* final_norm) {
    const scheme_names* nm = names_of(t->scheme);
    const char* P = t->prefix;
    int D = t->D, C = t->C, p = t->p, Hm = t->hidden, L0 = t->gh0 * t->gw0;
    char pre[200];
    // patch embedding; CLIP and HF have no bias
    spec_add(l, &t->pe_w, 0, 0, "%s%s.weight", P, nm->patch); SHAPE(LAST(l), D, C, p, p);
    if (t->scheme == MIM_TEACHER_TIMM) { spec_add(l, &t->pe_b, 0, 1, "%s%s.bias", P, nm->patch); SHAPE(LAST(l), D); }
    spec_add(l, &t->cls, 0, 0, "%s%s", P, nm->cls);
    if (t->scheme == MIM_TEACHER_TIMM) SHAPE(LAST(l), 1, 1, D); else SHAPE(LAST(l), D);
    spec_add(l, pos0, 0, 0, "%s%s", P, nm->pos);
    if (t->scheme == MIM_TEACHER_TIMM) SHAPE(LAST(l), 1, 1 + L0, D); else SHAPE(LAST(l), 1 + L0, D);
    snprintf(pre, sizeof pre, "%s", P);
    spec_ln(l, pre, nm->pre, &t->pre_w, &t->pre_b, D, t->scheme == MIM_TEACHER_TIMM);
    for (int i = 0; i < t->depth; i++) {
        mim_vit_block_w* b = &t->blocks[i];
        int k = snprintf(pre, sizeof pre, "%s", P);
        snprintf(pre + k, sizeof pre - k, nm->blk, i);
        spec_ln(l, pre, nm->ln1, &b->ln1w, &b->ln1b, D, 0);
        if (nm->qkv_w) {
            spec_add(l, &b->qkvw, 0, 0, "%s%s", pre, nm->qkv_w); SHAPE(LAST(l), 3 * D, D);
            spec_add(l, &b->qkvb, 0, 0, "%s%s", pre, nm->qkv_b); SHAPE(LAST(l), 3 * D);
        } else {   // HF: separate q, k, v projections stacked into timm's qkv
            static const char* qkv[3] = {"q_proj", "k_proj", "v_proj"};
            for (int j = 0; j < 3; j++) {
                spec_add(l, &b->qkvw, (size_t)j * D * D, 0, "%sself_attn.%s.weight", pre, qkv[j]); SHAPE(LAST(l), D, D);
                spec_add(l, &b->qkvb, (size_t)j * D, 0, "%sself_attn.%s.bias", pre, qkv[j]); SHAPE(LAST(l), D);
            }
        }
        spec_linear(l, pre, nm->proj, &b->projw, &b->projb, D, D);
        spec_ln(l, pre, nm->ln2, &b->ln2w, &b->ln2b, D, 0);
        spec_linear(l, pre, nm->fc1, &b->fc1w, &b->fc1b, Hm, D);
        spec_linear(l, pre, nm->fc2, &b->fc2w, &b->fc2b, D, Hm);
    }
    snprintf(pre, sizeof pre, "%s", P);
    spec_ln(l, pre, final_norm, &t->norm_w, &t->norm_b, D, 0);
    if (t->scheme == MIM_TEACHER_CLIP) {   // visual.proj (D, E): checked, not applied
        spec_add(l, NULL, 0, 1, "%sproj", P); SHAPE(LAST(l), D, -1);
    }
}

static int starts_with(const char* s, const char* pre) { return strncmp(s, pre, strlen(pre)) == 0; }

// Tensors of a recognised file that are not part of the teacher.
static int ignored(const mim_teacher* t, const char* full) {
    if (t->prefix[0] && !starts_with(full, t->prefix)) return 1;   // text tower, projections
    const char* n = full + strlen(t->prefix);
    switch (t->scheme) {
    case MIM_TEACHER_TIMM:
        return starts_with(n, "decoder_") || !strcmp(n, "mask_token") || starts_with(n, "head.") ||
               (starts_with(n, "fc_norm.") && strcmp(t->final_norm, "fc_norm") != 0);
    case MIM_TEACHER_CLIP: return 0;
    case MIM_TEACHER_HF: return !strcmp(n, "embeddings.position_ids");
    }
    return 0;
}

// ---------------------------------------------------------------- inference

// Strict non-negative integer from metadata key; -1 if absent, -2 if bad.
static long meta_int(const mim_st* st, const char* key) {
    const char* v = mim_st_meta(st, key);
    if (!v) return -1;
    char* end;
    long x = strtol(v, &end, 10);
    return (end == v || *end || x < 0 || x > (1L << 24)) ? -2 : x;
}

static int64_t isqrt_exact(int64_t n) {
    int64_t r = (int64_t)llround(sqrt((double)n));
    for (int64_t c = r > 1 ? r - 1 : 0; c <= r + 1; c++) if (c * c == n) return c;
    return -1;
}

// Block count: 1 + the highest index N in names "<prefix><blk>N." (bounded).
static int count_blocks(const mim_st* st, const char* prefix, const char* blk_fmt, int* depth) {
    char base[160];
    snprintf(base, sizeof base, "%s%s", prefix, blk_fmt);
    char* pct = strstr(base, "%d");
    CHECK(pct);
    *pct = 0;
    size_t bl = strlen(base);
    int maxi = -1;
    for (int i = 0; i < mim_st_count(st); i++) {
        const char* n = mim_st_get(st, i)->name;
        if (strncmp(n, base, bl) != 0) continue;
        const char* s = n + bl;
        char* end;
        long k = strtol(s, &end, 10);
        if (end == s || *end != '.' || k < 0 || (s[0] == '0' && end - s > 1)) continue;   // not a block name
        if (k >= MAX_DEPTH) return mim_err(MIM_EFORMAT, "tensor '%s': block index %ld, at most %d blocks supported", n, k, MAX_DEPTH);
        if (k > maxi) maxi = (int)k;
    }
    *depth = maxi + 1;
    return 0;
}

// Scheme, prefix and every dimension, from the names and shapes.
static int infer(mim_teacher* t, const mim_st* st, const char* path) {
    static const struct { mim_teacher_scheme s; const char* prefix; } tries[] = {
        {MIM_TEACHER_HF, "vision_model."}, {MIM_TEACHER_HF, ""},
        {MIM_TEACHER_CLIP, "visual."}, {MIM_TEACHER_CLIP, ""},
        {MIM_TEACHER_TIMM, ""},
    };
    char key[200];
    const mim_st_tensor* pe = NULL;
    for (size_t i = 0; i < sizeof tries / sizeof tries[0] && !pe; i++) {
        snprintf(key, sizeof key, "%s%s.weight", tries[i].prefix, names_of(tries[i].s)->patch);
        pe = mim_st_find(st, key);
        if (pe) { t->scheme = tries[i].s; snprintf(t->prefix, sizeof t->prefix, "%s", tries[i].prefix); }
    }
    if (!pe)
        return mim_err(MIM_EFORMAT, "%s: not a recognised ViT: it has none of patch_embed.proj.weight (timm/MAE), "
                       "visual.conv1.weight (OpenAI CLIP) or vision_model.embeddings.patch_embedding.weight (HF CLIP)", path);
    const scheme_names* nm = names_of(t->scheme);
    if (pe->ndim != 4 || pe->shape[2] != pe->shape[3] || pe->shape[0] < 1 || pe->shape[0] > MAX_WIDTH ||
        pe->shape[1] < 1 || pe->shape[2] < 1 || pe->shape[2] > MAX_PATCH) {
        char sh[200];
        fmt_shape(sh, sizeof sh, pe->ndim, pe->shape);
        return mim_err(MIM_ESHAPE, "%s: tensor '%s' has shape %s, expected [width, channels, p, p] "
                       "(width <= %d, p <= %d)", path, pe->name, sh, MAX_WIDTH, MAX_PATCH);
    }
    t->D = (int)pe->shape[0]; t->C = (int)pe->shape[1]; t->p = (int)pe->shape[2];
    if (t->scheme == MIM_TEACHER_TIMM ? (t->C != 1 && t->C != 3) : t->C != 3)
        return mim_err(MIM_ESHAPE, "%s: tensor '%s' has %d input channels; a %s teacher takes %s", path, pe->name,
                       t->C, mim_teacher_scheme_name(t->scheme), t->scheme == MIM_TEACHER_TIMM ? "1 or 3" : "3");
    int rc = count_blocks(st, t->prefix, nm->blk, &t->depth);
    if (rc) return mim_err(rc, "%s: %s", path, mim_err_msg());
    if (t->depth < 1) {
        char b[64];
        snprintf(b, sizeof b, nm->blk, 0);
        return mim_err(MIM_EFORMAT, "%s: a %s ViT without blocks (no tensor named %s%s*)", path,
                       mim_teacher_scheme_name(t->scheme), t->prefix, b);
    }
    // MLP width from block 0's first linear
    int k = snprintf(key, sizeof key, "%s", t->prefix);
    k += snprintf(key + k, sizeof key - k, nm->blk, 0);
    snprintf(key + k, sizeof key - k, "%s.weight", nm->fc1);
    const mim_st_tensor* fc1 = mim_st_find(st, key);
    if (!fc1) return mim_err(MIM_ENOTFOUND, "%s: missing tensor '%s' (expected shape [mlp width, %d])", path, key, t->D);
    if (fc1->ndim != 2 || fc1->shape[1] != t->D || fc1->shape[0] < 1 || fc1->shape[0] > 16 * (int64_t)MAX_WIDTH) {
        char sh[200];
        fmt_shape(sh, sizeof sh, fc1->ndim, fc1->shape);
        return mim_err(MIM_ESHAPE, "%s: tensor '%s' has shape %s, expected [mlp width, %d]", path, key, sh, t->D);
    }
    t->hidden = (int)fc1->shape[0];
    // native grid from the position embedding rows
    snprintf(key, sizeof key, "%s%s", t->prefix, nm->pos);
    const mim_st_tensor* pos = mim_st_find(st, key);
    int pd = t->scheme == MIM_TEACHER_TIMM ? 3 : 2;
    if (!pos) return mim_err(MIM_ENOTFOUND, "%s: missing tensor '%s' (expected shape %s1 + patches, %d])", path, key,
                             pd == 3 ? "[1, " : "[", t->D);
    if (pos->ndim != pd || (pd == 3 && pos->shape[0] != 1) || pos->shape[pd - 1] != t->D || pos->shape[pd - 2] < 2 ||
        pos->shape[pd - 2] > (int64_t)MAX_GRID * MAX_GRID) {
        char sh[200];
        fmt_shape(sh, sizeof sh, pos->ndim, pos->shape);
        return mim_err(MIM_ESHAPE, "%s: tensor '%s' has shape %s, expected %s1 + patches, %d]", path, key, sh,
                       pd == 3 ? "[1, " : "[", t->D);
    }
    int64_t L0 = pos->shape[pd - 2] - 1;
    long mh = meta_int(st, "img_h"), mw = meta_int(st, "img_w"), mp = meta_int(st, "patch");
    if (mh > 0 && mw > 0 && mp == t->p && mh % mp == 0 && mw % mp == 0 && (mh / mp) * (mw / mp) == L0) {
        t->gh0 = (int)(mh / mp); t->gw0 = (int)(mw / mp);
    } else {
        int64_t s = isqrt_exact(L0);
        if (s < 1)
            return mim_err(MIM_EFORMAT, "%s: tensor '%s' has %lld patch positions, not a square grid; "
                           "add __metadata__ img_h, img_w, patch to give the native size", path, key, (long long)L0);
        t->gh0 = t->gw0 = (int)s;
    }
    // heads
    static const char* hkeys[] = {"num_heads", "heads", "num_attention_heads", "n_heads"};
    t->heads = 0;
    for (size_t i = 0; i < sizeof hkeys / sizeof hkeys[0] && !t->heads; i++) {
        long h = meta_int(st, hkeys[i]);
        if (h == -1) continue;
        if (h < 1 || t->D % h) return mim_err(MIM_EFORMAT, "%s: __metadata__ %s = '%s' does not divide the width %d",
                                              path, hkeys[i], mim_st_meta(st, hkeys[i]), t->D);
        t->heads = (int)h;
        t->heads_from = hkeys[i];
    }
    if (!t->heads) {
        if (t->D == 1280) { t->heads = 16; t->heads_from = "ViT-H rule (width 1280 -> 16)"; }
        else if (t->D % 64 == 0) { t->heads = t->D / 64; t->heads_from = "width/64"; }
        else return mim_err(MIM_EFORMAT, "%s: cannot infer the attention heads of width %d (not a multiple of 64); "
                            "add __metadata__ num_heads", path, t->D);
    }
    // activation and LayerNorm eps: the architecture's, unless metadata says
    t->act = t->scheme == MIM_TEACHER_TIMM ? MIM_ACT_GELU : MIM_ACT_QUICK_GELU;
    t->ln_eps = t->scheme == MIM_TEACHER_TIMM ? 1e-6f : 1e-5f;
    const char* act = mim_st_meta(st, "act");
    if (!act) act = mim_st_meta(st, "hidden_act");
    if (act) {
        if (!strcmp(act, "gelu")) t->act = MIM_ACT_GELU;
        else if (!strcmp(act, "quick_gelu")) t->act = MIM_ACT_QUICK_GELU;
        else return mim_err(MIM_EFORMAT, "%s: __metadata__ activation '%s' is not gelu or quick_gelu", path, act);
    }
    const char* eps = mim_st_meta(st, "layer_norm_eps");
    if (eps) {
        char* end;
        double e = strtod(eps, &end);
        if (end == eps || *end || !(e > 0 && e < 1))
            return mim_err(MIM_EFORMAT, "%s: __metadata__ layer_norm_eps '%s' is not in (0, 1)", path, eps);
        t->ln_eps = (float)e;
    }
    // final norm: timm has norm, or fc_norm alone (MAE global-pool fine-tunes)
    t->final_norm = nm->post;
    if (t->scheme == MIM_TEACHER_TIMM && !mim_st_find(st, "norm.weight") && mim_st_find(st, "fc_norm.weight"))
        t->final_norm = "fc_norm";
    // expected input normalisation
    if (t->scheme == MIM_TEACHER_TIMM) {
        mim_transform tf;
        mim_transform_default(&tf, t->C, 1, 1, 0);
        memcpy(t->mean, tf.mean, sizeof t->mean);
        memcpy(t->std, tf.std, sizeof t->std);
    } else {
        static const float cm[3] = {0.48145466f, 0.4578275f, 0.40821073f}, cs[3] = {0.26862954f, 0.26130258f, 0.27577711f};
        memcpy(t->mean, cm, sizeof cm);
        memcpy(t->std, cs, sizeof cs);
    }
    return 0;
}

// Every tensor in the tower is expected and every required one present with
// its shape and a float dtype.
static int check_specs(mim_teacher* t, const mim_st* st, spec_list* l, const char* path) {
    for (int i = 0; i < mim_st_count(st); i++) {
        const mim_st_tensor* x = mim_st_get(st, i);
        if (ignored(t, x->name)) continue;
        spec* e = NULL;
        for (int j = 0; j < l->n && !e; j++) if (!strcmp(l->s[j].name, x->name)) e = &l->s[j];
        if (!e)
            return mim_err(MIM_EFORMAT, "%s: unexpected tensor '%s' in a %s ViT (width %d, depth %d): "
                           "not part of the architecture this loader knows", path, x->name,
                           mim_teacher_scheme_name(t->scheme), t->D, t->depth);
        e->found = 1;
        e->numel = x->numel;
        int ok = x->ndim == e->ndim;
        for (int d = 0; ok && d < x->ndim; d++) ok = e->shape[d] < 0 || x->shape[d] == e->shape[d];
        if (!ok) {
            char have[200], want[200];
            fmt_shape(have, sizeof have, x->ndim, x->shape);
            fmt_shape(want, sizeof want, e->ndim, e->shape);
            return mim_err(MIM_ESHAPE, "%s: tensor '%s' has shape %s, expected %s", path, x->name, have, want);
        }
        if (x->dtype != MIM_F32 && x->dtype != MIM_F16 && x->dtype != MIM_BF16 && x->dtype != MIM_F64)
            return mim_err(MIM_ESHAPE, "%s: tensor '%s' has dtype %s, expected F32, F16, BF16 or F64", path, x->name,
                           mim_dtype_name(x->dtype));
    }
    for (int j = 0; j < l->n; j++) {
        const spec* e = &l->s[j];
        if (e->found || e->optional) continue;
        char want[200];
        fmt_shape(want, sizeof want, e->ndim, e->shape);
        return mim_err(MIM_ENOTFOUND, "%s: missing tensor '%s' (expected shape %s) for a %s ViT of width %d, depth %d",
                       path, e->name, want, mim_teacher_scheme_name(t->scheme), t->D, t->depth);
    }
    return 0;
}

// ---------------------------------------------------------------- memory

static void carve_params(mim_teacher* t, mim_carver* c, float** pos0) {
    size_t D = t->D, K = (size_t)t->C * t->p * t->p, Hm = t->hidden;
    t->pe_w = mim_carve(c, D * K); t->pe_b = mim_carve(c, D); t->cls = mim_carve(c, D);
    *pos0 = mim_carve(c, (1 + (size_t)t->gh0 * t->gw0) * D);
    t->pos = mim_carve(c, (size_t)t->T * D);
    t->pre_w = mim_carve(c, D); t->pre_b = mim_carve(c, D);
    for (int i = 0; i < t->depth; i++) {
        mim_vit_block_w* b = &t->blocks[i];
        b->ln1w = mim_carve(c, D); b->ln1b = mim_carve(c, D);
        b->qkvw = mim_carve(c, 3 * D * D); b->qkvb = mim_carve(c, 3 * D);
        b->projw = mim_carve(c, D * D); b->projb = mim_carve(c, D);
        b->ln2w = mim_carve(c, D); b->ln2b = mim_carve(c, D);
        b->fc1w = mim_carve(c, Hm * D); b->fc1b = mim_carve(c, Hm);
        b->fc2w = mim_carve(c, D * Hm); b->fc2b = mim_carve(c, D);
    }
    t->norm_w = mim_carve(c, D); t->norm_b = mim_carve(c, D);
}

static void carve_acts(mim_teacher* t, mim_carver* c) {
    size_t B = t->max_batch, T = t->T, D = t->D, L = t->L, K = (size_t)t->C * t->p * t->p;
    t->img = mim_carve(c, B * t->C * t->H * t->W);
    t->col = mim_carve(c, B * L * K);
    t->x = mim_carve(c, B * T * D);
    t->ln = mim_carve(c, B * T * D);
    t->qkv = mim_carve(c, B * T * 3 * D);
    t->atty = mim_carve(c, B * T * D);
    t->hid = mim_carve(c, B * T * t->hidden);
    t->mean_s = mim_carve(c, B * T);
    t->rstd_s = mim_carve(c, B * T);
    t->lse = mim_carve(c, B * t->heads * T);
    t->attn.per_thread = (attention_ws_floats((int)T, (int)(D / t->heads)) + 15) & ~(size_t)15;
    t->attn.threads = omp_get_max_threads();
    t->attn.mem = mim_carve(c, t->attn.per_thread * (size_t)t->attn.threads);
}

// ---------------------------------------------------------------- resampling

// torch bilinear source index (align_corners=False, clamped at 0): i0, i1, weight of i1.
static void bilinear_src(int o, double scale, int in, int* i0, int* i1, float* l1) {
    double r = scale * (o + 0.5) - 0.5;
    if (r < 0) r = 0;
    int i = (int)r;
    if (i > in - 1) i = in - 1;
    *i0 = i;
    *i1 = i < in - 1 ? i + 1 : i;
    *l1 = (float)(r - i);
}

// ---------------------------------------------------------------- load

int mim_teacher_set_input(mim_teacher* t, int C, int H, int W, const float* mean, const float* std) {
    if (C != t->C && C != 1)
        return mim_err(MIM_EARG, "teacher takes %d-channel images; the student's have %d (only 1 is replicated)", t->C, C);
    if (H < 1 || W < 1 || H > 65536 || W > 65536) return mim_err(MIM_EARG, "bad student image size %dx%d", H, W);
    mim_transform tf;
    mim_transform_default(&tf, C, 1, 1, 0);
    for (int c = 0; c < C; c++) {
        float m = mean ? mean[c] : tf.mean[c], s = std ? std[c] : tf.std[c];
        if (!(s > 0) || !isfinite(m)) return mim_err(MIM_EARG, "bad student mean/std for channel %d: %g / %g", c, m, s);
        t->in_mean[c] = m; t->in_std[c] = s;
    }
    t->in_C = C; t->in_H = H; t->in_W = W;
    return 0;
}

static int load_impl(mim_teacher* t, const mim_st* st, const char* path, int grid_h, int grid_w, int max_batch) {
    int rc = infer(t, st, path);
    if (rc) return rc;
    if (grid_h <= 0 || grid_w <= 0) { grid_h = t->gh0; grid_w = t->gw0; }
    if (grid_h > MAX_GRID || grid_w > MAX_GRID || (int64_t)grid_h * grid_w > (1 << 20))
        return mim_err(MIM_EARG, "student patch grid %dx%d too large", grid_h, grid_w);
    if (max_batch < 1) return mim_err(MIM_EARG, "batch size must be >= 1 (got %d)", max_batch);
    t->gh = grid_h; t->gw = grid_w; t->L = grid_h * grid_w; t->T = 1 + t->L;
    t->H = grid_h * t->p; t->W = grid_w * t->p;
    t->max_batch = max_batch;
    t->blocks = mim_calloc((size_t)t->depth, sizeof(mim_vit_block_w));
    if (!t->blocks) return MIM_ENOMEM;

    // names and shapes before any large allocation
    spec_list l = {0};
    l.cap = 16 + 20 * t->depth;
    l.s = mim_calloc((size_t)l.cap, sizeof(spec));
    if (!l.s) return MIM_ENOMEM;
    float* pos0 = NULL;
    build_specs(t, &l, &pos0, t->final_norm);
    rc = check_specs(t, st, &l, path);
    if (rc) { free(l.s); return rc; }
    // optional pairs (timm norm_pre, patch bias): both or neither
    for (int j = 0; j < l.n; j++) {
        const spec* e = &l.s[j];
        if (e->found && e->field == &t->pre_w) t->has_pre_norm = 1;
        if (e->found) t->num_weights += e->numel;
    }
    for (int j = 0; j + 1 < l.n; j++) {
        const spec *a = &l.s[j], *b = &l.s[j + 1];
        if (a->optional && b->optional && a->field == &t->pre_w && a->found != b->found) {
            rc = mim_err(MIM_ENOTFOUND, "%s: missing tensor '%s' (expected shape [%d]): %s comes without it",
                         path, a->found ? b->name : a->name, t->D, a->found ? a->name : b->name);
            free(l.s);
            return rc;
        }
    }
    // sizes: weights are bounded by the MAX_* limits and the file; the
    // activations scale with max_batch (ops count rows with int)
    if ((int64_t)max_batch * t->T > INT32_MAX)
        { free(l.s); return mim_err(MIM_EARG, "teacher batch %d x %d tokens is too large", max_batch, t->T); }
    mim_carver c = {0};
    carve_params(t, &c, &pos0);
    t->num_params = c.used;
    t->params = mim_calloc(t->num_params, sizeof(float));
    if (!t->params) { free(l.s); return mim_err(MIM_ENOMEM, "%s: out of memory for %.1f MB of weights", path, t->num_params * 4e-6); }
    c = (mim_carver){t->params, 0};
    carve_params(t, &c, &pos0);
    if (!t->has_pre_norm) t->pre_w = t->pre_b = NULL;

    for (int j = 0; j < l.n && !rc; j++) {
        const spec* e = &l.s[j];
        if (!e->found || !e->field) continue;
        const mim_st_tensor* x = mim_st_find(st, e->name);
        rc = mim_st_read_f32(st, e->name, *e->field + e->sub, x->ndim, x->shape);
        if (rc) rc = mim_err(rc, "%s: %s", path, mim_err_msg());
    }
    free(l.s);
    if (rc) return rc;

    // position embedding at the run grid: cls row kept, grid part resized
    size_t D = t->D;
    memcpy(t->pos, pos0, D * sizeof(float));
    if (t->gh == t->gh0 && t->gw == t->gw0) memcpy(t->pos + D, pos0 + D, (size_t)t->L * D * sizeof(float));
    else mim_pos_embed_resize(t->pos + D, pos0 + D, t->D, t->gh0, t->gw0, t->gh, t->gw);

    c = (mim_carver){0};
    carve_acts(t, &c);
    t->acts = mim_calloc(c.used, sizeof(float));
    if (!t->acts) return mim_err(MIM_ENOMEM, "out of memory: teacher activations need %.1f MB for batch %d", c.used * 4e-6, max_batch);
    c = (mim_carver){t->acts, 0};
    carve_acts(t, &c);
    return 0;
}

int mim_teacher_load(mim_teacher* t, const char* path, int grid_h, int grid_w, int max_batch) {
    memset(t, 0, sizeof *t);
    mim_st* st = NULL;
    int rc = mim_st_open(&st, path);
    if (rc) return rc;   // the reader's message names the file
    rc = load_impl(t, st, path, grid_h, grid_w, max_batch);
    mim_st_close(st);
    if (rc) mim_teacher_free(t);
    return rc;
}

void mim_teacher_free(mim_teacher* t) {
    free(t->params);
    free(t->acts);
    free(t->blocks);
    memset(t, 0, sizeof *t);
}

int mim_teacher_dim(const mim_teacher* t) { return t->D; }

// ---------------------------------------------------------------- forward

// imgs (B, in_C, in_H, in_W) -> t->img (B, C, H, W): per channel
// x * in_std/std + (in_mean - mean)/std (pixels re-normalised), then
// bilinear resizing when the sizes differ (the affine map commutes with it).
static void prepare_images(mim_teacher* t, const float* imgs, int B) {
    int C = t->C, H = t->H, W = t->W, iH = t->in_H, iW = t->in_W;
    int resize = iH != H || iW != W;
    double sy = (double)iH / H, sx = (double)iW / W;
    #pragma omp parallel for collapse(2) if ((size_t)B * C * H * W >= 65536)
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++) {
            int ci = t->in_C == 1 ? 0 : c;
            float a = t->in_std[ci] / t->std[c], o = (t->in_mean[ci] - t->mean[c]) / t->std[c];
            const float* src = imgs + ((size_t)b * t->in_C + ci) * iH * iW;
            float* dst = t->img + ((size_t)b * C + c) * H * W;
            if (!resize) {
                for (size_t i = 0; i < (size_t)H * W; i++) dst[i] = a * src[i] + o;
                continue;
            }
            for (int y = 0; y < H; y++) {
                int y0, y1; float ly;
                bilinear_src(y, sy, iH, &y0, &y1, &ly);
                const float *r0 = src + (size_t)y0 * iW, *r1 = src + (size_t)y1 * iW;
                for (int x = 0; x < W; x++) {
                    int x0, x1; float lx;
                    bilinear_src(x, sx, iW, &x0, &x1, &lx);
                    float v = (1 - ly) * ((1 - lx) * r0[x0] + lx * r0[x1]) + ly * ((1 - lx) * r1[x0] + lx * r1[x1]);
                    dst[(size_t)y * W + x] = a * v + o;
                }
            }
        }
}

void mim_teacher_forward(mim_teacher* t, float* out, const float* imgs, int B, int layer) {
    CHECK(t->params && B >= 1 && B <= t->max_batch);
    CHECK(t->in_C > 0 && "mim_teacher_set_input must describe the student's images first");
    CHECK(layer >= -1 && layer < t->depth);
    int last = layer < 0 ? t->depth - 1 : layer;
    int final = last == t->depth - 1;
    int D = t->D, L = t->L, T = t->T, Hm = t->hidden, K = t->C * t->p * t->p;
    int N = B * T;
    size_t nd = (size_t)N * D;

    // patch embedding (into ln as scratch), class token, position embedding
    prepare_images(t, imgs, B);
    im2col_forward(t->col, t->img, B, t->C, t->H, t->W, t->p);
    matmul_forward(t->ln, t->col, t->pe_w, t->pe_b, B * L, K, D);
    #pragma omp parallel for if (nd >= 65536)
    for (int b = 0; b < B; b++) {
        float* x = t->x + (size_t)b * T * D;
        for (int d = 0; d < D; d++) x[d] = t->cls[d] + t->pos[d];
        const float* e = t->ln + (size_t)b * L * D;
        for (size_t i = 0; i < (size_t)L * D; i++) x[D + i] = e[i] + t->pos[D + i];
    }
    if (t->has_pre_norm) {
        layernorm_forward(t->ln, t->mean_s, t->rstd_s, t->x, t->pre_w, t->pre_b, N, D, t->ln_eps);
        memcpy(t->x, t->ln, nd * sizeof(float));
    }

    mim_vit_infer s = {t->ln, t->atty, t->qkv, t->hid, t->mean_s, t->rstd_s, t->lse, &t->attn, t->ln_eps,
                       t->act == MIM_ACT_QUICK_GELU};
    for (int i = 0; i <= last; i++) mim_vit_block_infer(&t->blocks[i], t->x, &s, B, T, D, t->heads, Hm);

    const float* src = t->x;
    if (final) {
        layernorm_forward(t->ln, t->mean_s, t->rstd_s, t->x, t->norm_w, t->norm_b, N, D, t->ln_eps);
        src = t->ln;
    }
    for (int b = 0; b < B; b++)
        memcpy(out + (size_t)b * L * D, src + ((size_t)b * T + 1) * D, (size_t)L * D * sizeof(float));
}

// ---------------------------------------------------------------- describe

static const char* vit_name(int D, int depth) {
    static const struct { int D, depth; const char* n; } known[] = {
        {192, 12, "ViT-Ti"}, {384, 12, "ViT-S"}, {768, 12, "ViT-B"}, {1024, 24, "ViT-L"},
        {1280, 32, "ViT-H"}, {1408, 40, "ViT-g"}, {1664, 48, "ViT-G"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].D == D && known[i].depth == depth) return known[i].n;
    return "ViT";
}

static void describe_input(const mim_teacher* t, FILE* f) {
    if (!t->in_C) { fprintf(f, "student input not set yet (mim_teacher_set_input)\n"); return; }
    fprintf(f, "student input %d x %d x %d", t->in_C, t->in_H, t->in_W);
    if (t->in_H != t->H || t->in_W != t->W) fprintf(f, ", resized to %d x %d (bilinear)", t->H, t->W);
    if (t->in_C != t->C) fprintf(f, ", channel replicated");
    fprintf(f, ", mean");
    for (int c = 0; c < t->in_C; c++) fprintf(f, " %.6g", (double)t->in_mean[c]);
    fprintf(f, ", std");
    for (int c = 0; c < t->in_C; c++) fprintf(f, " %.6g", (double)t->in_std[c]);
    fprintf(f, "\n");
}

void mim_teacher_describe(const mim_teacher* t, FILE* f) {
    const scheme_names* nm = names_of(t->scheme);
    fprintf(f, "scheme        %s%s%s%s\n", mim_teacher_scheme_name(t->scheme),
            t->prefix[0] ? " (prefix \"" : "", t->prefix, t->prefix[0] ? "\")" : "");
    fprintf(f, "architecture  %s/%d: width %d, depth %d, heads %d (%s), head dim %d\n", vit_name(t->D, t->depth),
            t->p, t->D, t->depth, t->heads, t->heads_from, t->D / t->heads);
    fprintf(f, "patch         %d x %d, %d input channel%s\n", t->p, t->p, t->C, t->C == 1 ? "" : "s");
    fprintf(f, "native        %d x %d pixels (grid %d x %d)\n", t->gh0 * t->p, t->gw0 * t->p, t->gh0, t->gw0);
    fprintf(f, "run           %d x %d pixels (grid %d x %d)%s\n", t->H, t->W, t->gh, t->gw,
            t->gh == t->gh0 && t->gw == t->gw0 ? "" : ", position embedding resized (bicubic)");
    fprintf(f, "mlp           %d (ratio %.2f)\n", t->hidden, (double)t->hidden / t->D);
    fprintf(f, "activation    %s\n", t->act == MIM_ACT_GELU ? "gelu (erf)" : "quick_gelu x*sigmoid(1.702x)");
    fprintf(f, "norms         LayerNorm eps %g; pre-norm %s; final %s (all tokens)\n", (double)t->ln_eps,
            t->has_pre_norm ? nm->pre : "none", t->final_norm);
    fprintf(f, "parameters    %.2fM (as stored in the file, tower only)\n", (double)t->num_weights / 1e6);
    fprintf(f, "teacher input mean");
    for (int c = 0; c < t->C; c++) fprintf(f, " %.6g", (double)t->mean[c]);
    fprintf(f, ", std");
    for (int c = 0; c < t->C; c++) fprintf(f, " %.6g", (double)t->std[c]);
    fprintf(f, "\n");
    describe_input(t, f);
    fprintf(f, "features      (B, %d, %d) patch tokens, class token dropped\n", t->L, t->D);
}
