// mixup.h: batch-level label mixing for supervised fine-tuning, as timm's
// Mixup (timm/data/mixup.py, mode 'batch') and SoftTargetCrossEntropy
// (timm/loss/cross_entropy.py), with the MAE fine-tuning settings as
// defaults: mixup_alpha 0.8, cutmix_alpha 1.0, prob 1.0, switch_prob 0.5,
// label_smoothing 0.1, correct_lam True. Semantics follow timm 0.9.x; the
// parts used here are unchanged since timm 0.3.2 (the version MAE pins).
// Per-sample augmentations (RandAugment, random erasing) are in
// data/randaug.h; this file does not allocate.
//
// One batch, x (B, C, H, W) fp32 and integer labels y (B):
//   with probability prob: use cutmix with probability switch_prob (when
//   both alphas > 0), lam ~ Beta(alpha, alpha) of the chosen kind; else
//   lam = 1 (no mixing).
//   mixup:  x = x * lam + x.flip(0) * (1 - lam)   (fp32, lam rounded to fp32
//           as PyTorch does for a Python scalar)
//   cutmix: a box of size int(H sqrt(1 - lam)) x int(W sqrt(1 - lam)) around
//           a uniform centre, clipped to the image, is pasted from
//           x.flip(0); lam becomes 1 - box area / (H W) (correct_lam).
//   targets (B, K) = smooth(y) * lam + smooth(y.flip(0)) * (1 - lam), where
//           smooth() is one-hot with off = smoothing / K, on = 1 - smoothing + off.
// x.flip(0) pairs sample b with sample B-1-b; timm asserts B is even, here
// an odd B is allowed (its middle sample is mixed with itself).
//
// Beta draws use two Gamma draws (Marsaglia-Tsang); the random stream is
// mimscale's own (core/rng.h), so only the distribution matches numpy.
//
// Usage, per step:
//   mim_mixup mx; mim_mixup_default(&mx, K);                 // once
//   double lam = mim_mixup_batch(&mx, &rng, x, targets, y, B, C, H, W);
//   ... forward -> logits (B, K) ...
//   float loss = mim_soft_ce_forward(logits, targets, probs, B, K);
//   mim_soft_ce_backward(dlogits, probs, targets, 1.0f, B, K);
#pragma once
#include <stdint.h>
#include "core/rng.h"

typedef struct {
    // doubles, as timm's Python floats: off = smoothing / K must round to
    // the same fp32 value as PyTorch's
    double mixup_alpha;      // Beta(alpha, alpha) for mixup; 0 disables (0.8)
    double cutmix_alpha;     // Beta(alpha, alpha) for cutmix; 0 disables (1.0);
                             // both 0: batches are never mixed (timm asserts)
    double prob;             // probability that a batch is mixed at all (1.0)
    double switch_prob;      // P(cutmix) when both are enabled (0.5)
    double label_smoothing;  // (0.1)
    int correct_lam;         // 1: lam from the clipped cutmix box area
    int num_classes;         // K
} mim_mixup;

// What one batch got: mixup, cutmix or nothing (lam == 1, cutmix == 0).
typedef struct {
    double lam;              // weight of x itself; 1 - lam goes to x.flip(0)
    int cutmix;              // 1: box paste; 0: blend (no-op when lam == 1)
    int yl, yh, xl, xh;      // cutmix box: rows [yl, yh), columns [xl, xh)
} mim_mix_params;

// The MAE fine-tuning settings above for K classes.
void mim_mixup_default(mim_mixup* m, int num_classes);

// Gamma(shape, 1) for shape > 0 (Marsaglia-Tsang; shape < 1 via
// Gamma(shape + 1) * U^(1/shape)), and Beta(a, b) = X / (X + Y).
double mim_gamma_sample(mim_rng* rng, double shape);
double mim_beta_sample(mim_rng* rng, double a, double b);

// timm rand_bbox + cutmix_bbox_and_lam for a given lam and box centre
// (cy, cx): cut = int(H sqrt(1 - lam)) x int(W sqrt(1 - lam)); rows
// clip(cy -+ cut_h // 2, 0, H), columns likewise; with correct_lam,
// p->lam = 1 - area / (H W), else p->lam = lam. Deterministic (tests).
void mim_cutmix_box_at(mim_mix_params* p, double lam, int cy, int cx, int H, int W, int correct_lam);

// Draws this batch's parameters (timm Mixup._params_per_batch, then the
// cutmix box with a uniform centre: np.random.randint(0, H), (0, W)).
void mim_mixup_draw(mim_mix_params* p, const mim_mixup* m, mim_rng* rng, int H, int W);

// Mixes x (B, C, H, W) in place as p says (timm Mixup._mix_batch after the
// draw). Bit-identical to PyTorch's x.mul_(lam).add_(x.flip(0).mul_(1 - lam))
// and x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh].
void mim_mixup_apply(float* x, const mim_mix_params* p, int B, int C, int H, int W);

// targets (B, K) = timm mixup_target(y, K, lam, smoothing), in fp32 exactly
// as PyTorch computes it. labels in [0, K) (checked).
void mim_mixup_targets(float* targets, const int32_t* labels, double lam, double smoothing, int B, int K);

// Data parallel: the batch's partner samples live on another rank. xp (B, C,
// H, W) and yp (B) are the partner rank's batch and labels before mixing
// (x.flip(0) of the global batch pairs sample b here with sample B-1-b
// there); x and targets get exactly what the single-process batch gives
// its samples. With xp == x and yp == labels these are mim_mixup_apply and
// mim_mixup_targets.
void mim_mixup_apply_pair(float* x, const float* xp, const mim_mix_params* p, int B, int C, int H, int W);
void mim_mixup_targets_pair(float* targets, const int32_t* labels, const int32_t* yp, double lam, double smoothing,
                            int B, int K);

// Draw + apply + targets for one batch; returns the lam used (corrected for
// cutmix). targets (B, m->num_classes).
double mim_mixup_batch(const mim_mixup* m, mim_rng* rng, float* x, float* targets, const int32_t* labels,
                       int B, int C, int H, int W);

// ---------------------------------------------------------------- soft-target cross-entropy
// loss = mean_b sum_k -targets[b,k] * log_softmax(logits[b])_k (timm
// SoftTargetCrossEntropy). logits, targets (B, K); probs (B, K) receives
// softmax(logits) for the backward (may be NULL when no backward follows).
// Accumulates in double; returns the loss.
float mim_soft_ce_forward(const float* logits, const float* targets, float* probs, int B, int K);
// d/d logits of the forward above, scaled by dloss: dlogits (B, K) +=
// dloss / B * (probs * sum_k targets - targets) (the sum is 1 for proper
// targets; kept so that any target rows differentiate correctly).
void mim_soft_ce_backward(float* dlogits, const float* probs, const float* targets, float dloss, int B, int K);
