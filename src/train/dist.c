// dist.c: see dist.h.
#include "train/dist.h"
#include "core/check.h"
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#ifdef MIM_MPI
#include <mpi.h>
#endif

static mim_dist g_dist = {0, 1, 0};

const mim_dist* mim_dist_get(void) { return &g_dist; }

void mim_dist_init(int* argc, char*** argv) {
#ifdef MIM_MPI
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return;
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_dist.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_dist.world);
    // a failing rank ends the job instead of hanging the others
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    g_dist.mpi = 1;
#else
    (void)argc; (void)argv;
#endif
}

void mim_dist_finalize(void) {
#ifdef MIM_MPI
    if (g_dist.mpi) MPI_Finalize();
    g_dist.mpi = 0;
#endif
}

void mim_dist_abort(int code) {
#ifdef MIM_MPI
    if (g_dist.mpi && g_dist.world > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    exit(code);
}

void mim_dist_allreduce_sum(float* buf, size_t n) {
#ifdef MIM_MPI
    if (!g_dist.mpi || g_dist.world == 1) return;
    for (size_t o = 0; o < n; o += 1u << 30) {
        int c = (int)(n - o < (1u << 30) ? n - o : (1u << 30));
        MPI_Allreduce(MPI_IN_PLACE, buf + o, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
#else
    (void)buf; (void)n;
#endif
}

double mim_dist_allreduce_sum_d(double x) {
#ifdef MIM_MPI
    if (g_dist.mpi && g_dist.world > 1) MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#endif
    return x;
}

int64_t mim_dist_allreduce_max_i64(int64_t x) {
#ifdef MIM_MPI
    if (g_dist.mpi && g_dist.world > 1) MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
#endif
    return x;
}

void mim_dist_bcast(float* buf, size_t n, int root) {
#ifdef MIM_MPI
    if (!g_dist.mpi || g_dist.world == 1) return;
    for (size_t o = 0; o < n; o += 1u << 30) {
        int c = (int)(n - o < (1u << 30) ? n - o : (1u << 30));
        MPI_Bcast(buf + o, c, MPI_FLOAT, root, MPI_COMM_WORLD);
    }
#else
    (void)buf; (void)n; (void)root;
#endif
}

void mim_dist_barrier(void) {
#ifdef MIM_MPI
    if (g_dist.mpi && g_dist.world > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

int mim_dist_same_everywhere(const float* buf, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    const uint8_t* p = (const uint8_t*)buf;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211ULL;
    int64_t lo = (int64_t)(h >> 1);
    return mim_dist_allreduce_max_i64(lo) == lo && -mim_dist_allreduce_max_i64(-lo) == lo;
}

// ---------------------------------------------------------------- buckets

#define MAX_REQ 4096
static float* g_buf;
static size_t g_n;
static int g_nreq;
#ifdef MIM_MPI
static size_t g_off[MAX_REQ], g_cnt[MAX_REQ];
static MPI_Request g_req[MAX_REQ];
#endif
static double g_bytes, g_wait;

void mim_dist_grads_begin(float* grads, size_t n) {
    g_buf = grads; g_n = n; g_nreq = 0; g_bytes = 0; g_wait = 0;
}

void mim_dist_grads_ready(size_t offset, size_t count) {
#ifdef MIM_MPI
    if (!g_dist.mpi || g_dist.world == 1 || !g_buf || count == 0 || g_nreq >= MAX_REQ || count > (1u << 30)) return;
    CHECK(offset + count <= g_n);
    g_off[g_nreq] = offset; g_cnt[g_nreq] = count;
    MPI_Iallreduce(MPI_IN_PLACE, g_buf + offset, (int)count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &g_req[g_nreq]);
    g_nreq++;
#else
    (void)offset; (void)count;
#endif
}

#ifdef MIM_MPI
static int cmp_idx(const void* a, const void* b) {
    size_t x = g_off[*(const int*)a], y = g_off[*(const int*)b];
    return x < y ? -1 : x > y;
}
#endif

void mim_dist_grads_finish(float scale) {
    if (!g_buf) return;
#ifdef MIM_MPI
    if (g_dist.mpi && g_dist.world > 1) {
        double t0 = omp_get_wtime();
        if (g_nreq) MPI_Waitall(g_nreq, g_req, MPI_STATUSES_IGNORE);
        // the parts nobody announced, in one blocking reduction per gap
        int order[MAX_REQ];
        for (int i = 0; i < g_nreq; i++) order[i] = i;
        qsort(order, g_nreq, sizeof(int), cmp_idx);
        size_t pos = 0;
        for (int k = 0; k <= g_nreq; k++) {
            size_t next = k < g_nreq ? g_off[order[k]] : g_n;
            if (next > pos) mim_dist_allreduce_sum(g_buf + pos, next - pos);
            if (k < g_nreq) pos = g_off[order[k]] + g_cnt[order[k]];
        }
        g_wait = omp_get_wtime() - t0;
        g_bytes = (double)g_n * sizeof(float);
    }
#endif
    if (scale != 1.0f)
        for (size_t i = 0; i < g_n; i++) g_buf[i] *= scale;
    g_buf = NULL;
}

void mim_dist_grads_stats(double* bytes, double* wait_seconds) { *bytes = g_bytes; *wait_seconds = g_wait; }
