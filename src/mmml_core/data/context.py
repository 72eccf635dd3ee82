"""Conversational context: which earlier utterances of the same video an item reads
(docs/data.md#context).

With ``data.text_context=N`` (``data.audio_context=N``) every item of a split carries, besides
its own text (audio), the texts (clips) of the N utterances just before it in the same video
and the same split, oldest first. "Before" is the order of ``data.context_order``:

- ``clip`` (default): the clip ids in natural order: numerically where both ids are numbers
  (``2`` before ``10``, ``0002`` before ``0010``), else as text; the (video_id, clip_id) order
  the authors sort by;
- ``file``: the order of the rows in ``label.csv``.

An item with no predecessor (the first utterance of its video in its split) has an empty
context. A later utterance or another video's is never read. This module holds the index
computation (pure Python, no I/O); the reader attaches the raw items and the encoders turn a
list of earlier raw items into one input (:meth:`mmml_core.interfaces.FeatureEncoder.join_context`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

__all__ = ["CONTEXT_ORDERS", "clip_order_key", "previous_indices"]

CONTEXT_ORDERS: tuple[str, ...] = ("clip", "file")


def clip_order_key(clip_id: str) -> tuple[Any, ...]:
    """Natural order of clip ids: runs of digits compare as numbers (``"2" < "10"``), the rest
    as text; ties (``"2"`` and ``"02"``) fall back to the text itself."""
    parts = re.split(r"(\d+)", clip_id)
    key = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts if p != "")
    return (key, clip_id)


def previous_indices(
    video_ids: Sequence[str], clip_ids: Sequence[str], window: int, order: str = "clip"
) -> list[list[int]]:
    """For each row, the indices (into the same sequences) of the at most ``window`` rows of
    its video just before it in ``order``, oldest first; ``[]`` for a first utterance or
    ``window == 0``. The rows are those of one split."""
    if order not in CONTEXT_ORDERS:
        raise ValueError(f"context order must be one of {', '.join(CONTEXT_ORDERS)}, got {order!r}")
    if window < 0:
        raise ValueError(f"a context window is >= 0, got {window}")
    if len(video_ids) != len(clip_ids):
        raise ValueError("video_ids and clip_ids differ in length")
    out: list[list[int]] = [[] for _ in video_ids]
    if window == 0:
        return out
    by_video: dict[str, list[int]] = defaultdict(list)
    for i, video in enumerate(video_ids):
        by_video[video].append(i)  # file order
    for rows in by_video.values():
        if order == "clip":
            rows = sorted(rows, key=lambda i: (clip_order_key(clip_ids[i]), i))
        for position, i in enumerate(rows):
            out[i] = rows[max(0, position - window) : position]
    return out
