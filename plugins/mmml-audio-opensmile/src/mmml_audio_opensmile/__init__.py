"""mmml-audio-opensmile: the audio encoder ``opensmile`` (openSMILE descriptors + transformer).

The encoder class lives in :mod:`mmml_audio_opensmile.encoder` and is found through the
``mmml_core.encoders`` entry point; importing this package imports neither torch nor opensmile.
"""

from __future__ import annotations

__all__: list[str] = []
