// hog.h: HOG reconstruction targets as MaskFeat defines them (mmpretrain's
// HOGGenerator, itself from SlowFast), generalised to any patch size that the
// cell size divides. Forward only: targets carry no gradient.
//
// Per image and channel (channels are not mixed):
//  1. gradients by 3x3 cross-correlation with reflect padding 1:
//       gx with [[1,0,-1],[2,0,-2],[1,0,-1]], gy with its transpose;
//  2. magnitude sqrt(gx^2 + gy^2), orientation atan2(gx, gy) (that argument
//     order, as mmpretrain), mapped to bin floor(atan2 / pi * nbins) mod
//     nbins: opposite directions share a bin (unsigned orientation, [0, pi));
//  3. magnitudes weighted by a 2-D Gaussian of side `window` and std
//     window / 2 (integer division), normalised to sum 1, tiled over the
//     image (MaskFeat: window 16 = the patch, so each patch gets the same
//     centred weighting);
//  4. a histogram of nbins per cell of cell x cell pixels (sum of weighted
//     magnitudes), L2-normalised over the bins: h / max(|h|, 1e-12)
//     (F.normalize);
//  5. per patch p x p: the (p/cell)^2 cells' histograms of every channel,
//     flattened in (channel, bin, cell row, cell col) order, as mmpretrain's
//     _reshape (which hard-codes 14 patches per side; here p / cell cells).
// So a patch's target has C * nbins * (p/cell)^2 values (MaskFeat ViT-B/16:
// 3 * 9 * 4 = 108).
//
// Which pixels: mmpretrain hands HOGGenerator the data preprocessor's
// output, i.e. mean/std-normalised images, and so does mimscale (the imgs
// the student sees). The choice barely matters: a per-channel affine map
// with positive scale leaves the orientations unchanged and scales the
// magnitudes, which step 4's normalisation removes (up to its 1e-12 floor).
//
//   mim_hog_params hp = {.cell = 8, .nbins = 9, .window = 16};
//   if (mim_hog_check(&hp, C, H, W, p)) die(mim_err_msg());
//   float* t = malloc(sizeof(float) * B * L * mim_hog_dim(&hp, C, p));
//   mim_hog_forward(t, imgs, B, C, H, W, p, &hp);
#pragma once
#include <stddef.h>

typedef struct {
    int cell;      // histogram cell side in pixels (MaskFeat: 8); divides the patch
    int nbins;     // orientation bins over [0, pi) (9)
    int window;    // Gaussian window side, tiled; 0: unweighted (MaskFeat: 16 = patch)
} mim_hog_params;

// Values per patch: C * nbins * (p / cell)^2.
int mim_hog_dim(const mim_hog_params* hp, int C, int p);
// Checks the geometry: cell >= 1 dividing p (which divides H and W), nbins
// >= 1, window 0 or >= 2 dividing H and W, H, W >= 2 (reflect padding).
// 0, or MIM_EARG with a message naming what does not fit.
int mim_hog_check(const mim_hog_params* hp, int C, int H, int W, int p);
// out (B, L, C * nbins * (p/cell)^2), L = (H/p) * (W/p) patches in row-major
// grid order (as patchify); imgs (B, C, H, W). The geometry must pass
// mim_hog_check (CHECKed). Allocates nothing; threads over (image, channel,
// cell row); every output value is written by one thread, so the result does
// not depend on the thread count.
void mim_hog_forward(float* out, const float* imgs, int B, int C, int H, int W, int p, const mim_hog_params* hp);
