"""Predict with a trained checkpoint, from Python in one call or through ``mmml-bench predict``.

With both text and audio the model returns every head (fused ``M`` and subnets ``T``, ``A``);
with one modality only, the prediction comes from that modality's subnet head (the paper's
missing-modality use of multi-loss training, section 4.5). A checkpoint trained single-loss
has no subnet heads, so it needs both modalities; the error says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmml_core.checkpoint import load_model
from mmml_core.data.audio import load_audio

__all__ = ["Predictor", "predict"]

AudioInput = str | Path | np.ndarray


class Predictor:
    """A loaded checkpoint; call :meth:`predict` as often as needed."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu") -> None:
        self.model, self.config = load_model(checkpoint, device)
        self.device = torch.device(device)
        self.max_audio_seconds = float(self.config.get("max_audio_seconds", 6.0))

    def _audio(self, item: AudioInput) -> np.ndarray:
        if isinstance(item, np.ndarray):
            wave = np.asarray(item, dtype=np.float32).reshape(-1)
            return wave[: int(16000 * self.max_audio_seconds)]
        if not Path(item).is_file():
            raise FileNotFoundError(f"{item}: audio file not found")
        try:
            return load_audio(item, max_seconds=self.max_audio_seconds)
        except RuntimeError as exc:  # soundfile's LibsndfileError
            raise ValueError(f"{item}: cannot read audio ({exc})") from exc

    @torch.no_grad()
    def predict(
        self,
        text: str | Sequence[str] | None = None,
        audio: AudioInput | Sequence[AudioInput] | None = None,
    ) -> dict[str, list[float]]:
        """Predictions per head for one item or a batch (lists of equal length).

        ``audio`` is a path to any file soundfile reads, or 16 kHz mono samples.
        """
        raw: dict[str, list[Any]] = {}
        if text is not None:
            raw["text"] = [text] if isinstance(text, str) else list(text)
        if audio is not None:
            items = [audio] if isinstance(audio, (str, Path, np.ndarray)) else list(audio)
            raw["audio"] = [self._audio(a) for a in items]
        if not raw:
            raise ValueError("give text, audio or both")
        sizes = {len(v) for v in raw.values()}
        if len(sizes) != 1:
            raise ValueError(f"text and audio need the same number of items, got {sizes}")
        unknown = [m for m in raw if m not in self.model.encoders]
        if unknown:
            raise ValueError(f"this checkpoint encodes {self.model.modalities}, not {unknown}")
        if len(raw) < len(self.model.encoders) and not any(
            m in self.model.subnet_heads for m in raw
        ):
            raise ValueError(
                f"this checkpoint has no subnet head for {sorted(raw)} alone (it was trained "
                f"with heads {list(self.model.spec.heads)}); give every modality"
            )
        inputs = self.model.preprocess(raw)
        inputs = {m: {k: v.to(self.device) for k, v in x.items()} for m, x in inputs.items()}
        out = self.model(inputs)
        return {h: [float(v) for v in p.float().cpu()] for h, p in out.items()}


def predict(
    checkpoint: str | Path,
    text: str | Sequence[str] | None = None,
    audio: AudioInput | Sequence[AudioInput] | None = None,
    device: str = "cpu",
) -> dict[str, list[float]]:
    """Load ``checkpoint`` and predict in one call (see :meth:`Predictor.predict`)."""
    return Predictor(checkpoint, device).predict(text=text, audio=audio)
