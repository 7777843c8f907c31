// config.c: named ViT presets and derived sizes.
#include "model/config.h"
#include "core/check.h"
#include <string.h>

typedef struct { const char* name; int dim, depth, heads, patch; } preset;

static const preset presets[] = {
    {"vit_nano", 128, 6, 4, 16},
    {"vit_tiny", 192, 12, 3, 16},
    {"vit_small", 384, 12, 6, 16},
    {"vit_base", 768, 12, 12, 16},
    {"vit_large", 1024, 24, 16, 16},
    {"vit_huge", 1280, 32, 16, 14},
};
#define NPRESETS (int)(sizeof presets / sizeof presets[0])

static const char* target_names[MIM_TARGET_COUNT] = {"pixel", "pixel-norm", "hog", "teacher"};
static const char* loss_names[MIM_LOSS_COUNT] = {"mse", "cos", "smooth-l1"};

const char* mim_target_name(mim_target t) { return (unsigned)t < MIM_TARGET_COUNT ? target_names[t] : "?"; }
const char* mim_loss_name(mim_loss l) { return (unsigned)l < MIM_LOSS_COUNT ? loss_names[l] : "?"; }

int mim_target_parse(const char* name, mim_target* out) {
    for (int i = 0; i < MIM_TARGET_COUNT; i++)
        if (name && !strcmp(name, target_names[i])) { *out = (mim_target)i; return 0; }
    return mim_err(MIM_EARG, "unknown target '%s' (known: pixel, pixel-norm, hog, teacher)", name ? name : "");
}

int mim_loss_parse(const char* name, mim_loss* out) {
    for (int i = 0; i < MIM_LOSS_COUNT; i++)
        if (name && !strcmp(name, loss_names[i])) { *out = (mim_loss)i; return 0; }
    return mim_err(MIM_EARG, "unknown loss '%s' (known: mse, cos, smooth-l1)", name ? name : "");
}

mim_loss mim_target_default_loss(mim_target t) { return t == MIM_TARGET_TEACHER ? MIM_LOSS_COS : MIM_LOSS_MSE; }

int mim_config_num_presets(void) { return NPRESETS; }
const char* mim_config_preset_name(int i) { return i >= 0 && i < NPRESETS ? presets[i].name : NULL; }

int mim_config_preset(mim_config* c, const char* name) {
    for (int i = 0; i < NPRESETS; i++) {
        if (strcmp(presets[i].name, name) != 0) continue;
        memset(c, 0, sizeof *c);
        snprintf(c->name, sizeof c->name, "%s", name);
        c->dim = presets[i].dim; c->depth = presets[i].depth; c->heads = presets[i].heads;
        c->patch = presets[i].patch;
        c->img_h = c->img_w = 224;
        c->in_chans = 3;
        c->dec_dim = 512; c->dec_depth = 8; c->dec_heads = 16;
        c->mlp_ratio = 4;
        c->mask_ratio = 0.75f;
        return 0;
    }
    return mim_err(MIM_ENOTFOUND, "unknown model '%s' (known: vit_nano, vit_tiny, vit_small, vit_base, vit_large, vit_huge)", name);
}

int mim_config_validate(const mim_config* c) {
    if (c->patch < 1) return mim_err(MIM_EARG, "patch size must be >= 1 (got %d)", c->patch);
    if (c->img_h < c->patch || c->img_w < c->patch || c->img_h % c->patch || c->img_w % c->patch)
        return mim_err(MIM_EARG, "image %dx%d is not divisible by patch %d", c->img_h, c->img_w, c->patch);
    if (c->in_chans < 1 || c->in_chans > 64) return mim_err(MIM_EARG, "channels must be 1..64 (got %d)", c->in_chans);
    if (c->dim < 1 || c->depth < 0 || c->heads < 1 || c->dim % c->heads)
        return mim_err(MIM_EARG, "encoder width %d not divisible by heads %d", c->dim, c->heads);
    if (c->dec_dim != 0 && (c->dec_dim < 1 || c->dec_depth < 0 || c->dec_heads < 1 || c->dec_dim % c->dec_heads))
        return mim_err(MIM_EARG, "decoder width %d not divisible by heads %d", c->dec_dim, c->dec_heads);
    if (c->dim % 4 || c->dec_dim % 4)
        return mim_err(MIM_EARG, "widths must be divisible by 4 for the 2-D sin-cos embedding (got %d, %d)", c->dim, c->dec_dim);
    if (c->mlp_ratio < 1) return mim_err(MIM_EARG, "mlp ratio must be >= 1");
    if (!(c->mask_ratio >= 0.0f && c->mask_ratio < 1.0f))
        return mim_err(MIM_EARG, "mask ratio must be in [0, 1) (got %g)", c->mask_ratio);
    if ((size_t)(c->img_h / c->patch) * (c->img_w / c->patch) > 1 << 20)
        return mim_err(MIM_EARG, "too many patches (%d x %d)", c->img_h / c->patch, c->img_w / c->patch);
    if (mim_config_len_keep(c) < 1) return mim_err(MIM_EARG, "mask ratio %g leaves no visible patch", c->mask_ratio);
    if ((int)c->target < 0 || c->target >= MIM_TARGET_COUNT) return mim_err(MIM_EARG, "unknown target kind %d", c->target);
    if ((int)c->loss < 0 || c->loss >= MIM_LOSS_COUNT) return mim_err(MIM_EARG, "unknown loss kind %d", c->loss);
    int pixels = c->target == MIM_TARGET_PIXEL || c->target == MIM_TARGET_PIXEL_NORM;
    if (pixels && c->target_dim != 0)
        return mim_err(MIM_EARG, "pixel targets have width p*p*C; target_dim must be 0 (got %d)", c->target_dim);
    if (!pixels && (c->target_dim < 1 || c->target_dim > 1 << 20))
        return mim_err(MIM_EARG, "target %s needs a target width in 1..2^20 (got %d)", mim_target_name(c->target), c->target_dim);
    return 0;
}

int mim_config_num_patches(const mim_config* c) { return (c->img_h / c->patch) * (c->img_w / c->patch); }
int mim_config_len_keep(const mim_config* c) {
    return (int)(mim_config_num_patches(c) * (1.0 - (double)c->mask_ratio));
}
int mim_config_patch_dim(const mim_config* c) { return c->patch * c->patch * c->in_chans; }
int mim_config_target_dim(const mim_config* c) { return c->target_dim ? c->target_dim : mim_config_patch_dim(c); }

// One pre-norm block of width D: 2 LayerNorms, qkv, proj, fc1, fc2.
static size_t block_params(size_t D, size_t r) {
    return 4 * D + (3 * D * D + 3 * D) + (D * D + D) + (r * D * D + r * D) + (r * D * D + D);
}

size_t mim_config_params_encoder(const mim_config* c) {
    size_t D = c->dim, L = mim_config_num_patches(c), K = (size_t)c->patch * c->patch * c->in_chans;
    return D /*cls*/ + (1 + L) * D /*pos*/ + K * D + D /*patch embed*/ +
           c->depth * block_params(D, c->mlp_ratio) + 2 * D /*norm*/;
}

size_t mim_config_params_total(const mim_config* c) {
    if (c->dec_dim == 0) return mim_config_params_encoder(c);
    size_t D = c->dim, Dd = c->dec_dim, L = mim_config_num_patches(c), P = mim_config_target_dim(c);
    return mim_config_params_encoder(c) + Dd /*mask token*/ + (1 + L) * Dd + D * Dd + Dd +
           c->dec_depth * block_params(Dd, c->mlp_ratio) + 2 * Dd + Dd * P + P;
}

// Forward matmul FLOPs of `depth` blocks of width D over T tokens.
static double blocks_flops(double T, double D, double depth, double r) {
    double lin = 2.0 * T * D * D * (3 + 1 + 2 * r);   // qkv, proj, fc1, fc2
    double att = 2.0 * 2.0 * T * T * D;               // q k^T and att v
    return depth * (lin + att);
}

double mim_config_train_flops(const mim_config* c) {
    double L = mim_config_num_patches(c), T = 1 + mim_config_len_keep(c), Td = 1 + L;
    double D = c->dim, Dd = c->dec_dim, K = (double)c->patch * c->patch * c->in_chans;
    double Pt = mim_config_target_dim(c);
    double fwd = 2.0 * L * K * D +                      // patch embedding over all patches
                 blocks_flops(T, D, c->depth, c->mlp_ratio) +
                 2.0 * T * D * Dd +                     // decoder_embed
                 blocks_flops(Td, Dd, c->dec_depth, c->mlp_ratio) +
                 2.0 * Td * Dd * Pt;                    // decoder_pred
    return 3.0 * fwd;
}

double mim_config_encoder_flops(const mim_config* c) {
    double L = mim_config_num_patches(c), K = (double)c->patch * c->patch * c->in_chans;
    return 2.0 * L * K * c->dim + blocks_flops(1 + L, c->dim, c->depth, c->mlp_ratio);
}
