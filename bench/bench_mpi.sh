#!/usr/bin/env bash
# Data-parallel pre-training on one machine: 1 process x T threads against
# R ranks x T/R threads (mpirun), same global batch, same total cores.
# Prints the images/s of each (mean over the steps after the first two), the
# ratio, and the MPI run's "dist:" line: bytes all-reduced per step, calls,
# time blocked waiting for the all-reduce after the backward, and the time
# from the first bucket's start to the last completion (rank 0's view).
#
# Usage: bench/bench_mpi.sh [steps]     (default 20; 3 is a smoke test)
# Environment: THREADS (total cores, default 2), RANKS (default 2),
#   BIND (core: each rank pinned to its own T/R cores, the default; none: the
#   OS schedules), DATA (IDX folder, default Fashion-MNIST, resized to 32x32),
#   MPIRUN_ARGS (extra mpirun flags, e.g. --oversubscribe on a busy box).
# The workload is bench_pretrain.sh's tiny config: vit_tiny, 32x32, patch 4,
# decoder 128x2, global batch 256 (Fashion-MNIST is 1 channel, so the patch
# embedding is 3x smaller than bench_mae's synthetic RGB; the rest is equal).
#
# Binding: --bind-to core (with --map-by slot:PE=T/R) keeps each rank and its
# OpenMP threads on their own cores, so ranks do not migrate onto each other
# between the all-reduce waits; the 1-process run is not bound (one process
# with T threads has no one to collide with). On a machine shared with other
# jobs use BIND=none.
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-20}; threads=${THREADS:-2}; ranks=${RANKS:-2}; bind=${BIND:-core}
data=${DATA:-/usr/share/datasets/fashion-mnist}
gb=256
if (( threads % ranks || gb % ranks )); then echo "THREADS ($threads) and 256 must be multiples of RANKS ($ranks)" >&2; exit 2; fi
tpr=$((threads / ranks))
command -v mpirun >/dev/null || { echo "mpirun not found" >&2; exit 2; }
make -s build/mimscale
tmp=$(mktemp -d /tmp/bench_mpi_XXXXXX)
trap 'rm -rf "$tmp"' EXIT
args="pretrain --model vit_tiny --img 32 --patch 4 --dec-dim 128 --dec-depth 2 --dec-heads 4 --data $data
      --steps $steps --log-every 1 --save-every 0 --keep 1 --warmup-epochs 0 --lr 1e-4"   # not --quiet: the summary has the dist: line
case $bind in
  core) bindargs="--map-by slot:PE=$tpr --bind-to core";;
  none) bindargs="--bind-to none";;
  *) echo "BIND must be core or none" >&2; exit 2;;
esac

# mean img_per_s of the metrics rows after the first two (all rows if <= 2)
ips() {
  awk -F'"img_per_s": ' 'NF > 1 { split($2, a, ","); v[++n] = a[1] }
    END { s = 0; k = 0; for (i = (n > 2 ? 3 : 1); i <= n; i++) { s += v[i]; k++ } printf "%.1f", k ? s / k : 0 }' "$1"
}

OMP_NUM_THREADS=$threads ./build/mimscale $args --threads "$threads" --batch $gb --out "$tmp/one" 2>"$tmp/one.log" ||
  { cat "$tmp/one.log" >&2; exit 1; }
OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1} \
  mpirun -np "$ranks" $bindargs ${MPIRUN_ARGS:-} -x OMP_NUM_THREADS=$tpr \
  ./build/mimscale $args --threads "$tpr" --batch $((gb / ranks)) --out "$tmp/mpi" 2>"$tmp/mpi.log" ||
  { cat "$tmp/mpi.log" >&2; exit 1; }

one=$(ips "$tmp/one/metrics.jsonl"); mpi=$(ips "$tmp/mpi/metrics.jsonl")
dist=$(tr '\r' '\n' <"$tmp/mpi.log" | grep '^dist:' || echo "dist: (no line: was mimscale built with MPI?)")
echo "vit_tiny 32px p4 dec 128x2, global batch $gb, $steps steps, $(nproc) cores here"
echo "1 process x $threads threads:        $one img/s"
echo "$ranks ranks x $tpr threads (bind $bind): $mpi img/s  ($(awk -v a="$mpi" -v b="$one" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')x)"
echo "$dist"
