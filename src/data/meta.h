// meta.h: conditions on the per-sample metadata that img2dataset writes as
// key.json (width, height, original_width, similarity, ...), for the
// `filter` subset strategy and for stratifying by a metadata bucket.
//
//     mim_meta_spec m;
//     mim_meta_spec_init(&m);
//     if (mim_meta_parse_filter(&m, "width>=256,height>=256") < 0) die(mim_err_msg());
//     if (mim_meta_parse_buckets(&m, "width", "128,256,512") < 0) die(...);
//     int g = mim_meta_classify(&m, json_bytes, n);   // bucket >= 0, or MIM_META_*
//
// A filter is one or more conditions `FIELD OP NUMBER` joined by ',' (all
// must hold); OP is one of >= <= > < == != (a single = means ==). FIELD is a
// top-level key, or a dotted path into nested objects ("exif.width"). A
// condition on a field that is absent, null or not a number fails. Buckets:
// ascending edges e1 < ... < ek make k + 1 buckets, (-inf, e1), [e1, e2),
// ..., [ek, +inf); bucket b holds values v with exactly b edges <= v.
// What it is not: a general JSON query language (no strings, no OR).
#pragma once
#include <stddef.h>
#include <stdint.h>

#define MIM_META_MAX_CONDS 16
#define MIM_META_MAX_EDGES 64
#define MIM_META_FIELD_MAX 64
#define MIM_META_JSON_MAX (1 << 20)   // larger key.json members are counted as bad

enum { MIM_CMP_GE, MIM_CMP_LE, MIM_CMP_GT, MIM_CMP_LT, MIM_CMP_EQ, MIM_CMP_NE };

typedef struct {
    char field[MIM_META_FIELD_MAX];
    int op;          // MIM_CMP_*
    double value;
} mim_meta_cond;

typedef struct {
    mim_meta_cond cond[MIM_META_MAX_CONDS];
    int n_cond;                            // 0: every sample with readable json passes
    char bucket_field[MIM_META_FIELD_MAX]; // "" : no buckets (one group)
    double edges[MIM_META_MAX_EDGES];
    int n_edges;
} mim_meta_spec;

// Why a sample is not classified (all negative, distinct from buckets).
enum {
    MIM_META_REJECTED = -1,   // a filter condition is false
    MIM_META_NO_FIELD = -2,   // a filter or bucket field is absent, null or not a number
    MIM_META_BAD_JSON = -3,   // not valid JSON, not an object, or over MIM_META_JSON_MAX
};

void mim_meta_spec_init(mim_meta_spec* m);
// Parse and append filter conditions. MIM_EARG with a message naming the
// condition at fault.
int mim_meta_parse_filter(mim_meta_spec* m, const char* expr);
// Set the bucket field and its comma-separated ascending edges. MIM_EARG.
int mim_meta_parse_buckets(mim_meta_spec* m, const char* field, const char* edges);
// Groups the spec sorts samples into: n_edges + 1 with buckets, else 1.
int mim_meta_n_groups(const mim_meta_spec* m);
// Canonical text of the spec ("width>=256,height>=256;bucket width:128,256")
// into out (truncated to cap), and a stable 64-bit hash of it (0 for an empty
// spec) recorded in subset files.
void mim_meta_spec_format(const mim_meta_spec* m, char* out, size_t cap);
uint64_t mim_meta_spec_hash(const mim_meta_spec* m);

// Bucket of value v (0 .. n_edges).
int mim_meta_bucket(const mim_meta_spec* m, double v);

// Parse json (n bytes, need not be NUL-terminated) and classify: the bucket
// (0 when the spec has none) when every condition holds, else MIM_META_*.
// Thread-safe (cJSON with the default allocator).
int mim_meta_classify(const mim_meta_spec* m, const uint8_t* json, size_t n);
