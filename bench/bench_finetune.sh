#!/usr/bin/env bash
# Fine-tuning step throughput, mimscale vs a timm-style PyTorch step
# (bench/torch_finetune_bench.py), both precisions of both, in one run on the
# same machine. Prints the four JSON lines, then each side's fastest and the
# ratio of mimscale's fastest to PyTorch's fastest (issue 19: >= 2x).
# Usage: bench/bench_finetune.sh [model] [steps]; THREADS (default 2).
#   default: vit_tiny 32px patch 4, batch 128, 10 classes
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-vit_tiny}; steps=${2:-5}; threads=${THREADS:-2}
args="--model $model --img 32 --patch 4 --batch 128"
make -s build/bench/bench_finetune
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); flags:" \
     "$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -xE 'avx2|avx512f|avx512_bf16|amx_bf16|amx_tile' | tr '\n' ' ')"
lines=()
for p in fp32 bf16; do
  lines+=("$(./build/bench/bench_finetune $args --steps "$steps" --warmup 2 --threads "$threads" --precision $p)")
  lines+=("$(/usr/bin/python3 bench/torch_finetune_bench.py $args --steps "$steps" --warmup 2 --threads "$threads" --precision $p)")
done
printf '%s\n' "${lines[@]}"
/usr/bin/python3 - "${lines[@]}" <<'PY'
import json, sys
rows = [json.loads(x) for x in sys.argv[1:]]
best = {}
for r in rows:
    if r["impl"] not in best or r["img_per_s"] > best[r["impl"]]["img_per_s"]:
        best[r["impl"]] = r
m, t = best["mimscale"], best["pytorch"]
print(f"finetune {m['model']} batch {m['batch']}: mimscale fastest {m['precision']} {m['img_per_s']:.1f} img/s "
      f"(peak RSS {m['peak_rss_mb']:.0f} MB), pytorch fastest {t['precision']} {t['img_per_s']:.1f} img/s "
      f"(peak RSS {t['peak_rss_mb']:.0f} MB), ratio {m['img_per_s'] / t['img_per_s']:.2f}x")
PY
