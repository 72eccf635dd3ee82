"""How much faster is a frozen-encoder sweep through the feature cache? (docs/training.md)

    python benchmarks/feature_cache.py                 # random:base encoders (GPU advised)
    python benchmarks/feature_cache.py --size tiny     # random:tiny, a quick check on CPU

The sweep: 3 seeds x 3 fusions (cross_attn, tfn, concat; those installed) on the demo set with
both encoders frozen (``model.frozen=text,audio``), each fusion one real ``mmml-bench`` run
over the seeds, end to end (process start, data, training, testing). It runs twice: with
``train.feature_cache=off`` (the frozen encoders run on every batch of every epoch) and with
``train.feature_cache=auto`` into an empty cache folder (so building the cache is counted).
It prints each run's seconds, the totals and their ratio, and whether every seed's test
metrics (both checkpoint selections, every head) and validation history agree between the two
sweeps within --tol, and writes it all as JSON (--json).

Random encoder weights depend on the seed, so the cache holds one entry per seed, modality
and split; each is built by the sweep's first fusion and reused by the other two.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = str(Path(sys.executable).with_name("mmml-bench"))
FUSIONS = ("cross_attn", "tfn", "concat")


def installed_fusions() -> list[str]:
    from mmml_core import registry

    names = set(registry.list("fusion"))
    return [f for f in FUSIONS if f in names]


def run_sweep(mode: str, args: argparse.Namespace, work: Path, fusions: list[str]) -> dict:
    runs = {}
    cache_dir = work / "cache"
    total = 0.0
    for fusion in fusions:
        out = work / f"{mode}-{fusion}"
        cmd = [
            BENCH,
            "--fusion",
            fusion,
            "--seeds",
            args.seeds,
            f"text.checkpoint=random:{args.size}",
            f"audio.checkpoint=random:{args.size}",
            "model.frozen=text,audio",
            f"train.feature_cache={mode}",
            f"train.cache_dir={cache_dir}",
            "--no-progress",
            "--out",
            str(out),
        ]
        if args.epochs:
            cmd.append(f"train.max_epochs={args.epochs}")
        if args.max_items:
            cmd.append(f"data.max_items={args.max_items}")
        if args.device:
            cmd.append(f"train.device={args.device}")
        started = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed:\n{proc.stderr[-4000:]}")
        total += seconds
        seeds = {}
        for seed_dir in sorted(out.glob("seed-*")):
            seeds[seed_dir.name] = json.loads((seed_dir / "results.json").read_text())
        cache_lines = [ln for ln in proc.stderr.splitlines() if "feature cache:" in ln]
        runs[fusion] = {"seconds": seconds, "seeds": seeds, "cache_log": cache_lines}
        print(f"{mode:>4} {fusion:<10} {seconds:8.1f} s", file=sys.stderr, flush=True)
    return {"seconds": total, "runs": runs}


def compare(a: dict, b: dict, tol: float) -> tuple[bool, float, dict[str, float]]:
    """Whether every test metric, test loss and history loss agree within ``tol``; the
    largest difference; and per run (``fusion/seed``) its largest difference."""
    per_run: dict[str, float] = {}
    same = True
    for fusion, run in a["runs"].items():
        for seed, ra in run["seeds"].items():
            rb = b["runs"][fusion]["seeds"][seed]
            pairs = []
            for sel, sa in ra["selection"].items():
                sb = rb["selection"][sel]
                same &= sa["epoch"] == sb["epoch"]
                pairs.append((sa["test_loss"], sb["test_loss"]))
                for head, metrics in sa["test"].items():
                    pairs += [(v, sb["test"][head][k]) for k, v in metrics.items()]
            for ha, hb in zip(ra["history"], rb["history"], strict=True):
                pairs += [
                    (ha["train_loss"], hb["train_loss"]),
                    (ha["valid_loss"], hb["valid_loss"]),
                ]
            worst = 0.0
            for x, y in pairs:
                if x is None or y is None:
                    worst = worst if x is y else math.inf
                else:
                    d = abs(float(x) - float(y))
                    worst = math.inf if math.isnan(d) else max(worst, d)
            per_run[f"{fusion}/{seed}"] = worst
            same &= worst <= tol
    return bool(same), max(per_run.values(), default=0.0), per_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--size", choices=("tiny", "base"), default="base")
    parser.add_argument("--seeds", default="1,11,111")
    parser.add_argument("--fusions", default=",".join(FUSIONS), help="those installed are run")
    parser.add_argument("--epochs", type=int, help="train.max_epochs (default: the demo's 20)")
    parser.add_argument("--max-items", type=int, help="data.max_items (default: every row)")
    parser.add_argument("--device", help="train.device (default: auto)")
    parser.add_argument("--tol", type=float, default=1e-5, help="metric agreement tolerance")
    parser.add_argument("--json", default="feature_cache.json", help="where the results go")
    parser.add_argument("--work", help="folder for the runs and the cache (default: a temp dir)")
    args = parser.parse_args(argv)
    wanted = [f for f in args.fusions.split(",") if f]
    fusions = [f for f in installed_fusions() if f in wanted]
    if not fusions:
        sys.exit(f"none of the fusions {wanted} is installed")
    with tempfile.TemporaryDirectory(prefix="mmml-feature-cache-") as tmp:
        work = Path(args.work) if args.work else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        live = run_sweep("off", args, work, fusions)
        cached = run_sweep("auto", args, work, fusions)
    same, worst, per_run = compare(live, cached, args.tol)
    ratio = live["seconds"] / cached["seconds"]
    import torch

    machine = {
        "date": time.strftime("%Y-%m-%d"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    result = {
        "size": args.size,
        "seeds": args.seeds,
        "fusions": fusions,
        "epochs": args.epochs,
        "max_items": args.max_items,
        "machine": machine,
        "off_seconds": live["seconds"],
        "cache_seconds": cached["seconds"],
        "speedup": ratio,
        "metrics_identical": same,
        "tolerance": args.tol,
        "max_abs_difference": worst,
        "max_abs_difference_per_run": per_run,
        "per_run_seconds": {
            mode: {f: r["seconds"] for f, r in sweep["runs"].items()}
            for mode, sweep in (("off", live), ("auto", cached))
        },
        "cache_log": {f: r["cache_log"] for f, r in cached["runs"].items()},
    }
    Path(args.json).write_text(json.dumps(result, indent=2))
    print("| sweep | " + " | ".join(fusions) + " | total |")
    print("|---|" + "---|" * (len(fusions) + 1))
    for mode, sweep in (("feature_cache=off", live), ("feature_cache=auto", cached)):
        cells = [f"{sweep['runs'][f]['seconds']:.1f} s" for f in fusions]
        print(f"| {mode} | " + " | ".join(cells) + f" | {sweep['seconds']:.1f} s |")
    apart = [f"{run} ({d:.2g})" for run, d in per_run.items() if d > args.tol]
    print(
        f"\nspeedup {ratio:.2f}x; metrics identical within {args.tol:g}: {same} "
        f"(largest difference {worst:.2g}; {len(per_run) - len(apart)} of {len(per_run)} runs "
        f"agree{', apart: ' + ', '.join(apart) if apart else ''}); results in {args.json}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
