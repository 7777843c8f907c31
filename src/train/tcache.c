// tcache.c: per-sample teacher features on disk (see tcache.h).
#include "train/tcache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/check.h"
#include "core/fault.h"
#include "train/dist.h"

static const char MAGIC[8] = {'M', 'I', 'M', 'T', 'F', 'C', '1', '\n'};
#define ALIGN 4096u
#define MAX_KEY 8192u

static uint64_t align_up(uint64_t x) { return (x + ALIGN - 1) / ALIGN * ALIGN; }

// FNV-1a over the record's bytes, forced odd so that 0 means "not cached".
static uint32_t record_hash(const float* x, size_t n) {
    const unsigned char* p = (const unsigned char*)x;
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ p[i]) * 16777619u;
    return h | 1u;
}

// One file's identity: real path, size, mtime.
static int file_id(char* out, size_t cap, const char* what, const char* path) {
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(path, real) || stat(real, &st) != 0)
        return mim_err(MIM_EIO, "teacher cache key: cannot stat %s %s: %s", what, path, strerror(errno));
    snprintf(out, cap, "%s=%s size=%lld mtime=%lld.%09ld", what, real, (long long)st.st_size,
             (long long)st.st_mtim.tv_sec, (long)st.st_mtim.tv_nsec);
    return 0;
}

int mim_tcache_key(char* out, size_t cap, const char* teacher_path, int layer, const char* data_path,
                   const char* split, int C, int H, int W, const float mean[3], const float std[3]) {
    char t[PATH_MAX + 96], d[PATH_MAX + 96];
    int rc;
    if ((rc = file_id(t, sizeof t, "teacher", teacher_path))) return rc;
    struct stat st;
    if (stat(data_path, &st) == 0 && S_ISDIR(st.st_mode)) {   // an IDX folder: name the split's images
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte.gz", data_path, split ? split : "train");
        if (access(p, R_OK) != 0) snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte", data_path, split ? split : "train");
        rc = file_id(d, sizeof d, "data", p);
    } else {
        rc = file_id(d, sizeof d, "data", data_path);
    }
    if (rc) return rc;
    int n = snprintf(out, cap, "%s; layer=%d; %s; input=%dx%dx%d; mean=%.7g,%.7g,%.7g; std=%.7g,%.7g,%.7g", t, layer,
                     d, C, H, W, mean[0], mean[1], mean[2], std[0], std[1], std[2]);
    if (n < 0 || (size_t)n >= cap || (size_t)n >= MAX_KEY) return mim_err(MIM_EARG, "teacher cache key too long");
    return 0;
}

static int pwrite_all(int fd, const void* buf, size_t n, uint64_t off) {
    const char* p = buf;
    while (n > 0) {
        int e = mim_fault_write();
        if (e) { errno = e; return -1; }
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) { if (w == 0) errno = EIO; return -1; }
        p += w; n -= (size_t)w; off += (uint64_t)w;
    }
    return 0;
}

static int pread_all(int fd, void* buf, size_t n, uint64_t off) {
    char* p = buf;
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) { if (r == 0) errno = EIO; return -1; }
        p += r; n -= (size_t)r; off += (uint64_t)r;
    }
    return 0;
}

// Creates path atomically (temp file + rename): header, key, a zero state
// array and a sparse feature area.
static int create_file(const char* path, const char* key, const mim_tcache_header* h) {
    char tmp[PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return mim_err(MIM_EIO, "teacher cache: cannot create %s: %s", tmp, strerror(errno));
    char head[ALIGN];
    memset(head, 0, sizeof head);
    memcpy(head, MAGIC, 8);
    memcpy(head + 8, h, sizeof *h);
    int rc = 0;
    uint64_t total = h->feat_off + (uint64_t)h->n * h->L * h->D * sizeof(float);
    if (pwrite_all(fd, head, sizeof head, 0) || pwrite_all(fd, key, h->key_len, 8 + sizeof *h) ||
        ftruncate(fd, (off_t)total) || fsync(fd))
        rc = mim_err(MIM_EIO, "teacher cache: cannot write %s: %s", tmp, strerror(errno));
    close(fd);
    // link, not rename: a cache another run created meanwhile is kept (and
    // then opened and checked like any existing file)
    if (!rc && link(tmp, path) != 0 && errno != EEXIST)
        rc = mim_err(MIM_EIO, "teacher cache: cannot create %s: %s", path, strerror(errno));
    unlink(tmp);
    return rc;
}

// The first "; "-separated field where a and b differ, for the error message.
static void first_diff(const char* a, const char* b, char* out, size_t cap) {
    for (;;) {
        const char* ea = strstr(a, "; ");
        const char* eb = strstr(b, "; ");
        size_t la = ea ? (size_t)(ea - a) : strlen(a), lb = eb ? (size_t)(eb - b) : strlen(b);
        if (la != lb || memcmp(a, b, la)) {
            snprintf(out, cap, "the file has '%.*s', this run '%.*s'", (int)(la > 400 ? 400 : la), a,
                     (int)(lb > 400 ? 400 : lb), b);
            return;
        }
        if (!ea || !eb) { snprintf(out, cap, "the keys differ in length"); return; }
        a = ea + 2; b = eb + 2;
    }
}

static int open_existing(mim_tcache* c, const char* path, const char* key, int64_t n, int L, int D) {
    c->fd = open(path, O_RDWR);
    if (c->fd < 0) return mim_err(MIM_EIO, "teacher cache: cannot open %s: %s", path, strerror(errno));
    char head[8 + sizeof(mim_tcache_header)];
    struct stat st;
    if (fstat(c->fd, &st) || pread_all(c->fd, head, sizeof head, 0) || memcmp(head, MAGIC, 8))
        return mim_err(MIM_EFORMAT, "teacher cache: %s is not a mimscale teacher cache (bad or missing header); "
                       "pick another file, it is not overwritten", path);
    mim_tcache_header h;
    memcpy(&h, head + 8, sizeof h);
    uint64_t rec = 0, need = 0;
    int sane = h.version == 1 && h.key_len > 0 && h.key_len <= MAX_KEY && h.n >= 0 && h.L > 0 && h.D > 0 &&
               h.L <= (1u << 20) && h.D <= (1u << 20) && h.state_off >= 8 + sizeof h + h.key_len &&
               h.feat_off >= h.state_off + (uint64_t)h.n * 4 && !__builtin_mul_overflow((uint64_t)h.L * h.D, 4, &rec) &&
               !__builtin_mul_overflow(rec, (uint64_t)h.n, &need) && !__builtin_add_overflow(need, h.feat_off, &need);
    if (!sane) return mim_err(MIM_EFORMAT, "teacher cache: %s has a malformed header", path);
    if ((uint64_t)st.st_size < need)
        return mim_err(MIM_EFORMAT, "teacher cache: %s is truncated (%lld bytes, the header needs %llu)", path,
                       (long long)st.st_size, (unsigned long long)need);
    char* fkey = malloc(h.key_len + 1);
    if (!fkey) return mim_err(MIM_ENOMEM, "out of memory");
    if (pread_all(c->fd, fkey, h.key_len, 8 + sizeof h)) { free(fkey); return mim_err(MIM_EIO, "teacher cache: cannot read %s", path); }
    fkey[h.key_len] = 0;
    int rc = 0;
    if (strcmp(fkey, key)) {
        char why[1024];
        first_diff(fkey, key, why, sizeof why);
        rc = mim_err(MIM_EARG, "teacher cache %s was built for another teacher, layer, data set or input: %s; "
                     "pick another file (it is not overwritten)", path, why);
    } else if (h.n != n || (int)h.L != L || (int)h.D != D) {
        rc = mim_err(MIM_EARG, "teacher cache %s holds %lld samples of %u x %u, this run needs %lld of %d x %d",
                     path, (long long)h.n, h.L, h.D, (long long)n, L, D);
    }
    free(fkey);
    if (rc) return rc;
    c->h = h;
    c->state = mim_malloc((size_t)(n > 0 ? n : 1) * sizeof(uint32_t));
    if (!c->state) return MIM_ENOMEM;
    if (n > 0 && pread_all(c->fd, c->state, (size_t)n * sizeof(uint32_t), h.state_off))
        return mim_err(MIM_EIO, "teacher cache: cannot read the state of %s: %s", path, strerror(errno));
    return 0;
}

int mim_tcache_open(mim_tcache* c, const char* path, const char* key, int64_t n, int L, int D,
                    int max_batch, size_t img_floats) {
    memset(c, 0, sizeof *c);
    c->fd = -1;
    if (n < 0 || L < 1 || D < 1 || max_batch < 1) return mim_err(MIM_EARG, "teacher cache: bad geometry");
    size_t klen = strlen(key);
    if (klen == 0 || klen > MAX_KEY) return mim_err(MIM_EARG, "teacher cache: bad key");
    const mim_dist* d = mim_dist_get();
    int rc = 0;
    if (d->rank == 0 && access(path, F_OK) != 0) {
        mim_tcache_header h = {.version = 1, .key_len = (uint32_t)klen, .n = n, .L = (uint32_t)L, .D = (uint32_t)D};
        h.state_off = align_up(8 + sizeof h + klen);
        h.feat_off = align_up(h.state_off + (uint64_t)n * 4);
        rc = create_file(path, key, &h);
    }
    if (d->world > 1 && mim_dist_allreduce_max_i64(rc != 0) && !rc)
        rc = mim_err(MIM_EIO, "teacher cache: rank 0 could not create %s", path);
    if (!rc) rc = open_existing(c, path, key, n, L, D);
    if (!rc) {
        c->path = strdup(path);
        c->max_batch = max_batch;
        c->img_floats = img_floats;
        c->miss_imgs = mim_malloc((size_t)max_batch * img_floats * sizeof(float));
        c->miss_feats = mim_malloc((size_t)max_batch * L * D * sizeof(float));
        c->miss_slot = mim_malloc((size_t)max_batch * sizeof(int));
        if (!c->path || !c->miss_imgs || !c->miss_feats || !c->miss_slot) rc = mim_err(MIM_ENOMEM, "out of memory");
        c->write_ok = 1;
        c->shared = d->world > 1;
    }
    if (rc) mim_tcache_close(c);
    return rc;
}

// Stores sample id's record, then its state word; on failure warns once and
// stops storing.
static void store(mim_tcache* c, int64_t id, const float* f, size_t rec) {
    for (size_t i = 0; i < rec; i++)
        if (!isfinite(f[i])) return;   // a poisoned input: recomputed next time, never reused
    uint32_t hv = record_hash(f, rec);
    uint64_t off = c->h.feat_off + (uint64_t)id * rec * sizeof(float);
    if (pwrite_all(c->fd, f, rec * sizeof(float), off) ||
        pwrite_all(c->fd, &hv, sizeof hv, c->h.state_off + (uint64_t)id * 4)) {
        fprintf(stderr, "\nwarning: teacher cache %s: write failed (%s); the run goes on without storing features\n",
                c->path, strerror(errno));
        c->write_ok = 0;
        return;
    }
    c->state[id] = hv;
    c->written++;
}

void mim_tcache_features(mim_tcache* c, mim_teacher* t, float* feats, const float* imgs, const int64_t* ids,
                         int B, int layer) {
    CHECK(B <= c->max_batch);
    size_t rec = (size_t)c->h.L * c->h.D;
    int m = 0;
    for (int b = 0; b < B; b++) {   // (B, L, D): read what is cached, collect the rest
        int64_t id = ids ? ids[b] : -1;
        float* fb = feats + (size_t)b * rec;
        if (id >= 0 && id < c->h.n && !c->state[id] && c->shared) {   // stored by another rank since open?
            uint32_t w = 0;
            if (pread_all(c->fd, &w, sizeof w, c->h.state_off + (uint64_t)id * 4) == 0) c->state[id] = w;
        }
        if (id >= 0 && id < c->h.n && c->state[id]) {
            uint64_t off = c->h.feat_off + (uint64_t)id * rec * sizeof(float);
            if (pread_all(c->fd, fb, rec * sizeof(float), off) == 0 && record_hash(fb, rec) == c->state[id]) {
                c->hits++;
                continue;
            }
            c->bad++;
            c->state[id] = 0;
        }
        memcpy(c->miss_imgs + (size_t)m * c->img_floats, imgs + (size_t)b * c->img_floats, c->img_floats * sizeof(float));
        c->miss_slot[m++] = b;
    }
    if (m == 0) return;
    mim_teacher_forward(t, c->miss_feats, c->miss_imgs, m, layer);
    c->computed += (uint64_t)m;
    for (int i = 0; i < m; i++) {
        int b = c->miss_slot[i];
        const float* f = c->miss_feats + (size_t)i * rec;
        memcpy(feats + (size_t)b * rec, f, rec * sizeof(float));
        int64_t id = ids ? ids[b] : -1;
        if (c->write_ok && id >= 0 && id < c->h.n) store(c, id, f, rec);
    }
}

void mim_tcache_format(const mim_tcache* c, char* out, size_t cap) {
    int64_t have = 0;
    for (int64_t i = 0; i < c->h.n; i++) have += c->state[i] != 0;
    snprintf(out, cap, "teacher cache %s: %llu read, %llu computed (%llu stored%s), %llu bad; %lld of %lld samples cached",
             c->path, (unsigned long long)c->hits, (unsigned long long)c->computed, (unsigned long long)c->written,
             c->write_ok ? "" : ", storing stopped after a write error", (unsigned long long)c->bad,
             (long long)have, (long long)c->h.n);
}

void mim_tcache_sum_ranks(mim_tcache* c) {
    if (!c->shared) return;
    double v[4] = {(double)c->hits, (double)c->computed, (double)c->written, (double)c->bad};
    mim_dist_allreduce_sum_dv(v, 4);
    c->hits = (uint64_t)v[0]; c->computed = (uint64_t)v[1]; c->written = (uint64_t)v[2]; c->bad = (uint64_t)v[3];
    if (c->h.n > 0 && pread_all(c->fd, c->state, (size_t)c->h.n * sizeof(uint32_t), c->h.state_off) != 0)
        memset(c->state, 0, (size_t)c->h.n * sizeof(uint32_t));
}

void mim_tcache_close(mim_tcache* c) {
    if (c->fd >= 0) close(c->fd);
    free(c->path); free(c->state); free(c->miss_imgs); free(c->miss_feats); free(c->miss_slot);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}
