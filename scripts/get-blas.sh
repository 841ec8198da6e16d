#!/usr/bin/env bash
# Fetch OpenBLAS (a single self-contained shared library) into promot's models cache, where
# src/kernels/blas.rs finds it and runs every weight product as sgemm. It comes from the PyPI package
# `scipy-openblas32`, the wheel NumPy and SciPy build against (scripts/fetch-wheel-file.sh downloads it
# and unpacks the one .so file); its symbols carry a `scipy_` prefix (scipy_cblas_sgemm, ...).
# How much faster it is than candle's gemm depends on the CPU (README, Performance).
#
#   scripts/get-blas.sh            # into $PROMOT_HOME/models/cache/blas, or models/cache/blas here
#   BLAS_DIR=/some/dir scripts/get-blas.sh
#
# Idempotent: an existing, complete file is left alone. Prints the path of the library.
# Without it promot works the same, with candle's matmul; PROMOT_BLAS=off disables it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec bash "$here/scripts/fetch-wheel-file.sh" "scipy-openblas32==0.3.34.481.3" "scipy_openblas32/lib/libscipy_openblas.so" \
    "${BLAS_DIR:-${PROMOT_HOME:-$here}/models/cache/blas}"
