"""Tensor fusion as the mmml fusion ``tfn`` (see ``tfn.py``).

Nothing is imported here: the registry imports :mod:`mmml_fusion_tfn.tfn` when ``tfn`` is
first created, so listing plugins never loads this package's code.
"""

from __future__ import annotations

__all__: list[str] = []
