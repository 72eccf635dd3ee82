"""Hugging Face encoders (docs/encoders.md): ``roberta`` (text), ``data2vec`` and ``hubert``
(audio), registered through the ``mmml_core.encoders`` entry points.

Importing this package imports nothing heavy; the registry imports an encoder's module the
first time it is created.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
