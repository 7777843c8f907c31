// augment.h: the image transforms of MAE pre-training and evaluation, from
// encoded bytes to a normalised float (C, H, W) tensor in one call.
//
// Train: RandomResizedCrop with torchvision's semantics (scale (0.2, 1.0) for
// MAE, ratio (3/4, 4/3), 10 attempts then the centre-crop fallback), then a
// horizontal flip with probability 0.5, ToTensor (/255) and Normalize.
// Eval: resize the shorter side to resize_short and centre-crop out_h x
// out_w, done as one resample of the equivalent box (not bit-identical to the
// two-step torchvision pipeline; within rounding of it).
//
// Resampling reproduces PIL's Image.resize(box) coefficient computation
// (antialiased bilinear = triangle filter, or bicubic a = -0.5, support
// widened by the downscale factor), which is what torchvision applies to PIL
// images, in float instead of PIL's 8-bit intermediate; given the same crop
// parameters the output matches torchvision to well within 1/255.
//
// With dct_scale on, JPEGs are decoded at the smallest num/8 scale that keeps
// the crop at least out_w x out_h pixels, and only the crop's rows are
// decoded; the crop box is mapped into the scaled image with fractional
// coordinates.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include "core/rng.h"
#include "data/decode.h"

enum { MIM_FILTER_BILINEAR = 0, MIM_FILTER_BICUBIC = 1 };

typedef struct {
    int out_w, out_h, channels;    // model input: (channels, out_h, out_w)
    int train;                     // 1: RandomResizedCrop + flip; 0: resize + centre crop
    float scale_min, scale_max;    // RRC area fraction, (0.2, 1.0) for MAE
    float ratio_min, ratio_max;    // RRC aspect ratio w/h, (3/4, 4/3)
    float flip_p;                  // horizontal flip probability (0.5)
    int resize_short;              // eval: shorter side before centre crop (default out/0.875)
    int filter;                    // MIM_FILTER_*
    int dct_scale;                 // 1: JPEG DCT-scaled, row-range decoding
    float mean[3], std[3];         // per channel, on the [0, 1] scale
    int64_t max_pixels;            // decompression-bomb cap
} mim_transform;

// MAE defaults: ImageNet mean/std (gray: their means), bilinear, dct_scale 1.
void mim_transform_default(mim_transform* t, int channels, int out_h, int out_w, int train);

// A crop in full-size source pixels: rows [i, i+h), columns [j, j+w).
typedef struct { int i, j, h, w; int flip; } mim_crop;

// torchvision RandomResizedCrop.get_params on an H x W image (Python's round
// half to even included), drawing from rng.
void mim_rrc_params(mim_rng* rng, int H, int W, float scale_min, float scale_max,
                    float ratio_min, float ratio_max, mim_crop* out);

// Per-thread scratch: decoder, decoded image, resample buffers.
typedef struct mim_aug_scratch mim_aug_scratch;
int mim_aug_scratch_init(mim_aug_scratch** out, int64_t max_pixels);
void mim_aug_scratch_free(mim_aug_scratch* s);

// Decode buf and transform into out (channels x out_h x out_w floats). The
// crop and flip are drawn from rng (train) or fixed (eval); *crop_out (may be
// NULL) receives the crop used, in full-size source pixels. Returns MIM_OK or
// a per-sample error from decode.h / check.h (the caller skips and counts).
int mim_transform_apply(const mim_transform* t, mim_aug_scratch* s, const uint8_t* buf, size_t n,
                        mim_rng* rng, float* out, mim_crop* crop_out);

// As mim_transform_apply but with the crop given (the parity tests use it).
// dct scaling still applies when t->dct_scale is set.
int mim_transform_apply_crop(const mim_transform* t, mim_aug_scratch* s, const uint8_t* buf, size_t n,
                             const mim_crop* crop, float* out);

// Resample the box [x0, x1) x [y0, y1) (fractional, in img pixel
// coordinates of the whole image; rows are offset by img->row0) to
// (C, out_h, out_w) floats, normalised, flipped if flip. Taps are clamped to
// columns [lo_x, hi_x) and rows [lo_y, hi_y) (the crop, as PIL's crop-then-
// resize does). Rows outside the decoded range are clamped to it.
void mim_resample_chw(float* out, const mim_image* img, double x0, double y0, double x1, double y1,
                      int lo_x, int hi_x, int lo_y, int hi_y, int out_w, int out_h, int filter, int flip,
                      const float* mean, const float* std, mim_aug_scratch* s);
