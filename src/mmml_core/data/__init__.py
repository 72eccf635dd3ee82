"""Datasets in the MMSA layout, audio I/O, batching and the bundled demo set (docs/data.md).

Submodules: ``kinds`` (dataset kinds, registered under the entry-point group
``mmml_core.datasets``), ``reader`` (the MMSA layout, ``load_dataset``), ``audio``
(``load_audio``), ``batching`` (``collate``, ``LengthBucketSampler``), ``extract`` (the
``mmml-bench extract-audio`` verb), ``make_demo`` (the demo set's generator). The names below
are imported lazily, so that ``mmml-bench extract-audio`` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "Batch",
    "DatasetError",
    "DatasetKind",
    "LengthBucketSampler",
    "LoadedDataset",
    "LoadedSplit",
    "MMSADataset",
    "MMSASplit",
    "collate",
    "demo_root",
    "load_audio",
    "load_dataset",
    "make_collate",
]

_HOME = {
    "Batch": "batching",
    "LengthBucketSampler": "batching",
    "collate": "batching",
    "make_collate": "batching",
    "DatasetError": "kinds",
    "DatasetKind": "kinds",
    "LoadedDataset": "kinds",
    "LoadedSplit": "kinds",
    "MMSADataset": "reader",
    "MMSASplit": "reader",
    "demo_root": "reader",
    "load_dataset": "reader",
    "load_audio": "audio",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(f"{__name__}.{_HOME[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
