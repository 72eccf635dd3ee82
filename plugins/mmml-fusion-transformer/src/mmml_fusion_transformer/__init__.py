"""The MMML fusion network as the mmml fusion ``cross_attn`` (see ``cross_attn.py``).

Nothing is imported here: the registry imports :mod:`mmml_fusion_transformer.cross_attn`
when ``cross_attn`` is first created, so listing plugins never loads this package's code.
"""

from __future__ import annotations

__all__: list[str] = []
