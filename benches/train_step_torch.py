"""PyTorch + transformers side of benches/train_step.rs: the same training step
for each model shape in benches/shapes.json (random weights, one fixed batch of
random tokens, dropout as the shape sets it in train mode, transformers'
Adafactor with lr 1e-3 and no relative step / parameter scaling) in the same
three settings:

  full    every model weight trainable, no prompt
  stage1  ProMoT stage 1: a soft prompt (inputs_embeds) trainable, model frozen
  stage2  ProMoT stage 2: model trainable, the prompt frozen and attached

A decoder-only shape is trained as promot trains it: prompt, input and target
in one sequence, the loss on the target tokens only.

Writes benches/results/torch_train_step.json (ms per step and per phase, by
shape and setting), which `cargo bench --bench train_step` reads to print
promot/PyTorch ratios.

Run from the repository root: python benches/train_step_torch.py [--steps 5] [--warmup 2] [--shapes t5-small,toy]

On a GPU (scripts/gpu-check.sh): --device cuda builds the models and batches there and synchronises the
device at the end of each phase; --shapes-file benches/shapes_gpu.json picks the GPU shapes; --out FILE
writes the results elsewhere than benches/results/.
"""

import argparse
import json
import os
import platform
import time

import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM, T5Config, T5ForConditionalGeneration
from transformers.optimization import Adafactor

LR = 1e-3
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DTYPE = os.environ.get("PROMOT_BENCH_DTYPE", "f32")
# The f32 run and the bf16 (autocast) run keep separate results, as promot's bench reads them.
OUT = os.path.join(HERE, "results", "torch_train_step.json" if DTYPE == "f32" else f"torch_train_step_{DTYPE}.json")


def build(shape):
    """The model of one shapes.json entry, with random weights."""
    if "config_file" in shape:
        with open(os.path.join(ROOT, shape["config_file"])) as f:
            config = json.load(f)
    else:
        config = dict(shape["config"])
    config.update(shape.get("config_overrides", {}))
    config["use_cache"] = False
    if shape["arch"] == "t5":
        return T5ForConditionalGeneration(T5Config(**config))
    if shape["arch"] == "llama":
        return LlamaForCausalLM(LlamaConfig(**config))
    raise ValueError(f"unknown arch {shape['arch']}")


def adafactor(params):
    return Adafactor(params, lr=LR, scale_parameter=False, relative_step=False, warmup_init=False)


DEVICE = torch.device("cpu")


def sync():
    """Wait for the device's queued work (a phase's time is the device's, not the launches')."""
    if DEVICE.type == "cuda":
        torch.cuda.synchronize(DEVICE)


def train_step(model, prompt, batch, opt):
    """Forward (embed, attach, loss), backward, optimizer update; seconds per phase."""
    ids, mask, labels = batch
    sync()
    t0 = time.perf_counter()
    decoder_only = not model.config.is_encoder_decoder
    if decoder_only:
        ids = torch.cat([ids, labels], dim=1)
        mask = torch.cat([mask, torch.ones_like(labels)], dim=1)
    embeds = model.get_input_embeddings()(ids)
    if prompt is not None:
        embeds = torch.cat([prompt.unsqueeze(0).expand(ids.shape[0], -1, -1), embeds], dim=1)
        mask = torch.cat([torch.ones(ids.shape[0], prompt.shape[0], dtype=mask.dtype, device=DEVICE), mask], dim=1)
    if decoder_only:
        # The loss on the target tokens only (transformers shifts labels itself).
        labels = torch.cat([torch.full((ids.shape[0], embeds.shape[1] - labels.shape[1]), -100, device=DEVICE), labels],
                           dim=1)
    # bf16: autocast's mixed precision (bf16 matmuls, f32 weights and optimiser), as promot's dtype "bf16".
    with torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=DTYPE == "bf16"):
        loss = model(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss
    loss = loss.float()
    value = loss.item()  # promot reads the loss each step too
    if value != value:
        raise RuntimeError("loss became NaN")
    t1 = time.perf_counter()
    loss.backward()
    sync()
    t2 = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    sync()
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


def beam4(model, batch, new_tokens, reps):
    """Beam search, 4 beams, up to new_tokens: mean ms per call and generated tokens/s (tokens of the
    returned sequences up to and including EOS; the decoder's start token is not counted)."""
    ids, mask, _ = batch
    model.eval()
    eos = model.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    with torch.no_grad(), torch.autocast(DEVICE.type, dtype=torch.bfloat16, enabled=DTYPE == "bf16"):
        embeds = model.get_input_embeddings()(ids)

        def call():
            out = model.generate(inputs_embeds=embeds, attention_mask=mask, num_beams=4, max_new_tokens=new_tokens,
                                 do_sample=False, early_stopping=False, length_penalty=1.0)
            tokens = 0
            for row in out.tolist():
                row = row[1:] if model.config.is_encoder_decoder else row
                tokens += row.index(eos) + 1 if eos in row else len(row)
            return tokens

        call()
        sync()
        t0 = time.perf_counter()
        for _ in range(max(reps, 1)):
            tokens = call()
        sync()
        secs = (time.perf_counter() - t0) / max(reps, 1)
    model.train()
    return {"ms": 1e3 * secs, "tokens": tokens, "tokens_per_s": tokens / secs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=int(os.environ.get("PROMOT_BENCH_STEPS", 5)))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("PROMOT_BENCH_WARMUP", 2)))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gen-reps", type=int, default=int(os.environ.get("PROMOT_BENCH_GEN_REPS", 2)))
    ap.add_argument("--shapes", default=os.environ.get("PROMOT_BENCH_SHAPES", ""))
    ap.add_argument("--shapes-file", default=os.path.join(HERE, "shapes.json"))
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--out", default=OUT, help="where the results JSON goes")
    args = ap.parse_args()

    global DEVICE
    DEVICE = torch.device(args.device)
    torch.set_num_threads(args.threads)
    with open(args.shapes_file) as f:
        shapes = {k: v for k, v in json.load(f).items() if not k.startswith("_")}
    wanted = [s.strip() for s in args.shapes.split(",") if s.strip()] or list(shapes)
    if DTYPE not in ("f32", "bf16"):
        raise SystemExit(f"PROMOT_BENCH_DTYPE must be f32 or bf16, got {DTYPE!r}")
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads, "
          f"device {DEVICE}{' (' + torch.cuda.get_device_name(DEVICE) + ')' if DEVICE.type == 'cuda' else ''}, "
          f"{args.warmup} warm-up + {args.steps} timed steps per setting, dtype {DTYPE}")
    results = {}
    for name in wanted:
        shape = shapes[name]
        torch.manual_seed(0)
        model = build(shape).to(DEVICE)
        model.train()  # dropout as configured
        gen = torch.Generator().manual_seed(7)
        vocab, b = model.config.vocab_size, shape["batch"]
        ids = torch.randint(3, vocab, (b, shape["input_len"]), generator=gen)
        labels = torch.randint(3, vocab, (b, shape["target_len"]), generator=gen)
        batch = (ids.to(DEVICE), torch.ones(b, shape["input_len"], dtype=torch.long, device=DEVICE), labels.to(DEVICE))
        hidden = model.get_input_embeddings().weight.shape[1]
        prompt = torch.nn.Parameter(
            torch.empty(shape["prompt_len"], hidden).uniform_(-0.5, 0.5, generator=gen).to(DEVICE))
        model_params = list(model.parameters())
        print(f"\n{name}: {sum(p.numel() for p in model_params) / 1e6:.1f}M params")
        print(f"{'ms/step':<10} {'mean':>9} {'min':>9} {'forward':>9} {'backward':>9} {'optim':>9}")
        results[name] = {}

        def run(setting, prompt_or_none, params):
            r = time_steps(model, prompt_or_none, batch, params, args.warmup, args.steps)
            results[name][setting] = r
            print(f"{setting:<10} {r['ms_per_step']:>9.1f} {r['min_ms']:>9.1f} {r['forward_ms']:>9.1f} "
                  f"{r['backward_ms']:>9.1f} {r['optimizer_ms']:>9.1f}", flush=True)

        run("full", None, model_params)
        # Stage 1: only the prompt trains; autograd skips every weight gradient.
        for p in model_params:
            p.requires_grad_(False)
        run("stage1", prompt, [prompt])
        # Stage 2: model trainable, prompt frozen and attached.
        for p in model_params:
            p.requires_grad_(True)
        prompt.requires_grad_(False)
        run("stage2", prompt, model_params)
        results[name]["beam4"] = r = beam4(model, batch, shape["target_len"], args.gen_reps)
        print(f"{'generate, beam 4':<10} {r['ms']:>9.1f} ms for {r['tokens']} tokens: {r['tokens_per_s']:.1f} tokens/s",
              flush=True)

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({
            "torch": torch.__version__, "transformers": transformers.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "steps": args.steps, "warmup": args.warmup,
            "device": str(DEVICE), "gpu": torch.cuda.get_device_name(DEVICE) if DEVICE.type == "cuda" else None,
            # OpenMP's spin-waiting costs PyTorch 3-4x on a loaded 2-core machine; record the policy used.
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"), "dtype": DTYPE,
            "shapes": wanted, "results": results,
        }, f, indent=2)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
