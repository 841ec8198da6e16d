#!/usr/bin/env bash
# One-command train-step benchmark: the PyTorch + transformers side first (when
# a Python with torch and transformers is around: $PYTHON, /work/pyenv, or
# python3 on PATH), then promot's, which prints the promot/PyTorch ratios.
# Extra arguments go to the Python script (e.g. --steps 10); PROMOT_BENCH_STEPS
# and PROMOT_BENCH_WARMUP set both sides' step counts.
set -euo pipefail
cd "$(dirname "$0")/.."

python=""
for candidate in "${PYTHON:-}" /work/pyenv/bin/python python3 python; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
        && "$candidate" -c "import torch, transformers" >/dev/null 2>&1; then
        python="$candidate"
        break
    fi
done

# Without this, OpenMP threads spin-wait and PyTorch runs 3-4x slower on a
# loaded 2-core machine. (candle's own pool spins too: CANDLE_NUM_THREADS=1
# helps it the same way; left at candle's default so the ratio shows promot as shipped.)
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

echo "load before: $(uptime)"
if [ -n "$python" ]; then
    "$python" benches/train_step_torch.py "$@"
else
    echo "no Python with torch + transformers found; skipping the PyTorch side (the ratio uses any earlier results file)"
fi
cargo bench --bench train_step
echo "load after: $(uptime)"
