"""Losses ``l1`` and ``mse`` and their multi-loss combination (docs/architecture.md).

total = Σ_h w_h · criterion(pred_h, target_h) over the heads named in ``weights``. The paper's
text says L2 (appendix A.1); the authors' code trains with L1; both are here and each recipe
names the one it uses. ``weights={"M": 1.0}`` is single-loss training.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor

from mmml_core.interfaces import Loss

__all__ = ["L1Loss", "LossConfig", "MSELoss"]


@dataclass
class LossConfig:
    # head -> weight; the paper's multi-loss weighs fused, text and audio heads equally
    weights: dict[str, float] = field(default_factory=lambda: {"M": 1.0, "T": 1.0, "A": 1.0})

    def __post_init__(self) -> None:
        bad = {h: w for h, w in self.weights.items() if not isinstance(w, (int, float)) or w < 0}
        if bad or not self.weights:
            raise ValueError(
                f"weights must be a non-empty head -> non-negative number map, got {self.weights}"
            )


class L1Loss(Loss):
    Config = LossConfig

    def criterion(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.l1_loss(pred, target)


class MSELoss(Loss):
    Config = LossConfig

    def criterion(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(pred, target)
