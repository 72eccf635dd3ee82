"""``mmml-bench [options] [key=value ...]``: train and evaluate one combination.

Output folder (``--out``, default ``runs/<dataset>-<fusion>-<time>``): ``config.json`` (the
resolved run configuration), ``seed-N/`` per seed (``results.json``, ``curve.png``, the
``best_loss/`` and ``best_acc/`` checkpoints, the resumable ``state/``), and over the seeds
``summary.md``, ``summary.csv`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["configure_parser", "run"]

OVERRIDE_HELP = """key=value overrides, applied last: train.FIELD (e.g. train.lr=1e-4,
train.max_epochs=5), data.FIELD, seeds=1,2, text.FIELD / audio.FIELD (encoder config, e.g.
text.checkpoint=random:tiny), fusion.FIELD (e.g. fusion.layers=2), head.FIELD,
subnet_head.FIELD, loss.FIELD (e.g. loss.weights={"M":1})"""


def configure_parser(parser: argparse.ArgumentParser, verb: str) -> None:
    from mmml_core.hooks import get_plugin_manager

    parser.description = (
        "Train and evaluate one encoder/fusion combination over several seeds, then print "
        "the test metrics table (both checkpoint selections, every head)."
    )
    parser.add_argument(
        "--encoder",
        action="append",
        default=[],
        metavar="[MODALITY=]NAME",
        help="encoder per modality, e.g. data2vec or audio=opensmile; may be "
        "given once per modality (default: roberta + data2vec for English, "
        "roberta + hubert for Chinese)",
    )
    parser.add_argument(
        "--fusion",
        metavar="NAME",
        help="fusion name (default cross_attn); 'none' with one --modalities",
    )
    parser.add_argument(
        "--modalities",
        metavar="M[,M]",
        help="modalities to use: text,audio (default), text or audio (a "
        "single-modality model with its subnet head)",
    )
    parser.add_argument(
        "--dataset",
        metavar="demo|PATH",
        help="'demo' (bundled, default) or a dataset root in the MMSA layout",
    )
    parser.add_argument(
        "--dataset-kind",
        choices=["mosi", "mosei", "sims", "demo"],
        help="label scheme and language of a dataset path",
    )
    parser.add_argument("--seeds", metavar="N[,N]", help="seeds (default 1,11,111)")
    parser.add_argument(
        "--heads",
        metavar="H[,H]",
        help="M,T,A = multi-loss (default); M = single-loss on the fused head",
    )
    parser.add_argument("--loss", metavar="NAME", help="loss name: l1 (default) or mse")
    parser.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:1")
    parser.add_argument("--config", metavar="FILE", help="run configuration (TOML or JSON)")
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help="a bundled configuration (demo, paper-mosi, paper-mosei, paper-sims)",
    )
    parser.add_argument("--out", metavar="DIR", help="output folder")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last completed epoch",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the aggregate results as JSON instead of the table",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="validate and print the resolved configuration, train nothing",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDE_HELP)
    get_plugin_manager().hook.mmml_add_cli_options(parser=parser)


def _layers(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[str] | None]:
    from mmml_core.config import ConfigError
    from mmml_core.run import load_config_file, preset_path

    layers: list[dict[str, Any]] = []
    if args.preset:
        layers.append(load_config_file(preset_path(args.preset)))
    if args.config:
        layers.append(load_config_file(args.config))
    flags: dict[str, Any] = {}
    modalities = [m.strip() for m in args.modalities.split(",")] if args.modalities else None
    if args.dataset:
        flags.setdefault("data", {})["dataset"] = args.dataset
    if args.dataset_kind:
        flags.setdefault("data", {})["kind"] = args.dataset_kind
    if args.seeds:
        flags["seeds"] = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.device:
        flags.setdefault("train", {})["device"] = args.device
    if args.loss:
        flags["loss"] = {"name": args.loss}
    model: dict[str, Any] = {}
    if modalities and len(modalities) == 1 and args.fusion and args.fusion.lower() != "none":
        raise ConfigError(f"--modalities {modalities[0]} is a single-modality model: no --fusion")
    if args.fusion:
        model["fusion"] = None if args.fusion.lower() == "none" else args.fusion
    if args.heads:
        model["heads"] = [h.strip() for h in args.heads.split(",") if h.strip()]
    for item in args.encoder:
        if "=" in item:
            modality, name = item.split("=", 1)
        else:
            from mmml_core import registry

            name = item
            modality = getattr(registry.load("encoder", name), "modality", None)
        model.setdefault("encoders", {})[modality] = {"name": name, "config": {}}
    if model:
        flags["model"] = model
    layers.append(flags)
    return layers, modalities


def run(args: argparse.Namespace) -> int:
    from mmml_core import registry
    from mmml_core.config import ConfigError
    from mmml_core.hooks import get_plugin_manager
    from mmml_core.run import _merge, apply_override, resolve

    pm = get_plugin_manager()
    try:
        layers, modalities = _layers(args)
        current: dict[str, Any] = {}
        for layer in layers:
            current = _merge(current, layer)
        over: dict[str, Any] = {}
        for item in args.overrides:
            apply_override(over, item, _merge(current, over))
        layers.append(over)
        merged: dict[str, Any] = {}
        for layer in layers:
            merged = _merge(merged, layer)
        pm.hook.mmml_configure_run(run_config=merged, options=vars(args))
        cfg = resolve([merged], modalities)
    except (
        ConfigError,
        registry.UnknownComponentError,
        registry.PluginConflictError,
        ValueError,
    ) as exc:
        print(f"mmml-bench: error: {exc}", file=sys.stderr)
        return 2

    from mmml_core.engine import resolve_device

    try:
        resolve_device(cfg.train.get("device", "auto"))
    except (RuntimeError, ValueError) as exc:  # no CUDA here, or a malformed device name
        print(f"mmml-bench: error: {exc}", file=sys.stderr)
        return 2
    resolved = cfg.to_dict()
    if args.dry_run:
        print(json.dumps(resolved, indent=2))
        return 0
    fusion = (cfg.model["fusion"] or {"name": "+".join(cfg.model["encoders"])})["name"]
    out = Path(
        args.out or f"runs/{Path(cfg.data.dataset).name}-{fusion}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    if out.exists() and any(out.iterdir()) and not args.resume:
        print(
            f"mmml-bench: error: {out} exists and is not empty; pass --resume to continue "
            "that run, or another --out",
            file=sys.stderr,
        )
        return 2
    print(
        f"mmml-bench: {cfg.data.dataset} ({cfg.data.kind}), encoders "
        + ", ".join(f"{m}={s['name']}" for m, s in cfg.model["encoders"].items())
        + f", fusion {cfg.model['fusion']['name'] if cfg.model['fusion'] else 'none'}, "
        f"heads {','.join(cfg.model['heads'])}, loss {cfg.loss['name']}, seeds "
        f"{','.join(map(str, cfg.seeds))} -> {out}",
        file=sys.stderr,
    )
    from mmml_core.data import DatasetError
    from mmml_core.run import run_experiment

    try:
        result = run_experiment(cfg, out, resume=args.resume, progress=not args.no_progress)
    except (DatasetError, ConfigError, FileNotFoundError) as exc:
        print(f"mmml-bench: error: {exc}", file=sys.stderr)
        return 2
    pm.hook.mmml_report_results(run_dir=str(out), results=result["summary"])
    if args.json:
        print(json.dumps(result["summary"], indent=2))
    else:
        print(result["table"])
        print(
            f"outputs in {out}/ (summary.md, summary.csv, seed-*/results.json, curve.png, "
            "best_loss/ and best_acc/ checkpoints)"
        )
    return 0
