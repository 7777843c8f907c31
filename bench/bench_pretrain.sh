#!/usr/bin/env bash
# Pre-training throughput, mimscale vs the PyTorch reference, in one run on
# the same machine (issue: fp32 >= 1.5x PyTorch fp32). Prints each side's
# JSON line, the ratio and the MFU: the step's GFLOP/s (model FLOPs) over
# oneDNN's own matmul GFLOP/s in that precision on the encoder's linear
# shapes, measured in the same run (bench_matmul). Usage: bench/bench_pretrain.sh [config] [steps]
# PRECISION=bf16 compares mimscale bf16 (oneDNN on AMX / AVX512-BF16, else
# emulated and slow) with PyTorch bf16 autocast; THREADS (default 2).
#   config: tiny (vit_tiny 32px p4, dec 128x2, batch 256; default),
#           small (vit_small 224px p16, dec 256x4, batch 32),
#           base (vit_base 224px p16, dec 512x8, batch 8)
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-tiny}; steps=${2:-5}; threads=${THREADS:-2}; prec=${PRECISION:-fp32}
# mm: the encoder's linears at this batch (1 + 25% of the patches), for the MFU denominator
case $cfg in
  tiny)  args="--model vit_tiny --img 32 --patch 4 --dec-dim 128 --dec-depth 2 --dec-heads 4 --batch 256"
         mm="--model vit_tiny --batch 256 --tokens 17";;
  small) args="--model vit_small --img 224 --patch 16 --dec-dim 256 --dec-depth 4 --dec-heads 8 --batch 32"
         mm="--model vit_small --batch 32 --tokens 50";;
  base)  args="--model vit_base --img 224 --patch 16 --dec-dim 512 --dec-depth 8 --dec-heads 16 --batch 8"
         mm="--model vit_base --batch 8 --tokens 50";;
  *) echo "unknown config $cfg" >&2; exit 2;;
esac
make -s build/bench/bench_mae build/bench/bench_matmul
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); flags:" \
     "$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' | tr '\n' ' ')"
ours=$(./build/bench/bench_mae $args --steps "$steps" --warmup 2 --threads "$threads" --precision "$prec")
torch=$(/usr/bin/python3 bench/torch_mae_bench.py $args --steps "$steps" --warmup 2 --threads "$threads" --precision "$prec")
# oneDNN's own matmul rate on the encoder's linear shapes, in this run
mat=$(./build/bench/bench_matmul $mm --threads "$threads" --seconds 0.3)
echo "$ours"
echo "$torch"
echo "$mat"
/usr/bin/python3 - "$ours" "$torch" "$mat" "$prec" <<'PY'
import json, re, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
# table rows: name M K N | sgemm | oneDNN fp32 | oneDNN bf16 (x) | mimscale bf16 (x) | impl
col = 3 if sys.argv[4] == "bf16" else 2
rates = []
for line in sys.argv[3].splitlines():
    parts = [p.strip() for p in line.split("|")]
    if len(parts) >= 5 and re.match(r"^\S+\s+\d+\s+\d+\s+\d+$", parts[0]):
        m = re.match(r"^[0-9.]+", parts[col])
        if m: rates.append(float(m.group(0)))
mfu = ""
if rates:
    den = sum(rates) / len(rates)
    mfu = f"; MFU {100 * a['gflops'] / den:.0f}% ({a['gflops']:.0f} GFLOP/s of model FLOPs over oneDNN {sys.argv[4]} {den:.0f} GFLOP/s, mean of the encoder's linears)"
print(f"{a['model']} batch {a['batch']}: mimscale {a['precision']} ({a.get('sgemm', '')}) {a['img_per_s']:.1f} img/s, "
      f"pytorch {b['precision']} {b['img_per_s']:.1f} img/s, ratio {a['img_per_s']/b['img_per_s']:.2f}x; "
      f"peak RSS {a['peak_rss_mb']:.0f} MB vs {b['peak_rss_mb']:.0f} MB{mfu}")
PY
