"""Turning dataset items into model batches, and a length-bucketed batch sampler (DESIGN §4).

Padding is the encoders' job: ``FeatureEncoder.preprocess`` pads each modality to the
longest item of the batch and builds its exact masks. This module only gathers each
modality's raw items, calls ``preprocess`` and stacks the targets, so the work runs in the
DataLoader workers and the training step receives ready tensors.

``LengthBucketSampler`` groups items of similar audio length into the same batch so that
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

from mmml_core.interfaces import FeatureEncoder

__all__ = [
    "HEADS",
    "RAW_FIELD",
    "Batch",
    "Collator",
    "LengthBucketSampler",
    "collate",
    "make_collate",
]

#: Item field holding each modality's raw input.
RAW_FIELD: dict[str, str] = {"text": "text", "audio": "audio"}
#: Target heads every item carries.
HEADS: tuple[str, ...] = ("M", "T", "A")


class Batch(TypedDict):
    ids: list[str]
    inputs: dict[str, dict[str, Tensor]]  # modality -> encoder.preprocess output
    targets: dict[str, Tensor]  # head -> (B,) float32


def collate(items: Sequence[Mapping[str, Any]], encoders: Mapping[str, FeatureEncoder]) -> Batch:
    """Batch dataset items: one ``preprocess`` call per modality, targets as (B,) float32."""
    if not items:
        raise ValueError("cannot collate an empty batch")
    inputs: dict[str, dict[str, Tensor]] = {}
    for modality, encoder in encoders.items():
        if modality not in RAW_FIELD:
            raise KeyError(f"no item field for modality {modality!r}; known: {sorted(RAW_FIELD)}")
        field = RAW_FIELD[modality]
        inputs[modality] = encoder.preprocess([item[field] for item in items])
    targets = {
        head: torch.tensor([item["labels"][head] for item in items], dtype=torch.float32)
        for head in HEADS
    }
    return {"ids": [item["id"] for item in items], "inputs": inputs, "targets": targets}


class Collator:
    """``collate`` bound to the encoders: a picklable ``collate_fn`` for DataLoader workers."""

    def __init__(self, encoders: Mapping[str, FeatureEncoder]) -> None:
        self.encoders = dict(encoders)

    def __call__(self, items: Sequence[Mapping[str, Any]]) -> Batch:
        return collate(items, self.encoders)


def make_collate(encoders: Mapping[str, FeatureEncoder]) -> Collator:
    return Collator(encoders)


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
