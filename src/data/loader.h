// loader.h: the threaded data loader of pre-training. Worker threads read
// samples through the index, decode and augment them into a ring of batch
// buffers while the model computes; the training loop takes one batch at a
// time.
//
//     mim_loader_config cfg;
//     mim_loader_config_default(&cfg);
//     cfg.index_path = "data.idx"; cfg.subset_path = "data-random-1000000.sub";
//     cfg.batch_size = 256; cfg.channels = 3; cfg.height = cfg.width = 224;
//     cfg.seed = 0; cfg.rank = rank; cfg.world = world; cfg.n_threads = 8;
//     mim_loader* L;
//     if (mim_loader_open(&L, &cfg) < 0) die("%s", mim_err_msg());
//     mim_loader_set_position(L, ckpt_pos);           // on resume
//     for (step...) {
//         mim_loader_next(L, imgs, labels);           // imgs (B, C, H, W), labels (B)
//         mim_loader_pos pos = mim_loader_get_position(L);   // save with the checkpoint
//     }
//     mim_loader_counters c = mim_loader_get_counters(L);    // log skips
//     mim_loader_close(L);
//
// Order. The M samples (subset, or the whole index) are permuted once per
// epoch by a keyed bijection of [0, M) (a Feistel network, O(1) memory, so
// 700M samples cost nothing) keyed by (seed, epoch). The permutation is cut
// into micro-batches of B positions; micro-batch j goes to rank j % world,
// so rank r's local item t is position (t / B * world + r) * B + t % B (see
// mim_rank_position). Rank r's k-th batch is therefore exactly the
// micro-batch k * world + r of one process with the same B: N ranks x batch B
// see the same batches, in the same order of micro-batches, as one process
// with --accum N. Ranks see disjoint slices, each M / world samples per epoch
// (the remainder is dropped), cut into batches_per_epoch = (M / world) / B
// batches (drop_last).
// Augmentation randomness is seeded from (seed, epoch, position in the
// permutation): the same seed gives the same bits whatever n_threads is.
//
// Position. mim_loader_pos = (epoch, index): index is the rank-local sample
// index within the epoch of the next batch mim_loader_next returns (a
// multiple of B). Saving it after a step and restoring it with
// mim_loader_set_position continues with the next unseen batch, bit-identical
// to an uninterrupted run.
//
// Bad samples. A sample that cannot be read or decoded (corrupt, truncated,
// too many pixels, unsupported format) is counted and replaced by another
// sample of the same epoch chosen deterministically from its position (up to
// 8 tries; after that the slot is zeros with label -1, counted as
// `unfilled`). Batch boundaries therefore never move. With no_replace (the
// evaluations: a sample must not count twice) a bad sample's slot is left
// empty at once (zeros, label -1, id -1), counted as `left_out`.
//
// How much may be lost. At open every shard the set uses is checked against
// the index (present, at least as long as its last sample's end): a missing
// or truncated shard is an error (MIM_EDATA naming the shard and the fix)
// unless max_skip_frac allows the samples it holds. While running, the
// counters record every failed read; mim_loader_counters_check turns them
// into a verdict the trainers and evaluations apply. The rule, "--max-skip-
// frac": 0 (the default) allows no unreadable shard and at most 1% of sample
// reads failed; F > 0 allows up to the fraction F of samples lost, in
// unreadable shards and failed reads alike. No usable sample at all is
// always an error. Setup errors (index or subset unreadable, bad config) are
// returned by mim_loader_open.
#pragma once
#include <stddef.h>
#include <stdint.h>

// Position in the epoch's order of rank `rank`'s local item t, for batch B
// and `world` ranks: micro-batch t / B of the rank is global micro-batch
// (t / B) * world + rank.
static inline uint64_t mim_rank_position(uint64_t t, uint64_t B, uint64_t rank, uint64_t world) {
    return (t / B * world + rank) * B + t % B;
}
#include "data/augment.h"

typedef struct {
    const char* index_path;   // required
    const char* subset_path;  // NULL: every sample of the index
    int batch_size;           // B, per rank
    int channels, height, width;  // model input (C, H, W)
    int augment;              // 1: RandomResizedCrop + flip (train); 0: resize + centre crop
    int shuffle;              // 1 (default): per-epoch permutation; 0: index order
    uint64_t seed;
    int rank, world;          // 0, 1 for a single process
    int n_threads;            // decode workers (>= 1)
    int prefetch;             // batches in the ring (>= 2; default 2 + n_threads / 4)
    const mim_transform* transform;  // NULL: mim_transform_default(C, H, W, augment)
    int no_replace;           // 1: leave a bad sample's slot empty (evaluation), never substitute
    double max_skip_frac;     // the loss allowed (see "How much may be lost"); 0: the default rule
} mim_loader_config;

typedef struct { uint64_t epoch, index; } mim_loader_pos;

// Counts over the batches handed out so far (not those prefetched), so they
// are deterministic; they restart from zero at open (not saved by position).
typedef struct {
    uint64_t samples;       // slots filled with a good sample
    uint64_t read_errors;   // shard unreadable / shorter than the index says
    uint64_t decode_errors; // corrupt or truncated image
    uint64_t too_big;       // over the pixel cap
    uint64_t unsupported;   // WebP without libwebp at run time
    uint64_t replaced;      // slots that needed a replacement sample
    uint64_t unfilled;      // slots left zero after 8 failed replacements
    uint64_t left_out;      // no_replace: slots left empty because their sample was bad
} mim_loader_counters;
#define MIM_LOADER_NCOUNTERS 8   // uint64 fields above, in order (summed over ranks as an array)

// The fraction of sample reads allowed to fail under the default rule.
#define MIM_DEFAULT_SKIP_FRAC 0.01

typedef struct mim_loader mim_loader;

void mim_loader_config_default(mim_loader_config* cfg);

// Opens the index (and subset), validates the config and starts the workers
// at position (0, 0). Returns MIM_OK or a negative code with mim_err_msg().
int mim_loader_open(mim_loader** out, const mim_loader_config* cfg);

// Copy the next batch into imgs (B, C, H, W) and labels (B) (labels may be
// NULL). Blocks until the batch is ready. Returns MIM_OK.
int mim_loader_next(mim_loader* l, float* imgs, int32_t* labels);

// Zero-copy variant: *imgs (B, C, H, W) and *labels (B) stay valid until the
// next call to mim_loader_next / next_lend / set_position / close.
int mim_loader_next_lend(mim_loader* l, const float** imgs, const int32_t** labels);
// The same, plus ids (B): the index sample each slot holds (after any
// replacement of a bad sample), -1 for a slot left empty. ids may be NULL.
int mim_loader_next_ids(mim_loader* l, float* imgs, int32_t* labels, int64_t* ids);
int mim_loader_next_lend_ids(mim_loader* l, const float** imgs, const int32_t** labels, const int64_t** ids);
// Sample ids run over [0, this): the index's sample count (not the subset's).
uint64_t mim_loader_id_space(const mim_loader* l);

// Position of the next batch to be returned; see the note on Position above.
mim_loader_pos mim_loader_get_position(const mim_loader* l);
// Restart the workers at pos (index rounded down to a batch boundary;
// index >= the epoch's length moves to the next epoch). MIM_EARG if the
// position is malformed.
int mim_loader_set_position(mim_loader* l, mim_loader_pos pos);

uint64_t mim_loader_batches_per_epoch(const mim_loader* l);
uint64_t mim_loader_epoch_size(const mim_loader* l);   // samples of the whole set, M
mim_loader_counters mim_loader_get_counters(const mim_loader* l);
// One line for the log: "loader: 12800 samples, skipped 3 (2 corrupt, 1 too big, ...)".
void mim_loader_counters_format(const mim_loader_counters* c, char* out, size_t cap);
// Failed sample reads (corrupt, unreadable, too big, unsupported).
uint64_t mim_loader_counters_failed(const mim_loader_counters* c);
// The verdict on counters summed over a whole run (and every rank): MIM_OK,
// or MIM_EDATA with a message naming `what` ("pretrain", "features eval"),
// the counts, the rule and the fix, when no sample was usable or more
// failed than max_skip_frac allows (the rule above).
int mim_loader_counters_check(const mim_loader_counters* c, double max_skip_frac, const char* what);

void mim_loader_close(mim_loader* l);

// The keyed permutation of [0, n) used for epoch order (exposed for tests).
typedef struct { uint64_t n, half_mask; int half_bits; uint64_t key[4]; } mim_perm;
void mim_perm_init(mim_perm* p, uint64_t n, uint64_t seed, uint64_t epoch);
uint64_t mim_perm_apply(const mim_perm* p, uint64_t i);   // i < n -> distinct value < n
