// test_teacher.c: the frozen ViT teacher (src/model/teacher.h).
//  1. Features of small random teachers in the three naming schemes (timm/MAE,
//     OpenAI CLIP, HF CLIPModel, plus prefix-less copies) against the
//     hand-written PyTorch forwards of tests/ref/teacher_ref.py, at a middle
//     and the last block: position-embedding interpolation (up and down),
//     image resizing (down and up), re-normalisation and gray -> RGB are all
//     exercised there. Skipped without python3-torch.
//  2. A mimscale checkpoint (MAE with a decoder, as pretrain writes it) loads
//     as a scheme-1 teacher whose features equal mim_mae_encode's tokens.
//  3. Broken files: a renamed, a misshaped and a missing tensor, bad
//     metadata, not a ViT, truncated and garbled files give an error code and
//     a message naming the tensor, never a crash; of 200 garbled headers each
//     is refused with a message or loads and gives finite features, and most
//     are refused.
#include "model/mae.h"
#include "model/teacher.h"
#include "testutil.h"
#include "train/checkpoint.h"

#define TOL_TORCH 1e-4   // vs the float64 PyTorch reference (maxrel, testutil.h)
#define TOL_SAME  1e-5   // vs mimscale's own encoder (same ops, same order)

static char g_tmp[4096];   // a scratch file name for the broken-file variants
static mim_rng g_rng;

// ---------------------------------------------------------------- helpers

// Writes the tensors of SRC to DST (may be SRC) with edits: tensor `from`
// renamed to `to` (to NULL: dropped); tensor `reshape` given shape (ndim,
// shape) of the same element count; g_dup_from copied as g_dup_to when set.
// meta: n_meta key/value pairs.
static const char *g_dup_from, *g_dup_to;
static int write_variant(const char* src, const char* dst, const char* from, const char* to,
                         const char* reshape, int ndim, const int64_t* shape, const char* const* meta, int n_meta) {
    mim_st* st;
    if (mim_st_open(&st, src)) return -1;
    int n = mim_st_count(st), k = 0;
    mim_st_entry* e = tu_alloc_bytes(sizeof(mim_st_entry) * (size_t)(n + 1));
    const mim_st_tensor* d = g_dup_from ? mim_st_find(st, g_dup_from) : NULL;
    if (d) {
        e[k++] = (mim_st_entry){g_dup_to, d->dtype, d->ndim, {0}, d->data};
        memcpy(e[0].shape, d->shape, sizeof e[0].shape);
    }
    for (int i = 0; i < n; i++) {
        const mim_st_tensor* t = mim_st_get(st, i);
        mim_st_entry* o = &e[k];
        o->name = t->name; o->dtype = t->dtype; o->ndim = t->ndim; o->data = t->data;
        memcpy(o->shape, t->shape, sizeof o->shape);
        if (from && !strcmp(t->name, from)) {
            if (!to) continue;
            o->name = to;
        }
        if (reshape && !strcmp(t->name, reshape)) { o->ndim = ndim; memcpy(o->shape, shape, sizeof(int64_t) * ndim); }
        k++;
    }
    int rc = mim_st_write(dst, e, k, meta, n_meta);
    mim_st_close(st);
    return rc;
}

// Loads PATH expecting failure with `code` and a message containing each of
// the NULL-terminated strings in want.
static void expect_error(const char* what, const char* path, int gh, int gw, int code, ...) {
    mim_teacher t;
    memset(&t, 0x5a, sizeof t);
    int rc = mim_teacher_load(&t, path, gh, gw, 2);
    const char* msg = mim_err_msg();
    int ok = rc == code && t.params == NULL && t.blocks == NULL;
    va_list ap;
    va_start(ap, code);
    for (const char* s; (s = va_arg(ap, const char*));) ok = ok && strstr(msg, s) != NULL;
    va_end(ap);
    tu_report(ok, "%-30s rc %d (want %d): %s", what, rc, code, msg);
    if (rc == 0) mim_teacher_free(&t);
}

// ---------------------------------------------------------------- 1. reference

typedef struct {
    const char* key;          // tensors key.imgs, key.mid, key.last in the reference file
    const char* file_suffix;  // the teacher file next to it
    const char* scheme;       // expected scheme name
    int B, C, H, W;           // student images
    int gh, gw, D, mid;       // student grid, teacher width, middle block
} ref_case;

static void check_ref_case(const mim_st* ref, const char* ref_path, const ref_case* c) {
    char path[4200], label[200];
    snprintf(path, sizeof path, "%s.%s.safetensors", ref_path, c->file_suffix);
    mim_teacher t;
    int rc = mim_teacher_load(&t, path, c->gh, c->gw, c->B + 1);
    if (!tu_report(rc == 0, "%s: load (%s)", c->file_suffix, rc ? mim_err_msg() : "ok")) return;
    TU_CHECK(!strcmp(mim_teacher_scheme_name(t.scheme), c->scheme) && mim_teacher_dim(&t) == c->D,
             "%s: scheme %s, dim %d", c->file_suffix, mim_teacher_scheme_name(t.scheme), mim_teacher_dim(&t));
    rc = mim_teacher_set_input(&t, c->C, c->H, c->W, NULL, NULL);
    TU_CHECK(rc == 0, "%s: set_input %dx%dx%d", c->file_suffix, c->C, c->H, c->W);
    printf("---- %s\n", c->file_suffix);
    mim_teacher_describe(&t, stdout);
    size_t ni = (size_t)c->B * c->C * c->H * c->W, nf = (size_t)c->B * c->gh * c->gw * c->D;
    float *imgs = tu_alloc(ni), *want = tu_alloc(nf), *got = tu_alloc(nf), *again = tu_alloc(nf);
    char key[128];
    snprintf(key, sizeof key, "%s.imgs", c->key);
    if (tu_st_f32(ref, key, imgs, 4, (int64_t[]){c->B, c->C, c->H, c->W})) goto out;
    static const char* which[2] = {"mid", "last"};
    for (int k = 0; k < 2; k++) {
        int layer = k ? -1 : c->mid;
        snprintf(key, sizeof key, "%s.%s", c->key, which[k]);
        if (tu_st_f32(ref, key, want, 3, (int64_t[]){c->B, c->gh * c->gw, c->D})) continue;
        mim_teacher_forward(&t, got, imgs, c->B, layer);
        snprintf(label, sizeof label, "%s layer %d vs torch", c->file_suffix, layer);
        tu_close(label, got, want, nf, TOL_TORCH);
    }
    // last layer named by its index, a smaller batch, one-sample attention chunks
    mim_teacher_forward(&t, again, imgs, c->B, t.depth - 1);
    snprintf(label, sizeof label, "%s layer depth-1 == layer -1", c->file_suffix);
    tu_close(label, again, got, nf, 0.0);
    
    mim_teacher_forward(&t, again, imgs, 1, -1);
    snprintf(label, sizeof label, "%s B=1, attention chunk 1", c->file_suffix);
    tu_close(label, again, got, nf / c->B, 1e-6);
out:
    mim_teacher_free(&t);
}

static int test_reference(char* ref_path, size_t n) {
    int rc = tu_run_torch_ref("tests/ref/teacher_ref.py", ref_path, n);
    if (rc == 1) {
        const char* req = getenv("MIM_REQUIRE_TORCH");
        if (req && *req && strcmp(req, "0") != 0) tu_report(0, "python3-torch not available (MIM_REQUIRE_TORCH set)");
        printf("python3-torch not available: skipping the PyTorch comparisons\n");
        return 1;
    }
    if (!tu_report(rc == 0, "PyTorch reference tests/ref/teacher_ref.py ran")) return -1;
    mim_st* ref;
    if (mim_st_open(&ref, ref_path)) { tu_report(0, "open %s: %s", ref_path, mim_err_msg()); return -1; }
    // Keep in sync with tests/ref/teacher_ref.py main().
    static const ref_case cases[] = {
        {"timm", "timm", "timm/MAE", 2, 3, 30, 25, 6, 5, 64, 0},
        {"clip", "clip", "OpenAI CLIP", 3, 3, 18, 18, 3, 3, 128, 1},
        {"clip", "clipbare", "OpenAI CLIP", 3, 3, 18, 18, 3, 3, 128, 1},
        {"hf", "hf", "HF CLIP", 2, 1, 20, 20, 5, 5, 64, 0},
        {"hf", "hfbare", "HF CLIP", 2, 1, 20, 20, 5, 5, 64, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_ref_case(ref, ref_path, &cases[i]);

    // describe: what teacher-check prints
    char path[4200];
    snprintf(path, sizeof path, "%s.clip.safetensors", ref_path);
    mim_teacher t;
    if (mim_teacher_load(&t, path, 0, 0, 1) == 0) {
        char* buf = NULL;
        size_t len = 0;
        FILE* f = open_memstream(&buf, &len);
        mim_teacher_describe(&t, f);
        fclose(f);
        TU_CHECK(strstr(buf, "OpenAI CLIP (prefix \"visual.\")") && strstr(buf, "width 128, depth 3, heads 2 (width/64)") &&
                 strstr(buf, "native        32 x 32 pixels (grid 4 x 4)") && strstr(buf, "quick_gelu") &&
                 strstr(buf, "ln_post") && strstr(buf, "mlp           512"),
                 "describe names scheme, width, depth, heads, native size, activation");
        TU_CHECK(t.gh == 4 && t.gw == 4, "grid 0x0 = the native grid");
        TU_CHECK(mim_teacher_set_input(&t, 2, 32, 32, NULL, NULL) == MIM_EARG, "set_input: 2 channels refused: %s", mim_err_msg());
        free(buf);
        mim_teacher_free(&t);
    }
    // a misshaped CLIP tensor, a renamed HF one
    const char* meta_hf[] = {"num_attention_heads", "4"};
    snprintf(path, sizeof path, "%s.clip.safetensors", ref_path);
    write_variant(path, g_tmp, NULL, NULL, "visual.transformer.resblocks.2.mlp.c_proj.weight", 2, (int64_t[]){512, 128}, NULL, 0);
    expect_error("CLIP misshaped c_proj", g_tmp, 3, 3, MIM_ESHAPE, "visual.transformer.resblocks.2.mlp.c_proj.weight",
                 "[512, 128]", "expected [128, 512]", NULL);
    snprintf(path, sizeof path, "%s.hf.safetensors", ref_path);
    write_variant(path, g_tmp, "vision_model.encoder.layers.1.self_attn.k_proj.bias",
                  "vision_model.encoder.layers.1.self_attn.key.bias", NULL, 0, NULL, meta_hf, 1);
    expect_error("HF renamed k_proj.bias", g_tmp, 5, 5, MIM_EFORMAT,
                 "unexpected tensor 'vision_model.encoder.layers.1.self_attn.key.bias'", NULL);
    write_variant(path, g_tmp, "vision_model.post_layernorm.bias", NULL, NULL, 0, NULL, meta_hf, 1);
    expect_error("HF missing post_layernorm.bias", g_tmp, 5, 5, MIM_ENOTFOUND,
                 "missing tensor 'vision_model.post_layernorm.bias'", "[64]", NULL);
    mim_st_close(ref);
    return 0;
}

// ---------------------------------------------------------------- 2. checkpoint

// Writes an MAE checkpoint (decoder included, perturbed weights) to path;
// checks the teacher's features against mim_mae_encode on the same images.
static void test_checkpoint(const char* path) {
    mim_config c;
    CHECK(mim_config_preset(&c, "vit_nano") == 0);
    c.dim = 64; c.depth = 3; c.heads = 4; c.patch = 4; c.img_h = 16; c.img_w = 12; c.in_chans = 3;
    c.dec_dim = 32; c.dec_depth = 1; c.dec_heads = 2;
    const int B = 3;
    mim_mae m;
    CHECK(mim_mae_init(&m, &c, B) == 0);
    mim_mae_init_weights(&m, 7);
    mim_rng r;
    mim_rng_seed(&r, 11);
    for (size_t i = 0; i < m.num_floats; i++) m.params[i] += 0.1f * mim_rng_normal(&r);
    CHECK(mim_ckpt_save_model(path, &m, NULL, 0) == 0);
    mim_mae_free(&m);

    mim_config e = c;   // the encoder on every patch, loaded from the file
    e.mask_ratio = 0.0f;
    CHECK(mim_mae_init(&m, &e, B) == 0);
    int rc = mim_ckpt_load_model(path, &m, 0);
    TU_CHECK(rc == 0, "mimscale checkpoint loads into mim_mae (%s)", rc ? mim_err_msg() : "ok");
    int gh = c.img_h / c.patch, gw = c.img_w / c.patch, L = gh * gw, D = c.dim, T = 1 + L;
    float* imgs = tu_alloc((size_t)B * 3 * c.img_h * c.img_w);
    tu_fill_normal(&r, imgs, (size_t)B * 3 * c.img_h * c.img_w, 1.0f);
    const float* lat = mim_mae_encode(&m, imgs, B);
    float *want = tu_alloc((size_t)B * L * D), *mid = tu_alloc((size_t)B * L * D), *got = tu_alloc((size_t)B * L * D);
    for (int b = 0; b < B; b++) {
        memcpy(want + (size_t)b * L * D, lat + ((size_t)b * T + 1) * D, (size_t)L * D * sizeof(float));
        memcpy(mid + (size_t)b * L * D, m.enc[1].out + ((size_t)b * T + 1) * D, (size_t)L * D * sizeof(float));
    }
    mim_mae_free(&m);

    mim_teacher t;
    rc = mim_teacher_load(&t, path, gh, gw, B);
    if (!tu_report(rc == 0, "mimscale checkpoint loads as a teacher (%s)", rc ? mim_err_msg() : "ok")) return;
    TU_CHECK(mim_teacher_set_input(&t, 3, c.img_h, c.img_w, NULL, NULL) == 0, "checkpoint: set_input");
    printf("---- mimscale checkpoint\n");
    mim_teacher_describe(&t, stdout);
    TU_CHECK(t.scheme == MIM_TEACHER_TIMM && t.gh0 == 4 && t.gw0 == 3 && t.heads == 4 && t.depth == 3 &&
             t.act == MIM_ACT_GELU && t.hidden == 256,
             "checkpoint: timm scheme, native grid 4x3 from metadata, heads 4 from num_heads, depth 3, gelu");
    mim_teacher_forward(&t, got, imgs, B, -1);
    tu_close("checkpoint last layer == mim_mae_encode norm tokens", got, want, (size_t)B * L * D, TOL_SAME);
    mim_teacher_forward(&t, got, imgs, B, 1);
    tu_close("checkpoint layer 1 == mim_mae enc[1].out", got, mid, (size_t)B * L * D, TOL_SAME);
    mim_teacher_free(&t);

    // the same file at another student grid: position embedding resized
    rc = mim_teacher_load(&t, path, 6, 5, 1);
    TU_CHECK(rc == 0 && t.H == 24 && t.W == 20 && t.T == 31, "checkpoint at grid 6x5: runs at 24x20, 31 tokens");
    if (rc == 0) {
        float* f = tu_alloc(30 * 64);
        float* im = tu_alloc(3 * 16 * 12);
        mim_teacher_set_input(&t, 3, 16, 12, NULL, NULL);   // upsampled to 24x20
        mim_teacher_forward(&t, f, im, 1, -1);
        int finite = 1;
        for (int i = 0; i < 30 * 64; i++) finite &= isfinite(f[i]);
        TU_CHECK(finite, "resized run gives finite features");
        mim_teacher_free(&t);
    }
}

// ---------------------------------------------------------------- 3. broken files

static void test_broken(const char* ckpt) {
    const char* meta[] = {"num_heads", "4", "img_h", "16", "img_w", "12", "patch", "4"};
    write_variant(ckpt, g_tmp, "blocks.1.mlp.fc1.weight", "blocks.1.mlp.fc3.weight", NULL, 0, NULL, meta, 4);
    expect_error("renamed blocks.1.mlp.fc1", g_tmp, 4, 3, MIM_EFORMAT, "unexpected tensor 'blocks.1.mlp.fc3.weight'", NULL);
    write_variant(ckpt, g_tmp, NULL, NULL, "blocks.0.attn.qkv.weight", 2, (int64_t[]){64, 192}, meta, 4);
    expect_error("misshaped blocks.0.attn.qkv", g_tmp, 4, 3, MIM_ESHAPE, "'blocks.0.attn.qkv.weight' has shape [64, 192]",
                 "expected [192, 64]", NULL);
    write_variant(ckpt, g_tmp, "norm.bias", NULL, NULL, 0, NULL, meta, 4);
    expect_error("missing norm.bias", g_tmp, 4, 3, MIM_ENOTFOUND, "missing tensor 'norm.bias'", "[64]", NULL);
    write_variant(ckpt, g_tmp, "blocks.2.norm2.weight", "blocks.9.norm2.weight", NULL, 0, NULL, meta, 4);
    expect_error("stray block index", g_tmp, 4, 3, MIM_ENOTFOUND, "missing tensor 'blocks.2.norm2.weight'",
                 "depth 10", NULL);
    write_variant(ckpt, g_tmp, "blocks.0.mlp.fc1.weight", NULL, NULL, 0, NULL, meta, 4);
    expect_error("missing blocks.0.mlp.fc1", g_tmp, 4, 3, MIM_ENOTFOUND, "'blocks.0.mlp.fc1.weight'", "[mlp width, 64]", NULL);
    const char* bad_heads[] = {"num_heads", "5", "img_h", "16", "img_w", "12", "patch", "4"};
    write_variant(ckpt, g_tmp, NULL, NULL, NULL, 0, NULL, bad_heads, 4);
    expect_error("num_heads 5 for width 64", g_tmp, 4, 3, MIM_EFORMAT, "num_heads = '5'", NULL);
    write_variant(ckpt, g_tmp, NULL, NULL, NULL, 0, NULL, meta, 1);   // no img_h/img_w: 12 positions, not a square
    expect_error("non-square grid without metadata", g_tmp, 4, 3, MIM_EFORMAT, "12 patch positions, not a square", NULL);
    write_variant(ckpt, g_tmp, "patch_embed.proj.weight", "patch_embed.weight", NULL, 0, NULL, meta, 4);
    expect_error("no patch embedding: not a ViT", g_tmp, 4, 3, MIM_EFORMAT, "not a recognised ViT", NULL);
    // MAE global-pool fine-tunes keep fc_norm instead of norm: same features
    write_variant(ckpt, g_tmp, "norm.weight", "fc_norm.weight", NULL, 0, NULL, meta, 4);
    write_variant(g_tmp, g_tmp, "norm.bias", "fc_norm.bias", NULL, 0, NULL, meta, 4);
    mim_teacher t, u;
    int rc = mim_teacher_load(&t, g_tmp, 4, 3, 1), rc2 = mim_teacher_load(&u, ckpt, 4, 3, 1);
    if (TU_CHECK(rc == 0 && rc2 == 0 && !strcmp(t.final_norm, "fc_norm"), "fc_norm instead of norm loads (%s)",
                 rc ? mim_err_msg() : "ok")) {
        float *im = tu_alloc(3 * 16 * 12), *a = tu_alloc(12 * 64), *b = tu_alloc(12 * 64);
        tu_fill_normal(&g_rng, im, 3 * 16 * 12, 1.0f);
        mim_teacher_set_input(&t, 3, 16, 12, NULL, NULL);
        mim_teacher_set_input(&u, 3, 16, 12, NULL, NULL);
        mim_teacher_forward(&t, a, im, 1, -1);
        mim_teacher_forward(&u, b, im, 1, -1);
        tu_close("fc_norm file == norm file features", a, b, 12 * 64, 0.0);
    }
    if (rc == 0) mim_teacher_free(&t);
    if (rc2 == 0) mim_teacher_free(&u);
    // timm's norm_pre (CLIP ports): optional, but weight and bias together
    g_dup_from = "norm.weight"; g_dup_to = "norm_pre.weight";
    write_variant(ckpt, g_tmp, NULL, NULL, NULL, 0, NULL, meta, 4);
    expect_error("norm_pre.weight without bias", g_tmp, 4, 3, MIM_ENOTFOUND, "missing tensor 'norm_pre.bias'", NULL);
    g_dup_from = "norm.bias"; g_dup_to = "norm_pre.bias";
    write_variant(g_tmp, g_tmp, NULL, NULL, NULL, 0, NULL, meta, 4);
    g_dup_from = g_dup_to = NULL;
    rc = mim_teacher_load(&t, g_tmp, 4, 3, 1);
    TU_CHECK(rc == 0 && t.has_pre_norm, "norm_pre weight + bias: pre-norm on (%s)", rc ? mim_err_msg() : "ok");
    if (rc == 0) mim_teacher_free(&t);
    expect_error("absent file", "/nonexistent/teacher.safetensors", 4, 3, MIM_EIO, "/nonexistent/teacher.safetensors", NULL);

    // truncated copies: every prefix length class, each refused
    uint8_t* buf;
    size_t len = tu_slurp(ckpt, &buf);
    CHECK(len > 64);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | buf[i];
    size_t cuts[] = {0, 1, 7, 8, 9, 64, 8 + hlen - 1, 8 + hlen, 8 + hlen + 1, len / 2, len - 4, len - 1};
    int refused = 0, total = 0;
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        FILE* f = fopen(g_tmp, "wb");
        CHECK(f);
        fwrite(buf, 1, cuts[i], f);
        fclose(f);
        rc = mim_teacher_load(&t, g_tmp, 4, 3, 1);
        refused += rc < 0;
        total++;
        if (rc == 0) mim_teacher_free(&t);
    }
    TU_CHECK(refused == total, "truncated files refused: %d of %d (last: %s)", refused, total, mim_err_msg());

    // garbled headers: 1-4 random bytes of the length prefix or the JSON
    // header replaced, 200 times. Each file must end in exactly one of two
    // ways: refused (a negative MIM_E* code, a fresh non-empty message, *t
    // zeroed), or loaded, accepting its own native input and giving finite
    // features. Anything else (a positive code, a silent refusal, a teacher
    // that loads but cannot run or yields NaN/Inf) counts as bad. Most flips
    // land in tensor names, dtypes, shapes, offsets or JSON syntax, which the
    // loader must reject; only the few in ignored tensors (decoder_*,
    // mask_token), spacing or harmless metadata may survive, so at least 3 in
    // 4 must be refused: a loader that accepted everything would fail here.
    enum { N_GARBLED = 200 };
    mim_rng r;
    mim_rng_seed(&r, 99);
    uint8_t* g = tu_alloc_bytes(len);
    int grefused = 0, granfinite = 0, gbad = 0;
    char first_bad[512] = "none";
    for (int it = 0; it < N_GARBLED; it++) {
        memcpy(g, buf, len);
        int nflip = 1 + (int)mim_rng_below(&r, 4);
        for (int k = 0; k < nflip; k++) g[mim_rng_below(&r, 8 + hlen)] = (uint8_t)mim_rng_below(&r, 256);
        FILE* f = fopen(g_tmp, "wb");
        CHECK(f);
        fwrite(g, 1, len, f);
        fclose(f);
        mim_err(MIM_OK, "%s", "");   // so a refusal must set its own message
        memset(&t, 0x5a, sizeof t);
        rc = mim_teacher_load(&t, g_tmp, 0, 0, 1);
        if (rc != 0) {
            if (rc < 0 && mim_err_msg()[0] && t.params == NULL && t.blocks == NULL) grefused++;
            else if (gbad++ == 0)
                snprintf(first_bad, sizeof first_bad, "garbled file %d: rc %d, message '%s', params %s", it, rc,
                         mim_err_msg(), t.params ? "set" : "NULL");
            continue;
        }
        int ran = 0, src = mim_teacher_set_input(&t, t.C, t.H, t.W, NULL, NULL);
        if (src == 0) {
            float* im = calloc((size_t)t.C * t.H * t.W, sizeof(float));
            float* out = calloc((size_t)t.L * t.D, sizeof(float));
            CHECK(im && out);
            tu_fill_normal(&g_rng, im, (size_t)t.C * t.H * t.W, 1.0f);
            mim_teacher_forward(&t, out, im, 1, -1);
            ran = 1;
            for (size_t i = 0; i < (size_t)t.L * t.D; i++) ran &= isfinite(out[i]) != 0;
            free(im);
            free(out);
        }
        if (ran) granfinite++;
        else if (gbad++ == 0)
            snprintf(first_bad, sizeof first_bad, "garbled file %d loaded but %s%s", it,
                     src ? "set_input failed: " : "gave non-finite features", src ? mim_err_msg() : "");
        mim_teacher_free(&t);
    }
    TU_CHECK(gbad == 0 && grefused + granfinite == N_GARBLED,
             "%d garbled headers: %d refused with a message, %d loaded and ran finite, %d bad (first: %s)",
             N_GARBLED, grefused, granfinite, gbad, first_bad);
    TU_CHECK(4 * grefused >= 3 * N_GARBLED, "garbled headers mostly refused: %d of %d (want >= 3/4)",
             grefused, N_GARBLED);
}

int main(void) {
    mim_rng_seed(&g_rng, 5);
    const char* tmp = getenv("TMPDIR");
    char ckpt[4096], ref_path[4096] = "";
    snprintf(ckpt, sizeof ckpt, "%s/mim_teacher_ckpt_XXXXXX.safetensors", tmp && *tmp ? tmp : "/tmp");
    int fd = mkstemps(ckpt, (int)strlen(".safetensors"));
    CHECK(fd >= 0);
    close(fd);
    snprintf(g_tmp, sizeof g_tmp, "%s/mim_teacher_bad_XXXXXX.safetensors", tmp && *tmp ? tmp : "/tmp");
    fd = mkstemps(g_tmp, (int)strlen(".safetensors"));
    CHECK(fd >= 0);
    close(fd);

    int skipped = test_reference(ref_path, sizeof ref_path) == 1;
    test_checkpoint(ckpt);
    test_broken(ckpt);

    if (ref_path[0]) {
        static const char* sfx[] = {"timm", "clip", "clipbare", "hf", "hfbare"};
        char p[4200];
        for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
            snprintf(p, sizeof p, "%s.%s.safetensors", ref_path, sfx[i]);
            unlink(p);
        }
        unlink(ref_path);
    }
    unlink(ckpt);
    unlink(g_tmp);
    tu_free_all();
    return tu_summary("test_teacher", skipped, "python3-torch not available; checkpoint and broken-file checks ran");
}
