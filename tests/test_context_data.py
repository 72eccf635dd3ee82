"""Conversational context in the data layer (docs/data.md#context): an item's context is
exactly the utterances just before it in the same video and the same split, oldest first,
never a later one and never another video's; the first utterance has none."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from data_helpers import write_csv

from mmml_core.data import load_dataset
from mmml_core.data.context import clip_order_key, previous_indices


def test_clip_ids_sort_naturally():
    ids = ["10", "2", "1", "0003", "b", "a2", "a10"]
    assert sorted(ids, key=clip_order_key) == ["1", "2", "0003", "10", "a2", "a10", "b"]


def test_previous_indices_by_hand():
    videos = ["v1", "v2", "v1", "v1", "v2", "v1"]
    clips = ["3", "1", "1", "10", "2", "2"]
    # v1 in clip order: rows 2 (1), 5 (2), 0 (3), 3 (10); v2: rows 1 (1), 4 (2)
    assert previous_indices(videos, clips, 2) == [[2, 5], [], [], [5, 0], [1], [2]]
    assert previous_indices(videos, clips, 1) == [[5], [], [], [0], [1], [2]]
    assert previous_indices(videos, clips, 0) == [[]] * 6
    # file order: v1 rows 0, 2, 3, 5
    assert previous_indices(videos, clips, 1, order="file") == [[], [], [0], [2], [1], [3]]
    with pytest.raises(ValueError, match="context order"):
        previous_indices(videos, clips, 1, order="time")


def _synthetic(root: Path, rng: np.random.Generator) -> list[dict[str, str]]:
    """Three videos whose clips are spread over the splits and shuffled in the CSV; each
    clip's text and audio length name it, so a context can be checked by content."""
    rows = []
    for v in range(3):
        for c in range(1, 9):
            mode = ("train", "train", "valid", "test")[(v + c) % 4]
            rows.append(
                {
                    "video_id": f"vid{v}",
                    "clip_id": str(c),
                    "text": f"video {v} clip {c}",
                    "label": "0.5",
                    "mode": mode,
                }
            )
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    for r in rows:
        c = int(r["clip_id"])
        path = root / "wav" / r["video_id"] / f"{c}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        # clip c lasts 0.1 * c seconds and its samples all equal c / 100
        sf.write(path, np.full(int(1600 * c), c / 100, dtype=np.float32), 16000)
    write_csv(root / "label.csv", rows)
    return rows


@pytest.mark.parametrize("window", [1, 2, 3])
def test_context_items_are_the_previous_utterances_of_the_same_video_and_split(tmp_path, window):
    rows = _synthetic(tmp_path, np.random.default_rng(window))
    data = load_dataset(
        tmp_path, "mosi", text_context=window, audio_context=window, max_audio_seconds=None
    )
    for split in ("train", "valid", "test"):
        part = data.split(split)
        expected_rows = [r for r in rows if r["mode"] == split]
        for i in range(len(part)):
            item = part[i]
            row = part.rows[i]
            same = sorted(
                int(r["clip_id"])
                for r in expected_rows
                if r["video_id"] == row.video_id and int(r["clip_id"]) < int(row.clip_id)
            )
            want = same[-window:]  # the nearest earlier clips of this video in this split
            texts = item["context"]["text"]
            assert texts == [f"{row.video_id.replace('vid', 'video ')} clip {c}" for c in want]
            waves = item["context"]["audio"]
            assert [len(w) for w in waves] == [1600 * c for c in want]
            assert [float(w[0]) for w in waves] == pytest.approx([c / 100 for c in want], abs=1e-4)
            if not want:  # the first utterance of its video in this split
                assert texts == [] and waves == []
            assert item["text"] == f"{row.video_id.replace('vid', 'video ')} clip {row.clip_id}"


def test_context_audio_is_cut_to_the_clip_limit_oldest_first(tmp_path):
    _synthetic(tmp_path, np.random.default_rng(0))
    data = load_dataset(tmp_path, "mosi", text_context=0, audio_context=3, max_audio_seconds=0.5)
    train = data.split("train")
    for i in range(len(train)):
        item = train[i]
        assert "text" not in item["context"]  # no text context asked
        total = sum(len(w) for w in item["context"]["audio"])
        assert total <= 8000  # 0.5 s: the oldest clips first, cut like any clip


def test_no_context_by_default(tmp_path):
    _synthetic(tmp_path, np.random.default_rng(0))
    data = load_dataset(tmp_path, "mosi")
    assert "context" not in data.split("train")[0]
