// launch.h: where a study's runs execute. The plan (study.h: the expanded
// runs, each run's pretrain and evaluation argv) says *what* runs; a
// launcher says *where*: it starts workers, and a worker is `mimscale study
// run-one STUDY.json --id RUN_ID [--only STEP]` (mim_study_run_one: the
// run's commands, or one step of them, resume, the row under a lock). So
// every launcher records results the same way and a run never depends on
// the process that launched it.
//
//   mim_launcher* l = mim_launcher_local(&wo, 4);       // 4 workers at once
//   l->submit(l, &runs[i]);                             // start (or queue) run i
//   l->flush(l);                                        // slurm: submit what was queued
//   while (l->poll(l, id, sizeof id, &st) > 0) ...      // a worker ended
//   l->free(l);
//
// Two launchers: local (forked workers on this machine, one per run, its
// steps in order; launch_local.c) and slurm (launch_slurm.c: the runs queued
// by submit become job arrays at flush: one array of pre-trainings, one per
// evaluation with --dependency=aftercorr on it, one of scratch runs, one of
// feature baselines; the jobs outlive `study run`, whose re-run reconciles
// with `scontrol show job`).
#pragma once
#include <stddef.h>
#include "study/study.h"

// What a launcher knows of one run.
typedef enum {
    MIM_LAUNCH_NONE = 0,    // never submitted (or its record is gone)
    MIM_LAUNCH_PENDING,     // queued (Slurm PENDING / REQUEUED ...)
    MIM_LAUNCH_RUNNING,     // its worker runs
    MIM_LAUNCH_ENDED,       // its worker ended (look at results.jsonl for a row)
} mim_launch_state;

typedef struct {
    mim_launch_state state;
    char detail[64];        // the launcher's own word ("RUNNING", "CANCELLED", "pid 123"), or ""
    char log[1200];         // the worker's log file, or ""
    char job[96];           // job id(s) (slurm: "12_3", or "12_3,13_3,14_3" for a run of several jobs), or ""
} mim_launch_info;

typedef struct mim_launcher mim_launcher;
struct mim_launcher {
    const char* name;       // "local", "slurm"
    // Starts run r's worker (slurm: queues it for flush). 0, or a negative
    // code with mim_err_msg() (then nothing is recorded as started).
    int (*submit)(mim_launcher* l, const mim_study_run* r);
    // Starts what submit queued (slurm); NULL when submit starts at once.
    // The number of scheduler jobs submitted, or a negative code (then
    // nothing of this flush is left submitted or recorded).
    int (*flush)(mim_launcher* l);
    // Non-blocking: 1 and the id and worker exit status (0 ok row, 1 failed
    // row, 4 stopped, else an error) of one worker that ended; 0 when none
    // ended since the last call; -1 when none is left to wait for.
    int (*poll)(mim_launcher* l, char* id, size_t cap, int* status);
    // What the launcher knows of run r (see mim_launch_state).
    int (*status)(mim_launcher* l, const mim_study_run* r, mim_launch_info* info);
    // Passes signal sig on to every live worker (local; slurm: no-op, the
    // jobs are not this process's).
    void (*signal)(mim_launcher* l, int sig);
    void (*free)(mim_launcher* l);
    void* impl;
};

// What every worker needs: the study (parsed), its file, the resolved options.
typedef struct {
    const mim_study* s;
    const char* study_path;     // absolute path of the study file (slurm jobs read it)
    const mim_study_opts* o;    // resolved (out, bin set)
} mim_worker_spec;

// Forked workers (mim_study_run_one in a child), at most jobs at once; each
// child gets PR_SET_PDEATHSIG so none outlives the runner.
mim_launcher* mim_launcher_local(const mim_worker_spec* w);

// Slurm options of `study run --launcher slurm`.
typedef struct {
    const char* partition, *account, *qos, *time;   // NULL or "": sbatch's defaults
    const char** extra; int nextra;                 // more sbatch arguments, as given
    int cpus;                                       // --cpus-per-task (0: the study's slurm.<kind>.cpus_per_task, else its threads, else 1)
} mim_slurm_opts;
// Job arrays of `study run-one --only STEP` (DIR/slurm/<stamp>-<step>.sh and
// .ids; runs/<id>/slurm.json names the run's jobs; runs/<id>/slurm-<step>.out
// its logs). submit fails when sbatch is not on PATH; flush fails, recording
// nothing, when sbatch refuses an array (the error quotes its stderr).
mim_launcher* mim_launcher_slurm(const mim_worker_spec* w, const mim_slurm_opts* so);

// `study run` through launcher l (o unresolved, as for mim_study_run_all):
// prepares the data, then submits every run without a row (or with a failed
// one, o->retry_failed) whose worker is not pending or running already.
// local: waits for its workers and returns as mim_study_run_all (0, 1,
// MIM_STUDY_STOPPED: SIGTERM / SIGINT is passed on to every worker).
// slurm: returns 0 once submitted; the jobs append the rows.
int mim_study_run_launched(const mim_study* s, const mim_study_opts* o, mim_launcher* l);

// `mimscale study status`: one line per run on stdout: done / failed /
// pending / running / not submitted, the launcher's state and the log.
// 0 or a negative code.
int mim_study_status(const mim_study* s, const mim_study_opts* o, mim_launcher* l);
