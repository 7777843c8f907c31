// run.c: the training harness (see run.h).
#include "train/run.h"
#include "core/check.h"
#include "core/fault.h"
#include "core/mem.h"
#include "core/prof.h"
#include "ops/ops.h"
#include "train/signals.h"
#include <cjson/cJSON.h>
#include <errno.h>
#include <omp.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

void openblas_set_num_threads(int);   // OpenBLAS (no header declares it in every build)

uint64_t mim_run_data_bytes(const mim_source_config* a, const mim_source_config* b, int batch) {
    const mim_source_config* srcs[2] = {a, b};
    uint64_t data = 0, bytes;
    int x, y, z;
    for (int i = 0; i < 2; i++) {
        if (!srcs[i]) continue;
        mim_source_config t = *srcs[i];
        t.batch = batch;
        if (mim_source_estimate(&t, &bytes, &x, &y, &z) == 0) data += bytes;
    }
    return data;
}

void mim_run_need_detail(char* detail, size_t cap, uint64_t acts, int batch, uint64_t params, const char* acc,
                         uint64_t optim, uint64_t data) {
    char s1[32], s2[32], s3[32], s4[32];
    mim_format_bytes((double)acts, s1, sizeof s1);
    mim_format_bytes((double)params, s2, sizeof s2);
    mim_format_bytes((double)optim, s3, sizeof s3);
    mim_format_bytes((double)data, s4, sizeof s4);
    snprintf(detail, cap, "activations %s for batch %d, parameters + gradients %s, AdamW%s %s, data %s", s1, batch, s2,
             acc, s3, s4);
}

void mim_run_args_schedule(cJSON* j, int64_t global_batch, double epochs, int64_t steps, double blr, double lr,
                           double min_lr, double warmup_epochs, int64_t warmup_steps) {
    cJSON_AddNumberToObject(j, "global_batch", (double)global_batch);
    cJSON_AddNumberToObject(j, "epochs", epochs); cJSON_AddNumberToObject(j, "steps", (double)steps);
    cJSON_AddNumberToObject(j, "blr", blr); cJSON_AddNumberToObject(j, "lr", lr);
    cJSON_AddNumberToObject(j, "min_lr", min_lr); cJSON_AddNumberToObject(j, "warmup_epochs", warmup_epochs);
    if (warmup_steps > 0) cJSON_AddNumberToObject(j, "warmup_steps", (double)warmup_steps);
}

void mim_run_threads(int n) {
    if (n > 0) { omp_set_num_threads(n); openblas_set_num_threads(n); }
}

// Loads the latest checkpoint of cfg->out into the model, optimizer and
// extra state and restores this rank's share of the global data position.
static int resume(mim_run* r, const char* args_json) {
    const char* out = r->cfg.out;
    int stale = mim_ckpt_clean_stale(out);
    if (stale && r->loud) fprintf(stderr, "resume: removed %d temp file(s) of an interrupted checkpoint write\n", stale);
    int rc = mim_ckpt_load_run_ex(out, r->model, r->opt, r->extra, &r->st);
    if (rc == MIM_ENOTFOUND) {
        if (r->loud) fprintf(stderr, "resume: %s has no checkpoint yet, starting fresh\n", out);
        memset(&r->st, 0, sizeof r->st);
        return 0;
    }
    if (rc == MIM_ESHAPE) {   // e.g. another --target: decoder_pred has another width
        char why[1024];
        snprintf(why, sizeof why, "%s", mim_err_msg());
        return mim_err(rc, "cannot resume %s: its checkpoint does not fit this command's model (other --model, "
                       "--patch, --target?): %s", out, why);
    }
    if (rc) return rc;
    if (strcmp(r->st.args_json, args_json) != 0)
        return mim_err(MIM_EARG, "cannot resume %s: its settings differ from this command's\n  saved: %s\n  now:   %s",
                       out, r->st.args_json, args_json);
    r->resumed = 1;
    r->step0 = r->st.step;
    // the checkpoint holds the global position; this rank's share of it
    if ((rc = mim_source_set_position(r->src, (mim_source_pos){r->st.data_epoch, r->st.data_index / r->d->world})))
        return rc;
    mim_ckpt_metrics_truncate(r->metrics_path, r->step0);
    if (r->loud) fprintf(stderr, "resumed %s at step %lld\n", out, (long long)r->step0);
    return 0;
}

int mim_run_begin(mim_run* r, const mim_run_config* cfg, mim_source* src, mim_mae* model, mim_adamw* opt,
                  const mim_ckpt_extra* extra, const char* args_json) {
    memset(r, 0, sizeof *r);
    r->cfg = *cfg;
    r->d = mim_dist_get();
    r->loud = !cfg->quiet && r->d->rank == 0;   // one progress line per job
    r->tty = isatty(2);
    r->nl = r->tty ? "\n" : "";
    r->src = src; r->model = model; r->opt = opt; r->extra = extra;
    int rc;
    if ((rc = mim_ckpt_mkdirs(cfg->out))) {   // with its parents: --out runs/x works on a fresh checkout
        char why[900];
        snprintf(why, sizeof why, "%s", mim_err_msg());
        return mim_err(rc, "--out %s: cannot create the run folder (%s)", cfg->out, why);
    }
    snprintf(r->metrics_path, sizeof r->metrics_path, "%s/metrics.jsonl", cfg->out);
    if (cfg->resume && (rc = resume(r, args_json))) return rc;
    snprintf(r->st.args_json, sizeof r->st.args_json, "%s", args_json);
    if (r->d->rank == 0 && !(r->mf = fopen(r->metrics_path, r->resumed ? "a" : "w")))
        return mim_err(MIM_EIO, "cannot write %s: %s", r->metrics_path, strerror(errno));
    return 0;
}

void mim_run_metric(mim_run* r, const char* fmt, ...) {
    if (!r->mf) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(r->mf, fmt, ap);
    va_end(ap);
    fputc('\n', r->mf);
    // a failed write (full disk, EIO) warns once and training goes on: the
    // checkpoint writes, which stop the run cleanly, act on a full disk
    if ((fflush(r->mf) != 0 || ferror(r->mf)) && !r->mf_warned) {
        fprintf(stderr, "\nwarning: cannot write %s (%s); training goes on, the metrics log has a gap\n",
                r->metrics_path, strerror(errno));
        r->mf_warned = 1;
    }
    clearerr(r->mf);
}

void mim_run_progress(mim_run* r, const char* fmt, ...) {
    if (!r->loud) return;
    va_list ap;
    va_start(ap, fmt);
    if (r->tty) fputc('\r', stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(r->tty ? "   " : "\n", stderr);
}

// The run checkpoint after `done` steps: rank 0 writes it (retrying EIO
// io_retries times), every rank learns whether it was written.
static int checkpoint(mim_run* r, int64_t done, const mim_run_hooks* h, void* ctx) {
    mim_source_pos pos = mim_source_get_position(r->src);
    mim_train_state* st = &r->st;
    st->step = done;
    st->elapsed_s = r->t_before + (mim_now_s() - r->t0);
    st->data_epoch = pos.epoch;
    st->data_index = pos.index * r->d->world;   // global samples into the epoch
    if (h->save_extra) h->save_extra(ctx, st);
    int rc = 0;
    if (r->d->rank == 0) {
        for (int t = 0; (rc = mim_ckpt_save_run_ex(r->cfg.out, r->model, r->opt, r->extra, st, r->cfg.keep)) == MIM_EIO &&
                        mim_retry_wait(t, r->cfg.io_retries, "checkpoint write", mim_err_msg()); t++) {}
        if (rc) {
            char why[700];
            snprintf(why, sizeof why, "%s", mim_err_msg());
            rc = mim_err(rc, "checkpoint of step %lld not written: %s; the previous checkpoint is intact "
                         "(continue with --resume)", (long long)done, why);
        }
    }
    if (r->d->world > 1 && mim_dist_allreduce_max_i64(rc != 0) && !rc)   // rank 0's write failed: all stop
        rc = mim_err(MIM_EIO, "rank 0 could not write the checkpoint");
    return rc;
}

int mim_run_loop(mim_run* r, int64_t total, int64_t end, const mim_run_hooks* h, void* ctx) {
    r->t0 = mim_now_s();
    r->t_before = r->st.elapsed_s;
    mim_dist_stats_reset();
    int rc = 0;
    for (int64_t step = r->step0; step < end; step++) {
        int64_t done = step + 1;
        mim_dist_context(r->cfg.what, done);
        if ((rc = h->step(ctx, r, step))) return rc;
        if (h->after && (rc = h->after(ctx, r, done))) return rc;
        // signals may reach ranks at different steps: decide together
        int stop = (int)mim_dist_allreduce_max_i64(mim_signals_stop_requested());
        int want = (int)mim_dist_allreduce_max_i64(mim_signals_take_checkpoint());
        if ((h->save_due && h->save_due(ctx, done)) || done == end || done == total || stop || want)
            if ((rc = checkpoint(r, done, h, ctx))) return rc;
        if (stop)
            return mim_err(r->cfg.stopped_code, "stopped by signal %d after step %lld; checkpoint written, "
                           "continue with --resume", stop, (long long)done);
    }
    return 0;
}

int mim_run_counters(const mim_source* s, mim_loader_counters* c, char* out, size_t cap) {
    int has = mim_source_get_counters(s, c);   // the same on every rank: one source kind
    mim_dist_allreduce_sum_u64((uint64_t*)c, MIM_LOADER_NCOUNTERS);
    if (has) mim_loader_counters_format(c, out, cap);
    else if (cap) out[0] = 0;
    return has;
}

int mim_run_end(mim_run* r, int64_t done, double max_skip_frac, const char* label, const char* summary) {
    char cnt[512];
    mim_loader_counters lc;
    int counted = mim_run_counters(r->src, &lc, cnt, sizeof cnt);   // skips of every rank
    if (summary && r->loud)
        fprintf(stderr, "%sdone: %s, metrics in %s%s%s\n", r->nl, summary, r->metrics_path, cnt[0] ? "\n" : "", cnt);
    // the data verdict (the checkpoints are written: nothing is lost, but the
    // run did not train on what it was asked to)
    int rc = counted && done > r->step0 ? mim_loader_counters_check(&lc, max_skip_frac, label) : 0;
    if (r->loud && r->d->world > 1 && done > r->step0) {
        mim_dist_stats ds;
        mim_dist_stats_get(&ds);
        double n = ds.steps > 0 ? (double)ds.steps : 1;
        // rank 0's view; "dist:" lines are parsed by bench/bench_mpi.sh
        fprintf(stderr, "dist: %d ranks, all-reduce %.2f MB/step in %.1f calls/step, waited %.2f ms/step after the "
                "backward, first start to last completion %.2f ms/step (rank 0, %lld steps)\n", r->d->world,
                ds.bytes / n / 1e6, ds.calls / n, 1e3 * ds.wait_s / n, 1e3 * ds.span_s / n, (long long)ds.steps);
    }
    return rc;
}

void mim_run_close(mim_run* r) {
    if (r->mf) fclose(r->mf);
    r->mf = NULL;
}
