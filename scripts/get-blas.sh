#!/usr/bin/env bash
# Fetch OpenBLAS (a single self-contained shared library, f32 GEMM several times faster than candle's
# pure-Rust one on this project's shapes) into promot's models cache, where src/model/blas.rs finds it.
# The library comes from the PyPI package `scipy-openblas32`, the wheel NumPy and SciPy build against;
# pip only downloads it (no install, no dependencies), we unpack the one .so file. Its symbols carry a
# `scipy_` prefix (scipy_cblas_sgemm, scipy_openblas_set_num_threads).
#
#   scripts/get-blas.sh            # into $PROMOT_HOME/models/cache/blas, or models/cache/blas here
#   BLAS_DIR=/some/dir scripts/get-blas.sh
#
# Idempotent: an existing, complete file is left alone. Prints the path of the library.
# Without it promot works the same, with candle's matmul (slower); PROMOT_BLAS=off disables it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${BLAS_DIR:-${PROMOT_HOME:-$here}/models/cache/blas}"
name="libscipy_openblas.so"
package="scipy-openblas32==0.3.34.481.3"

if [ -s "$dest/$name" ]; then
    echo "$dest/$name"
    exit 0
fi

pip="$(command -v pip3 || command -v pip || true)"
if [ -z "$pip" ]; then
    echo "get-blas: needs pip (to download the $package wheel from PyPI)" >&2
    exit 1
fi
unzip_py="$(command -v python3 || command -v python || true)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$pip" download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$package" >&2
wheel="$(ls "$tmp"/*.whl | head -n 1)"

mkdir -p "$dest"
# A wheel is a zip archive; take the .so member only.
if command -v unzip >/dev/null 2>&1; then
    unzip -q -j -o "$wheel" "scipy_openblas32/lib/$name" -d "$tmp/out"
elif [ -n "$unzip_py" ]; then
    "$unzip_py" -c 'import sys, zipfile, shutil, os
z = zipfile.ZipFile(sys.argv[1]); os.makedirs(sys.argv[3], exist_ok=True)
with z.open(sys.argv[2]) as src, open(os.path.join(sys.argv[3], os.path.basename(sys.argv[2])), "wb") as dst:
    shutil.copyfileobj(src, dst)' "$wheel" "scipy_openblas32/lib/$name" "$tmp/out"
else
    echo "get-blas: needs unzip or python to unpack the wheel" >&2
    exit 1
fi
# Move into place only once complete, so an interrupted run never leaves a truncated library behind.
mv "$tmp/out/$name" "$dest/$name.part"
mv "$dest/$name.part" "$dest/$name"
echo "$dest/$name"
