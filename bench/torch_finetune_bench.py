"""PyTorch side of the fine-tuning throughput benchmark (bench/bench_finetune.c).

A timm-style ViT classifier step, as MAE's main_finetune.py runs it: the
encoder on every token with stochastic depth (drop path, linspace to 0.1),
global average pool + fc_norm, a linear head, timm's Mixup (mixup 0.8 /
cutmix 1.0, switch 0.5, label smoothing 0.1, x.flip(0) pairs),
SoftTargetCrossEntropy, AdamW with layer-wise lr decay 0.75 and no decay
on biases, norms, pos_embed and cls_token. Random images and labels;
RandAugment and erasing (data path) are left out on both sides. Blocks,
attention and the patch embedding are those of tests/ref/mae_ref.py.
Prints one JSON line; it measures throughput only.

  /usr/bin/python3 bench/torch_finetune_bench.py --model vit_tiny --img 32 \
      --patch 4 --batch 128 --steps 5 --warmup 2 --threads 2 --precision bf16
"""
import argparse
import importlib.util
import json
import math
import os

import numpy as np
import torch
import torch.nn as nn

_REF = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                    "..", "tests", "ref", "mae_ref.py")
PRESETS = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12)}


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load_ref():
    return _load("mae_ref", _REF)


def _load_mae_bench():   # the flags and the timing loop both benchmarks share
    return _load("torch_mae_bench", os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_mae_bench.py"))


def drop_path(x, p, training):
    """timm's drop_path: per sample, scaled by 1 / keep."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Block(nn.Module):
    def __init__(self, ref, dim, heads, dp):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = ref.Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = ref.Mlp(dim, 4 * dim)
        self.dp = dp

    def forward(self, x):
        x = x + drop_path(self.attn(self.norm1(x)), self.dp, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.dp, self.training)


class ViT(nn.Module):
    def __init__(self, ref, model, img, patch, classes, drop):
        super().__init__()
        D, depth, heads = PRESETS[model]
        self.patch_embed = ref.PatchEmbed(img, img, patch, 3, D)
        L = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, D))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + L, D))
        rates = torch.linspace(0, drop, depth).tolist()
        self.blocks = nn.ModuleList([Block(ref, D, heads, r) for r in rates])
        self.fc_norm = nn.LayerNorm(D, eps=1e-6)
        self.head = nn.Linear(D, classes)
        nn.init.trunc_normal_(self.head.weight, std=2e-5)
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for b in self.blocks:
            x = b(x)
        return self.head(self.fc_norm(x[:, 1:].mean(dim=1)))


def param_groups_lrd(model, weight_decay, layer_decay):
    """MAE util/lr_decay.py: layer id 0 for embeddings, i + 1 for block i."""
    depth = len(model.blocks)
    groups = {}
    for n, p in model.named_parameters():
        if n.startswith(("cls_token", "pos_embed", "patch_embed")):
            lid = 0
        elif n.startswith("blocks."):
            lid = int(n.split(".")[1]) + 1
        else:
            lid = depth + 1
        no_wd = p.ndim == 1 or n in ("pos_embed", "cls_token")
        key = (lid, no_wd)
        if key not in groups:
            groups[key] = {"params": [], "weight_decay": 0.0 if no_wd else weight_decay,
                           "lr_scale": layer_decay ** (depth + 1 - lid)}
        groups[key]["params"].append(p)
    return list(groups.values())


def mixup(x, y, classes, rng, smoothing=0.1):
    """timm Mixup (batch mode): mixup alpha 0.8 or cutmix alpha 1.0 (switch
    0.5), pairs x.flip(0), soft targets with label smoothing."""
    off = smoothing / classes
    onehot = torch.full((y.shape[0], classes), off).scatter_(1, y[:, None], 1.0 - smoothing + off)
    if rng.random() < 0.5:
        lam = float(rng.beta(1.0, 1.0))
        H, W = x.shape[2:]
        rh, rw = int(H * math.sqrt(1 - lam)), int(W * math.sqrt(1 - lam))
        cy, cx = rng.integers(H), rng.integers(W)
        y0, y1 = max(cy - rh // 2, 0), min(cy + rh // 2, H)
        x0, x1 = max(cx - rw // 2, 0), min(cx + rw // 2, W)
        x[:, :, y0:y1, x0:x1] = x.flip(0)[:, :, y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(H * W)
    else:
        lam = float(rng.beta(0.8, 0.8))
        x = x.mul(lam).add_(x.flip(0).mul(1.0 - lam))
    return x, onehot * lam + onehot.flip(0) * (1.0 - lam)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mb = _load_mae_bench()
    mb.add_common_args(ap, 128)
    ap.add_argument("--classes", type=int, default=10)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    model = ViT(_load_ref(), a.model, a.img, a.patch, a.classes, 0.1).train()
    groups = param_groups_lrd(model, 0.05, 0.75)
    for g in groups:   # MAE's adjust_learning_rate: lr x lr_scale per group
        g["lr"] = 1e-4 * g.pop("lr_scale")
    opt = torch.optim.AdamW(groups, lr=1e-4, betas=(0.9, 0.999))
    base = torch.randn(a.batch, 3, a.img, a.img)
    labels = torch.randint(0, a.classes, (a.batch,))

    def step():
        x, t = mixup(base.clone(), labels, a.classes, rng)
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16"):
            logits = model(x)
        loss = torch.sum(-t * torch.log_softmax(logits.float(), dim=-1), dim=-1).mean()
        loss.backward()
        opt.step()
        return loss.item()

    dt, loss, rss_mb = mb.time_steps(step, a.warmup, a.steps)
    print(json.dumps({
        "impl": "pytorch", "task": "finetune", "model": a.model, "precision": a.precision,
        "batch": a.batch, "img_per_s": round(a.batch * a.steps / dt, 2),
        "peak_rss_mb": round(rss_mb, 1), "img": a.img, "patch": a.patch,
        "threads": a.threads, "steps": a.steps, "s_per_step": round(dt / a.steps, 4),
        "final_loss": round(loss, 5), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
