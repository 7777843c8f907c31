// cmd_study.c: `mimscale study run|run-one|status|report STUDY.json`: flags -> study/study.h, study/launch.h.
#include "cli/cli.h"
#include "cli/flags.h"
#include "core/check.h"
#include "study/launch.h"
#include "study/study.h"
#include "train/signals.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_study(int argc, char** argv);

static const char* usage_text =
    "usage: mimscale study run STUDY.json [--dry-run] [--out DIR] [--launcher local|slurm] [--jobs N]\n"
    "                 [--partition P --account A --qos Q --time T --sbatch-arg ARG ...]\n"
    "       mimscale study run-one STUDY.json --id RUN_ID [--out DIR] [--threads N] [--only STEP] [--ranks N --mpi X]\n"
    "       mimscale study status STUDY.json [--out DIR]\n"
    "       mimscale study report STUDY.json [--out DIR]\n"
    "A scaling study: data subsets x models x targets x seeds, each pre-trained (mimscale pretrain)\n"
    "and evaluated (knn, linprobe, finetune, scratch baseline); one row per run in DIR/results.jsonl\n"
    "and DIR/results.csv. Re-running skips finished runs and resumes interrupted ones (SIGTERM /\n"
    "SIGINT stop the running steps with a checkpoint and exit 4). --jobs N runs N at once here;\n"
    "--launcher slurm submits job arrays (pre-trainings; each evaluation after its pre-training,\n"
    "--dependency=aftercorr; scratch and baseline runs) of `study run-one --only STEP` and returns;\n"
    "re-running it resubmits only failed or vanished runs; `study status` shows each run's state.\n"
    "The study file format is in docs/study.md; examples in studies/.";

int cmd_study(int argc, char** argv) {
    // --sbatch-arg repeats: taken out before the table parser sees argv.
    const char** extra = calloc((size_t)argc + 1, sizeof *extra);
    char** av = calloc((size_t)argc + 1, sizeof *av);
    if (!extra || !av) { free(extra); free(av); fprintf(stderr, "error: out of memory\n"); return 1; }
    int nextra = 0, ac = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--sbatch-arg")) {
            if (i + 1 >= argc) { fprintf(stderr, "error: --sbatch-arg needs a value\n"); free(extra); free(av); return 2; }
            extra[nextra++] = argv[++i];
        } else if (!strncmp(argv[i], "--sbatch-arg=", 13)) extra[nextra++] = argv[i] + 13;
        else av[ac++] = argv[i];
    }
    const char *out = NULL, *bin = NULL, *launcher = NULL, *id = NULL, *part = NULL, *account = NULL, *qos = NULL, *tlim = NULL;
    const char *only = NULL, *mpi = NULL;
    int dry = 0, retry = 0, quiet = 0, max_runs = 0, io_retries = 0, jobs = 1, threads = 0, ranks = 1;
    float gflops = 0;
    flag f[] = {
        {"out", FLAG_STR, &out, "", 0, 0, "study folder (default runs/study-<name>)"},
        {"dry-run", FLAG_BOOL, &dry, "0", 0, 1, "run: print the plan (runs, steps, FLOPs, estimated time) and stop"},
        {"retry-failed", FLAG_BOOL, &retry, "0", 0, 1, "run: re-run runs recorded as failed"},
        {"gflops", FLAG_FLOAT, &gflops, "0", 0, 1e9, "training speed for estimates (0: measured from finished runs, else the study's estimate.gflops)"},
        {"max-runs", FLAG_INT, &max_runs, "0", 0, 1 << 30, "run: stop after this many runs (0: all)"},
        {"mimscale", FLAG_STR, &bin, "", 0, 0, "binary that runs the steps (default $MIMSCALE_BIN, else this one)"},
        {"io-retries", FLAG_INT, &io_retries, "0", 0, 1000, "run: retry a failed results write (full disk, I/O error) N times before stopping"},
        {"launcher", FLAG_STR, &launcher, "local", 0, 0, "run / status: local (this machine) or slurm (one sbatch job per run)"},
        {"jobs", FLAG_INT, &jobs, "1", 1, 4096, "run --launcher local: runs at once, each with --threads cores/N"},
        {"threads", FLAG_INT, &threads, "0", 0, 4096, "run, run-one: at most N threads per command (0: the study's)"},
        {"id", FLAG_STR, &id, "", 0, 0, "run-one: the run (an id of `study run --dry-run`)"},
        {"only", FLAG_STR, &only, "", 0, 0, "run-one: just this step (pretrain, knn, linprobe, finetune, scratch); the step that completes the run writes its row"},
        {"ranks", FLAG_INT, &ranks, "1", 1, 1 << 20, "run-one: pre-train as N MPI ranks through srun (inside a Slurm job; --batch / N each)"},
        {"mpi", FLAG_STR, &mpi, "", 0, 0, "run-one --ranks: srun --mpi=X (empty: the cluster's MpiDefault)"},
        {"partition", FLAG_STR, &part, "", 0, 0, "slurm: sbatch --partition"},
        {"account", FLAG_STR, &account, "", 0, 0, "slurm: sbatch --account"},
        {"qos", FLAG_STR, &qos, "", 0, 0, "slurm: sbatch --qos"},
        {"time", FLAG_STR, &tlim, "", 0, 0, "slurm: sbatch --time (a job near its limit checkpoints and requeues itself)"},
        {"quiet", FLAG_BOOL, &quiet, "0", 0, 1, "no progress lines"},
    };
    const char* pos[2];
    int npos, nf = (int)(sizeof f / sizeof f[0]);
    int rc = flags_parse(f, nf, ac, av, usage_text, pos, 2, &npos);
    if (rc) { free(extra); free(av); return rc < 0 ? 2 : 0; }
    const char* sub = npos == 2 ? pos[0] : "";
    int is_run = !strcmp(sub, "run"), is_one = !strcmp(sub, "run-one"), is_status = !strcmp(sub, "status");
    if (!is_run && !is_one && !is_status && strcmp(sub, "report")) {
        fprintf(stderr, "error: expected `mimscale study run|run-one|status|report STUDY.json`\n");
        free(extra); free(av); return 2;
    }
    if (!launcher) launcher = "local";
    int slurm = !strcmp(launcher, "slurm");
    if (!slurm && strcmp(launcher, "local")) { fprintf(stderr, "error: --launcher %s: expected local or slurm\n", launcher); free(extra); free(av); return 2; }
    if (is_one && (!id || !id[0])) { fprintf(stderr, "error: study run-one needs --id RUN_ID (`mimscale study run STUDY.json --dry-run` lists them)\n"); free(extra); free(av); return 2; }
    if (!is_one && ((only && only[0]) || ranks > 1 || (mpi && mpi[0]))) { fprintf(stderr, "error: --only, --ranks and --mpi are for study run-one\n"); free(extra); free(av); return 2; }
    if (slurm && jobs > 1) { fprintf(stderr, "error: --jobs is for --launcher local (Slurm decides how many jobs run at once)\n"); free(extra); free(av); return 2; }
    mim_study s;
    if (mim_study_load(&s, pos[1])) { fprintf(stderr, "error: %s\n", mim_err_msg()); free(extra); free(av); return 2; }
    mim_study_opts o = {.out = out, .bin = bin, .dry_run = dry, .retry_failed = retry, .quiet = quiet,
                        .gflops = gflops, .max_runs = max_runs, .io_retries = io_retries, .jobs = slurm ? 1 : jobs, .threads = threads,
                        .only = only, .ranks = ranks, .mpi = mpi};
    char outbuf[2048], binbuf[2048];
    mim_study_opts ro;
    mim_study_opts_resolve(&s, &o, &ro, outbuf, sizeof outbuf, binbuf, sizeof binbuf);
    mim_worker_spec w = {&s, pos[1], &ro};
    mim_slurm_opts so = {part, account, qos, tlim, extra, nextra, 0};
    mim_launcher* l = NULL;
    if ((is_run && slurm && !dry) || is_status) {
        l = slurm || is_status ? mim_launcher_slurm(&w, &so) : NULL;
        if (!l) { fprintf(stderr, "error: %s\n", mim_err_msg()); mim_study_free(&s); free(extra); free(av); return 1; }
    }
    if ((is_run && !dry) || is_one) mim_signals_install();   // SIGTERM / SIGINT: stop the running children, exit 4
    if (is_run) rc = l ? mim_study_run_launched(&s, &ro, l) : mim_study_run_all(&s, &ro);
    else if (is_one) rc = mim_study_run_one(&s, &ro, id);
    else if (is_status) rc = mim_study_status(&s, &ro, l);
    else rc = mim_study_report(&s, &ro);
    if (rc < 0) fprintf(stderr, "error: %s\n", mim_err_msg());
    if (l) l->free(l);
    mim_study_free(&s);
    free(extra); free(av);
    return rc < 0 ? 1 : rc;
}
