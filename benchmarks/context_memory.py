"""Memory of one training step of the authors' large context model, estimated on a CPU.

    python benchmarks/context_memory.py --out context_memory.json   # ~10 min on 2 cores
    python benchmarks/context_memory.py --fp32-only                  # ~5 min
    python benchmarks/context_memory.py --cache runs.jsonl           # reuse measurements

The model is the one of the ``paper-mosi-context`` / ``paper-mosei-context`` presets with random
weights: roberta ``random:large`` (roberta-large) and data2vec ``random:large``
(data2vec-audio-large), a 5-layer, 1024-wide cross_attn fusion with 16 heads, context on, the
fused head M and the subnet heads T and A, L1 multi-loss, AdamW over every trainable parameter.
Worst case of the authors' setup: every text 96 tokens, every clip 6 s (96,000 samples), every
item with a context (2 earlier texts joined, 1 earlier 6 s clip), so the encoders and the
fusion run on 2B texts and 2B clips; CNN front end frozen (the encoder default); LayerDrop off
(every layer runs, the most memory a step can take); fp32, or bf16 autocast.

Every number this script prints is estimated from a CPU measurement, not measured on a GPU.

How it measures. One training step as the trainer does it (mmml_core.engine): forward, L1
loss, ``zero_grad(set_to_none=True)``, backward, AdamW step. Each measurement runs in a fresh
subprocess (one thread), takes two steps and measures the second, so that the weights, the
previous step's gradients and both AdamW moments are alive from the start, as in every step
of a run. Memory is the sum of the bytes of every live tensor storage, counted by a
``TorchDispatchMode`` that registers each storage an operator returns and drops it when the
storage is freed (a weakref finalizer), with the parameters, gradients, optimizer states and
the batch registered at the start. That is what a caching allocator must hold at least, so it
does not depend on the CPU allocator (glibc keeps freed pages in the RSS); the peak RSS is
recorded as well, as a cross-check. Two CPU kernels keep more than their CUDA counterparts,
and the count is corrected to what the CUDA kernels keep:

- dropout on a CPU stores its mask in the tensor's dtype (4 bytes an element in fp32); CUDA's
  fused dropout stores a bool mask (1 byte): masks (the storages ``bernoulli_`` fills) count 1
  byte an element;
- attention-probability dropout sends CPU attention down the unfused path, which keeps the
  (T x T) probabilities; on a GPU the memory-efficient SDPA kernel applies it inside the kernel
  and keeps only the output and the log-sum-exp, like the fused CPU kernel does. The
  measurement therefore runs ``scaled_dot_product_attention`` with ``dropout_p=0`` (so the CPU
  takes its fused kernel); the memory is that of the kernel a GPU uses.

Fewer layers. The full model does not fit in this machine's memory next to a training run (the
fixed part alone is ~13 GiB), so the measurement uses fewer layers with the real widths and
sequence lengths: text encoder Lt, audio encoder La, fusion Lf layers, at (1,1,1), (3,1,1),
(1,3,1), (1,1,3), each at batch 1 and 2, and (1,1,1) at batch 3. Per configuration, A(B) is
the memory alive at the end of the forward (after the loss) above the fixed state; the
per-sample part is s = A(2) - A(1) and the batch-independent part c = A(1) - s (bf16 weight
copies under autocast, small buffers). The layers of one stack are identical, so s and c are
linear in each stack's depth: per text, audio and fusion layer, a_t = (s(3,1,1) - s(1,1,1)) / 2
and so on, and the full model (24, 24, 5) has s = s(1,1,1) + 23 a_t + 23 a_a + 4 a_f (same
for c). A run at (4,4,2), batch 1, checks that prediction, and one at (1,1,1), batch 3, the
linearity in the batch.

Where the step peaks. During the forward the previous step's gradients are still alive (the
trainer calls zero_grad after the forward), so the end of the forward holds the state and
every activation: for the full model that is the peak. zero_grad then frees 4 bytes per
trainable parameter, and the backward frees activations faster than it allocates gradients;
its tail, where roberta's dense 50,265 x 1024 embedding gradient is computed for the current
and again for the context text, stays ~0.4 GiB above the state (measured), which is the peak
of the small reduced models only. The prediction is the larger of the two. The per-sample
figure also carries the largest transient measured above the end of the forward (a
feed-forward intermediate, a few MiB per sample); the frozen CNN's transient (~0.2 GiB per
clip) comes before the audio transformer and sits below the activations that adds.

Fixed memory, analytic: 16 bytes per trainable fp32 parameter (weight, gradient, two AdamW
moments), 4 per frozen one, plus buffers, from the parameter counts of the full model built on
the meta device. The measured state of each reduced model is checked against the same formula.

bf16 autocast. Two estimates: (1) the fp32 activations halved, plus the bf16 copies of the
weights that autocast casts and keeps for backward (2 bytes per trainable Linear / Conv
parameter, analytic) - an estimate: layer norms and softmax stay fp32 under CUDA autocast; (2)
the same measurement under CPU bf16 autocast, whose operator lists differ from CUDA's (CPU
layer norms return bf16, CUDA's fp32). The recommendation uses the larger of the two.

A GPU also needs the CUDA context, cuBLAS workspaces and allocator slack, which are not
tensors: the table reports whether the predicted tensor peak fits in 24 GiB and in 22 GiB
(2 GiB left for those).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import weakref
from datetime import date
from typing import Any

GIB = 2**30
TOKENS = 96
SAMPLES = 96_000  # 6 s at 16 kHz
FULL = (24, 24, 5)  # text layers, audio layers, fusion layers
BUDGETS_GIB = (24.0, 22.0)
BASE = (1, 1, 1)
DEEPER = {"text": (3, 1, 1), "audio": (1, 3, 1), "fusion": (1, 1, 3)}
CHECK = (4, 4, 2)
NOTE = "estimated from a CPU measurement, not measured on a GPU"


# -- the model ------------------------------------------------------------------------------


def spec_dict(fusion_layers: int) -> dict[str, Any]:
    return {
        "encoders": {
            "text": {"name": "roberta", "config": {"checkpoint": "random:large"}},
            "audio": {
                "name": "data2vec",
                "config": {"checkpoint": "random:large", "layerdrop": 0.0},
            },
        },
        "fusion": {
            "name": "cross_attn",
            "config": {"layers": fusion_layers, "hidden": 1024, "heads": 16},
        },
        "heads": ["M", "T", "A"],
        "context": True,
    }


def _set_encoder_depths(text_layers: int, audio_layers: int) -> None:
    """Make ``random:large`` build ``text_layers`` / ``audio_layers`` transformer layers (the
    rest of the architecture unchanged); only this measuring subprocess is affected."""
    import mmml_encoders_hf.text as hf_text
    from mmml_encoders_hf.data2vec import Data2VecEncoder

    text_config = hf_text.random_text_config
    audio_config = Data2VecEncoder.random_config

    def text_with_depth(preset: str, language: str, vocab_size: int) -> Any:
        cfg = text_config(preset, language, vocab_size)
        cfg.num_hidden_layers = text_layers
        return cfg

    def audio_with_depth(cls: type, preset: str) -> Any:
        cfg = audio_config(preset)
        cfg.num_hidden_layers = audio_layers
        return cfg

    hf_text.random_text_config = text_with_depth
    Data2VecEncoder.random_config = classmethod(audio_with_depth)


def build(depths: tuple[int, int, int]) -> Any:
    from mmml_core.model import build_model

    if depths[:2] != FULL[:2]:
        _set_encoder_depths(depths[0], depths[1])
    return build_model(spec_dict(depths[2]))


def parameter_counts(model: Any) -> dict[str, int]:
    """Trainable and frozen parameters, buffer bytes, and the trainable Linear / Conv
    parameters whose bf16 copies autocast keeps."""
    import torch

    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    cast = 0
    for module in model.modules():
        if isinstance(module, (torch.nn.Linear, torch.nn.Conv1d)):
            cast += sum(p.numel() for p in module.parameters(recurse=False) if p.requires_grad)
    return {"trainable": trainable, "frozen": frozen, "buffer_bytes": buffers, "cast": cast}


def state_bytes(counts: dict[str, int]) -> int:
    """Weights, gradients and AdamW moments: 16 bytes per trainable fp32 parameter, 4 per
    frozen one, plus buffers."""
    return 16 * counts["trainable"] + 4 * counts["frozen"] + counts["buffer_bytes"]


def batch_items(n: int) -> list[dict[str, Any]]:
    """Worst-case items: texts longer than 96 tokens, 6 s clips, every item with a context of
    two earlier texts and one earlier clip."""
    import numpy as np

    rng = np.random.default_rng(0)
    words = (
        "the movie was surprisingly good but the ending felt rushed and a bit flat honestly "
        "i liked the actors though the plot was slow"
    ).split()

    def text(k: int) -> str:
        return " ".join(rng.choice(words, size=k))

    def clip() -> Any:
        return (0.1 * rng.standard_normal(SAMPLES)).astype(np.float32)

    return [
        {
            "id": f"item{i}",
            "text": text(150),
            "audio": clip(),
            "labels": {"M": 0.0},
            "context": {"text": [text(80), text(80)], "audio": [clip()]},
        }
        for i in range(n)
    ]


# -- counting live tensors ------------------------------------------------------------------


def _live_tensor_counter() -> Any:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves

    bernoulli = torch.ops.aten.bernoulli_.float
    fused_attention = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default
    softmaxes = (torch.ops.aten._safe_softmax.default, torch.ops.aten._softmax.default)

    class LiveTensorBytes(TorchDispatchMode):
        """Bytes of the live tensor storages (dropout masks counted at 1 byte an element)."""

        def __init__(self) -> None:
            super().__init__()
            self.size: dict[int, int] = {}  # storage -> bytes
            self.mask_excess: dict[int, int] = {}  # dropout mask storage -> bytes above bool
            self.total = 0
            self.excess = 0
            self.phase = "start"
            self.peak = 0
            self.peak_where = ""
            self.phase_peak: dict[str, int] = {}
            self.calls = {"fused_attention": 0, "softmax": 0}

        def _free(self, key: int) -> None:
            self.total -= self.size.pop(key, 0)
            self.excess -= self.mask_excess.pop(key, 0)

        def track(self, t: Any) -> None:
            if not isinstance(t, torch.Tensor) or t.device.type != "cpu":
                return
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self.size:
                return
            self.size[key] = storage.nbytes()
            self.total += storage.nbytes()
            weakref.finalize(storage, self._free, key)

        def now(self) -> int:
            return self.total - self.excess

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
            out = func(*args, **(kwargs or {}))
            if func is bernoulli:  # the mask of a CPU dropout: CUDA keeps it as bool
                mask = args[0]
                self.track(mask)
                key = mask.untyped_storage()._cdata
                if key not in self.mask_excess:
                    extra = mask.untyped_storage().nbytes() - mask.numel()
                    self.mask_excess[key] = extra
                    self.excess += extra
            elif func is fused_attention:
                self.calls["fused_attention"] += 1
            elif func in softmaxes:
                self.calls["softmax"] += 1
            for t in tree_leaves(out):
                self.track(t)
            now = self.now()
            if now > self.phase_peak.get(self.phase, 0):
                self.phase_peak[self.phase] = now
            if now > self.peak:
                self.peak, self.peak_where = now, f"{self.phase}: {func}"
            return out

    return LiveTensorBytes()


def _rss_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")  # resets VmHWM (Linux)
        return True
    except OSError:
        return False


def worker(depths: tuple[int, int, int], batch_size: int, amp: bool) -> dict[str, Any]:
    """Two training steps of the reduced model; the second one measured."""
    import torch
    from torch.utils._pytree import tree_leaves

    torch.set_num_threads(1)
    from mmml_core import registry
    from mmml_core.data import make_collate

    sdpa = torch.nn.functional.scaled_dot_product_attention

    def sdpa_without_dropout(*args: Any, **kwargs: Any) -> Any:
        kwargs["dropout_p"] = 0.0  # see the module docstring: the fused kernel's memory
        return sdpa(*args, **kwargs)

    torch.nn.functional.scaled_dot_product_attention = sdpa_without_dropout
    torch.manual_seed(0)
    model = build(depths).train()
    counts = parameter_counts(model)
    collate = make_collate(dict(model.encoders), ("M", "T", "A"))
    batch = collate(batch_items(batch_size))
    ctx = batch["context"]
    shapes = {
        "text": tuple(batch["inputs"]["text"]["input_ids"].shape),
        "audio": tuple(batch["inputs"]["audio"]["input_values"].shape),
        "context_text": tuple(ctx["inputs"]["text"]["input_ids"].shape),
        "context_audio": tuple(ctx["inputs"]["audio"]["input_values"].shape),
    }
    assert bool(ctx["present"].all())
    assert shapes["text"] == shapes["context_text"] == (batch_size, TOKENS), shapes
    assert shapes["audio"] == shapes["context_audio"] == (batch_size, SAMPLES), shapes
    loss_fn = registry.create("loss", "l1")
    trainable = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(trainable, lr=1e-5, weight_decay=0.01)
    counter = _live_tensor_counter()

    def step() -> float:
        start = time.perf_counter()
        counter.phase = "forward"
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
            preds = model(batch["inputs"], batch["context"])
        total, _ = loss_fn(preds, batch["targets"])
        end_forward = counter.now()
        counter.phase = "zero_grad"  # frees the previous step's gradients
        optim.zero_grad(set_to_none=True)
        counter.phase = "backward"
        total.backward()
        counter.phase = "optimizer step"
        optim.step()
        counter.phase = "done"
        del preds, total
        step.end_forward = end_forward  # type: ignore[attr-defined]
        return time.perf_counter() - start

    first = step()
    # the second step, measured: everything alive now is the step's fixed state
    for p in model.parameters():
        counter.track(p)
        if p.grad is not None:
            counter.track(p.grad)
    for b in model.buffers():
        counter.track(b)
    for state in optim.state.values():
        for value in state.values():
            counter.track(value)
    for t in tree_leaves((batch["inputs"], batch["targets"], ctx["inputs"], ctx["present"])):
        counter.track(t)
    fixed = counter.now()
    counter.peak = 0
    rss_reset = _reset_peak_rss()
    rss_before = _rss_kib("VmRSS")
    with counter:
        seconds = step()
    rss_peak = _rss_kib("VmHWM")
    return {
        "depths": list(depths),
        "batch": batch_size,
        "amp": amp,
        "shapes": shapes,
        "counts": counts,
        "state_analytic": state_bytes(counts),
        "state_counted": fixed,
        "end_forward": step.end_forward - fixed,  # type: ignore[attr-defined]
        "peak": counter.peak - fixed,
        "peak_where": counter.peak_where,
        "phase_peaks": {k: v - fixed for k, v in counter.phase_peak.items()},
        "calls": counter.calls,
        "rss_step_increase": (rss_peak - rss_before) * 1024 if rss_reset else None,
        "seconds_first_step": first,
        "seconds_measured_step": seconds,
    }


# -- driving and fitting ----------------------------------------------------------------------


def run_worker(
    depths: tuple[int, int, int], batch_size: int, amp: bool, cache: str | None
) -> dict[str, Any]:
    """One measurement in a fresh subprocess, or its earlier result from ``cache`` (JSON
    lines; every new result is appended)."""
    key = {"depths": list(depths), "batch": batch_size, "amp": amp}
    if cache and os.path.exists(cache):
        with open(cache, encoding="utf-8") as f:
            for line in f:
                old = json.loads(line)
                if {k: old[k] for k in key} == key:
                    return old
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    arg = json.dumps(key)
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", arg],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"measurement {arg} failed (exit {proc.returncode})")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    label = "bf16" if amp else "fp32"
    print(
        f"  {label} depths {tuple(depths)} batch {batch_size}: end of forward "
        f"{result['end_forward'] / GIB:.3f} GiB above the state, peak {result['peak'] / GIB:.3f} "
        f"({result['peak_where']}), {result['seconds_measured_step']:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    if cache:
        with open(cache, "a", encoding="utf-8") as f:
            f.write(json.dumps(result) + "\n")
    return result


def fit(runs: dict[tuple[tuple[int, int, int], int], dict[str, Any]]) -> dict[str, Any]:
    """Per-sample (s) and batch-independent (c) activation bytes per configuration, per layer
    of each stack, and for the full model."""

    def sc(depths: tuple[int, int, int]) -> tuple[float, float]:
        a1, a2 = runs[depths, 1]["end_forward"], runs[depths, 2]["end_forward"]
        return a2 - a1, a1 - (a2 - a1)

    s0, c0 = sc(BASE)
    per_layer = {}
    for stack, depths in DEEPER.items():
        s, c = sc(depths)
        extra = sum(depths) - sum(BASE)
        per_layer[stack] = {"per_sample": (s - s0) / extra, "fixed": (c - c0) / extra}
    extra_layers = {
        stack: full - base
        for stack, full, base in zip(("text", "audio", "fusion"), FULL, BASE, strict=True)
    }

    def predict(depths: tuple[int, int, int]) -> tuple[float, float]:
        s, c = s0, c0
        for stack, full, base in zip(("text", "audio", "fusion"), depths, BASE, strict=True):
            s += (full - base) * per_layer[stack]["per_sample"]
            c += (full - base) * per_layer[stack]["fixed"]
        return s, c

    s_full, c_full = predict(FULL)
    return {
        "base": {"per_sample": s0, "fixed": c0},
        "per_layer": per_layer,
        "extra_layers": extra_layers,
        "full": {"per_sample": s_full, "fixed": c_full},
        "predict": predict,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", help="write the results as JSON to this file")
    parser.add_argument("--fp32-only", action="store_true", help="skip the bf16 measurements")
    parser.add_argument(
        "--cache", help="JSON lines file: reuse the measurements in it, append new ones"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(worker(tuple(spec["depths"]), spec["batch"], spec["amp"])))
        return 0

    import torch

    torch.set_num_threads(1)
    with torch.device("meta"):
        counts = parameter_counts(build(FULL))
    fixed_state = state_bytes(counts)
    print(f"full model: {counts}", file=sys.stderr)

    configs = [BASE, *DEEPER.values()]
    precisions = [False] if args.fp32_only else [False, True]
    runs: dict[bool, dict[tuple[tuple[int, int, int], int], dict[str, Any]]] = {}
    for amp in precisions:
        runs[amp] = {}
        for depths in configs:
            for b in (1, 2):
                runs[amp][depths, b] = run_worker(depths, b, amp, args.cache)
    runs[False][BASE, 3] = run_worker(BASE, 3, False, args.cache)
    runs[False][CHECK, 1] = run_worker(CHECK, 1, False, args.cache)

    fits = {amp: fit(runs[amp]) for amp in precisions}
    fp32 = fits[False]
    # checks: linear in the batch (batch 3), linear in depth (4,4,2), the state formula
    s0, c0 = fp32["base"]["per_sample"], fp32["base"]["fixed"]
    batch3 = runs[False][BASE, 3]["end_forward"]
    s_chk, c_chk = fp32["predict"](CHECK)
    depth_check = runs[False][CHECK, 1]["end_forward"]
    state_error = max(
        abs(r["state_counted"] - r["state_analytic"]) / r["state_analytic"]
        for per in runs.values()
        for r in per.values()
    )

    def tail(per: dict[Any, dict[str, Any]]) -> float:
        """The largest memory above the state after the forward (backward, optimizer step),
        over the runs: the backward's end, where roberta's dense 50,265 x 1024 embedding
        gradient is computed once for the current and once for the context text."""
        return max(
            max(r["phase_peaks"].get("backward", 0), r["phase_peaks"].get("optimizer step", 0))
            for r in per.values()
        )

    def transient(per: dict[Any, dict[str, Any]]) -> float:
        """The largest excess of the forward's peak over its end, per sample, over the runs
        (an intermediate such as a feed-forward's pre-activation, freed at once)."""
        return max(
            (r["phase_peaks"]["forward"] - r["end_forward"]) / r["batch"] for r in per.values()
        )

    fp32_tail, fp32_transient = tail(runs[False]), transient(runs[False])
    estimates = {
        "fp32": (
            fixed_state + fp32["full"]["fixed"],
            fp32["full"]["per_sample"] + fp32_transient,
            fp32_tail,
        ),
        "bf16, estimate: fp32 activations halved + bf16 weight copies": (
            fixed_state + 2 * counts["cast"] + fp32["full"]["fixed"] / 2,
            fp32["full"]["per_sample"] / 2 + fp32_transient,
            max(fp32_tail, tail(runs[True])) if True in runs else fp32_tail,
        ),
    }
    if True in fits:
        estimates["bf16, CPU autocast measured"] = (
            fixed_state + fits[True]["full"]["fixed"],
            fits[True]["full"]["per_sample"] + transient(runs[True]),
            tail(runs[True]),
        )

    def peak(fixed: float, per_sample: float, after: float, b: int) -> float:
        """The end of the forward, or the backward's tail if that is higher (tiny models)."""
        return max(fixed + b * per_sample, fixed_state + after)

    def largest_batch(fixed: float, per_sample: float, after: float, budget: float) -> int:
        b = 0
        while peak(fixed, per_sample, after, b + 1) <= budget:
            b += 1
        return b

    rows = []
    for name, (f, s, after) in estimates.items():
        rows.append(
            {
                "precision": name,
                "fixed_gib": f / GIB,
                "per_sample_gib": s / GIB,
                "after_forward_peak_gib": (fixed_state + after) / GIB,
                "peak_gib_by_batch": {b: peak(f, s, after, b) / GIB for b in range(1, 9)},
                "largest_batch": {
                    f"{budget:g} GiB": largest_batch(f, s, after, budget * GIB)
                    for budget in BUDGETS_GIB
                },
            }
        )
    bf16_rows = [r for r in rows if r["precision"].startswith("bf16")]
    recommended = {
        "fp32": rows[0]["largest_batch"],
        "bf16": {
            k: min(r["largest_batch"][k] for r in bf16_rows) for k in rows[0]["largest_batch"]
        },
    }

    print(f"\nContext model memory ({NOTE})")
    print(
        f"full model: {counts['trainable']:,} trainable + {counts['frozen']:,} frozen parameters; "
        f"weights + gradients + AdamW moments {fixed_state / GIB:.2f} GiB; bf16 weight copies "
        f"{2 * counts['cast'] / GIB:.2f} GiB"
    )
    head = "| precision | fixed GiB | per sample GiB | "
    head += " | ".join(f"B={b}" for b in range(1, 9))
    head += " | largest B, 24 GiB | largest B, 22 GiB |"
    print(head)
    print("|" + " --- |" * (head.count("|") - 1))
    for r in rows:
        peaks = " | ".join(f"{v:.1f}" for v in r["peak_gib_by_batch"].values())
        fits_in = " | ".join(str(v) for v in r["largest_batch"].values())
        print(
            f"| {r['precision']} | {r['fixed_gib']:.2f} | {r['per_sample_gib']:.2f} | {peaks} | "
            f"{fits_in} |"
        )
    print(
        "peak after the forward (backward's tail), any batch: "
        + ", ".join(f"{r['precision']}: {r['after_forward_peak_gib']:.2f} GiB" for r in rows)
    )
    print(
        f"checks: batch 3 at {BASE}: {batch3 / GIB:.3f} GiB measured, "
        f"{(c0 + 3 * s0) / GIB:.3f} predicted; {CHECK} at batch 1: {depth_check / GIB:.3f} "
        f"measured, {(c_chk + s_chk) / GIB:.3f} predicted; state formula vs counted: "
        f"{100 * state_error:.3f} % at most"
    )
    print(f"recommended (largest batch, the lower bf16 estimate): {recommended}")

    def plain(f: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in f.items() if k != "predict"}

    result = {
        "note": NOTE,
        "date": date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores, one thread per run; "
        f"torch {torch.__version__}",
        "setup": {
            "tokens": TOKENS,
            "samples": SAMPLES,
            "context": "2 earlier texts, 1 earlier clip, every item",
            "full_depths": FULL,
            "spec": spec_dict(FULL[2]),
        },
        "full_model": {**counts, "state_bytes": fixed_state},
        "fits": {("bf16_cpu_autocast" if amp else "fp32"): plain(f) for amp, f in fits.items()},
        "estimates": rows,
        "recommended_largest_batch": recommended,
        "checks": {
            "batch3_measured": batch3,
            "batch3_predicted": c0 + 3 * s0,
            "depth_check": {
                "depths": CHECK,
                "measured": depth_check,
                "predicted": c_chk + s_chk,
            },
            "state_formula_max_rel_error": state_error,
        },
        "runs": [r for per in runs.values() for r in per.values()],
    }
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
