// subset.c: nested subset selection by histogram + boundary-bin refinement,
// streamed to files (see subset.h).
#include "data/subset.h"
#include "core/check.h"
#include "core/prof.h"
#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

_Static_assert(sizeof(mim_subset_header) == 64, "subset header is 64 bytes");

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t mim_subset_rank(uint64_t seed, uint64_t key_hash) { return mix64(key_hash ^ mix64(seed ^ 0x5eed5eed5eedULL)); }

int mim_subset_strategy_parse(const char* s, mim_subset_strategy* out) {
    if (!strcmp(s, "random")) *out = MIM_SUBSET_RANDOM;
    else if (!strcmp(s, "first")) *out = MIM_SUBSET_FIRST;
    else if (!strcmp(s, "stratified")) *out = MIM_SUBSET_STRATIFIED;
    else if (!strcmp(s, "filter")) *out = MIM_SUBSET_FILTER;
    else return mim_err(MIM_EARG, "unknown subset strategy '%s' (random, first, stratified, filter)", s);
    return MIM_OK;
}

int mim_subset_path(char* buf, size_t cap, const char* prefix, const char* strategy, const char* spec, uint64_t seed, uint64_t size) {
    int sp = spec && spec[0];
    return snprintf(buf, cap, "%s-%s%s%s-s%llu-%llu.sub", prefix, strategy, sp ? "-" : "", sp ? spec : "", (unsigned long long)seed,
                    (unsigned long long)size);
}

const char* mim_subset_strategy_name(mim_subset_strategy s) {
    return s == MIM_SUBSET_RANDOM ? "random" : s == MIM_SUBSET_FIRST ? "first" : s == MIM_SUBSET_STRATIFIED ? "stratified" : "filter";
}

// ---- output files ---------------------------------------------------------------

typedef struct {
    FILE* f;
    char* tmp;
    const char* path;
    mim_subset_header h;
} out_file;

static int out_open(out_file* o, const char* path, const mim_index* ix, mim_subset_strategy st, uint64_t seed,
                    uint64_t spec_hash, uint64_t n) {
    memset(o, 0, sizeof *o);
    o->path = path;
    size_t L = strlen(path) + 24;
    o->tmp = malloc(L);
    if (!o->tmp) return mim_err(MIM_ENOMEM, "out of memory");
    snprintf(o->tmp, L, "%s.tmp%d", path, (int)getpid());
    o->f = fopen(o->tmp, "wb");
    if (!o->f) return mim_err(MIM_EIO, "cannot create %s: %s", o->tmp, strerror(errno));
    setvbuf(o->f, NULL, _IOFBF, 1 << 20);
    memcpy(o->h.magic, MIM_SUBSET_MAGIC, 8);
    o->h.version = 1; o->h.strategy = (uint32_t)st; o->h.seed = seed; o->h.n = n; o->h.spec_hash = spec_hash;
    o->h.index_n_samples = mim_index_count(ix); o->h.index_n_shards = mim_index_n_shards(ix);
    o->h.index_hash = mim_index_content_hash(ix);
    if (fwrite(&o->h, sizeof o->h, 1, o->f) != 1) return mim_err(MIM_EIO, "write %s failed", o->tmp);
    return MIM_OK;
}

static int out_finish(out_file* o, uint64_t written, int ok) {
    int rc = MIM_OK;
    if (!o->f) { free(o->tmp); return MIM_OK; }
    if (ok) {
        CHECK(written == o->h.n);
        if (fflush(o->f) || fsync(fileno(o->f))) rc = mim_err(MIM_EIO, "write %s failed: %s", o->tmp, strerror(errno));
    }
    if (fclose(o->f) && rc == MIM_OK && ok) rc = mim_err(MIM_EIO, "close %s failed", o->tmp);
    if (ok && rc == MIM_OK && rename(o->tmp, o->path)) rc = mim_err(MIM_EIO, "rename to %s failed: %s", o->path, strerror(errno));
    if (!ok || rc < 0) unlink(o->tmp);
    free(o->tmp);
    o->f = NULL; o->tmp = NULL;
    return rc;
}

// ---- selection ----------------------------------------------------------------------

typedef struct { uint64_t rank, id; uint32_t group; } cand;

static int cand_cmp(const void* a, const void* b) {
    const cand* x = a; const cand* y = b;
    if (x->group != y->group) return x->group < y->group ? -1 : 1;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

// Water-filled quotas q[g] summing to k, capped by cnt[g]; monotone in k.
static void quotas(const uint64_t* cnt, size_t G, uint64_t k, uint64_t* q) {
    // binary search the largest level L with sum min(cnt, L) <= k
    uint64_t lo = 0, hi = 0;
    for (size_t g = 0; g < G; g++) if (cnt[g] > hi) hi = cnt[g];
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo + 1) / 2, s = 0;
        for (size_t g = 0; g < G; g++) s += cnt[g] < mid ? cnt[g] : mid;
        if (s <= k) lo = mid; else hi = mid - 1;
    }
    uint64_t s = 0;
    for (size_t g = 0; g < G; g++) { q[g] = cnt[g] < lo ? cnt[g] : lo; s += q[g]; }
    for (size_t g = 0; g < G && s < k; g++) if (cnt[g] > lo) { q[g]++; s++; }
    CHECK(s == k);
}

// ---- metadata pass ------------------------------------------------------------------

#define EXCLUDED 0xFF

// mg[i] = bucket of sample i (0 without buckets) or EXCLUDED; counts in *st.
static int meta_pass(const mim_index* ix, const mim_meta_spec* m, const mim_subset_opts* o, uint8_t* mg, mim_subset_stats* st) {
    uint64_t N = mim_index_count(ix);
    const uint64_t CH = 4096;   // samples per work item: ids ascend, so reads walk each shard forward
    uint64_t n_chunks = (N + CH - 1) / CH, done = 0;
    int nt = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    int show = o->progress > 0 || (o->progress < 0 && isatty(2));
    double t0 = mim_now_s(), last = t0;
    int oom = 0;
    #pragma omp parallel num_threads(nt)
    {
        mim_sample_reader rd;
        mim_sample_reader_init(&rd, ix);
        uint8_t* buf = NULL; size_t cap = 0, n;
        uint64_t no_json = 0, bad = 0, no_field = 0, rej = 0, rerr = 0;
        #pragma omp for schedule(dynamic, 1)
        for (uint64_t c = 0; c < n_chunks; c++) {
            uint64_t e = (c + 1) * CH < N ? (c + 1) * CH : N;
            for (uint64_t i = c * CH; i < e; i++) {
                uint64_t off; uint32_t jsz;
                int g = EXCLUDED, rc;
                if (!mim_index_json_get(ix, i, &off, &jsz)) no_json++;
                else if (jsz > MIM_META_JSON_MAX) bad++;   // not read at all
                else if ((rc = mim_sample_reader_read_json(&rd, i, &buf, &cap, &n)) == MIM_ENOMEM) {
                    #pragma omp atomic write
                    oom = 1;
                } else if (rc < 0) rerr++;
                else {
                    g = mim_meta_classify(m, buf, n);
                    if (g == MIM_META_REJECTED) rej++;
                    else if (g == MIM_META_NO_FIELD) no_field++;
                    else if (g < 0) bad++;
                    if (g < 0) g = EXCLUDED;
                }
                mg[i] = (uint8_t)g;
            }
            uint64_t d;
            #pragma omp atomic capture
            d = done += e - c * CH;
            if (show && omp_get_thread_num() == 0) {
                double t = mim_now_s();
                if (t - last > 0.5) {
                    last = t;
                    fprintf(stderr, "\rsubset: key.json of %llu/%llu samples, %.0f/s   ", (unsigned long long)d,
                            (unsigned long long)N, (double)d / (t - t0 + 1e-9));
                }
            }
        }
        #pragma omp critical
        {
            st->no_json += no_json; st->bad_json += bad; st->no_field += no_field; st->rejected += rej; st->read_errors += rerr;
        }
        mim_sample_reader_free(&rd);
        free(buf);
    }
    if (show) fprintf(stderr, "\rsubset: key.json of %llu samples read in %.1f s          \n", (unsigned long long)N, mim_now_s() - t0);
    st->meta_seconds = mim_now_s() - t0;
    return oom ? mim_err(MIM_ENOMEM, "out of memory reading key.json members") : MIM_OK;
}

void mim_subset_stats_format(const mim_subset_stats* st, uint64_t n_index, char* out, size_t cap) {
    int k = snprintf(out, cap, "%llu of %llu samples eligible", (unsigned long long)st->eligible, (unsigned long long)n_index);
    uint64_t ex = st->no_json + st->bad_json + st->no_field + st->rejected + st->read_errors;
    if (ex && k > 0 && (size_t)k < cap)
        k += snprintf(out + k, cap - (size_t)k, "; excluded: %llu by the filter, %llu without the field (or not a number), "
                      "%llu without key.json, %llu bad key.json, %llu unreadable (metadata pass %.1f s)",
                      (unsigned long long)st->rejected, (unsigned long long)st->no_field, (unsigned long long)st->no_json,
                      (unsigned long long)st->bad_json, (unsigned long long)st->read_errors, st->meta_seconds);
    if (st->n_groups > 1 && k > 0 && (size_t)k < cap) {
        k += snprintf(out + k, cap - (size_t)k, "; per bucket:");
        for (int g = 0; g < st->n_groups && k > 0 && (size_t)k < cap; g++)
            k += snprintf(out + k, cap - (size_t)k, " %llu", (unsigned long long)st->group_count[g]);
    }
}

// ---- selection ----------------------------------------------------------------------

// How samples map to groups: -1 excluded, else 0 .. G-1.
typedef struct {
    const uint8_t* mg;   // metadata bucket per sample, or NULL
    int by_bucket;       // group = mg[i]
    int by_label;        // group = label
    size_t G;
} grouping;

static inline long group_of(const grouping* gp, uint64_t i, const mim_index_record* r) {
    if (gp->mg) {
        uint8_t v = gp->mg[i];
        if (v == EXCLUDED) return -1;
        if (gp->by_bucket) return v;
    }
    if (gp->by_label) return (r->label < 0 || (size_t)r->label >= gp->G) ? -1 : r->label;
    return 0;
}

int mim_subset_make(const mim_index* ix, mim_subset_strategy strategy, uint64_t seed,
                    const uint64_t* sizes, size_t n_sizes, char* const* out_paths) {
    return mim_subset_make_ex(ix, strategy, seed, sizes, n_sizes, out_paths, NULL, NULL);
}

int mim_subset_make_ex(const mim_index* ix, mim_subset_strategy strategy, uint64_t seed,
                       const uint64_t* sizes, size_t n_sizes, char* const* out_paths,
                       const mim_subset_opts* opts, mim_subset_stats* st_out) {
    uint64_t N = mim_index_count(ix);
    mim_subset_opts o = { NULL, 0, -1 };
    if (opts) o = *opts;
    mim_subset_stats st;
    memset(&st, 0, sizeof st);
    st.n_groups = 1;
    if (n_sizes == 0) return mim_err(MIM_EARG, "no subset sizes given");
    const mim_meta_spec* m = o.meta;
    int has_cond = m && m->n_cond > 0, has_bucket = m && m->bucket_field[0];
    if (strategy == MIM_SUBSET_FILTER && !has_cond)
        return mim_err(MIM_EARG, "the filter strategy needs a filter (e.g. --filter 'width>=256')");
    if (has_bucket && strategy != MIM_SUBSET_STRATIFIED)
        return mim_err(MIM_EARG, "bucket fields only apply to the stratified strategy");
    uint64_t spec_hash = m ? mim_meta_spec_hash(m) : 0;

    grouping gp = { NULL, 0, 0, 1 };
    uint8_t* mg = NULL;
    if (has_cond || has_bucket) {
        if (!mim_index_has_json(ix)) {
            if (mim_index_header_get(ix)->version < 2)
                return mim_err(MIM_EARG, "this index is format %u, which does not record where key.json lies; rebuild it with "
                               "`mimscale index` to filter or bucket by metadata", mim_index_header_get(ix)->version);
            return mim_err(MIM_EARG, "no sample of this index has a key.json member (img2dataset metadata), so there is "
                           "nothing to filter or bucket by");
        }
        mg = malloc(N ? N : 1);
        if (!mg) return mim_err(MIM_ENOMEM, "out of memory (%llu bytes of per-sample metadata)", (unsigned long long)N);
        int rc = meta_pass(ix, m, &o, mg, &st);
        if (rc < 0) { free(mg); if (st_out) *st_out = st; return rc; }
        gp.mg = mg;
    }
    if (strategy == MIM_SUBSET_STRATIFIED) {
        if (has_bucket) {
            gp.by_bucket = 1;
            gp.G = (size_t)mim_meta_n_groups(m);
        } else {
            int64_t L = mim_index_header_get(ix)->stats.n_labels;
            if (L <= 0) { free(mg); return mim_err(MIM_EARG, "stratified subsets need labels or a bucket field; this index has no labels"); }
            if (L > (1 << 20)) { free(mg); return mim_err(MIM_EARG, "stratified: %lld labels (max 1048576)", (long long)L); }
            gp.by_label = 1;
            gp.G = (size_t)L;
        }
    }
    const size_t G = gp.G;
    if (has_bucket) st.n_groups = (int)G;

    int rc = MIM_OK;
    out_file* of = calloc(n_sizes, sizeof *of);
    uint64_t* written = calloc(n_sizes, sizeof *written);
    // bins per group: power of two, G*B <= 4M counters
    int bbits = 20;
    while (bbits > 6 && ((size_t)1 << bbits) * G > ((size_t)1 << 22)) bbits--;
    size_t B = strategy == MIM_SUBSET_FIRST ? 1 : (size_t)1 << bbits;
    uint64_t* hist = calloc(G * B, sizeof *hist);
    uint64_t* cnt = calloc(G, sizeof *cnt);
    uint64_t* q = calloc(G, sizeof *q);
    uint64_t* need = calloc(n_sizes * G, sizeof *need);      // items needed from the boundary bin
    uint64_t* bbin = calloc(n_sizes * G, sizeof *bbin);      // boundary bin per (size, group)
    cand* cut = calloc(n_sizes * G, sizeof *cut);            // last included (rank, id) per (size, group)
    uint8_t* mark = calloc(G * B, 1);
    cand* cands = NULL;
    if (!of || !written || !hist || !cnt || !q || !need || !bbin || !cut || !mark) { rc = mim_err(MIM_ENOMEM, "out of memory"); goto done; }

    // pass 1: per-group histogram of the top rank bits
    for (uint64_t i = 0; i < N; i++) {
        const mim_index_record* r = mim_index_get(ix, i);
        long g = group_of(&gp, i, r);
        if (g < 0) continue;
        size_t b = 0;
        if (strategy != MIM_SUBSET_FIRST) b = (size_t)(mim_subset_rank(seed, r->key_hash) >> (64 - bbits));
        hist[(size_t)g * B + b]++;
        cnt[g]++;
    }
    for (size_t g = 0; g < G; g++) st.eligible += cnt[g];
    for (size_t g = 0; g < G && has_bucket; g++) st.group_count[g] = cnt[g];
    for (size_t s = 0; s < n_sizes; s++)
        if (sizes[s] > st.eligible) {
            char why[512];
            mim_subset_stats_format(&st, N, why, sizeof why);
            rc = mim_err(MIM_EARG, "subset size %llu exceeds the %llu eligible samples (%s)", (unsigned long long)sizes[s],
                         (unsigned long long)st.eligible, why);
            goto done;
        }

    if (strategy == MIM_SUBSET_FIRST) {   // the first k eligible samples in index order
        for (size_t s = 0; s < n_sizes && rc == MIM_OK; s++) rc = out_open(&of[s], out_paths[s], ix, strategy, seed, spec_hash, sizes[s]);
        for (uint64_t i = 0; i < N && rc == MIM_OK; i++) {
            if (group_of(&gp, i, mim_index_get(ix, i)) < 0) continue;
            int more = 0;
            for (size_t s = 0; s < n_sizes; s++) {
                if (written[s] == sizes[s]) continue;
                if (fwrite(&i, 8, 1, of[s].f) != 1) { rc = mim_err(MIM_EIO, "write %s failed", of[s].tmp); break; }
                more |= ++written[s] < sizes[s];
            }
            if (!more) break;
        }
        goto done;
    }

    for (size_t s = 0; s < n_sizes; s++) {
        quotas(cnt, G, sizes[s], q);
        for (size_t g = 0; g < G; g++) {
            size_t k = s * G + g;
            if (q[g] == 0) { bbin[k] = UINT64_MAX; continue; }   // nothing from this group
            uint64_t cum = 0; size_t b = 0;
            while (cum + hist[g * B + b] < q[g]) cum += hist[g * B + b++];
            bbin[k] = b; need[k] = q[g] - cum;
            mark[g * B + b] = 1;
        }
    }
    // pass 2: candidates in boundary bins
    size_t nc = 0, cc = 0;
    for (size_t gb = 0; gb < G * B; gb++) if (mark[gb]) cc += hist[gb];
    cands = malloc((cc ? cc : 1) * sizeof *cands);
    if (!cands) { rc = mim_err(MIM_ENOMEM, "out of memory (%zu candidates)", cc); goto done; }
    for (uint64_t i = 0; i < N; i++) {
        const mim_index_record* r = mim_index_get(ix, i);
        long g = group_of(&gp, i, r);
        if (g < 0) continue;
        uint64_t rk = mim_subset_rank(seed, r->key_hash);
        if (mark[(size_t)g * B + (rk >> (64 - bbits))]) cands[nc++] = (cand){ rk, i, (uint32_t)g };
    }
    CHECK(nc == cc);
    qsort(cands, nc, sizeof *cands, cand_cmp);
    for (size_t s = 0; s < n_sizes; s++)
        for (size_t g = 0; g < G; g++) {
            size_t k = s * G + g;
            if (bbin[k] == UINT64_MAX) continue;
            // candidates of group g in bin bbin[k], sorted: take the need-th
            size_t lo = 0, hi = nc;   // first candidate of group g
            while (lo < hi) { size_t mid = (lo + hi) / 2; if (cands[mid].group < g) lo = mid + 1; else hi = mid; }
            size_t j = lo;
            while (j < nc && cands[j].group == g && (cands[j].rank >> (64 - bbits)) != bbin[k]) j++;
            CHECK(j + need[k] - 1 < nc);
            cut[k] = cands[j + need[k] - 1];
        }
    // pass 3: stream ids (ascending) to every output
    for (size_t s = 0; s < n_sizes && rc == MIM_OK; s++) rc = out_open(&of[s], out_paths[s], ix, strategy, seed, spec_hash, sizes[s]);
    for (uint64_t i = 0; i < N && rc == MIM_OK; i++) {
        const mim_index_record* r = mim_index_get(ix, i);
        long g = group_of(&gp, i, r);
        if (g < 0) continue;
        uint64_t rk = mim_subset_rank(seed, r->key_hash);
        uint64_t bin = rk >> (64 - bbits);
        for (size_t s = 0; s < n_sizes; s++) {
            size_t k = s * G + (size_t)g;
            if (bbin[k] == UINT64_MAX || bin > bbin[k]) continue;
            if (bin == bbin[k] && (rk > cut[k].rank || (rk == cut[k].rank && i > cut[k].id))) continue;
            if (fwrite(&i, 8, 1, of[s].f) != 1) { rc = mim_err(MIM_EIO, "write %s failed", of[s].tmp); break; }
            written[s]++;
        }
    }
done:
    for (size_t s = 0; of && written && s < n_sizes; s++) {
        int r2 = out_finish(&of[s], written[s], rc == MIM_OK);
        if (rc == MIM_OK) rc = r2;
    }
    free(hist); free(cnt); free(q); free(need); free(bbin); free(cut); free(mark); free(cands);
    free(of); free(written); free(mg);
    if (st_out) *st_out = st;
    return rc;
}

// ---- reading -----------------------------------------------------------------------

struct mim_subset {
    void* map;
    size_t len;
    const mim_subset_header* h;
    const uint64_t* ids;
};

int mim_subset_open(mim_subset** out, const char* path, const mim_index* ix) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return mim_err(MIM_EIO, "cannot open subset %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || (uint64_t)st.st_size < sizeof(mim_subset_header)) { close(fd); return mim_err(MIM_EFORMAT, "%s: not a subset file", path); }
    void* map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return mim_err(MIM_EIO, "cannot map %s: %s", path, strerror(errno));
    const mim_subset_header* h = map;
    const char* why = NULL;
    if (memcmp(h->magic, MIM_SUBSET_MAGIC, 8) || h->version != 1) why = "bad magic or version (not a mimscale subset)";
    else if (h->n > ((uint64_t)st.st_size - sizeof *h) / 8 || sizeof *h + h->n * 8 != (uint64_t)st.st_size) why = "size does not match its header (truncated?)";
    else if (ix && (h->index_n_samples != mim_index_count(ix) || h->index_n_shards != mim_index_n_shards(ix)))
        why = "drawn from a different index (sample/shard counts differ); make subsets of this index with `mimscale subset`";
    else if (ix && h->index_hash && h->index_hash != mim_index_content_hash(ix))
        why = "drawn from a different index (same counts, other samples or order: its content hash differs); make "
              "subsets of this index with `mimscale subset`";
    const uint64_t* ids = (const uint64_t*)(h + 1);
    if (!why && ix)
        for (uint64_t i = 0; i < h->n; i++)
            if (ids[i] >= h->index_n_samples || (i && ids[i] <= ids[i - 1])) { why = "ids out of range or not ascending"; break; }
    if (why) { munmap(map, (size_t)st.st_size); return mim_err(MIM_EFORMAT, "%s: %s", path, why); }
    mim_subset* s = calloc(1, sizeof *s);
    if (!s) { munmap(map, (size_t)st.st_size); return mim_err(MIM_ENOMEM, "out of memory"); }
    s->map = map; s->len = (size_t)st.st_size; s->h = h; s->ids = ids;
    *out = s;
    return MIM_OK;
}

void mim_subset_close(mim_subset* s) {
    if (!s) return;
    munmap(s->map, s->len);
    free(s);
}

uint64_t mim_subset_count(const mim_subset* s) { return s->h->n; }
const uint64_t* mim_subset_ids(const mim_subset* s) { return s->ids; }
const mim_subset_header* mim_subset_header_get(const mim_subset* s) { return s->h; }
