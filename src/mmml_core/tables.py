"""Tables over seeds: mean ± std per checkpoint selection and head, in Markdown and CSV.

Accuracies and F1 are shown ×100 with two decimals, MAE and Corr as they are with three; an
undefined value (constant predictions give no correlation) shows as ``nan``. Rows follow the
model's heads: the fused head ``M`` first, then one subnet head per modality.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "SELECTION_LABELS",
    "aggregate",
    "format_cell",
    "head_labels",
    "summary_table",
]

SELECTION_LABELS = {"best_loss": "lowest valid loss", "best_acc": "highest valid Acc2"}


def head_labels(subnet_heads: Mapping[str, str], heads: Sequence[str]) -> dict[str, str]:
    """Row labels of a model's heads, in table order: ``{"M": "M (fused)", "T": "T (text
    subnet)", ...}``. ``subnet_heads`` maps modality -> head name."""
    labels = {"M": "M (fused)"} if "M" in heads else {}
    for modality, head in subnet_heads.items():
        if head in heads:
            labels[head] = f"{head} ({modality} subnet)"
    return labels


def aggregate(
    per_seed: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """selection -> head -> metric -> [mean, std] over seeds (std with ddof=0 for one seed)."""
    import numpy as np

    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for selection in ("best_loss", "best_acc"):
        heads = per_seed[0]["selection"][selection]["test"]
        out[selection] = {}
        for head in heads:
            keys = per_seed[0]["selection"][selection]["test"][head].keys()
            out[selection][head] = {}
            for k in keys:
                vals = np.array(
                    [_num(r["selection"][selection]["test"][head][k]) for r in per_seed]
                )
                std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
                out[selection][head][k] = [float(np.mean(vals)), std]
    return out


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def format_cell(key: str, mean: float, std: float) -> str:
    """``mean ± std`` in table units: accuracies and F1 ×100 with 2 decimals, MAE and Corr
    as they are with 3; an undefined mean (constant predictions) shows as ``nan``."""
    from mmml_core.metrics import PERCENT_KEYS

    if math.isnan(mean):
        return "nan"
    if key in PERCENT_KEYS:
        return f"{100 * mean:.2f} ± {100 * std:.2f}"
    return f"{mean:.3f} ± {std:.3f}"


def summary_table(
    per_seed: Sequence[Mapping[str, Any]], scheme: str, head_labels: Mapping[str, str]
) -> tuple[str, str]:
    """Markdown and CSV: mean ± std over seeds per selection and head (accuracies and F1 ×100).

    ``head_labels`` (head -> row label, in row order; see :func:`head_labels`) names every
    head the model has, so no head is left out of the table."""
    from mmml_core.metrics import METRIC_KEYS, PERCENT_KEYS

    agg = aggregate(per_seed)
    keys = METRIC_KEYS[scheme]
    n = len(per_seed)
    lines = [
        f"Test metrics, mean ± std over {n} seed(s) ({', '.join(str(r['seed']) for r in per_seed)}); "
        "accuracies and F1 ×100; heads scored against the multimodal label.",
        "",
        "| checkpoint | head | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["checkpoint", "head", *[f"{k}_{s}" for k in keys for s in ("mean", "std")]])
    for selection, heads in agg.items():
        for head in head_labels:
            if head not in heads:
                continue
            cells = [format_cell(k, *heads[head][k]) for k in keys]
            row = []
            for k in keys:
                scale = 100.0 if k in PERCENT_KEYS else 1.0
                row += [heads[head][k][0] * scale, heads[head][k][1] * scale]
            lines.append(
                f"| {SELECTION_LABELS[selection]} | {head_labels[head]} | "
                + " | ".join(cells)
                + " |"
            )
            writer.writerow([selection, head, *[f"{v:.6g}" for v in row]])
    return "\n".join(lines) + "\n", buf.getvalue()
