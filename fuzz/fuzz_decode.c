// fuzz_decode.c: libFuzzer target for the decode + augment path (JPEG, PNG,
// WebP, sniffing, DCT-scaled and row-range decoding, RandomResizedCrop,
// resample). WebP goes through the system libwebp (opened at run time, not
// instrumented): what is fuzzed there is our side of the calls.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
//     fuzz/fuzz_decode.c src/data/decode.c src/data/augment.c src/core/rng.c \
//     src/core/check.c -o build/fuzz_decode -ljpeg -lpng -lm
//   build/fuzz_decode -max_total_time=60 -rss_limit_mb=1024 fuzz/corpus/decode
#include "data/augment.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    static mim_aug_scratch* s;
    if (!s && mim_aug_scratch_init(&s, 4 * 1024 * 1024) != 0) abort();   // 4 MPix cap keeps runs fast
    static float out[3 * 24 * 24];
    mim_transform t;
    int ch = n && (data[n - 1] & 1) ? 1 : 3;
    mim_transform_default(&t, ch, 24, 24, n && (data[0] & 1));
    t.dct_scale = n > 1 && (data[1] & 2);
    mim_rng r; mim_rng_seed(&r, n);
    mim_transform_apply(&t, s, data, n, &r, out, NULL);
    return 0;
}
