// tcache.h: a frozen teacher's features kept per sample in one file, for
// pre-training runs without augmentation (--augment=0), where a sample's
// image, hence its teacher tokens, is the same in every epoch and every run.
// The first epoch computes and stores each sample's tokens; later epochs and
// later runs on the same data read them back instead of running the teacher.
//
// File layout (native little-endian; offsets 4096-aligned):
//   0            "MIMTFC1\n", then a mim_tcache_header (below), then the key
//                text (key_len bytes): what the features depend on (teacher
//                file and layer, data, geometry, normalisation), compared at
//                open
//   state_off    n uint32: 0 = not yet cached, else (hash of the sample's
//                L x D floats) | 1, so a torn or damaged record is caught
//   feat_off     n records of L x D float32 (sample id-major); the file is
//                created sparse at full size and fills as samples are seen
// A sample's features are written before its state word, so a crash leaves
// at worst a sample that is recomputed. Ranks of an MPI job share the file:
// each writes whole records and state words (two ranks writing one sample
// write the same bytes), and a rank whose in-memory state says "not cached"
// reads the state word from the file first, so a sample another rank stored
// in an earlier step is read, not recomputed. Records with a non-finite value
// are never stored.
//
// Bits: a batch that mixes cached and uncached samples runs the teacher on
// the uncached ones only, a smaller batch, whose sgemm may round the last
// bit differently; all-hit and all-miss batches give exactly the features
// of mim_teacher_forward on the whole batch.
//
// Errors: a file that is not a cache, is truncated, or was built for another
// key/shape is refused at open (MIM_EFORMAT / MIM_EARG, message names the
// first differing key field); it is never overwritten. A failed write during
// the run (full disk, EIO) warns once and the run goes on computing without
// caching; a failed read or a record whose hash does not match is recomputed
// (counted as `bad`) and rewritten.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "model/teacher.h"

typedef struct {
    uint32_t version, key_len;
    int64_t n;                   // samples (the data set's id space)
    uint32_t L, D;               // tokens per sample, width
    uint64_t state_off, feat_off;
} mim_tcache_header;

typedef struct {
    int fd;
    char* path;
    mim_tcache_header h;
    uint32_t* state;      // (n) in memory; written through
    float* miss_imgs;     // (B, img_floats) the batch's uncached images
    float* miss_feats;    // (B, L, D) their teacher tokens
    int* miss_slot;       // (B) batch slot of each miss
    int max_batch;
    size_t img_floats;
    int write_ok;         // 0 after a failed write: compute on, store no more
    int shared;           // several ranks use the file: re-read state words on a miss
    uint64_t hits, computed, written, bad;
} mim_tcache;

// What the features depend on, as "name=value; ..." text for the header.
// Files are named by their real path, size and mtime. 0 or MIM_EIO naming
// the file that cannot be read.
int mim_tcache_key(char* out, size_t cap, const char* teacher_path, int layer, const char* data_path,
                   const char* split, int C, int H, int W, const float mean[3], const float std[3]);

// Opens path, creating it (sparse, n records of L x D floats) when absent.
// rank 0 creates; with several ranks the others wait at a barrier, so every
// rank must call this. max_batch and img_floats size the miss buffers.
// 0 or a negative MIM_E* code with mim_err_msg().
int mim_tcache_open(mim_tcache* c, const char* path, const char* key, int64_t n, int L, int D,
                    int max_batch, size_t img_floats);

// feats (B, L, D) for imgs (B, img_floats) whose sample ids are ids (B);
// an id < 0 (an empty loader slot) is computed and not stored. Runs the
// teacher (block `layer`, as mim_teacher_forward) on the uncached samples
// only, as one batch.
void mim_tcache_features(mim_tcache* c, mim_teacher* t, float* feats, const float* imgs, const int64_t* ids,
                         int B, int layer);

// "teacher cache F: H read, C computed (W stored), X bad; K of N samples cached"
// (this rank's counts; sum them over ranks with mim_tcache_sum_ranks first).
void mim_tcache_format(const mim_tcache* c, char* out, size_t cap);
// Sums the counters over the ranks of an MPI job (every rank must call) and
// re-reads the state words, so the cached count covers every rank's writes.
void mim_tcache_sum_ranks(mim_tcache* c);
void mim_tcache_close(mim_tcache* c);
