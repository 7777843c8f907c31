// study.h: a scaling study of MAE pre-training: a grid of data subsets x
// model configs x reconstruction targets x seeds, each pre-trained with the
// `mimscale pretrain` subprocess and evaluated with `mimscale knn`,
// `linprobe`, `finetune` (and a from-scratch `finetune --init random`
// baseline per subset and model, with the finetune evaluation's schedule),
// one results row per run. Studies with knn or linprobe also get the
// feature baselines: the same knn / linprobe on raw pixels (one run per
// seed) and on each model's randomly initialised encoder (one per model and
// seed), on the MIM rows' probe and eval sets, at no pre-training cost.
//
//   mim_study s;
//   if (mim_study_load(&s, "studies/fmnist-mini.json") < 0) die(mim_err_msg());
//   mim_study_opts o = {.out = "runs/study-fmnist-mini", .bin = "./build/mimscale"};
//   mim_study_run_all(&s, &o);    // runs what is not in results.jsonl yet
//   mim_study_report(&s, &o);     // report.md + figures (gnuplot)
//   mim_study_free(&s);
//
// The study file is JSON (cJSON), documented in docs/study.md. This module
// is the grid and the runner; it does not train anything itself, so a fake
// `mimscale` script can stand in for the binary (tests/test_study.c).
//
// The study folder (o.out):
//   data/                   packed shards (IDX input), indexes, subset files
//   runs/<id>/              pretrain/ (the run folder), pretrain.log,
//                           <eval>.log, <eval>.json (finished evaluations),
//                           .lock (its worker's); with --launcher slurm also
//                           job.sh, slurm.json (job id, submit time), slurm.out
//   results.jsonl           one JSON object per finished run, append-only
//   results.jsonl.lock      held by whoever appends a row (many workers)
//   results.csv             regenerated from results.jsonl after each row
//   report.md, fig-*.png    from `mimscale study report`
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "model/config.h"

typedef enum { MIM_EVAL_KNN = 0, MIM_EVAL_LINPROBE, MIM_EVAL_FINETUNE, MIM_EVAL_SCRATCH, MIM_EVAL_COUNT } mim_eval_kind;
typedef enum { MIM_BUDGET_EPOCHS = 0, MIM_BUDGET_IMAGES = 1 } mim_budget_kind;
typedef enum { MIM_RUN_MIM = 0, MIM_RUN_SCRATCH = 1, MIM_RUN_BASELINE = 2 } mim_run_kind;
// The feature baselines (MIM_RUN_BASELINE runs): knn / linprobe on raw
// pixels (`--features pixels`) or on a random-init encoder (`--init random`).
typedef enum { MIM_BASELINE_PIXELS = 0, MIM_BASELINE_RANDOM = 1 } mim_baseline_kind;
const char* mim_baseline_name(mim_baseline_kind b);   // "pixels", "random" (the rows' "baseline")

const char* mim_eval_name(mim_eval_kind e);      // "knn", "linprobe", "finetune", "scratch"
// targets: mim_target and mim_target_name() of model/config.h (pixel,
// pixel-norm, hog, teacher)
const char* mim_budget_name(mim_budget_kind b);  // "epochs", "images_seen"

typedef struct {
    char preset[32];                      // vit_nano ...
    int patch, dec_dim, dec_depth, dec_heads;
    char label[64];                       // "vit_nano-p7" unless given
} mim_study_model;

// One subset of the grid. An entry of "subsets" may narrow the grid for its
// subsets: "seeds" (instead of the study's) and "targets" (a subset of the
// study's), e.g. 3 seeds at the smallest and largest size only, or the
// sampling strategies at one size with one target.
#define MIM_STUDY_MAX_SUBSET_SEEDS 16
typedef struct {
    char strategy[16]; int64_t size;
    uint64_t seeds[MIM_STUDY_MAX_SUBSET_SEEDS]; int nseeds;   // 0: the study's seeds
    unsigned target_mask;                                      // bit (1 << mim_target); 0: every target of the study
} mim_study_subset;
static inline int mim_study_subset_has_target(const mim_study_subset* sub, mim_target t) {
    return !sub->target_mask || (sub->target_mask >> t & 1u);
}

// A list of extra "--flag=value" arguments (from a JSON object).
typedef struct { char** argv; int argc; } mim_argv_list;

// Slurm resources of one kind of job (`study run --launcher slurm`), from
// the study's "slurm" section; 0 / "": sbatch's default. Only pre-training
// runs as several MPI ranks (ntasks > 1: `srun` inside the job, each rank
// --batch / ntasks, so the global batch is the study's).
typedef enum { MIM_SLURM_PRETRAIN, MIM_SLURM_EVAL, MIM_SLURM_SCRATCH, MIM_SLURM_BASELINE, MIM_SLURM_KINDS } mim_slurm_kind;
typedef struct { int nodes, ntasks, cpus_per_task; char mem[32], time[32]; } mim_slurm_res;

typedef struct {
    char* name;                 // study name (default: the file's base name)
    char* path;                 // the study file
    // data: either idx_dir (packed into shards once) or shards / index
    char* idx_dir;              // IDX folder (train-*, t10k-*), or NULL
    char* shards, *eval_shards; // shard patterns for `mimscale index`, or NULL
    char* index, *eval_index;   // index files (built from the shards if missing), or NULL
    int img, in_chans;
    uint64_t subset_seed;
    int64_t eval_size;          // idx data: evaluate on the first N test images (0: all)
    int64_t probe_size;         // knn/linprobe train on one fixed stratified subset of N (0: the run's subset)
    mim_study_subset* subsets; int nsubsets;
    mim_study_model* models; int nmodels;
    mim_target targets[MIM_TARGET_COUNT]; int ntargets;
    char* teacher;              // target "teacher": the teacher checkpoint (--teacher), else NULL
    int teacher_layer;          // its block whose tokens are the targets (-1: last)
    int teacher_norm;           // 1: layer-normalise the teacher targets (--teacher-norm)
    int hog_cell;               // target "hog": --hog-cell (0: pretrain's default, 8)
    mim_budget_kind budget_kind;
    double budget;              // epochs or images seen per run
    int batch;
    double blr, warmup_frac;    // warm-up as a fraction of the run
    int save_every, threads, eval_threads;
    mim_argv_list pretrain_extra;
    int evals[MIM_EVAL_COUNT];  // 1 when requested
    mim_argv_list eval_extra[MIM_EVAL_COUNT];
    double eval_epochs[MIM_EVAL_COUNT];   // "epochs" of finetune/scratch (for FLOP estimates; 0 unknown)
    double eval_steps[MIM_EVAL_COUNT], eval_batch[MIM_EVAL_COUNT];   // their "steps" / "batch" (0 unknown)
    // With a finetune evaluation, eval_extra[MIM_EVAL_SCRATCH] (and its
    // epochs / steps / batch) is finetune's flags plus the operational ones
    // scratch adds (threads ...): scratch fine-tunes with exactly the MIM
    // rows' schedule; a scratch entry that sets a schedule flag otherwise is
    // refused at parse time.
    int baselines;              // 1 (default): the feature baselines, when knn or linprobe is evaluated
    uint64_t* seeds; int nseeds;
    int report_metric;          // evaluation the report fits and compares (-1: finetune, else linprobe, else knn)
    mim_slurm_res slurm[MIM_SLURM_KINDS];   // "slurm": {"pretrain": {...}, "eval", "scratch", "baseline"}
    char slurm_mpi[32];         // "slurm.mpi": srun --mpi=<this> for MPI pre-training ("": the cluster's MpiDefault)
    double est_gflops;          // assumed training speed for --dry-run / ETA before any run finished
    int64_t est_eval_size;      // eval-set size assumed in estimates
} mim_study;

// One point of the grid.
typedef struct {
    char id[128];               // deterministic from the config: readable prefix + hash
    mim_run_kind kind;
    int model, subset;          // indexes into the study's arrays
    mim_target target;          // MIM runs only
    mim_baseline_kind baseline; // baseline runs only (pixels: model is 0 and unused)
    uint64_t seed;
    int64_t size, steps, images_seen;
    double epochs;              // pre-training epochs over the subset (steps / batches per epoch)
    double warmup_epochs;
    mim_config cfg;             // full architecture (img, chans, mask, target)
    double flops_per_image;     // mim_config_train_flops
    double flops;               // pre-training FLOPs (scratch: fine-tuning estimate)
    double est_flops;           // everything the run does, evaluations included (estimate)
} mim_study_run;

// Parses and validates the study file. 0, or MIM_EIO / MIM_EFORMAT / MIM_EARG
// with a message naming the file and the bad field.
int mim_study_load(mim_study* s, const char* path);
// Same from a JSON string (path is only used in messages and for the name).
int mim_study_parse(mim_study* s, const char* json, const char* path);
void mim_study_free(mim_study* s);

// Expands the grid in a fixed order (seed, subset, model, target; then the
// scratch runs; then the baselines: per seed (and per subset when there is
// no probe set, since knn / linprobe then train on the run's subset) the
// pixels run, then one random-init run per model). A baseline's size is the
// probe set's (probe_size > 0, strategy "stratified") or its subset's.
// *runs is malloc'd; returns the count or a negative code.
int mim_study_expand(const mim_study* s, mim_study_run** runs);
// The sampling strategy of run r's train set: its subset's, or "stratified"
// for a baseline on the probe set.
const char* mim_study_run_strategy(const mim_study* s, const mim_study_run* r);
// The teacher's architecture, for the time estimate of target "teacher"
// runs (their est_flops add the teacher's forward per image seen).
typedef struct { int ok, C, p, D, depth, hidden; } mim_study_teacher_shape;
// Reads it off s->teacher (runner.c; loads the file): 1 when read, 0 when
// no target is "teacher" or the file is unreadable (the run then fails
// with the reason; the estimate just lacks the term).
int mim_study_teacher_shape_read(const mim_study* s, mim_study_teacher_shape* ts);
// mim_study_expand with that term (ts may be NULL).
int mim_study_expand_est(const mim_study* s, const mim_study_teacher_shape* ts, mim_study_run** runs);

// The argv (NULL-terminated, malloc'd strings, free with mim_argv_free) of
// the pretrain / evaluation command of run r. bin is argv[0]. data paths
// come from the prepared study folder (see mim_study_data_paths). For a
// baseline run (knn / linprobe only) the features flag replaces --ckpt:
// `--features=pixels` or `--init=random --model --patch --seed`, with the
// study's --img / --in-chans; everything else is the MIM rows' command.
typedef struct { char index[1024], eval_index[1024], subset_dir[1024]; } mim_study_paths;
void mim_study_data_paths(const mim_study* s, const char* out, mim_study_paths* p);
// The subset file of run r ("<subset_dir>/train-<strategy>-s<seed>-<size>.sub").
// The probe subset (probe_size > 0): "<subset_dir>/probe-stratified-s<seed>-<size>.sub".
void mim_study_probe_path(const mim_study* s, const mim_study_paths* p, char* buf, size_t cap);
void mim_study_subset_path(const mim_study* s, const mim_study_paths* p, const mim_study_run* r, char* buf, size_t cap);
char** mim_study_pretrain_argv(const mim_study* s, const mim_study_run* r, const mim_study_paths* p,
                               const char* bin, const char* run_dir, const char* subset_file);
char** mim_study_eval_argv(const mim_study* s, const mim_study_run* r, mim_eval_kind e, const mim_study_paths* p,
                           const char* bin, const char* run_dir, const char* subset_file, const char* ckpt);
void mim_argv_free(char** argv);

// ------------------------------------------------------------------ runner
typedef struct {
    const char* out;            // study folder (default runs/study-<name>)
    const char* bin;            // the mimscale binary (default: $MIMSCALE_BIN, else /proc/self/exe)
    int dry_run;                // print the plan, run nothing
    int retry_failed;           // re-run runs whose last row is "failed"
    int quiet;                  // no progress line
    double gflops;              // training speed for estimates (0: measured, else the study's est_gflops)
    int max_runs;               // stop after this many runs were attempted (0: all)
    int io_retries;             // retries of a failed results.jsonl / results.csv write before stopping
    int jobs;                   // runs at once on this machine (0, 1: one after another, in this process)
    int threads;                // > 0: at most this many threads per command (caps the study's threads)
    // run-one only (the Slurm launcher's jobs):
    const char* only;           // "pretrain" or an evaluation name: run just that step of the run (NULL: all);
                                // the step that completes the run appends its row
    int ranks;                  // > 1: pretrain as this many MPI ranks through srun (--batch / ranks each)
    const char* mpi;            // srun --mpi=<mpi> ("" / NULL: the cluster's default)
} mim_study_opts;

// Runs every run of the grid that has no row in results.jsonl yet (or a
// failed one, with retry_failed), one after another in this process, or
// o->jobs at once in forked workers (study/launch.h; the rows are the same). 0 when every run has an ok row, 1 when some
// failed (recorded), MIM_STUDY_STOPPED when SIGTERM / SIGINT stopped it (with
// train/signals.h's handlers installed: the running child is signalled and
// waited for, nothing is recorded for its run), negative on setup and I/O
// errors (with mim_err_msg()).
#define MIM_STUDY_STOPPED 4
int mim_study_run_all(const mim_study* s, const mim_study_opts* o);

// `mimscale study run-one`: runs (or resumes) the one run named id, as
// mim_study_run_all would, and appends its row to results.jsonl under an
// exclusive lock (flock on results.jsonl.lock around the append and the
// results.csv rewrite), so any number of workers can finish at once. The
// data must be prepared (mim_study_run_all does it before starting
// workers); a second worker on the same run is refused (runs/<id>/.lock).
// 0 when the run has an ok row (now or already), 1 when its row says failed,
// MIM_STUDY_STOPPED on SIGTERM / SIGINT (nothing recorded), negative on
// errors.
int mim_study_run_one(const mim_study* s, const mim_study_opts* o, const char* id);

// Writes <out>/report.md and the figures (gnuplot). 0 or a negative code.
int mim_study_report(const mim_study* s, const mim_study_opts* o);

// Resolves the defaults of o (out folder, binary) into *res and buffers.
void mim_study_opts_resolve(const mim_study* s, const mim_study_opts* o, mim_study_opts* res, char* outbuf,
                            size_t outcap, char* binbuf, size_t bincap);
