// safetensors.c: reader and atomic writer for the safetensors format (see
// safetensors.h). The reader loads the whole file, parses the JSON header
// with cJSON and validates it against the data section before handing out
// any pointer; the file must be fully covered by its tensors, without holes
// or overlaps, as the format's reference implementation requires.
// Not here: mmap, lazy loading, streaming, dtypes beyond those of mim_dtype
// (F8_*, U16/U32/U64 are rejected as unknown), big-endian hosts.
#include "core/safetensors.h"
#include "core/check.h"
#include "core/fault.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define MIM__ST_MAX_HEADER ((size_t)100 * 1000 * 1000) // as the reference reader
#define MIM__ST_MAX_INT ((uint64_t)1 << 53)            // JSON numbers are doubles

static const struct { const char* name; size_t size; } mim__dtypes[] = {
    [MIM_F32] = {"F32", 4}, [MIM_F16] = {"F16", 2}, [MIM_BF16] = {"BF16", 2},
    [MIM_F64] = {"F64", 8}, [MIM_I64] = {"I64", 8}, [MIM_I32] = {"I32", 4},
    [MIM_I16] = {"I16", 2}, [MIM_I8] = {"I8", 1},   [MIM_U8] = {"U8", 1},
    [MIM_BOOL] = {"BOOL", 1},
};
#define MIM__NDTYPES ((int)(sizeof mim__dtypes / sizeof mim__dtypes[0]))

static int dtype_ok(mim_dtype t) { return (int)t >= 0 && (int)t < MIM__NDTYPES; }

size_t mim_dtype_size(mim_dtype t) { CHECK(dtype_ok(t)); return mim__dtypes[t].size; }
const char* mim_dtype_name(mim_dtype t) { CHECK(dtype_ok(t)); return mim__dtypes[t].name; }

struct mim_st {
    uint8_t* buf;              // the whole file (len bytes); tensor data points into it
    size_t len;
    cJSON* root;               // parsed header; names and metadata strings live here
    const cJSON* meta;         // the "__metadata__" object, or NULL
    int n;
    mim_st_tensor* t;          // (n) in file order
    const mim_st_tensor** by_name; // (n) sorted by name, for mim_st_find
};

void mim_st_close(mim_st* st) {
    if (!st) return;
    cJSON_Delete(st->root);
    free(st->buf);
    free(st->t);
    free(st->by_name);
    free(st);
}

// ---------------------------------------------------------------------------
// reader

static int cmp_name(const void* a, const void* b) {
    return strcmp((*(const mim_st_tensor* const*)a)->name, (*(const mim_st_tensor* const*)b)->name);
}
static int cmp_str(const void* a, const void* b) {
    return strcmp(*(const char* const*)a, *(const char* const*)b);
}
// Sorts a (n) and returns a string that occurs twice, or NULL.
static const char* sort_find_dup(const char** a, size_t n) {
    qsort(a, n, sizeof *a, cmp_str);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(a[i - 1], a[i])) return a[i];
    return NULL;
}
// Orders by (begin, end) of the data section: data points into one buffer.
static int cmp_extent(const void* a, const void* b) {
    const mim_st_tensor* x = *(const mim_st_tensor* const*)a;
    const mim_st_tensor* y = *(const mim_st_tensor* const*)b;
    const uint8_t *xb = x->data, *yb = y->data;
    if (xb != yb) return xb < yb ? -1 : 1;
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

// A JSON number that is an integer in [0, 2^53], the range doubles hold exactly.
static int json_uint(const cJSON* v, uint64_t* out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= (double)MIM__ST_MAX_INT) || (double)(uint64_t)d != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

// Fills *t from one header entry {"dtype", "shape", "data_offsets"}; data_len
// is the size of the data section that starts at `data`.
static int parse_entry(mim_st_tensor* t, const cJSON* e, const uint8_t* data, size_t data_len) {
    const char* nm = t->name;
    if (!cJSON_IsObject(e)) return mim_err(MIM_EFORMAT, "tensor '%s': entry is not an object", nm);
    const cJSON* dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON* sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON* off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!dt || !sh || !off)
        return mim_err(MIM_EFORMAT, "tensor '%s': missing field '%s'", nm,
                       !dt ? "dtype" : !sh ? "shape" : "data_offsets");
    if (!cJSON_IsString(dt)) return mim_err(MIM_EFORMAT, "tensor '%s': dtype is not a string", nm);
    int k = 0;
    while (k < MIM__NDTYPES && strcmp(dt->valuestring, mim__dtypes[k].name)) k++;
    if (k == MIM__NDTYPES)
        return mim_err(MIM_EFORMAT, "tensor '%s': unknown dtype '%.32s'", nm, dt->valuestring);
    t->dtype = (mim_dtype)k;

    if (!cJSON_IsArray(sh)) return mim_err(MIM_EFORMAT, "tensor '%s': shape is not an array", nm);
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > MIM_ST_MAX_DIMS)
        return mim_err(MIM_EFORMAT, "tensor '%s': %d dims, at most %d supported", nm, ndim, MIM_ST_MAX_DIMS);
    t->ndim = ndim;
    t->numel = 1; // a scalar has shape []
    int i = 0;
    for (const cJSON* d = sh->child; d; d = d->next, i++) {
        uint64_t v;
        if (!json_uint(d, &v))
            return mim_err(MIM_EFORMAT, "tensor '%s': shape[%d] is not an integer in [0, 2^53]", nm, i);
        t->shape[i] = (int64_t)v;
        if (!mim_mul_ok(t->numel, (size_t)v, &t->numel))
            return mim_err(MIM_EFORMAT, "tensor '%s': shape product overflows", nm);
    }
    if (!mim_mul_ok(t->numel, mim__dtypes[k].size, &t->nbytes))
        return mim_err(MIM_EFORMAT, "tensor '%s': byte size overflows", nm);

    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_uint(off->child, &b) || !json_uint(off->child->next, &en))
        return mim_err(MIM_EFORMAT, "tensor '%s': data_offsets is not [begin, end] of non-negative integers", nm);
    if (en < b)
        return mim_err(MIM_EFORMAT, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] end before begin", nm, b, en);
    if (en > data_len)
        return mim_err(MIM_EFORMAT, "tensor '%s': data_offsets [%" PRIu64 ", %" PRIu64 "] beyond data section of %zu bytes",
                       nm, b, en, data_len);
    if (en - b != t->nbytes)
        return mim_err(MIM_EFORMAT, "tensor '%s': data_offsets span %" PRIu64 " bytes, %s shape needs %zu",
                       nm, en - b, mim__dtypes[k].name, t->nbytes);
    t->data = data + b;
    return MIM_OK;
}

// Checks that __metadata__ maps unique keys to strings.
static int parse_meta(const cJSON* m) {
    if (!cJSON_IsObject(m)) return mim_err(MIM_EFORMAT, "__metadata__ is not an object");
    int n = cJSON_GetArraySize(m), i = 0;
    for (const cJSON* v = m->child; v; v = v->next)
        if (!cJSON_IsString(v)) return mim_err(MIM_EFORMAT, "__metadata__ '%s' is not a string", v->string);
    const char** keys = mim_calloc((size_t)n, sizeof *keys);
    if (!keys) return MIM_ENOMEM;
    for (const cJSON* v = m->child; v; v = v->next) keys[i++] = v->string;
    const char* dup = sort_find_dup(keys, (size_t)n);
    int rc = dup ? mim_err(MIM_EFORMAT, "__metadata__: duplicate key '%s'", dup) : MIM_OK;
    free(keys);
    return rc;
}

static int parse_header(mim_st* st) {
    if (st->len < 8) return mim_err(MIM_EFORMAT, "%zu bytes, too short for the 8-byte header length", st->len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | st->buf[i];
    if (hlen > st->len - 8)
        return mim_err(MIM_EFORMAT, "header length %" PRIu64 " exceeds file size %zu", hlen, st->len);
    if (hlen > MIM__ST_MAX_HEADER)
        return mim_err(MIM_EFORMAT, "header length %" PRIu64 " exceeds the %zu-byte cap", hlen, MIM__ST_MAX_HEADER);
    const uint8_t* data = st->buf + 8 + hlen;
    size_t data_len = st->len - 8 - (size_t)hlen;

    // Raw control bytes never occur in JSON (strings escape them); cJSON
    // would skip them, NUL included, as whitespace.
    for (size_t i = 0; i < hlen; i++) {
        uint8_t c = st->buf[8 + i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            return mim_err(MIM_EFORMAT, "header has control byte 0x%02x at byte %zu", c, i);
    }
    // cJSON wants a NUL-terminated string; the header may be followed by data.
    char* js = mim_malloc((size_t)hlen + 1);
    if (!js) return MIM_ENOMEM;
    memcpy(js, st->buf + 8, (size_t)hlen);
    js[hlen] = 0;
    const char* end = NULL;
    st->root = cJSON_ParseWithLengthOpts(js, (size_t)hlen + 1, &end, 0);
    size_t bad = end ? (size_t)(end - js) : 0; // first byte cJSON did not consume
    while (st->root && bad < hlen && strchr(" \t\r\n", js[bad])) bad++; // js[bad] != 0 here
    free(js);
    if (!st->root) return mim_err(MIM_EFORMAT, "header is not valid JSON (error near byte %zu)", bad);
    if (bad < hlen) return mim_err(MIM_EFORMAT, "trailing bytes after the header JSON at byte %zu", bad);
    if (!cJSON_IsObject(st->root)) return mim_err(MIM_EFORMAT, "header JSON is not an object");

    int n = 0;
    for (const cJSON* e = st->root->child; e; e = e->next) {
        if (strcmp(e->string, "__metadata__")) { n++; continue; }
        if (st->meta) return mim_err(MIM_EFORMAT, "duplicate __metadata__");
        st->meta = e;
        int rc = parse_meta(e);
        if (rc) return rc;
    }
    st->t = mim_calloc((size_t)n, sizeof *st->t);
    st->by_name = mim_calloc((size_t)n, sizeof *st->by_name);
    if (!st->t || !st->by_name) return MIM_ENOMEM;
    for (const cJSON* e = st->root->child; e; e = e->next) {
        if (e == st->meta) continue;
        mim_st_tensor* t = &st->t[st->n];
        t->name = e->string;
        int rc = parse_entry(t, e, data, data_len);
        if (rc) return rc;
        st->by_name[st->n++] = t;
    }
    qsort(st->by_name, (size_t)n, sizeof *st->by_name, cmp_name);
    for (int i = 1; i < n; i++)
        if (!strcmp(st->by_name[i - 1]->name, st->by_name[i]->name))
            return mim_err(MIM_EFORMAT, "duplicate tensor name '%s'", st->by_name[i]->name);

    // The tensors must tile the data section: no overlap, no hole, no tail.
    const mim_st_tensor** ext = mim_calloc((size_t)n, sizeof *ext);
    if (!ext) return MIM_ENOMEM;
    memcpy(ext, st->by_name, (size_t)n * sizeof *ext);
    qsort(ext, (size_t)n, sizeof *ext, cmp_extent);
    size_t pos = 0;
    int rc = MIM_OK;
    for (int i = 0; i < n && !rc; i++) {
        size_t b = (size_t)((const uint8_t*)ext[i]->data - data);
        if (b != pos)
            rc = mim_err(MIM_EFORMAT, "tensor '%s': data begins at %zu, %s %zu", ext[i]->name, b,
                         b < pos ? "overlapping the previous tensor, which ends at" : "leaving a hole from", pos);
        pos = b + ext[i]->nbytes;
    }
    free(ext);
    if (!rc && pos != data_len)
        rc = mim_err(MIM_EFORMAT, "data section has %zu bytes, tensors cover %zu", data_len, pos);
    return rc;
}

// Takes ownership of buf (len bytes), also on failure.
static int open_buf(mim_st** out, uint8_t* buf, size_t len) {
    *out = NULL;
    mim_st* st = mim_calloc(1, sizeof *st);
    if (!st) { free(buf); return MIM_ENOMEM; }
    st->buf = buf;
    st->len = len;
    int rc = parse_header(st);
    if (rc) { mim_st_close(st); return rc; }
    *out = st;
    return MIM_OK;
}

int mim_st_open_mem(mim_st** out, const void* buf, size_t len) {
    CHECK(out && (buf || !len));
    *out = NULL;
    uint8_t* copy = mim_malloc(len);
    if (!copy) return MIM_ENOMEM;
    if (len) memcpy(copy, buf, len);
    return open_buf(out, copy, len);
}

int mim_st_open(mim_st** out, const char* path) {
    CHECK(out && path);
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mim_err(MIM_EIO, "cannot open %s: %s", path, strerror(errno));
    struct stat sb;
    int bad = fstat(fd, &sb) ? errno : S_ISREG(sb.st_mode) ? 0 : -1;
    if (bad) {
        close(fd);
        return mim_err(MIM_EIO, "cannot read %s: %s", path, bad < 0 ? "not a regular file" : strerror(bad));
    }
    if ((uint64_t)sb.st_size > SIZE_MAX - 1) { close(fd); return mim_err(MIM_ENOMEM, "%s: file too large", path); }
    size_t len = (size_t)sb.st_size, got = 0;
    uint8_t* buf = mim_malloc(len);
    if (!buf) { close(fd); return mim_err(MIM_ENOMEM, "%s: out of memory for %zu bytes", path, len); }
    while (got < len) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : 0;
            free(buf);
            close(fd);
            return mim_err(MIM_EIO, "read %s failed at byte %zu of %zu: %s", path, got, len,
                           e ? strerror(e) : "file shrank");
        }
        got += (size_t)r;
    }
    close(fd);
    int rc = open_buf(out, buf, len);
    if (rc) {
        char why[1024];
        snprintf(why, sizeof why, "%s", mim_err_msg());
        return mim_err(rc, "%s: %s", path, why);
    }
    return MIM_OK;
}

int mim_st_count(const mim_st* st) { return st->n; }

const mim_st_tensor* mim_st_get(const mim_st* st, int i) {
    CHECK(i >= 0 && i < st->n);
    return &st->t[i];
}

const mim_st_tensor* mim_st_find(const mim_st* st, const char* name) {
    int lo = 0, hi = st->n; // binary search in by_name
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->by_name[mid]->name, name);
        if (!c) return st->by_name[mid];
        if (c < 0) lo = mid + 1; else hi = mid;
    }
    return NULL;
}

const char* mim_st_meta(const mim_st* st, const char* key) {
    const cJSON* v = st->meta ? cJSON_GetObjectItemCaseSensitive(st->meta, key) : NULL;
    return v ? v->valuestring : NULL;
}

// IEEE half -> single by bit manipulation; exact for every input, NaN payloads kept.
static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | man << 13;            // inf, nan
    else if (exp) bits = sign | (exp + 127 - 15) << 23 | man << 13;    // normal: rebias
    else if (!man) bits = sign;                                         // +-0
    else {                                                              // subnormal: man * 2^-24
        uint32_t e = 127 - 14;
        while (!(man & 0x400)) { man <<= 1; e--; }
        bits = sign | e << 23 | (man & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void fmt_shape(char* s, size_t cap, int ndim, const int64_t* shape) {
    size_t k = (size_t)snprintf(s, cap, "[");
    for (int i = 0; i < ndim && k < cap; i++)
        k += (size_t)snprintf(s + k, cap - k, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (k < cap) snprintf(s + k, cap - k, "]");
}

int mim_st_read_f32(const mim_st* st, const char* name, float* dst, int ndim, const int64_t* shape) {
    CHECK(st && name && ndim >= 0 && ndim <= MIM_ST_MAX_DIMS && (shape || !ndim));
    const mim_st_tensor* t = mim_st_find(st, name);
    if (!t) return mim_err(MIM_ENOTFOUND, "tensor '%s' not found", name);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char have[160], want[160];
        fmt_shape(have, sizeof have, t->ndim, t->shape);
        fmt_shape(want, sizeof want, ndim, shape);
        return mim_err(MIM_ESHAPE, "tensor '%s' has shape %s, expected %s", name, have, want);
    }
    const uint8_t* p = t->data; // may be unaligned: memcpy every element
    switch (t->dtype) {
    case MIM_F32: if (t->nbytes) memcpy(dst, p, t->nbytes); break;
    case MIM_F64:
        for (size_t i = 0; i < t->numel; i++) { double d; memcpy(&d, p + 8 * i, 8); dst[i] = (float)d; }
        break;
    case MIM_F16:
        for (size_t i = 0; i < t->numel; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); dst[i] = f16_to_f32(h); }
        break;
    case MIM_BF16:
        for (size_t i = 0; i < t->numel; i++) {
            uint16_t h; memcpy(&h, p + 2 * i, 2);
            uint32_t u = (uint32_t)h << 16;
            memcpy(&dst[i], &u, 4);
        }
        break;
    default:
        return mim_err(MIM_ESHAPE, "tensor '%s' has dtype %s, expected a float dtype", name, mim__dtypes[t->dtype].name);
    }
    return MIM_OK;
}

// ---------------------------------------------------------------------------
// writer

// Adds a JSON array of exact integers (cJSON numbers are doubles, which would
// print 1e+15 style past 15 digits); returns 0 on allocation failure.
static int add_ints(cJSON* obj, const char* key, int n, const uint64_t* v) {
    cJSON* a = cJSON_AddArrayToObject(obj, key);
    for (int i = 0; a && i < n; i++) {
        char s[24];
        snprintf(s, sizeof s, "%" PRIu64, v[i]);
        cJSON* x = cJSON_CreateRaw(s);
        if (!x || !cJSON_AddItemToArray(a, x)) { cJSON_Delete(x); return 0; }
    }
    return a != NULL;
}

// Header JSON for the entries (validated), NUL-terminated, cJSON-allocated.
static int build_header(char** out, const mim_st_entry* en, int n, const char* const* meta, int n_meta,
                        const size_t* nbytes) {
    cJSON* root = cJSON_CreateObject();
    int ok = root != NULL;
    if (ok && n_meta > 0) {
        cJSON* m = cJSON_AddObjectToObject(root, "__metadata__");
        ok = m != NULL;
        for (int i = 0; ok && i < n_meta; i++) ok = cJSON_AddStringToObject(m, meta[2 * i], meta[2 * i + 1]) != NULL;
    }
    uint64_t pos = 0;
    for (int i = 0; ok && i < n; i++) {
        cJSON* e = cJSON_AddObjectToObject(root, en[i].name);
        uint64_t shape[MIM_ST_MAX_DIMS], off[2] = {pos, pos + nbytes[i]};
        for (int d = 0; d < en[i].ndim; d++) shape[d] = (uint64_t)en[i].shape[d];
        ok = e && cJSON_AddStringToObject(e, "dtype", mim__dtypes[en[i].dtype].name) &&
             add_ints(e, "shape", en[i].ndim, shape) && add_ints(e, "data_offsets", 2, off);
        pos += nbytes[i];
    }
    *out = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return *out ? MIM_OK : mim_err(MIM_ENOMEM, "out of memory building the safetensors header");
}

static int write_all(int fd, const void* p, size_t n) {
    const uint8_t* b = p;
    while (n) {
        if (mim_fault_write()) return -1;   // tests: an injected ENOSPC / EIO
        ssize_t w = write(fd, b, n < ((size_t)1 << 30) ? n : ((size_t)1 << 30));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { if (w == 0) errno = EIO; return -1; }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

// Checks the caller's arguments; fills nbytes[i] and the data section size.
static int check_entries(const mim_st_entry* en, int n, const char* const* meta, int n_meta,
                         size_t* nbytes, size_t* total) {
    if (n < 0 || n_meta < 0 || (n && !en) || (n_meta && !meta)) return mim_err(MIM_EARG, "negative count or NULL array");
    for (int i = 0; i < 2 * n_meta; i++)
        if (!meta[i]) return mim_err(MIM_EARG, "metadata pair %d has a NULL string", i / 2);
    *total = 0;
    for (int i = 0; i < n; i++) {
        const mim_st_entry* e = &en[i];
        const char* nm = e->name ? e->name : "(null)";
        if (!e->name || !strcmp(e->name, "__metadata__"))
            return mim_err(MIM_EARG, "entry %d: invalid tensor name '%s'", i, nm);
        if (!dtype_ok(e->dtype)) return mim_err(MIM_EARG, "tensor '%s': invalid dtype %d", nm, (int)e->dtype);
        if (e->ndim < 0 || e->ndim > MIM_ST_MAX_DIMS) return mim_err(MIM_EARG, "tensor '%s': ndim %d", nm, e->ndim);
        size_t numel = 1;
        for (int d = 0; d < e->ndim; d++)
            if (e->shape[d] < 0 || (uint64_t)e->shape[d] > MIM__ST_MAX_INT ||
                !mim_mul_ok(numel, (size_t)e->shape[d], &numel))
                return mim_err(MIM_EARG, "tensor '%s': bad or overflowing dim %d = %" PRId64, nm, d, e->shape[d]);
        if (!mim_mul_ok(numel, mim__dtypes[e->dtype].size, &nbytes[i]) || nbytes[i] > MIM__ST_MAX_INT - *total)
            return mim_err(MIM_EARG, "tensor '%s': size overflows", nm);
        if (nbytes[i] && !e->data) return mim_err(MIM_EARG, "tensor '%s': NULL data", nm);
        *total += nbytes[i];
    }
    // Duplicates would give a file that readers reject.
    const char** names = mim_calloc((size_t)(n > n_meta ? n : n_meta), sizeof *names);
    if (!names) return MIM_ENOMEM;
    for (int i = 0; i < n; i++) names[i] = en[i].name;
    const char* dup = sort_find_dup(names, (size_t)n);
    int rc = dup ? mim_err(MIM_EARG, "duplicate tensor name '%s'", dup) : MIM_OK;
    for (int i = 0; i < n_meta; i++) names[i] = meta[2 * i];
    if (!rc && (dup = sort_find_dup(names, (size_t)n_meta)))
        rc = mim_err(MIM_EARG, "duplicate metadata key '%s'", dup);
    free(names);
    return rc;
}

int mim_st_write(const char* path, const mim_st_entry* entries, int n, const char* const* meta, int n_meta) {
    CHECK(path);
    size_t* nbytes = mim_calloc(n > 0 ? (size_t)n : 1, sizeof *nbytes), total;
    if (!nbytes) return MIM_ENOMEM;
    char* js = NULL;
    int rc = check_entries(entries, n, meta, n_meta, nbytes, &total);
    if (!rc) rc = build_header(&js, entries, n, meta, n_meta, nbytes);
    char* tmp = NULL;
    if (!rc && (asprintf(&tmp, "%s.tmp.%ld", path, (long)getpid()) < 0 || !tmp)) {
        tmp = NULL;
        rc = mim_err(MIM_ENOMEM, "out of memory writing %s", path);
    }
    if (rc) { free(nbytes); cJSON_free(js); return rc; }

    // 8-byte length, then the JSON padded with spaces to a multiple of 8 so
    // that the data section starts 8-byte aligned.
    size_t jlen = strlen(js), hlen = (jlen + 7) & ~(size_t)7;
    uint8_t* head = mim_malloc(8 + hlen);
    if (!head) { free(nbytes); cJSON_free(js); free(tmp); return MIM_ENOMEM; }
    for (int i = 0; i < 8; i++) head[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    memcpy(head + 8, js, jlen);
    memset(head + 8 + jlen, ' ', hlen - jlen);
    cJSON_free(js);

    const char* what = "open";
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), ok = fd >= 0;
    if (ok) { what = "write"; ok = !write_all(fd, head, 8 + hlen); }
    for (int i = 0; ok && i < n; i++) ok = !write_all(fd, entries[i].data, nbytes[i]);
    if (ok) { what = "fsync"; ok = !fsync(fd); }
    int e = errno;
    if (fd >= 0 && close(fd) && ok) { what = "close"; ok = 0; e = errno; }
    if (ok) { what = "rename"; ok = !rename(tmp, path); e = errno; }
    free(head);
    free(nbytes);
    if (!ok) {
        if (fd >= 0) unlink(tmp);
        rc = mim_err(MIM_EIO, "%s %s failed writing %s: %s", what, tmp, path, strerror(e));
        free(tmp);
        return rc;
    }
    free(tmp);

    // Make the rename durable: fsync the directory that holds PATH.
    const char* slash = strrchr(path, '/');
    char* dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) return mim_err(MIM_ENOMEM, "out of memory writing %s", path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd)) {
        e = errno;
        rc = mim_err(MIM_EIO, "wrote %s but fsync of directory %s failed: %s", path, dir, strerror(e));
    }
    if (dfd >= 0) close(dfd);
    free(dir);
    return rc;
}
