// prepare.c: the study's data, made once before its runs: IDX data packed
// into shards, the train / eval sample indexes, the fixed probe subset and
// every subset file, each by a `mimscale pack | index | subset` subprocess
// logged to data/prepare.log; what exists is kept.
#include "study/internal.h"
#include "core/check.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <inttypes.h>

// --------------------------------------------------------------- data setup
static int prep_cmd(char** argv, const char* log, const char* what) {
    int rc = mim_study_run_cmd(argv, log, NULL);
    if (rc < 0) return rc;
    if (rc) {
        char ll[512];
        mim_study_last_line(log, 0, ll, sizeof ll);
        return mim_err(MIM_EIO, "%s failed (exit %d, log %s): %s", what, rc, log, ll);
    }
    return 0;
}

static const char* idx_file(const char* dir, const char* stem, char* buf, size_t cap) {
    mim_study_pathf(buf, cap, "%s/%s.gz", dir, stem);
    if (mim_study_exists(buf)) return buf;
    mim_study_pathf(buf, cap, "%s/%s", dir, stem);
    return buf;
}

int mim_study_prepare_data(const mim_study* s, const mim_study_opts* o, const mim_study_paths* p, int quiet) {
    char dir[4096], log[4200], buf[4200], a1[4200], a2[4200];
    mim_study_pathf(dir, sizeof dir, "%s/data", o->out);
    int rc = mim_study_mkdir_p(p->subset_dir);
    if (rc) return rc;
    mim_study_pathf(log, sizeof log, "%s/prepare.log", dir);
    if (s->idx_dir) {
        mim_study_pathf(buf, sizeof buf, "%s/.packed", dir);
        if (!mim_study_exists(buf)) {
            if (!quiet) fprintf(stderr, "study: packing %s into shards (once)\n", s->idx_dir);
            const char* splits[2][3] = {{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "train"},
                                        {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", "eval"}};
            for (int i = 0; i < 2; i++) {
                char img[4200], lab[4200], prefix[4200];
                idx_file(s->idx_dir, splits[i][0], img, sizeof img);
                idx_file(s->idx_dir, splits[i][1], lab, sizeof lab);
                if (!mim_study_exists(img)) return mim_err(MIM_ENOTFOUND, "data.idx: %s not found (Debian: apt install dataset-fashion-mnist)", img);
                mim_study_pathf(prefix, sizeof prefix, "%s/%s", dir, splits[i][2]);
                mim_study_pathf(a1, sizeof a1, "--labels=%s", lab);
                mim_study_pathf(a2, sizeof a2, "--out=%s", prefix);
                char per[64];
                // eval_size: the first shard holds exactly the eval set (pack keeps IDX order).
                mim_study_pathf(per, sizeof per, "--per-shard=%lld", (long long)(i == 1 && s->eval_size > 0 ? s->eval_size : 10000));
                char* argv[] = {(char*)o->bin, "pack", img, a1, a2, per, NULL};
                if ((rc = prep_cmd(argv, log, "mimscale pack"))) return rc;
            }
            if ((rc = mim_study_write_atomic(buf, "packed\n"))) return rc;
        }
    }
    const char* pats[2] = {s->shards, s->eval_shards};
    const char* idxs[2] = {p->index, p->eval_index};
    char defpat[2][4200];
    if (s->idx_dir) {
        mim_study_pathf(defpat[0], sizeof defpat[0], "%s/train-*.tar", dir);
        mim_study_pathf(defpat[1], sizeof defpat[1], s->eval_size > 0 ? "%s/eval-000000.tar" : "%s/eval-*.tar", dir);
        pats[0] = defpat[0]; pats[1] = defpat[1];
    }
    for (int i = 0; i < 2; i++) {
        if (mim_study_exists(idxs[i])) continue;
        if (!pats[i]) return mim_err(MIM_ENOTFOUND, "%s: %s does not exist and data.%s is not given to build it",
                                     s->path, idxs[i], i ? "eval_shards" : "shards");
        if (!quiet) fprintf(stderr, "study: indexing %s -> %s\n", pats[i], idxs[i]);
        mim_study_pathf(a2, sizeof a2, "--out=%s", idxs[i]);
        char* argv[] = {(char*)o->bin, "index", (char*)pats[i], a2, "--quiet", NULL};
        if ((rc = prep_cmd(argv, log, "mimscale index"))) return rc;
    }
    // The fixed probe set of knn / linprobe.
    if (s->probe_size > 0) {
        mim_study_probe_path(s, p, buf, sizeof buf);
        if (!mim_study_exists(buf)) {
            char a3[64], a4[64], a5[4200];
            mim_study_pathf(a1, sizeof a1, "--sizes=%lld", (long long)s->probe_size);
            mim_study_pathf(a3, sizeof a3, "--strategy=stratified");
            mim_study_pathf(a4, sizeof a4, "--seed=%" PRIu64, s->subset_seed);
            mim_study_pathf(a5, sizeof a5, "--out=%s/probe", p->subset_dir);
            char* argv[] = {(char*)o->bin, "subset", (char*)p->index, a1, a3, a4, a5, "--quiet", NULL};
            if ((rc = prep_cmd(argv, log, "mimscale subset (probe set)"))) return rc;
            if (!mim_study_exists(buf)) return mim_err(MIM_ENOTFOUND, "mimscale subset did not write %s (see %s)", buf, log);
        }
    }
    // Subset files, one `mimscale subset` per strategy for the sizes missing.
    for (int i = 0; i < s->nsubsets; i++) {
        int first = 1;
        for (int k = 0; k < i; k++) first &= strcmp(s->subsets[k].strategy, s->subsets[i].strategy) != 0;
        if (!first) continue;
        char sizes[4096] = "";
        size_t n = 0;
        for (int k = i; k < s->nsubsets; k++) {
            if (strcmp(s->subsets[k].strategy, s->subsets[i].strategy)) continue;
            mim_study_run r = {.subset = k, .size = s->subsets[k].size};
            mim_study_subset_path(s, p, &r, buf, sizeof buf);
            if (mim_study_exists(buf)) continue;
            n += (size_t)snprintf(sizes + n, sizeof sizes - n, "%s%" PRId64, n ? "," : "", s->subsets[k].size);
            if (n >= sizeof sizes) return mim_err(MIM_EARG, "too many subset sizes");
        }
        if (!n) continue;
        if (!quiet) fprintf(stderr, "study: subset files %s %s\n", s->subsets[i].strategy, sizes);
        char a3[64], a4[64], a5[4200], a6[4200];
        mim_study_pathf(a1, sizeof a1, "--sizes=%s", sizes);
        mim_study_pathf(a3, sizeof a3, "--strategy=%s", s->subsets[i].strategy);
        mim_study_pathf(a4, sizeof a4, "--seed=%" PRIu64, s->subset_seed);
        mim_study_pathf(a5, sizeof a5, "--out=%s/train", p->subset_dir);
        mim_study_pathf(a6, sizeof a6, "%s", p->index);
        char* argv[] = {(char*)o->bin, "subset", a6, a1, a3, a4, a5, "--quiet", NULL};
        if ((rc = prep_cmd(argv, log, "mimscale subset"))) return rc;
        for (int k = i; k < s->nsubsets; k++) {
            if (strcmp(s->subsets[k].strategy, s->subsets[i].strategy)) continue;
            mim_study_run r = {.subset = k, .size = s->subsets[k].size};
            mim_study_subset_path(s, p, &r, buf, sizeof buf);
            if (!mim_study_exists(buf)) return mim_err(MIM_ENOTFOUND, "mimscale subset did not write %s (is the data set smaller than %" PRId64 "? see %s)", buf, s->subsets[k].size, log);
        }
    }
    return 0;
}
