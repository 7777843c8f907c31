// dist.c: see dist.h. Every collective is started non-blocking and finished
// by wait_all(), which polls with a deadline (the watchdog); nothing here
// calls a blocking MPI wait while the timeout is on.
#include "train/dist.h"
#include "core/check.h"
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef MIM_MPI
#include <mpi.h>
#endif

static mim_dist g_dist = {0, 1, 0};
static double g_timeout = 300.0;
static const char* g_phase = "";
static int64_t g_step = -1;
static mim_dist_stats g_stats;

const mim_dist* mim_dist_get(void) { return &g_dist; }
void mim_dist_set_timeout(double seconds) { g_timeout = seconds > 0 ? seconds : 0; }
void mim_dist_context(const char* phase, int64_t step) { g_phase = phase ? phase : ""; g_step = step; }
void mim_dist_stats_get(mim_dist_stats* s) { *s = g_stats; }
void mim_dist_stats_reset(void) { memset(&g_stats, 0, sizeof g_stats); }

int mim_dist_built(void) {
#ifdef MIM_MPI
    return 1;
#else
    return 0;
#endif
}

// The number of tasks the launcher started, as its environment says (1:
// none says more). srun sets SLURM_STEP_NUM_TASKS in a step's tasks, not in
// a batch script's shell (SLURM_NTASKS is the allocation's, set there too).
static int launched_tasks(const char** var) {
    static const char* const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_STEP_NUM_TASKS"};
    for (int i = 0; i < 3; i++) {
        const char* v = getenv(vars[i]);
        if (v && atoi(v) > 1) { *var = vars[i]; return atoi(v); }
    }
    return 1;
}

int mim_dist_init(int* argc, char*** argv) {
    const char* var = "";
    int tasks = launched_tasks(&var);
#ifdef MIM_MPI
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) {
        if (tasks > 1)
            return mim_err(MIM_EARG, "started as one of %d tasks (%s=%d) with no MPI launcher in the environment "
                           "(no OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK): use mpirun, or srun --mpi=pmix", tasks, var, tasks);
        return 0;
    }
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_dist.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_dist.world);
    // a failing rank ends the job instead of hanging the others
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    g_dist.mpi = 1;
    if (tasks > 1 && g_dist.world != tasks)
        return mim_err(MIM_EARG, "started as one of %d tasks (%s=%d) but MPI sees a world of %d: srun needs a PMI plugin "
                       "(srun --mpi=pmix)", tasks, var, tasks, g_dist.world);
#else
    (void)argc; (void)argv;
    if (tasks > 1)
        return mim_err(MIM_EARG, "started as one of %d tasks (%s=%d), but this mimscale was built without MPI: "
                       "%d independent copies would train into one folder (install libopenmpi-dev and rebuild, or start one task)",
                       tasks, var, tasks, tasks);
#endif
    return 0;
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

#ifdef MIM_MPI
static int active(void) { return g_dist.mpi && g_dist.world > 1; }

// Waits for n requests, polling: spins for the first 2 ms (a reduction that
// is nearly done should not pay a sleep), then sleeps 0.1 ms and, after
// 0.1 s, 1 ms between tests (a rank waiting for a slow peer should not take a
// core from it). Each test also advances OpenMPI's non-blocking collectives.
// Past the timeout: the message of dist.h and MPI_Abort.
static void wait_all(int n, MPI_Request* req, const char* where) {
    if (n == 0) return;
    if (g_timeout <= 0) { MPI_Waitall(n, req, MPI_STATUSES_IGNORE); return; }
    double t0 = MPI_Wtime();
    for (;;) {
        int done = 0;
        MPI_Testall(n, req, &done, MPI_STATUSES_IGNORE);
        if (done) return;
        double el = MPI_Wtime() - t0;
        if (el > g_timeout) {
            char st[48] = "";
            if (g_step >= 0) snprintf(st, sizeof st, " (step %lld)", (long long)g_step);
            fprintf(stderr, "\nrank %d: no progress from peers for %.0f s in %s%s%s%s; aborting\n", g_dist.rank, el,
                    g_phase, g_phase[0] ? " " : "", where, st);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, MIM_EXIT_DIST_TIMEOUT);
        }
        if (el > 0.002) {
            struct timespec ts = {0, el > 0.1 ? 1000000 : 100000};
            nanosleep(&ts, NULL);
        }
    }
}

#define CHUNK ((size_t)1 << 30)   // elements per MPI call (int counts)
#endif

// ---------------------------------------------------------------- ordered sums
// Every sum over ranks here is the left fold ((x_0 + x_1) + x_2) + ... in
// rank order, on every rank, whatever the launcher, network or MPI library:
// N ranks then produce the same bits as one process that accumulates the
// same N micro-batches in order (pretrain / finetune with --accum N). An
// MPI_SUM reduction promises no order (OpenMPI picks its algorithm by size
// and world), so floats go through two non-blocking collectives instead:
//   1. all-to-all: rank c receives chunk c of every rank's buffer
//      (chunk c = [cnt*c/W, cnt*(c+1)/W)) into a staging area;
//   2. rank c folds its chunk in rank order;
//   3. all-gather: every rank receives every folded chunk in place.
// Each rank sends and receives 2 (W-1)/W of the buffer, as a ring all-reduce.
#ifdef MIM_MPI
typedef struct {
    float* buf;            // the values, reduced in place
    float* stage;          // (W, mine): every rank's copy of this rank's chunk
    size_t cnt;
    int* ints;             // 4 W counts and displacements (alive until the collective ends)
    MPI_Request* req;      // the collective in flight
    size_t stage_cap;      // floats allocated at stage; slots keep their buffers, so after
                           // the first step no reduction allocates
} ored;

// buf grown to at least n elements of size bytes (kept between calls).
static void* grow(void* buf, size_t* cap, size_t n, size_t size) {
    if (n <= *cap) return buf;
    free(buf);
    buf = malloc(size * (n ? n : 1));
    CHECK(buf != NULL);
    *cap = n;
    return buf;
}

static void chunk_of(size_t cnt, int W, int c, size_t* lo, size_t* hi) {
    *lo = cnt * (size_t)c / (size_t)W;
    *hi = cnt * (size_t)(c + 1) / (size_t)W;
}

// Starts step 1 for buf[0, cnt) (cnt <= CHUNK).
static void ored_start(ored* o, float* buf, size_t cnt, MPI_Request* req) {
    int W = g_dist.world, me = g_dist.rank;
    size_t mlo, mhi;
    chunk_of(cnt, W, me, &mlo, &mhi);
    o->buf = buf; o->cnt = cnt; o->req = req;
    if (!o->ints) { o->ints = malloc(sizeof(int) * 4 * (size_t)W); CHECK(o->ints != NULL); }   // W is fixed
    o->stage = grow(o->stage, &o->stage_cap, (size_t)W * (mhi - mlo), sizeof(float));
    int *sc = o->ints, *sd = sc + W, *rc = sd + W, *rd = rc + W;
    for (int c = 0; c < W; c++) {
        size_t lo, hi;
        chunk_of(cnt, W, c, &lo, &hi);
        sc[c] = (int)(hi - lo); sd[c] = (int)lo;
        rc[c] = (int)(mhi - mlo); rd[c] = (int)((size_t)c * (mhi - mlo));
    }
    MPI_Ialltoallv(buf, sc, sd, MPI_FLOAT, o->stage, rc, rd, MPI_FLOAT, MPI_COMM_WORLD, o->req);
}

// After step 1 completed: folds this rank's chunk and starts step 3.
static void ored_fold_gather(ored* o) {
    int W = g_dist.world, me = g_dist.rank;
    size_t mlo, mhi;
    chunk_of(o->cnt, W, me, &mlo, &mhi);
    size_t m = mhi - mlo;
    float* dst = o->buf + mlo;
    memcpy(dst, o->stage, m * sizeof(float));
    for (int r = 1; r < W; r++) {
        const float* src = o->stage + (size_t)r * m;
        for (size_t i = 0; i < m; i++) dst[i] = dst[i] + src[i];
    }
    int *cnt = o->ints, *dsp = cnt + W;   // reuse: the send counts / displacements are every chunk's
    MPI_Iallgatherv(MPI_IN_PLACE, 0, MPI_FLOAT, o->buf, cnt, dsp, MPI_FLOAT, MPI_COMM_WORLD, o->req);
}

#endif

void mim_dist_allreduce_sum(float* buf, size_t n) {
#ifdef MIM_MPI
    if (!active()) return;
    static ored r;   // its buffers are kept for the next call
    for (size_t o = 0; o < n; o += CHUNK) {
        MPI_Request q;
        ored_start(&r, buf + o, n - o < CHUNK ? n - o : CHUNK, &q);
        wait_all(1, &q, "all-reduce");
        ored_fold_gather(&r);
        wait_all(1, &q, "all-reduce");
    }
#else
    (void)buf; (void)n;
#endif
}

// Doubles (losses, counters): every rank's values gathered, folded in rank order.
void mim_dist_allreduce_sum_dv(double* x, int n) {
#ifdef MIM_MPI
    if (!active() || n < 1) return;
    int W = g_dist.world;
    static double* all;   // kept: the step's loss goes through here
    static size_t cap;
    all = grow(all, &cap, (size_t)n * (size_t)W, sizeof(double));
    MPI_Request r;
    MPI_Iallgather(x, n, MPI_DOUBLE, all, n, MPI_DOUBLE, MPI_COMM_WORLD, &r);
    wait_all(1, &r, "all-reduce");
    for (int i = 0; i < n; i++) {
        double s = all[i];
        for (int k = 1; k < W; k++) s = s + all[(size_t)k * n + i];
        x[i] = s;
    }
#else
    (void)x; (void)n;
#endif
}

void mim_dist_allreduce_sum_u64(uint64_t* x, int n) {
    if (!g_dist.mpi || g_dist.world <= 1 || n < 1) return;
    double* v = malloc(sizeof(double) * (size_t)n);
    CHECK(v != NULL);
    for (int i = 0; i < n; i++) v[i] = (double)x[i];
    mim_dist_allreduce_sum_dv(v, n);
    for (int i = 0; i < n; i++) x[i] = (uint64_t)v[i];
    free(v);
}

double mim_dist_allreduce_sum_d(double x) {
    mim_dist_allreduce_sum_dv(&x, 1);
    return x;
}

int64_t mim_dist_allreduce_max_i64(int64_t x) {
#ifdef MIM_MPI
    if (!active()) return x;
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, &x, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD, &r);
    wait_all(1, &r, "all-reduce");
#endif
    return x;
}

void mim_dist_bcast(float* buf, size_t n, int root) {
#ifdef MIM_MPI
    if (!active()) return;
    for (size_t o = 0; o < n; o += CHUNK) {
        MPI_Request r;
        MPI_Ibcast(buf + o, (int)(n - o < CHUNK ? n - o : CHUNK), MPI_FLOAT, root, MPI_COMM_WORLD, &r);
        wait_all(1, &r, "broadcast");
    }
#else
    (void)buf; (void)n; (void)root;
#endif
}

void mim_dist_barrier(void) {
#ifdef MIM_MPI
    if (!active()) return;
    MPI_Request r;
    MPI_Ibarrier(MPI_COMM_WORLD, &r);
    wait_all(1, &r, "barrier");
#endif
}

int mim_dist_same_everywhere(const float* buf, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    const uint8_t* p = (const uint8_t*)buf;
    for (size_t i = 0; i < n * sizeof(float); i++) h = (h ^ p[i]) * 1099511628211ULL;
    int64_t lo = (int64_t)(h >> 1);
    return mim_dist_allreduce_max_i64(lo) == lo && -mim_dist_allreduce_max_i64(-lo) == lo;
}

void mim_dist_gather_rows(void* buf, size_t row_bytes, const int64_t* first, int root) {
#ifdef MIM_MPI
    if (!active()) return;
    int W = g_dist.world, me = g_dist.rank;
    CHECK(row_bytes > 0 && row_bytes <= INT_MAX && first[W] <= INT_MAX);
    MPI_Datatype row;
    MPI_Type_contiguous((int)row_bytes, MPI_BYTE, &row);
    MPI_Type_commit(&row);
    int* cnt = malloc(sizeof(int) * 2 * (size_t)W);
    CHECK(cnt != NULL);
    int* dsp = cnt + W;
    for (int r = 0; r < W; r++) { cnt[r] = (int)(first[r + 1] - first[r]); dsp[r] = (int)first[r]; }
    MPI_Request q;
    if (me == root) MPI_Igatherv(MPI_IN_PLACE, 0, row, buf, cnt, dsp, row, root, MPI_COMM_WORLD, &q);
    else MPI_Igatherv(buf, cnt[me], row, NULL, NULL, NULL, row, root, MPI_COMM_WORLD, &q);
    wait_all(1, &q, "gather");
    free(cnt);
    MPI_Type_free(&row);
#else
    (void)buf; (void)row_bytes; (void)first; (void)root;
#endif
}

// ---------------------------------------------------------------- buckets
// Each announced range is one ordered reduction (above): its all-to-all
// starts at once and runs during the rest of the backward; finish() starts
// the unannounced gaps, then folds and all-gathers every range.

#define MAX_REQ 4096
static float* g_buf;
static size_t g_n;
static int g_nreq;
#ifdef MIM_MPI
static size_t g_off[MAX_REQ], g_cnt[MAX_REQ];
static MPI_Request g_req[MAX_REQ];
static ored g_ored[MAX_REQ];
static double g_first;   // when this step's first bucket started
#endif

void mim_dist_grads_begin(float* grads, size_t n) {
    g_buf = grads; g_n = n; g_nreq = 0;
}

#ifdef MIM_MPI
static void start_range(size_t offset, size_t count) {
    if (g_nreq == 0) g_first = MPI_Wtime();
    g_off[g_nreq] = offset; g_cnt[g_nreq] = count;
    ored_start(&g_ored[g_nreq], g_buf + offset, count, &g_req[g_nreq]);
    g_nreq++;
    g_stats.calls++;
    g_stats.bytes += (double)count * sizeof(float);
}
#endif

void mim_dist_grads_ready(size_t offset, size_t count) {
#ifdef MIM_MPI
    if (!active() || !g_buf || count == 0 || g_nreq >= MAX_REQ - 64 || count > CHUNK) return;
    CHECK(offset + count <= g_n);
    start_range(offset, count);
    // nudge the started reductions along (OpenMPI progresses them only inside MPI calls)
    int done;
    MPI_Testall(g_nreq, g_req, &done, MPI_STATUSES_IGNORE);
#else
    (void)offset; (void)count;
#endif
}

#ifdef MIM_MPI
// Waits for every started range's all-to-all, folds, all-gathers, waits.
static void finish_in_flight(void) {
    wait_all(g_nreq, g_req, "gradient all-reduce");
    for (int i = 0; i < g_nreq; i++) ored_fold_gather(&g_ored[i]);
    wait_all(g_nreq, g_req, "gradient all-reduce");
    g_nreq = 0;
}

static int cmp_idx(const void* a, const void* b) {
    size_t x = g_off[*(const int*)a], y = g_off[*(const int*)b];
    return x < y ? -1 : x > y;
}
#endif

void mim_dist_grads_finish(float scale) {
    if (!g_buf) return;
#ifdef MIM_MPI
    if (active()) {
        double t0 = MPI_Wtime();
        if (g_nreq == 0) g_first = t0;
        // the parts nobody announced, one range per gap (split at CHUNK)
        int nann = g_nreq, order[MAX_REQ], ngap = 0;
        static size_t gap_off[MAX_REQ + 1], gap_end[MAX_REQ + 1];
        for (int i = 0; i < nann; i++) order[i] = i;
        qsort(order, nann, sizeof(int), cmp_idx);
        size_t pos = 0;
        for (int k = 0; k <= nann; k++) {
            size_t next = k < nann ? g_off[order[k]] : g_n;
            if (next > pos) { gap_off[ngap] = pos; gap_end[ngap] = next; ngap++; }
            if (k < nann && g_off[order[k]] + g_cnt[order[k]] > pos) pos = g_off[order[k]] + g_cnt[order[k]];
        }
        for (int k = 0; k < ngap; k++)
            for (size_t o = gap_off[k]; o < gap_end[k]; o += CHUNK) {
                if (g_nreq == MAX_REQ) finish_in_flight();
                start_range(o, gap_end[k] - o < CHUNK ? gap_end[k] - o : CHUNK);
            }
        finish_in_flight();
        double t1 = MPI_Wtime();
        g_stats.steps++;
        g_stats.wait_s += t1 - t0;
        g_stats.span_s += t1 - g_first;
    }
#endif
    if (scale != 1.0f)
        for (size_t i = 0; i < g_n; i++) g_buf[i] *= scale;
    g_buf = NULL;
}
