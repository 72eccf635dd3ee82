"""The four component kinds and what they exchange (DESIGN §3).

Letters used in shape comments: B batch, T sequence length (tokens or audio frames),
D encoder width, F fused feature width.

Every component is a ``torch.nn.Module`` with a dataclass ``Config``. The registry builds
components from names and plain keyword configs (``registry.create("fusion", "concat",
input_dims={...})``); ``component.config`` holds the validated dataclass and
``config_dict(component)`` turns it back into the keywords that rebuild it.

Conventions the model assembly relies on:

- fusions receive ``input_dims`` (modality -> encoder width) in their config, and expose
  ``out_dim``;
- heads receive ``in_dim`` in their config;
- encoders expose ``modality`` and ``dim``.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor, nn

__all__ = [
    "MODALITY_HEADS",
    "Component",
    "EncoderOutput",
    "FeatureEncoder",
    "Fusion",
    "Head",
    "Loss",
    "config_dict",
]

#: Subnet head name per modality; the fused head is ``"M"`` (the field's label names).
MODALITY_HEADS: dict[str, str] = {"text": "T", "audio": "A", "vision": "V"}


@dataclass
class EncoderOutput:
    """One modality's encoded batch."""

    hidden: Tensor  # (B, T, D) sequence fed to the fusion
    mask: Tensor  # (B, T) bool, True = a real token/frame, False = padding
    pooled: Tensor  # (B, D) utterance vector for subnet heads and pooled fusions


class _ComponentMeta(abc.ABCMeta, type(nn.Module)):
    """``nn.Module``'s metaclass with ABC checks: a component that misses one of its kind's
    abstract methods cannot be instantiated (the error names the method)."""


class Component(nn.Module, metaclass=_ComponentMeta):
    """Base of every registered component: holds its validated dataclass config."""

    Config: ClassVar[type]

    def __init__(self, config: Any) -> None:
        super().__init__()
        if not isinstance(config, self.Config):
            raise TypeError(
                f"{type(self).__name__} expects a {self.Config.__name__}, got {type(config).__name__}"
            )
        self.config = config


def config_dict(component: Component) -> dict[str, Any]:
    """The keyword config that rebuilds ``component`` through ``registry.create``."""
    return dataclasses.asdict(component.config)


class FeatureEncoder(Component):
    """Turns raw items of one modality into an :class:`EncoderOutput`.

    ``preprocess`` runs in the DataLoader worker (tokenization, waveform normalisation,
    padding to the longest item of the batch) and returns a dict of tensors;
    ``forward`` takes that dict (moved to the device) and runs the network.
    Raw items are ``str`` for text and 1-D float32 numpy arrays of 16 kHz mono samples
    for audio.
    """

    modality: ClassVar[str]

    @property
    @abc.abstractmethod
    def dim(self) -> int:  # D
        """Width of ``hidden`` and ``pooled``."""

    @abc.abstractmethod
    def preprocess(self, items: Sequence[Any]) -> dict[str, Tensor]:
        """Raw items -> padded tensors (tokens, waveforms or features, and their masks)."""

    @abc.abstractmethod
    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        """The encoder network on the output of :meth:`preprocess`."""

    def fit(self, items: Sequence[Any]) -> None:
        """Compute statistics from the training split's raw items (e.g. z-scoring).

        Called once by the engine before training; statistics must live in buffers so
        that they are saved with the checkpoint. The default needs none.
        """


class Fusion(Component):
    """Combines the encoders' outputs into one feature vector per utterance."""

    out_dim: int  # F

    @abc.abstractmethod
    def forward(self, encoded: Mapping[str, EncoderOutput]) -> Tensor:  # (B, F)
        """One feature vector per utterance from every modality's output."""


class Head(Component):
    """Maps features to one regression output per utterance."""

    @abc.abstractmethod
    def forward(self, features: Tensor) -> Tensor:  # (B, in_dim) -> (B,)
        """One prediction per utterance."""


class Loss(Component):
    """Weighted sum of one criterion over the prediction heads (DESIGN §7).

    Subclasses implement :meth:`criterion` for one head; the weights of the config pick the
    heads (``{"M": 1.0}`` is single-loss training). Heads absent from ``predictions`` are
    skipped, so the same loss serves a text-only model.
    """

    @abc.abstractmethod
    def criterion(self, pred: Tensor, target: Tensor) -> Tensor:
        """The loss of one head, a scalar."""

    def forward(
        self, predictions: Mapping[str, Tensor], targets: Mapping[str, Tensor]
    ) -> tuple[Tensor, dict[str, Tensor]]:
        weights: Mapping[str, float] = self.config.weights
        parts: dict[str, Tensor] = {}
        total: Tensor | None = None
        for head, weight in weights.items():
            if head not in predictions or weight == 0:
                continue
            if head not in targets:
                raise KeyError(f"no target for head {head!r}; targets have {sorted(targets)}")
            part = self.criterion(predictions[head].float(), targets[head].float())
            parts[head] = part
            total = part * weight if total is None else total + part * weight
        if total is None:
            raise ValueError(
                f"loss weights {dict(weights)} select none of the model's heads "
                f"{sorted(predictions)}"
            )
        return total, parts
