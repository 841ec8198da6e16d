"""A SmolLM2-135M-shaped Llama with random weights, for gpu-check.sh part (c) where the real SmolLM2 GGUF
was not carried to the GPU machine (it is larger than one carry): the config of benches/shapes_gpu.json's
"smollm2-135m" entry, weights from transformers' own initialisation (seed 0), saved as safetensors, and
the tiny Llama fixture's tokenizer (its 384 ids are a subset of the model's 49152). Needs torch and
transformers (the GPU machine's Python has both).

    python3 scripts/gpu/make_smollm2_shaped.py OUT_DIR
"""

import json
import os
import shutil
import sys

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    out = sys.argv[1]
    with open(os.path.join(ROOT, "benches", "shapes_gpu.json")) as f:
        config = dict(json.load(f)["smollm2-135m"]["config"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.save_pretrained(out, safe_serialization=True)
    fixture = os.path.join(ROOT, "tests", "fixtures", "tiny-llama")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(fixture, name), os.path.join(out, name))
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, random weights")


if __name__ == "__main__":
    main()
