// test_slurm.c: `mimscale study run --launcher slurm` on a real one-node
// Slurm cluster (tests/slurm/start.sh, in a temporary folder, stopped at the
// end), with the real binary:
// - a tiny two-run study goes in as two job arrays (pre-trainings; kNN with
//   --dependency=aftercorr on them, pending on its dependency while they run),
//   a second `study run` while they are queued submits nothing again, `study
//   status` reaches "2 done", and the rows equal those of a local run;
// - scancel of a pre-training mid-run: its kNN task is cancelled with it, the
//   next `study run` resubmits the run and the pre-training resumes;
// - `scontrol requeue` of a running pre-training: it resumes from its
//   checkpoint in the requeued job, and the run gets one row, not two;
// - a pre-training as 2 MPI ranks through srun (slurm.pretrain.ntasks 2)
//   gives the 1-process run's losses within the tolerance of test_dist;
//   srun's 2 tasks without a PMI plugin, or of a build without MPI (where
//   the study's ntasks 2 is refused before anything is submitted), refuse
//   to start instead of training twice into one folder;
// - rejected submissions (unknown partition, a time limit over the
//   partition's, no sbatch on PATH) fail naming the cause, with sbatch's own
//   words, and record nothing.
// Skips (77) when not root or when the cluster cannot start; every wait is
// bounded.
#include "testutil.h"
#include "study/results.h"
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmpdir[256], root[1024], cluster[512], bin[2048];
static int cluster_up;

static void stop_cluster(void) {
    if (!cluster_up) return;
    cluster_up = 0;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s/tests/slurm/stop.sh' '%s' >/dev/null 2>&1", root, cluster);
    if (system(cmd)) {}
}

// Runs a shell command line; its stdout + stderr into *out (malloc'd, may be NULL). Returns the exit status.
static int sh(const char* cmd, char** out) {
    char full[8192];
    snprintf(full, sizeof full, "timeout 150 sh -c '%s' 2>&1", cmd);
    FILE* p = popen(full, "r");
    if (!p) return -1;
    size_t n = 0, cap = 4096;
    char* b = malloc(cap);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n - 1, p)) > 0) {
        n += r;
        if (n + 1 >= cap) { char* nb = realloc(b, cap *= 2); if (!nb) { free(b); b = NULL; } else b = nb; }
    }
    if (b) b[n] = 0;
    int st = pclose(p);
    if (out) *out = b; else free(b);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static const char* study_fmt =
    "{\"name\": \"sl\", \"data\": {\"idx\": \"%s\", \"img\": 16, \"eval_size\": 64},\n"
    " \"subsets\": {\"sizes\": %s},\n"
    " \"models\": [{\"preset\": \"vit_nano\", \"patch\": 4, \"dec_dim\": 16, \"dec_depth\": 1, \"dec_heads\": 2}],\n"
    " \"budget\": {\"epochs\": %d}, \"pretrain\": {\"batch\": 16, \"save_every\": 4, \"threads\": 1},\n"
    " \"evaluations\": {\"knn\": {\"k\": 5}}, \"baselines\": false%s}\n";

// The job id of step `step` of the (first) run in study folder out ("" if none).
static void step_job(const char* out, const char* step, char* buf, size_t cap) {
    buf[0] = 0;
    char cmd[1024], *o = NULL;
    snprintf(cmd, sizeof cmd, "ls %s/runs/*/slurm.json 2>/dev/null | head -n 1", out);
    sh(cmd, &o);
    if (!o) return;
    o[strcspn(o, "\n")] = 0;
    uint8_t* t = NULL;
    size_t n = tu_slurp(o, &t);
    free(o);
    cJSON* j = n ? cJSON_Parse((const char*)t) : NULL;
    const cJSON* js = cJSON_GetObjectItemCaseSensitive(j, "jobs");
    for (const cJSON* e = js ? js->child : NULL; e; e = e->next) {
        const cJSON* st = cJSON_GetObjectItemCaseSensitive(e, "step");
        const cJSON* id = cJSON_GetObjectItemCaseSensitive(e, "job_id");
        if (cJSON_IsString(st) && cJSON_IsString(id) && !strcmp(st->valuestring, step)) { snprintf(buf, cap, "%s", id->valuestring); break; }
    }
    cJSON_Delete(j);
}

// `scontrol show job -o JOB`'s KEY= value into buf ("" if none).
static void job_field(const char* job, const char* key, char* buf, size_t cap) {
    char cmd[512], *o = NULL;
    snprintf(cmd, sizeof cmd, "scontrol show job -o %s | tr \" \" \"\\n\" | sed -n \"s/^%s=//p\" | head -n 1", job, key);
    sh(cmd, &o);
    snprintf(buf, cap, "%s", o ? o : "");
    buf[strcspn(buf, "\n")] = 0;
    free(o);
}

// Polls `study status` (bounded) until its summary holds want; 1 when it did.
static int wait_status(const char* sj, const char* out, const char* want, double limit_s) {
    char cmd[4096], *o = NULL;
    snprintf(cmd, sizeof cmd, "cd %s && %s study status %s --out %s", tmpdir, bin, sj, out);
    double t = now_s();
    int ok = 0;
    while (now_s() - t < limit_s && !ok) {
        sh(cmd, &o);
        ok = o && strstr(o, want);
        int idle = o && strstr(o, " 0 pending, 0 running");
        free(o);
        if (idle && !ok) break;
        if (!ok) usleep(500 * 1000);
    }
    return ok;
}

// The "step" values of a pre-training's metrics.jsonl never go back (a
// restart from scratch would log step 2 again); the last one into *last.
static int steps_rising(const char* metrics, long* last) {
    uint8_t* m = NULL;
    size_t mn = tu_slurp(metrics, &m);
    *last = -1;
    int rising = mn > 0;
    for (char* p = mn ? strstr((char*)m, "\"step\":") : NULL; p; p = strstr(p + 1, "\"step\":")) {
        long v = strtol(p + 7, NULL, 10);
        rising &= v >= *last;   // a val_loss line repeats its step
        *last = v;
    }
    return rising;
}

// The job ids in the study folder's runs/*/slurm.json, joined ("" if none).
static void job_ids(const char* out, char* buf, size_t cap) {
    char cmd[1024], *o = NULL;
    snprintf(cmd, sizeof cmd, "cat %s/runs/*/slurm.json 2>/dev/null | grep job_id | tr -d \" \\n\"", out);
    sh(cmd, &o);
    snprintf(buf, cap, "%s", o ? o : "");
    free(o);
}

static char* row_text(const mim_results* r, int i) {
    cJSON* c = cJSON_Duplicate(r->rows[i], 1);
    cJSON_DeleteItemFromObject(c, "wall_s");
    cJSON_DeleteItemFromObject(c, "finished_at");
    cJSON_DeleteItemFromObject(c, "pretrain_s");
    char* t = cJSON_PrintUnformatted(c);
    cJSON_Delete(c);
    return t;
}

static int finish(int skipped, const char* why) {
    stop_cluster();
    tu_cleanup_dir(tmpdir);
    tu_free_all();
    return tu_summary("test_slurm", skipped, why);
}

int main(void) {
    double t0 = now_s();
    if (geteuid() != 0) { printf("skip: the Slurm daemons of tests/slurm/start.sh run as root; not root\n"); return TU_SKIP; }
    CHECK(tu_repo_root(root, sizeof root, "tests/slurm/start.sh") == 0);
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    char rel[1200];
    snprintf(rel, sizeof rel, "%s%s/mimscale", build[0] == '/' ? "" : "./", build);
    if (!realpath(rel, bin)) { snprintf(rel, sizeof rel, "%s/%s/mimscale", root, build); CHECK(realpath(rel, bin)); }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_slurm.XXXXXX");
    CHECK(mkdtemp(tmpdir));
    CHECK(chmod(tmpdir, 0755) == 0);   // munged wants its socket's folders searchable by all
    snprintf(cluster, sizeof cluster, "%s/slurm", tmpdir);
    atexit(stop_cluster);

    char cmd[8192], *o = NULL;
    snprintf(cmd, sizeof cmd, "%s/tests/slurm/start.sh %s 2>%s/start.err", root, cluster, tmpdir);
    int rc = sh(cmd, &o);
    cluster_up = 1;   // stop.sh also cleans up after a half start
    if (rc != 0) {
        snprintf(cmd, sizeof cmd, "tail -n 5 %s/start.err", tmpdir);
        char* e = NULL;
        sh(cmd, &e);
        printf("%s\n", e ? e : "");
        free(e);
        static char why[256];
        snprintf(why, sizeof why, "tests/slurm/start.sh exited %d: no Slurm cluster (see above)", rc);
        free(o);
        if (rc == 77) { printf("skip: %s\n", why); return finish(1, why); }
        TU_CHECK(0, "%s", why);
        return finish(0, NULL);
    }
    char* conf = o ? strstr(o, "export SLURM_CONF=") : NULL;
    CHECK(conf);
    conf += strlen("export SLURM_CONF=");
    conf[strcspn(conf, "\n")] = 0;
    setenv("SLURM_CONF", conf, 1);
    free(o);
    printf("cluster up in %.1f s (SLURM_CONF=%s)\n", now_s() - t0, getenv("SLURM_CONF"));

    // The data and the study: two runs (subsets of 64 and 128 images, 4 and 8 steps).
    char data[600], sj[600];
    snprintf(data, sizeof data, "%s/data", tmpdir);
    CHECK(mkdir(data, 0755) == 0);
    mim_rng r;
    mim_rng_seed(&r, 9);
    int n = 256, H = 16, W = 16;
    uint8_t* px = tu_alloc_bytes((size_t)n * H * W);
    uint8_t* lab = tu_alloc_bytes((size_t)n);
    for (size_t k = 0; k < (size_t)n * H * W; k++) px[k] = (uint8_t)mim_rng_below(&r, 256);
    for (int i = 0; i < n; i++) lab[i] = (uint8_t)(i % 10);
    tu_write_idx(data, "train", n, H, W, px, lab);
    tu_write_idx(data, "t10k", n / 4, H, W, px, lab);
    snprintf(sj, sizeof sj, "%s/sl.json", tmpdir);
    FILE* f = fopen(sj, "w");
    CHECK(f);
    fprintf(f, study_fmt, data, "[64, 128]", 1, "");
    fclose(f);

    // Rejected submissions: the cause in sbatch's words, nothing recorded.
    struct { const char* flags; const char* want; } bad[] = {
        {"--partition nosuch", "sbatch: error: invalid partition specified: nosuch"},
        {"--partition short --time 00:10:00", "Requested time limit is invalid"},
    };
    for (int b = 0; b < 2; b++) {
        snprintf(cmd, sizeof cmd, "cd %s && %s study run %s --out %s/bad%d --launcher slurm --quiet %s", tmpdir, bin, sj, tmpdir, b, bad[b].flags);
        rc = sh(cmd, &o);
        char ids[512];
        snprintf(rel, sizeof rel, "%s/bad%d", tmpdir, b);
        job_ids(rel, ids, sizeof ids);
        TU_CHECK(rc == 1 && o && strstr(o, bad[b].want) && strstr(o, "sbatch refused") && !ids[0],
                 "%s: exit %d (want 1), the error quotes sbatch (\"%s\"), no slurm.json: %s", bad[b].flags, rc, bad[b].want, o ? o : "");
        free(o);
    }
    snprintf(cmd, sizeof cmd, "cd %s && PATH=/nonexistent %s study run %s --out %s/bad2 --launcher slurm --quiet", tmpdir, bin, sj, tmpdir);
    rc = sh(cmd, &o);
    TU_CHECK(rc == 1 && o && strstr(o, "sbatch not found on PATH"), "no sbatch on PATH: exit %d, \"sbatch not found on PATH\": %s", rc, o ? o : "");
    free(o);

    // The same study locally, then through Slurm.
    double tl = now_s();
    snprintf(cmd, sizeof cmd, "cd %s && %s study run %s --out %s/local --quiet", tmpdir, bin, sj, tmpdir);
    rc = sh(cmd, &o);
    TU_CHECK(rc == 0, "local run: exit %d%s%s", rc, rc ? ": " : "", rc && o ? o : "");
    free(o);
    printf("local study: %.1f s\n", now_s() - tl);
    char sout[600];
    snprintf(sout, sizeof sout, "%s/viaslurm", tmpdir);
    snprintf(cmd, sizeof cmd, "cd %s && %s study run %s --out %s --launcher slurm", tmpdir, bin, sj, sout);
    rc = sh(cmd, &o);
    TU_CHECK(rc == 0 && o && strstr(o, "submitted 2 run(s) as 2 slurm job array(s)"), "study run --launcher slurm: exit %d, 2 runs in 2 job arrays: %s", rc, o ? o : "");
    free(o);
    {   // the kNN array follows the pre-training array task by task
        char pj[64], kj[64], dep[256], kill[64];
        step_job(sout, "pretrain", pj, sizeof pj);
        step_job(sout, "knn", kj, sizeof kj);
        job_field(kj, "Dependency", dep, sizeof dep);
        job_field(kj, "KillOInInvalidDependent", kill, sizeof kill);
        char pa[64];
        snprintf(pa, sizeof pa, "aftercorr:%.*s", (int)strcspn(pj, "_"), pj);
        TU_CHECK(pj[0] && kj[0] && (strstr(dep, pa) || !strcmp(dep, "(null)")) && !strcmp(kill, "Yes"),
                 "knn job %s depends on pre-training %s (Dependency=%s, want %s or already met; kill on invalid dependency: %s)", kj, pj, dep, pa, kill);
    }
    char ids1[512], ids2[512];
    job_ids(sout, ids1, sizeof ids1);
    TU_CHECK(ids1[0] != 0, "runs/<id>/slurm.json record the job ids (%s)", ids1);
    // Again while they are queued or running: nothing submitted twice.
    rc = sh(cmd, &o);
    job_ids(sout, ids2, sizeof ids2);
    int twice_ok = rc == 0 && o && (strstr(o, "submitted 0 run(s)") || strstr(o, "2 done"));
    TU_CHECK(twice_ok && !strcmp(ids1, ids2), "study run again while the jobs are queued: nothing resubmitted (%s -> %s): %s", ids1, ids2, o ? o : "");
    free(o);
    // Poll `study status` (bounded) until both runs are done.
    char* st = NULL;
    int all_done = 0;
    double tp = now_s();
    snprintf(cmd, sizeof cmd, "cd %s && %s study status %s --out %s", tmpdir, bin, sj, sout);
    while (now_s() - tp < 180 && !all_done) {
        free(st);
        st = NULL;
        rc = sh(cmd, &st);
        all_done = rc == 0 && st && strstr(st, "2 runs: 2 done");
        if (!all_done) {
            if (st && strstr(st, " 0 pending, 0 running")) break;   // nothing queued or running: no use waiting
            usleep(500 * 1000);
        }
    }
    TU_CHECK(all_done && strstr(st, "slurm-pretrain.out") && strstr(st, "job "), "study status: both runs done in %.0f s, with job ids and log paths", now_s() - tp);
    printf("%s\n", st ? st : "");
    free(st);
    // The rows: the local run's, field for field (wall-clock fields aside).
    char p1[700], p2[700];
    snprintf(p1, sizeof p1, "%s/local/results.jsonl", tmpdir);
    snprintf(p2, sizeof p2, "%s/results.jsonl", sout);
    mim_results a, b;
    CHECK(mim_results_load(&a, p1) == 0);
    CHECK(mim_results_load(&b, p2) == 0);
    int same = 0;
    for (int i = 0; i < a.n; i++) {
        const cJSON* id = cJSON_GetObjectItem(a.rows[i], "id");
        int j = 0;
        while (j < b.n && strcmp(cJSON_GetObjectItem(b.rows[j], "id")->valuestring, id->valuestring)) j++;
        if (j == b.n) continue;
        char* ta = row_text(&a, i);
        char* tb = row_text(&b, j);
        same += !strcmp(ta, tb) && strstr(ta, "knn_top1") && strstr(ta, "\"status\":\"ok\"");
        free(ta); free(tb);
    }
    TU_CHECK(a.n == 2 && b.n == 2 && b.lines == 2 && same == 2, "slurm rows = local rows: %d / %d equal (ok, knn_top1, same metrics), %d lines",
             same, a.n, b.lines);
    mim_results_free(&a);
    mim_results_free(&b);

    // scancel in the middle of a pre-training: the job ends without a row
    // (status: failed, not requeued), the next `study run` resubmits it and
    // the pre-training resumes from its checkpoint.
    char sj2[600], sout2[600], run_dir[1000];
    snprintf(sj2, sizeof sj2, "%s/long.json", tmpdir);
    f = fopen(sj2, "w");
    CHECK(f);
    fprintf(f, study_fmt, data, "[128]", 60, "");   // 480 steps, a checkpoint every 4
    fclose(f);
    snprintf(sout2, sizeof sout2, "%s/cancel", tmpdir);
    snprintf(cmd, sizeof cmd, "cd %s && %s study run %s --out %s --launcher slurm --quiet", tmpdir, bin, sj2, sout2);
    rc = sh(cmd, NULL);
    job_ids(sout2, ids1, sizeof ids1);
    snprintf(cmd, sizeof cmd, "ls -d %s/runs/*/", sout2);
    sh(cmd, &o);
    snprintf(run_dir, sizeof run_dir, "%s", o ? o : "");
    run_dir[strcspn(run_dir, "\n")] = 0;
    free(o);
    char latest[1500];
    snprintf(latest, sizeof latest, "%spretrain/latest", run_dir);
    struct stat sb;
    double tw = now_s();
    while (now_s() - tw < 60 && stat(latest, &sb) != 0) usleep(100 * 1000);
    char pjob[64], kjob[64];
    step_job(sout2, "pretrain", pjob, sizeof pjob);
    step_job(sout2, "knn", kjob, sizeof kjob);
    TU_CHECK(rc == 0 && pjob[0] && stat(latest, &sb) == 0, "long run: pre-training submitted as job %s, a checkpoint within %.0f s", pjob, now_s() - tw);
    snprintf(cmd, sizeof cmd, "scancel %s", pjob);
    sh(cmd, NULL);
    int ended = wait_status(sj2, sout2, "1 runs: 0 done, 1 failed", 40);
    snprintf(cmd, sizeof cmd, "cd %s && %s study status %s --out %s", tmpdir, bin, sj2, sout2);
    sh(cmd, &o);
    ended &= o && strstr(o, "CANCELLED") != NULL;
    free(o);
    char kstate[64];
    job_field(kjob, "JobState", kstate, sizeof kstate);
    TU_CHECK(ended && !strcmp(kstate, "CANCELLED"), "scancel: `study status` says failed, pre-training CANCELLED, its knn task %s (want CANCELLED)", kstate);
    char ckpt_at_cancel[64] = "";
    f = fopen(latest, "r");
    if (f) { if (!fgets(ckpt_at_cancel, sizeof ckpt_at_cancel, f)) ckpt_at_cancel[0] = 0; fclose(f); }
    ckpt_at_cancel[strcspn(ckpt_at_cancel, "\n")] = 0;
    snprintf(cmd, sizeof cmd, "cd %s && %s study run %s --out %s --launcher slurm --quiet", tmpdir, bin, sj2, sout2);
    rc = sh(cmd, NULL);
    job_ids(sout2, ids2, sizeof ids2);
    TU_CHECK(rc == 0 && strcmp(ids1, ids2), "study run after the scancel: resubmitted (%s -> %s)", ids1, ids2);
    all_done = wait_status(sj2, sout2, "1 runs: 1 done", 120);
    // Resumed: a checkpoint was there after the cancel, and the metrics' steps never go back.
    int stopped = ckpt_at_cancel[0] != 0;
    snprintf(rel, sizeof rel, "%spretrain/metrics.jsonl", run_dir);
    long last;
    int rising = steps_rising(rel, &last);
    TU_CHECK(all_done && stopped && rising && last == 480,
             "the resubmitted job finished the run, resuming the pre-training from %s (steps never back: %d, to %ld)", ckpt_at_cancel, rising, last);

    // scontrol requeue of the running pre-training (what preemption does):
    // the job gets TERM, the worker checkpoints, Slurm runs the same job
    // again (SLURM_RESTART_COUNT 1), it resumes, and the run has one row.
    char sout3[600];
    snprintf(sout3, sizeof sout3, "%s/requeue", tmpdir);
    snprintf(cmd, sizeof cmd, "cd %s && %s study run %s --out %s --launcher slurm --quiet", tmpdir, bin, sj2, sout3);
    rc = sh(cmd, NULL);
    snprintf(cmd, sizeof cmd, "ls -d %s/runs/*/", sout3);
    sh(cmd, &o);
    snprintf(run_dir, sizeof run_dir, "%s", o ? o : "");
    run_dir[strcspn(run_dir, "\n")] = 0;
    free(o);
    snprintf(latest, sizeof latest, "%spretrain/latest", run_dir);
    tw = now_s();
    while (now_s() - tw < 60 && stat(latest, &sb) != 0) usleep(100 * 1000);
    step_job(sout3, "pretrain", pjob, sizeof pjob);
    snprintf(cmd, sizeof cmd, "scontrol requeue %s", pjob);
    int rq = sh(cmd, &o);
    TU_CHECK(rc == 0 && pjob[0] && rq == 0, "requeue: pre-training job %s requeued with a checkpoint there (scontrol exit %d %s)", pjob, rq, o ? o : "");
    free(o);
    all_done = wait_status(sj2, sout3, "1 runs: 1 done", 150);
    char restarts[32];
    job_field(pjob, "Restarts", restarts, sizeof restarts);
    snprintf(rel, sizeof rel, "%spretrain/metrics.jsonl", run_dir);
    rising = steps_rising(rel, &last);
    snprintf(rel, sizeof rel, "%sslurm-pretrain.out", run_dir);
    uint8_t* lg = NULL;
    size_t ln = tu_slurp(rel, &lg);
    int reran = ln && strstr((char*)lg, "restart 1)");
    snprintf(p2, sizeof p2, "%s/results.jsonl", sout3);
    mim_results rr;
    CHECK(mim_results_load(&rr, p2) == 0);
    TU_CHECK(all_done && atoi(restarts) >= 1 && reran && rising && last == 480 && rr.lines == 1,
             "requeued job resumed (Restarts=%s, log says restart 1: %d, steps never back: %d, to %ld) and wrote %d row(s) (want 1)",
             restarts, reran, rising, last, rr.lines);
    mim_results_free(&rr);

    // Two MPI ranks through srun: slurm.pretrain.ntasks 2 (batch 8 each, the
    // global batch stays 16) against the 1-process local run of the same
    // study (same run id: resources are not part of it). The losses agree
    // within test_dist's bound for 1 x B against 2 x B/2 (5e-4; the fp32
    // sums are grouped differently), the steps and images exactly.
    char sj3[600], sout4[600], sout5[600];
    snprintf(sj3, sizeof sj3, "%s/mpi.json", tmpdir);
    f = fopen(sj3, "w");
    CHECK(f);
    fprintf(f, study_fmt, data, "[64]", 2, ", \"slurm\": {\"pretrain\": {\"ntasks\": 2, \"cpus_per_task\": 1}, \"mpi\": \"pmix\"}");
    fclose(f);
    snprintf(sout4, sizeof sout4, "%s/mpi-local", tmpdir);
    snprintf(sout5, sizeof sout5, "%s/mpi-slurm", tmpdir);
#ifndef MIM_MPI
    // Built without MPI (the sanitizer build): the study's 2 ranks are
    // refused before anything is submitted, and srun's 2 tasks of a
    // pre-training refuse to start rather than train twice into one folder.
    {
        char* so = NULL, *po = NULL;
        snprintf(cmd, sizeof cmd, "cd %s && %s study run %s --out %s --launcher slurm --quiet", tmpdir, bin, sj3, sout5);
        int rs = sh(cmd, &so);
        snprintf(cmd, sizeof cmd, "ls %s/runs/*/slurm.json 2>/dev/null | wc -l", sout5);
        char* cnt = NULL;
        sh(cmd, &cnt);
        TU_CHECK(rs != 0 && so && strstr(so, "built without MPI") && cnt && atoi(cnt) == 0,
                 "without MPI: slurm.pretrain.ntasks 2 refused (exit %d, \"%.160s\"), %d run(s) recorded as submitted (want 0)",
                 rs, so ? so : "", cnt ? atoi(cnt) : -1);
        snprintf(cmd, sizeof cmd, "srun --ntasks=2 --cpus-per-task=1 %s pretrain --data=%s --steps=2 --out=%s/srun2",
                 bin, data, tmpdir);
        int rp = sh(cmd, &po);
        snprintf(p1, sizeof p1, "%s/srun2", tmpdir);
        struct stat st2;
        TU_CHECK(rp != 0 && po && strstr(po, "built without MPI") && stat(p1, &st2) != 0,
                 "without MPI: srun --ntasks=2 mimscale pretrain refused (exit %d, \"%.200s\"), no output folder",
                 rp, po ? po : "");
        free(so); free(po); free(cnt);
        printf("note: the 2-rank srun equivalence needs an MPI build (this one has none)\n");
        printf("test_slurm: %.1f s\n", now_s() - t0);
        return finish(0, NULL);
    }
#endif
    snprintf(cmd, sizeof cmd, "cd %s && %s study run %s --out %s --quiet", tmpdir, bin, sj3, sout4);
    int rl = sh(cmd, NULL);
    snprintf(cmd, sizeof cmd, "cd %s && %s study run %s --out %s --launcher slurm --quiet", tmpdir, bin, sj3, sout5);
    int rs = sh(cmd, NULL);
    all_done = wait_status(sj3, sout5, "1 runs: 1 done", 120);
    snprintf(cmd, sizeof cmd, "grep -h \"srun --ntasks=2\" %s/runs/*/pretrain.log | head -n 1", sout5);
    char* ml = NULL;
    sh(cmd, &ml);
    snprintf(p1, sizeof p1, "%s/results.jsonl", sout4);
    snprintf(p2, sizeof p2, "%s/results.jsonl", sout5);
    mim_results ra, rb;
    CHECK(mim_results_load(&ra, p1) == 0);
    CHECK(mim_results_load(&rb, p2) == 0);
    double la = -1, lb = -1, sa = -1, sb2 = -2;
    if (ra.n == 1 && rb.n == 1) {
        const cJSON* x = cJSON_GetObjectItem(ra.rows[0], "final_loss"), *y = cJSON_GetObjectItem(rb.rows[0], "final_loss");
        const cJSON* u = cJSON_GetObjectItem(ra.rows[0], "images_seen"), *v = cJSON_GetObjectItem(rb.rows[0], "images_seen");
        if (cJSON_IsNumber(x) && cJSON_IsNumber(y)) { la = x->valuedouble; lb = y->valuedouble; }
        if (cJSON_IsNumber(u) && cJSON_IsNumber(v)) { sa = u->valuedouble; sb2 = v->valuedouble; }
    }
    double rel_d = la > 0 ? fabs(la - lb) / la : 1;
    int same_id = ra.n == 1 && rb.n == 1 && !strcmp(cJSON_GetObjectItem(ra.rows[0], "id")->valuestring, cJSON_GetObjectItem(rb.rows[0], "id")->valuestring);
    TU_CHECK(rl == 0 && rs == 0 && all_done && same_id && sa == sb2 && rel_d <= 5e-4 && ml && strstr(ml, "--batch=8"),
             "2 MPI ranks via srun: final loss %.6f vs 1 process %.6f (rel %.1e <= 5e-4), images %.0f = %.0f, the command: %s",
             lb, la, rel_d, sb2, sa, ml ? ml : "");
    free(ml);
    mim_results_free(&ra);
    mim_results_free(&rb);
    // srun without a PMI plugin starts 2 singletons: refused, not trained twice.
    {
        char* po = NULL;
        snprintf(cmd, sizeof cmd, "srun --ntasks=2 --cpus-per-task=1 --mpi=none %s pretrain --data=%s --steps=2 --out=%s/srun2",
                 bin, data, tmpdir);
        int rp = sh(cmd, &po);
        snprintf(p1, sizeof p1, "%s/srun2", tmpdir);
        struct stat st2;
        TU_CHECK(rp != 0 && po && strstr(po, "no MPI launcher in the environment") && stat(p1, &st2) != 0,
                 "srun --mpi=none --ntasks=2 mimscale pretrain refused (exit %d, \"%.200s\"), no output folder", rp, po ? po : "");
        free(po);
    }
    printf("test_slurm: %.1f s\n", now_s() - t0);
    return finish(0, NULL);
}
