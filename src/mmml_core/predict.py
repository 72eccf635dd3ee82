"""Predict with a trained checkpoint, from Python in one call or through ``mmml-bench predict``.

With every modality the model returns every head (fused ``M`` and the subnet heads, e.g.
``T``, ``A``); with some modalities only, the predictions come from those modalities' subnet
heads (the paper's missing-modality use of multi-loss training, section 4.5). A checkpoint
trained single-loss has no subnet heads, so it needs every modality; the error says so.

Inputs are the user's values (a transcript, an audio file path or 16 kHz samples, or whatever
another modality's encoder accepts), turned into raw items by each encoder's
``load_input``; audio is then cut to the checkpoint's ``max_audio_seconds``, as the dataset
cut it in training. A prediction that is not finite (nan or inf) is a
:class:`PredictionError` naming the checkpoint and the head, never a returned nan.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmml_core.checkpoint import load_model
from mmml_core.data.audio import SAMPLE_RATE

__all__ = ["PredictionError", "Predictor", "predict"]

AudioInput = str | Path | np.ndarray


class PredictionError(ValueError):
    """A checkpoint that gives a non-finite prediction (damaged or diverged weights)."""


def _batch(value: Any) -> list[Any]:
    """A list or tuple is a batch of values; anything else is one value."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


class Predictor:
    """A loaded checkpoint; call :meth:`predict` as often as needed."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu") -> None:
        self.checkpoint = Path(checkpoint)
        self.model, self.config = load_model(checkpoint, device)
        self.device = torch.device(device)
        self.max_audio_seconds = float(self.config.get("max_audio_seconds", 6.0))

    @property
    def modalities(self) -> list[str]:
        return self.model.modalities

    def load_input(self, modality: str, value: Any) -> Any:
        """One raw item of ``modality`` from a user's value, through its encoder's
        ``load_input``. A file that does not exist is a ``FileNotFoundError``, any other value
        the encoder cannot read a ``ValueError``; both name the value."""
        encoder = self.model.encoders[modality]
        if (
            isinstance(value, (str, Path))
            and modality in ("audio", "video")
            and not Path(value).is_file()
        ):
            raise FileNotFoundError(f"{value}: {modality} file not found")
        try:
            item = encoder.load_input(value)
        except FileNotFoundError as exc:
            raise FileNotFoundError(f"{value}: {modality} input not found ({exc})") from exc
        except (OSError, RuntimeError, ValueError, TypeError, LookupError) as exc:
            # soundfile's LibsndfileError is a RuntimeError
            raise ValueError(f"{value}: cannot read {modality} input ({exc})") from exc
        if modality == "audio":
            wave = np.asarray(item, dtype=np.float32).reshape(-1)
            return wave[: round(SAMPLE_RATE * self.max_audio_seconds)]
        return item

    @torch.no_grad()
    def predict(
        self,
        text: str | Sequence[str] | None = None,
        audio: AudioInput | Sequence[AudioInput] | None = None,
        inputs: Mapping[str, Any] | None = None,
        video: str | Path | Sequence[str | Path] | None = None,
    ) -> dict[str, list[float]]:
        """Predictions per head for one item or a batch (lists of equal length).

        ``audio`` is a path to any file soundfile reads, or 16 kHz mono samples. ``inputs``
        maps any modality of the checkpoint to a value (or a list or tuple of values, one per
        item) its encoder's ``load_input`` reads; ``text=``, ``audio=`` and ``video=`` (a video
        or frames file) are shorthands for ``inputs={"text": ..., "audio": ..., "video": ...}``.
        """
        given = {m: _batch(v) for m, v in (inputs or {}).items()}
        shorthands = (
            ("text", text, str),
            ("audio", audio, AudioInput),
            ("video", video, (str, Path)),
        )
        for modality, value, single in shorthands:
            if value is None:
                continue
            if modality in given:
                raise ValueError(f"{modality} is given twice (as {modality}= and in inputs)")
            given[modality] = [value] if isinstance(value, single) else list(value)
        if not given:
            raise ValueError(f"give an input for some of {self.modalities}")
        unknown = [m for m in given if m not in self.model.encoders]
        if unknown:
            raise ValueError(
                f"{self.checkpoint}: this checkpoint encodes {self.modalities}, not {unknown}"
            )
        raw = {m: [self.load_input(m, v) for v in values] for m, values in given.items()}
        sizes = {m: len(v) for m, v in raw.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"every modality needs the same number of items, got {sizes}")
        if len(raw) < len(self.model.encoders) and not any(
            m in self.model.subnet_heads for m in raw
        ):
            raise ValueError(
                f"this checkpoint has no subnet head for {sorted(raw)} alone (it was trained "
                f"with heads {list(self.model.spec.heads)}); give every modality "
                f"({self.modalities})"
            )
        batch = self.model.preprocess(raw)
        batch = {m: {k: v.to(self.device) for k, v in x.items()} for m, x in batch.items()}
        out = {h: [float(v) for v in p.float().cpu()] for h, p in self.model(batch).items()}
        for head, values in out.items():
            bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
            if bad:
                raise PredictionError(
                    f"{self.checkpoint}: head {head!r} predicts {values[bad[0]]} for item "
                    f"{bad[0]}; the checkpoint's weights or this input give non-finite values"
                )
        return out


def predict(
    checkpoint: str | Path,
    text: str | Sequence[str] | None = None,
    audio: AudioInput | Sequence[AudioInput] | None = None,
    device: str = "cpu",
    inputs: Mapping[str, Any] | None = None,
    video: str | Path | Sequence[str | Path] | None = None,
) -> dict[str, list[float]]:
    """Load ``checkpoint`` and predict in one call (see :meth:`Predictor.predict`)."""
    return Predictor(checkpoint, device).predict(text=text, audio=audio, inputs=inputs, video=video)
