// check.h: the three error tiers of mimscale.
//  1. Programming errors (shape mismatch, broken invariant): CHECK(cond)
//     prints file:line and aborts. Never used on untrusted input.
//  2. Setup errors (cannot open, bad magic, out of memory): library functions
//     return a negative MIM_E* code and leave a reason readable with
//     mim_err_msg() (per thread); the CLI prints it and exits non-zero.
//  3. Per-sample data errors: readers return an error code, the loader skips
//     and counts the sample.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond) do { if (!(cond)) { \
    fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    abort(); } } while (0)

enum {
    MIM_OK = 0,
    MIM_EIO = -1,       // open/read/write/fsync/rename failed
    MIM_EFORMAT = -2,   // malformed or unexpected file content
    MIM_ENOMEM = -3,    // allocation failed or size overflowed
    MIM_EARG = -4,      // bad argument or configuration value
    MIM_ESHAPE = -5,    // tensor present but with the wrong shape/dtype
    MIM_ENOTFOUND = -6, // named thing (tensor, model, file) absent
    MIM_EDATA = -7,     // too little usable data: more samples lost than allowed (--max-skip-frac)
};

// Sets the calling thread's error message (printf-style) and returns `code`,
// so that `return mim_err(MIM_EIO, "cannot open %s", p);` reads naturally.
int mim_err(int code, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// The last message set on this thread ("" if none).
const char* mim_err_msg(void);

// Allocation helpers for setup code: abort-free, overflow-checked.
// Return NULL (and set the error) on failure.
void* mim_malloc(size_t n);
void* mim_calloc(size_t count, size_t size);
// a * b into *out; returns 0 on overflow.
static inline int mim_mul_ok(size_t a, size_t b, size_t* out) {
    return !__builtin_mul_overflow(a, b, out);
}
