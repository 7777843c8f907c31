// test_pretrain.c: the training engine end to end on a small synthetic IDX
// data set: the loss falls, a run stopped at step N and resumed to 2N ends
// with the same bits as an uninterrupted 2N run, resuming with other
// settings is refused, bad data and bad CLI values give clear errors.
#include "testutil.h"
#include "data/idx.h"
#include "train/pretrain.h"
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include <zlib.h>

static char tmpdir[256];

static mim_pretrain_args base_args(const char* data, const char* out) {
    mim_pretrain_args a = {0};
    CHECK(mim_config_preset(&a.model, "vit_nano") == 0);
    a.model.dim = 32; a.model.depth = 2; a.model.heads = 2;
    a.model.patch = 4; a.model.dec_dim = 16; a.model.dec_depth = 1; a.model.dec_heads = 2;
    a.model.img_h = a.model.img_w = 0; a.model.in_chans = 0;
    a.data = data; a.out = out;
    a.batch = 16; a.accum = 2; a.epochs = 1; a.lr = 2e-3f; a.warmup_epochs = 0.1f;
    a.weight_decay = 0.05f; a.beta1 = 0.9f; a.beta2 = 0.95f; a.augment = 1; a.seed = 3;
    a.save_every = 0; a.log_every = 1; a.keep = 2; a.quiet = 1;
    return a;
}

static int same_file(const char* a, const char* b) {
    uint8_t *x, *y;
    size_t nx = tu_slurp(a, &x), ny = tu_slurp(b, &y);
    return nx > 0 && nx == ny && memcmp(x, y, nx) == 0;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_pretrain_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    char data[512], ra[512], rb[512], fa[600], fb[600];
    snprintf(data, sizeof data, "%s/data", tmpdir);
    mkdir(data, 0755);
    tu_write_squares_idx(data, 640, 16, 12);

    // the library's argument rules (mim_pretrain_check_args), as any caller gets them
    {
        mim_pretrain_args x = base_args(data, "/nonexistent/never-created");
        TU_CHECK(mim_pretrain_check_args(&x) == 0, "zeroed teacher / hog fields with a pixel target are valid");
        x.model.target = MIM_TARGET_TEACHER;
        int rc = mim_pretrain_run(&x);
        TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "needs --teacher"), "target teacher without a teacher file: \"%s\"", mim_err_msg());
        x.model.target = MIM_TARGET_PIXEL; x.teacher_norm = 1;
        rc = mim_pretrain_run(&x);
        TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "apply to --target teacher only"), "teacher_norm with a pixel target: \"%s\"", mim_err_msg());
        x.teacher_norm = 0; x.hog_cell = 4;
        rc = mim_pretrain_check_args(&x);
        TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "--hog-cell"), "hog_cell with a pixel target: \"%s\"", mim_err_msg());
        struct stat sb;
        TU_CHECK(stat("/nonexistent/never-created", &sb) != 0, "refused before anything was created");
    }

    // uninterrupted: 2 epochs of 20 steps
    snprintf(ra, sizeof ra, "%s/a", tmpdir);
    mim_pretrain_args a = base_args(data, ra);
    a.epochs = 2;
    int rc = mim_pretrain_run(&a);
    TU_CHECK(rc == 0, "uninterrupted run: %s", rc ? mim_err_msg() : "ok");
    double l0 = tu_metric_at(ra, 1, "loss"), l1 = tu_metric_at(ra, 40, "loss");
    TU_CHECK(l1 < 0.8 * l0, "loss falls over 40 steps: %.4f -> %.4f", l0, l1);

    // validation loss on a held-out split, fixed masks, every 10 steps
    char rv[512];
    snprintf(rv, sizeof rv, "%s/v", tmpdir);
    mim_pretrain_args v = base_args(data, rv);
    v.epochs = 1; v.val_data = data; v.val_split = "train"; v.val_every = 10; v.val_samples = 64;
    rc = mim_pretrain_run(&v);
    double v10 = tu_metric_at(rv, 10, "val_loss"), v20 = tu_metric_at(rv, 20, "val_loss");
    TU_CHECK(rc == 0 && isfinite(v10) && isfinite(v20) && v20 < v10,
             "validation loss logged every 10 steps and falls: %.4f -> %.4f", v10, v20);

    // stopped at 13 (mid-epoch), then resumed to the end
    snprintf(rb, sizeof rb, "%s/b", tmpdir);
    mim_pretrain_args b = base_args(data, rb);
    b.epochs = 2; b.stop_at = 13; b.save_every = 5;
    rc = mim_pretrain_run(&b);
    TU_CHECK(rc == 0, "run stopped at step 13");
    b.stop_at = 0; b.resume = 1;
    rc = mim_pretrain_run(&b);
    TU_CHECK(rc == 0, "resumed run: %s", rc ? mim_err_msg() : "ok");
    snprintf(fa, sizeof fa, "%s/ckpt-000000040/model.safetensors", ra);
    snprintf(fb, sizeof fb, "%s/ckpt-000000040/model.safetensors", rb);
    TU_CHECK(same_file(fa, fb), "stop at 13 + resume to 40 == uninterrupted 40: model bit-identical");
    snprintf(fa, sizeof fa, "%s/ckpt-000000040/optim.safetensors", ra);
    snprintf(fb, sizeof fb, "%s/ckpt-000000040/optim.safetensors", rb);
    TU_CHECK(same_file(fa, fb), "... and optimizer state bit-identical");
    TU_CHECK(tu_metric_at(rb, 40, "loss") == tu_metric_at(ra, 40, "loss"), "... and the logged loss at step 40 equal");
    snprintf(fb, sizeof fb, "%s/ckpt-000000010", rb);
    struct stat sb;
    TU_CHECK(stat(fb, &sb) != 0, "--keep 2 pruned older checkpoints");

    // resuming with different settings is refused
    b.lr = 1e-3f;
    rc = mim_pretrain_run(&b);
    TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "settings differ"), "resume with other settings refused");

    // bad data: truncated IDX file
    char bad[512], p[600];
    snprintf(bad, sizeof bad, "%s/bad", tmpdir);
    mkdir(bad, 0755);
    snprintf(p, sizeof p, "%s/train-images-idx3-ubyte.gz", bad);
    gzFile g = gzopen(p, "wb");
    uint8_t hdr[16] = {0, 0, 8, 3, 0, 0, 1, 0, 0, 0, 0, 28, 0, 0, 0, 28};
    gzwrite(g, hdr, 16);
    gzwrite(g, hdr, 16);
    gzclose(g);
    mim_pretrain_args c = base_args(bad, ra);
    rc = mim_pretrain_run(&c);
    TU_CHECK(rc == MIM_EFORMAT && strstr(mim_err_msg(), "truncated"), "truncated IDX: \"%s\"", mim_err_msg());
    c = base_args("/nonexistent", ra);
    rc = mim_pretrain_run(&c);
    TU_CHECK(rc == MIM_EIO && strstr(mim_err_msg(), "/nonexistent"), "missing data: \"%s\"", mim_err_msg());
    c = base_args(data, ra);
    c.batch = 1000;
    rc = mim_pretrain_run(&c);
    TU_CHECK(rc == MIM_EARG, "batch larger than the data: \"%s\"", mim_err_msg());

    // the CLI: bad values give one line and exit status 2, never a crash
    const char* build = getenv("MIM_BUILD") ? getenv("MIM_BUILD") : "build";
    const char* bad_cli[] = {"pretrain --batch 0", "pretrain --batch abc", "pretrain --model vit_gigantic",
                             "pretrain --mask-ratio 1.5", "pretrain --lr nan", "pretrain --unknown 3",
                             "pretrain --patch 5 --steps 1", "nosuchcommand", "pretrain --epochs"};
    for (size_t i = 0; i < sizeof bad_cli / sizeof bad_cli[0]; i++) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "%s/mimscale %s --data %s --out %s/cli >%s/cli.txt 2>&1", build, bad_cli[i], data,
                 tmpdir, tmpdir);
        int st = system(cmd);
        int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        snprintf(p, sizeof p, "%s/cli.txt", tmpdir);
        uint8_t* txt;
        size_t n = tu_slurp(p, &txt);
        int has_error = n > 0 && memmem(txt, n, "error", 5) != NULL;
        TU_CHECK((code == 1 || code == 2) && has_error, "mimscale %s -> exit %d with an error line", bad_cli[i], code);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_pretrain", 0, NULL);
}
