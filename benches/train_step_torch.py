"""PyTorch + transformers side of benches/train_step.rs: the same training step
(t5-small shape, random weights, batch 8 x 128 input x 32 target tokens,
dropout 0.1 in train mode, transformers' Adafactor with lr 1e-3 and no
relative step / parameter scaling) in the same three settings:

  full    every model weight trainable, no prompt
  stage1  ProMoT stage 1: a 100-token soft prompt (inputs_embeds) trainable, model frozen
  stage2  ProMoT stage 2: model trainable, the prompt frozen and attached

Writes benches/results/torch_train_step.json (ms per step and per phase),
which `cargo bench --bench train_step` reads to print promot/PyTorch ratios.

Run from the repository root: python benches/train_step_torch.py [--steps 5] [--warmup 2]
"""

import argparse
import json
import os
import platform
import time

import torch
import transformers
from transformers import T5Config, T5ForConditionalGeneration
from transformers.optimization import Adafactor

BATCH, INPUT_LEN, TARGET_LEN, PROMPT_LEN = 8, 128, 32, 100
LR = 1e-3
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "torch_train_step.json")


def t5_small_config():
    return T5Config(
        vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6, num_heads=8,
        relative_attention_num_buckets=32, relative_attention_max_distance=128, dropout_rate=0.1,
        layer_norm_epsilon=1e-6, feed_forward_proj="relu", tie_word_embeddings=True,
        decoder_start_token_id=0, pad_token_id=0, eos_token_id=1, use_cache=False,
    )


def adafactor(params):
    return Adafactor(params, lr=LR, scale_parameter=False, relative_step=False, warmup_init=False)


def train_step(model, prompt, batch, opt):
    """Forward (embed, attach, loss), backward, optimizer update; seconds per phase."""
    ids, mask, labels = batch
    t0 = time.perf_counter()
    embeds = model.get_input_embeddings()(ids)
    if prompt is not None:
        embeds = torch.cat([prompt.unsqueeze(0).expand(ids.shape[0], -1, -1), embeds], dim=1)
        mask = torch.cat([torch.ones(ids.shape[0], prompt.shape[0], dtype=mask.dtype), mask], dim=1)
    loss = model(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss
    value = loss.item()  # promot reads the loss each step too
    if value != value:
        raise RuntimeError("loss became NaN")
    t1 = time.perf_counter()
    loss.backward()
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def time_steps(model, prompt, batch, params, warmup, steps):
    opt = adafactor(params)
    for _ in range(warmup):
        train_step(model, prompt, batch, opt)
    phases = [train_step(model, prompt, batch, opt) for _ in range(steps)]
    mean = [1e3 * sum(p[i] for p in phases) / len(phases) for i in range(3)]
    return {
        "ms_per_step": sum(mean),
        "min_ms": 1e3 * min(sum(p) for p in phases),
        "forward_ms": mean[0],
        "backward_ms": mean[1],
        "optimizer_ms": mean[2],
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=int(os.environ.get("PROMOT_BENCH_STEPS", 5)))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("PROMOT_BENCH_WARMUP", 2)))
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(t5_small_config())
    model.train()  # dropout 0.1 on
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(2, 32128, (BATCH, INPUT_LEN), generator=gen)
    labels = torch.randint(2, 32128, (BATCH, TARGET_LEN), generator=gen)
    batch = (ids, torch.ones(BATCH, INPUT_LEN, dtype=torch.long), labels)
    prompt = torch.nn.Parameter(torch.empty(PROMPT_LEN, 512).uniform_(-0.5, 0.5, generator=gen))
    model_params = list(model.parameters())

    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"{sum(p.numel() for p in model_params) / 1e6:.1f}M params, {args.warmup} warm-up + {args.steps} timed steps")
    print(f"{'ms/step':<10} {'mean':>9} {'min':>9} {'forward':>9} {'backward':>9} {'optim':>9}")
    results = {}

    def run(name, prompt_or_none, params):
        r = time_steps(model, prompt_or_none, batch, params, args.warmup, args.steps)
        results[name] = r
        print(f"{name:<10} {r['ms_per_step']:>9.1f} {r['min_ms']:>9.1f} {r['forward_ms']:>9.1f} "
              f"{r['backward_ms']:>9.1f} {r['optimizer_ms']:>9.1f}", flush=True)

    run("full", None, model_params)
    # Stage 2: model trainable, prompt frozen and attached.
    prompt.requires_grad_(False)
    run("stage2", prompt, model_params)
    # Stage 1: only the prompt trains; autograd skips every weight gradient.
    for p in model_params:
        p.requires_grad_(False)
    prompt.requires_grad_(True)
    run("stage1", prompt, [prompt])

    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({
            "torch": torch.__version__, "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "steps": args.steps, "warmup": args.warmup,
            # OpenMP's spin-waiting costs PyTorch 3-4x on a loaded 2-core machine; record the policy used.
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
            "batch": BATCH, "input_len": INPUT_LEN, "target_len": TARGET_LEN, "prompt_len": PROMPT_LEN,
            "results": results,
        }, f, indent=2)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
