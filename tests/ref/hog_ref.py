#!/usr/bin/env python3
"""hog_ref.py: PyTorch reference tensors for the HOG targets of
tests/test_targets.c (src/model/hog.h).

Usage: python3 tests/ref/hog_ref.py OUT.safetensors

An independent implementation of MaskFeat's HOG as mmpretrain's HOGGenerator
defines it (written from its documented semantics, not copied): per-channel
3x3 gradient filters [[1,0,-1],[2,0,-2],[1,0,-1]] and its transpose by
conv2d on reflect-padded images, magnitude and orientation atan2(gx, gy),
nbins bins over [0, pi) (opposite directions folded: floor(phase) mod
nbins), magnitudes weighted by a Gaussian window (side `window`, std
window // 2, normalised to sum 1, tiled over the image), histograms summed
over cell x cell pixels, F.normalize over the bins, then rearranged per
patch to (channel, bin, cell row, cell col). mmpretrain hard-codes 14
patches per side in that last step; here the patch size is a parameter.

It runs in float64 (what the C test compares against, tolerance 1e-4) and,
for MaskFeat's own geometry (224x224, patch 16, cell 8, window 16), also in
float32 in mmpretrain's exact order of operations with its 14-per-side
reshape, and asserts the two agree: the generalisation is the same function
where mmpretrain is defined.

Each case draws fp32 images with a fixed generator seeded from its name; one
image region is made constant (zero gradients: the 1e-12 floor of
F.normalize). Names: `<case>.imgs`, `<case>.out`.
"""
import math
import os
import sys
import zlib

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # tests/testutil.h: exit 77 = skip the torch comparisons
    print("hog_ref.py: torch is not importable", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = {}


def gaussian_2d(win, dtype):
    """(win, win) Gaussian, std win // 2, normalised to sum 1."""
    n = torch.arange(win, dtype=dtype)
    n = (n - n.mean()) / (win // 2)
    g = torch.exp(-0.5 * n ** 2)
    k = g[:, None] * g[None, :]
    return k / k.sum()


def hog(imgs, patch, cell, nbins=9, window=16):
    """imgs (B, C, H, W) -> (B, L, C * nbins * (patch // cell) ** 2)."""
    B, C, H, W = imgs.shape
    dt = imgs.dtype
    kx = torch.tensor([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=dt)
    wx = kx.view(1, 1, 3, 3).repeat(C, 1, 1, 1)
    wy = kx.t().contiguous().view(1, 1, 3, 3).repeat(C, 1, 1, 1)
    x = F.pad(imgs, (1, 1, 1, 1), mode="reflect")
    gx = F.conv2d(x, wx, groups=C)
    gy = F.conv2d(x, wy, groups=C)
    mag = torch.sqrt(gx ** 2 + gy ** 2)
    bins = torch.remainder(torch.floor(torch.atan2(gx, gy) / math.pi * nbins), nbins).long()
    if window:
        mag = mag * gaussian_2d(window, dt).repeat(H // window, W // window)
    hist = torch.zeros(B, C, nbins, H, W, dtype=dt)
    hist.scatter_add_(2, bins.unsqueeze(2), mag.unsqueeze(2))
    hc, wc = H // cell, W // cell
    hist = hist.reshape(B, C, nbins, hc, cell, wc, cell).sum(dim=(4, 6))   # (B, C, nbins, hc, wc)
    hist = F.normalize(hist, p=2, dim=2)
    u = patch // cell
    gh, gw = H // patch, W // patch
    t = hist.reshape(B, C, nbins, gh, u, gw, u)
    t = t.permute(0, 3, 5, 1, 2, 4, 6)                       # (B, gh, gw, C, nbins, u, u)
    return t.reshape(B, gh * gw, C * nbins * u * u)


def hog_mmpretrain_f32(imgs):
    """float32, mmpretrain's op order and its 224/16-only reshape (14 per side)."""
    B, C, H, W = imgs.shape
    nbins, pool = 9, 8
    kx = torch.FloatTensor([[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    wx = kx.view(1, 1, 3, 3).repeat(C, 1, 1, 1).contiguous()
    wy = wx.transpose(2, 3).contiguous()
    x = F.pad(imgs, pad=(1, 1, 1, 1), mode="reflect")
    gx = F.conv2d(x, wx, bias=None, stride=1, padding=0, groups=C)
    gy = F.conv2d(x, wy, bias=None, stride=1, padding=0, groups=C)
    norm = torch.stack([gx, gy], dim=-1).norm(dim=-1)
    phase = torch.atan2(gx, gy) / math.pi * nbins
    b, c, h, w = norm.shape
    out = torch.zeros((b, c, nbins, h, w), dtype=torch.float)
    phase = phase.view(b, c, 1, h, w)
    norm = norm.view(b, c, 1, h, w)
    gk = gaussian_2d(16, torch.float32)
    norm = norm * gk.repeat([h // 16, h // 16])
    out.scatter_add_(2, phase.floor().long() % nbins, norm)
    out = out.unfold(3, pool, pool).unfold(4, pool, pool).sum(dim=[-1, -2])
    out = F.normalize(out, p=2, dim=2)
    f = out.flatten(1, 2)
    us = f.shape[-1] // 14
    f = f.permute(0, 2, 3, 1).unfold(1, us, us).unfold(2, us, us)
    return f.flatten(1, 2).flatten(2)


def case(name, B, C, H, W, patch, cell, window, nbins=9, check_mmpretrain=False):
    g = torch.Generator().manual_seed(zlib.crc32(name.encode()) ^ 0x5EED)
    imgs = torch.randn(B, C, H, W, generator=g, dtype=torch.float32)
    imgs[0, 0, : min(H, cell + 2), : min(W, cell + 2)] = 0.25   # a flat cell: zero histogram
    out = hog(imgs.double(), patch, cell, nbins, window)
    if check_mmpretrain:
        ref32 = hog_mmpretrain_f32(imgs)
        err = (ref32.double() - out).abs().max().item()
        assert ref32.shape == out.shape and err < 1e-4, f"{name}: mmpretrain-order fp32 differs by {err}"
        print(f"hog_ref.py: {name}: fp32 mmpretrain order vs float64 generalised: max abs diff {err:.2e}",
              file=sys.stderr)
    OUT[f"{name}.imgs"] = imgs.contiguous()
    OUT[f"{name}.out"] = out.to(torch.float32).contiguous()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: hog_ref.py OUT.safetensors")
    torch.use_deterministic_algorithms(True)
    # Shapes: keep in sync with tests/test_targets.c.
    case("hog_maskfeat", 1, 3, 224, 224, 16, 8, 16, check_mmpretrain=True)   # ViT-B/16: 196 x 108
    case("hog_small", 2, 3, 32, 32, 16, 8, 16)
    case("hog_gray_rect", 1, 1, 12, 20, 4, 2, 4)
    case("hog_nowin", 2, 2, 8, 16, 8, 4, 0, nbins=6)
    case("hog_cell_eq_patch", 2, 1, 28, 28, 7, 7, 7)                       # Fashion-MNIST, patch 7
    stio.save(sys.argv[1], OUT, {"generator": "tests/ref/hog_ref.py", "torch": torch.__version__})


if __name__ == "__main__":
    main()
