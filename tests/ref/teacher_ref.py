#!/usr/bin/env python3
"""teacher_ref.py: small random frozen-teacher ViTs and their features, for
tests/test_teacher.c (src/model/teacher.h).

Usage: python3 tests/ref/teacher_ref.py OUT.safetensors

Writes three tiny randomly initialised teachers, one per naming scheme that
mim_teacher_load recognises, each as its own safetensors file next to OUT,
plus a copy of each with its tower prefix stripped:

  OUT.timm.safetensors      timm / MAE names (patch_embed.proj, blocks.N...),
                            plus decoder_* / mask_token tensors to be ignored
  OUT.clip.safetensors      OpenAI CLIP names under visual., plus a few text
                            tower tensors (ignored by the loader)
  OUT.clipbare.safetensors  the same visual tower without the visual. prefix
  OUT.hf.safetensors        Hugging Face CLIPModel names (vision_model.*,
                            text_model.*, position_ids buffer)
  OUT.hfbare.safetensors    the vision tower without the vision_model. prefix

and OUT itself with, per case K in (timm, clip, hf): K.imgs, the student's
images (B, C, H, W) normalised with the student's mean/std, and K.mid /
K.last, the expected patch-token features (B, gh*gw, D) of a middle block
(raw block output) and of the last block (after the final norm).

Each forward is written by hand from the architecture's own definition
(timm VisionTransformer; OpenAI CLIP VisionTransformer with
nn.MultiheadAttention; Hugging Face CLIPVisionTransformer), in float64; none
of timm, open_clip or transformers is imported. The teacher runs at the
student's patch grid (gh, gw): its position embeddings are resized from the
native grid with F.interpolate(bicubic, align_corners=False) on the grid part
(cls row kept), as MAE's interpolate_pos_embed; the student's images are
de-normalised, re-normalised with the teacher's mean/std (a one-channel
student is replicated to three channels) and resized with
F.interpolate(bilinear, align_corners=False, antialias=False) to
(gh * patch, gw * patch) when their size differs.

The case geometry below must match tests/test_teacher.c.
"""
import math
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:  # tests/testutil.h: exit 77 = skip the torch comparisons
    print("teacher_ref.py: torch is not importable", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
GRAY_MEAN = (sum(IMAGENET_MEAN) / 3,)
GRAY_STD = (sum(IMAGENET_STD) / 3,)

DT = torch.float64


# ---------------------------------------------------------------------------
# shared pieces (each forward below uses them the way its model does)

def rnd(g, *shape, std=1.0, mean=0.0):
    return (mean + std * torch.randn(*shape, generator=g, dtype=DT)).float()


def linear_w(g, out_f, in_f):
    return rnd(g, out_f, in_f, std=1.0 / math.sqrt(in_f))


def student_to_teacher(imgs, s_mean, s_std, t_mean, t_std, t_chans, size):
    """(B, Cs, H, W) student-normalised -> (B, Ct, Ht, Wt) teacher-normalised."""
    x = imgs.to(DT)
    sm = torch.tensor(s_mean, dtype=DT).view(1, -1, 1, 1)
    ss = torch.tensor(s_std, dtype=DT).view(1, -1, 1, 1)
    pix = x * ss + sm                               # [0, 1] pixels
    if pix.shape[1] == 1 and t_chans == 3:
        pix = pix.expand(-1, 3, -1, -1)
    tm = torch.tensor(t_mean, dtype=DT).view(1, -1, 1, 1)
    ts = torch.tensor(t_std, dtype=DT).view(1, -1, 1, 1)
    y = (pix - tm) / ts
    if tuple(y.shape[2:]) != tuple(size):
        y = F.interpolate(y, size=size, mode="bilinear", align_corners=False, antialias=False)
    return y


def resize_pos(pos, grid0, grid):
    """pos (1+L0, D), cls first -> (1+L, D); MAE interpolate_pos_embed."""
    if tuple(grid0) == tuple(grid):
        return pos
    D = pos.shape[-1]
    cls, tok = pos[:1], pos[1:]
    tok = tok.reshape(1, grid0[0], grid0[1], D).permute(0, 3, 1, 2)
    tok = F.interpolate(tok, size=tuple(grid), mode="bicubic", align_corners=False)
    tok = tok.permute(0, 2, 3, 1).reshape(-1, D)
    return torch.cat([cls, tok], 0)


def patch_tokens(x):
    return x[:, 1:].float().contiguous()


# ---------------------------------------------------------------------------
# (1) timm / MAE VisionTransformer

def timm_make(g, C, D, depth, heads, p, grid0, hidden):
    sd = {
        "cls_token": rnd(g, 1, 1, D, std=0.5),
        "pos_embed": rnd(g, 1, 1 + grid0[0] * grid0[1], D, std=0.5),
        "patch_embed.proj.weight": rnd(g, D, C, p, p, std=1.0 / math.sqrt(C * p * p)),
        "patch_embed.proj.bias": rnd(g, D, std=0.1),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        for n in ("norm1", "norm2"):
            sd[b + n + ".weight"] = rnd(g, D, std=0.1, mean=1.0)
            sd[b + n + ".bias"] = rnd(g, D, std=0.1)
        sd[b + "attn.qkv.weight"] = linear_w(g, 3 * D, D)
        sd[b + "attn.qkv.bias"] = rnd(g, 3 * D, std=0.1)
        sd[b + "attn.proj.weight"] = linear_w(g, D, D)
        sd[b + "attn.proj.bias"] = rnd(g, D, std=0.1)
        sd[b + "mlp.fc1.weight"] = linear_w(g, hidden, D)
        sd[b + "mlp.fc1.bias"] = rnd(g, hidden, std=0.1)
        sd[b + "mlp.fc2.weight"] = linear_w(g, D, hidden)
        sd[b + "mlp.fc2.bias"] = rnd(g, D, std=0.1)
    sd["norm.weight"] = rnd(g, D, std=0.1, mean=1.0)
    sd["norm.bias"] = rnd(g, D, std=0.1)
    # MAE pre-training leftovers the loader must ignore
    sd["mask_token"] = rnd(g, 1, 1, 32)
    sd["decoder_embed.weight"] = linear_w(g, 32, D)
    sd["decoder_embed.bias"] = rnd(g, 32)
    sd["decoder_blocks.0.norm1.weight"] = rnd(g, 32)
    return sd


def timm_forward(sd, imgs, heads, p, grid0, grid, layers):
    """timm VisionTransformer.forward_features; returns {layer: tokens}."""
    W = {k: v.to(DT) for k, v in sd.items()}
    x = F.conv2d(imgs, W["patch_embed.proj.weight"], W["patch_embed.proj.bias"], stride=p)
    x = x.flatten(2).transpose(1, 2)                       # (B, L, D)
    pos = resize_pos(W["pos_embed"][0], grid0, grid)       # (1+L, D)
    x = x + pos[1:]
    cls = W["cls_token"].expand(x.shape[0], -1, -1) + pos[:1]
    x = torch.cat([cls, x], 1)
    B, T, D = x.shape
    hd = D // heads
    depth = max(int(k.split(".")[1]) for k in W if k.startswith("blocks.")) + 1
    out = {}
    for i in range(depth):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (D,), W[b + "norm1.weight"], W[b + "norm1.bias"], eps=1e-6)
        qkv = F.linear(h, W[b + "attn.qkv.weight"], W[b + "attn.qkv.bias"])
        qkv = qkv.reshape(B, T, 3, heads, hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        att = (q @ k.transpose(-2, -1)) * hd ** -0.5
        att = att.softmax(-1)
        a = (att @ v).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(a, W[b + "attn.proj.weight"], W[b + "attn.proj.bias"])
        h = F.layer_norm(x, (D,), W[b + "norm2.weight"], W[b + "norm2.bias"], eps=1e-6)
        h = F.gelu(F.linear(h, W[b + "mlp.fc1.weight"], W[b + "mlp.fc1.bias"]))
        x = x + F.linear(h, W[b + "mlp.fc2.weight"], W[b + "mlp.fc2.bias"])
        if i in layers:
            out[i] = patch_tokens(x)
    x = F.layer_norm(x, (D,), W["norm.weight"], W["norm.bias"], eps=1e-6)
    out[-1] = patch_tokens(x)
    return out


# ---------------------------------------------------------------------------
# (2) OpenAI CLIP visual tower (model.py VisionTransformer, LND layout)

def clip_make(g, D, depth, p, grid0, hidden, embed):
    sd = {
        "visual.conv1.weight": rnd(g, D, 3, p, p, std=1.0 / math.sqrt(3 * p * p)),
        "visual.class_embedding": rnd(g, D, std=0.5),
        "visual.positional_embedding": rnd(g, 1 + grid0[0] * grid0[1], D, std=0.5),
        "visual.ln_pre.weight": rnd(g, D, std=0.1, mean=1.0),
        "visual.ln_pre.bias": rnd(g, D, std=0.1),
        "visual.ln_post.weight": rnd(g, D, std=0.1, mean=1.0),
        "visual.ln_post.bias": rnd(g, D, std=0.1),
        "visual.proj": rnd(g, D, embed, std=D ** -0.5),
    }
    for i in range(depth):
        b = f"visual.transformer.resblocks.{i}."
        for n in ("ln_1", "ln_2"):
            sd[b + n + ".weight"] = rnd(g, D, std=0.1, mean=1.0)
            sd[b + n + ".bias"] = rnd(g, D, std=0.1)
        sd[b + "attn.in_proj_weight"] = linear_w(g, 3 * D, D)
        sd[b + "attn.in_proj_bias"] = rnd(g, 3 * D, std=0.1)
        sd[b + "attn.out_proj.weight"] = linear_w(g, D, D)
        sd[b + "attn.out_proj.bias"] = rnd(g, D, std=0.1)
        sd[b + "mlp.c_fc.weight"] = linear_w(g, hidden, D)
        sd[b + "mlp.c_fc.bias"] = rnd(g, hidden, std=0.1)
        sd[b + "mlp.c_proj.weight"] = linear_w(g, D, hidden)
        sd[b + "mlp.c_proj.bias"] = rnd(g, D, std=0.1)
    # a sliver of the text tower of a full CLIP file (ignored by the loader)
    sd["positional_embedding"] = rnd(g, 7, 32)
    sd["token_embedding.weight"] = rnd(g, 50, 32)
    sd["transformer.resblocks.0.ln_1.weight"] = rnd(g, 32)
    sd["ln_final.weight"] = rnd(g, 32)
    sd["text_projection"] = rnd(g, 32, embed)
    sd["logit_scale"] = torch.tensor(4.6052)
    return sd


def clip_forward(sd, imgs, heads, p, grid0, grid, layers):
    """OpenAI CLIP VisionTransformer.forward up to ln_post, applied here to
    every token (CLIP applies it to the class token only)."""
    W = {k[len("visual."):]: v.to(DT) for k, v in sd.items() if k.startswith("visual.")}
    x = F.conv2d(imgs, W["conv1.weight"], None, stride=p)   # (B, D, gh, gw)
    B, D = x.shape[:2]
    x = x.reshape(B, D, -1).permute(0, 2, 1)
    cls = W["class_embedding"] + torch.zeros(B, 1, D, dtype=DT)
    x = torch.cat([cls, x], 1)
    x = x + resize_pos(W["positional_embedding"], grid0, grid)
    x = F.layer_norm(x, (D,), W["ln_pre.weight"], W["ln_pre.bias"], eps=1e-5)
    x = x.permute(1, 0, 2)                                  # NLD -> LND
    T = x.shape[0]
    hd = D // heads
    depth = max(int(k.split(".")[2]) for k in W if k.startswith("transformer.resblocks.")) + 1
    out = {}
    for i in range(depth):
        b = f"transformer.resblocks.{i}."
        h = F.layer_norm(x, (D,), W[b + "ln_1.weight"], W[b + "ln_1.bias"], eps=1e-5)
        # nn.MultiheadAttention: in_proj chunked into q, k, v; q pre-scaled
        q, k, v = F.linear(h, W[b + "attn.in_proj_weight"], W[b + "attn.in_proj_bias"]).chunk(3, -1)
        q = q * hd ** -0.5
        q = q.contiguous().view(T, B * heads, hd).transpose(0, 1)
        k = k.contiguous().view(T, B * heads, hd).transpose(0, 1)
        v = v.contiguous().view(T, B * heads, hd).transpose(0, 1)
        att = torch.softmax(torch.bmm(q, k.transpose(1, 2)), -1)
        a = torch.bmm(att, v).transpose(0, 1).contiguous().view(T, B, D)
        x = x + F.linear(a, W[b + "attn.out_proj.weight"], W[b + "attn.out_proj.bias"])
        h = F.layer_norm(x, (D,), W[b + "ln_2.weight"], W[b + "ln_2.bias"], eps=1e-5)
        h = F.linear(h, W[b + "mlp.c_fc.weight"], W[b + "mlp.c_fc.bias"])
        h = h * torch.sigmoid(1.702 * h)                    # QuickGELU
        x = x + F.linear(h, W[b + "mlp.c_proj.weight"], W[b + "mlp.c_proj.bias"])
        if i in layers:
            out[i] = patch_tokens(x.permute(1, 0, 2))
    x = x.permute(1, 0, 2)
    x = F.layer_norm(x, (D,), W["ln_post.weight"], W["ln_post.bias"], eps=1e-5)
    out[-1] = patch_tokens(x)
    return out


# ---------------------------------------------------------------------------
# (3) Hugging Face CLIPVisionModel (modeling_clip.py)

def hf_make(g, D, depth, p, grid0, hidden):
    v = "vision_model."
    n_pos = 1 + grid0[0] * grid0[1]
    sd = {
        v + "embeddings.class_embedding": rnd(g, D, std=0.5),
        v + "embeddings.patch_embedding.weight": rnd(g, D, 3, p, p, std=1.0 / math.sqrt(3 * p * p)),
        v + "embeddings.position_embedding.weight": rnd(g, n_pos, D, std=0.5),
        v + "embeddings.position_ids": torch.arange(n_pos, dtype=torch.int64).view(1, -1),
        v + "pre_layrnorm.weight": rnd(g, D, std=0.1, mean=1.0),
        v + "pre_layrnorm.bias": rnd(g, D, std=0.1),
        v + "post_layernorm.weight": rnd(g, D, std=0.1, mean=1.0),
        v + "post_layernorm.bias": rnd(g, D, std=0.1),
    }
    for i in range(depth):
        b = v + f"encoder.layers.{i}."
        for n in ("layer_norm1", "layer_norm2"):
            sd[b + n + ".weight"] = rnd(g, D, std=0.1, mean=1.0)
            sd[b + n + ".bias"] = rnd(g, D, std=0.1)
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            sd[b + "self_attn." + n + ".weight"] = linear_w(g, D, D)
            sd[b + "self_attn." + n + ".bias"] = rnd(g, D, std=0.1)
        sd[b + "mlp.fc1.weight"] = linear_w(g, hidden, D)
        sd[b + "mlp.fc1.bias"] = rnd(g, hidden, std=0.1)
        sd[b + "mlp.fc2.weight"] = linear_w(g, D, hidden)
        sd[b + "mlp.fc2.bias"] = rnd(g, D, std=0.1)
    # the rest of a CLIPModel file (ignored by the loader)
    sd["text_model.embeddings.token_embedding.weight"] = rnd(g, 50, 32)
    sd["text_model.encoder.layers.0.mlp.fc1.weight"] = rnd(g, 64, 32)
    sd["text_model.final_layer_norm.weight"] = rnd(g, 32)
    sd["visual_projection.weight"] = rnd(g, 16, D)
    sd["text_projection.weight"] = rnd(g, 16, 32)
    sd["logit_scale"] = torch.tensor(2.6592)
    return sd


def hf_forward(sd, imgs, heads, p, grid0, grid, layers):
    """CLIPVisionTransformer: embeddings, pre_layrnorm, encoder; hidden
    state i+1 is block i's output; post_layernorm applied to every token of
    the last one (HF applies it to the pooled class token only)."""
    v = "vision_model."
    W = {k[len(v):]: t.to(DT) for k, t in sd.items() if k.startswith(v)}
    x = F.conv2d(imgs, W["embeddings.patch_embedding.weight"], None, stride=p)
    x = x.flatten(2).transpose(1, 2)
    B, _, D = x.shape
    cls = W["embeddings.class_embedding"].expand(B, 1, -1)
    x = torch.cat([cls, x], 1)
    x = x + resize_pos(W["embeddings.position_embedding.weight"], grid0, grid)[None]
    x = F.layer_norm(x, (D,), W["pre_layrnorm.weight"], W["pre_layrnorm.bias"], eps=1e-5)
    T = x.shape[1]
    hd = D // heads
    scale = hd ** -0.5
    depth = max(int(k.split(".")[2]) for k in W if k.startswith("encoder.layers.")) + 1
    out = {}

    def shape(t):
        return t.view(B, T, heads, hd).transpose(1, 2)

    for i in range(depth):
        b = f"encoder.layers.{i}."
        h = F.layer_norm(x, (D,), W[b + "layer_norm1.weight"], W[b + "layer_norm1.bias"], eps=1e-5)
        q = F.linear(h, W[b + "self_attn.q_proj.weight"], W[b + "self_attn.q_proj.bias"]) * scale
        k = F.linear(h, W[b + "self_attn.k_proj.weight"], W[b + "self_attn.k_proj.bias"])
        vv = F.linear(h, W[b + "self_attn.v_proj.weight"], W[b + "self_attn.v_proj.bias"])
        att = torch.softmax(shape(q) @ shape(k).transpose(-1, -2), -1)
        a = (att @ shape(vv)).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(a, W[b + "self_attn.out_proj.weight"], W[b + "self_attn.out_proj.bias"])
        h = F.layer_norm(x, (D,), W[b + "layer_norm2.weight"], W[b + "layer_norm2.bias"], eps=1e-5)
        h = F.linear(h, W[b + "mlp.fc1.weight"], W[b + "mlp.fc1.bias"])
        h = h * torch.sigmoid(1.702 * h)                    # quick_gelu
        x = x + F.linear(h, W[b + "mlp.fc2.weight"], W[b + "mlp.fc2.bias"])
        if i in layers:
            out[i] = patch_tokens(x)
    x = F.layer_norm(x, (D,), W["post_layernorm.weight"], W["post_layernorm.bias"], eps=1e-5)
    out[-1] = patch_tokens(x)
    return out


# ---------------------------------------------------------------------------

def strip(sd, prefix):
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


def main():
    out_path = sys.argv[1]
    g = torch.Generator().manual_seed(1234)
    res = {}

    # (1) timm: D 64, 4 heads (metadata), patch 4, native grid 4x4 (16 px);
    # student grid 6x5 with patch 5 -> images 30x25, teacher input 24x20.
    # Same mean/std (ImageNet) on both sides.
    sd = timm_make(g, C=3, D=64, depth=2, heads=4, p=4, grid0=(4, 4), hidden=256)
    stio.save(out_path + ".timm.safetensors", sd, {"num_heads": "4"})
    imgs = rnd(g, 2, 3, 30, 25)
    x = student_to_teacher(imgs, IMAGENET_MEAN, IMAGENET_STD, IMAGENET_MEAN, IMAGENET_STD, 3, (24, 20))
    f = timm_forward(sd, x, heads=4, p=4, grid0=(4, 4), grid=(6, 5), layers={0})
    res.update({"timm.imgs": imgs, "timm.mid": f[0], "timm.last": f[-1]})

    # (2) OpenAI CLIP: D 128 -> 2 heads by the width/64 rule (no metadata),
    # depth 3, patch 8, native grid 4x4 (32 px) -> student grid 3x3 (pos
    # embedding downsampled); student patch 6 -> images 18x18 upsampled to 24.
    sd = clip_make(g, D=128, depth=3, p=8, grid0=(4, 4), hidden=512, embed=48)
    stio.save(out_path + ".clip.safetensors", sd)
    stio.save(out_path + ".clipbare.safetensors", strip(sd, "visual."))
    imgs = rnd(g, 3, 3, 18, 18)
    x = student_to_teacher(imgs, IMAGENET_MEAN, IMAGENET_STD, CLIP_MEAN, CLIP_STD, 3, (24, 24))
    f = clip_forward(sd, x, heads=2, p=8, grid0=(4, 4), grid=(3, 3), layers={1})
    res.update({"clip.imgs": imgs, "clip.mid": f[1], "clip.last": f[-1]})

    # (3) Hugging Face CLIPModel: D 64, 4 heads (metadata num_attention_heads),
    # depth 2, patch 4, native grid 5x5 = student grid; a one-channel student
    # (gray ImageNet mean/std) at 20x20: replicated to RGB, no resizing.
    sd = hf_make(g, D=64, depth=2, p=4, grid0=(5, 5), hidden=128)
    stio.save(out_path + ".hf.safetensors", sd, {"num_attention_heads": "4"})
    stio.save(out_path + ".hfbare.safetensors", strip(sd, "vision_model."), {"num_attention_heads": "4"})
    imgs = rnd(g, 2, 1, 20, 20)
    x = student_to_teacher(imgs, GRAY_MEAN, GRAY_STD, CLIP_MEAN, CLIP_STD, 3, (20, 20))
    f = hf_forward(sd, x, heads=4, p=4, grid0=(5, 5), grid=(5, 5), layers={0})
    res.update({"hf.imgs": imgs, "hf.mid": f[0], "hf.last": f[-1]})

    stio.save(out_path, res)


if __name__ == "__main__":
    main()
