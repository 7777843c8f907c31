// index.c: build, write, map and read the sample index (see index.h).
#include "data/index.h"
#include "core/check.h"
#include "core/prof.h"
#include "data/tar.h"
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(mim_index_record) == 32, "record is 32 bytes");
_Static_assert(sizeof(mim_index_header) == 256, "header is 256 bytes");
_Static_assert(sizeof(mim_index_json) == 8, "json entry is 8 bytes");
// format 1 field positions kept: its files open with this header
_Static_assert(offsetof(mim_index_header, stats) == 56 && offsetof(mim_index_header, stats.n_labels) == 120 &&
               offsetof(mim_index_header, stats.bytes) == 128 && offsetof(mim_index_header, stats.seconds) == 136 &&
               offsetof(mim_index_header, json_table_off) >= 144, "format 1 field positions kept");

static uint64_t align32(uint64_t x) { return (x + 31) & ~(uint64_t)31; }

// ---- writer ------------------------------------------------------------------

struct mim_index_writer {
    FILE* f;
    char* path;
    char* tmp;
    mim_index_header h;
    uint64_t n_shards;
    uint64_t* first;     // (n_shards + 1) per-shard first sample
    uint64_t last_shard; // shard of the last record added
    FILE* jf;            // json table, written to a side file and appended at
    char* jtmp;          // close; opened at the first record with a json
    char* classes;       // class list text (NULL: none)
    size_t classes_len;
    uint64_t hash;       // running content hash of the records added
};

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

// One record into the content hash (mim_index_content_hash).
static uint64_t hash_record(uint64_t h, const mim_index_record* r) {
    return mix64(h ^ r->key_hash) ^ mix64(((uint64_t)r->size << 32) ^ (uint32_t)r->label);
}
#define HASH_SEED 0x6d696d736361ULL

int mim_index_writer_set_classes(mim_index_writer* w, const char* text, size_t len) {
    free(w->classes);
    w->classes = malloc(len ? len : 1);
    if (!w->classes) return mim_err(MIM_ENOMEM, "out of memory");
    memcpy(w->classes, text, len);
    w->classes_len = len;
    return MIM_OK;
}

int mim_index_json_pack(uint64_t img_off, uint64_t json_off, uint64_t json_size, mim_index_json* out) {
    if (json_size == 0 || json_size > UINT32_MAX) return 0;
    uint64_t d = json_off >= img_off ? json_off - img_off : img_off - json_off;
    if (d % 512 || d / 512 > INT32_MAX) return 0;
    int64_t b = (int64_t)(d / 512);
    out->rel_blocks = (int32_t)(json_off >= img_off ? b : -b);
    out->size = (uint32_t)json_size;
    return 1;
}

static int write_all(FILE* f, const void* p, size_t n) { return fwrite(p, 1, n, f) == n ? 0 : -1; }

static int write_pad(FILE* f, uint64_t from, uint64_t to) {
    static const uint8_t z[32];
    return (to > from) ? write_all(f, z, (size_t)(to - from)) : 0;
}

int mim_index_writer_open(mim_index_writer** out, const char* path, char* const* shards, size_t n_shards) {
    if (n_shards > UINT32_MAX) return mim_err(MIM_EARG, "index: %zu shards (max %u)", n_shards, UINT32_MAX);
    mim_index_writer* w = calloc(1, sizeof *w);
    if (!w) return mim_err(MIM_ENOMEM, "out of memory");
    size_t pl = strlen(path);
    w->path = malloc(pl + 1); w->tmp = malloc(pl + 16);
    w->first = calloc(n_shards + 1, sizeof *w->first);
    uint64_t* name_off = calloc(n_shards + 1, sizeof *name_off);
    char** abs = calloc(n_shards ? n_shards : 1, sizeof *abs);
    int rc = MIM_OK;
    if (!w->path || !w->tmp || !w->first || !name_off || !abs) { rc = mim_err(MIM_ENOMEM, "out of memory"); goto done; }
    memcpy(w->path, path, pl + 1);
    snprintf(w->tmp, pl + 16, "%s.tmp%d", path, (int)getpid());
    w->n_shards = n_shards;
    w->f = fopen(w->tmp, "wb");
    if (!w->f) { rc = mim_err(MIM_EIO, "cannot create %s: %s", w->tmp, strerror(errno)); goto done; }
    uint64_t blob = 0;
    for (size_t s = 0; s < n_shards; s++) {
        abs[s] = realpath(shards[s], NULL);
        const char* p = abs[s] ? abs[s] : shards[s];
        name_off[s] = blob;
        blob += strlen(p) + 1;
    }
    name_off[n_shards] = blob;
    memcpy(w->h.magic, MIM_INDEX_MAGIC, 8);
    w->h.version = MIM_INDEX_VERSION;
    w->hash = HASH_SEED;
    w->h.record_size = sizeof(mim_index_record);
    w->h.n_shards = n_shards;
    w->h.shard_table_off = sizeof(mim_index_header);
    uint64_t table = 2 * (n_shards + 1) * sizeof(uint64_t) + blob;
    w->h.records_off = align32(w->h.shard_table_off + table);
    // header placeholder, `first` placeholder (rewritten at close), names
    if (write_all(w->f, &w->h, sizeof w->h) || write_all(w->f, w->first, (n_shards + 1) * 8) ||
        write_all(w->f, name_off, (n_shards + 1) * 8)) { rc = mim_err(MIM_EIO, "write %s failed", w->tmp); goto done; }
    for (size_t s = 0; s < n_shards; s++) {
        const char* p = abs[s] ? abs[s] : shards[s];
        if (write_all(w->f, p, strlen(p) + 1)) { rc = mim_err(MIM_EIO, "write %s failed", w->tmp); goto done; }
    }
    if (write_pad(w->f, w->h.shard_table_off + table, w->h.records_off)) rc = mim_err(MIM_EIO, "write %s failed", w->tmp);
done:
    if (abs) for (size_t s = 0; s < n_shards; s++) free(abs[s]);
    free(abs); free(name_off);
    if (rc < 0) { mim_index_writer_abort(w); return rc; }
    *out = w;
    return MIM_OK;
}

int mim_index_writer_add(mim_index_writer* w, const mim_index_record* r, size_t n) {
    return mim_index_writer_add_json(w, r, NULL, n);
}

// Open the json side file and zero-fill the entries of the records so far.
static int json_start(mim_index_writer* w) {
    size_t L = strlen(w->tmp) + 8;
    w->jtmp = malloc(L);
    if (!w->jtmp) return mim_err(MIM_ENOMEM, "out of memory");
    snprintf(w->jtmp, L, "%s.json", w->tmp);
    w->jf = fopen(w->jtmp, "w+b");
    if (!w->jf) return mim_err(MIM_EIO, "cannot create %s: %s", w->jtmp, strerror(errno));
    static const mim_index_json z[512];
    for (uint64_t k = 0; k < w->h.n_samples;) {
        size_t m = w->h.n_samples - k < 512 ? (size_t)(w->h.n_samples - k) : 512;
        if (write_all(w->jf, z, m * sizeof *z)) return mim_err(MIM_EIO, "write %s failed", w->jtmp);
        k += m;
    }
    return MIM_OK;
}

int mim_index_writer_add_json(mim_index_writer* w, const mim_index_record* r, const mim_index_json* json, size_t n) {
    int any = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK(r[i].shard < w->n_shards && r[i].shard >= w->last_shard);  // shard order
        w->last_shard = r[i].shard;
        w->first[r[i].shard + 1]++;
        w->hash = hash_record(w->hash, &r[i]);
        if (r[i].flags & MIM_REC_HAS_JSON) { CHECK(json); any = 1; w->h.stats.n_json++; }
    }
    if (n && write_all(w->f, r, n * sizeof *r)) return mim_err(MIM_EIO, "write %s failed: %s", w->tmp, strerror(errno));
    if (any && !w->jf) { int rc = json_start(w); if (rc < 0) return rc; }
    if (w->jf) {
        static const mim_index_json z;
        for (size_t i = 0; i < n; i++) {
            const mim_index_json* e = (r[i].flags & MIM_REC_HAS_JSON) ? &json[i] : &z;
            if (write_all(w->jf, e, sizeof *e)) return mim_err(MIM_EIO, "write %s failed: %s", w->jtmp, strerror(errno));
        }
    }
    w->h.n_samples += n;
    return MIM_OK;
}

static void json_drop(mim_index_writer* w) {
    if (w->jf) { fclose(w->jf); unlink(w->jtmp); }
    w->jf = NULL;
    free(w->jtmp);
    w->jtmp = NULL;
}

void mim_index_writer_abort(mim_index_writer* w) {
    if (!w) return;
    if (w->f) { fclose(w->f); unlink(w->tmp); }
    json_drop(w);
    free(w->path); free(w->tmp); free(w->first); free(w->classes); free(w);
}

// Append the json side file to the index at json_table_off.
static int json_append(mim_index_writer* w, uint64_t at) {
    if (fflush(w->jf) || fseeko(w->jf, 0, SEEK_SET)) return mim_err(MIM_EIO, "read back %s failed", w->jtmp);
    if (fseeko(w->f, 0, SEEK_END) || write_pad(w->f, w->h.records_off + w->h.n_samples * sizeof(mim_index_record), at))
        return mim_err(MIM_EIO, "write %s failed", w->tmp);
    const size_t B = 1 << 20;
    uint8_t* buf = malloc(B);
    if (!buf) return mim_err(MIM_ENOMEM, "out of memory");
    int rc = MIM_OK;
    for (uint64_t left = w->h.n_samples * sizeof(mim_index_json); left && rc == MIM_OK;) {
        size_t m = left < B ? (size_t)left : B;
        if (fread(buf, 1, m, w->jf) != m) rc = mim_err(MIM_EIO, "read back %s failed", w->jtmp);
        else if (write_all(w->f, buf, m)) rc = mim_err(MIM_EIO, "write %s failed: %s", w->tmp, strerror(errno));
        left -= m;
    }
    free(buf);
    return rc;
}

int mim_index_writer_close(mim_index_writer* w, const mim_index_stats* stats) {
    int rc = MIM_OK;
    for (uint64_t s = 0; s < w->n_shards; s++) w->first[s + 1] += w->first[s];  // counts -> prefix sums
    uint64_t n_json = w->h.stats.n_json;
    if (stats) w->h.stats = *stats;
    w->h.stats.n_samples = w->h.n_samples;
    w->h.stats.n_json = n_json;   // what was written, whatever the caller counted
    w->h.file_size = w->h.records_off + w->h.n_samples * sizeof(mim_index_record);
    if (w->jf) {
        w->h.json_table_off = align32(w->h.file_size);
        w->h.file_size = w->h.json_table_off + w->h.n_samples * sizeof(mim_index_json);
        rc = json_append(w, w->h.json_table_off);
    }
    json_drop(w);
    w->h.content_hash = mix64(w->hash ^ w->n_shards) | 1;
    if (rc == MIM_OK && w->classes && w->classes_len) {
        uint64_t at = align32(w->h.file_size);
        if (fseeko(w->f, 0, SEEK_END) || write_pad(w->f, w->h.file_size, at) || write_all(w->f, w->classes, w->classes_len))
            rc = mim_err(MIM_EIO, "write %s failed: %s", w->tmp, strerror(errno));
        w->h.classes_off = at; w->h.classes_len = w->classes_len;
        w->h.file_size = at + w->classes_len;
    }
    if (rc == MIM_OK && (fseeko(w->f, 0, SEEK_SET) || write_all(w->f, &w->h, sizeof w->h) ||
        write_all(w->f, w->first, (w->n_shards + 1) * 8) || fflush(w->f) || fsync(fileno(w->f)))) {
        rc = mim_err(MIM_EIO, "write %s failed: %s", w->tmp, strerror(errno));
    }
    if (fclose(w->f) && rc == MIM_OK) rc = mim_err(MIM_EIO, "close %s failed", w->tmp);
    w->f = NULL;
    if (rc == MIM_OK && rename(w->tmp, w->path) != 0)
        rc = mim_err(MIM_EIO, "rename %s -> %s failed: %s", w->tmp, w->path, strerror(errno));
    if (rc < 0) unlink(w->tmp);
    free(w->path); free(w->tmp); free(w->first); free(w->classes); free(w);
    return rc;
}

// ---- build ---------------------------------------------------------------------

typedef struct {
    mim_index_record* r;
    mim_index_json* j;   // parallel to r
    size_t n, cap;
    mim_index_stats st;
    char why[256];       // n_unreadable: the reason
} shard_scan;

static void scan_shard(const char* path, uint32_t shard_id, shard_scan* out) {
    memset(out, 0, sizeof *out);
    out->st.n_labels = 0;
    mim_tar* t;
    if (mim_tar_open_file(&t, path) < 0) {
        out->st.n_unreadable = 1;
        snprintf(out->why, sizeof out->why, "%s", mim_err_msg());   // per thread: this thread's reason
        return;
    }
    mim_wds_sample* s = malloc(sizeof *s);
    if (!s) { mim_tar_close(t); out->st.n_unreadable = 1; snprintf(out->why, sizeof out->why, "out of memory"); return; }
    int rc;
    while ((rc = mim_wds_next(t, s)) > 0) {
        out->st.n_members += (uint64_t)s->n_members;
        if (s->img_format == MIM_IMG_NONE) { out->st.n_no_image++; continue; }
        if (s->img_size == 0) { out->st.n_empty++; continue; }
        if (s->img_size > UINT32_MAX) { out->st.n_oversize++; continue; }
        if (out->n == out->cap) {
            size_t nc = out->cap ? 2 * out->cap : 1024;
            mim_index_record* nr = realloc(out->r, nc * sizeof *nr);
            if (nr) out->r = nr;
            mim_index_json* nj = realloc(out->j, nc * sizeof *nj);
            if (nj) out->j = nj;
            if (!nr || !nj) { rc = MIM_ENOMEM; break; }
            out->cap = nc;
        }
        mim_index_json* j = &out->j[out->n];
        mim_index_record* r = &out->r[out->n++];
        memset(r, 0, sizeof *r);
        memset(j, 0, sizeof *j);
        r->offset = s->img_off; r->size = (uint32_t)s->img_size; r->key_hash = s->key_hash;
        r->shard = shard_id; r->label = s->label; r->format = (uint8_t)s->img_format;
        int has_json = s->has_json && mim_index_json_pack(s->img_off, s->json_off, s->json_size, j);
        r->flags = (uint8_t)((has_json ? MIM_REC_HAS_JSON : 0) | (s->has_txt ? MIM_REC_HAS_TXT : 0));
        if (has_json) out->st.n_json++;
        if (s->label >= 0) {
            out->st.n_labelled++;
            if ((int64_t)s->label + 1 > out->st.n_labels) out->st.n_labels = (int64_t)s->label + 1;
        }
    }
    if (rc < 0) out->st.n_bad_shards = 1;
    out->st.bytes = mim_tar_position(t);
    free(s);
    mim_tar_close(t);
}

static void stats_add(mim_index_stats* a, const mim_index_stats* b) {
    a->n_members += b->n_members; a->n_no_image += b->n_no_image; a->n_empty += b->n_empty;
    a->n_oversize += b->n_oversize; a->n_bad_shards += b->n_bad_shards; a->n_unreadable += b->n_unreadable;
    a->n_labelled += b->n_labelled; a->bytes += b->bytes; a->n_json += b->n_json;
    if (b->n_labels > a->n_labels) a->n_labels = b->n_labels;
}

void mim_index_stats_format(const mim_index_stats* s, char* out, size_t cap) {
    snprintf(out, cap,
             "%llu samples (%llu labelled, %lld classes, %llu with key.json); skipped: %llu without image, %llu empty, "
             "%llu oversize; %llu corrupt/truncated shards, %llu unreadable shards; %.1f MB in %.2f s",
             (unsigned long long)s->n_samples, (unsigned long long)s->n_labelled, (long long)s->n_labels,
             (unsigned long long)s->n_json,
             (unsigned long long)s->n_no_image, (unsigned long long)s->n_empty, (unsigned long long)s->n_oversize,
             (unsigned long long)s->n_bad_shards, (unsigned long long)s->n_unreadable, (double)s->bytes / 1e6,
             s->seconds);
}

// The class list for the build: opts->classes, else PREFIX-classes.txt for a
// first shard PREFIX-NNNNNN.tar (pack's), else classes.txt beside it. *text
// is malloc'ed (NULL: none found). A named file that cannot be read is an error.
static int find_classes(const char* named, const char* first_shard, char** text, size_t* len) {
    *text = NULL; *len = 0;
    char cand[2][4096];
    int nc = 0;
    if (named) snprintf(cand[nc++], sizeof cand[0], "%s", named);
    else if (first_shard) {
        const char* dash = strrchr(first_shard, '-');
        const char* slash = strrchr(first_shard, '/');
        if (dash && (!slash || dash > slash))
            snprintf(cand[nc++], sizeof cand[0], "%.*s-classes.txt", (int)(dash - first_shard), first_shard);
        if (slash) snprintf(cand[nc++], sizeof cand[0], "%.*s/classes.txt", (int)(slash - first_shard), first_shard);
        else snprintf(cand[nc++], sizeof cand[0], "classes.txt");
    }
    for (int i = 0; i < nc; i++) {
        FILE* f = fopen(cand[i], "rb");
        if (!f) {
            if (named) return mim_err(MIM_EIO, "--classes %s: %s", named, strerror(errno));
            continue;
        }
        size_t cap = 4096, n = 0;
        char* t = malloc(cap);
        size_t got;
        while (t && (got = fread(t + n, 1, cap - n, f)) > 0) {
            n += got;
            if (n == cap) { char* t2 = cap < ((size_t)64 << 20) ? realloc(t, cap *= 2) : NULL; if (!t2) { free(t); t = NULL; } else t = t2; }
        }
        fclose(f);
        if (!t) return mim_err(MIM_ENOMEM, "class list %s: out of memory (or over 64 MiB)", cand[i]);
        if (n == 0) { free(t); continue; }
        *text = t; *len = n;
        return MIM_OK;
    }
    return MIM_OK;
}

int mim_index_build(const char* out_path, char* const* shards, size_t n_shards,
                    const mim_index_build_opts* opts, mim_index_stats* stats) {
    mim_index_build_opts o = { .n_threads = 0, .progress = -1 };
    if (opts) o = *opts;
    int show = o.progress > 0 || (o.progress < 0 && isatty(2));
    double t0 = mim_now_s(), last = t0;
    mim_index_writer* w;
    char* classes = NULL;
    size_t classes_len = 0;
    int rc = find_classes(o.classes, n_shards ? shards[0] : NULL, &classes, &classes_len);
    if (rc < 0) return rc;
    rc = mim_index_writer_open(&w, out_path, shards, n_shards);
    if (rc < 0) { free(classes); return rc; }
    if (classes) { rc = mim_index_writer_set_classes(w, classes, classes_len); free(classes); }
    if (rc < 0) { mim_index_writer_abort(w); return rc; }
    int nt = o.n_threads > 0 ? o.n_threads : omp_get_max_threads();
    size_t chunk = (size_t)nt * 4;
    shard_scan* sc = calloc(chunk, sizeof *sc);
    if (!sc) { mim_index_writer_abort(w); return mim_err(MIM_ENOMEM, "out of memory"); }
    mim_index_stats tot;
    memset(&tot, 0, sizeof tot);
    for (size_t base = 0; base < n_shards && rc == MIM_OK; base += chunk) {
        size_t m = n_shards - base < chunk ? n_shards - base : chunk;
        #pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (size_t k = 0; k < m; k++) scan_shard(shards[base + k], (uint32_t)(base + k), &sc[k]);
        for (size_t k = 0; k < m; k++) {
            if (rc == MIM_OK) rc = mim_index_writer_add_json(w, sc[k].r, sc[k].j, sc[k].n);
            stats_add(&tot, &sc[k].st);
            tot.n_samples += sc[k].n;
            if (sc[k].st.n_unreadable) fprintf(stderr, "%sindex: skipped unreadable shard %s: %s\n", show ? "\n" : "",
                                               shards[base + k], sc[k].why);
            else if (sc[k].st.n_bad_shards) fprintf(stderr, "%sindex: shard %s is corrupt or truncated after %llu bytes (kept %zu samples before it)\n",
                                                    show ? "\n" : "", shards[base + k], (unsigned long long)sc[k].st.bytes, sc[k].n);
            free(sc[k].r); free(sc[k].j);
            sc[k].r = NULL; sc[k].j = NULL;
        }
        double t = mim_now_s();
        if (show && (t - last > 0.5 || base + m == n_shards)) {
            last = t;
            fprintf(stderr, "\rindex: %zu/%zu shards, %llu samples, %.0f MB, %.1f MB/s   ", base + m, n_shards,
                    (unsigned long long)tot.n_samples, (double)tot.bytes / 1e6, (double)tot.bytes / 1e6 / (t - t0 + 1e-9));
        }
    }
    if (show) fprintf(stderr, "\n");
    free(sc);
    tot.seconds = mim_now_s() - t0;
    if (stats) *stats = tot;
    if (rc < 0) { mim_index_writer_abort(w); return rc; }
    if (tot.n_samples == 0) {
        mim_index_writer_abort(w);
        return mim_err(MIM_ENOTFOUND, "no samples in the %zu shard(s) (%llu unreadable, %llu corrupt, %llu groups without an image member, "
                       "%llu empty (0-byte) images, %llu oversize (>= 4 GiB) images): %s not written", n_shards,
                       (unsigned long long)tot.n_unreadable, (unsigned long long)tot.n_bad_shards,
                       (unsigned long long)tot.n_no_image, (unsigned long long)tot.n_empty,
                       (unsigned long long)tot.n_oversize, out_path);
    }
    rc = mim_index_writer_close(w, &tot);
    return rc;
}

// ---- reading -----------------------------------------------------------------------

struct mim_index {
    const uint8_t* map;
    size_t map_len;
    const mim_index_header* h;
    const uint64_t* first;
    const uint64_t* name_off;
    const char* blob;
    uint64_t blob_len;
    const mim_index_record* rec;
    const mim_index_json* json;   // NULL: no json table
    char** resolved;   // per shard, lazily NULL = use stored path
    char* dir;         // directory of the index file
};

int mim_index_open(mim_index** out, const char* path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mim_err(MIM_EIO, "cannot open index %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return mim_err(MIM_EIO, "cannot stat %s", path); }
    if ((uint64_t)st.st_size < sizeof(mim_index_header)) { close(fd); return mim_err(MIM_EFORMAT, "%s: too small to be an index", path); }
    void* map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return mim_err(MIM_EIO, "cannot map %s: %s", path, strerror(errno));
    const mim_index_header* h = map;
    uint64_t fs = (uint64_t)st.st_size;
    const char* why = NULL;
    uint64_t ns = h->n_shards, n = h->n_samples, tbl, rec_bytes;
    if (memcmp(h->magic, MIM_INDEX_MAGIC, 8)) why = "bad magic (not a mimscale index)";
    else if (h->version < 1 || h->version > MIM_INDEX_VERSION) {
        uint32_t v = h->version;
        munmap(map, (size_t)st.st_size);
        return mim_err(MIM_EFORMAT, "%s: index format %u, this mimscale reads formats 1 to %d (built by a newer mimscale? "
                       "rebuild it with `mimscale index`)", path, v, MIM_INDEX_VERSION);
    }
    else if (h->record_size != sizeof(mim_index_record)) why = "bad record size";
    else if (h->file_size != fs) why = "file size does not match header (truncated?)";
    else if (ns >= UINT32_MAX || h->shard_table_off != sizeof *h) why = "bad shard table";
    else if (__builtin_mul_overflow(2 * (ns + 1), 8, &tbl) || tbl > fs - h->shard_table_off) why = "shard table out of bounds";
    else if (h->records_off < h->shard_table_off + tbl || h->records_off > fs || h->records_off % 32) why = "bad records offset";
    else if (__builtin_mul_overflow(n, sizeof(mim_index_record), &rec_bytes) || rec_bytes > fs - h->records_off) why = "record count does not match file size";
    uint64_t co = h->version >= 3 ? h->classes_off : 0, cl = h->version >= 3 ? h->classes_len : 0;
    if (!why && co && (co % 32 || co > fs || cl != fs - co || cl == 0)) why = "class list out of bounds";
    if (!why) {
        // records end the data, or the json table (n entries, 32-aligned)
        // does; the class list (format 3) follows them
        uint64_t end = co ? co : fs, rec_end = h->records_off + rec_bytes, jo = h->json_table_off;
        if (jo == 0 && (co ? rec_end > end || end - rec_end >= 32 : rec_end != end)) why = "record count does not match file size";
        else if (jo != 0) {
            uint64_t jbytes = n * sizeof(mim_index_json);
            if (h->version < 2 || jo % 32 || jo < rec_end || jo > end || jbytes > end - jo ||
                (co ? end - (jo + jbytes) >= 32 : jo + jbytes != end))
                why = "json table does not match the record count";
        }
    }
    if (why) { munmap(map, (size_t)st.st_size); return mim_err(MIM_EFORMAT, "%s: %s", path, why); }
    const uint64_t* first = (const uint64_t*)((const uint8_t*)map + h->shard_table_off);
    const uint64_t* name_off = first + ns + 1;
    const char* blob = (const char*)(name_off + ns + 1);
    uint64_t blob_len = h->records_off - (h->shard_table_off + tbl);
    for (uint64_t s = 0; s < ns && !why; s++) {
        if (first[s] > first[s + 1] || name_off[s] >= name_off[s + 1] || name_off[s + 1] > blob_len ||
            blob[name_off[s + 1] - 1] != 0) why = "corrupt shard table";
    }
    if (!why && first[ns] != n) why = "shard table does not cover the records";
    if (why) { munmap(map, (size_t)st.st_size); return mim_err(MIM_EFORMAT, "%s: %s", path, why); }
    mim_index* ix = calloc(1, sizeof *ix);
    char** resolved = calloc(ns ? ns : 1, sizeof *resolved);
    char* dir = strdup(path);
    if (!ix || !resolved || !dir) { free(ix); free(resolved); free(dir); munmap(map, (size_t)st.st_size); return mim_err(MIM_ENOMEM, "out of memory"); }
    char* slash = strrchr(dir, '/');
    if (slash) *slash = 0; else { dir[0] = '.'; dir[1] = 0; }
    ix->map = map; ix->map_len = (size_t)st.st_size; ix->h = h; ix->first = first; ix->name_off = name_off;
    ix->blob = blob; ix->blob_len = blob_len;
    ix->rec = (const mim_index_record*)((const uint8_t*)map + h->records_off);
    ix->json = h->json_table_off ? (const mim_index_json*)((const uint8_t*)map + h->json_table_off) : NULL;
    ix->resolved = resolved; ix->dir = dir;
    // moved data: fall back to <index dir>/<basename>
    for (uint64_t s = 0; s < ns; s++) {
        const char* p = blob + name_off[s];
        if (access(p, F_OK) == 0) continue;
        const char* b = strrchr(p, '/');
        b = b ? b + 1 : p;
        size_t L = strlen(dir) + strlen(b) + 2;
        char* alt = malloc(L);
        if (!alt) continue;
        snprintf(alt, L, "%s/%s", dir, b);
        if (access(alt, F_OK) == 0) resolved[s] = alt; else free(alt);
    }
    madvise(map, (size_t)st.st_size, MADV_RANDOM);
    *out = ix;
    return MIM_OK;
}

void mim_index_close(mim_index* ix) {
    if (!ix) return;
    for (uint64_t s = 0; s < ix->h->n_shards; s++) free(ix->resolved[s]);
    free(ix->resolved); free(ix->dir);
    munmap((void*)ix->map, ix->map_len);
    free(ix);
}

const char* mim_index_classes(const mim_index* ix, size_t* len) {
    if (ix->h->version < 3 || !ix->h->classes_off) { if (len) *len = 0; return NULL; }
    if (len) *len = (size_t)ix->h->classes_len;
    return (const char*)ix->map + ix->h->classes_off;
}

uint64_t mim_index_content_hash(const mim_index* ix) {
    if (ix->h->version >= 3 && ix->h->content_hash) return ix->h->content_hash;
    uint64_t h = HASH_SEED;
    for (uint64_t i = 0; i < ix->h->n_samples; i++) h = hash_record(h, &ix->rec[i]);
    return mix64(h ^ ix->h->n_shards) | 1;
}

// Line k of a class list (without its newline) into out; 0 past the end.
static int class_line(const char* t, size_t n, int k, char* out, size_t cap) {
    size_t i = 0;
    for (int line = 0; i < n; line++) {
        size_t j = i;
        while (j < n && t[j] != '\n') j++;
        if (line == k) {
            size_t m = j - i;
            while (m && (t[i + m - 1] == '\r' || t[i + m - 1] == ' ' || t[i + m - 1] == '\t')) m--;
            if (m >= cap) m = cap - 1;
            memcpy(out, t + i, m);
            out[m] = 0;
            return 1;
        }
        i = j + 1;
    }
    return 0;
}

int mim_index_classes_check(const char* train_path, const char* eval_path) {
    if (!train_path || !eval_path || !strcmp(train_path, eval_path)) return MIM_OK;
    mim_index *a = NULL, *b = NULL;
    if (mim_index_open(&a, train_path) < 0) return MIM_OK;   // not an index (an IDX folder): nothing to compare
    if (mim_index_open(&b, eval_path) < 0) { mim_index_close(a); return MIM_OK; }
    size_t na, nb;
    const char* ta = mim_index_classes(a, &na);
    const char* tb = mim_index_classes(b, &nb);
    int rc = MIM_OK;
    if (ta && tb) {
        char x[256], y[256];
        for (int k = 0;; k++) {
            int ha = class_line(ta, na, k, x, sizeof x), hb = class_line(tb, nb, k, y, sizeof y);
            if (!ha && !hb) break;
            if (ha != hb || strcmp(x, y)) {
                rc = mim_err(MIM_EDATA, "%s and %s label classes differently: label %d is '%s' in the training data and "
                             "'%s' in the evaluation data; pack the evaluation split with the training classes "
                             "(mimscale pack --classes TRAIN-classes.txt, --labels-from FILE for an annotation list)",
                             train_path, eval_path, k, ha ? x : "(none)", hb ? y : "(none)");
                break;
            }
        }
    }
    mim_index_close(a);
    mim_index_close(b);
    return rc;
}

uint64_t mim_index_count(const mim_index* ix) { return ix->h->n_samples; }
uint64_t mim_index_n_shards(const mim_index* ix) { return ix->h->n_shards; }
const mim_index_header* mim_index_header_get(const mim_index* ix) { return ix->h; }

const mim_index_record* mim_index_get(const mim_index* ix, uint64_t i) {
    CHECK(i < ix->h->n_samples);
    return &ix->rec[i];
}

const char* mim_index_shard_path(const mim_index* ix, uint32_t s) {
    CHECK(s < ix->h->n_shards);
    return ix->resolved[s] ? ix->resolved[s] : ix->blob + ix->name_off[s];
}

uint64_t mim_index_shard_first(const mim_index* ix, uint32_t s) {
    CHECK(s <= ix->h->n_shards);
    return ix->first[s];
}

int mim_index_has_json(const mim_index* ix) { return ix->json != NULL; }

int mim_index_json_get(const mim_index* ix, uint64_t i, uint64_t* off, uint32_t* size) {
    const mim_index_record* r = mim_index_get(ix, i);
    if (!ix->json || !(r->flags & MIM_REC_HAS_JSON)) return 0;
    const mim_index_json* j = &ix->json[i];
    int64_t d = (int64_t)j->rel_blocks * 512;
    if (j->size == 0 || (d < 0 && (uint64_t)-d > r->offset)) return 0;   // corrupt entry: as if absent
    *off = r->offset + (uint64_t)d;
    *size = j->size;
    return 1;
}

void mim_sample_reader_init(mim_sample_reader* rd, const mim_index* ix) {
    memset(rd, 0, sizeof *rd);
    rd->ix = ix;
    for (int k = 0; k < MIM_READER_FDS; k++) rd->fd[k] = -1;
}

void mim_sample_reader_free(mim_sample_reader* rd) {
    for (int k = 0; k < MIM_READER_FDS; k++) if (rd->fd[k] >= 0) close(rd->fd[k]);
    for (int k = 0; k < MIM_READER_FDS; k++) rd->fd[k] = -1;
}

// Read size bytes at off of sample i's shard through the fd cache.
static int read_at(mim_sample_reader* rd, uint64_t i, uint64_t off, uint32_t size, uint8_t** buf, size_t* cap, size_t* n) {
    const mim_index_record* r = mim_index_get(rd->ix, i);
    if (r->shard >= rd->ix->h->n_shards) return mim_err(MIM_EFORMAT, "sample %llu: bad shard id", (unsigned long long)i);
    int slot = -1, victim = 0;
    for (int k = 0; k < MIM_READER_FDS; k++) {
        if (rd->fd[k] >= 0 && rd->shard[k] == r->shard) { slot = k; break; }
        if (rd->fd[k] < 0 || rd->used[k] < rd->used[victim]) victim = k;
    }
    if (slot < 0) {
        if (rd->fd[victim] >= 0) close(rd->fd[victim]);
        const char* p = mim_index_shard_path(rd->ix, r->shard);
        rd->fd[victim] = open(p, O_RDONLY | O_CLOEXEC);
        if (rd->fd[victim] < 0) return mim_err(MIM_EIO, "cannot open shard %s: %s", p, strerror(errno));
        rd->shard[victim] = r->shard;
        slot = victim;
    }
    rd->used[slot] = ++rd->tick;
    if (*cap < size || !*buf) {
        size_t nc = size ? size : 1;
        uint8_t* nb = realloc(*buf, nc);
        if (!nb) return mim_err(MIM_ENOMEM, "out of memory for a %u-byte sample", size);
        *buf = nb; *cap = nc;
    }
    if (off > (uint64_t)INT64_MAX - size) return mim_err(MIM_EFORMAT, "sample %llu: offset out of range", (unsigned long long)i);
    size_t got = 0;
    while (got < size) {
        ssize_t k = pread(rd->fd[slot], *buf + got, size - got, (off_t)(off + got));
        if (k < 0) { if (errno == EINTR) continue; return mim_err(MIM_EIO, "read sample %llu: %s", (unsigned long long)i, strerror(errno)); }
        if (k == 0) return mim_err(MIM_EIO, "sample %llu: shard %s shorter than the index says", (unsigned long long)i,
                                   mim_index_shard_path(rd->ix, r->shard));
        got += (size_t)k;
    }
    *n = size;
    return MIM_OK;
}

int mim_sample_reader_read(mim_sample_reader* rd, uint64_t i, uint8_t** buf, size_t* cap, size_t* n) {
    const mim_index_record* r = mim_index_get(rd->ix, i);
    return read_at(rd, i, r->offset, r->size, buf, cap, n);
}

int mim_sample_reader_read_json(mim_sample_reader* rd, uint64_t i, uint8_t** buf, size_t* cap, size_t* n) {
    uint64_t off; uint32_t size;
    if (!mim_index_json_get(rd->ix, i, &off, &size)) return mim_err(MIM_ENOTFOUND, "sample %llu has no key.json", (unsigned long long)i);
    return read_at(rd, i, off, size, buf, cap, n);
}
