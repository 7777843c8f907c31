// dist.h: data-parallel training over MPI (OpenMPI / any MPI-3), optional.
//
// Built with MPI (the Makefile defines MIM_MPI when mpicc is found) and
// launched by mpirun / srun, every rank runs the same program on its own
// slice of each global batch; gradients are summed with MPI_Iallreduce in
// buckets as soon as a block's backward finishes, overlapping communication
// with the rest of the backward, then averaged; every rank applies the same
// AdamW update. Without MPI, or when not launched by an MPI starter, all of
// this is a single process (rank 0 of 1) and every call is a no-op.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int rank, world;
    int mpi;               // 1 when MPI was initialised
} mim_dist;

// Initialises MPI when built with it and started by an MPI launcher
// (OMPI_COMM_WORLD_SIZE, PMI_SIZE or PMIX_RANK in the environment).
void mim_dist_init(int* argc, char*** argv);
void mim_dist_finalize(void);
const mim_dist* mim_dist_get(void);
// Ends every rank with `code` (a rank that failed must not leave the others
// waiting in a collective forever).
void mim_dist_abort(int code);

// Blocking collectives (no-ops for one process).
void mim_dist_allreduce_sum(float* buf, size_t n);
double mim_dist_allreduce_sum_d(double x);
int64_t mim_dist_allreduce_max_i64(int64_t x);
void mim_dist_bcast(float* buf, size_t n, int root);
void mim_dist_barrier(void);
// 1 when buf (n floats) has the same bits on every rank (debug checksum).
int mim_dist_same_everywhere(const float* buf, size_t n);

// Overlapped gradient reduction over one flat buffer of n floats:
//   mim_dist_grads_begin(g, n); ... mim_dist_grads_ready(off, cnt) as parts
//   become final ...; mim_dist_grads_finish(scale)
// finish() waits for the started reductions, reduces whatever was not
// announced, and multiplies everything by scale (1/world for a mean).
void mim_dist_grads_begin(float* grads, size_t n);
void mim_dist_grads_ready(size_t offset, size_t count);
void mim_dist_grads_finish(float scale);
// Bytes and seconds spent in the last finish() (waits + the blocking rest).
void mim_dist_grads_stats(double* bytes, double* wait_seconds);
