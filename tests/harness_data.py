"""A small learnable dataset in the MMSA layout for harness tests (real WAV files).

Text carries the sign of the label through sentiment words, audio carries it through the
pitch of a tone, so a tiny model can fit it within a few epochs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
from data_helpers import write_csv

WORDS = {1: ["great", "good", "lovely", "superb"], -1: ["awful", "bad", "boring", "terrible"]}


def make_learnable_mosi(
    root: Path, n_per_split: dict[str, int] | None = None, seed: int = 0, seconds: float = 0.4
) -> Path:
    """Write ``root/label.csv`` and ``root/wav/<video>/<clip>.wav``; returns ``root``."""
    n_per_split = n_per_split or {"train": 24, "valid": 8, "test": 8}
    rng = np.random.default_rng(seed)
    rows = []
    sr = 16000
    for mode, n in n_per_split.items():
        for i in range(n):
            sign = 1 if i % 2 == 0 else -1
            label = float(sign * rng.choice([0.6, 1.2, 2.0, 2.8]))
            video, clip = f"vid{mode}{i // 4}", f"{i % 4}"
            t = np.arange(int(sr * seconds * rng.uniform(0.7, 1.3))) / sr
            pitch = 300.0 if sign > 0 else 120.0
            wave = 0.4 * np.sin(2 * np.pi * pitch * t) + 0.01 * rng.standard_normal(t.size)
            path = root / "wav" / video / f"{clip}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wave.astype(np.float32), sr, subtype="PCM_16")
            word = WORDS[sign][i % 4]
            rows.append(
                {
                    "video_id": video,
                    "clip_id": clip,
                    "text": f"the film was {word}",
                    "label": f"{label:.1f}",
                    "label_T": "",
                    "label_A": "",
                    "label_V": "",
                    "annotation": "Positive" if sign > 0 else "Negative",
                    "mode": mode,
                }
            )
    write_csv(root / "label.csv", rows)
    return root
