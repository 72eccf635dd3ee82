"""The harness tests' dataset: :func:`mmml_core.testing.write_tiny_dataset` (shipped so that
plugin authors can run their components inside ``mmml-bench`` the same way)."""

from __future__ import annotations

from pathlib import Path

from mmml_core.testing import write_tiny_dataset


def make_learnable_mosi(
    root: Path, n_per_split: dict[str, int] | None = None, seed: int = 0, seconds: float = 0.4
) -> Path:
    return write_tiny_dataset(root, n_per_split, seconds=seconds, seed=seed)
