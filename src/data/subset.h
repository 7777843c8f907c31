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
//               never chosen. With a bucket field (opts.meta.bucket_field,
//               e.g. width with edges 128,256,512) the groups are metadata
//               buckets read from each sample's key.json instead of labels.
//   filter      `random` restricted to the samples whose key.json satisfies
//               opts.meta's conditions (e.g. width>=256,height>=256): the k
//               smallest ranks among those that pass, so nested as well.
//               Conditions may also restrict `random`, `first` and
//               `stratified`; `filter` is `random` that insists on them.
//
// Metadata (filter conditions, buckets) comes from the key.json members in
// the shards, located through the index's json table (index format 2). One
// parallel pass reads and parses every sample's json (about 0.5 KB each) and
// keeps one byte per sample (its bucket, or "excluded"): N bytes of memory,
// 700 MB for 700M samples; the selection passes then run as without metadata.
//
// Selection needs no O(N) memory: one histogram pass over the ranks, one pass
// collecting the few candidates in each boundary bin, one pass streaming ids
// out (ascending) to every requested size at once. Memory is O(bins +
// candidates); output is written straight to the files.
//
// Subset file (little endian): mim_subset_header (64 bytes) then n uint64
// sample ids in ascending order. It records the size of the index it was
// drawn from and its content hash (data/index.h: keys, sizes and labels of
// every sample), so opening it against another index fails, even one with
// the same counts (the same images packed in another order); and a hash of
// the metadata spec that selected it (0 for none).
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "data/index.h"
#include "data/meta.h"

#define MIM_SUBSET_MAGIC "MIMSUB\0\1"

typedef enum { MIM_SUBSET_RANDOM = 0, MIM_SUBSET_FIRST = 1, MIM_SUBSET_STRATIFIED = 2, MIM_SUBSET_FILTER = 3 } mim_subset_strategy;

typedef struct {
    char magic[8];
    uint32_t version, strategy;
    uint64_t seed;
    uint64_t n;                 // ids that follow
    uint64_t index_n_samples;   // count of the index it was drawn from
    uint64_t index_n_shards;
    uint64_t spec_hash;         // mim_meta_spec_hash of the metadata spec, 0 if none
    uint64_t index_hash;        // mim_index_content_hash of that index (0: an older file, counts only)
} mim_subset_header;

// Parse "random" | "first" | "stratified" | "filter". Returns MIM_OK or MIM_EARG.
int mim_subset_strategy_parse(const char* s, mim_subset_strategy* out);
const char* mim_subset_strategy_name(mim_subset_strategy s);
// The one naming rule of subset files, used by `mimscale subset` and the
// study runner: "<prefix>-<strategy>[-<spec>]-s<seed>-<size>.sub" (spec: the
// filter / bucket slug, "" or NULL for none). Returns snprintf's length.
int mim_subset_path(char* buf, size_t cap, const char* prefix, const char* strategy, const char* spec, uint64_t seed, uint64_t size);

// Rank of a sample under seed (the random order of the `random` strategy).
uint64_t mim_subset_rank(uint64_t seed, uint64_t key_hash);

// Write one subset file per size (sizes in any order; out_paths[i] for
// sizes[i]). MIM_EARG if a size exceeds the eligible samples or the strategy
// is stratified and the index has no labels.
int mim_subset_make(const mim_index* ix, mim_subset_strategy strategy, uint64_t seed,
                    const uint64_t* sizes, size_t n_sizes, char* const* out_paths);

typedef struct {
    const mim_meta_spec* meta;   // filter conditions / bucket field, or NULL
    int n_threads;               // metadata pass (<= 0: OpenMP default)
    int progress;                // 1: progress line on stderr; 0: quiet; -1: only on a tty
} mim_subset_opts;

// What the selection saw (the metadata counts are per sample, not fatal).
typedef struct {
    uint64_t eligible;           // samples the strategy could choose from
    uint64_t no_json;            // no key.json member
    uint64_t bad_json;           // key.json not a JSON object
    uint64_t no_field;           // a filter/bucket field absent, null or not a number
    uint64_t rejected;           // a filter condition false
    uint64_t read_errors;        // key.json could not be read from its shard
    uint64_t group_count[MIM_META_MAX_EDGES + 1];   // eligible per bucket (bucket-stratified)
    int n_groups;
    double meta_seconds;         // time of the metadata pass
} mim_subset_stats;

// mim_subset_make with metadata. MIM_EARG for a spec that does not fit the
// strategy (filter without conditions, buckets without stratified) or an
// index without key.json locations (format 1: rebuild it). st may be NULL;
// it is filled (up to the failure) even when a size exceeds the eligible
// samples, so the caller can say why.
int mim_subset_make_ex(const mim_index* ix, mim_subset_strategy strategy, uint64_t seed,
                       const uint64_t* sizes, size_t n_sizes, char* const* out_paths,
                       const mim_subset_opts* opts, mim_subset_stats* st);

// One-line summary of st ("eligible 812/1000; excluded: 3 no key.json, ...").
void mim_subset_stats_format(const mim_subset_stats* st, uint64_t n_index, char* out, size_t cap);

typedef struct mim_subset mim_subset;

// Map a subset file; when ix is non-NULL check that it was drawn from an
// index of the same size and that every id is in range and ascending.
int mim_subset_open(mim_subset** out, const char* path, const mim_index* ix);
void mim_subset_close(mim_subset* s);
uint64_t mim_subset_count(const mim_subset* s);
const uint64_t* mim_subset_ids(const mim_subset* s);   // ascending
const mim_subset_header* mim_subset_header_get(const mim_subset* s);
