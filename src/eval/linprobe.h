// linprobe.h: the MAE linear probe (main_linprobe.py) on cached features:
// head = BatchNorm1d(D, affine=False, eps=1e-6) -> Linear(D, classes)
// (weight N(0, 0.01), bias 0), cross-entropy, LARS (momentum 0.9, trust
// 0.001, weight decay default 0; no decay or trust scaling on the bias),
// lr = blr x batch / 256 with per-step linear warm-up and half-cycle cosine
// (mim_lr_at), drop_last batches of a seeded per-epoch shuffle.
// Evaluation: BatchNorm with its running statistics, top-1 / top-5 of the
// logits over every eval sample, after each epoch.
//
// This is the cached-feature protocol: features are extracted once with the
// eval transform and the head trains on them without augmentation (MAE trains
// its probe with RandomResizedCrop + flip through the frozen encoder each
// step). Numbers are close but not identical to MAE's; use it for studies
// with many runs, and say which protocol a number comes from.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include "eval/features.h"

// ---------------------------------------------------------------- cross-entropy
// loss = mean_n -log softmax(logits[n])[labels[n]]; probs (N, C) saved for
// backward. logits (N, C), labels (N) in [0, C). Returns the loss.
float mim_xent_forward(float* probs, const float* logits, const int32_t* labels, int N, int C);
// d/d of mim_xent_forward: dlogits (N, C) += dloss * (probs - onehot(labels)) / N.
void mim_xent_backward(float* dlogits, const float* probs, const int32_t* labels, float dloss, int N, int C);

// ---------------------------------------------------------------- probe
typedef struct {
    int epochs;            // MAE: 90
    int batch;             // head batch (MAE: 16384 over 32 GPUs); clamped to the train size
    float blr;             // lr = blr x batch / 256 unless lr > 0 (MAE: 0.1 at batch 16384; default 10 for batch 256)
    float lr, min_lr;
    float warmup_epochs;   // MAE: 10 of 90
    float weight_decay;    // MAE: 0
    float momentum, trust; // 0.9, 0.001
    uint64_t seed;         // head init and shuffles
    FILE* log;             // one JSON line per epoch (NULL: none)
    int quiet;             // no progress line on stderr
} mim_linprobe_args;

// Fills MAE-like defaults for small data sets (see cmd_eval.c --help).
void mim_linprobe_args_default(mim_linprobe_args* a);

typedef struct { int epoch; double train_loss, lr, eval_loss, top1, top5; } mim_linprobe_epoch;

typedef struct {
    double top1, top5, eval_loss;   // after the last epoch
    double best_top1;               // best over epochs (reported, not selected on)
    int64_t n_train, n_eval;
    int batch, steps;
    float lr;                       // the peak lr used
    int epochs;
    mim_linprobe_epoch* history;    // [epochs], owned: mim_linprobe_result_free
} mim_linprobe_result;

// Trains the head on train and evaluates on eval after each epoch. Feature
// widths must agree; classes = max(train, eval num_classes).
// 0 or MIM_EARG / MIM_ENOMEM with mim_err_msg().
int mim_linprobe_train(mim_linprobe_result* res, const mim_features* train, const mim_features* eval,
                       const mim_linprobe_args* a);
void mim_linprobe_result_free(mim_linprobe_result* r);
