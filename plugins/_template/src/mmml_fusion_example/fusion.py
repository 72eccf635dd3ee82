"""``example_gated``: gated sum of per-modality projections of the pooled vectors.

Letters: B batch, D_m a modality's encoder width, F the fused width (``dim``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from mmml_core.interfaces import EncoderOutput, Fusion

__all__ = ["GatedSumFusion", "GatedSumFusionConfig"]


@dataclass
class GatedSumFusionConfig:
    # modality -> encoder width; mmml fills this in from the encoders
    input_dims: dict[str, int] = field(default_factory=dict)
    # output width: small, because the fused head maps it to the prediction
    dim: int = 64


class GatedSumFusion(Fusion):
    Config = GatedSumFusionConfig

    def __init__(self, config: GatedSumFusionConfig) -> None:
        super().__init__(config)
        if not config.input_dims:
            raise ValueError("example_gated needs input_dims (modality -> width)")
        self.modalities = sorted(config.input_dims)
        self.proj = nn.ModuleDict(
            {m: nn.Linear(d, config.dim) for m, d in config.input_dims.items()}
        )
        self.gate = nn.ModuleDict(
            {m: nn.Linear(d, config.dim) for m, d in config.input_dims.items()}
        )
        self.out_dim = config.dim

    @classmethod
    def contract_config(cls) -> dict:
        """Small settings for the contract tests."""
        return {"dim": 8}

    def forward(self, encoded: Mapping[str, EncoderOutput]) -> Tensor:
        fused = None
        for m in self.modalities:
            pooled = encoded[m].pooled  # (B, D_m)
            part = torch.sigmoid(self.gate[m](pooled)) * self.proj[m](pooled)  # (B, F)
            fused = part if fused is None else fused + part
        return fused  # (B, F)
