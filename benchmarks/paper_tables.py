"""Recipes for the paper's experiments, on the demo set or on a real dataset by path.

    python benchmarks/paper_tables.py --table 3                      # demo set, small presets
    python benchmarks/paper_tables.py --table 4 --dataset ~/data/SIMS --dataset-kind sims
    python benchmarks/paper_tables.py --table 2 --dataset ~/data/SIMS --dataset-kind sims \\
        --profile authors                                            # the authors' protocol

Tables (paper section 4):
  2  audio features, audio-only training: opensmile, mel (cnn8) and the pretrained audio
     encoder (data2vec for English, hubert for Chinese); reports binary accuracy. With
     --profile authors, the authors' protocol: MSE loss, lr 1e-4, batch 16, and the audio
     model learns its own label (label_A on CH-SIMS; label where there is no other)
  3  text-only vs direct concatenation vs the fusion network (cross_attn)
  4  single-loss (fused head only) vs multi-loss (fused + text + audio heads), on the
     concatenation model: the paper's multi-loss rows are its Table 3 concatenation rows,
     number for number. The same pair on cross_attn follows as two extra rows
  5  text subnet after multi-loss training vs a text-only model
  6  the three cross_attn variants: fused, concat, transformer

--profile paper (the default) or authors: on the demo set each run starts from the `demo`
preset (random:tiny encoders, 2 fusion layers), with the layer `profile = "authors"` for the
authors' profile; on a real dataset from `paper-<kind>` (pretrained encoders, 5 layers, lr
1e-5, batch 16, patience 8: the paper's settings) or `authors-<kind>` (the authors' code's).
Every row is an ordinary `mmml-bench` run in OUT/<n>-<row>; finished rows are read back, so
an interrupted recipe continues.

After the measured tables comes one against the paper: per row and metric the paper's
number for that cell (typed in from its tables: PAPER below), the measured mean at each
checkpoint selection and the gap measured - paper; "—" where the paper has no number (the
demo set, datasets a table does not cover, our extra rows).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmml_core.logs import console
from mmml_core.metrics import ACC2_KEY, METRIC_KEYS, PERCENT_KEYS
from mmml_core.run import ComparisonRow, load_config_file, preset_path, resolve, run_comparison
from mmml_core.tables import SELECTION_LABELS

TABLES = ("2", "3", "4", "5", "6")
PROFILES = ("paper", "authors")
NO_NUMBER = "—"

# -- the rows ---------------------------------------------------------------------------------


def base_layers(args: argparse.Namespace) -> list[dict[str, Any]]:
    profile = getattr(args, "profile", "paper")
    if profile not in PROFILES:
        sys.exit(f"--profile is one of {', '.join(PROFILES)}, not {profile!r}")
    if args.dataset == "demo":
        layers = [load_config_file(preset_path("demo"))]
        if profile != "paper":
            layers.append({"profile": profile})
    else:
        if not args.dataset_kind:
            sys.exit("--dataset-kind is needed with a dataset path")
        layers = [
            load_config_file(preset_path(f"{profile}-{args.dataset_kind}")),
            {"data": {"dataset": args.dataset, "kind": args.dataset_kind}},
        ]
    extra: dict[str, Any] = {"seeds": [int(s) for s in args.seeds.split(",")]}
    if args.device:
        extra["train"] = {"device": args.device}
    if args.max_epochs:
        extra.setdefault("train", {})["max_epochs"] = args.max_epochs
    return [*layers, extra]


#: Table 2 under --profile authors: the authors' audio-only protocol (their code, not the
#: paper's text): MSE, one rate of 1e-4 for every part, batch 16, and the audio model learns
#: its own modality's label (label_A on CH-SIMS; MOSI has only `label`).
AUTHORS_TABLE2: dict[str, Any] = {
    "loss": {"name": "mse"},
    "train": {"lr": 1e-4, "pretrained_lr": 1e-4, "batch_size": 16, "unimodal_label": "own"},
}


def rows_for(
    table: str, base: list[dict[str, Any]], language: str, profile: str = "paper"
) -> list[ComparisonRow]:
    def with_(**model: Any) -> list[dict[str, Any]]:
        return [*base, {"model": model}]

    concat = {"name": "concat", "config": {}}
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
            if profile == "authors":
                layers.append(AUTHORS_TABLE2)
            rows.append(ComparisonRow(label, layers, head="A", modalities=["audio"]))
        return rows
    if table == "3":
        return [
            ComparisonRow("text-only", base, head="T", modalities=["text"]),
            ComparisonRow("concatenation", with_(fusion=concat)),
            ComparisonRow("+ fusion network", base),
        ]
    if table == "4":
        # the paper's multi-loss rows are its Table 3 concatenation rows: the ablation ran on
        # the concatenation model. The cross_attn pair is ours, kept for comparison
        return [
            ComparisonRow("single-loss", with_(fusion=concat, heads=["M"])),
            ComparisonRow("multi-loss", with_(fusion=concat, heads=["M", "T", "A"])),
            ComparisonRow("single-loss (cross_attn)", with_(heads=["M"])),
            ComparisonRow("multi-loss (cross_attn)", with_(heads=["M", "T", "A"])),
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
    raise SystemExit(f"unknown table {table!r}; tables: {', '.join(TABLES)}")


# -- the paper's numbers ----------------------------------------------------------------------


@dataclass(frozen=True)
class PaperRow:
    """One row of one of the paper's tables: where it is, and its numbers as printed there,
    keyed by our metric names (:data:`mmml_core.metrics.METRIC_KEYS`)."""

    source: str  # the paper's table, sub-table and row label
    values: Mapping[str, float]


def _mosi(*v: float) -> dict[str, float]:
    """A row of a MOSI/MOSEI table; the paper's columns are ours, in our order: Has0_ACC2,
    Has0_F1, Non0_ACC2, Non0_F1, ACC5, ACC7, MAE, CORR."""
    return dict(zip(METRIC_KEYS["mosi"], v, strict=True))


def _sims(*v: float) -> dict[str, float]:
    """A row of a CH-SIMS table: ACC2, ACC3, ACC5, F1, MAE, CORR, our order too."""
    return dict(zip(METRIC_KEYS["sims"], v, strict=True))


def _t2(kind: str, value: float) -> dict[str, float]:
    # Table 2's one column is "ACC2" with no Has0/Non0 qualifier; it is compared with the
    # binary accuracy that model selection uses (Has0_Acc2 on MOSI, Acc2 on CH-SIMS)
    return {ACC2_KEY[kind]: value}


#: (table, dataset kind, our row label) -> the paper's row. Typed in once from the paper's
#: Tables 2-6. Units as the paper prints them: Table 2 as a fraction, Tables 3-6 in percent,
#: MAE and Corr included (×100); :func:`paper_numbers` converts to our table units.
PAPER: dict[tuple[str, str, str], PaperRow] = {
    # Table 2 (a) CH-SIMS, (b) CMU-MOSI
    ("2", "sims", "openSMILE"): PaperRow(
        "Table 2 (a) CH-SIMS, row 'openSMILE'", _t2("sims", 0.6696)
    ),
    ("2", "sims", "Mel spectrogram"): PaperRow(
        "Table 2 (a) CH-SIMS, row 'Mel Spectrogram'", _t2("sims", 0.6805)
    ),
    ("2", "sims", "fine-tuned hubert"): PaperRow(
        "Table 2 (a) CH-SIMS, row 'Fine-tuned HuBert(CH)'", _t2("sims", 0.7465)
    ),
    ("2", "mosi", "openSMILE"): PaperRow(
        "Table 2 (b) CMU-MOSI, row 'openSMILE'", _t2("mosi", 0.4606)
    ),
    ("2", "mosi", "Mel spectrogram"): PaperRow(
        "Table 2 (b) CMU-MOSI, row 'Mel Spectrogram'", _t2("mosi", 0.4519)
    ),
    ("2", "mosi", "fine-tuned data2vec"): PaperRow(
        "Table 2 (b) CMU-MOSI, row 'Fine-tuned Data2vec(EN)'", _t2("mosi", 0.7099)
    ),
    # Table 3 (a) CMU-MOSI
    ("3", "mosi", "text-only"): PaperRow(
        "Table 3 (a) CMU-MOSI, row 'text-only'",
        _mosi(84.79, 84.72, 87.29, 87.29, 56.41, 48.68, 64.96, 83.61),
    ),
    ("3", "mosi", "concatenation"): PaperRow(
        "Table 3 (a) CMU-MOSI, row 'concatenation'",
        _mosi(85.77, 85.74, 87.6, 87.62, 56.51, 48.79, 64.27, 84.06),
    ),
    ("3", "mosi", "+ fusion network"): PaperRow(
        "Table 3 (a) CMU-MOSI, row '+ fusion network'",
        _mosi(85.91, 85.85, 88.16, 88.15, 56.08, 48.25, 64.29, 83.8),
    ),
    # Table 3 (b) CMU-MOSEI
    ("3", "mosei", "text-only"): PaperRow(
        "Table 3 (b) CMU-MOSEI, row 'text-only'",
        _mosi(84.81, 84.95, 86.34, 86.19, 54.99, 52.7, 53.31, 78.6),
    ),
    ("3", "mosei", "concatenation"): PaperRow(
        "Table 3 (b) CMU-MOSEI, row 'concatenation'",
        _mosi(84.77, 84.9, 86.82, 86.65, 55.99, 53.94, 51.63, 79.81),
    ),
    ("3", "mosei", "+ fusion network"): PaperRow(
        "Table 3 (b) CMU-MOSEI, row '+ fusion network'",
        _mosi(86.32, 86.23, 86.73, 86.49, 57.32, 54.95, 51.54, 79.08),
    ),
    # Table 3 (c) CH-SIMS
    ("3", "sims", "text-only"): PaperRow(
        "Table 3 (c) CH-SIMS, row 'text-only'", _sims(79.21, 65.06, 42.02, 79.14, 42.65, 59.4)
    ),
    ("3", "sims", "concatenation"): PaperRow(
        "Table 3 (c) CH-SIMS, row 'concatenation'", _sims(81.91, 70.68, 47.12, 82.1, 34.96, 72.37)
    ),
    ("3", "sims", "+ fusion network"): PaperRow(
        "Table 3 (c) CH-SIMS, row '+ fusion network'",
        _sims(82.93, 69.37, 49.38, 82.9, 33.2, 73.26),
    ),
    # Table 4 (a) CMU-MOSEI, (b) CH-SIMS: the multi-loss rows equal Table 3's concatenation
    # rows, so they are matched to our concat rows; the (cross_attn) rows have no number
    ("4", "mosei", "single-loss"): PaperRow(
        "Table 4 (a) CMU-MOSEI, row 'single-loss'",
        _mosi(85.22, 85.39, 87.02, 86.91, 55.95, 53.85, 51.96, 79.68),
    ),
    ("4", "mosei", "multi-loss"): PaperRow(
        "Table 4 (a) CMU-MOSEI, row 'multi-loss'",
        _mosi(84.77, 84.9, 86.82, 86.65, 55.99, 53.94, 51.63, 79.81),
    ),
    ("4", "sims", "single-loss"): PaperRow(
        "Table 4 (b) CH-SIMS, row 'Single-loss'", _sims(78.34, 67.18, 46.83, 78.59, 39.09, 62.69)
    ),
    ("4", "sims", "multi-loss"): PaperRow(
        "Table 4 (b) CH-SIMS, row 'multi-loss'", _sims(81.91, 70.68, 47.12, 82.1, 34.96, 72.37)
    ),
    # Table 5 (a) CMU-MOSI, (b) CMU-MOSEI, (c) CH-SIMS: the text head T of each model
    ("5", "mosi", "text-only training"): PaperRow(
        "Table 5 (a) CMU-MOSI, row 'text-loss only'",
        _mosi(84.79, 84.72, 87.29, 87.29, 56.41, 48.68, 64.96, 83.61),
    ),
    ("5", "mosi", "text subnet after multi-loss"): PaperRow(
        "Table 5 (a) CMU-MOSI, row 'multi-loss'",
        _mosi(85.62, 85.56, 87.91, 87.9, 55.01, 47.42, 64.76, 83.79),
    ),
    ("5", "mosei", "text-only training"): PaperRow(
        # ACC7 52.97 here, 52.7 in Table 3's same row: as printed in each table
        "Table 5 (b) CMU-MOSEI, row 'text-loss only'",
        _mosi(84.81, 84.95, 86.34, 86.19, 54.99, 52.97, 53.31, 78.6),
    ),
    ("5", "mosei", "text subnet after multi-loss"): PaperRow(
        "Table 5 (b) CMU-MOSEI, row 'multi-loss'",
        _mosi(84.36, 84.62, 86.85, 86.76, 56.06, 53.61, 52.35, 79.49),
    ),
    ("5", "sims", "text-only training"): PaperRow(
        "Table 5 (c) CH-SIMS, row 'text-loss only'",
        _sims(79.21, 65.06, 42.02, 79.14, 42.65, 59.4),
    ),
    ("5", "sims", "text subnet after multi-loss"): PaperRow(
        "Table 5 (c) CH-SIMS, row 'multi-loss'", _sims(83.15, 72.14, 48.21, 83.74, 28.58, 78.72)
    ),
    # Table 6 (a) CMU-MOSEI, (b) CH-SIMS
    ("6", "mosei", "fused variant"): PaperRow(
        "Table 6 (a) CMU-MOSEI, row 'Fused Features Only'",
        _mosi(86.32, 86.23, 86.73, 86.49, 57.32, 54.95, 51.54, 79.08),
    ),
    ("6", "mosei", "concat variant"): PaperRow(
        "Table 6 (a) CMU-MOSEI, row 'Concatenation'",
        _mosi(84.96, 85.09, 86.78, 86.61, 56.86, 57.78, 51.88, 79.09),
    ),
    ("6", "mosei", "transformer variant"): PaperRow(
        "Table 6 (a) CMU-MOSEI, row 'Transformer'",
        _mosi(86.11, 86.08, 86.7, 86.46, 57.01, 54.31, 51.97, 78.96),
    ),
    ("6", "sims", "fused variant"): PaperRow(
        "Table 6 (b) CH-SIMS, row 'Fused Features Only'",
        _sims(82.93, 69.37, 49.38, 82.9, 33.2, 73.26),
    ),
    ("6", "sims", "concat variant"): PaperRow(
        "Table 6 (b) CH-SIMS, row 'Concatenation'", _sims(82.42, 69.44, 49.82, 82.38, 33.6, 72.87)
    ),
    ("6", "sims", "transformer variant"): PaperRow(
        "Table 6 (b) CH-SIMS, row 'Transformer'", _sims(82.42, 69.95, 49.89, 82.52, 33.12, 72.61)
    ),
}


def paper_numbers(table: str, kind: str, label: str) -> dict[str, float]:
    """The paper's numbers for one of our rows in our table units (accuracies and F1 ×100,
    MAE and Corr as they are); empty where the paper has no such row."""
    row = PAPER.get((table, kind, label))
    if row is None:
        return {}
    out = {}
    for key, value in row.values.items():
        if table == "2":  # printed as a fraction
            out[key] = value * 100 if key in PERCENT_KEYS else value
        else:  # printed ×100, MAE and Corr included
            out[key] = value if key in PERCENT_KEYS else value / 100
    return out


def paper_columns(table: str, scheme: str) -> tuple[str, ...]:
    """Our metric names of the paper's columns for ``table`` on a dataset of ``scheme``."""
    if table == "2":
        return (ACC2_KEY[scheme],)
    return METRIC_KEYS[scheme]


def _number(key: str, value: float, *, signed: bool = False) -> str:
    if math.isnan(value):
        return "nan"
    digits = 2 if key in PERCENT_KEYS else 3
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def paper_comparison(
    table: str,
    kind: str,
    scheme: str,
    rows: Sequence[ComparisonRow],
    results: Mapping[str, Any],
) -> str:
    """The Markdown table against the paper: one line per row and metric of the paper's
    columns, with the paper's number, the measured mean per checkpoint selection and the gap
    (measured - paper). ``results`` is :func:`run_comparison`'s second value."""
    selections = list(SELECTION_LABELS.items())
    header = ["run", "head", "metric", "paper"]
    for _, title in selections:
        header += [title, "gap"]
    where = "the demo set" if kind == "demo" else kind
    lines = [
        f"Against the paper, Table {table} on {where}: measured means over seeds in the table's "
        "units (accuracies and F1 ×100; MAE and Corr as they are, the paper's ×100 divided "
        f"back); gap = measured - paper; {NO_NUMBER} where the paper has no number.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for row in rows:
        r = results[row.label]
        paper = paper_numbers(table, kind, row.label)
        for key in paper_columns(table, scheme):
            cells = [row.label, r["head_label"], key]
            ref = paper.get(key)
            cells.append(NO_NUMBER if ref is None else _number(key, ref, signed=False))
            for selection, _ in selections:
                mean = r["aggregate"][selection][r["head"]][key][0]
                scale = 100.0 if key in PERCENT_KEYS else 1.0
                measured = mean * scale
                cells.append(_number(key, measured))
                gap = NO_NUMBER if ref is None else _number(key, measured - ref, signed=True)
                cells.append(gap)
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# -- the command ------------------------------------------------------------------------------


def describe_row(row: ComparisonRow) -> str:
    """One dry-run line: what the row trains and reports."""
    cfg = resolve(row.layers, row.modalities)
    encoders = ", ".join(f"{m}={s.name}" for m, s in cfg.model.encoders.items())
    fusion = cfg.model.fusion
    described = f"{fusion.name} {json.dumps(fusion.config)}" if fusion else "none"
    train = cfg.train
    line = (
        f"{row.label}: {encoders}; fusion {described}; "
        f"heads {','.join(cfg.model.heads)}; reports {row.head}; seeds {cfg.seeds}; "
        f"loss {cfg.loss.name}; lr {train.lr:g} (pretrained {train.pretrained_lr:g}); "
        f"batch {train.batch_size}"
    )
    unimodal = getattr(train, "unimodal_label", None)
    if unimodal is not None:
        line += f"; unimodal label {unimodal}"
    profile = getattr(cfg, "profile", None)
    if profile is not None:
        line += f"; profile {profile}"
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--table", required=True, choices=list(TABLES))
    parser.add_argument("--dataset", default="demo", help="demo (default) or a dataset root")
    parser.add_argument("--dataset-kind", choices=["mosi", "mosei", "sims"])
    parser.add_argument(
        "--profile",
        default="paper",
        choices=list(PROFILES),
        help="paper (default): the paper's settings; authors: the authors' code's",
    )
    parser.add_argument("--seeds", default="1,11,111", help="seeds (the paper averages 3 runs)")
    parser.add_argument("--device", help="auto (default), cpu or cuda")
    parser.add_argument("--max-epochs", type=int, help="override the preset's epoch cap")
    parser.add_argument(
        "--out", help="output folder (default runs/table<N>-<dataset>, -authors appended)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve and print every row's configuration, train nothing",
    )
    args = parser.parse_args(argv)
    language = "zh" if args.dataset_kind == "sims" else "en"
    suffix = "" if args.profile == "paper" else f"-{args.profile}"
    out = Path(args.out or f"runs/table{args.table}-{Path(args.dataset).name}{suffix}")
    rows = rows_for(args.table, base_layers(args), language, args.profile)
    if args.dry_run:
        for row in rows:
            print(describe_row(row))
        return 0
    with console():  # each run's log on stderr (and in its log.txt), as mmml-bench does
        table, results = run_comparison(rows, out)
    kind = "demo" if args.dataset == "demo" else args.dataset_kind
    scheme = resolve(rows[0].layers, rows[0].modalities).scheme
    against = paper_comparison(args.table, kind, scheme, rows, results)
    (out / "paper.md").write_text(against)
    print(f"Table {args.table} on {args.dataset} (profile {args.profile})\n")
    print(table)
    print(against)
    return 0


if __name__ == "__main__":
    sys.exit(main())
