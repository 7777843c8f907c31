// fuzz_safetensors.c: libFuzzer target for the safetensors reader. Opens the
// input with mim_st_open_mem and, when it is accepted, touches every tensor
// (all bytes via mim_st_read_f32 for float dtypes, a checksum otherwise) and
// checks the handle's invariants. Not part of the Makefile; build with
//   clang -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Isrc \
//     fuzz/fuzz_safetensors.c src/core/safetensors.c src/core/fault.c src/core/check.c -lcjson -lm
// and run with a seed corpus: ./a.out fuzz/corpus/safetensors -max_total_time=60
#include "core/check.h"
#include "core/safetensors.h"

#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t* buf, size_t len) {
    mim_st* st = NULL;
    int rc = mim_st_open_mem(&st, buf, len);
    if (rc) {
        if (rc > 0 || st || !mim_err_msg()[0]) __builtin_trap(); // errors must explain themselves
        return 0;
    }
    volatile uint8_t sum = 0;
    size_t covered = 0;
    for (int i = 0; i < mim_st_count(st); i++) {
        const mim_st_tensor* t = mim_st_get(st, i);
        if (mim_st_find(st, t->name) != t || t->nbytes != t->numel * mim_dtype_size(t->dtype)) __builtin_trap();
        covered += t->nbytes;
        if (t->dtype == MIM_F32 || t->dtype == MIM_F16 || t->dtype == MIM_BF16 || t->dtype == MIM_F64) {
            float* dst = malloc(t->numel * sizeof *dst + 1);
            if (!dst || mim_st_read_f32(st, t->name, dst, t->ndim, t->shape)) __builtin_trap();
            for (size_t k = 0; k < t->numel; k++) sum ^= ((const uint8_t*)&dst[k])[0];
            free(dst);
        } else {
            for (size_t k = 0; k < t->nbytes; k++) sum ^= ((const uint8_t*)t->data)[k];
        }
    }
    if (covered > len) __builtin_trap(); // tensors tile the data section
    (void)mim_st_meta(st, "format");
    mim_st_close(st);
    return 0;
}
