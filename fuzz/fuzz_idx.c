// fuzz_idx.c: libFuzzer target for the IDX reader (MNIST / Fashion-MNIST
// images + labels, plain or gzip). Input: byte 0 bit 0 = a labels file
// follows, bytes 1-2 = its length k (little endian, clamped); the labels
// file is the last k bytes, the images file the bytes between. Each goes
// through mim_idx_load by path (a memfd, see fuzz_file.h).
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
//     fuzz/fuzz_idx.c src/data/idx.c src/core/check.c -o build/fuzz_idx -lz
//   build/fuzz_idx -max_total_time=60 fuzz/corpus/idx
#include "core/check.h"
#include "data/idx.h"
#include "fuzz_file.h"
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    if (n < 3) return 0;
    int with_labels = data[0] & 1;
    size_t k = (size_t)data[1] | (size_t)data[2] << 8;
    if (k > n - 3) k = n - 3;
    if (!with_labels) k = 0;
    fuzz_file img, lab;
    if (fuzz_file_open(&img, data + 3, n - 3 - k)) return 0;
    if (with_labels && fuzz_file_open(&lab, data + n - k, k)) { fuzz_file_close(&img); return 0; }
    mim_idx d;
    int rc = mim_idx_load(&d, img.path, with_labels ? lab.path : NULL);
    if (rc) {
        if (rc > 0 || d.pixels || d.labels || !mim_err_msg()[0]) __builtin_trap();   // errors explain themselves, leave nothing
    } else {
        if (d.n < 1 || d.h < 1 || d.w < 1 || !d.pixels || (with_labels != (d.labels != NULL))) __builtin_trap();
        volatile uint32_t sum = 0;
        for (size_t i = 0; i < (size_t)d.n * d.h * d.w; i++) sum += d.pixels[i];
        for (int64_t i = 0; d.labels && i < d.n; i++)
            if (d.labels[i] < 0 || d.labels[i] > 255) __builtin_trap();
        mim_idx_free(&d);
    }
    fuzz_file_close(&img);
    if (with_labels) fuzz_file_close(&lab);
    return 0;
}
