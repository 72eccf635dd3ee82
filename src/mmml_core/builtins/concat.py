"""``concat``: the paper's "Direct Concatenation" baseline (section 3.2, Table 3).

Each modality's pooled encoder vector, concatenated in a fixed (sorted) modality order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor

from mmml_core.interfaces import EncoderOutput, Fusion

__all__ = ["ConcatFusion", "ConcatFusionConfig"]


@dataclass
class ConcatFusionConfig:
    # modality -> encoder width; filled in by the model assembly from the encoders
    input_dims: dict[str, int] = field(default_factory=dict)


class ConcatFusion(Fusion):
    Config = ConcatFusionConfig

    def __init__(self, config: ConcatFusionConfig) -> None:
        super().__init__(config)
        if not config.input_dims:
            raise ValueError("concat fusion needs input_dims (modality -> width)")
        self.modalities = sorted(config.input_dims)
        self.out_dim = sum(config.input_dims[m] for m in self.modalities)

    def forward(self, encoded: Mapping[str, EncoderOutput]) -> Tensor:
        return torch.cat([encoded[m].pooled for m in self.modalities], dim=-1)  # (B, ΣD)
