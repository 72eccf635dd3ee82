"""openSMILE low-level descriptors per clip, with an on-disk cache.

Frame grid: a clip of N samples gives ``n = 1 + (N - L) // S`` frames, where L and S are the
frame size and step in samples (``round(seconds * 16000)``); frame i covers samples
``[i*S, i*S + L)``. openSMILE emits a few more rows at the end of input (a final partial frame,
and for ``lld_de`` the delta regression's flush, all stamped with the last frame's time); those
are dropped so that every row is a full frame on the grid. Clips shorter than one frame are
zero-padded to one frame.

Deltas: with ``deltas=True`` the rows are the LLDs followed by their deltas (ComParE_2016:
65 + 65 = 130 columns), read from one openSMILE run of the level ``"lld;lld_de"`` (see
:func:`~mmml_audio_opensmile.smile_config.output_level`). openSMILE's delta of frame t is the
regression ``sum_k k * (x[t+k] - x[t-k]) / (2 * sum_k k^2)``, k = 1, 2, over the smoothed LLDs of
its whole output (the first and last rows repeated at the edges; the last retained frames
therefore also see the partial end-of-input row); for the six pitch and voice-quality LLDs
(F0, voicing, two jitters, shimmer, HNR) only within runs of non-zero values (openSMILE's
``onlyInSegments``), so those six are not that plain regression.

Cache: one ``.npy`` file per clip under ``<cache_dir>/<key[:2]>/<key>.npy``, where the key is a
SHA-256 of the waveform's float32 bytes and of everything that changes the features: feature
set, output level (``lld;lld_de`` with deltas), frame size, frame step, the ``opensmile``
version and this module's :data:`CACHE_FORMAT`. Files are written atomically (temporary file + rename), so parallel
DataLoader workers and killed runs never leave a half-written entry.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from mmml_audio_opensmile.smile_config import feature_dim, output_level, patched_config

__all__ = [
    "CACHE_FORMAT",
    "SAMPLE_RATE",
    "CacheStats",
    "FeatureCache",
    "default_cache_dir",
    "extract_lld",
    "frame_count",
    "settings_tag",
]

SAMPLE_RATE = 16000
#: bump when the way features are computed or stored changes (invalidates old entries)
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    """``$MMML_CACHE_DIR/opensmile`` when set, else ``~/.cache/mmml/opensmile``."""
    base = os.environ.get("MMML_CACHE_DIR")
    root = Path(base) if base else Path.home() / ".cache" / "mmml"
    return root / "opensmile"


def frame_samples(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))


def frame_count(num_samples: int, frame_seconds: float, step_seconds: float) -> int:
    """Number of full frames openSMILE's framer produces for a clip (at least 1, see above)."""
    size, step = frame_samples(frame_seconds), frame_samples(step_seconds)
    return 1 + (max(num_samples, size) - size) // step


def _to_pcm_range(wave: Any) -> np.ndarray:
    """1-D float32 in openSMILE's 16-bit range (the wrapper multiplies by 32768, then casts)."""
    x = np.asarray(wave, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"an audio item must be a 1-D array of samples, got shape {x.shape}")
    return np.ascontiguousarray(np.clip(x, -1.0, 32767.0 / 32768.0), dtype="<f4")


@lru_cache(maxsize=8)
def _smile(feature_set: str, level: str, frame_seconds: float, step_seconds: float) -> Any:
    """openSMILE on the patched config, reading ``level`` (an output level such as ``"lld"``,
    or ``;``-separated levels side by side)."""
    import opensmile

    conf = patched_config(feature_set, frame_seconds, step_seconds)
    return opensmile.Smile(feature_set=str(conf), feature_level=level)


def extract_lld(
    wave: Any,
    feature_set: str,
    feature_level: str,
    frame_seconds: float,
    step_seconds: float,
    deltas: bool = False,
) -> np.ndarray:
    """Low-level descriptors of one 16 kHz clip, ``(frames, features)`` float32; with
    ``deltas`` the LLDs then their deltas (``lld_de``), ``(frames, 2 * LLDs)``."""
    x = _to_pcm_range(wave)
    size = frame_samples(frame_seconds)
    if x.size < size:
        x = np.pad(x, (0, size - x.size))
    level = output_level(feature_level, deltas)
    smile = _smile(feature_set, level, float(frame_seconds), float(step_seconds))
    y = smile(x[None, :], SAMPLE_RATE)  # (1, F, rows)
    feats = np.ascontiguousarray(y[0].T, dtype=np.float32)  # (rows, F)
    n = frame_count(x.size, frame_seconds, step_seconds)
    want = feature_dim(feature_set, feature_level, deltas)
    if feats.shape[1] != want or feats.shape[0] < n:
        raise RuntimeError(
            f"openSMILE returned {feats.shape} for {feature_set}/{level} on "
            f"{x.size} samples; expected at least {n} frames of {want} descriptors"
        )
    feats = feats[:n]  # (n, F): drop the end-of-input flush rows
    if not np.isfinite(feats).all():
        raise RuntimeError(f"openSMILE produced non-finite {feature_set} descriptors")
    return feats


def settings_tag(
    feature_set: str,
    feature_level: str,
    frame_seconds: float,
    step_seconds: float,
    deltas: bool = False,
) -> str:
    """Everything besides the waveform that the cached features depend on (the deltas enter as
    the level read, ``lld;lld_de``, so entries without deltas keep their keys)."""
    import opensmile

    level = output_level(feature_level, deltas)
    return (
        f"opensmile={opensmile.__version__}|format={CACHE_FORMAT}|set={feature_set}|"
        f"level={level}|frame={float(frame_seconds)!r}|step={float(step_seconds)!r}"
    )


@dataclass
class CacheStats:
    """Counts of this process (each DataLoader worker counts its own)."""

    hits: int = 0
    misses: int = 0
    written: list[str] = field(default_factory=list)


class FeatureCache:
    """Per-clip ``.npy`` files keyed by waveform content + extraction settings."""

    def __init__(self, root: str | os.PathLike, tag: str) -> None:
        self.root = Path(root).expanduser()
        self.tag = tag
        self.stats = CacheStats()

    def key(self, wave: np.ndarray) -> str:
        h = hashlib.sha256(self.tag.encode())
        h.update(b"\0")
        h.update(np.ascontiguousarray(wave, dtype="<f4").tobytes())
        return h.hexdigest()

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npy"

    def load(self, key: str) -> np.ndarray | None:
        path = self.path(key)
        try:
            feats = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            self.stats.misses += 1
            return None
        except (OSError, ValueError) as exc:
            raise RuntimeError(
                f"unreadable openSMILE cache entry {path}: {exc}; delete it"
            ) from exc
        self.stats.hits += 1
        return feats

    def save(self, key: str, feats: np.ndarray) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".npy", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.save(f, feats, allow_pickle=False)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.stats.written.append(str(path))
