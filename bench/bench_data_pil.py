#!/usr/bin/python3
"""bench_data_pil.py: the peer of bench_data decode: PIL decode + torchvision
RandomResizedCrop(scale=(0.2,1)) + RandomHorizontalFlip + ToTensor + Normalize,
single thread, on the same inputs (CIFAR shard 0; /tmp/mim_bench_big_*.jpg
written by `bench_data decode`)."""
import glob, io, tarfile, time, torch
from PIL import Image
import torchvision.transforms as T
torch.set_num_threads(1)
def bench(blobs, size, reps):
    tf = T.Compose([T.RandomResizedCrop(size, scale=(0.2, 1.0), interpolation=T.InterpolationMode.BILINEAR),
                    T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    t0 = time.time()
    for _ in range(reps):
        for b in blobs:
            tf(Image.open(io.BytesIO(b)).convert('RGB'))
    return len(blobs) * reps / (time.time() - t0)
with tarfile.open('/work/shared/data/cifar10/train-000000.tar') as tf:
    cifar = [tf.extractfile(m).read() for m in tf.getmembers() if m.name.endswith('.jpg')][:2000]
big = [open(p, 'rb').read() for p in sorted(glob.glob('/tmp/mim_bench_big_*.jpg'))]
print('PIL+torchvision 1 thread: cifar->32 %.0f img/s' % bench(cifar, 32, 1))
if big:
    print('PIL+torchvision 1 thread: 500x375->64 %.0f img/s, ->224 %.0f img/s' % (bench(big, 64, 5), bench(big, 224, 3)))
