// tar.c: tar reader, webdataset grouping, ustar writer and shard lists
// (see tar.h). All reads go through src_get(), which bounds-checks against
// the source length, so header fields never index memory directly.
#include "data/tar.h"
#include "core/check.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BLK 512
#define BUFSZ (256 * 1024)

struct mim_tar {
    int fd;                 // -1 for memory sources
    const uint8_t* mem;     // memory source, or NULL
    uint64_t len;           // source length in bytes
    uint8_t* buf;           // file read buffer (BUFSZ)
    uint64_t buf_off;       // source offset of buf[0]
    size_t buf_len;         // valid bytes in buf
    uint64_t pos;           // offset of the next header
    int err;                // sticky error code (0 = none)
    int done;
    char path[256];         // for messages
    char long_name[MIM_TAR_NAME_MAX]; // pending GNU 'L' / pax path
    int has_long_name, long_truncated;
    uint64_t pax_size;      // pending pax size= override
    int has_pax_size;
};

int mim_tar_open_mem(mim_tar** out, const void* data, size_t n) {
    mim_tar* t = calloc(1, sizeof *t);
    if (!t) return mim_err(MIM_ENOMEM, "tar: out of memory");
    t->fd = -1; t->mem = data; t->len = n;
    snprintf(t->path, sizeof t->path, "<memory>");
    *out = t;
    return MIM_OK;
}

int mim_tar_open_file(mim_tar** out, const char* path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mim_err(MIM_EIO, "cannot open shard %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return mim_err(MIM_EIO, "shard %s is not a regular file", path);
    }
    mim_tar* t = calloc(1, sizeof *t);
    uint8_t* buf = malloc(BUFSZ);
    if (!t || !buf) { free(t); free(buf); close(fd); return mim_err(MIM_ENOMEM, "tar: out of memory"); }
    t->fd = fd; t->len = (uint64_t)st.st_size; t->buf = buf;
    snprintf(t->path, sizeof t->path, "%s", path);
#ifdef POSIX_FADV_SEQUENTIAL
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    *out = t;
    return MIM_OK;
}

void mim_tar_close(mim_tar* t) {
    if (!t) return;
    if (t->fd >= 0) close(t->fd);
    free(t->buf);
    free(t);
}

uint64_t mim_tar_source_size(const mim_tar* t) { return t->len; }
uint64_t mim_tar_position(const mim_tar* t) { return t->pos < t->len ? t->pos : t->len; }

// Pointer to n (<= BUFSZ) bytes at off, or NULL when out of range / I/O error.
static const uint8_t* src_get(mim_tar* t, uint64_t off, size_t n) {
    if (off > t->len || n > t->len - off) return NULL;
    if (t->mem) return t->mem + off;
    CHECK(n <= BUFSZ);
    if (off >= t->buf_off && off + n <= t->buf_off + t->buf_len) return t->buf + (off - t->buf_off);
    size_t want = BUFSZ;
    if (t->len - off < want) want = (size_t)(t->len - off);
    size_t got = 0;
    while (got < want) {
        ssize_t r = pread(t->fd, t->buf + got, want - got, (off_t)(off + got));
        if (r < 0) { if (errno == EINTR) continue; return NULL; }
        if (r == 0) break;
        got += (size_t)r;
    }
    t->buf_off = off; t->buf_len = got;
    if (got < n) return NULL;
    return t->buf;
}

int mim_tar_pread(mim_tar* t, uint64_t off, void* buf, size_t n) {
    if (off > t->len || n > t->len - off)
        return mim_err(MIM_EFORMAT, "%s: read of %zu bytes at %llu past end (%llu bytes)",
                       t->path, n, (unsigned long long)off, (unsigned long long)t->len);
    if (t->mem) { memcpy(buf, t->mem + off, n); return MIM_OK; }
    if (n <= BUFSZ / 4) {  // small members (labels, json) go through the buffer
        const uint8_t* p = src_get(t, off, n);
        if (!p) return mim_err(MIM_EIO, "%s: read failed at %llu", t->path, (unsigned long long)off);
        memcpy(buf, p, n);
        return MIM_OK;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(t->fd, (uint8_t*)buf + got, n - got, (off_t)(off + got));
        if (r < 0) { if (errno == EINTR) continue; return mim_err(MIM_EIO, "%s: %s", t->path, strerror(errno)); }
        if (r == 0) return mim_err(MIM_EFORMAT, "%s: short read", t->path);
        got += (size_t)r;
    }
    return MIM_OK;
}

// Octal (space/NUL terminated) or GNU base-256 numeric field. Returns 0 on a
// malformed field.
static int parse_num(const uint8_t* f, int n, uint64_t* out) {
    if (f[0] & 0x80) {  // base-256, big endian; negative values rejected
        if (f[0] & 0x40) return 0;
        uint64_t v = f[0] & 0x3f;
        for (int i = 1; i < n; i++) {
            if (v >> 56) return 0;
            v = (v << 8) | f[i];
        }
        *out = v;
        return 1;
    }
    int i = 0;
    while (i < n && (f[i] == ' ' || f[i] == 0)) i++;  // leading pad
    uint64_t v = 0; int digits = 0;
    for (; i < n && f[i] >= '0' && f[i] <= '7'; i++, digits++) {
        if (v >> 61) return 0;
        v = v * 8 + (uint64_t)(f[i] - '0');
    }
    for (; i < n; i++) if (f[i] != ' ' && f[i] != 0) return 0;
    *out = v;
    return digits > 0 || 1;  // an empty field reads as 0
}

static int is_zero_block(const uint8_t* b) {
    for (int i = 0; i < BLK; i++) if (b[i]) return 0;
    return 1;
}

static int fail(mim_tar* t, int code, const char* what) {
    t->err = mim_err(code, "%s: %s at offset %llu", t->path, what, (unsigned long long)t->pos);
    return t->err;
}

static void copy_field(char* dst, size_t cap, const uint8_t* src, size_t n, int* truncated) {
    size_t k = 0;
    while (k < n && src[k]) k++;
    if (k >= cap) { k = cap - 1; if (truncated) *truncated = 1; }
    memcpy(dst, src, k);
    dst[k] = 0;
}

// pax records "LEN key=value\n"; apply path and size.
static int parse_pax(mim_tar* t, const uint8_t* p, uint64_t n) {
    uint64_t i = 0;
    while (i < n) {
        uint64_t len = 0, j = i;
        while (j < n && p[j] >= '0' && p[j] <= '9') {
            if (len > (1u << 30)) return 0;
            len = len * 10 + (uint64_t)(p[j] - '0'); j++;
        }
        if (j >= n || p[j] != ' ' || len > n - i || i + len <= j + 1) return 0;   // record must extend past "LEN "
        const uint8_t* rec = p + j + 1;
        uint64_t rlen = i + len - (j + 1);   // includes trailing '\n'
        if (rlen == 0 || rec[rlen - 1] != '\n') return 0;
        const uint8_t* eq = memchr(rec, '=', (size_t)rlen);
        if (eq) {
            size_t klen = (size_t)(eq - rec), vlen = (size_t)(rlen - klen - 2);
            const uint8_t* v = eq + 1;
            if (klen == 4 && !memcmp(rec, "path", 4)) {
                size_t c = vlen;
                t->long_truncated = 0;
                if (c >= MIM_TAR_NAME_MAX) { c = MIM_TAR_NAME_MAX - 1; t->long_truncated = 1; }
                memcpy(t->long_name, v, c); t->long_name[c] = 0;
                t->has_long_name = 1;
            } else if (klen == 4 && !memcmp(rec, "size", 4)) {
                uint64_t s = 0; size_t d = 0;
                for (; d < vlen && v[d] >= '0' && v[d] <= '9'; d++) {
                    if (s > (UINT64_MAX - 9) / 10) return 0;
                    s = s * 10 + (uint64_t)(v[d] - '0');
                }
                if (d != vlen || d == 0) return 0;
                t->pax_size = s; t->has_pax_size = 1;
            }
        }
        i += len;
    }
    return 1;
}

int mim_tar_next(mim_tar* t, mim_tar_member* m) {
    if (t->err) return t->err;
    if (t->done) return 0;
    for (;;) {
        if (t->pos == t->len) { t->done = 1; return 0; }   // EOF on a header boundary
        const uint8_t* h = src_get(t, t->pos, BLK);
        if (!h) return fail(t, MIM_EFORMAT, "truncated header");
        if (is_zero_block(h)) { t->done = 1; return 0; }  // end marker (second block optional)
        // checksum: sum of header bytes with the chksum field read as spaces
        uint64_t want;
        if (!parse_num(h + 148, 8, &want)) return fail(t, MIM_EFORMAT, "bad checksum field");
        uint64_t su = 0; int64_t ss = 0;
        for (int i = 0; i < BLK; i++) {
            uint8_t c = (i >= 148 && i < 156) ? ' ' : h[i];
            su += c; ss += (int8_t)c;
        }
        if (su != want && (uint64_t)ss != want) return fail(t, MIM_EFORMAT, "header checksum mismatch (not a tar, or corrupt)");
        uint64_t size;
        if (!parse_num(h + 124, 12, &size)) return fail(t, MIM_EFORMAT, "bad size field");
        char type = (char)h[156];
        if (t->has_pax_size && type != 'x' && type != 'g') { size = t->pax_size; }
        uint64_t data = t->pos + BLK;
        if (data > t->len || size > t->len - data) return fail(t, MIM_EFORMAT, "truncated member data");
        uint64_t padded = (size + BLK - 1) / BLK * BLK;   // no overflow: size <= len
        uint64_t next = data + padded;
        if (next > t->len) next = t->len;   // last member may lack padding

        if (type == 'L' || type == 'x' || type == 'g') {
            if (size > (1u << 20)) return fail(t, MIM_EFORMAT, "extension header over 1 MiB");
            if (type != 'g') {
                // read in pieces no larger than the buffer
                uint8_t* tmp = malloc(size ? size : 1);
                if (!tmp) return fail(t, MIM_ENOMEM, "out of memory");
                if (mim_tar_pread(t, data, tmp, (size_t)size) < 0) { free(tmp); return fail(t, MIM_EIO, "read failed"); }
                if (type == 'L') {
                    size_t k = 0;
                    while (k < size && tmp[k]) k++;
                    t->long_truncated = 0;
                    if (k >= MIM_TAR_NAME_MAX) { k = MIM_TAR_NAME_MAX - 1; t->long_truncated = 1; }
                    memcpy(t->long_name, tmp, k); t->long_name[k] = 0;
                    t->has_long_name = 1;
                } else if (!parse_pax(t, tmp, size)) {
                    free(tmp);
                    return fail(t, MIM_EFORMAT, "malformed pax header");
                }
                free(tmp);
            }
            t->pos = next;
            continue;
        }

        m->offset = data; m->size = size; m->type = type; m->name_truncated = 0;
        if (t->has_long_name) {
            memcpy(m->name, t->long_name, strlen(t->long_name) + 1);
            m->name_truncated = t->long_truncated;
        } else {
            int tr = 0;
            char nm[101], pre[156];
            copy_field(nm, sizeof nm, h, 100, &tr);
            pre[0] = 0;
            if (!memcmp(h + 257, "ustar\0", 6)) copy_field(pre, sizeof pre, h + 345, 155, &tr);
            if (pre[0]) snprintf(m->name, MIM_TAR_NAME_MAX, "%s/%s", pre, nm);
            else memcpy(m->name, nm, strlen(nm) + 1);
        }
        t->has_long_name = 0; t->has_pax_size = 0;
        t->pos = next;
        return 1;
    }
}

// ---- webdataset ----------------------------------------------------------

uint64_t mim_key_hash(const char* key, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) { h ^= (uint8_t)key[i]; h *= 0x100000001b3ULL; }
    h ^= h >> 30; h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27; h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

// Splits a member name into key length and extension start.
static void split_key(const char* name, size_t* key_len, const char** ext) {
    const char* base = strrchr(name, '/');
    base = base ? base + 1 : name;
    const char* dot = strchr(base, '.');
    if (!dot) { *key_len = strlen(name); *ext = ""; return; }
    *key_len = (size_t)(dot - name);
    *ext = dot + 1;
}

static int ext_eq(const char* a, const char* b) { return strcasecmp(a, b) == 0; }

static int image_format(const char* ext) {
    if (ext_eq(ext, "jpg") || ext_eq(ext, "jpeg")) return MIM_IMG_JPEG;
    if (ext_eq(ext, "png")) return MIM_IMG_PNG;
    if (ext_eq(ext, "webp")) return MIM_IMG_WEBP;
    return MIM_IMG_NONE;
}

static int parse_label(const char* s, size_t n, int32_t* out) {
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i])) i++;
    int neg = 0;
    if (i < n && s[i] == '-') { neg = 1; i++; }
    int64_t v = 0; int d = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, d++) {
        v = v * 10 + (s[i] - '0');
        if (v > INT32_MAX) return 0;
    }
    while (i < n && isspace((unsigned char)s[i])) i++;
    if (!d || i != n || neg) return 0;   // negative labels are not labels
    *out = (int32_t)v;
    return 1;
}

int mim_wds_next(mim_tar* t, mim_wds_sample* s) {
    s->key[0] = 0; s->img_format = MIM_IMG_NONE; s->img_off = s->img_size = 0;
    s->label = -1; s->has_txt = s->has_json = 0; s->json_off = s->json_size = 0; s->n_members = 0;
    size_t klen = 0;
    for (;;) {
        // peek: remember position so that a member of the next key is re-read
        uint64_t save_pos = t->pos;
        mim_tar_member m;
        int rc = mim_tar_next(t, &m);
        if (rc < 0 && s->n_members > 0) break;   // return the group read so far; the error is sticky
        if (rc < 0) return rc;
        if (rc == 0) break;
        if (!(m.type == '0' || m.type == 0 || m.type == '7')) continue;  // dirs, links: ignored
        size_t kl; const char* ext;
        split_key(m.name, &kl, &ext);
        if (s->n_members > 0 && (kl != klen || memcmp(m.name, s->key, kl) != 0)) {
            t->pos = save_pos;   // re-read this header next time (pure function of pos)
            t->done = 0;
            break;
        }
        if (s->n_members == 0) {
            klen = kl < MIM_TAR_NAME_MAX ? kl : MIM_TAR_NAME_MAX - 1;
            memcpy(s->key, m.name, klen); s->key[klen] = 0;
        }
        s->n_members++;
        int f = image_format(ext);
        if (f != MIM_IMG_NONE && s->img_format == MIM_IMG_NONE) {
            s->img_format = f; s->img_off = m.offset; s->img_size = m.size;
        } else if (ext_eq(ext, "cls") || ext_eq(ext, "label")) {
            char buf[32];
            if (m.size > 0 && m.size < sizeof buf && mim_tar_pread(t, m.offset, buf, (size_t)m.size) == 0) {
                int32_t v;
                if (parse_label(buf, (size_t)m.size, &v)) s->label = v;
            }
        } else if (ext_eq(ext, "txt")) {
            s->has_txt = 1;
        } else if (ext_eq(ext, "json")) {
            s->has_json = 1; s->json_off = m.offset; s->json_size = m.size;
        }
    }
    if (s->n_members == 0) return 0;
    s->key_hash = mim_key_hash(s->key, klen);
    return 1;
}

// ---- writer ---------------------------------------------------------------

static void put_octal(uint8_t* f, int n, uint64_t v) {
    // n-1 digits + NUL
    for (int i = n - 2; i >= 0; i--) { f[i] = (uint8_t)('0' + (v & 7)); v >>= 3; }
    f[n - 1] = 0;
}

static int write_header(FILE* f, const char* name, size_t nlen, uint64_t size, char type) {
    uint8_t h[BLK];
    memset(h, 0, BLK);
    memcpy(h, name, nlen < 100 ? nlen : 100);
    put_octal(h + 100, 8, 0644);
    put_octal(h + 108, 8, 0);
    put_octal(h + 116, 8, 0);
    if (size < (1ULL << 33)) put_octal(h + 124, 12, size);
    else { h[124] = 0x80; for (int i = 0; i < 8; i++) h[135 - i] = (uint8_t)(size >> (8 * i)); }
    put_octal(h + 136, 12, 0);
    h[156] = (uint8_t)type;
    memcpy(h + 257, "ustar\0" "00", 8);
    memset(h + 148, ' ', 8);
    unsigned sum = 0;
    for (int i = 0; i < BLK; i++) sum += h[i];
    put_octal(h + 148, 7, sum);
    h[155] = ' ';
    return fwrite(h, 1, BLK, f) == BLK ? 0 : -1;
}

static int write_data(FILE* f, const void* data, uint64_t size) {
    static const uint8_t zeros[BLK];
    if (size && fwrite(data, 1, (size_t)size, f) != size) return -1;
    size_t pad = (size_t)((BLK - size % BLK) % BLK);
    return (pad && fwrite(zeros, 1, pad, f) != pad) ? -1 : 0;
}

int mim_tar_write_member(FILE* f, const char* name, const void* data, uint64_t size) {
    size_t nlen = strlen(name);
    if (nlen >= 100) {
        if (write_header(f, "././@LongLink", 13, nlen + 1, 'L') || write_data(f, name, nlen + 1))
            return mim_err(MIM_EIO, "tar write failed");
    }
    if (write_header(f, name, nlen, size, '0') || write_data(f, data, size))
        return mim_err(MIM_EIO, "tar write failed");
    return MIM_OK;
}

int mim_tar_write_end(FILE* f) {
    static const uint8_t zeros[2 * BLK];
    return fwrite(zeros, 1, sizeof zeros, f) == sizeof zeros ? MIM_OK : mim_err(MIM_EIO, "tar write failed");
}

// ---- shard lists ------------------------------------------------------------

#define MAX_SHARDS 10000000

static int push(mim_shard_list* l, const char* p, size_t n) {
    if (l->n >= MAX_SHARDS) return mim_err(MIM_EARG, "more than %d shards", MAX_SHARDS);
    if ((l->n & (l->n - 1)) == 0) {   // grow at powers of two
        size_t cap = l->n ? 2 * l->n : 16;
        char** np = realloc(l->paths, cap * sizeof *np);
        if (!np) return mim_err(MIM_ENOMEM, "out of memory");
        l->paths = np;
    }
    char* s = malloc(n + 1);
    if (!s) return mim_err(MIM_ENOMEM, "out of memory");
    memcpy(s, p, n); s[n] = 0;
    l->paths[l->n++] = s;
    return MIM_OK;
}

// Expand the first {a..b} of spec recursively.
static int expand_brace(mim_shard_list* l, const char* spec) {
    const char* o = strchr(spec, '{');
    if (!o) return push(l, spec, strlen(spec));
    const char* c = strchr(o, '}');
    const char* dots = strstr(o, "..");
    if (!c || !dots || dots > c) return mim_err(MIM_EARG, "bad brace pattern '%s' (want {000000..000009})", spec);
    char* e1; char* e2;
    unsigned long long a = strtoull(o + 1, &e1, 10), b = strtoull(dots + 2, &e2, 10);
    if (e1 != dots || e2 != c || b < a || b - a >= MAX_SHARDS)
        return mim_err(MIM_EARG, "bad brace range in '%s'", spec);
    int width = (int)(dots - (o + 1));
    size_t plen = (size_t)(o - spec), slen = strlen(c + 1);
    char* buf = malloc(plen + slen + 32);
    if (!buf) return mim_err(MIM_ENOMEM, "out of memory");
    int rc = MIM_OK;
    for (unsigned long long i = a; i <= b && rc == MIM_OK; i++) {
        memcpy(buf, spec, plen);
        int k = snprintf(buf + plen, 32, "%0*llu", width, i);
        memcpy(buf + plen + k, c + 1, slen + 1);
        rc = expand_brace(l, buf);
    }
    free(buf);
    return rc;
}

int mim_shards_expand(mim_shard_list* l, const char* spec) {
    if (spec[0] == '@') {
        FILE* f = fopen(spec + 1, "r");
        if (!f) return mim_err(MIM_EIO, "cannot open shard list %s: %s", spec + 1, strerror(errno));
        char line[8192];
        int rc = MIM_OK;
        while (rc == MIM_OK && fgets(line, sizeof line, f)) {
            size_t n = strlen(line);
            while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ')) line[--n] = 0;
            char* p = line;
            while (*p == ' ' || *p == '\t') p++;
            if (!*p || *p == '#') continue;
            rc = push(l, p, strlen(p));
        }
        fclose(f);
        return rc;
    }
    if (strchr(spec, '{')) return expand_brace(l, spec);
    if (strpbrk(spec, "*?[")) {
        glob_t g;
        int r = glob(spec, 0, NULL, &g);
        if (r != 0) { globfree(&g); return mim_err(MIM_ENOTFOUND, "no file matches '%s'", spec); }
        int rc = MIM_OK;
        for (size_t i = 0; i < g.gl_pathc && rc == MIM_OK; i++) rc = push(l, g.gl_pathv[i], strlen(g.gl_pathv[i]));
        globfree(&g);
        return rc;
    }
    return push(l, spec, strlen(spec));
}

void mim_shards_free(mim_shard_list* l) {
    for (size_t i = 0; i < l->n; i++) free(l->paths[i]);
    free(l->paths);
    l->paths = NULL; l->n = 0;
}
