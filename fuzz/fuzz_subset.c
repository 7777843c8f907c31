// fuzz_subset.c: libFuzzer target for the subset file reader. Opens the input
// by path (a memfd, see fuzz_file.h) twice: unchecked (no index) and checked
// against the index the seed corpus was drawn from
// (fuzz/corpus/index/train.idx; run from the repository root), where the
// header must match it and every id must be in range and ascending.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
//     fuzz/fuzz_subset.c src/data/subset.c src/data/index.c src/data/tar.c src/data/meta.c \
//     src/core/check.c -o build/fuzz_subset -fopenmp -lcjson -lm
//   build/fuzz_subset -max_total_time=60 fuzz/corpus/subset
#include "core/check.h"
#include "data/subset.h"
#include "fuzz_file.h"
#include <string.h>

static mim_index* ix;

int LLVMFuzzerInitialize(int* argc, char*** argv) {
    const char* p = getenv("FUZZ_SUBSET_INDEX");
    if (mim_index_open(&ix, p ? p : "fuzz/corpus/index/train.idx")) {
        fprintf(stderr, "fuzz_subset: %s (run from the repository root)\n", mim_err_msg());
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    fuzz_file f;
    if (fuzz_file_open(&f, data, n)) return 0;
    for (int checked = 0; checked < 2; checked++) {
        mim_subset* s = NULL;
        int rc = mim_subset_open(&s, f.path, checked ? ix : NULL);
        if (rc) {
            if (rc > 0 || s || !mim_err_msg()[0]) __builtin_trap();
            continue;
        }
        uint64_t k = mim_subset_count(s);
        if (sizeof(mim_subset_header) + k * 8 != n) __builtin_trap();
        const uint64_t* ids = mim_subset_ids(s);
        volatile uint64_t sum = mim_subset_header_get(s)->seed;
        for (uint64_t i = 0; i < k; i++) {
            sum += ids[i];
            if (checked) {   // the contract the loader relies on
                if (ids[i] >= mim_index_count(ix) || (i && ids[i] <= ids[i - 1])) __builtin_trap();
                sum += mim_index_get(ix, ids[i])->size;
            }
        }
        mim_subset_close(s);
    }
    fuzz_file_close(&f);
    return 0;
}
