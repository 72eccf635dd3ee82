"""The four component kinds and what they exchange (docs/architecture.md#interfaces-and-data-flow).

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
    "head_name",
    "Component",
    "EncoderOutput",
    "FeatureEncoder",
    "Fusion",
    "Head",
    "Loss",
    "config_dict",
]


def head_name(encoder: Any) -> str:
    """The subnet head (and label) name of an encoder class or instance: its ``head``
    attribute when set, else the modality's first letter upper-cased (text -> T, audio -> A,
    video -> V: the field's ``label_T``, ``label_A``, ``label_V``). The fused head is ``M``.
    Modalities are an open set; this rule is the only place a head gets its name."""
    explicit = getattr(encoder, "head", None)
    if explicit:
        return str(explicit)
    return str(encoder.modality)[:1].upper()


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
    Raw items are ``str`` for text, 1-D float32 numpy arrays of 16 kHz mono samples
    for audio, and a video or frames file's path for video (:mod:`mmml_core.data.video`).
    """

    modality: ClassVar[str]
    #: The subnet head's name; None = the modality's first letter upper-cased (see
    #: :func:`head_name`). Set it when two modalities would share a letter.
    head: ClassVar[str | None] = None
    #: The config field that names the encoder's own network (a backbone, a checkpoint), so
    #: that ``--encoder MODALITY=MODEL`` may name a model instead of an encoder: a name that
    #: is no registered encoder goes to this field of the one installed encoder of that
    #: modality whose :meth:`names_model` accepts it. None: no such shorthand.
    model_field: ClassVar[str | None] = None

    @classmethod
    def names_model(cls, name: str) -> bool:
        """Whether ``name`` is a network this encoder builds through :attr:`model_field`."""
        return False

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

    def describe_inputs(self, previews: Sequence[Any]) -> dict[str, int]:
        """Count what :meth:`preprocess` will do to a split's items, for the run's data report
        (logged before training and kept in the run's results), e.g.
        ``{"texts truncated to 96 tokens": 3}`` or ``{"clips shorter than 400 samples
        (25 ms), zero-padded to it": 1}``. Only non-zero counts need to be returned.

        ``previews`` has one entry per item, what the dataset can tell without decoding:
        the text itself for text, the number of 16 kHz samples (after the length cut) for
        audio, the raw item for other modalities. The default reports nothing.
        """
        return {}

    def join_context(self, items: Sequence[Any]) -> Any:
        """One raw item from the raw items of earlier utterances, oldest first (a context
        model's input, docs/data.md#context; never called with an empty list). The default
        joins texts with a space and concatenates 1-D sample arrays (the encoder's
        ``preprocess`` then cuts them like any clip); other modalities must override it."""
        if all(isinstance(x, str) for x in items):
            return " ".join(items)
        if all(hasattr(x, "shape") and len(x.shape) == 1 for x in items):
            import numpy as np

            return np.concatenate([np.asarray(x) for x in items])
        raise TypeError(
            f"{type(self).__name__} cannot join context items of modality {self.modality!r}; "
            "override join_context"
        )

    def empty_context(self) -> Any:
        """The raw input an item without earlier utterances reads under
        ``data.empty_context=encode`` (the authors' context model encodes one): ``""`` for
        text, no samples for audio (the encoder's ``preprocess`` decides what an empty clip
        becomes); other modalities must override it."""
        if self.modality == "text":
            return ""
        if self.modality == "audio":
            import numpy as np

            return np.zeros(0, dtype=np.float32)
        raise TypeError(
            f"{type(self).__name__} has no empty {self.modality!r} input; override "
            "empty_context or use data.empty_context=mask"
        )

    def load_input(self, value: Any) -> Any:
        """A raw item of this modality from a user's value (``mmml-bench predict``): the
        string itself for text, a file path (any format soundfile reads) or 16 kHz samples for
        audio; other modalities get the value as given unless their encoder overrides this."""
        if self.modality == "audio" and not hasattr(value, "shape"):
            from mmml_core.data.audio import load_audio

            return load_audio(value, max_seconds=getattr(self.config, "max_seconds", None))
        return value

    @classmethod
    def loads_pretrained_weights(cls, config: Mapping[str, Any]) -> bool:
        """Whether an encoder built from ``config`` (its fields as a dict) starts from
        pretrained weights. Such an encoder is fine-tuned at ``train.pretrained_lr``; one that
        starts from random weights trains at the from-scratch rate ``train.lr`` (see
        :mod:`mmml_core.optim`). Decided from the config alone, without loading anything. The
        default: no pretrained weights."""
        return False

    def save_assets(self, directory: Any) -> bool:
        """Write into ``directory`` (a ``pathlib.Path`` that exists) every file besides the
        weights that is needed to rebuild this encoder offline (tokenizer, architecture
        config), so that a trained checkpoint is self-contained. Return True when something
        was written. The default (nothing needed beyond the config) writes nothing."""
        return False

    @classmethod
    def config_with_assets(cls, config: dict[str, Any], directory: Any) -> dict[str, Any]:
        """The config that rebuilds this encoder from the files :meth:`save_assets` wrote
        into ``directory`` (the weights come from the checkpoint's own weights file). Only
        called when ``save_assets`` returned True. The default returns ``config`` unchanged."""
        return config


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
    """Weighted sum of one criterion over the prediction heads (docs/architecture.md).

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
