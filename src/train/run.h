// run.h: the training harness shared by pre-training (train/pretrain.c) and
// fine-tuning (train/finetune.c), as MAE's main_pretrain.py and
// main_finetune.py share util/misc.py around their engine_*.py. The harness
// owns what every training run does the same way:
//   - the run folder (created with its parents) and resume: stale temp files
//     removed, the latest checkpoint loaded (model, AdamW, extra tensors),
//     the settings compared, the data position restored;
//   - one data-position convention: checkpoints hold the GLOBAL position
//     (samples into the epoch over all ranks), each rank resumes at its
//     share, so a run resumes on another number of ranks with the same
//     global batch;
//   - metrics.jsonl (rank 0; a failed write warns once, training goes on);
//   - the step loop, with the stop / checkpoint decisions taken by all ranks
//     together (a signal may reach them at different steps);
//   - checkpoint-with-retry (rank 0 writes, every rank learns the outcome);
//   - the end: the data verdict over all ranks' skip counters, the dist
//     statistics line.
// The caller supplies one optimizer step, what follows it (metrics rows,
// evaluation), when a checkpoint is due, and its checkpoint's extra state.
//
// Usage:
//   mim_run r;
//   rc = mim_run_begin(&r, &cfg, src, &model, &opt, extra_or_NULL, args_json);
//   ... r.resumed: r.st holds the checkpoint (r.st.engine_json) ...
//   rc = mim_run_loop(&r, total, end, &hooks, ctx);
//   rc = mim_run_end(&r, steps_done, "pretrain", summary_or_NULL);
//   mim_run_close(&r);
#pragma once
#include <stdint.h>
#include <stdio.h>
#include "data/source.h"
#include "model/mae.h"
#include "train/checkpoint.h"
#include "train/dist.h"
#include "train/optim.h"

typedef struct {
    const char* what;          // "pretrain", "finetune": messages and the dist context
    const char* out;           // run folder
    int quiet;                 // no progress or notices
    int resume;                // continue from out's latest checkpoint (fresh start if none)
    int keep;                  // run checkpoints kept (0: all)
    int io_retries;            // retries of a failed checkpoint write (EIO) before stopping
    int stopped_code;          // returned when SIGTERM / SIGINT stopped the run (MIM_*_STOPPED)
} mim_run_config;

typedef struct {
    mim_run_config cfg;
    const mim_dist* d;
    int loud;                  // rank 0 and not quiet: progress and notices
    int tty;                   // stderr is a terminal: progress lines overwrite each other
    const char* nl;            // "\n" that ends a pending "\r" progress line, "" otherwise
    mim_source* src;           // the training data: its position is the checkpoint's
    mim_mae* model;
    mim_adamw* opt;
    const mim_ckpt_extra* extra;   // NULL: none
    mim_train_state st;        // settings, and after a resume the checkpoint's state
    int resumed;               // 1: started from a checkpoint
    int64_t step0;             // steps done before this process started
    char metrics_path[4096];
    FILE* mf;                  // metrics.jsonl on rank 0, NULL elsewhere
    int mf_warned;
    double t0;                 // when this process's loop started
    double t_before;           // training seconds of the earlier parts of a resumed run
} mim_run;

typedef struct {
    // One optimizer step (0-based index step): data, forward, backward,
    // all-reduce, optimizer. 0 or an error code, which ends the loop.
    int (*step)(void* ctx, mim_run* r, int64_t step);
    // After `done` steps in all: metrics rows, evaluation, progress. 0 or an
    // error code. May be NULL.
    int (*after)(void* ctx, mim_run* r, int64_t done);
    // 1 when a run checkpoint is due after `done` steps (it is also written at
    // the loop's end, on SIGUSR1 and before stopping on SIGTERM / SIGINT).
    int (*save_due)(void* ctx, int64_t done);
    // Fills st->engine_json before a checkpoint. May be NULL.
    void (*save_extra)(void* ctx, mim_train_state* st);
} mim_run_hooks;

// Creates the run folder and resumes when cfg->resume (a missing checkpoint
// is a fresh start; the model keeps the weights it came with), then opens
// metrics.jsonl on rank 0 (appending after a resume, whose rows past the
// checkpoint are dropped). args_json: the settings a resume must match.
// Returns 0 or a negative MIM_E* code with mim_err_msg().
int mim_run_begin(mim_run* r, const mim_run_config* cfg, mim_source* src, mim_mae* model, mim_adamw* opt,
                  const mim_ckpt_extra* extra, const char* args_json);
// Runs steps r->step0 .. end - 1 of a total-step run: hooks->step, then
// hooks->after, then the common stop / checkpoint decision (a checkpoint
// when save_due, at end, on a signal). Returns 0, the first hook error, a
// checkpoint error, or cfg.stopped_code after a checkpoint when SIGTERM /
// SIGINT stopped it.
int mim_run_loop(mim_run* r, int64_t total, int64_t end, const mim_run_hooks* hooks, void* ctx);
// Appends one row (a JSON object, printf-formatted, newline added) to
// metrics.jsonl and flushes it. Rank 0 only (a no-op elsewhere).
void mim_run_metric(mim_run* r, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// One progress update on stderr: "\r" + line on a terminal, line + "\n" in a
// log file. Only when r->loud.
void mim_run_progress(mim_run* r, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// The source's skip counters summed over all ranks (collective) into *c, and
// as one log line in out ("" for in-memory sources). Returns 1 for a source
// that counts (index data).
int mim_run_counters(const mim_source* s, mim_loader_counters* c, char* out, size_t cap);
// The end of a run that did `done` steps: the data verdict over all ranks
// (MIM_EDATA when more was lost than max_skip_frac allows, label naming the
// data), after printing "done: SUMMARY, metrics in PATH" and the counters
// when summary is not NULL; then the dist statistics line (rank 0 of an MPI
// run). Collective.
int mim_run_end(mim_run* r, int64_t done, double max_skip_frac, const char* label, const char* summary);
// Closes metrics.jsonl. Safe on a zeroed or half-begun r.
void mim_run_close(mim_run* r);
// The memory gate's pieces (core/mem.h) both training commands share: the
// bytes the data sources a and b (either may be NULL) hold at this batch
// (mim_source_estimate), and the detail line "activations A for batch B,
// parameters + gradients P, AdamW[ + accumulator(s)] O, data D".
uint64_t mim_run_data_bytes(const mim_source_config* a, const mim_source_config* b, int batch);
void mim_run_need_detail(char* detail, size_t cap, uint64_t acts, int batch, uint64_t params, const char* acc,
                         uint64_t optim, uint64_t data);
// Adds the schedule to a run's settings record (the args JSON a resume must
// match), in the keys and order both commands have always written:
// global_batch (batch x accum x ranks, so a run resumes on another number
// of ranks), epochs, steps, blr, lr, min_lr, warmup_epochs, and warmup_steps
// only when set (runs from before it keep their settings string).
struct cJSON;
void mim_run_args_schedule(struct cJSON* j, int64_t global_batch, double epochs, int64_t steps, double blr, double lr,
                           double min_lr, double warmup_epochs, int64_t warmup_steps);
// OpenMP and OpenBLAS threads (n <= 0: leave the defaults).
void mim_run_threads(int n);
