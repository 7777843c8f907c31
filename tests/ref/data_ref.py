#!/usr/bin/python3
"""data_ref.py: reference outputs for tests/test_data_decode.c from PIL and
torchvision (Debian python3-pil, python3-torchvision).

Writes tests/ref/data_ref.bin, a list of records  u32 tag, u32 nbytes, payload:
  tag 1  PIL decode of CIFAR sample k of train-000000.tar (skipped if absent):
         u32 k, u32 w, u32 h, then h*w*3 uint8 RGB
  tag 2  torchvision crop parity on a synthetic JPEG (no data set needed):
         u32 jpeg_len, jpeg bytes, i32 i, j, h, w, flip, out_h, out_w,
         then out_h*out_w*3 uint8: PIL crop + resize(BILINEAR) (+ hflip), the
         exact image torchvision's RandomResizedCrop/hflip make before ToTensor
  tag 3  PIL draft (DCT-scaled) decode of that JPEG: u32 num (of /8),
         u32 w, u32 h, then h*w*3 uint8
Run from the repo root:  /usr/bin/python3 tests/ref/data_ref.py
"""
import io, os, struct, tarfile
import numpy as np
from PIL import Image
import torchvision.transforms.functional as TF

out = []
def rec(tag, payload):
    out.append(struct.pack('<II', tag, len(payload)) + payload)

shard = '/work/shared/data/cifar10/train-000000.tar'
if os.path.exists(shard):
    with tarfile.open(shard) as tf:
        k = 0
        for m in tf.getmembers():
            if not m.name.endswith('.jpg'):
                continue
            if k < 8:
                im = Image.open(io.BytesIO(tf.extractfile(m).read())).convert('RGB')
                a = np.asarray(im, dtype=np.uint8)
                rec(1, struct.pack('<III', k, a.shape[1], a.shape[0]) + a.tobytes())
            k += 1
            if k >= 8:
                break

# synthetic 300x220 photo-like image: smooth gradients + texture, JPEG q90
rng = np.random.default_rng(0)
H, W = 220, 300
yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
img = np.stack([128 + 100 * np.sin(xx / 17.0) * np.cos(yy / 23.0),
                128 + 90 * np.cos((xx + yy) / 31.0),
                (xx * 255 / W + yy * 255 / H) / 2], -1)
img += rng.normal(0, 12, img.shape)
img = np.clip(img, 0, 255).astype(np.uint8)
buf = io.BytesIO()
Image.fromarray(img).save(buf, format='JPEG', quality=90)
jpeg = buf.getvalue()
pil = Image.open(io.BytesIO(jpeg)).convert('RGB')
cases = [(10, 20, 150, 200, 0, 64, 64), (0, 0, 220, 300, 1, 48, 40),
         (50, 70, 33, 41, 0, 64, 64), (100, 13, 97, 180, 1, 96, 112)]
for (i, j, h, w, flip, oh, ow) in cases:
    r = TF.resized_crop(pil, i, j, h, w, [oh, ow], TF.InterpolationMode.BILINEAR)
    if flip:
        r = TF.hflip(r)
    a = np.asarray(r, dtype=np.uint8)
    rec(2, struct.pack('<I', len(jpeg)) + jpeg + struct.pack('<7i', i, j, h, w, flip, oh, ow) + a.tobytes())
for num in (1, 2, 4):
    d = Image.open(io.BytesIO(jpeg))
    d.draft('RGB', (W * num // 8, H * num // 8))  # PIL picks scale 8/num for this request
    a = np.asarray(d.convert('RGB'), dtype=np.uint8)
    rec(3, struct.pack('<III', num, a.shape[1], a.shape[0]) + a.tobytes())

path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data_ref.bin')
with open(path, 'wb') as f:
    f.write(b''.join(out))
print('wrote', path, sum(len(o) for o in out), 'bytes,', len(out), 'records')
