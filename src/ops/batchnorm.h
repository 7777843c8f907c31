// batchnorm.h: BatchNorm1d without affine parameters (the linear probe's
// input norm, MAE main_linprobe.py: BatchNorm1d(D, affine=False, eps=1e-6)),
// as a forward/backward pair in the style of ops.h.
//
// Train mode normalises each column with the batch's mean and biased
// variance and moves the running statistics as torch.nn.BatchNorm1d does
// (running = (1 - momentum) running + momentum batch, the running variance
// taking the UNBIASED batch variance). Eval mode uses the running statistics.
// Not a general BatchNorm: no affine, no (N, C, L) inputs.
#pragma once

// out (N, C) = (inp - mean) * rstd per column, with the batch statistics;
// mean, rstd (C) saved for backward. running_mean, running_var (C) are
// updated in place (skipped when NULL). N >= 2 for the unbiased variance
// (N = 1 leaves running_var unchanged, where torch would give NaN).
void batchnorm1d_forward(float* out, float* mean, float* rstd,
                         float* running_mean, float* running_var,
                         const float* inp, int N, int C, float eps, float momentum);
// d/d of batchnorm1d_forward(out, mean, rstd, ..., inp): with xhat = out,
// dinp (N, C) += rstd * (dout - mean_n(dout) - xhat * mean_n(dout * xhat)).
void batchnorm1d_backward(float* dinp, const float* dout, const float* out, const float* rstd,
                          int N, int C);
// Eval mode: out (N, C) = (inp - running_mean) / sqrt(running_var + eps).
// out may alias inp.
void batchnorm1d_forward_eval(float* out, const float* inp, const float* running_mean,
                              const float* running_var, int N, int C, float eps);
