// fuzz_meta.c: libFuzzer target for the key.json metadata path: filter and
// bucket parsing (the first line of the input) and classification of the
// rest as a key.json member (cJSON, dotted paths, number checks).
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
//     fuzz/fuzz_meta.c src/data/meta.c src/core/check.c -o build/fuzz_meta -lcjson -lm
//   build/fuzz_meta -max_total_time=60 fuzz/corpus/meta
#include "data/meta.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    const uint8_t* nl = memchr(data, '\n', n);
    size_t L = nl ? (size_t)(nl - data) : n;
    char* expr = malloc(L + 1);
    if (!expr) return 0;
    memcpy(expr, data, L);
    expr[L] = 0;
    mim_meta_spec m;
    mim_meta_spec_init(&m);
    char* bar = strchr(expr, '|');   // "FILTER|FIELD|EDGES" exercises the bucket parser too
    if (bar) {
        *bar = 0;
        char* bar2 = strchr(bar + 1, '|');
        if (bar2) { *bar2 = 0; mim_meta_parse_buckets(&m, bar + 1, bar2 + 1); }
    }
    if (*expr) mim_meta_parse_filter(&m, expr);
    char canon[256];
    mim_meta_spec_format(&m, canon, sizeof canon);
    (void)mim_meta_spec_hash(&m);
    const uint8_t* js = nl ? nl + 1 : data + n;
    int g = mim_meta_classify(&m, js, (size_t)(data + n - js));
    if (g >= 0 && g > m.n_edges) abort();   // a bucket is always in range
    free(expr);
    return 0;
}
