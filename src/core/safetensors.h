// safetensors.h: reading and writing the safetensors format
// (https://github.com/huggingface/safetensors): 8-byte little-endian header
// length N, N bytes of JSON {"name": {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]}, ..., "__metadata__": {"k": "v", ...}},
// then the raw little-endian tensor bytes.
//
// The reader treats the file as untrusted: every size and offset is bounds-
// and overflow-checked, offsets must lie inside the data section, and
// malformed input gives MIM_EFORMAT with a one-line reason (mim_err_msg()),
// never a crash. The writer is atomic: it writes PATH.tmp.<pid>, fsyncs it,
// renames it over PATH and fsyncs the directory, so PATH is always either
// the old complete file or the new complete file.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { MIM_F32 = 0, MIM_F16, MIM_BF16, MIM_F64, MIM_I64, MIM_I32, MIM_I16, MIM_I8, MIM_U8, MIM_BOOL } mim_dtype;
#define MIM_ST_MAX_DIMS 8

// Bytes per element of a dtype.
size_t mim_dtype_size(mim_dtype t);
// "F32", "BF16", ... as in the safetensors header.
const char* mim_dtype_name(mim_dtype t);

typedef struct {
    const char* name;          // owned by the file handle
    mim_dtype dtype;
    int ndim;
    int64_t shape[MIM_ST_MAX_DIMS];
    size_t numel;              // product of shape (1 for a scalar)
    size_t nbytes;             // numel * dtype size (= end - begin)
    const void* data;          // points into the loaded file; may be unaligned
} mim_st_tensor;

typedef struct mim_st mim_st;  // an opened file

// Opens and validates PATH (read fully into memory). 0 or negative MIM_E*.
int mim_st_open(mim_st** out, const char* path);
// Same, from a caller buffer (copied); used by tests and fuzzing.
int mim_st_open_mem(mim_st** out, const void* buf, size_t len);
void mim_st_close(mim_st* st);

int mim_st_count(const mim_st* st);
const mim_st_tensor* mim_st_get(const mim_st* st, int i);        // in file order
const mim_st_tensor* mim_st_find(const mim_st* st, const char* name);   // NULL if absent
// A __metadata__ value, or NULL if absent.
const char* mim_st_meta(const mim_st* st, const char* key);

// Copies tensor NAME into dst as fp32, converting from F32, F16, BF16 or F64,
// after checking that its shape equals shape[0..ndim). Returns MIM_ENOTFOUND
// (absent), MIM_ESHAPE (shape or dtype mismatch, reason names both shapes).
int mim_st_read_f32(const mim_st* st, const char* name, float* dst, int ndim, const int64_t* shape);

typedef struct {
    const char* name;
    mim_dtype dtype;
    int ndim;
    int64_t shape[MIM_ST_MAX_DIMS];
    const void* data;          // numel * dtype size bytes
} mim_st_entry;

// Writes the tensors (in the given order, 8-byte aligned data section) and
// metadata pairs meta[2*i] = key, meta[2*i+1] = value (n_meta pairs) to PATH
// atomically (see above). Returns 0 or MIM_EIO / MIM_EARG.
int mim_st_write(const char* path, const mim_st_entry* entries, int n,
                 const char* const* meta, int n_meta);
