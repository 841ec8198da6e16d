#!/usr/bin/env bash
# promot on a GPU, checked in one command (issue 33): on a lent GPU machine (an H100 or H200 with the CUDA 13
# driver and PyTorch's Python, no Rust, no network), within 8 minutes:
#   (a) parity   CUDA against the CPU on the tiny T5 and Llama fixtures (and SmolLM2 where its GGUF is
#                there): logits within 1e-3 relative (f32), the gradients of a batch within 1e-3, one
#                Adafactor step's update within 1e-2 (also with dropout: the same masks on both devices),
#                greedy and beam-4 outputs equal (scripts/gpu/parity.rhai),
#                as built (the fused CUDA ops: softmax, RMS norm, cross-entropy) and again on the
#                device-generic path alone (PROMOT_KERNELS=generic, the fixtures);
#                and `promot --device cuda` putting a script's tensors on the GPU;
#   (b) speed    the training step (full fine-tuning, ProMoT stage 1, stage 2; f32 and bf16) of an
#                mT5-base-shaped T5 v1.1 and SmolLM2-135M at batch 64, random weights (benches/shapes_gpu.json),
#                promot's (the train_step bench binary) beside PyTorch's on the same GPU
#                (benches/train_step_torch.py --device cuda), as ratios;
#   (c) ProMoT   a short ProMoT run (20 + 10 steps) on RTE at batch 64 and its RTE accuracy
#                (scripts/gpu/promot_rte.rhai), on SmolLM2 if its GGUF is there, else on a SmolLM2-shaped
#                model with random weights (scripts/gpu/make_smollm2_shaped.py).
# Writes OUT_DIR/summary.md (the table) and OUT_DIR/summary.json, with each part's own JSON and log beside
# them, and exits non-zero if any part failed or disagreed.
#
#   scripts/gpu-check.sh OUT_DIR                  # on the GPU machine
#   scripts/gpu-check.sh --cpu-dry-run OUT_DIR    # here: every part with cpu in place of cuda, tiny sizes
#
# On the GPU machine. Build here with `bash scripts/build-cuda.sh` (it packs .promot-cache/gpu/promot-cuda.tar.xz,
# 11.7 MB for both binaries), then, with the device tool: run(command="bash scripts/gpu-check.sh $OUT",
# carry=[".promot-cache/gpu"], timeout_s=540). The binaries are unpacked to .promot-cache/gpu/bin. They were
# linked against stubs (build-cuda.sh): the real libraries are found through LD_LIBRARY_PATH, which this
# script sets to the CUDA library folders of the Python environment's `nvidia` package (PyTorch's cu130
# wheels: site-packages/nvidia/cu13/lib); the driver's libcuda.so.1 comes from the system's path.
# SmolLM2's GGUF (~90 MB) does not fit in one carry beside the tree (~30 MB) and the binaries; to check it
# too, split it across two earlier calls' carries, which stay on the warm machine:
#   split -n 2 -d models/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf part-; mkdir -p .promot-cache/smollm2-0 .promot-cache/smollm2-1
#   mv part-00 .promot-cache/smollm2-0/; mv part-01 .promot-cache/smollm2-1/
#   run(command="true", carry=[".promot-cache/smollm2-0"]); run(command="true", carry=[".promot-cache/smollm2-1"]);
#   then the check as above, within the 30 s the machine stays warm; this script joins the parts.
#
# The parts run in the order a, b (f32), c, b (bf16), each under its own time limit and all under one budget
# (GPU_CHECK_BUDGET seconds, default 450): a part that would start past it is skipped and counts as failed.
#
# Environment: PROMOT_BIN_DIR (the folder holding promot and train_step; default as above, or
# .promot-cache/cpu/bin for the dry run, made by `build-cuda.sh --cpu`), PYTHON (the Python with torch; default
# python3), GPU_CHECK_PARTS (default "a b c").
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

dry=0
if [ "${1:-}" = "--cpu-dry-run" ]; then
    dry=1
    shift
fi
if [ $# -ne 1 ]; then
    echo "usage: $0 [--cpu-dry-run] OUT_DIR" >&2
    exit 2
fi
out="$1"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
python="${PYTHON:-python3}"
parts="${GPU_CHECK_PARTS:-a b c}"
start=$(date +%s)
fail() { echo "gpu-check: $*" >&2; exit 1; }
say() { echo "[$(( $(date +%s) - start )) s] $*"; }

# --- the binaries and the libraries --------------------------------------------------------------------

if [ $dry = 1 ]; then
    dev=cpu
    bin="${PROMOT_BIN_DIR:-$root/.promot-cache/cpu/bin}"
    shapes="$root/benches/shapes_tiny.json"
else
    dev=cuda
    bin="${PROMOT_BIN_DIR:-$root/.promot-cache/gpu/bin}"
    shapes="$root/benches/shapes_gpu.json"
    if [ ! -x "$bin/promot" ] && [ -f "$root/.promot-cache/gpu/promot-cuda.tar.xz" ]; then
        mkdir -p "$bin"
        xz -dc "$root/.promot-cache/gpu/promot-cuda.tar.xz" | tar -C "$bin" -xf - || fail "cannot unpack the binaries"
    fi
    libs="$("$python" - <<'EOF'
import glob, os
try:
    import nvidia
except ImportError:
    raise SystemExit(0)
dirs = set()
for base in nvidia.__path__:
    for lib in glob.glob(os.path.join(base, "**", "lib*.so*"), recursive=True):
        dirs.add(os.path.dirname(lib))
print(":".join(sorted(dirs)))
EOF
)"
    [ -n "$libs" ] || fail "$python has no 'nvidia' package (PyTorch's CUDA libraries): set PYTHON to the Python that holds torch"
    export LD_LIBRARY_PATH="$libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
for exe in promot train_step; do
    [ -x "$bin/$exe" ] || fail "no $bin/$exe: build it with scripts/build-cuda.sh$([ $dry = 1 ] && echo ' --cpu') (see the top of this script)"
done
missing="$(ldd "$bin/promot" 2>&1 | grep 'not found' || true)"
[ -z "$missing" ] || fail "libraries the binary needs are missing (LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}):
$missing"
# The binaries were built elsewhere: stdlib/, data/ and models/ are this checkout's.
export PROMOT_REPO="$root" PROMOT_HOME="$root"

{
    echo "date: $(date -u +%FT%TZ)"
    echo "mode: $([ $dry = 1 ] && echo 'cpu dry run (cpu against cpu, tiny sizes)' || echo 'cuda against cpu')"
    echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
    [ -f "$bin/BUILD" ] && sed 's/^/build: /' "$bin/BUILD"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | sed 's/^/gpu: /'
    "$python" -c 'import torch; print("torch:", torch.__version__, "cuda", torch.version.cuda)' 2>/dev/null
    echo "cpu: $(nproc) cores"
} >"$out/env.txt"
cat "$out/env.txt"

# Each part: its status in $out/status-NAME (0 = passed), its output in $out/NAME.log; its time limit is its
# own or what is left of the budget, whichever is less.
budget="${GPU_CHECK_BUDGET:-450}"
run_part() {
    local name="$1" limit="$2"
    shift 2
    local left=$(( budget - ($(date +%s) - start) ))
    if [ "$left" -lt 15 ]; then
        say "$name: skipped, the budget of $budget s is spent"
        echo 124 >"$out/status-$name"
        return 0
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    say "$name (at most $limit s): $*"
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    echo "$rc" >"$out/status-$name"
    tail -n 25 "$out/$name.log"
    [ "$rc" = 124 ] && echo "($name stopped after $limit s)"
    say "$name: exit $rc"
    return 0
}

# --- SmolLM2, where its GGUF (or its parts) came along -------------------------------------------------

gguf="$root/models/cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ] && ls "$root"/.promot-cache/smollm2-*/part-* >/dev/null 2>&1; then
    mkdir -p "$(dirname "$gguf")"
    cat $(ls "$root"/.promot-cache/smollm2-*/part-* | sort -t/ -k2) >"$gguf.part" && mv "$gguf.part" "$gguf"
fi
smollm2=()
[ -s "$gguf" ] && smollm2=(smollm2)

# --- (a) parity ----------------------------------------------------------------------------------------

if [[ " $parts " == *" a "* ]]; then
    run_part parity 120 "$bin/promot" run scripts/gpu/parity.rhai cpu "$dev" "$out/parity.json" \
        tests/fixtures/tiny-t5 tests/fixtures/tiny-llama "${smollm2[@]}"
    # The same on the device-generic path alone (PROMOT_KERNELS=generic: no fused CUDA op, on either side),
    # so both of the GPU's paths are checked.
    PROMOT_KERNELS=generic run_part parity_generic 60 "$bin/promot" run scripts/gpu/parity.rhai cpu "$dev" \
        "$out/parity-generic.json" tests/fixtures/tiny-t5 tests/fixtures/tiny-llama
    # The --device flag: a script's tensors and models on the device.
    run_part device_flag 30 "$bin/promot" --device "$dev" -e \
        "let t = tensor([1.0, 2.0]); let m = load_model(\"tests/fixtures/tiny-t5\"); if !t.device().starts_with(\"$dev\") || !m.param(\"shared.weight\").device().starts_with(\"$dev\") { throw \`on \${t.device()}, not $dev\`; } t.device()"
fi

# --- (b) the training step against PyTorch, (c) a short ProMoT run on RTE ------------------------------

if [ $dry = 1 ]; then steps=1 warmup=1; else steps=3 warmup=1; fi
bench() {
    local dtype="$1"
    if "$python" -c 'import torch, transformers' >/dev/null 2>&1; then
        PROMOT_BENCH_DTYPE=$dtype run_part "torch_$dtype" 90 "$python" benches/train_step_torch.py --device "$dev" \
            --shapes-file "$shapes" --out "$out/torch_$dtype.json" --steps $steps --warmup $warmup --gen-reps 1 \
            --threads "$(nproc)"
    else
        echo "no torch + transformers in $python: the PyTorch side is skipped (no ratios)" | tee "$out/torch_$dtype.log"
        if [ $dry = 1 ]; then echo 0 >"$out/status-torch_$dtype"; else echo 1 >"$out/status-torch_$dtype"; fi
    fi
    PROMOT_BENCH_DTYPE=$dtype PROMOT_BENCH_DEVICE=$dev PROMOT_BENCH_SHAPES_FILE="$shapes" \
        PROMOT_TORCH_JSON="$out/torch_$dtype.json" PROMOT_BENCH_JSON="$out/bench_$dtype.json" \
        PROMOT_BENCH_STEPS=$steps PROMOT_BENCH_WARMUP=$warmup PROMOT_BENCH_GEN_REPS=1 PROMOT_BENCH_OPS=0 \
        run_part "bench_$dtype" 120 "$bin/train_step"
}

promot_rte() {
    if [ $dry = 1 ]; then
        run_part promot_rte 120 "$bin/promot" run scripts/gpu/promot_rte.rhai "$dev" tests/fixtures/tiny-llama \
            "$out/promot_rte.json" 4 2 2 8 4 32
        return
    fi
    local model=smollm2
    if [ ${#smollm2[@]} = 0 ]; then
        model="$root/.promot-cache/smollm2-shaped"
        if [ ! -f "$model/model.safetensors" ] && ! "$python" scripts/gpu/make_smollm2_shaped.py "$model" >"$out/make_model.log" 2>&1; then
            cat "$out/make_model.log"
            echo 1 >"$out/status-promot_rte"
            return
        fi
    fi
    run_part promot_rte 120 "$bin/promot" run scripts/gpu/promot_rte.rhai "$dev" "$model" "$out/promot_rte.json" 64 20 10 64
}

if [[ " $parts " == *" b "* ]]; then bench f32; fi
if [[ " $parts " == *" c "* ]]; then promot_rte; fi
if [[ " $parts " == *" b "* ]]; then bench bf16; fi

# --- the table -----------------------------------------------------------------------------------------

"$python" - "$out" "$dry" <<'EOF'
import glob, json, os, sys
out, dry = sys.argv[1], sys.argv[2] == "1"

def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

status = {os.path.basename(p)[len("status-"):]: int(open(p).read().strip() or 1)
          for p in glob.glob(os.path.join(out, "status-*"))}
lines = [f"# promot GPU check{' (CPU dry run: cpu against cpu, tiny sizes)' if dry else ''}", ""]
lines += ["```", open(os.path.join(out, "env.txt")).read().strip(), "```", ""]
lines += ["| part | exit |", "|---|---|"] + [f"| {k} | {v}{'' if v == 0 else ' FAILED'} |" for k, v in sorted(status.items())]

parity = load("parity.json")
parity_generic = load("parity-generic.json")
for path, p in (("as built (fused CUDA ops)", parity), ("device-generic path forced", parity_generic)):
    if not p:
        continue
    lines += ["", f"## (a) {p['device']} against {p['reference']}, {path} (relative L2; tolerances {p['tolerances']})", "",
              "| model | logits | grads | step | step, dropout | greedy equal | beam-4 equal | |",
              "|---|---|---|---|---|---|---|---|"]
    for name, r in p["models"].items():
        lines.append(f"| {name} | {r['logits_rel']:.2e} | {r['grads_rel']:.2e} | {r['step_rel']:.2e} | "
                     f"{r['dropout_rel']:.2e} | {r['greedy_equal']} | "
                     f"{r['beam4_equal']} | {'ok' if r['ok'] else 'FAIL'} |")

def num(x, digits=1):
    return "" if x is None else f"{x:.{digits}f}"

benches = {}
for dtype in ("f32", "bf16"):
    b = load(f"bench_{dtype}.json")
    if b:
        benches[dtype] = b
if benches:
    lines += ["", "## (b) training step, ms (promot / PyTorch on the same device; below 1: promot faster)", "",
              "| shape | setting | dtype | promot | torch | ratio |", "|---|---|---|---|---|---|"]
    for dtype, b in benches.items():
        for shape, settings in b["results"].items():
            for setting, r in settings.items():
                if setting == "beam4":  # tokens/s; ratio = torch rate / promot rate
                    ours, theirs, label = r["tokens_per_s"], r.get("torch_tokens_per_s"), "beam-4 tokens/s"
                else:
                    ours, theirs, label = r["ms_per_step"], r.get("torch_ms_per_step"), setting
                lines.append(f"| {shape} | {label} | {dtype} | {num(ours)} | {num(theirs)} | {num(r.get('ratio'), 2)} |")

run = load("promot_rte.json")
if run:
    lines += ["", "## (c) ProMoT on RTE", "",
              f"{run['model']} on {run['device']}, batch {run['batch_size']}: {run['prompt_steps']} + {run['model_steps']} steps "
              f"in {run['train_seconds']:.1f} s ({run['seconds_per_step']:.2f} s/step), RTE accuracy {run['rte_accuracy']} "
              f"on {run['eval_examples']} examples ({run['eval_seconds']:.1f} s); losses finite: {run['finite']}"]

ok = bool(status) and all(v == 0 for v in status.values())
lines += ["", f"**{'passed' if ok else 'FAILED'}**"]
text = "\n".join(lines) + "\n"
open(os.path.join(out, "summary.md"), "w").write(text)
json.dump({"ok": ok, "status": status, "parity": parity, "parity_generic": parity_generic, "bench": benches,
           "promot_rte": run},
          open(os.path.join(out, "summary.json"), "w"), indent=2)
print(text)
sys.exit(0 if ok else 1)
EOF
rc=$?
say "done (summary in $out/summary.md)"
exit $rc
