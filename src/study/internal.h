// internal.h: what the study layer's files share and its users do not see:
// path formatting, the runner's files and subprocesses (proc.c), the data
// preparation (prepare.c), the plan and results printing (status.c) and the
// results.jsonl lock every row writer takes.
#pragma once
#include <stddef.h>
#include <sys/types.h>
#include "study/results.h"
#include "study/study.h"

// snprintf for paths and arguments without gcc's truncation warnings
// (paths are bounded by the study folder, itself bounded at resolve time;
// truncation is checked where it matters).
void mim_study_pathf(char* buf, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
int mim_study_exists(const char* path);
// mkdir -p; 0 or MIM_EIO naming the folder.
int mim_study_mkdir_p(const char* path);
// Writes text to path atomically (tmp + fsync + rename). 0 or MIM_EIO.
int mim_study_write_atomic(const char* path, const char* text);
// The file from byte `from` on, NUL-terminated (free it), or NULL.
char* mim_study_read_text(const char* path, off_t from);
// Runs argv with stdout and stderr appended to log_path (the command line
// and a time stamp first); *log_off gets the log's size before the command.
// The child dies with the runner (PR_SET_PDEATHSIG); stop signals are
// forwarded to it. Returns the exit status (128 + signal when killed), or a
// negative code when it could not be started.
int mim_study_run_cmd(char** argv, const char* log_path, off_t* log_off);
// The last non-empty line of the log from off (for failure reasons).
void mim_study_last_line(const char* log_path, off_t off, char* out, size_t cap);
// The exclusive lock every writer of results.jsonl / results.csv holds
// around its append and rewrite: the descriptor (closing it unlocks), or -1
// when the lock file cannot be opened (the write then goes ahead unlocked).
int mim_study_results_lock(const char* out);
void mim_study_results_unlock(int fd);
// A row's status: 0 ok, 1 failed, -1 no row.
int mim_study_row_status(const cJSON* row);

// Packs IDX data, builds the indexes, the probe subset and the subset files
// the study needs (prepare.c). 0 or a negative MIM_E* code.
int mim_study_prepare_data(const mim_study* s, const mim_study_opts* o, const mim_study_paths* p, int quiet);

// The plan (each run's state, steps, images, FLOPs, estimated time) and
// totals on stdout, at gflops GFLOP/s (status.c).
int mim_study_print_plan(const mim_study* s, const mim_study_opts* o, const mim_study_run* runs, int n,
                         const mim_results* res, double gflops);
// The results so far, one line per run, on stdout.
void mim_study_print_table(const mim_study* s, const mim_study_run* runs, int n, const mim_results* res);
// Training speed measured from finished rows (FLOPs / wall seconds), or 0.
double mim_study_measured_gflops(const mim_study* s, const mim_study_run* runs, int n, const mim_results* res);
// A duration as "42s", "3m05s" or "2h10m" ("?" when unknown).
void mim_study_fmt_time(double s, char* out, size_t cap);
