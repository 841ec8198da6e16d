#!/usr/bin/env bash
# Build promot with CUDA on a machine without a GPU or a system CUDA, for a GPU machine that has the
# NVIDIA driver and a Python environment holding the CUDA 13 libraries (PyTorch's cu130 wheels).
#
#   scripts/build-cuda.sh          # release: promot + the train-step bench, linked, checked, packed for carrying
#   scripts/build-cuda.sh --cpu    # the same two binaries without CUDA (for gpu-check.sh --cpu-dry-run)
#
# 1. The CUDA 13.0 compiler and headers come from PyPI (`pip download` of NVIDIA's wheels, pinned below,
#    `nvidia-nvvm` included: unpinned, pip takes 13.5, whose PTX the 13.0 ptxas rejects), unpacked into
#    $PROMOT_CUDA_DIR (default models/cache/cuda, git-ignored). No venv and no install: the wheels are zips.
# 2. Linking. candle asks cudarc to link the CUDA libraries dynamically (-lcuda -lcublas -lcublasLt
#    -lcurand -lnvrtc -lcudart). No wheel holds libcuda (the driver's), and the others are 1 GB of code the
#    link only needs the names of, so every one is replaced by a stub: an empty shared library with the real
#    soname (libcublas.so.13, libcurand.so.10, libcuda.so.1, ...) and the real exported names (read with `nm`
#    from the wheel's library; for libcuda, every cu* name in the wheel's cuda.h, with its _ptsz/_ptds
#    variants). The binary records only the sonames; at run time the real libraries are found by the
#    loader: the driver's libcuda.so.1 on the system path, the rest from LD_LIBRARY_PATH, which
#    scripts/gpu-check.sh (the launcher) sets from the Python environment (`import nvidia`: site-packages/
#    nvidia/cu13/lib). No rpath is set: the environment's location differs between machines.
# 3. The build: PATH and CUDA_ROOT point at the unpacked toolkit, CUDA_COMPUTE_CAP (default 90: H100/H200)
#    picks the GPU code candle's kernels are compiled for. Its own target dir (default target/cuda), so the
#    CPU build stays as it was.
# 4. The pack (release only): both binaries stripped and put in one tar.xz with a dictionary larger than
#    a binary, so the second costs little (they share candle and its kernels), in $PROMOT_GPU_DIR
#    (default .promot-cache/gpu, git-ignored): carry that folder to the GPU machine, where
#    scripts/gpu-check.sh unpacks it.
#
# Needs: python3 with pip (only to download), cc and nm (binutils), cargo, xz. Idempotent: the toolkit is
# fetched once (a stamp records the pins), cargo rebuilds only what changed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
mode=release
case "${1:-}" in
    "") ;;
    --cpu) mode=cpu ;;
    -h | --help)
        sed -n '2,30p' "$0"
        exit 0
        ;;
    *)
        echo "usage: $0 [--cpu]" >&2
        exit 2
        ;;
esac

cuda_dir="${PROMOT_CUDA_DIR:-$here/models/cache/cuda}"
gpu_dir="${PROMOT_GPU_DIR:-$here/.promot-cache/gpu}"
if [ "$mode" = cpu ]; then
    gpu_dir="${PROMOT_GPU_DIR:-$here/.promot-cache/cpu}"
fi
# The CUDA 13.0 wheels (the driver on the lent machines is CUDA 13.0; its PyTorch is cu130).
pins=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.0.2.14
    nvidia-curand==10.4.0.35
)
root="$cuda_dir/cu13"
stamp="$cuda_dir/pins.txt"

say() { echo "build-cuda: $*" >&2; }

# --- 1 and 2: the toolkit, with stub libraries --------------------------------------------------------

# An empty shared library named $2 (its soname) exporting the names read from stdin, one a line.
make_stub() {
    local out="$1" soname="$2" src
    src="$(mktemp --suffix=.c)"
    sort -u | awk 'NF { printf "void %s(void) {}\n", $1 }' >"$src"
    cc -shared -fPIC -o "$out" -Wl,-soname,"$soname" "$src"
    rm -f "$src"
}

fetch_toolkit() {
    if [ -x "$root/bin/nvcc" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pins[*]}" ]; then
        return
    fi
    for tool in cc nm; do
        command -v "$tool" >/dev/null || { say "needs $tool (apt-get install build-essential)"; exit 1; }
    done
    local python
    python="$(command -v python3 || command -v python || true)"
    if [ -z "$python" ] || ! "$python" -m pip --version >/dev/null 2>&1; then
        say "needs python3 with pip, to download NVIDIA's CUDA wheels from PyPI"
        exit 1
    fi
    local tmp
    tmp="$(mktemp -d)"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    say "downloading the CUDA 13.0 wheels from PyPI (about 660 MB)"
    "$python" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux_2_12_x86_64 --platform manylinux2014_x86_64 \
        --platform manylinux2010_x86_64 --dest "$tmp/wheels" "${pins[@]}"
    rm -rf "$cuda_dir.part"
    mkdir -p "$cuda_dir.part"
    # Unpack everything but the metadata; then put stubs in place of the libraries.
    "$python" - "$tmp/wheels" "$cuda_dir.part" <<'EOF'
import os, stat, sys, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(wheels)):
    with zipfile.ZipFile(os.path.join(wheels, name)) as z:
        for info in z.infolist():
            if ".dist-info/" in info.filename or info.is_dir() or not info.filename.startswith("nvidia/cu13/"):
                continue
            path = z.extract(info, os.path.join(dest, "x"))
            mode = (info.external_attr >> 16) & 0o777
            os.chmod(path, mode or 0o644)
EOF
    mv "$cuda_dir.part/x/nvidia/cu13" "$cuda_dir.part/cu13"
    rm -rf "$cuda_dir.part/x"
    local r="$cuda_dir.part/cu13" lib soname base
    chmod +x "$r"/bin/* "$r"/nvvm/bin/* 2>/dev/null || true
    for lib in "$r"/lib/lib*.so.*; do
        soname="$(basename "$lib")"
        case "$soname" in
            libcublas.so.* | libcublasLt.so.* | libcurand.so.* | libnvrtc.so.* | libcudart.so.*) ;;
            *) rm -f "$lib"; continue ;; # not linked against (nvblas, nvvm, the nvrtc builtins)
        esac
        nm -D --defined-only "$lib" | awk '$2 ~ /^[TWi]$/ { sub(/@.*/, "", $3); print $3 }' \
            | make_stub "$lib.stub" "$soname"
        mv "$lib.stub" "$lib"
        base="${soname%%.so.*}"
        ln -sf "$soname" "$r/lib/$base.so"
    done
    # libcuda (the driver's, in no wheel): every cu* name cuda.h mentions, and the per-thread-stream
    # variants its macros make of them.
    grep -ohE '\bcu[A-Z][A-Za-z0-9_]*' "$r/include/cuda.h" | sort -u \
        | awk '{ print; print $1 "_ptsz"; print $1 "_ptds" }' | make_stub "$r/lib/libcuda.so.1" libcuda.so.1
    ln -sf libcuda.so.1 "$r/lib/libcuda.so"
    printf '%s' "${pins[*]}" >"$cuda_dir.part/pins.txt"
    rm -rf "$cuda_dir"
    mv "$cuda_dir.part" "$cuda_dir"
    rm -rf "$tmp"
    trap - EXIT
    say "toolkit in $cuda_dir ($(du -sh "$cuda_dir" | cut -f1)): nvcc $("$root/bin/nvcc" --version | grep -o 'release [0-9.]*')"
}

# --- 3: the build --------------------------------------------------------------------------------------

start=$(date +%s)
features=()
if [ "$mode" != cpu ]; then
    fetch_toolkit
    export PATH="$root/bin:$PATH" CUDA_ROOT="$root" CUDA_HOME="$root"
    export CUDA_COMPUTE_CAP="${CUDA_COMPUTE_CAP:-90}"
    export CARGO_TARGET_DIR="${PROMOT_CUDA_TARGET_DIR:-$here/target/cuda}"
    features=(--features cuda)
fi
cd "$here"
case "$mode" in
    release) profile=(--release) ;;
    cpu) profile=() ;;
esac
say "cargo build ${profile[*]} ${features[*]} (promot and the train-step bench)"
# The bench is built as a binary (cargo build --bench), not run.
messages="$(mktemp)"
cargo build "${profile[@]}" "${features[@]}" --bin promot --bench train_step --message-format=json-render-diagnostics \
    >"$messages"
say "built in $(( $(date +%s) - start )) s"
# Where cargo put them: the bench's file name carries a hash.
mapfile -t exes < <(python3 - "$messages" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] in ("promot", "train_step"):
        print(m["target"]["name"] + "\t" + m["executable"])
EOF
)
rm -f "$messages"
if [ "${#exes[@]}" -ne 2 ]; then
    say "expected the promot and train_step executables from cargo, got: ${exes[*]:-none}"
    exit 1
fi
if [ "$mode" = release ]; then
    for e in "${exes[@]}"; do
        f="${e#*$'\t'}"
        # Linked against the CUDA libraries by soname (the stubs stood in for them), and it starts: with
        # the stubs on the library path it runs on the CPU here.
        for lib in libcuda.so.1 libcublas.so.13; do
            readelf -d "$f" | grep -q "NEEDED.*\[$lib\]" || { say "$f does not need $lib"; exit 1; }
        done
    done
    promot_exe="$(printf '%s\n' "${exes[@]}" | awk -F'\t' '$1 == "promot" { print $2 }')"
    LD_LIBRARY_PATH="$root/lib" PROMOT_HOME="$here" "$promot_exe" --device cpu -e 'tensor([1.0, 2.0]).to_array()' >/dev/null \
        || { say "the CUDA build does not start on the CPU (with the stub libraries)"; exit 1; }
fi

# --- 4: the pack ---------------------------------------------------------------------------------------

mkdir -p "$gpu_dir/bin"
for e in "${exes[@]}"; do
    name="${e%%$'\t'*}"
    cp "${e#*$'\t'}" "$gpu_dir/bin/$name"
    strip "$gpu_dir/bin/$name"
done
if [ "$mode" = cpu ]; then
    say "CPU binaries in $gpu_dir/bin (for gpu-check.sh --cpu-dry-run)"
    exit 0
fi
rev="$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$here" status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo "+changes" || true)"
printf 'commit %s%s\nbuilt %s\ncompute_cap %s\npins %s\n' "$rev" "$dirty" "$(date -u +%FT%TZ)" \
    "$CUDA_COMPUTE_CAP" "${pins[*]}" >"$gpu_dir/bin/BUILD"
tar -C "$gpu_dir/bin" -cf - promot train_step BUILD | xz -T1 --lzma2=preset=9e,dict=256MiB >"$gpu_dir/promot-cuda.tar.xz.part"
mv "$gpu_dir/promot-cuda.tar.xz.part" "$gpu_dir/promot-cuda.tar.xz"
rm -rf "$gpu_dir/bin"
say "packed $gpu_dir/promot-cuda.tar.xz: $(du -b "$gpu_dir/promot-cuda.tar.xz" | cut -f1) bytes (carry .promot-cache/gpu)"
