// cmd_study.c: `mimscale study run|report STUDY.json`: flags -> study/study.h.
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "study/study.h"
#include "train/signals.h"
#include <stdio.h>
#include <string.h>

int cmd_study(int argc, char** argv);

static const char* usage_text =
    "usage: mimscale study run STUDY.json [--dry-run] [--out DIR]\n"
    "       mimscale study report STUDY.json [--out DIR]\n"
    "A scaling study: data subsets x models x targets x seeds, each pre-trained (mimscale pretrain)\n"
    "and evaluated (knn, linprobe, finetune, scratch baseline); one row per run in DIR/results.jsonl\n"
    "and DIR/results.csv. Re-running skips finished runs and resumes interrupted ones (SIGTERM /\n"
    "SIGINT stop the running step with a checkpoint and exit 4). The study\n"
    "file format is in docs/study.md; examples in studies/.";

int cmd_study(int argc, char** argv) {
    const char *out = NULL, *bin = NULL;
    int dry = 0, retry = 0, quiet = 0, max_runs = 0, io_retries = 0;
    float gflops = 0;
    flag f[] = {
        {"out", FLAG_STR, &out, "", 0, 0, "study folder (default runs/study-<name>)"},
        {"dry-run", FLAG_BOOL, &dry, "0", 0, 1, "run: print the plan (runs, steps, FLOPs, estimated time) and stop"},
        {"retry-failed", FLAG_BOOL, &retry, "0", 0, 1, "run: re-run runs recorded as failed"},
        {"gflops", FLAG_FLOAT, &gflops, "0", 0, 1e9, "training speed for estimates (0: measured from finished runs, else the study's estimate.gflops)"},
        {"max-runs", FLAG_INT, &max_runs, "0", 0, 1 << 30, "run: stop after this many runs (0: all)"},
        {"mimscale", FLAG_STR, &bin, "", 0, 0, "binary that runs the steps (default $MIMSCALE_BIN, else this one)"},
        {"io-retries", FLAG_INT, &io_retries, "0", 0, 1000, "run: retry a failed results write (full disk, I/O error) N times before stopping"},
        {"quiet", FLAG_BOOL, &quiet, "0", 0, 1, "no progress lines"},
    };
    const char* pos[2];
    int npos, nf = (int)(sizeof f / sizeof f[0]);
    int rc = flags_parse(f, nf, argc, argv, usage_text, pos, 2, &npos);
    if (rc) return rc < 0 ? 2 : 0;
    if (npos != 2 || (strcmp(pos[0], "run") && strcmp(pos[0], "report"))) {
        fprintf(stderr, "error: expected `mimscale study run STUDY.json` or `mimscale study report STUDY.json`\n");
        return 2;
    }
    mim_study s;
    if (mim_study_load(&s, pos[1])) { fprintf(stderr, "error: %s\n", mim_err_msg()); return 2; }
    mim_study_opts o = {.out = out, .bin = bin, .dry_run = dry, .retry_failed = retry, .quiet = quiet,
                        .gflops = gflops, .max_runs = max_runs, .io_retries = io_retries};
    if (!strcmp(pos[0], "run") && !dry) mim_signals_install();   // SIGTERM / SIGINT: stop the running child, exit 4
    rc = !strcmp(pos[0], "run") ? mim_study_run_all(&s, &o) : mim_study_report(&s, &o);
    if (rc < 0) fprintf(stderr, "error: %s\n", mim_err_msg());
    mim_study_free(&s);
    return rc < 0 ? 1 : rc;
}
