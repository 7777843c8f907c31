// findings.h: the "Findings" section of the study report, computed. Each
// claim of the MIM data-scaling literature that a study's grid can test
// becomes rows of (scope, quantity, its 95% bootstrap interval, verdict);
// the verdict is read off the interval by the rules below, never written by
// hand. Numbers are top-1 in [0, 1] (the report prints points).
//
//   mim_findings_in in = {.s = &study, .obs = obs, .nobs = n, .metric = MIM_EVAL_FINETUNE};
//   mim_finding* f;
//   int k = mim_findings_all(&in, &f);   // rows for the study, malloc'd
//
// The findings (gap(D) = mean fine-tune top-1 of MIM - of scratch at size D,
// main strategy, per model and target):
//  1. MIM raises model capacity most when data is small:
//     q = gap(smallest D) - gap(largest D).
//     shown      q's interval lies above 0 and gap(smallest)'s too;
//     not shown  q's interval lies at or below 0 (the gap does not shrink),
//                or gap(smallest)'s does (MIM does not beat scratch there);
//     inconclusive otherwise, or without an interval (1 seed).
//  2. Strong targets raise downstream capacity: q = mean over the sizes run
//     with both of (strong - weak) top-1, strong = hog or teacher, weak =
//     pixel-norm when the study has it, else pixel; per model, strong
//     target and evaluation (fine-tune, linear probe).
//     shown: interval above 0; not shown: at or below 0; inconclusive else.
//  3. Sampling strategy barely matters: at each (model, target, size) run
//     with several strategies, every pair's difference of the metric's
//     means (a - b) with its interval; q is the pair with the largest |a - b|.
//     shown      every pair's interval lies inside (-margin, +margin);
//     not shown  some pair's interval lies wholly outside it (>= margin
//                or <= -margin): strategies differ by more than the margin;
//     inconclusive otherwise (an interval straddles a margin, or 1 seed).
//     margin: MIM_FINDING_MARGIN (2 points) unless given.
// Intervals are percentile bootstraps over seeds (stats.h), each group of
// runs redrawn independently. A finding the grid cannot test (no scratch
// runs, no fine-tuning, one size, one target, one strategy) is one row
// "not tested by this study" with the reason; one the grid can test but
// whose finished runs cannot decide is "inconclusive" with the reason.
#pragma once
#include "study/stats.h"
#include "study/study.h"

typedef enum { MIM_VERDICT_SHOWN = 0, MIM_VERDICT_NOT_SHOWN, MIM_VERDICT_INCONCLUSIVE, MIM_VERDICT_UNTESTED } mim_verdict;
// "shown", "not shown", "inconclusive", "not tested by this study"
const char* mim_verdict_name(mim_verdict v);

#define MIM_FINDING_MARGIN 0.02   // finding 3's equivalence margin: 2 points of top-1

// One finished run's numbers (the report builds them from results.jsonl).
typedef struct {
    mim_run_kind kind;
    int model;                     // index into s->models
    mim_target target;             // MIM runs
    char strategy[16];
    int64_t size;
    uint64_t seed;
    double top1[MIM_EVAL_COUNT];   // in [0, 1], NaN when absent; MIM: knn / linprobe / finetune, scratch: [MIM_EVAL_SCRATCH]
} mim_obs;
// A row with every top1 NaN.
mim_obs mim_obs_make(mim_run_kind kind, int model, mim_target target, const char* strategy, int64_t size, uint64_t seed);

typedef struct {
    const mim_study* s;            // the grid: models, targets, subsets, evaluations
    const mim_obs* obs; int nobs;
    int metric;                    // finding 3's evaluation (knn, linprobe, finetune); -1: none
    int nboot; uint64_t seed;      // 0: MIM_STATS_NBOOT, MIM_STATS_SEED
    double margin;                 // finding 3 (top-1 units); 0: MIM_FINDING_MARGIN
} mim_findings_in;

typedef struct {
    int id;                        // 1, 2, 3
    char scope[160];               // "vit_nano-p4, pixel", "study"
    char quantity[256];            // what q is, naming its terms
    mim_est q;                     // top-1 units; q.n 0 when there is no estimate
    mim_verdict verdict;
    char why[384];                 // the rule's reading, or why it is untested / inconclusive
} mim_finding;

// "MIM raises model capacity most when data is small" (1), "Strong targets
// raise downstream capacity" (2), "Sampling strategy barely matters" (3).
const char* mim_finding_title(int id);

// The verdict rules (see the top of the file).
mim_verdict mim_verdict_positive(mim_est q);
mim_verdict mim_verdict_small_data(mim_est q, mim_est gap_small);
mim_verdict mim_verdict_equivalent(const mim_est* diffs, int n, double margin);

// One row of each finding.
void mim_finding_small_data(const mim_findings_in* in, int model, mim_target t, mim_finding* f);
void mim_finding_strong_target(const mim_findings_in* in, int model, mim_target strong, mim_eval_kind e, mim_finding* f);
void mim_finding_strategy(const mim_findings_in* in, int model, mim_target t, int64_t size, mim_finding* f);

// Every row for the study, in finding order (a finding the grid cannot
// test: one "not tested" row). *out is malloc'd; the count, or MIM_ENOMEM.
int mim_findings_all(const mim_findings_in* in, mim_finding** out);
