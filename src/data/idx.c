// idx.c: IDX reader (see idx.h). zlib's gz* functions read plain and gzip
// files alike.
#include "data/idx.h"
#include "core/check.h"
#include <errno.h>
#include <string.h>
#include <zlib.h>

static int read_exact(gzFile f, void* buf, size_t n, const char* path) {
    uint8_t* p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) return mim_err(MIM_EFORMAT, "%s: truncated IDX file", path);
        p += got; n -= (size_t)got;
    }
    return 0;
}

// Reads exactly n bytes into a buffer that grows with the data actually read
// (doubling from 1 MB), so a header claiming more than the file holds fails
// as truncated after at most twice the real data, not with a huge malloc.
// gzip inflates up to ~1000x, so the file size alone would not bound n.
static int read_grown(gzFile f, uint8_t** out, size_t n, const char* path) {
    size_t cap = n < ((size_t)1 << 20) ? n : ((size_t)1 << 20), got = 0;
    uint8_t* buf = mim_malloc(cap ? cap : 1);
    if (!buf) return MIM_ENOMEM;
    while (got < n) {
        if (got == cap) {
            size_t nc = cap > n / 2 ? n : 2 * cap;
            uint8_t* nb = realloc(buf, nc);
            if (!nb) { free(buf); return mim_err(MIM_ENOMEM, "%s: out of memory (%zu bytes)", path, nc); }
            buf = nb; cap = nc;
        }
        int rc = read_exact(f, buf + got, cap - got, path);
        if (rc) { free(buf); return rc; }
        got = cap;
    }
    *out = buf;
    return 0;
}

static uint32_t be32(const uint8_t* b) { return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]; }

// Reads the header of an unsigned-byte IDX file with `ndim` dims into dims.
static int read_header(gzFile f, const char* path, int ndim, uint32_t* dims) {
    uint8_t h[4 + 4 * 3];
    int rc = read_exact(f, h, 4 + 4 * (size_t)ndim, path);
    if (rc) return rc;
    if (h[0] || h[1] || h[2] != 0x08 || h[3] != ndim)
        return mim_err(MIM_EFORMAT, "%s: not an unsigned-byte IDX file with %d dims (magic %02x%02x%02x%02x)",
                       path, ndim, h[0], h[1], h[2], h[3]);
    for (int i = 0; i < ndim; i++) dims[i] = be32(h + 4 + 4 * i);
    return 0;
}

int mim_idx_load(mim_idx* out, const char* images_path, const char* labels_path) {
    memset(out, 0, sizeof *out);
    gzFile f = gzopen(images_path, "rb");
    if (!f) return mim_err(MIM_EIO, "cannot open %s: %s", images_path, strerror(errno ? errno : ENOENT));
    uint32_t d[3];
    int rc = read_header(f, images_path, 3, d);
    if (rc) { gzclose(f); return rc; }
    if (d[0] == 0 || d[1] == 0 || d[2] == 0 || d[1] > 65536 || d[2] > 65536 || d[0] > (1u << 28)) {
        gzclose(f);
        return mim_err(MIM_EFORMAT, "%s: implausible dimensions %u x %u x %u", images_path, d[0], d[1], d[2]);
    }
    size_t n;
    if (!mim_mul_ok((size_t)d[0], (size_t)d[1] * d[2], &n)) { gzclose(f); return mim_err(MIM_EFORMAT, "%s: size overflow", images_path); }
    out->n = d[0]; out->h = (int)d[1]; out->w = (int)d[2];
    rc = read_grown(f, &out->pixels, n, images_path);
    gzclose(f);
    if (rc) { mim_idx_free(out); return rc; }
    if (!labels_path) return 0;

    f = gzopen(labels_path, "rb");
    if (!f) { mim_idx_free(out); return mim_err(MIM_EIO, "cannot open %s: %s", labels_path, strerror(errno ? errno : ENOENT)); }
    rc = read_header(f, labels_path, 1, d);
    if (!rc && d[0] != (uint32_t)out->n)
        rc = mim_err(MIM_EFORMAT, "%s: %u labels for %lld images", labels_path, d[0], (long long)out->n);
    uint8_t* raw = rc ? NULL : mim_malloc((size_t)out->n);
    if (!rc && !raw) rc = MIM_ENOMEM;
    if (!rc) rc = read_exact(f, raw, (size_t)out->n, labels_path);
    gzclose(f);
    if (!rc) {
        out->labels = mim_malloc(sizeof(int32_t) * (size_t)out->n);
        if (!out->labels) rc = MIM_ENOMEM;
        else for (int64_t i = 0; i < out->n; i++) out->labels[i] = raw[i];
    }
    free(raw);
    if (rc) mim_idx_free(out);
    return rc;
}

int mim_idx_peek(const char* images_path, int64_t* n, int* h, int* w) {
    gzFile f = gzopen(images_path, "rb");
    if (!f) return mim_err(MIM_EIO, "cannot open %s: %s", images_path, strerror(errno ? errno : ENOENT));
    uint32_t d[3];
    int rc = read_header(f, images_path, 3, d);
    gzclose(f);
    if (rc) return rc;
    if (d[1] > 65536 || d[2] > 65536 || d[0] > (1u << 28))
        return mim_err(MIM_EFORMAT, "%s: implausible dimensions %u x %u x %u", images_path, d[0], d[1], d[2]);
    *n = d[0]; *h = (int)d[1]; *w = (int)d[2];
    return 0;
}

int mim_idx_load_dir(mim_idx* out, const char* dir, const char* split) {
    char ip[4096], lp[4096];
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    return mim_idx_load(out, ip, lp);
}

void mim_idx_free(mim_idx* d) {
    free(d->pixels); free(d->labels);
    memset(d, 0, sizeof *d);
}
