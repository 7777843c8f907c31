// check.c: per-thread error messages and checked allocation (see check.h).
#include "core/check.h"
#include <stdarg.h>
#include <string.h>

static _Thread_local char mim__errbuf[1024];

int mim_err(int code, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(mim__errbuf, sizeof mim__errbuf, fmt, ap);
    va_end(ap);
    return code;
}

const char* mim_err_msg(void) { return mim__errbuf; }

void* mim_malloc(size_t n) {
    void* p = malloc(n ? n : 1);
    if (!p) mim_err(MIM_ENOMEM, "out of memory allocating %zu bytes", n);
    return p;
}

void* mim_calloc(size_t count, size_t size) {
    size_t n;
    if (!mim_mul_ok(count, size, &n)) {
        mim_err(MIM_ENOMEM, "allocation size overflow (%zu x %zu)", count, size);
        return NULL;
    }
    void* p = calloc(count ? count : 1, size ? size : 1);
    if (!p) mim_err(MIM_ENOMEM, "out of memory allocating %zu bytes", n);
    return p;
}
