#!/usr/bin/env python3
"""eval_ref.py: PyTorch reference tensors for tests/test_eval.c.

Usage: python3 tests/ref/eval_ref.py OUT.safetensors

Cases (shapes must match tests/test_eval.c):
  bn.*    torch.nn.BatchNorm1d(C, affine=False, eps=1e-6, momentum=0.1) in
          float64: train-mode output and input gradient of sum(out * dout) on
          x1, running statistics after train steps on x1 then x2, eval-mode
          output on x3.
  lars.*  MAE's util/lars.py (copied below, unchanged maths) on a weight
          (5, 7) and a bias (5) for 4 steps with given gradients and lrs,
          weight decay 0.05; parameters after every step.
  larsz.* the same from a zero weight (trust ratio falls back to 1).
  xent.*  F.cross_entropy (mean) of logits (6, 10): loss and dlogits.
Inputs are fp32 draws from a generator seeded per case; results are computed
in float64 and rounded to fp32. Needs torch only (see stio.py).
"""
import os
import sys
import zlib

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # tests/testutil.h: exit 77 = skip the torch comparisons
    print("eval_ref.py: torch is not importable", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

F64 = torch.float64
OUT = {}


def gen(case):
    return torch.Generator().manual_seed(zlib.crc32(case.encode()) ^ 0x5EED)


def randn(g, *shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale + shift).to(F64)


def put(case, name, t):
    t = t.detach()
    if t.is_floating_point():
        t = t.to(torch.float32)
    OUT[f"{case}.{name}"] = t.contiguous()


# ------------------------------------------------------------------ batchnorm
def batchnorm(case, N, C):
    g = gen(case)
    x1 = randn(g, N, C, scale=2.0, shift=0.5).requires_grad_(True)
    x2, x3 = randn(g, N, C, scale=3.0, shift=-1.0), randn(g, 4, C)
    dout = randn(g, N, C)
    bn = torch.nn.BatchNorm1d(C, affine=False, eps=1e-6, momentum=0.1).to(F64)
    bn.train()
    out1 = bn(x1)
    (out1 * dout).sum().backward()
    put(case, "rmean1", bn.running_mean)
    put(case, "rvar1", bn.running_var)
    bn(x2)
    bn.eval()
    out3 = bn(x3)
    for k, v in dict(x1=x1, x2=x2, x3=x3, dout=dout, out1=out1, dx1=x1.grad,
                     rmean2=bn.running_mean, rvar2=bn.running_var, out3=out3).items():
        put(case, k, v)


# ------------------------------------------------------------------ LARS
class LARS(torch.optim.Optimizer):
    """MAE util/lars.py: LARS optimizer, no rate scaling or weight decay for
    parameters <= 1D."""

    def __init__(self, params, lr=0, weight_decay=0, momentum=0.9, trust_coefficient=0.001):
        defaults = dict(lr=lr, weight_decay=weight_decay, momentum=momentum,
                        trust_coefficient=trust_coefficient)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self):
        for g in self.param_groups:
            for p in g['params']:
                dp = p.grad
                if dp is None:
                    continue
                if p.ndim > 1:  # if not normalization gamma/beta or bias
                    dp = dp.add(p, alpha=g['weight_decay'])
                    param_norm = torch.norm(p)
                    update_norm = torch.norm(dp)
                    one = torch.ones_like(param_norm)
                    q = torch.where(param_norm > 0.,
                                    torch.where(update_norm > 0,
                                                (g['trust_coefficient'] * param_norm / update_norm), one),
                                    one)
                    dp = dp.mul(q)
                param_state = self.state[p]
                if 'mu' not in param_state:
                    param_state['mu'] = torch.zeros_like(p)
                mu = param_state['mu']
                mu.mul_(g['momentum']).add_(dp)
                p.add_(mu, alpha=-g['lr'])


LRS = [0.1, 0.3, 0.2, 0.05]


def lars(case, zero_weight):
    g = gen(case)
    w = randn(g, 5, 7, scale=0.5)
    if zero_weight:
        w.zero_()
    b = randn(g, 5, scale=0.1)
    put(case, "w0", w)
    put(case, "b0", b)
    w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
    opt = LARS([w, b], lr=0.0, weight_decay=0.05, momentum=0.9, trust_coefficient=0.001)
    gws, gbs, ws, bs = [], [], [], []
    for lr in LRS:
        gw, gb = randn(g, 5, 7), randn(g, 5, scale=0.3)
        w.grad, b.grad = gw.clone(), gb.clone()
        for grp in opt.param_groups:
            grp['lr'] = lr
        opt.step()
        gws.append(gw); gbs.append(gb); ws.append(w.detach().clone()); bs.append(b.detach().clone())
    put(case, "gw", torch.stack(gws))
    put(case, "gb", torch.stack(gbs))
    put(case, "w", torch.stack(ws))
    put(case, "b", torch.stack(bs))
    put(case, "lr", torch.tensor(LRS, dtype=F64))


# ------------------------------------------------------------------ cross-entropy
def xent(case, N, C):
    g = gen(case)
    logits = randn(g, N, C, scale=3.0).requires_grad_(True)
    labels = torch.randint(0, C, (N,), generator=g)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    put(case, "logits", logits)
    put(case, "labels", labels.to(torch.int32))
    put(case, "loss", loss.reshape(1))
    put(case, "dlogits", logits.grad)


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    batchnorm("bn", 7, 5)
    lars("lars", False)
    lars("larsz", True)
    xent("xent", 6, 10)
    stio.save(sys.argv[1], OUT)


if __name__ == "__main__":
    main()
