// prof.c: see prof.h.
#include "core/prof.h"
#include <string.h>
#include <time.h>

int mim_prof_on;
double mim_prof_secs[PROF_NCLASS];

const char* mim_prof_name(mim_prof_class c) {
    static const char* names[PROF_NCLASS] = {"matmul", "attention", "norm", "elementwise", "optimizer", "data", "target",
                                                  "layout", "loss", "convert"};
    return names[c];
}

void mim_prof_reset(void) { memset(mim_prof_secs, 0, sizeof mim_prof_secs); }

double mim_now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}
