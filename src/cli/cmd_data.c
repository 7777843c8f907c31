// cmd_data.c: the data subcommands `mimscale index`, `subset` and `pack`
// (thin wrappers over src/data/; all the work is in the library).
#include "cli/flags.h"
#include "core/check.h"
#include "data/index.h"
#include "data/pack.h"
#include "data/subset.h"
#include "data/tar.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_index(int argc, char** argv);
int cmd_subset(int argc, char** argv);
int cmd_pack(int argc, char** argv);

#define MAXPOS 4096

int cmd_index(int argc, char** argv) {
    const char* out; int threads, quiet;
    flag f[] = {
        { "out", FLAG_STR, &out, "", 0, 0, "index file to write (required)", 0 },
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
    mim_index_build_opts o = { threads, quiet ? 0 : -1 };
    mim_index_stats st;
    int rc = mim_index_build(out, l.paths, l.n, &o, &st);
    mim_shards_free(&l);
    if (rc < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 1; }
    char line[512];
    mim_index_stats_format(&st, line, sizeof line);
    printf("index %s: %s (%.1f MB/s, %.1f bytes/sample)\n", out, line, st.bytes / 1e6 / (st.seconds + 1e-9),
           st.n_samples ? (double)(sizeof(mim_index_header) + st.n_samples * sizeof(mim_index_record)) / (double)st.n_samples : 0.0);
    if (st.n_samples == 0) { fprintf(stderr, "error: no samples found in the shards\n"); return 1; }
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

int cmd_subset(int argc, char** argv) {
    const char *sizes_s, *strategy_s, *prefix; int64_t seed;
    flag f[] = {
        { "sizes", FLAG_STR, &sizes_s, "", 0, 0, "comma-separated subset sizes, e.g. 500000,1M,5M (required)", 0 },
        { "strategy", FLAG_STR, &strategy_s, "random", 0, 0, "random (nested), first (shard prefix), stratified (per label)", 0 },
        { "seed", FLAG_I64, &seed, "0", 0, 9.2e18, "seed of the random and stratified orders", 0 },
        { "out", FLAG_STR, &prefix, "", 0, 0, "output prefix (default: INDEX without .idx); files PREFIX-STRATEGY-sSEED-SIZE.sub", 0 },
    };
    const char* usage = "usage: mimscale subset data.idx --sizes 500000,1000000 [--strategy random] [--seed 0]";
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
    mim_index* ix;
    if (mim_index_open(&ix, pos[0]) < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 1; }
    char base[4096];
    snprintf(base, sizeof base, "%s", prefix ? prefix : pos[0]);
    size_t bl = strlen(base);
    if (!prefix && bl > 4 && !strcmp(base + bl - 4, ".idx")) base[bl - 4] = 0;
    char* paths[64];
    for (int i = 0; i < ns; i++) {
        paths[i] = malloc(4200);
        snprintf(paths[i], 4200, "%s-%s-s%lld-%llu.sub", base, mim_subset_strategy_name(strat), (long long)seed,
                 (unsigned long long)sizes[i]);
    }
    int rc = mim_subset_make(ix, strat, (uint64_t)seed, sizes, (size_t)ns, paths);
    if (rc < 0) fprintf(stderr, "error: %s\n", mim_err_msg());
    else for (int i = 0; i < ns; i++) printf("%s: %llu samples\n", paths[i], (unsigned long long)sizes[i]);
    for (int i = 0; i < ns; i++) free(paths[i]);
    mim_index_close(ix);
    return rc < 0 ? 1 : 0;
}

int cmd_pack(int argc, char** argv) {
    const char *out, *labels; int64_t per_shard, seed; int shuffle;
    flag f[] = {
        { "out", FLAG_STR, &out, "", 0, 0, "shard prefix: writes PREFIX-000000.tar ... (required)", 0 },
        { "per-shard", FLAG_I64, &per_shard, "10000", 1, 1e12, "samples per shard", 0 },
        { "shuffle", FLAG_BOOL, &shuffle, "1", 0, 1, "shuffle ImageFolder samples so shards mix classes", 0 },
        { "seed", FLAG_I64, &seed, "0", 0, 9.2e18, "shuffle seed", 0 },
        { "labels", FLAG_STR, &labels, "", 0, 0, "IDX input: the idx1-ubyte labels file", 0 },
    };
    const char* usage =
        "usage: mimscale pack SRC --out PREFIX [--per-shard 10000]\n"
        "  SRC: an ImageFolder root (root/<class>/*.jpg|png|webp) or an IDX images file\n"
        "       (*-idx3-ubyte[.gz], with --labels *-idx1-ubyte[.gz]); IDX images become PNG members.";
    const char* pos[1]; int np;
    int r = flags_parse(f, (int)(sizeof f / sizeof *f), argc, argv, usage, pos, 1, &np);
    if (r) return r > 0 ? 0 : 2;
    if (np != 1 || !out) { fprintf(stderr, "error: give one SRC and --out PREFIX (see --help)\n"); return 2; }
    mim_pack_stats st;
    int rc = strstr(pos[0], "idx3-ubyte") ? mim_pack_idx(pos[0], labels, out, (uint64_t)per_shard, &st)
                                          : mim_pack_imagefolder(pos[0], out, (uint64_t)per_shard, shuffle, (uint64_t)seed, &st);
    if (rc < 0) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 1; }
    printf("pack: %llu samples, %d classes, %llu shards (%s-000000.tar ...), %llu files skipped\n",
           (unsigned long long)st.n_samples, st.n_classes, (unsigned long long)st.n_shards, out, (unsigned long long)st.n_skipped);
    return 0;
}
