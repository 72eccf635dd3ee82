"""Regression metrics exactly as the multimodal sentiment field computes them (docs/metrics.md).

``regression_metrics(pred, label, scheme)`` returns plain floats, accuracies and F1 as
fractions in [0, 1]; tables show those ×100 (:data:`PERCENT_KEYS`, :func:`to_table_units`).

Exactness rules (each is a trap a careless re-implementation falls into):

- predictions and labels are flattened to float32 and every comparison is made in float32,
  including the class edges: float32(-0.7) lies in the class *below* the -0.7 edge and
  float32(0.1) in the class below the 0.1 edge, whereas a float64 edge would flip both;
- rounding (Acc5/Acc7) is NumPy's round-half-to-even: 2.5 -> 2, -1.5 -> -2, 0.5 -> 0;
- MOSI/MOSEI: ``Has0_*`` count a zero label as positive (``>= 0``); ``Non0_*`` drop the
  samples whose *label* is exactly 0 and compare ``> 0``; MAE and Corr use unclipped values;
- CH-SIMS: predictions and labels are clipped to [-1, 1] first, and MAE and Corr use the
  clipped values; classes follow ``lo < v <= hi``, so 0 is negative in the 2-class split.

Undefined values are ``float('nan')``, never an exception: ``Corr`` when the predictions
(or labels) are constant, and ``Non0_Acc2``/``Non0_F1`` when every label is 0. Non-finite
inputs are an error (``ValueError``), since any metric over them would be meaningless.

F1 is the support-weighted F1 over the classes present in labels or predictions (the
``average="weighted"`` of common toolkits), implemented here with NumPy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "ACC2_KEY",
    "METRIC_KEYS",
    "PERCENT_KEYS",
    "SCHEMES",
    "format_metrics",
    "regression_metrics",
    "sims_classes",
    "to_table_units",
    "weighted_f1",
]

SCHEMES: tuple[str, ...] = ("mosi", "mosei", "sims")

_MOSI_KEYS = ("Has0_Acc2", "Has0_F1", "Non0_Acc2", "Non0_F1", "Acc5", "Acc7", "MAE", "Corr")
#: The exact keys ``regression_metrics`` returns per scheme, in the papers' column order.
METRIC_KEYS: dict[str, tuple[str, ...]] = {
    "mosi": _MOSI_KEYS,
    "mosei": _MOSI_KEYS,
    "sims": ("Acc2", "Acc3", "Acc5", "F1", "MAE", "Corr"),
}

#: Keys that tables report ×100 (accuracies and F1); MAE and Corr are shown as they are.
PERCENT_KEYS: frozenset[str] = frozenset(
    k for keys in METRIC_KEYS.values() for k in keys if k not in ("MAE", "Corr")
)

#: The binary accuracy per scheme, for "best validation binary accuracy" model selection.
ACC2_KEY: dict[str, str] = {"mosi": "Has0_Acc2", "mosei": "Has0_Acc2", "sims": "Acc2"}

# CH-SIMS class edges; a value v is in class i when edges[i] < v <= edges[i + 1].
# Stored as float32 on purpose: the comparison must happen in float32 (see module docstring).
_SIMS_EDGES: dict[int, np.ndarray] = {
    2: np.array([-1.01, 0.0, 1.01], dtype=np.float32),
    3: np.array([-1.01, -0.1, 0.1, 1.01], dtype=np.float32),
    5: np.array([-1.01, -0.7, -0.1, 0.1, 0.7, 1.01], dtype=np.float32),
}


def regression_metrics(pred: ArrayLike, label: ArrayLike, scheme: str) -> dict[str, float]:
    """All metrics of ``scheme`` ("mosi", "mosei" or "sims") for predictions vs labels.

    ``pred`` and ``label`` may be any array-like (NumPy arrays, lists, CPU tensors) of the
    same number of elements; they are flattened.
    """
    if scheme not in METRIC_KEYS:
        raise ValueError(f"unknown metric scheme {scheme!r}; expected one of {list(SCHEMES)}")
    p = _as_float32(pred, "pred")
    y = _as_float32(label, "label")
    if p.shape != y.shape:
        raise ValueError(f"pred has {p.size} values but label has {y.size}")
    if p.size == 0:
        raise ValueError("cannot compute metrics over zero samples")
    if scheme == "sims":
        return _sims_metrics(p, y)
    return _mosi_metrics(p, y)


def _as_float32(values: ArrayLike, name: str) -> np.ndarray:
    if hasattr(values, "detach"):  # a torch tensor: no torch import needed here
        values = values.detach().cpu().float().numpy()  # type: ignore[union-attr]
    arr = np.asarray(values, dtype=np.float32).reshape(-1)
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name} holds {bad} non-finite value(s) (NaN or inf)")
    return arr


def _mosi_metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    zero = np.float32(0.0)
    has0_p, has0_y = p >= zero, y >= zero
    nonzero = y != zero
    non0_p, non0_y = p[nonzero] > zero, y[nonzero] > zero
    if nonzero.any():
        non0_acc, non0_f1 = _accuracy(non0_p, non0_y), weighted_f1(non0_p, non0_y)
    else:  # every label is exactly 0: nothing left to score
        non0_acc = non0_f1 = math.nan
    return {
        "Has0_Acc2": _accuracy(has0_p, has0_y),
        "Has0_F1": weighted_f1(has0_p, has0_y),
        "Non0_Acc2": non0_acc,
        "Non0_F1": non0_f1,
        "Acc5": _accuracy(_round_clipped(p, 2.0), _round_clipped(y, 2.0)),
        "Acc7": _accuracy(_round_clipped(p, 3.0), _round_clipped(y, 3.0)),
        "MAE": _mae(p, y),
        "Corr": _pearson(p, y),
    }


def _sims_metrics(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    one = np.float32(1.0)
    p, y = np.clip(p, -one, one), np.clip(y, -one, one)
    cls = {n: (sims_classes(p, n), sims_classes(y, n)) for n in _SIMS_EDGES}
    return {
        "Acc2": _accuracy(*cls[2]),
        "Acc3": _accuracy(*cls[3]),
        "Acc5": _accuracy(*cls[5]),
        "F1": weighted_f1(*cls[2]),
        "MAE": _mae(p, y),
        "Corr": _pearson(p, y),
    }


def _round_clipped(v: np.ndarray, bound: float) -> np.ndarray:
    b = np.float32(bound)
    return np.round(np.clip(v, -b, b))  # np.round rounds half to even


def sims_classes(values: ArrayLike, n_classes: int) -> np.ndarray:
    """CH-SIMS class index (0 = most negative) of each value, for 2, 3 or 5 classes.

    Values are taken as float32 and compared with float32 edges; values outside [-1, 1]
    should be clipped first (``regression_metrics`` does).
    """
    if n_classes not in _SIMS_EDGES:
        raise ValueError(f"CH-SIMS classes come in 2, 3 or 5, not {n_classes}")
    v = np.asarray(values, dtype=np.float32)
    # searchsorted(side="left") returns i with edges[i-1] < v <= edges[i]: the class is i - 1.
    return np.searchsorted(_SIMS_EDGES[n_classes], v, side="left") - 1


def _accuracy(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a == b))


def _mae(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.abs(p - y), dtype=np.float64))


def _pearson(p: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation; NaN when either side is constant (the correlation is undefined)."""
    pc = p.astype(np.float64) - p.mean(dtype=np.float64)
    yc = y.astype(np.float64) - y.mean(dtype=np.float64)
    denom = math.sqrt(float(pc @ pc) * float(yc @ yc))
    if denom == 0.0:
        return math.nan
    return float(np.clip((pc @ yc) / denom, -1.0, 1.0))


def weighted_f1(pred: ArrayLike, true: ArrayLike) -> float:
    """Support-weighted mean of per-class F1 over the classes seen in ``true`` or ``pred``.

    A class's F1 is 2·TP / (support + predicted count); a class that is predicted but never
    true has weight 0. Equals ``sklearn.metrics.f1_score(true, pred, average="weighted")``.
    """
    pred_a, true_a = np.asarray(pred).reshape(-1), np.asarray(true).reshape(-1)
    if pred_a.shape != true_a.shape or pred_a.size == 0:
        raise ValueError("weighted_f1 needs two non-empty arrays of the same size")
    total = 0.0
    for c in np.union1d(pred_a, true_a):
        is_true, is_pred = true_a == c, pred_a == c
        support = int(is_true.sum())
        if support == 0:
            continue
        tp = int(np.sum(is_true & is_pred))
        total += support * (2.0 * tp / (support + int(is_pred.sum())))
    return total / true_a.size


def to_table_units(metrics: Mapping[str, float]) -> dict[str, float]:
    """Accuracies and F1 ×100, MAE and Corr unchanged: the units papers print."""
    return {k: (v * 100.0 if k in PERCENT_KEYS else v) for k, v in metrics.items()}


def format_metrics(metrics: Mapping[str, float]) -> str:
    """One line in table units, e.g. ``Acc2 80.25  F1 80.11  MAE 0.412  Corr nan``."""
    parts = []
    for key, value in to_table_units(metrics).items():
        if math.isnan(value):
            parts.append(f"{key} nan")
        elif key in PERCENT_KEYS:
            parts.append(f"{key} {value:.2f}")
        else:
            parts.append(f"{key} {value:.3f}")
    return "  ".join(parts)
