"""Frames of a video clip: decoded with PyAV, sampled at a fixed rate, centre-cropped.

A clip's raw vision item is one of

- a path (``str`` or ``os.PathLike``) to a video file any FFmpeg demuxer reads (``.mp4``,
  ``.avi``, ...): decoded here;
- a ``uint8`` array ``(F, H, W, 3)`` of RGB frames already sampled at the encoder's rate (what
  :func:`sample_frames` returns, and what ``mmml-bench extract-frames`` will store).

Sampling: frame ``k`` is the first decoded frame whose presentation time is at or after
``k / fps`` seconds from the clip's first frame, for ``k = 0, 1, ...`` while that time lies
within the clip and ``k < max_frames``. A clip shorter than ``1 / fps`` gives one frame; a
video without a decodable frame is an error naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["FrameError", "as_frames", "sample_frames"]


class FrameError(ValueError):
    """A video that cannot give frames (missing, unreadable, no video stream, no frame)."""


def sample_frames(path: str | os.PathLike[str], fps: float, max_frames: int) -> np.ndarray:
    """``(F, H, W, 3)`` uint8 RGB frames of the video at ``path``, 1 <= F <= ``max_frames``,
    sampled every ``1 / fps`` seconds (module docstring)."""
    import av

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FrameError(f"{path}: no such video file")
    frames: list[np.ndarray] = []
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise FrameError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            start: float | None = None
            for frame in container.decode(stream):
                t = frame.time if frame.time is not None else 0.0
                if start is None:
                    start = t
                if t - start + 1e-6 >= len(frames) / fps:
                    frames.append(frame.to_ndarray(format="rgb24"))
                    if len(frames) >= max_frames:
                        break
    except FrameError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise FrameError(f"{path}: cannot decode the video ({exc})") from None
    if not frames:
        raise FrameError(f"{path}: the video has no decodable frame")
    return np.stack(frames)


def as_frames(item: Any, fps: float, max_frames: int) -> np.ndarray:
    """A raw vision item (a path, or sampled frames) as ``(F, H, W, 3)`` uint8 frames, at
    most ``max_frames`` of them."""
    if isinstance(item, (str, os.PathLike)):
        return sample_frames(item, fps, max_frames)
    frames = np.asarray(item)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise FrameError(
            "a vision item is a video path or uint8 frames (F, H, W, 3); got an array of "
            f"shape {frames.shape} and dtype {frames.dtype}"
        )
    if frames.shape[0] == 0:
        raise FrameError("a vision item needs at least one frame")
    return frames[:max_frames]


def centre_crop_resize(frames: np.ndarray, size: int) -> Any:
    """``(F, H, W, 3)`` uint8 -> ``(F, 3, size, size)`` float32 in [0, 1]: the largest centred
    square, resized with bilinear interpolation (antialiased)."""
    import torch
    import torch.nn.functional as F

    h, w = frames.shape[1:3]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    square = frames[:, top : top + side, left : left + side]
    x = torch.from_numpy(np.ascontiguousarray(square)).permute(0, 3, 1, 2).float() / 255.0
    if side != size:
        x = F.interpolate(
            x, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
    return x


def lengths(batch: Sequence[np.ndarray]) -> list[int]:
    return [int(f.shape[0]) for f in batch]
