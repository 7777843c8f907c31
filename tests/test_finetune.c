// test_finetune.c: fine-tuning pieces and the engine end to end.
//  - pos-embed bicubic resize vs torch.nn.functional.interpolate (bicubic,
//    align_corners=False) (reference data from tests/ref/finetune_ref.py;
//    without torch that part is a skip, exit 77; MIM_REQUIRE_TORCH=1 makes it
//    a failure);
//  - layer ids of MAE's lr_decay.get_layer_id_for_vit, literal values;
//  - layer-wise lr decay as the engine applies it: one AdamW step (no weight
//    decay) moves each tensor by at most lr * scale (the first Adam step is
//    lr * g / (|g| + eps)), so max |w1 - w0| / lr per tensor is its scale,
//    checked against MAE's param_groups_lrd values for depth 2, decay 0.75:
//    embeddings 0.75^3, block 0 0.75^2, block 1 0.75, norm / head 1; that
//    run's top-1 (cls-token head, not saturated after one step) equals the
//    accuracy recomputed in the test from its checkpoint (encoder features,
//    then the head applied here);
//  - on a small synthetic IDX set (class = bright or dark square): pretrain a
//    few MAE steps, fine-tune from that checkpoint at another resolution
//    (pos-embed interpolation) and train the same ViT from scratch; both
//    beat chance on this easy task and write best/last checkpoints with timm
//    names (fc_norm, head).
#include "testutil.h"
#include "eval/features.h"
#include "train/finetune.h"
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

static int torch_skipped;   // the PyTorch reference could not run

static void check_reference(void) {
    char out[4096];
    int rc = tu_run_torch_ref("tests/ref/finetune_ref.py", out, sizeof out);
    if (rc == 1) {
        printf("note: python3 with torch not available; skipping the F.interpolate comparison\n");
        torch_skipped = 1;
        return;
    }
    if (!TU_CHECK(rc == 0, "tests/ref/finetune_ref.py ran")) return;
    mim_st* s;
    int orc = mim_st_open(&s, out);
    unlink(out);
    if (!TU_CHECK(orc == 0, "open finetune reference: %s", orc ? mim_err_msg() : "ok")) return;
    enum { D = 6, GH = 3, GW = 4, NH = 5, NW = 7 };
    float in[GH * GW * D], want[NH * NW * D], got[NH * NW * D];
    if (!tu_st_f32(s, "pos_in", in, 2, (int64_t[]){GH * GW, D}) &&
        !tu_st_f32(s, "pos_out", want, 2, (int64_t[]){NH * NW, D})) {
        mim_pos_embed_resize(got, in, D, GH, GW, NH, NW);
        tu_close("pos_embed 3x4 -> 5x7 bicubic vs F.interpolate", got, want, NH * NW * D, 1e-5);
    }
    mim_st_close(s);
}

// MAE util/lr_decay.py get_layer_id_for_vit(name, num_layers = depth + 1), depth 4.
static void check_layer_ids(void) {
    static const struct { const char* name; int id; } want[] = {
        {"cls_token", 0}, {"pos_embed", 0}, {"patch_embed.proj.weight", 0}, {"patch_embed.proj.bias", 0},
        {"blocks.0.norm1.weight", 1}, {"blocks.0.attn.qkv.weight", 1}, {"blocks.1.mlp.fc2.bias", 2},
        {"blocks.3.attn.proj.weight", 4}, {"norm.weight", 5}, {"fc_norm.weight", 5}, {"fc_norm.bias", 5},
        {"head.weight", 5}, {"head.bias", 5},
    };
    int n = (int)(sizeof want / sizeof want[0]), same = 0;
    for (int i = 0; i < n; i++) {
        int got = mim_vit_layer_id(want[i].name, 4);
        same += got == want[i].id;
        if (got != want[i].id) printf("note: layer id of %s: %d, want %d\n", want[i].name, got, want[i].id);
    }
    TU_CHECK(same == n, "layer ids (depth 4) == MAE get_layer_id_for_vit: %d / %d names", same, n);
}

// The lr scale a name must get with depth 2, layer_decay 0.75 (MAE
// param_groups_lrd: scale = 0.75^(3 - layer_id)); -1 for tensors not checked.
static double want_scale(const char* name) {
    if (!strcmp(name, "cls_token") || !strcmp(name, "pos_embed") || !strncmp(name, "patch_embed.", 12)) return 0.421875;
    if (!strncmp(name, "blocks.0.", 9)) return 0.5625;
    if (!strncmp(name, "blocks.1.", 9)) return 0.75;
    if (!strncmp(name, "norm.", 5) || !strcmp(name, "head.bias")) return 1.0;
    return -1;
}

static int recount_top1(const char* ck, const char* data, int64_t* n);

// One fine-tuning step from the checkpoint pre (depth 2) with lr LR, no
// weight decay, no warm-up, cls-token head (global_pool 0: the encoder norm
// is trained, no fc_norm): per tensor, max |w1 - w0| / LR == its lr scale.
// head.bias starts at 0 (head_init); head.weight is random and not in pre,
// so it is not checked. Then the run's top-1 against a recount.
static void check_layer_decay(const char* pre, const char* data, const mim_config* cfg) {
    const float LR = 1e-2f;
    char out[600], last[700];
    snprintf(out, sizeof out, "%s/lrd", tmpdir);
    mim_finetune_args f = {0};
    f.ckpt = pre; f.data = data; f.data_split = "train"; f.eval_split = "t10k";
    f.batch = 32; f.accum = 1; f.steps = 1; f.lr = LR; f.min_lr = 0; f.warmup_epochs = 0;
    f.weight_decay = 0; f.layer_decay = 0.75f; f.drop_path = 0; f.smoothing = 0;
    f.mixup = 0; f.cutmix = 0; f.reprob = 0; f.aa = "none"; f.global_pool = 0; f.seed = 3; f.out = out; f.quiet = 1;
    mim_finetune_result r;
    int rc = mim_finetune_run(&f, &r);
    if (!TU_CHECK(rc == 0 && r.steps == 1, "layer decay: one fine-tuning step: %s", rc ? mim_err_msg() : "ok")) return;
    snprintf(last, sizeof last, "%s/checkpoint-last.safetensors", out);
    mim_st *s0 = NULL, *s1 = NULL;
    if (!TU_CHECK(mim_st_open(&s0, pre) == 0 && mim_st_open(&s1, last) == 0, "layer decay: open %s and %s", pre, last)) {
        if (s0) mim_st_close(s0);
        return;
    }
    // per group: embeddings, block 0, block 1, head side; worst deviation of max|dw|/lr from the scale
    static const char* group[4] = {"embeddings (0.75^3)", "blocks.0 (0.75^2)", "blocks.1 (0.75)", "norm, head.bias (1)"};
    static const double gscale[4] = {0.421875, 0.5625, 0.75, 1.0};
    int ntens[4] = {0}, nok[4] = {0};
    double lo[4] = {1e9, 1e9, 1e9, 1e9}, hi[4] = {0};
    for (int i = 0; i < mim_st_count(s1); i++) {
        const mim_st_tensor* t1 = mim_st_get(s1, i);
        double want = want_scale(t1->name);
        if (want < 0) continue;
        int g = 0;
        while (gscale[g] != want) g++;
        float* w1 = tu_alloc(t1->numel);
        float* w0 = tu_alloc(t1->numel);
        if (tu_st_f32(s1, t1->name, w1, t1->ndim, t1->shape)) continue;
        const mim_st_tensor* t0 = mim_st_find(s0, t1->name);
        if (t0) {
            if (tu_st_f32(s0, t1->name, w0, t1->ndim, t1->shape)) continue;
        } else if (strcmp(t1->name, "head.bias")) {   // head.bias: 0 before the step (head_init)
            TU_CHECK(0, "layer decay: %s is in the fine-tuned checkpoint but not in %s", t1->name, pre);
            continue;
        }
        double mx = 0;
        for (size_t k = 0; k < t1->numel; k++) {
            double dw = fabs((double)w1[k] - w0[k]);
            if (dw > mx) mx = dw;
        }
        double scale = mx / LR;
        ntens[g]++;
        nok[g] += fabs(scale - want) <= 0.01 * want;
        if (scale < lo[g]) lo[g] = scale;
        if (scale > hi[g]) hi[g] = scale;
    }
    for (int g = 0; g < 4; g++)
        TU_CHECK(ntens[g] > 0 && nok[g] == ntens[g], "layer decay %-22s: max|dw|/lr in [%.5f, %.5f] for %d tensors (want %.6f +-1%%)",
                 group[g], ntens[g] ? lo[g] : 0, hi[g], ntens[g], gscale[g]);
    TU_CHECK(ntens[1] >= 6 && ntens[2] >= 6 && ntens[3] == 3 && cfg->depth == 2,
             "layer decay: both blocks' tensors, norm.weight, norm.bias and head.bias compared (%d, %d, %d), depth %d",
             ntens[1], ntens[2], ntens[3], cfg->depth);
    mim_st_close(s0);
    mim_st_close(s1);
    // top-1 after the step (2 classes: no top-5 check) == the recount from checkpoint-last
    int64_t n_ev = 0;
    int c1 = recount_top1(last, data, &n_ev);
    TU_CHECK(c1 >= 0 && n_ev == 100 && c1 == (int)lroundf(r.top1 * 100) && fabsf(r.top1 * 100 - (float)c1) < 1e-3f,
             "one-step top-1 %.4f == %d / %lld correct recomputed from checkpoint-last", r.top1, c1, (long long)n_ev);
}

// Top-1 of the fine-tuned (global_pool 0) checkpoint ck on split t10k,
// computed here: the encoder's final-norm cls token (mim_eval_features,
// MIM_POOL_CLS, batch 25 as the engine's evaluation of 100 images), then the
// checkpoint's head in double; ties go to the lower class, as the engine.
// Returns the number of correct samples (-1 on error); *n the sample count.
static int recount_top1(const char* ck, const char* data, int64_t* n) {
    mim_eval_common e = {.ckpt = ck, .data = data, .data_split = "train", .eval_split = "t10k",
                         .pool = MIM_POOL_CLS, .batch = 25, .max_feature_gb = 1, .quiet = 1};
    mim_features tr, ev;
    int rc = mim_eval_features(&e, &tr, &ev, NULL);
    if (!TU_CHECK(rc == 0, "features of %s: %s", ck, rc ? mim_err_msg() : "ok")) return -1;
    mim_st* s;
    if (!TU_CHECK(mim_st_open(&s, ck) == 0, "open %s", ck)) { mim_features_free(&tr); mim_features_free(&ev); return -1; }
    const mim_st_tensor* hw = mim_st_find(s, "head.weight");
    int D = ev.dim, K = hw ? (int)hw->shape[0] : 0, correct = -1;
    float *W = tu_alloc((size_t)(K ? K : 1) * D), *b = tu_alloc(K ? K : 1);
    if (K > 0 && !tu_st_f32(s, "head.weight", W, 2, (int64_t[]){K, D}) && !tu_st_f32(s, "head.bias", b, 1, (int64_t[]){K})) {
        correct = 0;
        double* lg = tu_alloc_bytes(sizeof(double) * K);
        for (int64_t i = 0; i < ev.n; i++) {
            const float* x = ev.x + (size_t)i * D;
            for (int k = 0; k < K; k++) {
                double z = b[k];
                for (int d = 0; d < D; d++) z += (double)x[d] * W[(size_t)k * D + d];
                lg[k] = z;
            }
            int y = ev.labels[i], rank = 0;
            for (int k = 0; k < K; k++) rank += lg[k] > lg[y] || (lg[k] == lg[y] && k < y);
            correct += rank == 0;
        }
    }
    *n = ev.n;
    mim_st_close(s);
    mim_features_free(&tr); mim_features_free(&ev);
    return correct;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/mim_test_finetune_XXXXXX");
    CHECK(mkdtemp(tmpdir));
    check_reference();
    check_layer_ids();

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
    snprintf(p, sizeof p, "%s/ckpt-000000010/model.safetensors", pre);
    check_layer_decay(p, data, &a.model);

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
    TU_CHECK(r.best_top1 > 0.8f, "fine-tuning learns the easy task: best top-1 %.3f (> 0.8)", r.best_top1);
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
    return tu_summary("test_finetune", torch_skipped, "python3 with torch not available; F.interpolate comparison skipped");
}
