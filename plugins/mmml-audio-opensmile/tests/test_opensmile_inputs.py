"""``describe_inputs`` of the ``opensmile`` encoder: clips shorter than one openSMILE frame,
which feature extraction zero-pads to that frame."""

from __future__ import annotations

import numpy as np
import torch

from mmml_core import registry

SR = 16000
TINY = {"feature_set": "eGeMAPSv02", "dim": 16, "heads": 2, "layers": 1, "ff_dim": 32}


def _tone(samples: int, pitch: float = 180.0) -> np.ndarray:
    t = np.arange(samples) / SR
    return (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def test_counts_clips_shorter_than_one_frame() -> None:
    enc = registry.create("encoder", "opensmile", cache=False, **TINY)
    key = "clips shorter than 960 samples (60 ms), zero-padded to 960"
    assert enc.describe_inputs([0, 100, 959, 960, 16000]) == {key: 3}
    assert enc.describe_inputs([960, 32000]) == {}
    wide = registry.create("encoder", "opensmile", cache=False, frame_seconds=0.1, **TINY)
    assert wide.describe_inputs([1000, 1500, 2000]) == {
        "clips shorter than 1600 samples (100 ms), zero-padded to 1600": 2
    }


def test_100_sample_clip_encodes_to_one_finite_frame() -> None:
    torch.manual_seed(0)
    enc = registry.create("encoder", "opensmile", cache=False, **TINY)
    clip, other = _tone(100), _tone(8000, 240.0)
    enc.fit([clip, other])
    with torch.no_grad():
        out = enc.eval()(enc.preprocess([clip, other]))
    assert out.mask.sum(1).tolist() == [1, 1 + (8000 - 960) // 320]
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.hidden).all()
