"""Prediction heads (docs/architecture.md#heads-losses-and-multi-loss).

``mlp``: the fused head, the paper's three fully connected layers (section 3.2).
``linear``: a subnet head on one encoder's pooled vector (section 3.3, Fig. 1 green part).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from mmml_core.interfaces import Head

__all__ = ["LinearHead", "LinearHeadConfig", "MLPHead", "MLPHeadConfig"]


@dataclass
class MLPHeadConfig:
    in_dim: int  # fused feature width, from the fusion
    hidden: int = 768  # H of the base encoders, as in the authors' code
    hidden2: int = 512  # second layer width of the paper's three-layer head
    dropout: float = 0.3  # the fusion network's dropout (docs/fusion.md)
    # linear layers: 3 = in -> hidden -> hidden2 -> 1 (the paper); each one more adds a
    # hidden -> hidden layer after the first (4: the authors' concatenation baseline);
    # 2 = in -> hidden -> 1 (the authors' context model; hidden2 unused)
    layers: int = 3

    def __post_init__(self) -> None:
        if isinstance(self.layers, bool) or not isinstance(self.layers, int) or self.layers < 2:
            raise ValueError(f"layers must be an integer >= 2, got {self.layers!r}")


class MLPHead(Head):
    Config = MLPHeadConfig

    def __init__(self, config: MLPHeadConfig) -> None:
        super().__init__(config)
        c = config
        body: list[nn.Module] = [nn.Dropout(c.dropout), nn.Linear(c.in_dim, c.hidden), nn.ReLU()]
        if c.layers == 2:
            self.net = nn.Sequential(*body, nn.Linear(c.hidden, 1))
            return
        for _ in range(c.layers - 3):
            body += [nn.Linear(c.hidden, c.hidden), nn.ReLU()]
        self.net = nn.Sequential(
            *body, nn.Linear(c.hidden, c.hidden2), nn.ReLU(), nn.Linear(c.hidden2, 1)
        )

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(-1)  # (B, in_dim) -> (B,)


@dataclass
class LinearHeadConfig:
    in_dim: int  # the encoder's pooled width
    dropout: float = 0.1  # light: the subnet head sits directly on a pretrained encoder


class LinearHead(Head):
    Config = LinearHeadConfig

    def __init__(self, config: LinearHeadConfig) -> None:
        super().__init__(config)
        self.net = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.in_dim, 1))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features).squeeze(-1)  # (B, D) -> (B,)
