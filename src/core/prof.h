// prof.h: a per-op-class wall-clock profiler for the training step
// (`--profile`). Off by default; when off each probe is one branch.
#pragma once
#include <omp.h>

// layout: token gathers and scatters of masking / unshuffling, position
// embedding adds, row copies and gradient clears; loss: the loss and its
// gradient; convert: fp32 -> bf16 weight shadows.
typedef enum { PROF_MATMUL, PROF_ATTENTION, PROF_NORM, PROF_ELEMWISE, PROF_OPTIM, PROF_DATA, PROF_TARGET,
               PROF_LAYOUT, PROF_LOSS, PROF_CONVERT, PROF_NCLASS } mim_prof_class;

extern int mim_prof_on;
extern double mim_prof_secs[PROF_NCLASS];

static inline double mim_prof_begin(void) { return mim_prof_on ? omp_get_wtime() : 0.0; }
static inline void mim_prof_end(mim_prof_class c, double t0) {
    if (mim_prof_on) mim_prof_secs[c] += omp_get_wtime() - t0;
}
// Runs STMT and charges its time to class C.
#define PROF(C, STMT) do { double t0_ = mim_prof_begin(); STMT; mim_prof_end(C, t0_); } while (0)

const char* mim_prof_name(mim_prof_class c);
void mim_prof_reset(void);

// Seconds on the monotonic clock (durations: steps, runs, ETAs).
double mim_now_s(void);
