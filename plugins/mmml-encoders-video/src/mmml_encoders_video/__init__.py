"""mmml-encoders-video: the encoder ``video`` of modality ``video`` (frames from a clip's video, a timm image
backbone per frame, a temporal transformer over the frames).

The encoder lives in :mod:`mmml_encoders_video.encoder` and frame decoding in
:mod:`mmml_encoders_video.frames`; both are found through the ``mmml_core.encoders`` entry
point, and importing this package imports neither torch, timm nor PyAV.
"""

from __future__ import annotations

__all__: list[str] = []
