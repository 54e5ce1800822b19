#!/bin/sh
# Builds and runs Scripts/gemm_shapes.c: one thread's share of DenseNet-BC's thin 3x3
# convolution products (per image and tap, and per whole plane) next to a square sgemm.
#   OPENBLAS_CORETYPE=Haswell Scripts/gemm_shapes.sh
set -e
here=$(dirname "$0")
out=${TMPDIR:-/tmp}/gemm_shapes
cc -O2 -o "$out" "$here/gemm_shapes.c" $(pkg-config --cflags --libs openblas)
"$out"
