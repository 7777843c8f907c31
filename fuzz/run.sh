#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a
# bounded time: `fuzz/run.sh [seconds per target]` (CI: 20). New inputs go to
# a scratch corpus under build/fuzz/, so the committed seeds stay small.
# Exit status is non-zero when any target crashes, leaks or hangs.
# FUZZ_TARGETS="idx study" runs a few only. Seeds: fuzz/corpus/<target>/
# (fuzz/make_seeds.sh regenerates those of idx, index, subset and study).
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
CC=${FUZZ_CC:-clang}
out=build/fuzz
mkdir -p "$out"
flags="-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -Isrc"
declare -A srcs=(
  [tar]="src/data/tar.c src/core/check.c"
  [decode]="src/data/decode.c src/data/augment.c src/core/rng.c src/core/check.c -ljpeg -lpng -lm -ldl"
  [meta]="src/data/meta.c src/core/check.c -lcjson -lm"
  [safetensors]="src/core/safetensors.c src/core/fault.c src/core/check.c -lcjson -lm"
  [idx]="src/data/idx.c src/core/check.c -lz"
  [index]="src/data/index.c src/core/prof.c src/data/tar.c src/core/check.c -fopenmp"
  [subset]="src/data/subset.c src/core/prof.c src/data/index.c src/data/tar.c src/data/meta.c src/core/check.c -fopenmp -lcjson -lm"
  [study]="src/study/study.c src/study/plan.c src/core/prof.c src/data/subset.c src/data/index.c src/data/tar.c src/data/meta.c src/model/config.c src/model/hog.c src/core/check.c -fopenmp -lcjson -lm"
)
targets=${FUZZ_TARGETS:-"tar decode meta safetensors idx index subset study"}
status=0
for t in $targets; do
  $CC $flags "fuzz/fuzz_$t.c" ${srcs[$t]} -o "$out/fuzz_$t"
  mkdir -p "$out/corpus_$t"
  if "$out/fuzz_$t" "$out/corpus_$t" "fuzz/corpus/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$out/" \
       -print_final_stats=1 > "$out/fuzz_$t.log" 2>&1; then
    echo "fuzz_$t: $(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$out/fuzz_$t.log" | awk '{print $2}') executions in ${secs}s, no crash"
  else
    echo "fuzz_$t: FAILED (see $out/fuzz_$t.log)"; tail -n 30 "$out/fuzz_$t.log"; status=1
  fi
done
exit $status
