// randaug.h: the fine-tuning augmentations of the MAE recipe that act on a
// single sample: timm's RandAugment on the uint8 image, and timm's
// RandomErasing on the normalised float tensor. Mixup / cutmix act on a whole
// batch and live in train/mixup.h. Not the pre-training transforms
// (augment.h) and not the loader: the caller runs these per sample with that
// sample's own RNG, which keeps the result independent of thread count.
//
// Semantics followed: timm 0.9.x timm/data/auto_augment.py and
// random_erasing.py (the code paths used here are unchanged since timm 0.3.2,
// which MAE pins; differences are noted where they exist). The random streams
// cannot match Python's `random` / numpy, so parity is per op at a given
// magnitude and sign (tests/test_augment_ft.c), and by distribution for the
// random draws.
//
// RandAugment, as timm's rand_augment_transform("rand-m9-mstd0.5-inc1"):
//   for each of num_layers (2) ops, drawn uniformly with replacement from the
//   op set:
//     with probability 1 - prob (0.5) skip it;
//     magnitude m' = m + N(0, mstd^2) (or uniform(0, m) when mstd > 100),
//       clipped to [0, magnitude_max] (10);
//     the op's argument is derived from m' as timm's *_level_to_arg, with a
//       random sign (probability 1/2) for Rotate, Shear*, Translate*Rel and
//       the *Increasing enhance ops;
//     the op runs with PIL's ImageOps / ImageEnhance / Image.transform
//       semantics, reproduced bit for bit: same LUTs, same float / double
//       arithmetic, same rounding and borders.
//   inc1 selects _RAND_INCREASING_TRANSFORMS (15 ops): AutoContrast,
//   Equalize, Invert, Rotate, PosterizeIncreasing, SolarizeIncreasing,
//   SolarizeAdd, ColorIncreasing, ContrastIncreasing, BrightnessIncreasing,
//   SharpnessIncreasing, ShearX, ShearY, TranslateXRel, TranslateYRel;
//   without it, _RAND_TRANSFORMS (Posterize, Solarize, Color, Contrast,
//   Brightness, Sharpness in place of the increasing variants).
//
// Geometric ops (Rotate, Shear*, Translate*) fill uncovered pixels with
// round(255 * ImageNet mean) = (124, 116, 104), timm's hparams img_mean as
// create_transform sets it; gray images use round(255 * 0.449) = 114.
// Interpolation: timm draws bilinear or bicubic per call when no
// interpolation is configured; we use bilinear by default (deterministic,
// cheaper). NOTE: MAE's fine-tuning build_transform passes
// interpolation='bicubic' to create_transform, which forwards it to the
// RandAugment hparams, so MAE's real recipe uses bicubic here; set
// interp = MIM_RA_BICUBIC for that (PIL's affine bicubic, a = -1, also exact).
//
// Image layout: uint8 (H, W, C) row-major, C = 1 (PIL mode "L") or 3 ("RGB").
// Ops work in place; those that need the original pixels (geometric ops,
// Sharpness) use a caller scratch buffer of mim_randaug_scratch_size() bytes.
// Nothing allocates; a mim_randaug is read-only after parsing and may be
// shared between threads.
//
// Usage:
//   mim_randaug ra;
//   if (mim_randaug_parse(&ra, "rand-m9-mstd0.5-inc1") < 0) die(mim_err_msg());
//   uint8_t* scratch = malloc(mim_randaug_scratch_size(h, w, 3));
//   mim_randaug_apply(&ra, &rng, img, h, w, 3, scratch);   // per sample
//   ... normalise to float CHW ...
//   mim_random_erase(chw, 3, h, w, 0.25f, &rng);           // per sample
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "core/rng.h"

// The ops, named as timm's NAME_TO_OP keys (mim_randaug_op_name).
typedef enum {
    MIM_RA_AUTOCONTRAST = 0,
    MIM_RA_EQUALIZE,
    MIM_RA_INVERT,
    MIM_RA_ROTATE,
    MIM_RA_POSTERIZE,            // bits = int(m/10 * 4): severity decreases with m
    MIM_RA_POSTERIZE_INC,        // bits = 4 - int(m/10 * 4)
    MIM_RA_SOLARIZE,             // threshold = min(256, int(m/10 * 256))
    MIM_RA_SOLARIZE_INC,         // threshold = 256 - that
    MIM_RA_SOLARIZE_ADD,         // add min(128, int(m/10 * 110)) below 128
    MIM_RA_COLOR,                // factor = m/10 * 1.8 + 0.1
    MIM_RA_COLOR_INC,            // factor = max(0.1, 1 +- m/10 * 0.9)
    MIM_RA_CONTRAST,
    MIM_RA_CONTRAST_INC,
    MIM_RA_BRIGHTNESS,
    MIM_RA_BRIGHTNESS_INC,
    MIM_RA_SHARPNESS,
    MIM_RA_SHARPNESS_INC,
    MIM_RA_SHEAR_X,              // factor +- m/10 * 0.3
    MIM_RA_SHEAR_Y,
    MIM_RA_TRANSLATE_X_REL,      // +- m/10 * translate_pct * W pixels
    MIM_RA_TRANSLATE_Y_REL,      // +- m/10 * translate_pct * H pixels
    MIM_RA_NOPS
} mim_ra_op;

enum { MIM_RA_BILINEAR = 0, MIM_RA_BICUBIC = 1 };

typedef struct {
    int num_layers;          // n: ops per image, drawn with replacement (2)
    double magnitude;        // m: nominal magnitude on timm's 0..10 scale (9)
    double magnitude_std;    // mstd: per-op gaussian noise on m (0.5); INFINITY: uniform(0, m)
    double magnitude_max;    // mmax: m' is clipped to [0, magnitude_max] (10)
    double prob;             // p: probability that a drawn op is applied (0.5)
    int increasing;          // inc1: the increasing-severity op set
    int interp;              // MIM_RA_BILINEAR (default) or MIM_RA_BICUBIC
    double translate_pct;    // TranslateRel range at m = 10 (0.45)
    uint8_t fill[3];         // geometric fill for C = 3: (124, 116, 104)
    uint8_t fill_gray;       // geometric fill for C = 1: 114
    int nops;                // the op set: ops[0..nops)
    int ops[MIM_RA_NOPS];
} mim_randaug;

// Parses a timm RandAugment config string into *out: "rand" followed by
// '-'-separated sections, each a key and a number:
//   m<int>  magnitude (0..magnitude_max)    n<int>  num_layers (0..16)
//   mstd<float>  magnitude noise std (>= 0; > 100 means uniform(0, m))
//   mmax<int>  clip bound for the noisy magnitude (default 10)
//   p<float>  per-op probability in [0, 1]    inc<0|1>  increasing op set
// e.g. "rand-m9-mstd0.5-inc1" (MAE fine-tuning), "rand-m9-n3-mstd0.5".
// Returns MIM_OK, or MIM_EARG with a message naming the bad section
// (mim_err_msg()); *out is then unspecified.
// Differences from timm, on purpose: an unknown or number-less section is
// an error (timm silently skips sections without a digit and asserts on
// unknown keys); "inc0" turns the increasing set off (timm's bool("0") is
// True, so in timm any inc<x> turns it on); the op-weight section "w<k>" and
// the op-set section "t<name>" of newer timm are not supported (error).
// Fields not in the string take the defaults above (bilinear, fills).
int mim_randaug_parse(mim_randaug* out, const char* spec);

// timm's name of an op ("AutoContrast", "PosterizeIncreasing", ...), or
// NULL for an out-of-range value.
const char* mim_randaug_op_name(int op);
// The op with timm name `name`, or -1.
int mim_randaug_op_from_name(const char* name);

// Bytes of scratch that mim_randaug_apply / _apply_op need: h * w * c.
size_t mim_randaug_scratch_size(int h, int w, int c);

// One RandAugment draw on img (h, w, c) in place, consuming rng. scratch:
// mim_randaug_scratch_size(h, w, c) bytes, not aliasing img.
void mim_randaug_apply(const mim_randaug* ra, mim_rng* rng, uint8_t* img, int h, int w, int c,
                       uint8_t* scratch);

// The magnitude m' one applied op gets: the noise and clipping above.
double mim_randaug_draw_magnitude(const mim_randaug* ra, mim_rng* rng);

// Applies `op` deterministically, as timm's AugmentOp would after drawing
// magnitude m' = `magnitude` (already clipped) and, for the signed ops, the
// sign (`negate` != 0: the negative argument; ignored by unsigned ops).
// Uses ra's interpolation, fills and translate_pct. The tests call this.
void mim_randaug_apply_op(const mim_randaug* ra, int op, double magnitude, int negate,
                          uint8_t* img, int h, int w, int c, uint8_t* scratch);

// ---------------------------------------------------------------- random erasing
// timm RandomErasing(probability=prob, mode='pixel', min_area=0.02,
// max_area=1/3, min_aspect=0.3, max_aspect=1/0.3, min_count=max_count=1) on
// one normalised (C, H, W) float image, in place:
//   with probability prob, up to 10 attempts: target area T = U(0.02, 1/3) *
//   H * W, aspect a = exp(U(log 0.3, log(1/0.3))), h = round(sqrt(T a)),
//   w = round(sqrt(T / a)) (round half to even, as Python's round); the first
//   attempt with h < H and w < W erases rows [top, top+h), columns
//   [left, left+w) of every channel, top ~ U{0..H-h}, left ~ U{0..W-w}, with
//   independent N(0, 1) values; if no attempt fits, nothing is erased.
typedef struct {
    int top, left, h, w;       // the erased box
    double target_area;        // T and a of the accepted attempt (for tests)
    double aspect;
    int attempts;              // attempts drawn (1..10)
} mim_erase_box;

// Draws the box as above (without the probability draw) for an H x W image
// with the given area fractions and aspect range. Returns 1 and fills *out,
// or 0 when none of the 10 attempts fits (out->attempts = 10).
int mim_random_erase_box(mim_rng* rng, int H, int W, double min_area, double max_area,
                         double min_aspect, double max_aspect, mim_erase_box* out);

// The whole RandomErasing call with the MAE fine-tuning parameters above.
// Returns 1 when it erased a box, else 0. prob <= 0 never erases (and draws
// nothing).
int mim_random_erase(float* chw, int c, int h, int w, float prob, mim_rng* rng);
