// fuzz_index.c: libFuzzer target for the sample index reader (mmap, header
// and section validation, shard table, records, json table, class list). Opens the input
// by path (a memfd, see fuzz_file.h) and, when accepted, walks every shard
// and record through the public getters.
//   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
//     fuzz/fuzz_index.c src/data/index.c src/data/tar.c src/core/check.c -o build/fuzz_index -fopenmp
//   build/fuzz_index -max_total_time=60 fuzz/corpus/index
#include "core/check.h"
#include "data/index.h"
#include "fuzz_file.h"
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
    fuzz_file f;
    if (fuzz_file_open(&f, data, n)) return 0;
    mim_index* ix = NULL;
    int rc = mim_index_open(&ix, f.path);
    if (rc) {
        if (rc > 0 || ix || !mim_err_msg()[0]) __builtin_trap();
        fuzz_file_close(&f);
        return 0;
    }
    uint64_t N = mim_index_count(ix), S = mim_index_n_shards(ix);
    if (N * sizeof(mim_index_record) > n || mim_index_shard_first(ix, (uint32_t)S) != N) __builtin_trap();
    volatile size_t sum = 0;
    for (uint32_t s = 0; s < S; s++) {
        sum += strlen(mim_index_shard_path(ix, s));
        if (mim_index_shard_first(ix, s) > mim_index_shard_first(ix, s + 1)) __builtin_trap();
    }
    for (uint64_t i = 0; i < N; i++) {
        const mim_index_record* r = mim_index_get(ix, i);
        sum += r->size + r->shard;
        uint64_t off; uint32_t sz;
        if (mim_index_json_get(ix, i, &off, &sz)) sum += off + sz;
    }
    size_t cl = 0;
    const char* classes = mim_index_classes(ix, &cl);   // format 3: the class list ends the file
    if (classes) {
        if (cl == 0 || cl > n || classes < (const char*)mim_index_header_get(ix) ||
            classes + cl > (const char*)mim_index_header_get(ix) + n) __builtin_trap();
        for (size_t i = 0; i < cl; i++) sum += (unsigned char)classes[i];
    }
    if (mim_index_content_hash(ix) == 0) __builtin_trap();
    char line[1024];
    mim_index_stats_format(&mim_index_header_get(ix)->stats, line, sizeof line);
    mim_index_close(ix);
    fuzz_file_close(&f);
    return 0;
}
