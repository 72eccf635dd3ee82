"""Video clips and extracted frames: what the ``video`` modality's raw items are (docs/data.md).

A clip's video is either

- a video file any FFmpeg demuxer reads (:data:`VIDEO_EXTENSIONS`: ``Raw/<video>/<clip>.mp4``
  as the MMSA layout distributes it), decoded with PyAV when an encoder reads it; or
- a frames file (``.npz``, :data:`FRAMES_EXTENSION`) that ``mmml-bench extract-frames`` wrote
  once: ``frames`` ``(F, H, W, 3)`` uint8 RGB, ``fps`` (the rate they were sampled at) and
  ``source`` (the video's file name), so that training does not decode video every epoch.

Sampling (:func:`sample_frames`): frame ``k`` is the first decoded frame whose presentation
time is at or after ``k / fps`` seconds from the clip's first frame, for ``k = 0, 1, ...``
while that time lies within the clip (and ``k < max_frames`` when given). A clip shorter than
``1 / fps`` gives one frame; a video without a decodable frame is an error naming the file.
A frames file holds exactly these frames for its ``fps`` (resized when extracted with
``--size``), so an encoder that samples at the same rate reads the same frames from either.

This module imports PyAV and numpy only (no torch): ``extract-frames`` stays light.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "FRAMES_DIR",
    "FRAMES_EXTENSION",
    "VIDEO_EXTENSIONS",
    "FrameError",
    "FramesInfo",
    "frames_info",
    "frames_setting",
    "probe_video",
    "read_frames",
    "sample_frames",
    "write_frames",
]

#: Video files the reader accepts for a clip (any FFmpeg demuxer would do; these are the
#: usual ones, matched case-insensitively).
VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".flv")
#: Frames written by ``mmml-bench extract-frames``.
FRAMES_EXTENSION = ".npz"
#: The folder under a dataset's root that ``extract-frames`` writes by default.
FRAMES_DIR = "frames"


class FrameError(ValueError):
    """A clip that cannot give frames (missing, unreadable, no video stream, no frame)."""


def sample_frames(
    path: str | os.PathLike[str],
    fps: float,
    max_frames: int | None = None,
    short_side: int | None = None,
) -> np.ndarray:
    """``(F, H, W, 3)`` uint8 RGB frames of the video at ``path``, ``F >= 1`` (at most
    ``max_frames``), sampled every ``1 / fps`` seconds (module docstring). ``short_side``
    resizes each frame (area interpolation) so that its shorter side has that many pixels,
    keeping the aspect ratio; ``None`` keeps the decoded size."""
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
                    frames.append(_to_rgb(frame, short_side))
                    if max_frames is not None and len(frames) >= max_frames:
                        break
    except FrameError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise FrameError(f"{path}: cannot decode the video ({exc})") from None
    if not frames:
        raise FrameError(f"{path}: the video has no decodable frame")
    return np.stack(frames)


def _to_rgb(frame: Any, short_side: int | None) -> np.ndarray:
    if short_side is None:
        return frame.to_ndarray(format="rgb24")
    w, h = frame.width, frame.height
    scale = short_side / min(w, h)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return frame.reformat(
        width=size[0], height=size[1], format="rgb24", interpolation="AREA"
    ).to_ndarray()


def write_frames(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    fps: float,
    source: str,
    short_side: int = 0,
) -> None:
    """Write a frames file atomically: a hidden ``.<name>.part`` beside it, renamed into place,
    so a file under the final name is always complete. ``short_side``: the size the frames
    were resized to (0: as decoded), kept so a rerun can tell its settings."""
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or not len(frames):
        raise ValueError(
            f"frames must be uint8 (F >= 1, H, W, 3), got {frames.dtype} {frames.shape}"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    try:
        with open(tmp, "wb") as f:
            np.savez_compressed(
                f,
                frames=frames,
                fps=np.float64(fps),
                source=np.array(str(source)),
                short_side=np.int64(short_side),
            )
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class FramesInfo:
    """What a frames file's header says, read without decompressing its frames."""

    fps: float
    frames: int
    height: int
    width: int


def frames_info(path: str | os.PathLike[str]) -> FramesInfo:
    """The header of a frames file; ``FrameError`` naming the file and what is wrong."""
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            missing = [k for k in ("frames.npy", "fps.npy") if k not in names]
            if missing:
                raise FrameError(
                    f"{path}: not a frames file of `mmml-bench extract-frames` (no "
                    f"{', '.join(m[:-4] for m in missing)})"
                )
            with z.open("frames.npy") as f:
                major, _ = np.lib.format.read_magic(f)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if major == 1
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(f)
            with z.open("fps.npy") as f:
                fps = float(np.lib.format.read_array(f))
    except FrameError:
        raise
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise FrameError(f"{path}: unreadable frames file ({exc})") from None
    if len(shape) != 4 or shape[-1] != 3 or dtype != np.uint8 or shape[0] < 1:
        raise FrameError(
            f"{path}: frames must be uint8 (F >= 1, H, W, 3), found {dtype} {tuple(shape)}"
        )
    if not (fps > 0 and np.isfinite(fps)):
        raise FrameError(f"{path}: fps must be a finite number > 0, found {fps}")
    return FramesInfo(fps=fps, frames=int(shape[0]), height=int(shape[1]), width=int(shape[2]))


def frames_setting(path: str | os.PathLike[str]) -> tuple[float, int]:
    """``(fps, short_side)`` a frames file was extracted with."""
    fps = frames_info(path).fps
    try:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            side = int(z["short_side"]) if "short_side" in z.files else 0
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise FrameError(f"{path}: unreadable frames file ({exc})") from None
    return fps, side


def read_frames(path: str | os.PathLike[str]) -> tuple[np.ndarray, float]:
    """``(frames, fps)`` of a frames file."""
    frames_info(path)  # the header's checks, with their messages
    try:
        with np.load(os.fspath(path), allow_pickle=False) as z:
            return np.asarray(z["frames"]), float(z["fps"])
    except (OSError, zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise FrameError(f"{path}: unreadable frames file ({exc})") from None


def probe_video(path: str | os.PathLike[str]) -> str | None:
    """Why the clip at ``path`` cannot give frames, or ``None``: a frames file's header is
    checked; a video file must open, have a video stream and decode its first frame (the
    rest is decoded by the encoder, where a broken stream is an error naming the file)."""
    path = os.fspath(path)
    if path.lower().endswith(FRAMES_EXTENSION):
        try:
            frames_info(path)
        except FrameError as exc:
            return str(exc)
        return None
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                return f"{path}: the file has no video stream"
            if next(iter(container.decode(container.streams.video[0])), None) is None:
                return f"{path}: the video has no decodable frame"
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        return f"{path}: unreadable video ({exc})"
    return None
