"""mmml-audio-mel: the audio encoder ``mel`` (log-Mel spectrogram + CNN backbone).

The encoder class lives in :mod:`mmml_audio_mel.encoder` and is found through the
``mmml_core.encoders`` entry point; importing this package imports neither torch nor timm.
"""

from __future__ import annotations

__all__: list[str] = []
