"""Turning dataset items into model batches, and a length-bucketed batch sampler (docs/data.md).

Padding is the encoders' job: ``FeatureEncoder.preprocess`` pads each modality to the
longest item of the batch and builds its exact masks. This module only gathers each
modality's raw items, calls ``preprocess`` and stacks the targets, so the work runs in the
DataLoader workers and the training step receives ready tensors.

Modalities are an open set: an item carries each loaded modality's raw value under the
modality's name (``item["text"]``, ``item["audio"]``, ``item["pulse"]``, ...), so a new
modality needs a dataset kind that provides it and an encoder for it, nothing here.

``LengthBucketSampler`` groups items of similar length into the same batch so that
per-batch padding stays small, while every item is still seen exactly once per epoch in a
seeded, epoch-dependent order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypedDict

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Sampler

from mmml_core.cache import CachedItem, pad_cached
from mmml_core.interfaces import FeatureEncoder

__all__ = [
    "Batch",
    "Collator",
    "LengthBucketSampler",
    "collate",
    "make_collate",
    "target",
]


class Batch(TypedDict, total=False):
    ids: list[str]
    inputs: dict[str, dict[str, Tensor]]  # modality -> encoder.preprocess output
    targets: dict[str, Tensor]  # head -> (B,) float32
    # items that carry a context (data.text_context / audio_context): "present" (B,) bool,
    # "inputs" modality -> preprocess output of the present items' joined context (None if
    # no item of the batch has one)
    context: dict[str, Any]


def target(item: Mapping[str, Any], head: str) -> float:
    """The target of ``head`` for one item: its own label when the item carries one, else the
    multimodal label ``M``. This is the field's rule for subnet heads: where a dataset has no
    per-modality labels (MOSI, MOSEI, or a head such as "V" that a dataset does not label), a
    modality's subnet head learns the multimodal label."""
    labels = item["labels"]
    if head in labels:
        return labels[head]
    if "M" not in labels:
        raise KeyError(
            f"item {item.get('id')!r} has no label {head!r} and no multimodal label 'M' to "
            f"fall back to; its labels are {sorted(labels)}"
        )
    return labels["M"]


def collate(
    items: Sequence[Mapping[str, Any]],
    encoders: Mapping[str, FeatureEncoder],
    heads: Sequence[str],
    empty_context: str = "mask",
) -> Batch:
    """Batch dataset items: one ``preprocess`` call per modality on ``item[modality]``, and a
    (B,) float32 target for each of ``heads`` (see :func:`target` for heads an item lacks).
    A modality whose items carry cached encoder outputs (:class:`~mmml_core.cache.CachedItem`,
    the feature cache of a frozen encoder) is padded instead (:func:`~mmml_core.cache.
    pad_cached`), and the model uses those outputs as they are."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    inputs: dict[str, dict[str, Tensor]] = {}
    for modality, encoder in encoders.items():
        lacking = next((item for item in items if modality not in item), None)
        if lacking is not None:
            carried = sorted(set(lacking) - {"id", "labels"})
            raise KeyError(
                f"no item field for modality {modality!r}: item {lacking.get('id')!r} carries "
                f"{carried} (load the dataset with this modality)"
            )
        values = [item[modality] for item in items]
        if isinstance(values[0], CachedItem):  # a frozen encoder's cached outputs
            inputs[modality] = pad_cached(values)
        else:
            inputs[modality] = encoder.preprocess(values)
    targets = {
        head: torch.tensor([target(item, head) for item in items], dtype=torch.float32)
        for head in heads
    }
    batch: Batch = {"ids": [item["id"] for item in items], "inputs": inputs, "targets": targets}
    if any("context" in item for item in items):
        batch["context"] = _context(items, encoders, empty_context)
    return batch


def _context(
    items: Sequence[Mapping[str, Any]], encoders: Mapping[str, FeatureEncoder], empty: str
) -> dict:
    """The context part of a batch: which items have earlier utterances (every modality's
    list non-empty) and, for those, each encoder's ``preprocess`` of its joined context
    (:meth:`~mmml_core.interfaces.FeatureEncoder.join_context`). With ``empty="mask"``
    items without context are left out of the encoders' work (the model gives them zero
    context features); with ``"encode"`` they count as present and read the encoder's
    :meth:`~mmml_core.interfaces.FeatureEncoder.empty_context` input."""
    contexts = [item.get("context") or {} for item in items]
    lacking = [m for m in encoders if m not in contexts[0]]
    if lacking:
        raise KeyError(
            f"item {items[0].get('id')!r} carries context for {sorted(contexts[0])}, not for "
            f"{lacking}: every modality of a context model needs a window"
        )
    present = [all(len(c.get(m) or ()) > 0 for m in encoders) for c in contexts]
    if empty == "encode":
        joined = {
            m: [enc.join_context(c[m]) if p else enc.empty_context() for c, p in
                zip(contexts, present, strict=True)]
            for m, enc in encoders.items()
        }  # fmt: skip
        inputs = {m: enc.preprocess(joined[m]) for m, enc in encoders.items()}
        return {"present": torch.ones(len(items), dtype=torch.bool), "inputs": inputs}
    inputs = None
    if any(present):
        kept = [c for c, p in zip(contexts, present, strict=True) if p]
        inputs = {
            m: enc.preprocess([enc.join_context(c[m]) for c in kept]) for m, enc in encoders.items()
        }
    return {"present": torch.tensor(present, dtype=torch.bool), "inputs": inputs}


class Collator:
    """``collate`` bound to the encoders and heads: a picklable ``collate_fn`` for DataLoader
    workers."""

    def __init__(
        self, encoders: Mapping[str, FeatureEncoder], heads: Sequence[str], empty: str = "mask"
    ) -> None:
        self.encoders = dict(encoders)
        self.heads = tuple(heads)
        self.empty = empty

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        return collate(items, self.encoders, self.heads, self.empty)


def make_collate(
    encoders: Mapping[str, FeatureEncoder], heads: Sequence[str], empty_context: str = "mask"
) -> Collator:
    """A picklable ``collate_fn`` for ``encoders`` and the target ``heads``
    (``empty_context``: ``data.empty_context``, for context models)."""
    return Collator(encoders, heads, empty_context)


class LengthBucketSampler(Sampler[list[int]]):
    """Batch sampler: batches of items of similar length, each item once per epoch.

    With ``shuffle``: the epoch's random permutation (seeded by ``seed`` and the epoch set
    with :meth:`set_epoch`) is cut into pools of ``batch_size * bucket_size_multiplier``
    items; each pool is sorted by length and cut into batches; the batches are shuffled.
    Larger pools mean less padding and less randomness. Without ``shuffle`` (evaluation),
    items are sorted by length once and batched in that order. Pass it to a DataLoader as
    ``batch_sampler``.
    """

    def __init__(
        self,
        lengths: Sequence[int] | np.ndarray,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        bucket_size_multiplier: int = 50,
        drop_last: bool = False,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if bucket_size_multiplier < 1:
            raise ValueError(f"bucket_size_multiplier must be >= 1, got {bucket_size_multiplier}")
        self.lengths = np.asarray(lengths, dtype=np.int64)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.bucket_size_multiplier = bucket_size_multiplier
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        else:
            rng = np.random.default_rng([self.seed, self.epoch])
            perm = rng.permutation(n)
            pool = self.batch_size * self.bucket_size_multiplier
            batches = []
            for start in range(0, n, pool):
                chunk = perm[start : start + pool]
                chunk = chunk[np.argsort(self.lengths[chunk], kind="stable")]
                batches += [
                    chunk[i : i + self.batch_size] for i in range(0, len(chunk), self.batch_size)
                ]
            batches = [batches[i] for i in rng.permutation(len(batches))]
        for batch in batches:
            if self.drop_last and len(batch) < self.batch_size:
                continue
            yield batch.tolist()
