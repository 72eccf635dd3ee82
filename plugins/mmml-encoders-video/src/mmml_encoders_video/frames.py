"""Frames of a clip for the encoder: decoded (or read from extracted frames), centre-cropped.

A clip's raw video item is one of

- a path (``str`` or ``os.PathLike``) to a video file any FFmpeg demuxer reads (``.mp4``,
  ``.avi``, ...): decoded with PyAV by :func:`mmml_core.data.video.sample_frames`;
- a path to a frames file (``.npz``) that ``mmml-bench extract-frames`` wrote: its frames,
  which must have been sampled at the encoder's ``fps`` (else an error says how to fix it);
- a ``uint8`` array ``(F, H, W, 3)`` of RGB frames already sampled at the encoder's rate.

Sampling (core's :mod:`mmml_core.data.video`): frame ``k`` is the first decoded frame whose
presentation time is at or after ``k / fps`` seconds from the clip's first frame, while that
time lies within the clip and ``k < max_frames``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmml_core.data.video import FRAMES_EXTENSION, FrameError, read_frames, sample_frames

__all__ = ["FrameError", "as_frames", "check_fps", "sample_frames"]


def check_fps(path: Any, stored: float, fps: float) -> None:
    """A frames file sampled at ``stored`` fps read by an encoder sampling at ``fps``."""
    if abs(stored - fps) > 1e-6 * max(1.0, fps):
        raise FrameError(
            f"{path}: frames extracted at {stored:g} fps, but the encoder samples at {fps:g} "
            f"fps: extract again with `mmml-bench extract-frames ROOT --fps {fps:g}`, or set "
            f"video.fps={stored:g}"
        )


def as_frames(item: Any, fps: float, max_frames: int) -> np.ndarray:
    """A raw video item (a video or frames file's path, or sampled frames) as
    ``(F, H, W, 3)`` uint8 frames, at most ``max_frames`` of them."""
    if isinstance(item, (str, os.PathLike)):
        if os.fspath(item).lower().endswith(FRAMES_EXTENSION):
            frames, stored = read_frames(item)
            check_fps(item, stored, fps)
            return frames[:max_frames]
        return sample_frames(item, fps, max_frames)
    frames = np.asarray(item)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise FrameError(
            "a video item is a file path or uint8 frames (F, H, W, 3); got an array of "
            f"shape {frames.shape} and dtype {frames.dtype}"
        )
    if frames.shape[0] == 0:
        raise FrameError("a video item needs at least one frame")
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
