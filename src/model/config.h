// config.h: ViT / MAE architecture configs and the named presets.
//
// A config fixes every shape of the model. The named presets (vit_nano ..
// vit_huge) set the encoder; the image geometry and decoder are options with
// MAE-like defaults (patch 16 for vit_* except vit_huge's 14, decoder 512 wide
// x 8 deep x 16 heads).
#pragma once
#include <stddef.h>

typedef struct {
    char name[32];          // preset the encoder came from, e.g. "vit_tiny"
    int img_h, img_w;       // input size in pixels; each divisible by patch
    int in_chans;           // 1 (grayscale) or 3 (RGB), any >= 1
    int patch;              // patch side p
    int dim, depth, heads;  // encoder width D, blocks, attention heads
    int dec_dim, dec_depth, dec_heads;   // dec_dim 0: encoder only (no decoder)
    int mlp_ratio;          // hidden = mlp_ratio * width (4)
    float mask_ratio;       // fraction of patches removed (0.75)
    int norm_pix;           // 1: per-patch normalised pixel targets
} mim_config;

// Fills *c with preset NAME at 224x224x3 and MAE's decoder defaults.
// Returns 0, or MIM_ENOTFOUND with a message listing the known names.
int mim_config_preset(mim_config* c, const char* name);
// Validates dims (divisibility by patch and heads, positivity, mask ratio in
// [0, 1) leaving at least one visible patch). 0 or MIM_EARG with a reason.
int mim_config_validate(const mim_config* c);

int mim_config_num_patches(const mim_config* c);   // L = (H/p) * (W/p)
int mim_config_len_keep(const mim_config* c);      // int(L * (1 - mask_ratio)), as MAE
int mim_config_patch_dim(const mim_config* c);     // p * p * C
// Parameter counts (including the fixed position embeddings, as state_dict).
size_t mim_config_params_encoder(const mim_config* c);
size_t mim_config_params_total(const mim_config* c);
// Matmul FLOPs of one pre-training step per image (forward + backward = 3x
// forward; 2 FLOPs per multiply-add), MAE masking included.
double mim_config_train_flops(const mim_config* c);
// Forward FLOPs of the encoder on the full (unmasked) image.
double mim_config_encoder_flops(const mim_config* c);

// The preset table, for listing.
int mim_config_num_presets(void);
const char* mim_config_preset_name(int i);
