#!/usr/bin/env bash
# Refactor check: the same fixed-seed pre-training and fine-tuning runs with
# the binary of REV (built in a temporary git worktree) and with this
# checkout's build/mimscale, every file compared byte for byte (checkpoints,
# optimizer state, metrics.jsonl with its timing fields removed).
#   scripts/identity_check.sh REV        e.g. scripts/identity_check.sh HEAD~3
# Runs: pixel-norm fp32 and bf16, HOG, a teacher target on the teacher's grid
# and resized to another one, fine-tuning fp32 / bf16 / at another resolution
# (pos-embed resize), the scratch baseline. Fashion-MNIST (Debian's
# dataset-fashion-mnist); about 3 minutes on 2 cores. Exit 1 on any difference.
set -euo pipefail
cd "$(dirname "$0")/.."
rev=${1:?usage: scripts/identity_check.sh REV}
work=$(mktemp -d /tmp/mim-identity-XXXXXX)
trap 'git worktree remove --force "$work/ref" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git worktree add -q --detach "$work/ref" "$rev"
make -s -C "$work/ref" -j2 build/mimscale >/dev/null
make -s -j2 build/mimscale >/dev/null
runs() {   # BIN DEST: every run into one fixed folder (paths are part of the settings), then moved
  local B=$1 O=$work/cur
  rm -rf "$O"; mkdir -p "$O"
  local C="--model vit_nano --patch 7 --dec-dim 64 --dec-depth 1 --dec-heads 4 --batch 32 --steps 12 --save-every 6 --log-every 2 --threads 2 --quiet --seed 3"
  local T="$O/pix/ckpt-000000012/model.safetensors"
  $B pretrain $C --target pixel-norm --precision fp32 --out $O/pix
  $B pretrain $C --target pixel-norm --precision bf16 --out $O/pixbf
  $B pretrain $C --target hog --hog-cell 7 --precision fp32 --out $O/hog
  $B pretrain $C --target teacher --teacher $T --precision fp32 --out $O/tea
  $B pretrain ${C/--patch 7/--patch 4} --target teacher --teacher $T --precision fp32 --out $O/tea2
  local F="--batch 32 --steps 10 --save-every 5 --threads 2 --quiet --seed 5 --eval-every 1"
  $B finetune --ckpt $T $F --precision fp32 --out $O/ft
  $B finetune --ckpt $T $F --img 35 --precision fp32 --out $O/ft35
  $B finetune --ckpt $T $F --precision bf16 --out $O/ftbf
  $B finetune --init random --model vit_nano --patch 7 $F --precision fp32 --out $O/scr
  mv "$O" "$2"
}
runs "$work/ref/build/mimscale" "$work/a" > "$work/a.log" 2>&1
runs "$PWD/build/mimscale" "$work/b" > "$work/b.log" 2>&1
strip() { sed -E 's/"[a-z_]*(time|seconds|elapsed|img_per_s)[a-z_]*": *[-0-9.e+]+,? *//g' "$1"; }
bad=0; n=0
for f in $(cd "$work/a" && find . -type f | sort); do
  n=$((n + 1))
  if [[ $f == *.json || $f == *.jsonl ]]; then cmp -s <(strip "$work/a/$f") <(strip "$work/b/$f") || { echo "DIFF $f"; bad=1; }
  else cmp -s "$work/a/$f" "$work/b/$f" || { echo "DIFF $f"; bad=1; }; fi
done
[ "$(cd "$work/a" && find . -type f | sort)" == "$(cd "$work/b" && find . -type f | sort)" ] || { echo "the file lists differ"; bad=1; }
echo "identity check against $rev: $n files compared, $([ $bad = 0 ] && echo "all byte-identical" || echo "DIFFERENCES")"
exit $bad
