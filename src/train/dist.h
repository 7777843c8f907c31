// dist.h: data-parallel training and evaluation over MPI (OpenMPI / any
// MPI-3), optional.
//
// Built with MPI (the Makefile defines MIM_MPI when mpicc is found) and
// launched by mpirun / srun, every rank runs the same program on its own
// micro-batches of each global batch; gradients are summed in buckets as soon
// as a block's backward finishes, overlapping communication with the rest of
// the backward; every rank applies the same AdamW update.
//
// Exactness: every sum over ranks (floats and doubles) is the left fold in
// rank order, ((x_0 + x_1) + x_2) + ..., computed the same on every rank
// (all-to-all + fold + all-gather, see dist.c; never MPI_SUM, whose order
// MPI leaves open). Rank r of W holding micro-batch r of a step (data/loader.h)
// and the trainers accumulating micro-batches as a separate fold, N ranks x
// batch B give the same bits as 1 process x batch B x --accum N. Without MPI, or when not launched by an MPI starter, all of
// this is a single process (rank 0 of 1) and every call is a no-op.
//
// Watchdog: every wait on a collective polls (MPI_Test) against a deadline
// (mim_dist_set_timeout, default 300 s). A peer that is stopped, hung in a
// read or otherwise silent for that long ends the job: the waiting rank
// prints "rank R: no progress from peers for N s in <where> (step S);
// aborting" and calls MPI_Abort with MIM_EXIT_DIST_TIMEOUT. A peer that dies
// is handled by the launcher (mpirun kills the rest). Checkpoints are written
// by rank 0 with a temp file + rename, so the last complete one survives both.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, world;
    int mpi;               // 1 when MPI was initialised
} mim_dist;

#define MIM_EXIT_DIST_TIMEOUT 5   // a peer made no progress within the timeout

// Initialises MPI when built with it and started by an MPI launcher
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the environment).
// MIM_EARG (message set) when the launcher started N > 1 tasks
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE, or srun's SLURM_STEP_NUM_TASKS) but this
// process is not one of N MPI ranks: a build without MPI, or srun without
// a PMI plugin. N independent copies would train the same model N times
// into one folder.
int mim_dist_init(int* argc, char*** argv);
// 1 when built with MPI (-DMIM_MPI), else 0.
int mim_dist_built(void);
void mim_dist_finalize(void);
const mim_dist* mim_dist_get(void);
// Ends every rank with `code` (a rank that failed must not leave the others
// waiting in a collective forever).
void mim_dist_abort(int code);

// Seconds a rank waits in one collective for its peers before it aborts the
// job (0: wait forever). Must exceed the longest gap between collectives a
// healthy peer can have: a step, a checkpoint write, an evaluation.
void mim_dist_set_timeout(double seconds);
// What the job is doing, for the watchdog's message: phase ("pretrain",
// "finetune", "features") and the optimizer step (-1: none).
void mim_dist_context(const char* phase, int64_t step);

// Blocking collectives (no-ops for one process); sums in rank order.
void mim_dist_allreduce_sum(float* buf, size_t n);
void mim_dist_allreduce_sum_dv(double* x, int n);
// Counters (each < 2^53) summed over ranks.
void mim_dist_allreduce_sum_u64(uint64_t* x, int n);
double mim_dist_allreduce_sum_d(double x);
int64_t mim_dist_allreduce_max_i64(int64_t x);
void mim_dist_bcast(float* buf, size_t n, int root);
void mim_dist_barrier(void);
// 1 when buf (n floats) has the same bits on every rank (debug checksum).
int mim_dist_same_everywhere(const float* buf, size_t n);
// Rows of row_bytes each; rank r owns rows [first[r], first[r+1]) (first
// has world + 1 entries, first[world] = N < 2^31). On root, buf is the whole
// (N rows) array with root's own rows already in place, and receives the
// others'; on the other ranks buf holds just their own rows.
void mim_dist_gather_rows(void* buf, size_t row_bytes, const int64_t* first, int root);

// Overlapped gradient reduction over one flat buffer of n floats:
//   mim_dist_grads_begin(g, n); ... mim_dist_grads_ready(off, cnt) as parts
//   become final ...; mim_dist_grads_finish(scale)
// finish() waits for the started reductions, reduces whatever was not
// announced, and multiplies everything by scale (1/world for a mean).
void mim_dist_grads_begin(float* grads, size_t n);
void mim_dist_grads_ready(size_t offset, size_t count);
void mim_dist_grads_finish(float scale);

// Counters of the gradient reductions (begin .. finish) since the last reset,
// this rank's view; all zero for one process.
typedef struct {
    int64_t steps;         // finish() calls
    int64_t calls;         // all-reduce operations started (buckets + gaps)
    double bytes;          // bytes all-reduced (each rank's contribution)
    double wait_s;         // time blocked in finish(): after the backward, until all completed
    double span_s;         // first bucket started -> last one completed, summed over steps
} mim_dist_stats;
void mim_dist_stats_get(mim_dist_stats* s);
void mim_dist_stats_reset(void);
