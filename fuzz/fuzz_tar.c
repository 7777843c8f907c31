// fuzz_tar.c: libFuzzer target for the tar reader and webdataset grouping.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
//     fuzz/fuzz_tar.c src/data/tar.c src/core/check.c -o build/fuzz_tar
//   build/fuzz_tar -max_total_time=60 fuzz/corpus/tar
#include "data/tar.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    mim_tar* t;
    if (mim_tar_open_mem(&t, data, n) != 0) return 0;
    static mim_wds_sample s;
    uint8_t buf[64];
    int rc, guard = 0;
    while ((rc = mim_wds_next(t, &s)) > 0 && guard++ < 100000) {
        if (s.img_format != MIM_IMG_NONE && s.img_size) {
            size_t k = s.img_size < sizeof buf ? (size_t)s.img_size : sizeof buf;
            if (mim_tar_pread(t, s.img_off, buf, k) != 0) abort();   // in bounds by contract
        }
    }
    mim_tar_close(t);
    return 0;
}
