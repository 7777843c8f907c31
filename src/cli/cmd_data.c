// cmd_data.c: the data subcommands `mimscale index`, `subset` and `pack`
// (thin wrappers over src/data/; all the work is in the library).
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "data/index.h"
#include "data/pack.h"
#include "data/subset.h"
#include "data/tar.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int cmd_index(int argc, char** argv);
int cmd_subset(int argc, char** argv);
int cmd_pack(int argc, char** argv);

#define MAXPOS 4096

int cmd_index(int argc, char** argv) {
    const char *out, *classes; int threads, quiet; float max_skip;
    flag f[] = {
        { "out", FLAG_STR, &out, "", 0, 0, "index file to write (required)", 0 },
        { "classes", FLAG_STR, &classes, "", 0, 0, "class list recorded in the index (line i = label i; default: pack's PREFIX-classes.txt or classes.txt beside the first shard)", 0 },
        { "max-skip-frac", FLAG_FLOAT, &max_skip, "0", 0, 1, "fraction of the shards that may be unreadable or corrupt (0: none; past it the index is not kept and the command exits 6)", 0 },
        { "threads", FLAG_INT, &threads, "0", 0, 1024, "shards scanned in parallel (0: all cores)", 0 },
        { "quiet", FLAG_BOOL, &quiet, "0", 0, 1, "no progress line", 0 },
    };
    const char* usage =
        "usage: mimscale index SHARDS... --out data.idx\n"
        "  SHARDS: paths, brace patterns 'train-{000000..000009}.tar', globs 'dir/*.tar' (quoted),\n"
        "          or @list.txt (one path per line). Scans once, no decoding.";
    static const char* pos[MAXPOS]; int np;
    int r = flags_parse(f, (int)(sizeof f / sizeof *f), argc, argv, usage, pos, MAXPOS, &np);
    if (r) return r > 0 ? 0 : 2;
    if (!out) { fprintf(stderr, "error: --out is required (see --help)\n"); return 2; }
    if (np == 0) { fprintf(stderr, "error: no shards given (see --help)\n"); return 2; }
    mim_shard_list l = { 0 };
    for (int i = 0; i < np; i++)
        if (mim_shards_expand(&l, pos[i]) < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); mim_shards_free(&l); return 1; }
    mim_index_build_opts o = { threads, quiet ? 0 : -1, classes && classes[0] ? classes : NULL };
    mim_index_stats st;
    int rc = mim_index_build(out, l.paths, l.n, &o, &st);
    size_t n_shards = l.n;
    mim_shards_free(&l);
    if (rc == MIM_ENOTFOUND) {   // nothing indexed: no file was written
        if (st.n_empty)
            fprintf(stderr, "error: %s\n  hint: %llu image members are 0 bytes: the shards were written without their "
                    "image data (an interrupted download or copy?); write them again\n", mim_err_msg(),
                    (unsigned long long)st.n_empty);
        else
            fprintf(stderr, "error: %s\n  hint: the shards must be webdataset tars whose samples have a "
                    ".jpg/.jpeg/.png/.webp member\n", mim_err_msg());
        return 1;
    }
    if (rc < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 1; }
    char line[512];
    mim_index_stats_format(&st, line, sizeof line);
    uint64_t bad = st.n_unreadable + st.n_bad_shards;
    if (bad && (max_skip <= 0 || (double)bad / (double)n_shards > max_skip)) {
        unlink(out);   // a partial index would train on part of the data without a word
        fprintf(stderr, "error: %llu of %zu shards unreadable or corrupt (reasons above); %s not kept (%s).\n"
                "  Fix or leave out those shards, or accept the loss with --max-skip-frac %.2g\n",
                (unsigned long long)bad, n_shards, out, line, (double)bad / (double)n_shards);
        return MIM_EXIT_DATA;
    }
    double bytes_per = (double)(sizeof(mim_index_record) + (st.n_json ? sizeof(mim_index_json) : 0)) +
                       (double)sizeof(mim_index_header) / (double)st.n_samples;
    printf("index %s: %zu shards, %s (%.1f MB/s, %.1f bytes/sample)\n", out, n_shards, line,
           st.bytes / 1e6 / (st.seconds + 1e-9), bytes_per);
    return 0;
}

// "500000,1000000,5M" -> sizes (K/M/G suffixes allowed)
static int parse_sizes(const char* s, uint64_t* out, int max) {
    int n = 0;
    while (*s) {
        char* end;
        unsigned long long v = strtoull(s, &end, 10);
        if (end == s) return -1;
        if (*end == 'K' || *end == 'k') { v *= 1000; end++; }
        else if (*end == 'M' || *end == 'm') { v *= 1000000; end++; }
        else if (*end == 'G' || *end == 'g') { v *= 1000000000; end++; }
        if (v == 0 || n == max) return -1;
        out[n++] = v;
        if (*end == ',') end++;
        else if (*end) return -1;
        s = end;
    }
    return n;
}

// File-name form of a metadata spec: "width>=256,height>=256" -> "width-ge256-height-ge256".
static void spec_slug(const mim_meta_spec* m, char* out, size_t cap) {
    static const char* ops[] = { "ge", "le", "gt", "lt", "eq", "ne" };
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < m->n_cond && k < cap; i++) {
        int w = snprintf(out + k, cap - k, "%s%s-%s%g", i ? "-" : "", m->cond[i].field, ops[m->cond[i].op], m->cond[i].value);
        if (w > 0) k += (size_t)w;
    }
    if (m->bucket_field[0] && k < cap) {
        int w = snprintf(out + k, cap - k, "%sby-%s", k ? "-" : "", m->bucket_field);
        if (w > 0) k += (size_t)w;
        for (int i = 0; i < m->n_edges && k < cap; i++) {
            w = snprintf(out + k, cap - k, "%s%g", i ? "_" : "-", m->edges[i]);
            if (w > 0) k += (size_t)w;
        }
    }
    for (char* c = out; *c; c++) if (*c == '/' || *c == ' ') *c = '_';
}

int cmd_subset(int argc, char** argv) {
    const char *sizes_s, *strategy_s, *prefix, *filter, *bfield, *bedges; int64_t seed; int threads, quiet;
    flag f[] = {
        { "sizes", FLAG_STR, &sizes_s, "", 0, 0, "comma-separated subset sizes, e.g. 500000,1M,5M (required)", 0 },
        { "strategy", FLAG_STR, &strategy_s, "random", 0, 0,
          "random (nested), first (shard prefix), stratified (per label or --bucket-field), filter (random among --filter passes)", 0 },
        { "seed", FLAG_I64, &seed, "0", 0, 9.2e18, "seed of the random, stratified and filter orders", 0 },
        { "filter", FLAG_STR, &filter, "", 0, 0, "key.json conditions, all must hold: 'width>=256,height>=256' (>= <= > < == !=)", 0 },
        { "bucket-field", FLAG_STR, &bfield, "", 0, 0, "stratified: numeric key.json field to bucket by, e.g. width", 0 },
        { "bucket-edges", FLAG_STR, &bedges, "", 0, 0, "stratified: ascending edges, e.g. 128,256,512 (4 buckets: <128 .. >=512)", 0 },
        { "threads", FLAG_INT, &threads, "0", 0, 1024, "threads reading key.json (0: all cores)", 0 },
        { "quiet", FLAG_BOOL, &quiet, "0", 0, 1, "no progress line", 0 },
        { "out", FLAG_STR, &prefix, "", 0, 0, "output prefix (default: INDEX without .idx); files PREFIX-STRATEGY[-SPEC]-sSEED-SIZE.sub", 0 },
    };
    const char* usage =
        "usage: mimscale subset data.idx --sizes 500000,1000000 [--strategy random] [--seed 0]\n"
        "       mimscale subset data.idx --sizes 1M --strategy filter --filter 'width>=256,height>=256'\n"
        "       mimscale subset data.idx --sizes 1M --strategy stratified --bucket-field width --bucket-edges 128,256,512";
    const char* pos[1]; int np;
    int r = flags_parse(f, (int)(sizeof f / sizeof *f), argc, argv, usage, pos, 1, &np);
    if (r) return r > 0 ? 0 : 2;
    if (np != 1) { fprintf(stderr, "error: give exactly one index file (see --help)\n"); return 2; }
    if (!sizes_s) { fprintf(stderr, "error: --sizes is required (see --help)\n"); return 2; }
    uint64_t sizes[64];
    int ns = parse_sizes(sizes_s, sizes, 64);
    if (ns <= 0) { fprintf(stderr, "error: --sizes expects positive integers separated by commas, got '%s'\n", sizes_s); return 2; }
    mim_subset_strategy strat;
    if (mim_subset_strategy_parse(strategy_s, &strat) < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 2; }
    mim_meta_spec meta;
    mim_meta_spec_init(&meta);
    if (filter && mim_meta_parse_filter(&meta, filter) < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 2; }
    if (!bfield != !bedges) { fprintf(stderr, "error: --bucket-field and --bucket-edges go together (see --help)\n"); return 2; }
    if (bfield && mim_meta_parse_buckets(&meta, bfield, bedges) < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 2; }
    if (strat == MIM_SUBSET_FILTER && !filter) { fprintf(stderr, "error: --strategy filter needs --filter, e.g. --filter 'width>=256'\n"); return 2; }
    if (bfield && strat != MIM_SUBSET_STRATIFIED) { fprintf(stderr, "error: --bucket-field applies to --strategy stratified only\n"); return 2; }
    char slug[1024];
    spec_slug(&meta, slug, sizeof slug);
    mim_index* ix;
    if (mim_index_open(&ix, pos[0]) < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 1; }
    char base[4096];
    snprintf(base, sizeof base, "%s", prefix ? prefix : pos[0]);
    size_t bl = strlen(base);
    if (!prefix && bl > 4 && !strcmp(base + bl - 4, ".idx")) base[bl - 4] = 0;
    char* paths[64];
    for (int i = 0; i < ns; i++) {
        size_t L = strlen(base) + strlen(slug) + 96;
        paths[i] = malloc(L);
        if (!paths[i]) {
            fprintf(stderr, "error: out of memory\n");
            while (i-- > 0) free(paths[i]);
            mim_index_close(ix);
            return 1;
        }
        mim_subset_path(paths[i], L, base, mim_subset_strategy_name(strat), slug, (uint64_t)seed, (uint64_t)sizes[i]);
    }
    mim_subset_opts so = { &meta, threads, quiet ? 0 : -1 };
    mim_subset_stats sst;
    int rc = mim_subset_make_ex(ix, strat, (uint64_t)seed, sizes, (size_t)ns, paths, &so, &sst);
    if (rc < 0) fprintf(stderr, "error: %s\n", mim_err_msg());
    else {
        char line[1024];
        mim_subset_stats_format(&sst, mim_index_count(ix), line, sizeof line);
        printf("subset: %s\n", line);
        for (int i = 0; i < ns; i++) printf("%s: %llu samples\n", paths[i], (unsigned long long)sizes[i]);
    }
    for (int i = 0; i < ns; i++) free(paths[i]);
    mim_index_close(ix);
    return rc < 0 ? 1 : 0;
}

int cmd_pack(int argc, char** argv) {
    const char *out, *labels, *classes, *labels_from; int64_t per_shard, seed; int shuffle; float max_skip;
    flag f[] = {
        { "classes", FLAG_STR, &classes, "", 0, 0, "class list, line i = label i (e.g. the training split's PREFIX-classes.txt, so an evaluation split labels alike)", 0 },
        { "labels-from", FLAG_STR, &labels_from, "", 0, 0, "annotation file 'IMAGE CLASS ...' per line (e.g. val_annotations.txt): label the images under SRC by file name", 0 },
        { "max-skip-frac", FLAG_FLOAT, &max_skip, "0", 0, 1, "fraction of the images that may be lost, unreadable or unlabelled (0: 1%); past it: exit 6", 0 },
        { "out", FLAG_STR, &out, "", 0, 0, "shard prefix: writes PREFIX-000000.tar ... (required)", 0 },
        { "per-shard", FLAG_I64, &per_shard, "10000", 1, 1e12, "samples per shard", 0 },
        { "shuffle", FLAG_BOOL, &shuffle, "1", 0, 1, "shuffle ImageFolder samples so shards mix classes", 0 },
        { "seed", FLAG_I64, &seed, "0", 0, 9.2e18, "shuffle seed", 0 },
        { "labels", FLAG_STR, &labels, "", 0, 0, "IDX input: the idx1-ubyte labels file", 0 },
    };
    const char* usage =
        "usage: mimscale pack SRC --out PREFIX [--per-shard 10000]\n"
        "       mimscale pack VAL_DIR --labels-from val_annotations.txt --classes TRAIN-classes.txt --out VAL\n"
        "  SRC: an ImageFolder root (root/<class>/.../*.jpg|png|webp, any depth below the class folder) or an\n"
        "       IDX images file (*-idx3-ubyte[.gz], with --labels *-idx1-ubyte[.gz]); IDX images become PNG members.";
    const char* pos[1]; int np;
    int r = flags_parse(f, (int)(sizeof f / sizeof *f), argc, argv, usage, pos, 1, &np);
    if (r) return r > 0 ? 0 : 2;
    if (np != 1 || !out) { fprintf(stderr, "error: give one SRC and --out PREFIX (see --help)\n"); return 2; }
    mim_pack_stats st;
    mim_pack_opts po = {.per_shard = (uint64_t)per_shard, .shuffle = shuffle, .seed = (uint64_t)seed,
                        .classes = classes && classes[0] ? classes : NULL,
                        .labels_from = labels_from && labels_from[0] ? labels_from : NULL};
    int idx = strstr(pos[0], "idx3-ubyte") != NULL;
    if (idx && (po.classes || po.labels_from)) { fprintf(stderr, "error: --classes and --labels-from apply to image folders, not IDX files\n"); return 2; }
    int rc = idx ? mim_pack_idx(pos[0], labels, out, (uint64_t)per_shard, &st) : mim_pack_imagefolder_ex(pos[0], out, &po, &st);
    if (rc < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); return rc == MIM_EDATA ? MIM_EXIT_DATA : 1; }
    printf("pack: %llu samples, %d classes, %llu shards (%s-000000.tar ...); %llu images unreadable, %llu not in the "
           "annotation file, %llu other files ignored\n", (unsigned long long)st.n_samples, st.n_classes,
           (unsigned long long)st.n_shards, out, (unsigned long long)st.n_unreadable, (unsigned long long)st.n_unlabelled,
           (unsigned long long)st.n_not_image);
    uint64_t lost = st.n_unreadable + st.n_unlabelled;
    double frac = (double)lost / (double)(lost + st.n_samples), allow = max_skip > 0 ? max_skip : 0.01;
    if (frac > allow) {
        fprintf(stderr, "error: %llu of %llu images lost (%.2f%%, first %s), more than the %.3g%% allowed; the shards are "
                "written, but check the source, or accept with --max-skip-frac %.2g\n", (unsigned long long)lost,
                (unsigned long long)(lost + st.n_samples), 100 * frac, st.first_unreadable, 100 * allow, frac * 1.01 > 1 ? 1 : frac * 1.01);
        return MIM_EXIT_DATA;
    }
    return 0;
}
