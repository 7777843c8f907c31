#!/usr/bin/python3
"""data_ref.py: reference outputs for tests/test_data_decode.c from PIL and
torchvision (Debian python3-pil, python3-torchvision).

Writes tests/ref/data_ref.bin (kept under 300 KB), a list of records
u32 tag, u32 nbytes, payload:
  tag 1  PIL decode of CIFAR sample k of train-000000.tar (skipped if absent):
         u32 k, u32 w, u32 h, then h*w*3 uint8 RGB
  tag 4  a source image, stored once: u32 src, u32 len, then the JPEG bytes.
         src 0: 300x220 landscape photo-like (gradients + noise), q90;
         src 1: 150x210 portrait, smooth with sharp edges (bicubic overshoot), q92
  tag 2  torchvision crop parity: i32 src, i, j, h, w, flip, out_h, out_w,
         filter (0 bilinear, 1 bicubic), then out_h*out_w*3 uint8: the image
         TF.resized_crop (+ TF.hflip) makes from PIL before ToTensor
  tag 3  PIL draft (DCT-scaled) decode of src 0: u32 num (of /8), u32 w,
         u32 h, then h*w*3 uint8
  tag 6  WebP: u32 len, WebP bytes, u32 w, u32 h, then h*w*3 uint8 from
         PIL's decode + convert('RGB') (lossy; lossless with alpha)
  tag 7  PNG: u32 len, PNG bytes, u32 w, u32 h, then h*w*3 uint8 from PIL's
         convert('RGB') and h*w uint8 from convert('L') (RGBA, palette with
         transparency, LA, L, RGB)
  tag 5  torchvision eval transform: i32 src, resize_short, out_h, out_w,
         filter, then out_h*out_w*3 uint8 from
         CenterCrop((out_h, out_w))(Resize(resize_short, interpolation)(img))
Run from the repo root:  /usr/bin/python3 tests/ref/data_ref.py
"""
import io, os, struct, tarfile
import numpy as np
from PIL import Image
import torchvision.transforms as T
import torchvision.transforms.functional as TF

out = []
def rec(tag, payload):
    out.append(struct.pack('<II', tag, len(payload)) + payload)

# the shared data folder as tests/testutil.h tu_shared_data finds it:
# $MIM_SHARED_DATA, else ../shared/data beside the repository root
_data = os.environ.get('MIM_SHARED_DATA') or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', '..', '..', 'shared', 'data')
shard = os.path.join(_data, 'cifar10', 'train-000000.tar')
if os.path.exists(shard):
    with tarfile.open(shard) as tf:
        k = 0
        for m in tf.getmembers():
            if not m.name.endswith('.jpg'):
                continue
            if k < 6:
                im = Image.open(io.BytesIO(tf.extractfile(m).read())).convert('RGB')
                a = np.asarray(im, dtype=np.uint8)
                rec(1, struct.pack('<III', k, a.shape[1], a.shape[0]) + a.tobytes())
            k += 1
            if k >= 6:
                break

def jpeg_bytes(a, q):
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format='JPEG', quality=q)
    return buf.getvalue()

# src 0: 300x220 photo-like image: smooth gradients + texture
rng = np.random.default_rng(0)
H, W = 220, 300
yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
img = np.stack([128 + 100 * np.sin(xx / 17.0) * np.cos(yy / 23.0),
                128 + 90 * np.cos((xx + yy) / 31.0),
                (xx * 255 / W + yy * 255 / H) / 2], -1)
img += rng.normal(0, 12, img.shape)
src0 = jpeg_bytes(np.clip(img, 0, 255).astype(np.uint8), 90)
# src 1: 150x210 portrait: flat regions and hard edges, where bicubic
# overshoots and both PIL passes clip
H1, W1 = 210, 150
yy, xx = np.mgrid[0:H1, 0:W1].astype(np.float32)
p = np.zeros((H1, W1, 3), np.float32)
p[..., 0] = np.where((xx // 12 + yy // 12) % 2 == 0, 250, 5)
p[..., 1] = np.where(xx < W1 / 2, 20, 235)
p[..., 2] = 128 + 120 * np.sin(yy / 9.0)
src1 = jpeg_bytes(np.clip(p, 0, 255).astype(np.uint8), 92)
srcs = [src0, src1]
for k, b in enumerate(srcs):
    rec(4, struct.pack('<II', k, len(b)) + b)
pil = [Image.open(io.BytesIO(b)).convert('RGB') for b in srcs]

MODES = [TF.InterpolationMode.BILINEAR, TF.InterpolationMode.BICUBIC]
# (src, i, j, h, w, flip, out_h, out_w, filter)
crops = [(0, 10, 20, 150, 200, 0, 64, 64, 0), (0, 0, 0, 220, 300, 1, 48, 40, 0),
         (0, 50, 70, 33, 41, 0, 64, 64, 0), (0, 100, 13, 97, 180, 1, 48, 56, 0),
         (0, 10, 20, 150, 200, 0, 64, 64, 1), (0, 50, 70, 33, 41, 1, 64, 64, 1),   # bicubic down, up
         (1, 0, 0, 210, 150, 0, 56, 40, 1), (1, 30, 17, 100, 90, 1, 60, 48, 1)]
for (s, i, j, h, w, flip, oh, ow, f) in crops:
    r = TF.resized_crop(pil[s], i, j, h, w, [oh, ow], MODES[f])
    if flip:
        r = TF.hflip(r)
    a = np.asarray(r, dtype=np.uint8)
    rec(2, struct.pack('<9i', s, i, j, h, w, flip, oh, ow, f) + a.tobytes())
for num in (1, 2, 4):
    d = Image.open(io.BytesIO(src0))
    d.draft('RGB', (W * num // 8, H * num // 8))  # PIL picks scale 8/num for this request
    a = np.asarray(d.convert('RGB'), dtype=np.uint8)
    rec(3, struct.pack('<III', num, a.shape[1], a.shape[0]) + a.tobytes())
# eval: Resize(short side) + CenterCrop, as MAE's linear probe / fine-tune eval
# (there: Resize(256, bicubic), CenterCrop(224)); small sizes keep the file small
evals = [(0, 73, 64, 64, 0), (0, 146, 96, 96, 1), (0, 256, 64, 64, 1),   # down bilinear, down bicubic, up bicubic
         (1, 73, 64, 64, 1), (1, 171, 64, 64, 0), (1, 48, 40, 48, 1)]      # portrait: W is the short side
for (s, R, oh, ow, f) in evals:
    t = T.Compose([T.Resize(R, interpolation=MODES[f]), T.CenterCrop((oh, ow))])
    a = np.asarray(t(pil[s]), dtype=np.uint8)
    assert a.shape == (oh, ow, 3)
    rec(5, struct.pack('<5i', s, R, oh, ow, f) + a.tobytes())

# WebP (decoded by libwebp in PIL): lossy RGB, and lossless with a varying
# alpha that convert('RGB') drops. Small, to keep the file small.
yy, xx = np.mgrid[0:24, 0:32].astype(np.float32)
wimg = np.stack([128 + 100 * np.sin(xx / 3.0), 128 + 90 * np.cos((xx + yy) / 5.0), xx * 8], -1)
wimg += rng.normal(0, 10, wimg.shape)
wimg = np.clip(wimg, 0, 255).astype(np.uint8)
alpha = (np.arange(24 * 32).reshape(24, 32) * 7 % 256).astype(np.uint8)
for im, kw in ((Image.fromarray(wimg), dict(quality=80)),
               (Image.fromarray(np.dstack([wimg, alpha]), 'RGBA'), dict(lossless=True))):
    buf = io.BytesIO()
    im.save(buf, format='WEBP', **kw)
    b = buf.getvalue()
    a = np.asarray(Image.open(io.BytesIO(b)).convert('RGB'), dtype=np.uint8)
    rec(6, struct.pack('<I', len(b)) + b + struct.pack('<II', a.shape[1], a.shape[0]) + a.tobytes())

# PNG layouts a crawl holds, decoded by PIL + convert('RGB') / convert('L')
# (alpha dropped, not composited; palettes expanded; gray replicated)
pw = np.clip(wimg[:6, :8].astype(np.int32), 0, 255).astype(np.uint8)
pa = alpha[:6, :8]
pal = Image.fromarray(pw).quantize(7)
pal.info['transparency'] = 3
pngs = [Image.fromarray(np.dstack([pw, pa]), 'RGBA'), pal, Image.fromarray(np.dstack([pw[..., 0], pa]), 'LA'),
        Image.fromarray(pw[..., 1], 'L'), Image.fromarray(pw)]
for im in pngs:
    buf = io.BytesIO()
    im.save(buf, format='PNG', **({'transparency': 3} if im.mode == 'P' else {}))
    b = buf.getvalue()
    back = Image.open(io.BytesIO(b))
    a = np.asarray(back.convert('RGB'), dtype=np.uint8)
    l = np.asarray(back.convert('L'), dtype=np.uint8)
    rec(7, struct.pack('<I', len(b)) + b + struct.pack('<II', a.shape[1], a.shape[0]) + a.tobytes() + l.tobytes())

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data_ref.bin')
blob = b''.join(out)
assert len(blob) < 300000, len(blob)
with open(path, 'wb') as f:
    f.write(blob)
print('wrote', path, len(blob), 'bytes,', len(out), 'records')
