#!/usr/bin/env python3
"""ops_ref.py: PyTorch reference tensors for tests/test_ops.c.

Usage: python3 tests/ref/ops_ref.py OUT.safetensors

For every op of src/ops/ops.h it draws inputs and an upstream gradient with a
fixed seed (one generator per case, seeded from the case name, so adding a
case does not change the others), runs the op in PyTorch in float64 and
writes the fp32 inputs and the float64 results rounded to fp32: names are
`<case>.<tensor>`, e.g. `linear.inp`, `linear.out`, `linear.dinp`. Gradients
are those of the objective sum(out * dout), i.e. what the C backward gets
with dout as its upstream gradient.

The shapes below must match the ones in tests/test_ops.c (the C side checks
every shape when it reads a tensor). It is a test fixture, not a library:
it needs torch only (the safetensors package is not installed; see stio.py).
"""
import math
import os
import struct
import sys
import zlib

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # tests/testutil.h: exit 77 = skip the torch comparisons
    print("ops_ref.py: torch is not importable", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

F64 = torch.float64
OUT = {}


def gen(case):
    return torch.Generator().manual_seed(zlib.crc32(case.encode()) ^ 0x5EED)


def randn(g, *shape, scale=1.0, shift=0.0):
    """fp32 normal values (what the C test reads), returned as float64."""
    return (torch.randn(*shape, generator=g, dtype=torch.float32) * scale + shift).to(F64)


def put(case, name, t):
    t = t.detach()
    if t.is_floating_point():
        t = t.to(torch.float32)
    OUT[f"{case}.{name}"] = t.contiguous()


def leaf(x):
    return x.clone().requires_grad_(True)


# ------------------------------------------------------------------ linear
def linear(case, N, C, OC):
    g = gen(case)
    inp, w = leaf(randn(g, N, C)), leaf(randn(g, OC, C, scale=1 / math.sqrt(C)))
    b, dout = leaf(randn(g, OC)), randn(g, N, OC)
    out = inp @ w.t() + b
    (out * dout).sum().backward()
    for k, v in dict(inp=inp, weight=w, bias=b, dout=dout, out=out,
                     out_nobias=inp @ w.t(), dinp=inp.grad, dweight=w.grad,
                     dbias=b.grad).items():
        put(case, k, v)


# ------------------------------------------------------------------ layernorm
def layernorm(case, N, C, eps=1e-5):
    g = gen(case)
    inp = leaf(randn(g, N, C, scale=2.0, shift=0.5))
    w, b = leaf(randn(g, C, scale=0.5, shift=1.0)), leaf(randn(g, C))
    dout = randn(g, N, C)
    out = F.layer_norm(inp, (C,), w, b, eps)
    (out * dout).sum().backward()
    x = inp.detach()
    mean = x.mean(-1)
    rstd = 1.0 / torch.sqrt(x.var(-1, unbiased=False) + eps)
    for k, v in dict(inp=inp, weight=w, bias=b, dout=dout, out=out, mean=mean,
                     rstd=rstd, dinp=inp.grad, dweight=w.grad, dbias=b.grad).items():
        put(case, k, v)


# ------------------------------------------------------------------ gelu
def gelu(case, n):
    g = gen(case)
    inp, dout = leaf(randn(g, n, scale=2.5)), randn(g, n)
    out = F.gelu(inp)  # exact (erf) GELU, approximate='none'
    (out * dout).sum().backward()
    for k, v in dict(inp=inp, dout=dout, out=out, dinp=inp.grad).items():
        put(case, k, v)


# ------------------------------------------------------------------ softmax
def softmax(case, N, C):
    g = gen(case)
    inp, dout = leaf(randn(g, N, C, scale=3.0)), randn(g, N, C)
    out = torch.softmax(inp, -1)
    (out * dout).sum().backward()
    for k, v in dict(inp=inp, dout=dout, out=out, dinp=inp.grad).items():
        put(case, k, v)


# ------------------------------------------------------------------ attention
def attention(case, B, T, C, NH):
    g = gen(case)
    hs = C // NH
    qkv, dout = leaf(randn(g, B, T, 3 * C)), randn(g, B, T, C)
    # timm Attention: qkv(x).reshape(B, N, 3, heads, hs).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(B, T, 3, NH, hs).permute(2, 0, 3, 1, 4)
    att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hs), -1)  # (B, NH, T, T)
    out = (att @ v).transpose(1, 2).reshape(B, T, C)
    (out * dout).sum().backward()
    for k_, v_ in dict(qkv=qkv, dout=dout, out=out, att=att, dqkv=qkv.grad).items():
        put(case, k_, v_)


# ------------------------------------------------------------------ patches
def patchify(case, B, C, H, W, p):
    g = gen(case)
    h, w = H // p, W // p
    imgs = leaf(randn(g, B, C, H, W))
    dout = randn(g, B, h * w, p * p * C)
    # models_mae.py patchify, generalised to C channels and H != W
    x = imgs.reshape(B, C, h, p, w, p)
    x = torch.einsum("nchpwq->nhwpqc", x)
    out = x.reshape(B, h * w, p * p * C)
    (out * dout).sum().backward()
    for k, v in dict(imgs=imgs, dout=dout, out=out, dimgs=imgs.grad).items():
        put(case, k, v)


def im2col(case, B, C, H, W, p, D=5):
    g = gen(case)
    h, w = H // p, W // p
    imgs = leaf(randn(g, B, C, H, W))
    dout = randn(g, B, h * w, C * p * p)
    convw = randn(g, D, C, p, p)
    out = F.unfold(imgs, kernel_size=p, stride=p).transpose(1, 2)  # (B, L, C*p*p), (c, pr, pc)
    (out * dout).sum().backward()
    # the patch embedding it serves: Conv2d(C, D, p, stride=p) without bias
    conv = F.conv2d(imgs.detach(), convw, stride=p).flatten(2).transpose(1, 2)  # (B, L, D)
    for k, v in dict(imgs=imgs, dout=dout, out=out, dimgs=imgs.grad, convw=convw,
                     conv=conv).items():
        put(case, k, v)


# ------------------------------------------------------------------ masking
def masking(case, B, L, keep, ties=False):
    g = gen(case)
    if ties:  # few distinct values: the order among equal noise is by index
        noise = torch.randint(0, 4, (B, L), generator=g).to(torch.float32) / 4
    else:
        noise = torch.rand(B, L, generator=g, dtype=torch.float32)
        assert all(len(set(r.tolist())) == L for r in noise), "noise values must be distinct"
    ids_shuffle = torch.sort(noise, dim=1, stable=True).indices
    if not ties:  # MAE calls the default (unstable) argsort: same result for distinct noise
        assert torch.equal(ids_shuffle, torch.argsort(noise, dim=1))
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(B, L)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)
    put(case, "noise", noise)
    put(case, "ids_shuffle", ids_shuffle.to(torch.int32))
    put(case, "ids_restore", ids_restore.to(torch.int32))
    put(case, "mask", mask)


# ------------------------------------------------------------------ gather
def gather(case, B, Tin, Tout, C):
    g = gen(case)
    inp = leaf(randn(g, B, Tin, C))
    ids = torch.randint(0, Tin, (B, Tout), generator=g)  # repeats on purpose
    dout = randn(g, B, Tout, C)
    out = torch.gather(inp, 1, ids.unsqueeze(-1).expand(-1, -1, C))
    (out * dout).sum().backward()
    for k, v in dict(inp=inp, ids=ids.to(torch.int32), dout=dout, out=out,
                     dinp=inp.grad).items():
        put(case, k, v)


# ------------------------------------------------------------------ loss
def norm_pix(t):
    # models_mae.py forward_loss: unbiased var (torch default), eps inside the sqrt
    mean = t.mean(dim=-1, keepdim=True)
    var = t.var(dim=-1, keepdim=True)
    return (t - mean) / (var + 1.e-6) ** .5


def norm_pix_case(case, N, P):
    g = gen(case)
    inp = randn(g, N, P, scale=2.0, shift=0.5)
    inp[1] = 0.3  # constant row: var 0, the 1e-6 keeps it finite (output 0)
    # low-variance row (var ~1e-8 << 1e-6): tells eps inside the sqrt from eps added to the std
    inp[2] = (torch.randn(P, generator=g, dtype=torch.float32) * 1e-4 + 0.01).to(F64)
    put(case, "inp", inp)
    put(case, "out", norm_pix(inp.to(torch.float32).to(F64)))


def loss(case, B, L, P, use_norm_pix):
    g = gen(case)
    pred = leaf(randn(g, B, L, P))
    target = randn(g, B, L, P, scale=1.5, shift=0.3)
    mask = (torch.rand(B, L, generator=g) < 0.6).to(F64)
    mask[0, 0] = 1.0  # at least one masked patch
    dloss = torch.tensor([0.7], dtype=F64)
    t = norm_pix(target) if use_norm_pix else target
    l = ((pred - t) ** 2).mean(dim=-1)
    l = (l * mask).sum() / mask.sum()  # models_mae.py forward_loss
    (l * dloss[0]).backward()
    for k, v in dict(pred=pred, target=target, mask=mask, dloss=dloss,
                     target_norm=t, loss=l.reshape(1), dpred=pred.grad).items():
        put(case, k, v)


def cos_loss(case, B, L, P, zero_row=False):
    """MILAN / EVA: per masked patch 2 - 2 cos(pred, target), F.normalize
    (eps 1e-12) on both, mean over the masked patches."""
    g = gen(case)
    pred = leaf(randn(g, B, L, P))
    target = randn(g, B, L, P, scale=1.5, shift=0.3)
    mask = (torch.rand(B, L, generator=g) < 0.6).to(F64)
    mask[0, 0] = 1.0
    if zero_row:  # a zero target row: F.normalize's floor keeps it finite (cos 0)
        target[0, 0] = 0.0
    dloss = torch.tensor([0.7], dtype=F64)
    c = (F.normalize(pred, dim=-1) * F.normalize(target, dim=-1)).sum(-1)
    l = ((2 - 2 * c) * mask).sum() / mask.sum()
    (l * dloss[0]).backward()
    for k, v in dict(pred=pred, target=target, mask=mask, dloss=dloss,
                     loss=l.reshape(1), dpred=pred.grad).items():
        put(case, k, v)


def smooth_l1(case, B, L, P):
    """F.smooth_l1_loss (beta 1, mean) on the masked rows."""
    g = gen(case)
    pred = leaf(randn(g, B, L, P, scale=1.5))
    target = randn(g, B, L, P, scale=1.5, shift=0.3)
    mask = (torch.rand(B, L, generator=g) < 0.6).to(F64)
    mask[0, 0] = 1.0
    dloss = torch.tensor([0.7], dtype=F64)
    sel = mask.bool()
    l = F.smooth_l1_loss(pred[sel], target[sel], beta=1.0)
    (l * dloss[0]).backward()
    for k, v in dict(pred=pred, target=target, mask=mask, dloss=dloss,
                     loss=l.reshape(1), dpred=pred.grad).items():
        put(case, k, v)


def layernorm_rows_case(case, N, C):
    """Teacher-token normalisation: F.layer_norm without affine, eps 1e-6."""
    g = gen(case)
    inp = randn(g, N, C, scale=3.0, shift=1.0)
    put(case, "inp", inp)
    put(case, "out", F.layer_norm(inp, (C,), eps=1e-6))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: ops_ref.py OUT.safetensors")
    torch.use_deterministic_algorithms(True)
    # Shapes: keep in sync with tests/test_ops.c.
    linear("linear", 7, 20, 12)
    linear("linear_c1", 5, 1, 3)
    linear("linear_big", 37, 64, 48)
    layernorm("layernorm", 7, 20)
    layernorm("layernorm_c1", 3, 1)
    gelu("gelu", 64)
    softmax("softmax", 7, 20)
    softmax("softmax_c1", 4, 1)
    attention("attention", 2, 5, 12, 3)
    attention("attention_h1", 1, 3, 4, 1)
    attention("attention_big", 2, 17, 32, 4)
    patchify("patchify", 2, 3, 8, 12, 4)
    patchify("patchify_c1", 1, 1, 6, 4, 2)
    im2col("im2col", 2, 3, 8, 12, 4)
    im2col("im2col_c1", 1, 1, 6, 4, 2)
    masking("masking", 3, 10, 3)
    masking("masking_ties", 2, 12, 5, ties=True)
    gather("gather", 2, 7, 9, 5)
    gather("gather_c1", 3, 4, 2, 1)
    norm_pix_case("norm_pix", 7, 12)
    loss("loss", 2, 6, 12, False)
    loss("loss_np", 2, 6, 12, True)
    cos_loss("cos_loss", 2, 6, 12)
    cos_loss("cos_loss_zero", 2, 5, 9, zero_row=True)
    smooth_l1("smooth_l1", 2, 6, 12)
    layernorm_rows_case("layernorm_rows", 7, 20)
    # >= 65536 elements: the ops' OpenMP-parallel paths
    layernorm("layernorm_big", 300, 256)
    gelu("gelu_big", 70001)
    softmax("softmax_big", 300, 257)
    patchify("patchify_big", 2, 3, 128, 144, 16)
    im2col("im2col_big", 2, 3, 128, 144, 16)
    gather("gather_big", 4, 160, 150, 128)
    loss("loss_big_np", 4, 196, 96, True)
    cos_loss("cos_loss_big", 4, 196, 108)
    smooth_l1("smooth_l1_big", 4, 196, 108)
    meta = {"generator": "tests/ref/ops_ref.py", "torch": torch.__version__}
    try:
        import stio
        stio.save(sys.argv[1], OUT, meta)
    except ImportError:
        save(sys.argv[1], OUT, meta)


def save(path, tensors, meta):
    """Fallback safetensors writer (F32 / I32 only) for when stio.py is absent."""
    import json
    header, chunks, off = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        dt = {torch.float32: "F32", torch.int32: "I32"}[t.dtype]
        raw = t.numpy().astype(t.numpy().dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        chunks.append(raw)
        off += len(raw)
    header["__metadata__"] = meta
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb + b"".join(chunks))


if __name__ == "__main__":
    main()
