#!/usr/bin/env python3
"""augft_ref.py: reference outputs for tests/test_augment_ft.c (fine-tuning
augmentations: src/data/randaug.[ch], src/train/mixup.[ch]).

Usage: python3 tests/ref/augft_ref.py OUT.safetensors

timm is not installed on the test machines, so the parts of timm that the C
code reproduces are re-implemented below from timm 0.9.x
(timm/data/auto_augment.py, random_erasing.py, mixup.py,
timm/loss/cross_entropy.py); for these code paths timm 0.3.2, which MAE
pins, behaves the same. The image ops call PIL exactly as timm does, so the
RandAugment cases are PIL's own outputs.

Written tensors (names must match tests/test_augment_ft.c):
  img.<k>              U8 (H, W, 3) or (H, W): the input images
  ra.<i>.args          F64 [image index, magnitude, negate, interp (0 bilinear, 1 bicubic)]
  ra.<i>.out           U8: timm's op `ra.<i>.op` (metadata) at that magnitude and sign
  erase.<H>x<W>.stats  F64 [n, P(box found), mean T/(HW), std T/(HW), mean log a,
                            std log a, mean attempts, std attempts] of timm's
                            RandomErasing box draw (accepted boxes), simulated
                            with Python's random (the C test compares
                            distributions, not streams)
  ce.<case>.{logits,targets,loss,dlogits,dloss}   SoftTargetCrossEntropy
  mix.<case>.*         mixup / cutmix / targets for fixed lam and box
The random draws use fixed seeds; the file is regenerated on every test run.
"""
import math
import os
import random
import sys

try:
    import numpy as np
    import torch
    from PIL import Image, ImageEnhance, ImageOps
except ImportError as e:  # tests/testutil.h: exit 77 = skip the reference comparisons
    print(f"augft_ref.py: {e}", file=sys.stderr)
    sys.exit(77)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import stio  # noqa: E402

OUT = {}
META = {}
# Pillow >= 9.1 has the enums; older ones only the module constants
_AFFINE = getattr(Image, "Transform", Image).AFFINE
_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR
_BICUBIC = getattr(Image, "Resampling", Image).BICUBIC

# ------------------------------------------------------------------ timm auto_augment (0.9.x), re-implemented
_LEVEL_DENOM = 10.
IMG_MEAN = (124, 116, 104)   # tuple(min(255, round(255 * x)) for x in IMAGENET_DEFAULT_MEAN)
GRAY_FILL = 114              # round(255 * mean of the three): the C default for C = 1


# timm's _check_args_tf(kwargs) sets kwargs['resample'] from
# hparams['interpolation'] when given, else a random choice of (BILINEAR,
# BICUBIC); here augment_op always passes it.


def shear_x(img, factor, **kwargs):
    return img.transform(img.size, _AFFINE, (1, factor, 0, 0, 1, 0), **kwargs)


def shear_y(img, factor, **kwargs):
    return img.transform(img.size, _AFFINE, (1, 0, 0, factor, 1, 0), **kwargs)


def translate_x_rel(img, pct, **kwargs):
    pixels = pct * img.size[0]
    return img.transform(img.size, _AFFINE, (1, 0, pixels, 0, 1, 0), **kwargs)


def translate_y_rel(img, pct, **kwargs):
    pixels = pct * img.size[1]
    return img.transform(img.size, _AFFINE, (1, 0, 0, 0, 1, pixels), **kwargs)


def rotate(img, degrees, **kwargs):
    return img.rotate(degrees, **kwargs)


def auto_contrast(img, **__):
    return ImageOps.autocontrast(img)


def invert(img, **__):
    return ImageOps.invert(img)


def equalize(img, **__):
    return ImageOps.equalize(img)


def solarize(img, thresh, **__):
    return ImageOps.solarize(img, thresh)


def solarize_add(img, add, thresh=128, **__):
    lut = []
    for i in range(256):
        if i < thresh:
            lut.append(min(255, i + add))
        else:
            lut.append(i)
    if img.mode in ("L", "RGB"):
        if img.mode == "RGB" and len(lut) == 256:
            lut = lut + lut + lut
        return img.point(lut)
    return img


def posterize(img, bits_to_keep, **__):
    if bits_to_keep >= 8:
        return img
    return ImageOps.posterize(img, bits_to_keep)


def contrast(img, factor, **__):
    return ImageEnhance.Contrast(img).enhance(factor)


def color(img, factor, **__):
    return ImageEnhance.Color(img).enhance(factor)


def brightness(img, factor, **__):
    return ImageEnhance.Brightness(img).enhance(factor)


def sharpness(img, factor, **__):
    return ImageEnhance.Sharpness(img).enhance(factor)


def _negate(v, neg):
    # timm's _randomly_negate(v) = -v if random.random() > 0.5 else v; the
    # draw is made explicit so that C and Python get the same sign
    return -v if neg else v


def _rotate_level_to_arg(level, neg):
    level = (level / _LEVEL_DENOM) * 30.
    return _negate(level, neg),


def _enhance_level_to_arg(level, neg):
    return (level / _LEVEL_DENOM) * 1.8 + 0.1,


def _enhance_increasing_level_to_arg(level, neg):
    level = (level / _LEVEL_DENOM) * .9
    level = max(0.1, 1.0 + _negate(level, neg))
    return level,


def _shear_level_to_arg(level, neg):
    level = (level / _LEVEL_DENOM) * 0.3
    return _negate(level, neg),


def _translate_rel_level_to_arg(level, neg):
    level = (level / _LEVEL_DENOM) * 0.45   # hparams translate_pct default
    return _negate(level, neg),


def _posterize_level_to_arg(level, neg):
    return int((level / _LEVEL_DENOM) * 4),


def _posterize_increasing_level_to_arg(level, neg):
    return 4 - _posterize_level_to_arg(level, neg)[0],


def _solarize_level_to_arg(level, neg):
    return min(256, int((level / _LEVEL_DENOM) * 256)),


def _solarize_increasing_level_to_arg(level, neg):
    return 256 - _solarize_level_to_arg(level, neg)[0],


def _solarize_add_level_to_arg(level, neg):
    return min(128, int((level / _LEVEL_DENOM) * 110)),


# name -> (op, level_to_arg, geometric)
OPS = {
    "AutoContrast": (auto_contrast, None, False),
    "Equalize": (equalize, None, False),
    "Invert": (invert, None, False),
    "Rotate": (rotate, _rotate_level_to_arg, True),
    "Posterize": (posterize, _posterize_level_to_arg, False),
    "PosterizeIncreasing": (posterize, _posterize_increasing_level_to_arg, False),
    "Solarize": (solarize, _solarize_level_to_arg, False),
    "SolarizeIncreasing": (solarize, _solarize_increasing_level_to_arg, False),
    "SolarizeAdd": (solarize_add, _solarize_add_level_to_arg, False),
    "Color": (color, _enhance_level_to_arg, False),
    "ColorIncreasing": (color, _enhance_increasing_level_to_arg, False),
    "Contrast": (contrast, _enhance_level_to_arg, False),
    "ContrastIncreasing": (contrast, _enhance_increasing_level_to_arg, False),
    "Brightness": (brightness, _enhance_level_to_arg, False),
    "BrightnessIncreasing": (brightness, _enhance_increasing_level_to_arg, False),
    "Sharpness": (sharpness, _enhance_level_to_arg, False),
    "SharpnessIncreasing": (sharpness, _enhance_increasing_level_to_arg, False),
    "ShearX": (shear_x, _shear_level_to_arg, True),
    "ShearY": (shear_y, _shear_level_to_arg, True),
    "TranslateXRel": (translate_x_rel, _translate_rel_level_to_arg, True),
    "TranslateYRel": (translate_y_rel, _translate_rel_level_to_arg, True),
}
SIGNED = {"Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel", "ColorIncreasing",
          "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing"}


def augment_op(name, img, magnitude, neg, interp):
    """timm AugmentOp.__call__ after its random draws (prob, magnitude noise and
    clipping, sign), which are given here."""
    fn, level_fn, _ = OPS[name]
    kwargs = dict(fillcolor=IMG_MEAN if img.mode == "RGB" else GRAY_FILL,
                  resample=_BICUBIC if interp else _BILINEAR)
    args = level_fn(magnitude, neg) if level_fn is not None else tuple()
    return fn(img, *args, **kwargs)


# ------------------------------------------------------------------ images
def make_images():
    rs = np.random.RandomState(1234)
    imgs = []
    # smooth gradients + texture + a bright disc, range inside [20, 230]: autocontrast and
    # equalize have work to do; odd sizes
    H, W = 29, 37
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    base = np.stack([40 + 4 * xx, 30 + 5 * yy, 120 + 60 * np.sin(xx / 5) * np.cos(yy / 7)], -1)
    base += rs.normal(0, 12, base.shape)
    base[(yy - 14) ** 2 + (xx - 20) ** 2 < 40] += 50
    imgs.append(np.clip(base, 20, 230).round().astype(np.uint8))
    # full-range noise with structure, 48 x 64
    H, W = 48, 64
    a = rs.randint(0, 256, (H // 4, W // 4, 3)).astype(np.float64)
    a = np.kron(a, np.ones((4, 4, 1))) + rs.normal(0, 25, (H, W, 3))
    imgs.append(np.clip(a, 0, 255).round().astype(np.uint8))
    # gray, 23 x 31
    H, W = 23, 31
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    g = 128 + 90 * np.sin(xx / 4 + yy / 6) + rs.normal(0, 10, (H, W))
    imgs.append(np.clip(g, 0, 255).round().astype(np.uint8))
    # square 32 x 32 (CIFAR size; rotate's transpose fast paths)
    imgs.append(rs.randint(0, 256, (32, 32, 3)).astype(np.uint8))
    # few levels (equalize / autocontrast corner cases), 16 x 20
    imgs.append(rs.randint(50, 58, (16, 20, 3)).astype(np.uint8))
    return imgs


def to_pil(a):
    return Image.fromarray(a, "RGB" if a.ndim == 3 else "L")


def randaug_cases(imgs):
    for k, a in enumerate(imgs):
        OUT[f"img.{k}"] = torch.from_numpy(a.copy())
    i = 0

    def case(name, k, m, neg, interp):
        nonlocal i
        out = np.asarray(augment_op(name, to_pil(imgs[k]), m, neg, interp))
        OUT[f"ra.{i}.args"] = torch.tensor([k, m, neg, interp], dtype=torch.float64)
        OUT[f"ra.{i}.out"] = torch.from_numpy(out.copy())
        META[f"ra.{i}.op"] = name
        i += 1

    # 9.0: the nominal magnitude; 9.37 / 4.2: noisy magnitudes as the mstd
    # draw gives them; 0 and 10: the clip bounds
    mags = [9.0, 9.37, 4.2, 10.0, 0.0]
    for name, (_, _, geometric) in OPS.items():
        for k in range(len(imgs)):
            for m in mags:
                for neg in ([0, 1] if name in SIGNED else [0]):
                    for interp in ([0, 1] if geometric else [0]):
                        case(name, k, m, neg, interp)
    # rotate by 90 / 180 degrees (magnitude beyond 10 needs mmax): PIL's transposes
    # on the square image, the general path on the others
    for k in range(len(imgs)):
        for m in (30.0, 60.0):
            case("Rotate", k, m, 0, 0)
            case("Rotate", k, m, 1, 1)


# ------------------------------------------------------------------ random erasing (timm 0.9.x RandomErasing._erase box draw)
def erase_stats(H, W, n, seed):
    rnd = random.Random(seed)
    min_area, max_area = 0.02, 1 / 3
    log_ar = (math.log(0.3), math.log(1 / 0.3))
    area = H * W
    count = 1
    found = 0
    ts, las, atts = [], [], []
    for _ in range(n):
        for attempt in range(10):
            target_area = rnd.uniform(min_area, max_area) * area / count
            aspect_ratio = math.exp(rnd.uniform(*log_ar))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < W and h < H:
                rnd.randint(0, H - h)
                rnd.randint(0, W - w)
                found += 1
                ts.append(target_area / area)
                las.append(math.log(aspect_ratio))
                atts.append(attempt + 1)
                break
    ts, las, atts = np.array(ts), np.array(las), np.array(atts, dtype=np.float64)
    OUT[f"erase.{H}x{W}.stats"] = torch.tensor(
        [n, found / n, ts.mean(), ts.std(), las.mean(), las.std(), atts.mean(), atts.std()],
        dtype=torch.float64)


# ------------------------------------------------------------------ soft-target CE (timm SoftTargetCrossEntropy)
def one_hot(x, num_classes, on_value=1., off_value=0.):
    x = x.long().view(-1, 1)
    return torch.full((x.size()[0], num_classes), off_value, device=x.device).scatter_(1, x, on_value)


def mixup_target(target, num_classes, lam=1., smoothing=0.0):
    off_value = smoothing / num_classes
    on_value = 1. - smoothing + off_value
    y1 = one_hot(target, num_classes, on_value=on_value, off_value=off_value)
    y2 = one_hot(target.flip(0), num_classes, on_value=on_value, off_value=off_value)
    return y1 * lam + y2 * (1. - lam)


def soft_ce_case(name, B, K, dloss, proper, g):
    logits = torch.randn(B, K, generator=g) * 3
    if proper:
        y = torch.randint(0, K, (B,), generator=g)
        targets = mixup_target(y, K, 0.37, 0.1)
    else:  # arbitrary non-negative rows, not summing to 1: the general gradient
        targets = torch.rand(B, K, generator=g) * 0.3
    x = logits.double().requires_grad_(True)
    loss = torch.sum(-targets.double() * torch.log_softmax(x, dim=-1), dim=-1).mean()
    (loss * dloss).backward()
    OUT[f"ce.{name}.logits"] = logits
    OUT[f"ce.{name}.targets"] = targets.float()
    OUT[f"ce.{name}.loss"] = loss.detach().reshape(1)
    OUT[f"ce.{name}.dloss"] = torch.tensor([dloss], dtype=torch.float64)
    OUT[f"ce.{name}.dlogits"] = x.grad.float()


# ------------------------------------------------------------------ mixup / cutmix (timm Mixup._mix_batch, mode 'batch')
def rand_bbox_at(img_shape, lam, cy, cx, margin=0.):
    """timm rand_bbox with the centre given instead of np.random.randint."""
    ratio = np.sqrt(1 - lam)
    img_h, img_w = img_shape[-2:]
    cut_h, cut_w = int(img_h * ratio), int(img_w * ratio)
    yl = np.clip(cy - cut_h // 2, 0, img_h)
    yh = np.clip(cy + cut_h // 2, 0, img_h)
    xl = np.clip(cx - cut_w // 2, 0, img_w)
    xh = np.clip(cx + cut_w // 2, 0, img_w)
    return yl, yh, xl, xh


def cutmix_bbox_and_lam_at(img_shape, lam, cy, cx, correct_lam=True):
    yl, yu, xl, xu = rand_bbox_at(img_shape, lam, cy, cx)
    if correct_lam:
        bbox_area = (yu - yl) * (xu - xl)
        lam = 1. - bbox_area / float(img_shape[-2] * img_shape[-1])
    return (yl, yu, xl, xu), lam


def mix_case(name, B, C, H, W, K, lam, cutmix, cy, cx, g, smoothing=0.1):
    x = torch.randn(B, C, H, W, generator=g)
    y = torch.randint(0, K, (B,), generator=g)
    OUT[f"mix.{name}.x"] = x.clone()
    OUT[f"mix.{name}.y"] = y.to(torch.int32)
    x = x.clone()
    if cutmix:
        (yl, yh, xl, xh), lam_c = cutmix_bbox_and_lam_at(x.shape, lam, cy, cx)
        x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
        OUT[f"mix.{name}.box"] = torch.tensor([yl, yh, xl, xh], dtype=torch.int32)
        lam = lam_c
    elif lam != 1.:
        x_flipped = x.flip(0).mul_(1. - lam)
        x.mul_(lam).add_(x_flipped)
    OUT[f"mix.{name}.lam"] = torch.tensor([lam], dtype=torch.float64)
    OUT[f"mix.{name}.xout"] = x
    OUT[f"mix.{name}.targets"] = mixup_target(y, K, lam, smoothing)



def main():
    if len(sys.argv) != 2:
        print("usage: augft_ref.py OUT.safetensors", file=sys.stderr)
        sys.exit(2)
    randaug_cases(make_images())
    for (H, W), seed in (((224, 224), 1), ((32, 32), 2), ((24, 60), 3)):
        erase_stats(H, W, 25000, seed)
    g = torch.Generator().manual_seed(4)
    soft_ce_case("small", 7, 13, 0.7, True, g)
    soft_ce_case("general", 5, 11, 1.3, False, g)
    soft_ce_case("big", 16, 1000, 1.0, True, g)
    # lam values must match tests/test_augment_ft.c (mix_cases[])
    mix_case("mixup", 6, 3, 9, 7, 10, 0.3137, False, 0, 0, g)
    mix_case("mixup_odd", 5, 2, 4, 6, 10, 0.8125, False, 0, 0, g)
    mix_case("cutmix", 6, 3, 9, 7, 10, 0.55, True, 4, 2, g)
    mix_case("cutmix_edge", 5, 2, 8, 11, 10, 0.2, True, 0, 10, g)
    mix_case("none", 4, 1, 3, 3, 1000, 1.0, False, 0, 0, g)
    mix_case("k1000", 8, 1, 2, 2, 1000, 0.6071, False, 0, 0, g)
    stio.save(sys.argv[1], OUT, META)


if __name__ == "__main__":
    main()
