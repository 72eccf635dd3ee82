"""Training-step throughput of MMML (docs/training.md), measured, never asserted in tests.

    python benchmarks/throughput.py                    # base sizes on CUDA if available
    python benchmarks/throughput.py --preset tiny      # random:tiny encoders, for a CPU check

One step = forward of roberta + data2vec-audio + the 5-layer cross_attn fusion with multi-loss,
backward, fused AdamW step; batch 16, 96 tokens, 6 s of audio (the paper's base setup). On
CUDA with bf16 autocast. Prints samples/s after warm-up steps; compare runs on the same device
only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mmml_core import registry
from mmml_core.model import ModelSpec, build_model


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--preset", default="base", choices=["base", "tiny"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-amp", action="store_true", help="fp32 on CUDA")
    args = parser.parse_args()
    device = torch.device(args.device)
    ckpt = f"random:{args.preset}"
    layers = 5 if args.preset == "base" else 2
    heads = 12 if args.preset == "base" else 4
    spec = ModelSpec(
        encoders={
            "text": {"name": "roberta", "config": {"checkpoint": ckpt, "max_tokens": args.tokens}},
            "audio": {"name": "data2vec", "config": {"checkpoint": ckpt}},
        },
        fusion={"name": "cross_attn", "config": {"layers": layers, "heads": heads}},
    )
    torch.manual_seed(0)
    model = build_model(spec).to(device).train()
    loss_fn = registry.create("loss", "l1")
    optim = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=device.type == "cuda"
    )
    rng = np.random.default_rng(0)
    words = "the movie was surprisingly good but the ending felt rushed and a bit flat".split()
    texts = [" ".join(rng.choice(words, size=args.tokens)) for _ in range(args.batch_size)]
    audio = [
        rng.standard_normal(int(16000 * args.seconds)).astype(np.float32)
        for _ in range(args.batch_size)
    ]
    inputs = model.preprocess({"text": texts, "audio": audio})
    inputs = {m: {k: v.to(device) for k, v in x.items()} for m, x in inputs.items()}
    target = torch.zeros(args.batch_size, device=device)
    targets = {"M": target, "T": target, "A": target}
    amp = device.type == "cuda" and not args.no_amp

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            preds = model(inputs)
        total, _ = loss_fn(preds, targets)
        optim.zero_grad(set_to_none=True)
        total.backward()
        optim.step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    n_params = sum(p.numel() for p in model.parameters())
    print(
        f"device {device}, preset {args.preset} ({n_params / 1e6:.1f} M parameters), "
        f"batch {args.batch_size}, {args.tokens} tokens, {args.seconds} s audio, "
        f"{'bf16 autocast' if amp else 'fp32'}: {args.steps * args.batch_size / elapsed:.1f} samples/s "
        f"({1000 * elapsed / args.steps:.0f} ms/step)"
    )


if __name__ == "__main__":
    main()
