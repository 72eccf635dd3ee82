"""TensorBoard tracking for ``mmml-bench`` runs (see ``plugin.py``, the hook plugin).

Nothing is imported here: ``mmml-bench`` imports :mod:`mmml_tracking_tensorboard.plugin`
through its entry point, and that module loads torch and tensorboard only once it writes.
"""

from __future__ import annotations

__all__: list[str] = []
