"""Dataset kinds: the open registry of dataset formats (entry-point group ``mmml_core.datasets``).

A dataset kind is a class registered like any other component (docs/data.md); mmml-core's own
``demo``, ``mosi``, ``mosei`` and ``sims`` come through mmml-core's entry points, the same
door a third-party kind uses::

    [project.entry-points."mmml_core.datasets"]
    iemocap = "mmml_iemocap.kind:IemocapKind"

The registry needs these class attributes (:class:`DatasetKind` documents each one and may
be subclassed, but nothing requires it): ``Config`` (a dataclass of the kind's options, built
by ``registry.create("dataset", name, **options)``), ``language``, ``scheme``,
``modalities``, ``needs_path``, ``defaults``, and the method :meth:`DatasetKind.load`, which
returns an object shaped like :class:`LoadedDataset`. ``load`` may also take the keywords
``recase`` and ``skip_unusable`` (``data.recase``, ``data.skip_unusable``); a run passes them
only to a ``load`` that names them (see :func:`load_options`), and refuses a value other than
the default for a kind whose ``load`` does not.

Modalities are an open set of names: a kind says which raw fields its items can carry, a run
asks for some of them, and ``load`` validates only those (a text-only run never looks for
audio files). Items carry each loaded modality's raw value under the modality's own name,
which is where :func:`mmml_core.data.batching.collate` finds it.

This module imports neither torch nor soundfile: the run layer can read a kind's language,
scheme and defaults before anything heavy is loaded. The MMSA reader is imported by ``load``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

__all__ = [
    "DatasetError",
    "DatasetKind",
    "DemoKind",
    "LoadedDataset",
    "LoadedSplit",
    "MMSAConfig",
    "MMSAKind",
    "MoseiKind",
    "MosiKind",
    "NoOptions",
    "SimsKind",
    "load_options",
]

#: The optional keywords of :meth:`DatasetKind.load` and their defaults: a kind whose
#: ``load`` does not take one behaves as with the default.
LOAD_OPTIONS: dict[str, Any] = {
    "recase": "auto",
    "skip_unusable": False,
    "text_context": 0,
    "audio_context": 0,
    "context_order": "clip",
    "video_dir": "auto",
}


_MAX_LISTED = 200  # problems shown in the message; DatasetError.problems has them all


class DatasetError(ValueError):
    """A dataset that cannot be read as is. ``problems`` lists every issue found, each
    naming the file, and where it applies the line and field."""

    def __init__(
        self, root: Path | str | None, problems: Sequence[str], hint: str | None = None
    ) -> None:
        self.root = root
        self.problems = list(problems)
        #: how to get past the problems, where there is a known way (not itself a problem)
        self.hint = hint
        shown = self.problems[:_MAX_LISTED]
        more = len(self.problems) - len(shown)
        where = "dataset" if root is None else f"dataset at {root}"
        lines = [f"{where}: {len(self.problems)} problem(s):"]
        lines += [f"  - {p}" for p in shown]
        if more:
            lines.append(f"  ... and {more} more (DatasetError.problems holds them all)")
        if hint:
            lines.append(f"  hint: {hint}")
        super().__init__("\n".join(lines))


@runtime_checkable
class LoadedSplit(Protocol):
    """One split of a loaded dataset: a map-style torch ``Dataset`` of items
    ``{"id": str, <modality>: raw value for each loaded modality, "labels": {head: float}}``."""

    #: np.int64 per item, for the length-bucketed sampler (any measure of padding cost).
    lengths: Any

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict[str, Any]: ...

    def previews(self, modality: str) -> list[Any]:
        """Per item, what can be told of ``modality`` without decoding it (see
        ``FeatureEncoder.describe_inputs``)."""
        ...


@runtime_checkable
class LoadedDataset(Protocol):
    """What :meth:`DatasetKind.load` returns."""

    kind: str
    scheme: str  # metric scheme for mmml_core.metrics
    language: str
    has_modality_labels: bool  # items carry labels of their own for the subnet heads
    heads: tuple[str, ...]  # label names the items carry, "M" first
    modalities: tuple[str, ...]  # the loaded ones
    report: dict[str, int]  # what loading does to the data; zero counts left out
    # Optional, read with getattr: ``dropped``, the rows left out on request
    # (``skip_unusable``), one dict each with at least "video_id"/"clip_id" or "id", and
    # "reason".

    def split(self, name: str) -> LoadedSplit: ...


def load_options(kind: Any, **values: Any) -> tuple[dict[str, Any], list[str]]:
    """Split the optional ``load`` keywords (:data:`LOAD_OPTIONS`) given in ``values`` into
    those ``kind.load`` takes and the names of those it does not take although set to
    something other than their default (a third-party kind written before the keyword)."""
    import inspect

    try:
        params = inspect.signature(kind.load).parameters
    except (TypeError, ValueError):  # no signature to read: pass nothing optional
        params = {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    passed: dict[str, Any] = {}
    refused: list[str] = []
    for name, value in values.items():
        if name not in LOAD_OPTIONS:
            raise TypeError(f"unknown load option {name!r}")
        if takes_any or name in params:
            passed[name] = value
        elif value != LOAD_OPTIONS[name]:
            refused.append(name)
    return passed, refused


@dataclass
class NoOptions:
    """The ``Config`` of a kind without options."""


class DatasetKind:
    """Base of dataset kinds; a subclass sets the class attributes and implements :meth:`load`.

    Instances are made by ``registry.create("dataset", name, **options)``, which validates
    the options against ``Config`` and sets ``registry_name``.
    """

    Config: ClassVar[type] = NoOptions
    #: Text language, "en" or "zh": picks the default encoders and text token limits.
    language: ClassVar[str]
    #: Metric scheme for :mod:`mmml_core.metrics`: "mosi", "mosei" or "sims".
    scheme: ClassVar[str]
    #: Raw fields the items can carry; a run loads a subset.
    modalities: ClassVar[tuple[str, ...]]
    #: False for a kind bundled in its package: ``load(None, ...)`` finds it by itself.
    needs_path: ClassVar[bool] = True
    #: The kind's layer of the run configuration, beneath presets, files and flags:
    #: ``{"data": {...}, "train": {...}, "fields": {component field: value}}``, where
    #: "fields" hold defaults for fields of whichever component is chosen, applied only where
    #: that component's config has the field.
    defaults: ClassVar[dict[str, Any]] = {}
    #: The encoder a run uses for each modality when none is named (registry names); the
    #: run's modalities default to these keys.
    default_encoders: ClassVar[dict[str, str]] = {}
    #: Encoders for modalities a run may add (``--modalities text,audio,video``) but that are
    #: not in a run unless asked for.
    optional_encoders: ClassVar[dict[str, str]] = {}
    #: Name used for ``LoadedDataset.kind`` when the kind was not made by the registry.
    name: ClassVar[str] = ""

    def __init__(self, config: Any = None) -> None:
        self.config = self.Config() if config is None else config

    @property
    def kind_name(self) -> str:
        """The registry name this kind was created under (else its ``name``)."""
        return getattr(self, "registry_name", None) or self.name or type(self).__name__

    def load(
        self,
        root: str | os.PathLike[str] | None,
        *,
        modalities: Sequence[str],
        max_audio_seconds: float | None = 6.0,
        max_items: int | None = None,
    ) -> LoadedDataset:
        """Read and validate the dataset at ``root`` for the given ``modalities``.

        Raises ``DatasetError`` listing every problem found (file, line, field). Only the
        requested modalities are validated. ``max_items`` keeps the first N items of each
        split in file order (for short smoke runs; validation still covers every row);
        ``None`` keeps all. ``max_audio_seconds`` cuts audio when it is loaded (``None``:
        whole clips).

        A kind may also take ``recase`` (``"auto"``, ``"on"``, ``"off"``: re-case texts as
        ``text[0] + text[1:].lower()``) and ``skip_unusable`` (drop rows whose own audio
        cannot be used, listing them in ``dropped``), and ``text_context``,
        ``audio_context``, ``context_order`` (each item also carries that many earlier
        utterances of its video in its split as ``item["context"]``,
        :mod:`mmml_core.data.context`), and ``video_dir`` (where the ``video`` modality's
        files are); the MMSA kinds do.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement load()")

    def bundled_root(self) -> Path:
        """The folder of a bundled dataset (kinds with ``needs_path`` False override this)."""
        raise NotImplementedError(f"{type(self).__name__} has no bundled dataset")

    def resolve_root(self, root: str | os.PathLike[str] | None) -> Path:
        """``root`` as a path; ``None`` means the bundled folder, for kinds that have one."""
        if root is not None:
            return Path(root).expanduser()
        if self.needs_path:
            raise DatasetError(
                None,
                [
                    f"dataset kind {self.kind_name!r} needs a root folder (the path of the "
                    "dataset); only bundled kinds load without one"
                ],
            )
        return self.bundled_root()

    def requested_modalities(self, modalities: Sequence[str], root: Any) -> tuple[str, ...]:
        """The requested modalities, deduplicated in order; one this kind cannot provide is a
        ``DatasetError`` naming the kind's modalities."""
        if isinstance(modalities, str):  # ("text") is a common slip for ("text",)
            modalities = (modalities,)
        wanted = tuple(dict.fromkeys(modalities))
        if not wanted:
            raise DatasetError(root, ["no modality requested: a run needs at least one"])
        unknown = [m for m in wanted if m not in self.modalities]
        if unknown:
            raise DatasetError(
                root,
                [
                    f"dataset kind {self.kind_name!r} cannot provide modality {m!r}; its "
                    f"modalities are {', '.join(self.modalities)}"
                    for m in unknown
                ],
            )
        return wanted


@dataclass
class MMSAConfig:
    audio_dir: str = "wav"  # audio folder under the root (``mmml-bench extract-audio`` writes it)


class MMSAKind(DatasetKind):
    """A dataset in the MMSA layout (see :mod:`mmml_core.data.reader`)."""

    Config = MMSAConfig
    modalities = ("text", "audio", "video")
    # The paper's encoders (section 3.1): RoBERTa for text, Data2Vec for English audio.
    default_encoders = {"text": "roberta", "audio": "data2vec"}
    # The paper stops at text and audio; video is added on request (mmml-encoders-video).
    optional_encoders = {"video": "video"}
    #: Every label must lie in this closed range.
    label_range: ClassVar[tuple[float, float]]
    #: Whether label_T / label_A must be filled in every row (else they may be empty in all).
    modality_labels: ClassVar[bool]

    def load(
        self,
        root: str | os.PathLike[str] | None,
        *,
        modalities: Sequence[str],
        max_audio_seconds: float | None = 6.0,
        max_items: int | None = None,
        recase: str = "auto",
        skip_unusable: bool = False,
        text_context: int = 0,
        audio_context: int = 0,
        context_order: str = "clip",
        video_dir: str = "auto",
    ) -> LoadedDataset:
        from mmml_core.data.reader import read_mmsa

        path = self.resolve_root(root)
        return read_mmsa(
            path,
            kind=self.kind_name,
            scheme=self.scheme,
            language=self.language,
            label_range=self.label_range,
            modality_labels=self.modality_labels,
            modalities=self.requested_modalities(modalities, path),
            max_audio_seconds=max_audio_seconds,
            max_items=max_items,
            audio_dir=self.config.audio_dir,
            recase=recase,
            skip_unusable=skip_unusable,
            text_context=text_context,
            audio_context=audio_context,
            context_order=context_order,
            video_dir=video_dir,
        )


class MosiKind(MMSAKind):
    """CMU-MOSI: English, labels in [-3, 3], no per-modality labels."""

    name = "mosi"
    language = "en"
    scheme = "mosi"
    label_range = (-3.0, 3.0)
    modality_labels = False


class MoseiKind(MMSAKind):
    """CMU-MOSEI: English, labels in [-3, 3], no per-modality labels."""

    name = "mosei"
    language = "en"
    scheme = "mosei"
    label_range = (-3.0, 3.0)
    modality_labels = False


class SimsKind(MMSAKind):
    """CH-SIMS: Chinese, labels in [-1, 1], label_T and label_A in every row."""

    name = "sims"
    language = "zh"
    scheme = "sims"
    # Chinese RoBERTa-wwm (through `roberta`, language zh) and Chinese HuBERT, as the paper
    default_encoders = {"text": "roberta", "audio": "hubert"}
    label_range = (-1.0, 1.0)
    modality_labels = True


class DemoKind(MMSAKind):
    """The bundled synthetic demo set: English, scored like CH-SIMS, no download."""

    name = "demo"
    language = "en"
    scheme = "sims"
    label_range = (-1.0, 1.0)
    modality_labels = True
    needs_path = False
    # The demo set is small and synthetic, for trying the toolkit without downloads, so
    # its encoders are tiny and trained from random weights ("random:tiny"). The audio
    # encoders' convolutional front end trains too: frozen random filters cannot learn
    # pitch, which carries the demo's audio label. The learning rate and batch size are for
    # training from scratch (tiny models from random weights learn far faster than
    # fine-tuning allows, and smaller batches give more steps per epoch to leave their
    # plateau sooner). Fusion gets fewer layers and the fused head is smaller than the
    # paper's base setup, because the encoders are tiny. An encoder given pretrained weights
    # (text.checkpoint=DIR) is fine-tuned at pretrained_lr instead: the from-scratch rate
    # wrecks pretrained weights, and 5e-5 is the usual fine-tuning rate for a small labelled
    # set (measured here with a MiniLM text encoder). "fields" are defaults for fields of
    # whichever component is chosen, applied only where that component's config has the
    # field (so "layers" reaches a fusion that has layers, and nothing else).
    defaults = {
        "data": {"max_audio_seconds": 6.0},
        "train": {
            "lr": 1e-3,
            "pretrained_lr": 5e-5,
            "batch_size": 8,
            "max_epochs": 20,
            "patience": 8,
        },
        "fields": {
            "encoder": {"checkpoint": "random:tiny", "freeze_feature_extractor": False},
            "fusion": {"layers": 2},
            "head": {"hidden": 64, "hidden2": 32},
        },
    }

    def bundled_root(self) -> Path:
        from mmml_core.data.reader import demo_root

        return demo_root()
