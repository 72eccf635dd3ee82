"""Audio file I/O for the datasets (docs/data.md): soundfile reads, torchaudio resamples.

Every audio item the rest of mmml sees is a 1-D float32 NumPy array of 16 kHz mono samples.
Files may be in any format soundfile reads (WAV, FLAC, Ogg Vorbis/Opus, ...); several
channels are averaged to mono; another sample rate is resampled with
``torchaudio.functional.resample`` (band-limited sinc interpolation). torchaudio is imported
only when a file actually needs resampling.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = [
    "AUDIO_EXTENSIONS",
    "SAMPLE_RATE",
    "load_audio",
    "resample",
    "resampled_length",
]

#: The sample rate of every audio item handed to encoders.
SAMPLE_RATE = 16_000

#: File name suffixes looked for under ``wav/`` (all formats soundfile reads).
AUDIO_EXTENSIONS: tuple[str, ...] = (
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".mp3",
    ".aiff",
    ".aif",
    ".w64",
    ".rf64",
    ".caf",
)


def load_audio(
    path: str | Path, target_sr: int = SAMPLE_RATE, max_seconds: float | None = None
) -> np.ndarray:
    """Read ``path`` as float32 mono at ``target_sr``, keeping at most ``max_seconds``.

    Only the frames needed for ``max_seconds`` are read from disk, so truncating long
    clips costs nothing. The result has exactly
    ``min(resampled_length(frames, sr, target_sr), round(max_seconds * target_sr))`` samples.
    """
    with sf.SoundFile(str(path)) as f:
        sr = f.samplerate
        frames = f.frames
        if max_seconds is not None:
            # read a little more than needed so that resampling sees the same context
            frames = min(frames, math.ceil(max_seconds * sr) + 64)
        data = f.read(frames, dtype="float32", always_2d=True)  # (N, C)
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if sr != target_sr:
        wave = resample(wave, sr, target_sr)
    if max_seconds is not None:
        wave = wave[: round(max_seconds * target_sr)]
    return np.ascontiguousarray(wave, dtype=np.float32)


def resample(wave: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """Resample a 1-D float32 waveform with torchaudio's band-limited sinc interpolation."""
    if orig_sr == target_sr:
        return wave
    try:
        import torch
        import torchaudio.functional as taf
    except ImportError as exc:  # not a dependency of mmml-core: say what to install
        raise ImportError(
            f"resampling audio from {orig_sr} Hz to {target_sr} Hz needs torchaudio "
            f"(pip install torchaudio), or provide {target_sr} Hz files"
        ) from exc
    out = taf.resample(torch.from_numpy(np.ascontiguousarray(wave)), orig_sr, target_sr)
    return out.numpy().astype(np.float32, copy=False)


def resampled_length(frames: int, orig_sr: int, target_sr: int = SAMPLE_RATE) -> int:
    """Number of samples ``resample`` returns for ``frames`` input samples."""
    if orig_sr == target_sr:
        return frames
    g = math.gcd(orig_sr, target_sr)
    return math.ceil(frames * (target_sr // g) / (orig_sr // g))
