"""``tfn``: tensor fusion (Zadeh et al., 2017, "Tensor Fusion Network for Multimodal Sentiment
Analysis"; the MMML paper cites it in sections 1-2 as the outer-product baseline);
see docs/fusion.md#tfn-tensor-fusion.

Each modality's pooled vector is projected to ``proj_dim`` and extended with a constant 1;
the outer product of the extended vectors over all M >= 2 modalities holds every unimodal
feature (the 1s), every bimodal product, and so on up to the M-way product. It is flattened
and passed through an MLP::

    z_m = [Linear_m(pooled_m), 1]                              # (B, P+1) per modality
    Z   = z_1 ⊗ z_2 ⊗ ... ⊗ z_M, flattened                     # (B, (P+1)^M)
    out = ReLU(Linear(ReLU(Linear(Drop(Z)))))                  # (B, hidden)

z_1 .. z_M are the modalities in sorted name order, and the flattening is row-major (the last
modality's index varies fastest): Z[i_1 ... i_M] = z_1[i_1] · ... · z_M[i_M], computed as
((z_1 ⊗ z_2) flattened ⊗ z_3) flattened ..., so for two and three modalities it is the
computation of the 2-or-3-modality code, bit for bit.

Why project first: the product has (D+1)^M entries; with 768-wide encoders that is 591k
features for two modalities and 455M for three, so the first MLP layer would not fit. At the
default ``proj_dim=32`` it is 33^2 = 1,089 (two), 33^3 = 35,937 (three) or 33^4 = 1,185,921
(four) features. The projection is linear (no activation): the product itself is the
nonlinearity, and a linear map keeps the original TFN's "unimodal features survive through the
1s" property. A config whose first MLP layer would hold more than ``MAX_FIRST_LAYER_WEIGHTS``
(2^28, 1 GiB of float32) weights, (P+1)^M · hidden, is refused: lower ``proj_dim`` (or
``hidden``).

Modalities are taken in sorted name order, so the layout of Z never depends on dict order.
Only pooled vectors are used, so padding never matters here.

Legend of the letters in shape comments: B batch, D a modality's encoder width, P proj_dim,
M number of modalities, N the running width of the flattened product.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from mmml_core.interfaces import EncoderOutput, Fusion

__all__ = ["MAX_FIRST_LAYER_WEIGHTS", "TensorFusion", "TensorFusionConfig"]

#: The most weights the first post-fusion layer, Linear((P+1)^M -> hidden), may have: 2^28
#: (1 GiB in float32). Five modalities at the default P = 32 and hidden = 128 would need 5.0e9.
MAX_FIRST_LAYER_WEIGHTS = 2**28


@dataclass
class TensorFusionConfig:
    # modality -> encoder width; filled in by the model assembly; 2 or more modalities
    input_dims: dict[str, int] = field(default_factory=dict)
    # P: keeps the product small, (P+1)^M features (module docstring); TFN's own audio and
    # visual sub-networks were 32 wide
    proj_dim: int = 32
    hidden: int = 128  # post-fusion MLP width, TFN's post-fusion layers were this size
    dropout: float = 0.3  # on the product, like the other fusions' dropout (docs/fusion.md)

    def __post_init__(self) -> None:
        dims = dict(self.input_dims)
        if len(dims) < 2:
            raise ValueError(f"tfn fuses 2 or more modalities, got input_dims {dims}")
        bad = {m: d for m, d in dims.items() if not isinstance(d, int) or d <= 0}
        if bad:
            raise ValueError(f"input_dims must be positive integers, got {bad}")
        for name in ("proj_dim", "hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        product = (self.proj_dim + 1) ** len(dims)
        if product * self.hidden > MAX_FIRST_LAYER_WEIGHTS:
            raise ValueError(
                f"tfn over {len(dims)} modalities at proj_dim={self.proj_dim}: the flattened "
                f"product has (proj_dim+1)^{len(dims)} = {product:,} features and the first "
                f"layer (hidden={self.hidden}) {product * self.hidden:,} weights, more than "
                f"{MAX_FIRST_LAYER_WEIGHTS:,}; lower proj_dim (or hidden)"
            )


class TensorFusion(Fusion):
    """Outer product of 1-augmented projected pooled vectors, then an MLP; out_dim = hidden."""

    Config = TensorFusionConfig

    def __init__(self, config: TensorFusionConfig) -> None:
        super().__init__(config)
        c = config
        self.modalities = sorted(c.input_dims)
        self.proj = nn.ModuleDict(
            {m: nn.Linear(int(c.input_dims[m]), c.proj_dim) for m in self.modalities}
        )
        product = (c.proj_dim + 1) ** len(self.modalities)  # width of the flattened product
        self.mlp = nn.Sequential(
            nn.Dropout(c.dropout),
            nn.Linear(product, c.hidden),
            nn.ReLU(),
            nn.Linear(c.hidden, c.hidden),
            nn.ReLU(),
        )
        self.out_dim = c.hidden

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        """Tiny settings for the contract tests (input_dims come from the contract)."""
        return {"proj_dim": 4, "hidden": 8}

    def forward(self, encoded: Mapping[str, EncoderOutput]) -> Tensor:
        missing = [m for m in self.modalities if m not in encoded]
        if missing:
            raise KeyError(f"tfn was built for {self.modalities}; missing {missing}")
        product: Tensor | None = None
        for m in self.modalities:
            v = self.proj[m](encoded[m].pooled)  # (B, P)
            z = torch.cat([v, v.new_ones(v.shape[0], 1)], dim=-1)  # (B, P+1)
            if product is None:
                product = z  # (B, N) with N = P+1
            else:
                outer = product[:, :, None] * z[:, None, :]  # (B, N, 1) * (B, 1, P+1)
                product = outer.flatten(1)  # (B, N·(P+1))
        assert product is not None
        return self.mlp(product)  # (B, hidden)
