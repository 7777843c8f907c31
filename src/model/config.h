// config.h: ViT / MAE architecture configs and the named presets.
//
// A config fixes every shape of the model. The named presets (vit_nano ..
// vit_huge) set the encoder; the image geometry and decoder are options with
// MAE-like defaults (patch 16 for vit_* except vit_huge's 14, decoder 512 wide
// x 8 deep x 16 heads).
//
// The reconstruction target fixes the width of decoder_pred: pixels (p*p*C,
// optionally per-patch normalised), HOG features (MaskFeat) or a teacher's
// tokens (MILAN / EVA style); the loss compares prediction and target on the
// masked patches (mse, cosine, smooth-L1).
#pragma once
#include <stddef.h>

// What decoder_pred regresses. Pixel targets are computed by the model itself
// (mim_mae_forward); HOG and teacher targets come from outside
// (mim_mae_forward_target).
typedef enum {
    MIM_TARGET_PIXEL = 0,      // patchified normalised pixels (MAE)
    MIM_TARGET_PIXEL_NORM,     // ... each patch normalised (MAE --norm_pix_loss)
    MIM_TARGET_HOG,            // HOG histograms per patch (MaskFeat; model/hog.h)
    MIM_TARGET_TEACHER,        // a frozen teacher's patch tokens (model/teacher.h)
    MIM_TARGET_COUNT
} mim_target;

typedef enum {
    MIM_LOSS_MSE = 0,          // mean over masked patches of mean_p (pred - target)^2
    MIM_LOSS_COS,              // mean over masked patches of 2 - 2 cos(pred, target)
    MIM_LOSS_SMOOTH_L1,        // smooth-L1 (beta 1), mean over the masked elements
    MIM_LOSS_COUNT
} mim_loss;

const char* mim_target_name(mim_target t);   // "pixel", "pixel-norm", "hog", "teacher"
const char* mim_loss_name(mim_loss l);       // "mse", "cos", "smooth-l1"
// Name -> value; 0, or MIM_EARG with a message listing the known names.
int mim_target_parse(const char* name, mim_target* out);
int mim_loss_parse(const char* name, mim_loss* out);
// The loss a target trains with unless another is asked for: cosine for
// teacher features (MILAN / EVA), mse otherwise (MAE, MaskFeat).
mim_loss mim_target_default_loss(mim_target t);

typedef struct {
    char name[32];          // preset the encoder came from, e.g. "vit_tiny"
    int img_h, img_w;       // input size in pixels; each divisible by patch
    int in_chans;           // 1 (grayscale) or 3 (RGB), any >= 1
    int patch;              // patch side p
    int dim, depth, heads;  // encoder width D, blocks, attention heads
    int dec_dim, dec_depth, dec_heads;   // dec_dim 0: encoder only (no decoder)
    int mlp_ratio;          // hidden = mlp_ratio * width (4)
    float mask_ratio;       // fraction of patches removed (0.75)
    mim_target target;      // what decoder_pred regresses (pixel-norm: MAE --norm_pix_loss)
    int target_dim;         // decoder_pred width Pt: 0 = p*p*C pixels (pixel targets);
                            // >= 1 for hog / teacher
    mim_loss loss;
} mim_config;

// Fills *c with preset NAME at 224x224x3 and MAE's decoder defaults.
// Returns 0, or MIM_ENOTFOUND with a message listing the known names.
int mim_config_preset(mim_config* c, const char* name);
// Validates dims (divisibility by patch and heads, positivity, mask ratio in
// [0, 1) leaving at least one visible patch) and the target (pixel targets:
// target_dim 0; hog / teacher: target_dim >= 1; a known loss).
// 0 or MIM_EARG with a reason.
int mim_config_validate(const mim_config* c);

int mim_config_num_patches(const mim_config* c);   // L = (H/p) * (W/p)
int mim_config_len_keep(const mim_config* c);      // int(L * (1 - mask_ratio)), as MAE
int mim_config_patch_dim(const mim_config* c);     // p * p * C
int mim_config_target_dim(const mim_config* c);    // Pt: target_dim, or p * p * C when 0
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
