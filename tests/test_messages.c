// test_messages.c: what a new user meets, through the real `mimscale`
// binary ($MIM_BUILD/mimscale): setup errors that name the flag, the value,
// what was expected and what to run; the notices a run prints at start; and
// the run-folder behaviour users tripped on. One part per case:
//   1. a webdataset shard given as --data: "run `mimscale index ...`"
//      (pretrain, also with --in-chans/--img, and knn: every command)
//   2. a folder with shards or image class folders but no IDX files
//   3. geometry errors name --img (and --patch)
//   4. an index build of 0-byte images counts them in its error
//   5. --out with missing parent folders (pretrain, finetune, knn, linprobe)
//   6. the input resize is said once at start (IDX and index data)
//   7. the default data set is named when --data is not given
//   8. `models` uses pretrain's decoder and says which
//   9. --warmup-steps, recorded in the settings only when given
//  10. progress on a non-terminal: whole lines, no "\r"
//  11. time_s in metrics.jsonl keeps counting across --resume
// Fixtures (tiny IDX set, JPEG shards, an image folder) live in a mkdtemp folder.
#include "testutil.h"
#include "data/decode.h"
#include "data/tar.h"
#include "core/safetensors.h"
#include <sys/stat.h>

static char tmpdir[256], bin[512];
static char *out_text, *err_text;   // stdout / stderr of the last command (test-owned)

#define TINY "--model vit_nano --patch 4 --dec-dim 16 --dec-depth 1 --dec-heads 2 --batch 8 --threads 1"

// Runs `mimscale ARGS` (printf-style) with stdout / stderr to files of the
// temp folder, read back into out_text / err_text. Returns the exit status.
__attribute__((format(printf, 1, 2)))
static int cli(const char* fmt, ...) {
    char args[4096], cmd[8192], po[600], pe[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(po, sizeof po, "%s/last.out", tmpdir);
    snprintf(pe, sizeof pe, "%s/last.err", tmpdir);
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s </dev/null", bin, args, po, pe);
    int st = system(cmd);
    uint8_t *o, *e;
    if (!tu_slurp(po, &o)) o = tu_alloc_bytes(1);
    if (!tu_slurp(pe, &e)) e = tu_alloc_bytes(1);
    out_text = (char*)o; err_text = (char*)e;
    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int has(const char* text, const char* what) { return text && strstr(text, what) != NULL; }

static int exists(const char* fmt, const char* a) {
    char p[1024];
    snprintf(p, sizeof p, fmt, a);
    struct stat st;
    return stat(p, &st) == 0;
}

// One line of err_text holding `what`, for the check's message.
static const char* line_with(const char* what) {
    static char line[400];
    const char* p = err_text ? strstr(err_text, what) : NULL;
    if (!p) { snprintf(line, sizeof line, "(absent; stderr starts: %.200s)", err_text ? err_text : ""); return line; }
    while (p > err_text && p[-1] != '\n') p--;
    size_t n = strcspn(p, "\n");
    snprintf(line, sizeof line, "%.*s", (int)(n < 399 ? n : 399), p);
    return line;
}

// A shard of n W x W RGB JPEG samples (key.jpg + key.cls), or 0-byte images with empty.
static void write_shard(const char* path, int n, int W, int empty) {
    FILE* f = fopen(path, "wb");
    CHECK(f != NULL);
    uint8_t* px = tu_alloc_bytes((size_t)W * W * 3);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < W * W * 3; k++) px[k] = (uint8_t)((k * 7 + i * 31) & 255);
        uint8_t* jpg = NULL;
        size_t nj = 0;
        if (!empty) CHECK(mim_jpeg_encode(px, W, W, 3, 90, &jpg, &nj) == 0);
        char name[64], cls[16];
        snprintf(name, sizeof name, "%06d.jpg", i);
        CHECK(mim_tar_write_member(f, name, jpg, nj) == 0);
        free(jpg);
        snprintf(name, sizeof name, "%06d.cls", i);
        snprintf(cls, sizeof cls, "%d", i % 2);
        CHECK(mim_tar_write_member(f, name, cls, strlen(cls)) == 0);
    }
    CHECK(mim_tar_write_end(f) == 0);
    fclose(f);
}

// The value of key in metrics.jsonl row `step` of run (NAN if absent).
static double metric(const char* run, int step, const char* key) { return tu_metric_at(run, step, key); }

// The MAE train GFLOP column of vit_nano in out_text (`mimscale models`), or -1.
static double nano_flops(void) {
    const char* p = out_text ? strstr(out_text, "\nvit_nano") : NULL;
    if (!p) return -1;
    char name[32];
    int dim, depth, heads, patch;
    double enc, tot, ef, tf;
    if (sscanf(p + 1, "%31s %d %d %d %d %lfM %lfM %lf %lf", name, &dim, &depth, &heads, &patch, &enc, &tot, &ef, &tf) != 9)
        return -1;
    return tf;
}

int main(void) {
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    snprintf(bin, sizeof bin, "%s/mimscale", build);
    if (access(bin, X_OK) != 0) { printf("no %s: build it first\n", bin); return 1; }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_messages_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    char idx[600], shards[600], shard[700], imgs[600], empty[600], index[600], p[1200];
    snprintf(idx, sizeof idx, "%s/idx", tmpdir);
    mkdir(idx, 0755);
    tu_write_squares_idx(idx, 64, 16, 16);   // 8 batches of 8 per epoch
    snprintf(shards, sizeof shards, "%s/shards", tmpdir);
    mkdir(shards, 0755);
    snprintf(shard, sizeof shard, "%s/part-000000.tar", shards);
    write_shard(shard, 16, 24, 0);
    snprintf(imgs, sizeof imgs, "%s/imgs", tmpdir);
    mkdir(imgs, 0755);
    snprintf(p, sizeof p, "%s/cat", imgs);
    mkdir(p, 0755);
    {
        uint8_t px[8 * 8 * 3] = {0}, *jpg = NULL;
        size_t nj = 0;
        CHECK(mim_jpeg_encode(px, 8, 8, 3, 90, &jpg, &nj) == 0);
        snprintf(p, sizeof p, "%s/cat/a.jpg", imgs);
        FILE* f = fopen(p, "wb");
        CHECK(f && fwrite(jpg, 1, nj, f) == nj);
        fclose(f);
        free(jpg);
    }
    snprintf(empty, sizeof empty, "%s/empty-000000.tar", tmpdir);
    write_shard(empty, 3, 8, 1);
    snprintf(index, sizeof index, "%s/part.idx", tmpdir);
    int rc = cli("index %s --out %s --quiet", shard, index);
    TU_CHECK(rc == 0, "fixture: index of a 16-sample JPEG shard (exit %d) %s", rc, err_text);

    char ckpt[800];   // the checkpoint the evaluations below read
    rc = cli("pretrain --data %s " TINY " --steps 2 --quiet --out %s/base", idx, tmpdir);
    TU_CHECK(rc == 0, "fixture: a 2-step pre-training run (exit %d) %s", rc, err_text);
    snprintf(ckpt, sizeof ckpt, "%s/base/ckpt-000000002/model.safetensors", tmpdir);

    // 5. --out with missing parents
    char run5[700];
    snprintf(run5, sizeof run5, "%s/runs/a/b", tmpdir);
    rc = cli("pretrain --data %s " TINY " --steps 2 --quiet --out %s", idx, run5);
    TU_CHECK(rc == 0 && exists("%s/latest", run5), "5. pretrain --out runs/a/b (runs/ absent): exit %d, run folder made %s",
             rc, rc ? err_text : "");
    snprintf(p, sizeof p, "%s/ft/x/y", tmpdir);
    rc = cli("finetune --ckpt %s --data %s --eval-split train --steps 2 --batch 8 --threads 1 --quiet --out %s", ckpt, idx, p);
    TU_CHECK(rc == 0 && exists("%s/metrics.jsonl", p), "5. finetune --out ft/x/y (ft/ absent): exit %d %s", rc, rc ? err_text : "");
    snprintf(p, sizeof p, "%s/evals/knn/r.json", tmpdir);
    rc = cli("knn --ckpt %s --data %s --eval-split train --threads 1 --quiet --out %s", ckpt, idx, p);
    TU_CHECK(rc == 0 && exists("%s", p), "5. knn --out evals/knn/r.json (evals/ absent): exit %d %s", rc, rc ? err_text : "");
    snprintf(p, sizeof p, "%s/evals/lp/r.json", tmpdir);
    rc = cli("linprobe --ckpt %s --data %s --eval-split train --epochs 1 --threads 1 --quiet --out %s", ckpt, idx, p);
    TU_CHECK(rc == 0 && exists("%s", p), "5. linprobe --out evals/lp/r.json: exit %d %s", rc, rc ? err_text : "");

    // 1. a shard where an index is expected, with and without the geometry flags, in two commands
    rc = cli("pretrain --data %s " TINY " --steps 2 --quiet --out %s/r1", shard, tmpdir);
    TU_CHECK(rc != 0 && has(err_text, "mimscale index") && has(err_text, "shard") && has(err_text, "part-*.tar"),
             "1. pretrain --data x.tar: exit %d, says to run `mimscale index 'part-*.tar'`: %s", rc, line_with("error"));
    rc = cli("pretrain --data %s --in-chans 3 --img 16 " TINY " --steps 2 --quiet --out %s/r1", shard, tmpdir);
    TU_CHECK(rc != 0 && has(err_text, "`mimscale index '") && !has(err_text, "bad magic"),
             "1. ... with --in-chans 3 --img 16 (was 'bad magic'): exit %d: %s", rc, line_with("error"));
    rc = cli("knn --ckpt %s --data %s --threads 1 --quiet", ckpt, shard);
    TU_CHECK(rc != 0 && has(err_text, "`mimscale index '"), "1. knn --data x.tar: exit %d: %s", rc, line_with("error"));

    // 2. a folder without IDX files: what it holds and what to run
    rc = cli("pretrain --data %s " TINY " --steps 2 --quiet --out %s/r2", shards, tmpdir);
    TU_CHECK(rc != 0 && has(err_text, "`mimscale index '") && has(err_text, "1 webdataset shard"),
             "2. --data DIR of shards: exit %d: %s", rc, line_with("error"));
    rc = cli("pretrain --data %s " TINY " --steps 2 --quiet --out %s/r2", imgs, tmpdir);
    TU_CHECK(rc != 0 && has(err_text, "mimscale pack") && has(err_text, "folder(s) of images"),
             "2. --data DIR of class folders: exit %d: %s", rc, line_with("error"));

    // 3. geometry errors name --img
    rc = cli("pretrain --data %s --img 30 " TINY " --steps 2 --quiet --out %s/r3", idx, tmpdir);
    TU_CHECK(rc != 0 && has(err_text, "--img 30") && has(err_text, "--patch 4") && has(err_text, "--img 28 or 32"),
             "3. --img 30 --patch 4: exit %d: %s", rc, line_with("error"));
    rc = cli("pretrain --data %s --img 0 " TINY " --steps 2 --quiet --out %s/r3", index, tmpdir);
    TU_CHECK(rc != 0 && has(err_text, "--img"), "3. --img 0 on index data: exit %d: %s", rc, line_with("error"));
    rc = cli("pretrain --data %s --img 4 " TINY " --steps 2 --quiet --out %s/r3", idx, tmpdir);
    TU_CHECK(rc != 0 && has(err_text, "--img 4"), "3. --img 4 (one patch, none visible): exit %d: %s", rc, line_with("error"));

    // 4. an index of 0-byte images says so
    rc = cli("index %s --out %s/empty.idx --quiet", empty, tmpdir);
    TU_CHECK(rc != 0 && has(err_text, "3 empty"), "4. index of 3 empty images: exit %d: %s", rc, line_with("error"));

    // 6. the resize, said at start
    rc = cli("pretrain --data %s --img 32 " TINY " --steps 1 --out %s/r6", idx, tmpdir);
    TU_CHECK(rc == 0 && has(err_text, "input: data is 16x16, resized to 32x32 (--img 32)"),
             "6. IDX 16 px at --img 32: exit %d: %s", rc, line_with("input:"));
    rc = cli("pretrain --data %s --img 16 " TINY " --steps 1 --out %s/r6b", index, tmpdir);
    TU_CHECK(rc == 0 && has(err_text, "images are 24x24") && has(err_text, "16x16 (--img 16)"),
             "6. index of 24 px JPEGs at --img 16: exit %d: %s", rc, line_with("input:"));

    // 7. the default data set is named
    rc = cli("pretrain " TINY " --steps 1 --out %s/r7", tmpdir);
    TU_CHECK(has(err_text, "--data not given") && has(err_text, "Fashion-MNIST"),
             "7. pretrain without --data names the data it took (exit %d): %s", rc, line_with("data:"));
    rc = cli("knn --ckpt %s/absent.safetensors --threads 1", tmpdir);
    TU_CHECK(rc != 0 && has(err_text, "--data not given"), "7. knn without --data: %s", line_with("data:"));

    // 8. models: pretrain's decoder by default, and says which
    rc = cli("models");
    double f_def = nano_flops();
    TU_CHECK(rc == 0 && has(out_text, "decoder 128 wide x 2 blocks x 4 heads"), "8. models states its decoder (pretrain's 128 x 2 x 4)");
    rc = cli("models --dec-dim 512 --dec-depth 8 --dec-heads 16");
    double f_mae = nano_flops();
    TU_CHECK(rc == 0 && has(out_text, "decoder 512 wide x 8 blocks x 16 heads") && f_def > 0 && f_mae > f_def,
             "8. --dec-dim 512 --dec-depth 8: vit_nano MAE train %.3f GFLOP > %.3f at the default decoder", f_mae, f_def);

    // 9. --warmup-steps: lr at step 3 of 4 with 2 warm-up steps is the peak (the default warm-up of
    // 0.5 epoch = 4 steps, capped at the run, would give half of it); not in the settings when not given
    char w1[700], w0[700];
    snprintf(w1, sizeof w1, "%s/w1", tmpdir);
    snprintf(w0, sizeof w0, "%s/w0", tmpdir);
    rc = cli("pretrain --data %s " TINY " --steps 4 --lr 1e-3 --warmup-steps 2 --log-every 1 --quiet --out %s", idx, w1);
    double lr1 = metric(w1, 3, "lr"), lr1b = metric(w1, 2, "lr");
    TU_CHECK(rc == 0 && fabs(lr1 - 1e-3) < 1e-9 && fabs(lr1b - 5e-4) < 1e-9,
             "9. --warmup-steps 2: lr 5e-4 at step 2, 1e-3 at step 3 (exit %d; got %g, %g)", rc, lr1b, lr1);
    rc = cli("pretrain --data %s " TINY " --steps 4 --lr 1e-3 --log-every 1 --quiet --out %s", idx, w0);
    TU_CHECK(rc == 0 && fabs(metric(w0, 3, "lr") - 5e-4) < 1e-9, "9. without it: warm-up over the run as before (lr %g at step 3)",
             metric(w0, 3, "lr"));
    mim_st* st;
    snprintf(p, sizeof p, "%s/ckpt-000000004/optim.safetensors", w0);
    int old_form = 0, new_form = 0;
    if (mim_st_open(&st, p) == 0) { old_form = !has(mim_st_meta(st, "args"), "warmup_steps"); mim_st_close(st); }
    snprintf(p, sizeof p, "%s/ckpt-000000004/optim.safetensors", w1);
    if (mim_st_open(&st, p) == 0) { new_form = has(mim_st_meta(st, "args"), "\"warmup_steps\":2"); mim_st_close(st); }
    TU_CHECK(old_form && new_form, "9. settings JSON: warmup_steps only when given (runs from before still resume)");
    rc = cli("pretrain --data %s " TINY " --steps 4 --lr 1e-3 --warmup-steps 3 --log-every 1 --quiet --resume --out %s", idx, w1);
    TU_CHECK(rc != 0 && has(err_text, "settings differ"), "9. resume with another --warmup-steps is refused (exit %d)", rc);

    // 10. progress into a file: whole lines, no carriage returns
    rc = cli("pretrain --data %s " TINY " --steps 6 --log-every 2 --out %s/r10", idx, tmpdir);
    int nstep = 0;
    for (const char* q = err_text; (q = strstr(q, "step ")); q++) nstep += q == err_text || q[-1] == '\n';
    TU_CHECK(rc == 0 && !strchr(err_text, '\r') && nstep >= 3,
             "10. pretrain 2>log: no \\r, %d progress lines (want >= 3; exit %d)", nstep, rc);
    rc = cli("finetune --ckpt %s --data %s --eval-split train --steps 20 --batch 8 --threads 1 --out %s/f10", ckpt, idx, tmpdir);
    nstep = 0;
    for (const char* q = err_text; (q = strstr(q, "step ")); q++) nstep += q == err_text || q[-1] == '\n';
    TU_CHECK(rc == 0 && !strchr(err_text, '\r') && nstep >= 2,
             "10. finetune 2>log: no \\r, %d progress lines (want >= 2; exit %d)", nstep, rc);

    // 11. time_s keeps counting across a resume
    char r11[700];
    snprintf(r11, sizeof r11, "%s/r11", tmpdir);
    rc = cli("pretrain --data %s --img 32 " TINY " --batch 16 --steps 10 --stop-at 8 --log-every 1 --quiet --out %s", idx, r11);
    int rc2 = cli("pretrain --data %s --img 32 " TINY " --batch 16 --steps 10 --log-every 1 --quiet --resume --out %s", idx, r11);
    double t8 = metric(r11, 8, "time_s"), t9 = metric(r11, 9, "time_s"), t10 = metric(r11, 10, "time_s");
    TU_CHECK(rc == 0 && rc2 == 0 && t9 > t8 && t10 > t8,
             "11. stop at 8 + resume: time_s 8 -> 9 -> 10 = %.3f -> %.3f -> %.3f, still rising (exits %d, %d)", t8, t9, t10, rc, rc2);
    TU_CHECK(exists("%s/ckpt-000000010/state.json", r11), "11. the checkpoint keeps the elapsed time (state.json)");

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_messages", 0, NULL);
}
