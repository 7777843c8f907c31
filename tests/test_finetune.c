// test_finetune.c: fine-tuning pieces and the engine end to end.
//  - pos-embed bicubic resize vs torch.nn.functional.interpolate (bicubic,
//    align_corners=False) and layer-wise lr scales vs MAE's lr_decay.py
//    (reference data from tests/ref/finetune_ref.py; skipped without torch);
//  - on a small synthetic IDX set (class = bright or dark square): pretrain a
//    few MAE steps, fine-tune from that checkpoint at another resolution
//    (pos-embed interpolation) and train the same ViT from scratch; both
//    report accuracy, beat chance on this easy task, and write best/last
//    checkpoints with timm names (fc_norm, head).
#include "testutil.h"
#include "eval/finetune.h"
#include "eval/reconstruct.h"
#include <png.h>
#include "train/pretrain.h"
#include <sys/stat.h>
#include <zlib.h>

static char tmpdir[256];

static void write_split(const char* dir, const char* split, int n, int H, int W, uint64_t seed) {
    mim_rng r;
    mim_rng_seed(&r, seed);
    uint8_t* px = tu_alloc_bytes((size_t)n * H * W);
    uint8_t* lab = tu_alloc_bytes((size_t)n);
    for (int i = 0; i < n; i++) {
        uint8_t* img = px + (size_t)i * H * W;
        int cls = (int)mim_rng_below(&r, 2), s = 6 + (int)mim_rng_below(&r, 4);
        int y = (int)mim_rng_below(&r, H - s), x = (int)mim_rng_below(&r, W - s);
        for (int k = 0; k < H * W; k++) img[k] = 100 + (uint8_t)mim_rng_below(&r, 20);
        for (int a = y; a < y + s; a++)
            for (int b = x; b < x + s; b++) img[a * W + b] = cls ? 240 : 10;
        lab[i] = (uint8_t)cls;
    }
    tu_write_idx(dir, split, n, H, W, px, lab);
}

static void check_reference(void) {
    char repo[1024], out[512], cmd[2000];
    if (tu_repo_root(repo, sizeof repo, "tests/ref/finetune_ref.py")) { printf("SKIP: no repo root\n"); return; }
    snprintf(out, sizeof out, "%s/ref.safetensors", tmpdir);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/ref/finetune_ref.py %s", repo, out);
    int st = system(cmd);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { printf("SKIP: torch reference unavailable\n"); return; }
    mim_st* s;
    if (!TU_CHECK(mim_st_open(&s, out) == 0, "open finetune reference")) return;
    enum { D = 6, GH = 3, GW = 4, NH = 5, NW = 7 };
    float in[GH * GW * D], want[NH * NW * D], got[NH * NW * D];
    if (!tu_st_f32(s, "pos_in", in, 2, (int64_t[]){GH * GW, D}) &&
        !tu_st_f32(s, "pos_out", want, 2, (int64_t[]){NH * NW, D})) {
        mim_pos_embed_resize(got, in, D, GH, GW, NH, NW);
        tu_close("pos_embed 3x4 -> 5x7 bicubic vs F.interpolate", got, want, NH * NW * D, 1e-5);
    }
    const char* names = mim_st_meta(s, "names");
    float scales[64];
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", names ? names : "");
    int n = 0;
    float mine[64];
    for (char* t = strtok(buf, ","); t && n < 64; t = strtok(NULL, ","))
        mine[n++] = powf(0.75f, (float)(4 + 1 - mim_vit_layer_id(t, 4)));
    if (!tu_st_f32(s, "lr_scales", scales, 1, (int64_t[]){n}))
        tu_close("layer-wise lr scales vs MAE param_groups_lrd", mine, scales, n, 1e-6);
    mim_st_close(s);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_finetune_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    check_reference();

    char data[512], pre[512], ft[512], sc[512], p[700];
    snprintf(data, sizeof data, "%s/data", tmpdir);
    mkdir(data, 0755);
    write_split(data, "train", 256, 16, 16, 1);
    write_split(data, "t10k", 100, 16, 16, 2);

    // a few MAE steps at 16x16 (4x4 grid of patches)
    snprintf(pre, sizeof pre, "%s/pre", tmpdir);
    mim_pretrain_args a = {0};
    CHECK(mim_config_preset(&a.model, "vit_nano") == 0);
    a.model.dim = 32; a.model.depth = 2; a.model.heads = 2; a.model.patch = 4;
    a.model.dec_dim = 16; a.model.dec_depth = 1; a.model.dec_heads = 2;
    a.model.img_h = a.model.img_w = 0; a.model.in_chans = 0;
    a.data = data; a.out = pre; a.batch = 32; a.accum = 1; a.steps = 10; a.lr = 1e-3f;
    a.weight_decay = 0.05f; a.beta1 = 0.9f; a.beta2 = 0.95f; a.augment = 1; a.log_every = 5; a.quiet = 1;
    int rc = mim_pretrain_run(&a);
    TU_CHECK(rc == 0, "pretrain 10 steps: %s", rc ? mim_err_msg() : "ok");

    // reconstruction picture from the MAE checkpoint; refused for one without decoder
    char png[600], ck[600];
    snprintf(ck, sizeof ck, "%s/ckpt-000000010/model.safetensors", pre);
    snprintf(png, sizeof png, "%s/rec.png", tmpdir);
    mim_reconstruct_args ra = {.ckpt = ck, .data = data, .split = "t10k", .out = png, .n = 3, .mask_ratio = -1, .seed = 1};
    float rl = 0;
    rc = mim_reconstruct_run(&ra, &rl);
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    int ok = rc == 0 && png_image_begin_read_from_file(&pi, png);
    TU_CHECK(ok && pi.width == 4 * 96 + 5 * 2 && pi.height == 3 * 96 + 4 * 2 && isfinite(rl),
             "reconstruction PNG written and decodes: %ux%u, masked loss %.3f", pi.width, pi.height, rl);
    png_image_free(&pi);

    // fine-tune from it at 20x20 (5x5 grid: pos_embed interpolated)
    mim_finetune_args f = {0};
    snprintf(p, sizeof p, "%s/ckpt-000000010/model.safetensors", pre);
    snprintf(ft, sizeof ft, "%s/ft", tmpdir);
    f.ckpt = p; f.data = data; f.data_split = "train"; f.eval_split = "t10k"; f.img = 20;
    f.batch = 32; f.accum = 1; f.epochs = 3; f.lr = 2e-3f; f.min_lr = 1e-6f; f.warmup_epochs = 0.2f;
    f.weight_decay = 0.05f; f.layer_decay = 0.75f; f.drop_path = 0.1f; f.smoothing = 0.1f;
    f.mixup = 0.8f; f.cutmix = 1.0f; f.reprob = 0.25f; f.aa = "rand-m9-mstd0.5-inc1"; f.global_pool = 1;
    f.seed = 1; f.out = ft; f.quiet = 1;
    mim_finetune_result r;
    rc = mim_finetune_run(&f, &r);
    TU_CHECK(rc == 0, "fine-tune from the checkpoint at 20x20: %s", rc ? mim_err_msg() : "ok");
    printf("fine-tuned: top-1 %.3f, best %.3f, %lld steps, %.1f s\n", r.top1, r.best_top1, (long long)r.steps, r.seconds);
    TU_CHECK(r.best_top1 > 0.8f && r.top5 == 1.0f, "fine-tuning learns the easy task: best top-1 %.3f (> 0.8)", r.best_top1);
    snprintf(p, sizeof p, "%s/checkpoint-best.safetensors", ft);
    mim_st* s;
    if (TU_CHECK(mim_st_open(&s, p) == 0, "best checkpoint written")) {
        const mim_st_tensor* hw = mim_st_find(s, "head.weight");
        const mim_st_tensor* pe = mim_st_find(s, "pos_embed");
        TU_CHECK(hw && hw->shape[0] == 2 && mim_st_find(s, "fc_norm.weight") && !mim_st_find(s, "norm.weight") &&
                 !mim_st_find(s, "decoder_embed.weight"), "timm names: head, fc_norm; no encoder norm, no decoder");
        TU_CHECK(pe && pe->shape[1] == 1 + 25, "pos_embed at the new resolution (1 + 5x5 rows)");
        mim_st_close(s);
    }
    ra.ckpt = p;
    rc = mim_reconstruct_run(&ra, &rl);
    TU_CHECK(rc == MIM_EARG && strstr(mim_err_msg(), "no decoder"), "reconstruct on a fine-tuned checkpoint: \"%s\"", mim_err_msg());
    // the same ViT from scratch, no RandAugment / mixup (the baseline path)
    snprintf(sc, sizeof sc, "%s/scratch", tmpdir);
    mim_finetune_args g = f;
    g.ckpt = NULL; g.init_random = 1; g.model = a.model; g.model.img_h = g.model.img_w = 0; g.img = 0;
    g.aa = "none"; g.mixup = 0; g.cutmix = 0; g.reprob = 0; g.out = sc;
    rc = mim_finetune_run(&g, &r);
    TU_CHECK(rc == 0, "train from scratch: %s", rc ? mim_err_msg() : "ok");
    TU_CHECK(r.best_top1 > 0.8f, "scratch baseline learns too: best top-1 %.3f", r.best_top1);
    // bad input
    f.ckpt = "/nonexistent/model.safetensors";
    rc = mim_finetune_run(&f, &r);
    TU_CHECK(rc == MIM_EIO, "missing checkpoint: \"%s\"", mim_err_msg());

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd)) {}
    tu_free_all();
    return tu_summary("test_finetune", 0, NULL);
}
