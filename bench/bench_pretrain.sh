#!/usr/bin/env bash
# Pre-training throughput, mimscale vs the PyTorch reference, in one run on
# the same machine (issue: fp32 >= 1.5x PyTorch fp32). Prints each side's
# JSON line and the ratio. Usage: bench/bench_pretrain.sh [config] [steps]
# PRECISION=bf16 compares mimscale bf16 (oneDNN on AMX / AVX512-BF16, else
# emulated and slow) with PyTorch bf16 autocast; THREADS (default 2).
#   config: tiny (vit_tiny 32px p4, dec 128x2, batch 256; default),
#           small (vit_small 224px p16, dec 256x4, batch 32),
#           base (vit_base 224px p16, dec 512x8, batch 8)
set -euo pipefail
cd "$(dirname "$0")/.."
cfg=${1:-tiny}; steps=${2:-5}; threads=${THREADS:-2}; prec=${PRECISION:-fp32}
case $cfg in
  tiny)  args="--model vit_tiny --img 32 --patch 4 --dec-dim 128 --dec-depth 2 --dec-heads 4 --batch 256";;
  small) args="--model vit_small --img 224 --patch 16 --dec-dim 256 --dec-depth 4 --dec-heads 8 --batch 32";;
  base)  args="--model vit_base --img 224 --patch 16 --dec-dim 512 --dec-depth 8 --dec-heads 16 --batch 8";;
  *) echo "unknown config $cfg" >&2; exit 2;;
esac
make -s build/bench/bench_mae
ours=$(./build/bench/bench_mae $args --steps "$steps" --warmup 2 --threads "$threads" --precision "$prec")
torch=$(/usr/bin/python3 bench/torch_mae_bench.py $args --steps "$steps" --warmup 2 --threads "$threads" --precision "$prec")
echo "$ours"
echo "$torch"
/usr/bin/python3 - "$ours" "$torch" <<'PY'
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"{a['model']} batch {a['batch']}: mimscale {a['precision']} ({a.get('sgemm', '')}) {a['img_per_s']:.1f} img/s, "
      f"pytorch {b['precision']} {b['img_per_s']:.1f} img/s, ratio {a['img_per_s']/b['img_per_s']:.2f}x; "
      f"peak RSS {a['peak_rss_mb']:.0f} MB vs {b['peak_rss_mb']:.0f} MB")
PY
