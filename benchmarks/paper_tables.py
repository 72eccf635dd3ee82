"""Recipes for the paper's experiments, on the demo set or on a real dataset by path.

    python benchmarks/paper_tables.py --table 3                      # demo set, small presets
    python benchmarks/paper_tables.py --table 4 --dataset ~/data/SIMS --dataset-kind sims

Tables (paper section 4):
  2  audio features, audio-only training: opensmile, mel (cnn8) and the pretrained audio
     encoder (data2vec for English, hubert for Chinese); reports binary accuracy
  3  text-only vs direct concatenation vs the fusion network (cross_attn)
  4  single-loss (fused head only) vs multi-loss (fused + text + audio heads)
  5  text subnet after multi-loss training vs a text-only model
  6  the three cross_attn variants: fused, concat, transformer

On the demo set each run starts from the `demo` preset (random:tiny encoders, 2 fusion
layers); on a real dataset from `paper-<kind>` (pretrained encoders, 5 layers, lr 1e-5,
batch 16, patience 8): the paper's settings. Every row is an ordinary `mmml-bench` run in
OUT/<n>-<row>; finished rows are read back, so an interrupted recipe continues.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from mmml_core.logs import console
from mmml_core.run import ComparisonRow, load_config_file, preset_path, resolve, run_comparison


def base_layers(args: argparse.Namespace) -> list[dict[str, Any]]:
    if args.dataset == "demo":
        layers = [load_config_file(preset_path("demo"))]
    else:
        if not args.dataset_kind:
            sys.exit("--dataset-kind is needed with a dataset path")
        layers = [
            load_config_file(preset_path(f"paper-{args.dataset_kind}")),
            {"data": {"dataset": args.dataset, "kind": args.dataset_kind}},
        ]
    extra: dict[str, Any] = {"seeds": [int(s) for s in args.seeds.split(",")]}
    if args.device:
        extra["train"] = {"device": args.device}
    if args.max_epochs:
        extra.setdefault("train", {})["max_epochs"] = args.max_epochs
    return [*layers, extra]


def rows_for(table: str, base: list[dict[str, Any]], language: str) -> list[ComparisonRow]:
    def with_(**model: Any) -> list[dict[str, Any]]:
        return [*base, {"model": model}]

    pretrained_audio = "hubert" if language == "zh" else "data2vec"
    if table == "2":
        rows = []
        for label, encoder in (
            ("openSMILE", "opensmile"),
            ("Mel spectrogram", "mel"),
            (f"fine-tuned {pretrained_audio}", pretrained_audio),
        ):
            # fusion None: an audio-only model has none, and the demo/paper presets name one
            model = {"encoders": {"audio": {"name": encoder, "config": {}}}, "fusion": None}
            layers = [*base, {"model": model}]
            rows.append(ComparisonRow(label, layers, head="A", modalities=["audio"]))
        return rows
    if table == "3":
        return [
            ComparisonRow("text-only", base, head="T", modalities=["text"]),
            ComparisonRow("concatenation", with_(fusion={"name": "concat", "config": {}})),
            ComparisonRow("+ fusion network", base),
        ]
    if table == "4":
        return [
            ComparisonRow("single-loss", with_(heads=["M"])),
            ComparisonRow("multi-loss", with_(heads=["M", "T", "A"])),
        ]
    if table == "5":
        return [
            ComparisonRow("text-only training", base, head="T", modalities=["text"]),
            ComparisonRow("text subnet after multi-loss", with_(heads=["M", "T", "A"]), head="T"),
        ]
    if table == "6":
        return [
            ComparisonRow(
                f"{v} variant", with_(fusion={"name": "cross_attn", "config": {"variant": v}})
            )
            for v in ("fused", "concat", "transformer")
        ]
    raise SystemExit(f"unknown table {table!r}; tables: 2, 3, 4, 5, 6")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--table", required=True, choices=["2", "3", "4", "5", "6"])
    parser.add_argument("--dataset", default="demo", help="demo (default) or a dataset root")
    parser.add_argument("--dataset-kind", choices=["mosi", "mosei", "sims"])
    parser.add_argument("--seeds", default="1,11,111", help="seeds (the paper averages 3 runs)")
    parser.add_argument("--device", help="auto (default), cpu or cuda")
    parser.add_argument("--max-epochs", type=int, help="override the preset's epoch cap")
    parser.add_argument("--out", help="output folder (default runs/table<N>-<dataset>)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve and print every row's configuration, train nothing",
    )
    args = parser.parse_args(argv)
    language = "zh" if args.dataset_kind == "sims" else "en"
    out = Path(args.out or f"runs/table{args.table}-{Path(args.dataset).name}")
    rows = rows_for(args.table, base_layers(args), language)
    if args.dry_run:
        for row in rows:
            cfg = resolve(row.layers, row.modalities)
            encoders = ", ".join(f"{m}={s.name}" for m, s in cfg.model.encoders.items())
            fusion = cfg.model.fusion
            described = f"{fusion.name} {json.dumps(fusion.config)}" if fusion else "none"
            print(
                f"{row.label}: {encoders}; fusion {described}; "
                f"heads {','.join(cfg.model.heads)}; reports {row.head}; seeds {cfg.seeds}"
            )
        return 0
    with console():  # each run's log on stderr (and in its log.txt), as mmml-bench does
        table, _ = run_comparison(rows, out)
    print(f"Table {args.table} on {args.dataset}\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
