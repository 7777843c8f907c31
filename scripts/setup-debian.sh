#!/usr/bin/env bash
# Installs what mimscale needs on Debian 12 (run as root, or with sudo).
# Build: C compiler, OpenBLAS (OpenMP build), cJSON, libjpeg-turbo, libpng,
# zlib, GSL (the study report's fits), oneDNN (the bf16 matmul backend; on CPUs with AMX-BF16 / AVX512-BF16),
# OpenMPI (data-parallel runs), gnuplot (study figures). Data: Fashion-MNIST. Tests: PyTorch and NumPy as an independent
# reference, clang for the fuzz targets.
set -euo pipefail
pkgs="build-essential make pkg-config libopenblas-dev libopenblas0-openmp libdnnl-dev libcjson-dev libgsl-dev
      libjpeg62-turbo-dev libpng-dev zlib1g-dev dataset-fashion-mnist
      libwebp7 libopenmpi-dev openmpi-bin gnuplot-nox python3-torch python3-numpy python3-pil python3-torchvision clang"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
