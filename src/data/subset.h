// subset.h: subsets of an index for data-scaling studies, and the file that
// stores one.
//
// Strategies:
//   random      every sample gets a rank = mix(seed, key_hash); the subset of
//               size k is the k smallest (rank, sample id). So subsets of one
//               seed are nested (smaller in larger), deterministic, and depend
//               on the sample keys only: re-indexing the shards in another
//               order selects the same images.
//   first       samples [0, k): a shard-contiguous prefix, the cheap way.
//   stratified  per label, the smallest-rank samples; the per-label quota is
//               water-filled (equal shares; a label with too few samples
//               gives its surplus to the others; a remainder of r goes to the
//               first r labels by id). Quotas grow monotonically with k, so
//               stratified subsets are nested too. Unlabelled samples are
//               never chosen.
//
// Selection needs no O(N) memory: one histogram pass over the ranks, one pass
// collecting the few candidates in each boundary bin, one pass streaming ids
// out (ascending) to every requested size at once. Memory is O(bins +
// candidates); output is written straight to the files.
//
// Subset file (little endian): mim_subset_header (64 bytes) then n uint64
// sample ids in ascending order. It records the size of the index it was
// drawn from; opening it against another index fails.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "data/index.h"

#define MIM_SUBSET_MAGIC "MIMSUB\0\1"

typedef enum { MIM_SUBSET_RANDOM = 0, MIM_SUBSET_FIRST = 1, MIM_SUBSET_STRATIFIED = 2 } mim_subset_strategy;

typedef struct {
    char magic[8];
    uint32_t version, strategy;
    uint64_t seed;
    uint64_t n;                 // ids that follow
    uint64_t index_n_samples;   // count of the index it was drawn from
    uint64_t index_n_shards;
    uint8_t reserved[16];
} mim_subset_header;

// Parse "random" | "first" | "stratified". Returns MIM_OK or MIM_EARG.
int mim_subset_strategy_parse(const char* s, mim_subset_strategy* out);
const char* mim_subset_strategy_name(mim_subset_strategy s);

// Rank of a sample under seed (the random order of the `random` strategy).
uint64_t mim_subset_rank(uint64_t seed, uint64_t key_hash);

// Write one subset file per size (sizes in any order; out_paths[i] for
// sizes[i]). MIM_EARG if a size exceeds the eligible samples or the strategy
// is stratified and the index has no labels.
int mim_subset_make(const mim_index* ix, mim_subset_strategy strategy, uint64_t seed,
                    const uint64_t* sizes, size_t n_sizes, char* const* out_paths);

typedef struct mim_subset mim_subset;

// Map a subset file; when ix is non-NULL check that it was drawn from an
// index of the same size and that every id is in range and ascending.
int mim_subset_open(mim_subset** out, const char* path, const mim_index* ix);
void mim_subset_close(mim_subset* s);
uint64_t mim_subset_count(const mim_subset* s);
const uint64_t* mim_subset_ids(const mim_subset* s);   // ascending
const mim_subset_header* mim_subset_header_get(const mim_subset* s);
