"""Independent PyTorch reference for MAE pre-training (facebookresearch/mae
models_mae.py semantics), used by the C tests and bench/torch_mae_bench.py.

Written from scratch with plain torch.nn (no timm). Parameter names match
MAE / timm so checkpoints move both ways. Generalised from MAE in two ways:
any channel count C, and non-square images (grid gh x gw). For feature
targets (HOG, teacher tokens) it also takes an external target (N, L, Pt)
(tensor "target" in IN; decoder_pred then has Pt outputs, metadata
target_dim) and a loss kind (metadata loss: mse, cos = 2 - 2 cos per patch
as MILAN/EVA, smooth-l1 = F.smooth_l1_loss on the masked rows).

It is not a training program: no data loading, schedules or augmentation.

CLI (all config comes from the safetensors __metadata__ of IN, see
config_from_meta; tensors are read/written with tests/ref/stio.py):
  mae_ref.py grads IN OUT            loss, pred, mask, latent, grad.<name>
  mae_ref.py train IN OUT            AdamW steps -> losses + final params
  mae_ref.py loss  CKPT IN OUT       loss of a C checkpoint on IN's batch
  mae_ref.py init  IN OUT --seed S   MAE-initialised parameters
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402


# ---------------------------------------------------------------------------
# fixed 2-D sin-cos position embedding (MAE util/pos_embed.py)

def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    """pos: (M,) positions -> (M, embed_dim) = [sin(pos*omega) | cos(pos*omega)],
    omega_d = 1 / 10000^(d / (embed_dim/2)), d < embed_dim/2. float64."""
    assert embed_dim % 2 == 0
    omega = np.arange(embed_dim // 2, dtype=np.float64) / (embed_dim / 2.0)
    omega = 1.0 / 10000 ** omega
    out = np.einsum("m,d->md", pos.reshape(-1).astype(np.float64), omega)
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)


def get_2d_sincos_pos_embed(embed_dim, gh, gw, cls_token=False):
    """-> (gh*gw [+1], embed_dim), rows in patch order (row-major over h, w).

    As in MAE, np.meshgrid(grid_w, grid_h) makes grid[0] the w (column)
    coordinate and grid[1] the h (row) coordinate; the FIRST half of the
    dims encodes grid[0] (w), the second half grid[1] (h). MAE names them
    emb_h / emb_w the other way round; the values are what matter.
    The cls row, when asked for, is all zeros."""
    assert embed_dim % 4 == 0, "2-D sin-cos needs embed_dim divisible by 4"
    grid_h = np.arange(gh, dtype=np.float64)
    grid_w = np.arange(gw, dtype=np.float64)
    grid = np.meshgrid(grid_w, grid_h)  # each (gh, gw); grid[0][i,j] = j
    emb_a = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])  # w
    emb_b = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])  # h
    emb = np.concatenate([emb_a, emb_b], axis=1)
    if cls_token:
        emb = np.concatenate([np.zeros([1, embed_dim]), emb], axis=0)
    return emb


# ---------------------------------------------------------------------------
# transformer block (timm Block semantics, no dropout / drop-path)

class Attention(nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        assert dim % num_heads == 0
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)  # out rows [q | k | v]
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        # x: (B, T, D) -> qkv: (3, B, H, T, hs)
        B, T, D = x.shape
        H = self.num_heads
        qkv = self.qkv(x).reshape(B, T, 3, H, D // H).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        att = (q @ k.transpose(-2, -1)) * self.scale  # (B, H, T, T)
        att = att.softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, D)
        return self.proj(y)


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()  # exact (erf) GELU, as timm's default
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """x = x + attn(norm1(x)); x = x + mlp(norm2(x)). LayerNorm eps 1e-6."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        x = x + self.mlp(self.norm2(x))
        return x


class PatchEmbed(nn.Module):
    """imgs (N, C, H, W) -> (N, L, D) by Conv2d(C, D, p, stride p); tokens in
    row-major (h, w) order. The weight (D, C, p, p) flattens as (c, pr, pc)."""

    def __init__(self, img_h, img_w, patch, in_chans, embed_dim):
        super().__init__()
        assert img_h % patch == 0 and img_w % patch == 0
        self.grid = (img_h // patch, img_w // patch)
        self.num_patches = self.grid[0] * self.grid[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


# ---------------------------------------------------------------------------
# the model

class MaskedAutoencoderViT(nn.Module):
    def __init__(self, img_h=224, img_w=224, patch=16, in_chans=3,
                 embed_dim=1024, depth=24, num_heads=16,
                 decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16,
                 mlp_ratio=4.0, norm_pix_loss=False, conv_bias_init="mae",
                 target_dim=0, loss="mse"):
        super().__init__()
        self.patch = patch
        self.in_chans = in_chans
        self.norm_pix_loss = norm_pix_loss
        self.loss_kind = loss

        # encoder
        self.patch_embed = PatchEmbed(img_h, img_w, patch, in_chans, embed_dim)
        gh, gw = self.patch_embed.grid
        L = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        # fixed sin-cos, stored in checkpoints (a Parameter, as in MAE)
        self.pos_embed = nn.Parameter(torch.zeros(1, L + 1, embed_dim),
                                      requires_grad=False)
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

        # decoder
        self.decoder_embed = nn.Linear(embed_dim, decoder_embed_dim, bias=True)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_embed_dim))
        self.decoder_pos_embed = nn.Parameter(
            torch.zeros(1, L + 1, decoder_embed_dim), requires_grad=False)
        self.decoder_blocks = nn.ModuleList([
            Block(decoder_embed_dim, decoder_num_heads, mlp_ratio)
            for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(decoder_embed_dim, eps=1e-6)
        self.decoder_pred = nn.Linear(decoder_embed_dim, target_dim or patch * patch * in_chans,
                                      bias=True)

        self.initialize_weights(conv_bias_init)

    def initialize_weights(self, conv_bias_init="mae"):
        """MAE's init. conv_bias_init "mae" leaves patch_embed.proj.bias at
        PyTorch's Conv2d default (uniform +-1/sqrt(C*p*p)), exactly as MAE
        does; "zero" zeroes it."""
        gh, gw = self.patch_embed.grid
        pe = get_2d_sincos_pos_embed(self.pos_embed.shape[-1], gh, gw, True)
        self.pos_embed.data.copy_(torch.from_numpy(pe).float().unsqueeze(0))
        dpe = get_2d_sincos_pos_embed(self.decoder_pos_embed.shape[-1], gh, gw, True)
        self.decoder_pos_embed.data.copy_(torch.from_numpy(dpe).float().unsqueeze(0))

        # patch_embed like nn.Linear: xavier on the (D, C*p*p) view
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view([w.shape[0], -1]))
        if conv_bias_init == "zero":
            nn.init.zeros_(self.patch_embed.proj.bias)

        nn.init.normal_(self.cls_token, std=.02)
        nn.init.normal_(self.mask_token, std=.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)

    # imgs: (N, C, H, W) -> x: (N, L, p*p*C), patch vector order (pr, pc, c)
    def patchify(self, imgs):
        p, C = self.patch, self.in_chans
        N, Ci, H, W = imgs.shape
        assert Ci == C and H % p == 0 and W % p == 0
        h, w = H // p, W // p
        x = imgs.reshape(N, C, h, p, w, p)
        x = torch.einsum("nchpwq->nhwpqc", x)
        return x.reshape(N, h * w, p * p * C)

    # x: (N, L, p*p*C) -> imgs: (N, C, H, W); grid (gh, gw) from patch_embed
    def unpatchify(self, x):
        p, C = self.patch, self.in_chans
        h, w = self.patch_embed.grid
        assert x.shape[1] == h * w
        x = x.reshape(x.shape[0], h, w, p, p, C)
        x = torch.einsum("nhwpqc->nchpwq", x)
        return x.reshape(x.shape[0], C, h * p, w * p)

    def random_masking(self, x, mask_ratio, noise=None):
        """x: (N, L, D), noise: (N, L) in [0, 1) -> x_masked (N, len_keep, D),
        mask (N, L) with 0 keep / 1 remove, ids_restore (N, L).
        Keeps the len_keep = int(L*(1-mask_ratio)) smallest-noise patches;
        ties broken by index (stable sort)."""
        N, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(N, L, device=x.device)
        ids_shuffle = torch.sort(noise, dim=1, stable=True).indices
        ids_restore = torch.sort(ids_shuffle, dim=1, stable=True).indices
        ids_keep = ids_shuffle[:, :len_keep]
        x_masked = torch.gather(x, 1, ids_keep.unsqueeze(-1).repeat(1, 1, D))
        mask = torch.ones([N, L], device=x.device, dtype=x.dtype)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        return x_masked, mask, ids_restore

    def forward_encoder(self, imgs, mask_ratio, noise=None):
        x = self.patch_embed(imgs)                       # (N, L, D)
        x = x + self.pos_embed[:, 1:, :]
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        cls = self.cls_token + self.pos_embed[:, :1, :]
        x = torch.cat([cls.expand(x.shape[0], -1, -1), x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.norm(x)                                 # (N, 1+len_keep, D)
        return x, mask, ids_restore

    def forward_decoder(self, x, ids_restore):
        x = self.decoder_embed(x)                        # (N, 1+len_keep, Dd)
        N, _, Dd = x.shape
        mask_tokens = self.mask_token.repeat(N, ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], mask_tokens], dim=1)        # (N, L, Dd)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, Dd))
        x = torch.cat([x[:, :1, :], x_], dim=1)                  # (N, 1+L, Dd)
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_norm(x)
        x = self.decoder_pred(x)
        return x[:, 1:, :]                               # (N, L, p*p*C)

    def forward_loss(self, imgs, pred, mask, target=None):
        """imgs (N, C, H, W), pred (N, L, Pt), mask (N, L) -> scalar:
        per-patch loss averaged over removed patches only. target (N, L, Pt):
        an external target; None: the (normalised) pixels, as MAE."""
        if target is None:
            target = self.patchify(imgs)
            if self.norm_pix_loss:
                mean = target.mean(dim=-1, keepdim=True)
                var = target.var(dim=-1, keepdim=True)  # unbiased, as MAE
                target = (target - mean) / (var + 1.e-6) ** .5
        if self.loss_kind == "cos":
            loss = 2 - 2 * (F.normalize(pred, dim=-1) * F.normalize(target, dim=-1)).sum(-1)
        elif self.loss_kind == "smooth-l1":
            sel = mask.bool()
            return F.smooth_l1_loss(pred[sel], target[sel], beta=1.0)
        else:
            loss = ((pred - target) ** 2).mean(dim=-1)  # (N, L)
        return (loss * mask).sum() / mask.sum()

    def forward(self, imgs, mask_ratio=0.75, noise=None, target=None):
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        loss = self.forward_loss(imgs, pred, mask, target)
        return loss, pred, mask


def mae_vit(model, img, patch, dec_dim, dec_depth, dec_heads, in_chans=3, **kw):
    """Factory for the bench: model in {vit_tiny, vit_small, vit_base}.
    E.g. mae_vit("vit_base", 224, 16, 512, 8, 16) is MAE's
    mae_vit_base_patch16_dec512d8b."""
    dims = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6),
            "vit_base": (768, 12, 12)}
    D, depth, heads = dims[model]
    return MaskedAutoencoderViT(img, img, patch, in_chans, D, depth, heads,
                                dec_dim, dec_depth, dec_heads, 4.0, **kw)


# ---------------------------------------------------------------------------
# CLI

_INT_KEYS = ["img_h", "img_w", "in_chans", "patch", "embed_dim", "depth",
             "num_heads", "decoder_embed_dim", "decoder_depth",
             "decoder_num_heads"]


def _flag(s):
    s = s.strip().lower()
    if s in ("1", "true", "yes"):
        return True
    if s in ("0", "false", "no", ""):
        return False
    raise ValueError(f"not a boolean: {s!r}")


def config_from_meta(meta):
    """String metadata -> constructor kwargs, mask_ratio."""
    missing = [k for k in _INT_KEYS if k not in meta]
    if missing:
        sys.exit(f"mae_ref: input metadata lacks {', '.join(missing)}")
    cfg = {k: int(meta[k]) for k in _INT_KEYS}
    cfg["mlp_ratio"] = float(meta.get("mlp_ratio", "4"))
    cfg["norm_pix_loss"] = _flag(meta.get("norm_pix_loss", "0"))
    cfg["target_dim"] = int(meta.get("target_dim", "0"))
    cfg["loss"] = meta.get("loss", "mse")
    mask_ratio = float(meta.get("mask_ratio", "0.75"))
    return cfg, mask_ratio


def param_groups_weight_decay(model, weight_decay):
    """timm's rule as used by MAE: no decay for params with ndim <= 1 or a
    name ending in ".bias" (biases, LayerNorm weights); everything else is
    decayed, including cls_token and mask_token (shape (1,1,D), ndim 3).
    Frozen params (pos_embed, decoder_pos_embed) are left out entirely."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or name.endswith(".bias"):
            no_decay.append(p)
        else:
            decay.append(p)
    return [{"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay}]


def _load_params(model, tensors, src):
    """Copies every model tensor (state_dict names) from `tensors`; a name may
    also appear as "model.<name>". Extra tensors are ignored."""
    sd = {}
    for name, ref in model.state_dict().items():
        t = tensors.get(name, tensors.get("model." + name))
        if t is None:
            sys.exit(f"mae_ref: {src} lacks tensor {name}")
        if tuple(t.shape) != tuple(ref.shape):
            sys.exit(f"mae_ref: {src}: {name} has shape {list(t.shape)}, "
                     f"expected {list(ref.shape)}")
        sd[name] = t.to(ref.dtype)
    model.load_state_dict(sd, strict=True)


def _batch(tensors, model, src, dtype, steps=None):
    imgs = tensors.get("imgs")
    noise = tensors.get("noise")
    if imgs is None or noise is None:
        sys.exit(f"mae_ref: {src} needs tensors imgs and noise")
    N = imgs.shape[0]
    L = model.patch_embed.num_patches
    want = (N, L) if steps is None else (steps, N, L)
    if tuple(noise.shape) != want:
        sys.exit(f"mae_ref: {src}: noise has shape {list(noise.shape)}, "
                 f"expected {list(want)}")
    return imgs.to(dtype), noise.to(dtype)


def _build(meta, dtype, **kw):
    cfg, mask_ratio = config_from_meta(meta)
    return MaskedAutoencoderViT(**cfg, **kw).to(dtype), mask_ratio


def _f32(t):
    return t.detach().to(torch.float32).contiguous()


def cmd_grads(a, dtype):
    tensors, meta = stio.load(a.IN)
    model, mask_ratio = _build(meta, dtype)
    _load_params(model, tensors, a.IN)
    imgs, noise = _batch(tensors, model, a.IN, dtype)
    latent, mask, ids_restore = model.forward_encoder(imgs, mask_ratio, noise)
    latent.retain_grad()
    pred = model.forward_decoder(latent, ids_restore)
    target = tensors.get("target")
    loss = model.forward_loss(imgs, pred, mask, None if target is None else target.to(dtype))
    loss.backward()
    out = {"loss": _f32(loss).reshape(1), "pred": _f32(pred), "mask": _f32(mask),
           "latent": _f32(latent), "ids_restore": ids_restore.to(torch.int64)}
    for name, p in model.named_parameters():
        if p.requires_grad:
            out["grad." + name] = _f32(p.grad)
    stio.save(a.OUT, out, meta)


def cmd_train(a, dtype):
    tensors, meta = stio.load(a.IN)
    model, mask_ratio = _build(meta, dtype)
    _load_params(model, tensors, a.IN)
    steps = int(meta.get("steps", "1"))
    imgs, noise = _batch(tensors, model, a.IN, dtype, steps=steps)
    opt = torch.optim.AdamW(
        param_groups_weight_decay(model, float(meta.get("weight_decay", "0.05"))),
        lr=float(meta.get("lr", "1e-4")),
        betas=(float(meta.get("beta1", "0.9")), float(meta.get("beta2", "0.95"))),
        eps=float(meta.get("eps", "1e-8")))
    losses = torch.zeros(steps, dtype=torch.float32)
    for s in range(steps):
        opt.zero_grad(set_to_none=True)
        loss, _, _ = model(imgs, mask_ratio, noise[s])
        loss.backward()
        losses[s] = loss.item()  # loss before this step's update
        opt.step()
    out = {"losses": losses}
    out.update({name: _f32(t) for name, t in model.state_dict().items()})
    stio.save(a.OUT, out, meta)


def cmd_loss(a, dtype):
    ck, ck_meta = stio.load(a.CKPT)
    tensors, meta = stio.load(a.IN)
    merged = dict(ck_meta)
    merged.update(meta)  # IN's config wins over the checkpoint's
    model, mask_ratio = _build(merged, dtype)
    _load_params(model, ck, a.CKPT)
    imgs, noise = _batch(tensors, model, a.IN, dtype)
    with torch.no_grad():
        loss, pred, mask = model(imgs, mask_ratio, noise)
    stio.save(a.OUT, {"loss": _f32(loss).reshape(1), "pred": _f32(pred),
                      "mask": _f32(mask)}, merged)


def cmd_init(a, dtype):
    _, meta = stio.load(a.IN)
    torch.manual_seed(a.seed)
    model, _ = _build(meta, dtype, conv_bias_init=a.conv_bias)
    stio.save(a.OUT, {n: _f32(t) for n, t in model.state_dict().items()}, meta)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: deterministic, tiny models)")
    ap.add_argument("--double", action="store_true",
                    help="compute in float64 (outputs are still written F32)")
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("grads", help="loss, pred, mask, latent and grads")
    p.add_argument("IN"); p.add_argument("OUT")
    p = sub.add_parser("train", help="AdamW steps; losses and final params")
    p.add_argument("IN"); p.add_argument("OUT")
    p = sub.add_parser("loss", help="loss of checkpoint CKPT on IN's batch")
    p.add_argument("CKPT"); p.add_argument("IN"); p.add_argument("OUT")
    p = sub.add_parser("init", help="MAE-initialised parameters")
    p.add_argument("IN"); p.add_argument("OUT")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conv-bias", choices=["mae", "zero"], default="mae",
                   help="patch_embed.proj.bias: Conv2d default (MAE) or zeros")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    dtype = torch.float64 if a.double else torch.float32
    {"grads": cmd_grads, "train": cmd_train, "loss": cmd_loss,
     "init": cmd_init}[a.mode](a, dtype)


if __name__ == "__main__":
    main()
