// meta.c: filter conditions and buckets over img2dataset key.json metadata
// (see meta.h). JSON is parsed with cJSON; cJSON_ParseWithLength also stores
// its last error position in a global that nothing here reads, so parallel
// calls are harmless in practice.
#include "data/meta.h"
#include "core/check.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char* op_text[] = { ">=", "<=", ">", "<", "==", "!=" };

void mim_meta_spec_init(mim_meta_spec* m) { memset(m, 0, sizeof *m); }

int mim_meta_n_groups(const mim_meta_spec* m) { return m->bucket_field[0] ? m->n_edges + 1 : 1; }

static const char* skip_ws(const char* p, const char* end) {
    while (p < end && isspace((unsigned char)*p)) p++;
    return p;
}

// One number filling [p, end) exactly (surrounding blanks allowed), finite.
static int parse_number(const char* p, const char* end, double* out) {
    p = skip_ws(p, end);
    while (end > p && isspace((unsigned char)end[-1])) end--;
    if (p == end || end - p > 63) return 0;
    char buf[64];
    memcpy(buf, p, (size_t)(end - p));
    buf[end - p] = 0;
    char* e;
    double v = strtod(buf, &e);
    if (*e || !isfinite(v)) return 0;
    *out = v;
    return 1;
}

static int field_char(char c) { return isalnum((unsigned char)c) || c == '_' || c == '.' || c == '-'; }

// FIELD OP NUMBER in [p, end)
static int parse_cond(const char* p, const char* end, mim_meta_cond* c) {
    const char* s = skip_ws(p, end);
    const char* f = s;
    while (f < end && field_char(*f)) f++;
    if (f == s || f - s >= MIM_META_FIELD_MAX) return 0;
    memcpy(c->field, s, (size_t)(f - s));
    c->field[f - s] = 0;
    const char* o = skip_ws(f, end);
    int len = 2;
    if (end - o >= 2 && !memcmp(o, ">=", 2)) c->op = MIM_CMP_GE;
    else if (end - o >= 2 && !memcmp(o, "<=", 2)) c->op = MIM_CMP_LE;
    else if (end - o >= 2 && !memcmp(o, "==", 2)) c->op = MIM_CMP_EQ;
    else if (end - o >= 2 && !memcmp(o, "!=", 2)) c->op = MIM_CMP_NE;
    else if (o < end && *o == '>') { c->op = MIM_CMP_GT; len = 1; }
    else if (o < end && *o == '<') { c->op = MIM_CMP_LT; len = 1; }
    else if (o < end && *o == '=') { c->op = MIM_CMP_EQ; len = 1; }
    else return 0;
    return parse_number(o + len, end, &c->value);
}

int mim_meta_parse_filter(mim_meta_spec* m, const char* expr) {
    const char* p = expr;
    if (!*skip_ws(p, p + strlen(p))) return mim_err(MIM_EARG, "empty filter (want e.g. 'width>=256,height>=256')");
    for (;;) {
        const char* comma = strchr(p, ',');
        const char* end = comma ? comma : p + strlen(p);
        if (m->n_cond == MIM_META_MAX_CONDS) return mim_err(MIM_EARG, "filter: more than %d conditions", MIM_META_MAX_CONDS);
        if (!parse_cond(p, end, &m->cond[m->n_cond]))
            return mim_err(MIM_EARG, "filter: cannot parse '%.*s' (want FIELD OP NUMBER, OP one of >= <= > < == !=, "
                           "conditions separated by ',')", (int)(end - p), p);
        m->n_cond++;
        if (!comma) break;
        p = comma + 1;
    }
    return MIM_OK;
}

int mim_meta_parse_buckets(mim_meta_spec* m, const char* field, const char* edges) {
    size_t fl = strlen(field);
    if (fl == 0 || fl >= MIM_META_FIELD_MAX) return mim_err(MIM_EARG, "bucket field '%s': empty or too long", field);
    for (size_t i = 0; i < fl; i++)
        if (!field_char(field[i])) return mim_err(MIM_EARG, "bucket field '%s': only letters, digits, _ . - allowed", field);
    memcpy(m->bucket_field, field, fl + 1);
    m->n_edges = 0;
    const char* p = edges;
    for (;;) {
        const char* comma = strchr(p, ',');
        const char* end = comma ? comma : p + strlen(p);
        if (m->n_edges == MIM_META_MAX_EDGES) return mim_err(MIM_EARG, "bucket edges: more than %d", MIM_META_MAX_EDGES);
        double v;
        if (!parse_number(p, end, &v)) return mim_err(MIM_EARG, "bucket edges: '%.*s' is not a number", (int)(end - p), p);
        if (m->n_edges && v <= m->edges[m->n_edges - 1])
            return mim_err(MIM_EARG, "bucket edges must be strictly ascending ('%s')", edges);
        m->edges[m->n_edges++] = v;
        if (!comma) break;
        p = comma + 1;
    }
    return MIM_OK;
}

void mim_meta_spec_format(const mim_meta_spec* m, char* out, size_t cap) {
    size_t k = 0;
    out[0] = 0;
#define PUT(...) do { if (k < cap) { int w_ = snprintf(out + k, cap - k, __VA_ARGS__); if (w_ > 0) k += (size_t)w_; } } while (0)
    for (int i = 0; i < m->n_cond; i++)
        PUT("%s%s%s%.17g", i ? "," : "", m->cond[i].field, op_text[m->cond[i].op], m->cond[i].value);
    if (m->bucket_field[0]) {
        PUT("%sbucket %s:", m->n_cond ? ";" : "", m->bucket_field);
        for (int i = 0; i < m->n_edges; i++) PUT("%s%.17g", i ? "," : "", m->edges[i]);
    }
#undef PUT
}

uint64_t mim_meta_spec_hash(const mim_meta_spec* m) {
    if (m->n_cond == 0 && !m->bucket_field[0]) return 0;
    char s[8192];
    mim_meta_spec_format(m, s, sizeof s);
    uint64_t h = 0xcbf29ce484222325ULL;   // FNV-1a 64
    for (const char* p = s; *p; p++) { h ^= (uint8_t)*p; h *= 0x100000001b3ULL; }
    return h ? h : 1;
}

int mim_meta_bucket(const mim_meta_spec* m, double v) {
    int lo = 0, hi = m->n_edges;   // count of edges <= v
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (m->edges[mid] <= v) lo = mid + 1; else hi = mid;
    }
    return lo;
}

// Numeric value of FIELD: a top-level key, else a dotted path.
static int get_number(const cJSON* root, const char* field, double* out) {
    const cJSON* it = cJSON_GetObjectItemCaseSensitive(root, field);
    if (!it && strchr(field, '.')) {
        char part[MIM_META_FIELD_MAX];
        const char* p = field;
        it = root;
        while (it && *p) {
            const char* dot = strchr(p, '.');
            size_t L = dot ? (size_t)(dot - p) : strlen(p);
            memcpy(part, p, L);
            part[L] = 0;
            it = cJSON_IsObject(it) ? cJSON_GetObjectItemCaseSensitive(it, part) : NULL;
            p += L + (dot ? 1 : 0);
        }
    }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble)) return 0;
    *out = it->valuedouble;
    return 1;
}

static int holds(const mim_meta_cond* c, double v) {
    switch (c->op) {
    case MIM_CMP_GE: return v >= c->value;
    case MIM_CMP_LE: return v <= c->value;
    case MIM_CMP_GT: return v > c->value;
    case MIM_CMP_LT: return v < c->value;
    case MIM_CMP_EQ: return v == c->value;
    default:         return v != c->value;
    }
}

int mim_meta_classify(const mim_meta_spec* m, const uint8_t* json, size_t n) {
    if (n > MIM_META_JSON_MAX) return MIM_META_BAD_JSON;
    cJSON* root = cJSON_ParseWithLength((const char*)json, n);
    if (!root) return MIM_META_BAD_JSON;
    int g = 0;
    if (!cJSON_IsObject(root)) g = MIM_META_BAD_JSON;
    for (int i = 0; i < m->n_cond && g >= 0; i++) {
        double v;
        if (!get_number(root, m->cond[i].field, &v)) g = MIM_META_NO_FIELD;
        else if (!holds(&m->cond[i], v)) g = MIM_META_REJECTED;
    }
    if (g >= 0 && m->bucket_field[0]) {
        double v;
        g = get_number(root, m->bucket_field, &v) ? mim_meta_bucket(m, v) : MIM_META_NO_FIELD;
    }
    cJSON_Delete(root);
    return g;
}
