#!/usr/bin/env bash
# Regenerates the seed corpora of fuzz_idx, fuzz_index, fuzz_subset and
# fuzz_study from the tools themselves (build/mimscale must be built): small
# valid files, a few KB each. Run from the repository root; the committed
# seeds came from this script.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MIMSCALE_BIN:-build/mimscale}
fm=${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}
c=fuzz/corpus
tmp=$(mktemp -d /tmp/mim_seeds.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
mkdir -p $c/idx $c/index $c/subset $c/study

# IDX: Fashion-MNIST cut to 4 images (header count patched), plain and gzip.
# Fuzz input = [flags][labels length LE16][images file][labels file].
python3 - "$fm" "$c/idx" <<'PY'
import gzip, struct, sys
src, out = sys.argv[1], sys.argv[2]
img = gzip.open(f"{src}/t10k-images-idx3-ubyte.gz").read()
lab = gzip.open(f"{src}/t10k-labels-idx1-ubyte.gz").read()
def cut(n, h=28, w=28):
    i = struct.pack(">IIII", 0x803, n, h, w) + img[16:16 + n * 784][: n * h * w]
    l = struct.pack(">II", 0x801, n) + lab[8:8 + n]
    return i, l
def seed(name, i, l, gz):
    if gz: i, l = gzip.compress(i, 9, mtime=0), gzip.compress(l, 9, mtime=0)
    open(f"{out}/{name}", "wb").write(bytes([1]) + struct.pack("<H", len(l)) + i + l)
i, l = cut(4); seed("fmnist4.bin", i, l, False); seed("fmnist4_gz.bin", i, l, True)
i, l = cut(2, 7, 7); seed("small7x7.bin", i, l, False)
i, _ = cut(3); open(f"{out}/nolabels.bin", "wb").write(bytes([0, 0, 0]) + i)
PY

# Shards with .jpg + .cls + .json (key.json, img2dataset style), then the
# index (format 2 with a json table) and subset files drawn from it.
python3 - "$tmp" fuzz/corpus/decode <<'PY'
import io, json, os, sys, tarfile
out, dec = sys.argv[1], sys.argv[2]
jpgs = [open(os.path.join(dec, f), "rb").read() for f in sorted(os.listdir(dec)) if f.endswith(".jpg")]
def add(t, name, data):
    ti = tarfile.TarInfo(name); ti.size = len(data); ti.mtime = 0
    t.addfile(ti, io.BytesIO(data))
k = 0
for s in range(2):
    with tarfile.open(f"{out}/shard-{s}.tar", "w", format=tarfile.USTAR_FORMAT) as t:
        for i in range(10):
            key = f"{k:06d}"
            add(t, key + ".jpg", jpgs[k % len(jpgs)])
            add(t, key + ".cls", str(k % 3).encode())
            if k % 4: add(t, key + ".json", json.dumps({"width": 32 + 16 * (k % 5), "height": 32, "caption": "x"}).encode())
            k += 1
PY
"$bin" index "$tmp/shard-*.tar" --out $c/index/train.idx --quiet
"$bin" index "$tmp/shard-0.tar" --out $c/index/one_shard.idx --quiet
"$bin" subset $c/index/train.idx --sizes 3,12,20 --strategy random --out $tmp/s --quiet
"$bin" subset $c/index/train.idx --sizes 6 --strategy stratified --seed 1 --out $tmp/s --quiet
"$bin" subset $c/index/train.idx --sizes 5 --strategy filter --filter 'width>=64' --out $tmp/s --quiet
rm -f $c/subset/*.sub
cp $tmp/s-*.sub $c/subset/

# Study files: the shipped ones plus a shard-data variant with every section.
cp studies/*.json $c/study/
cat > $c/study/shards_all.json <<'JSON'
{"name": "all", "description": "every section",
 "data": {"shards": "s/train-*.tar", "eval_index": "s/eval.idx", "img": 32, "in_chans": 3, "subset_seed": 1, "probe_size": 100},
 "subsets": [{"sizes": [256, 512], "strategies": ["random", "stratified"]}, {"sizes": [1024], "strategy": "first"}],
 "models": ["vit_nano", {"preset": "vit_tiny", "patch": 8, "dec_dim": 64, "dec_depth": 1, "dec_heads": 2, "label": "t8"}],
 "targets": ["pixel", "pixel-norm"], "budget": {"images_seen": 4096},
 "pretrain": {"batch": 64, "blr": 1e-4, "warmup_frac": 0.1, "save_every": 10, "threads": 1, "extra": {"clip-grad": 1, "augment": false}},
 "evaluations": {"knn": {"k": 20}, "linprobe": {}, "finetune": {"epochs": 2, "batch": 32}, "scratch": {"steps": 5}},
 "seeds": [0, 1], "report": {"metric": "linprobe"}, "estimate": {"gflops": 50, "eval_size": 1000}}
JSON
ls -l $c/idx $c/index $c/subset $c/study
