"""``describe_inputs`` of the ``mel`` encoder: clips shorter than one FFT frame (``n_fft``),
which the spectrogram front end zero-pads to that frame."""

from __future__ import annotations

import numpy as np
import torch

from mmml_core import registry

SR = 16000
TINY = {"backbone": "cnn8", "n_mels": 32, "width": 4}


def _tone(samples: int, pitch: float = 180.0) -> np.ndarray:
    t = np.arange(samples) / SR
    return (0.3 * np.sin(2 * np.pi * pitch * t)).astype(np.float32)


def test_counts_clips_shorter_than_one_fft_frame() -> None:
    enc = registry.create("encoder", "mel", **TINY)
    key = "clips shorter than 1024 samples (64 ms), zero-padded to 1024"
    assert enc.describe_inputs([0, 100, 1023, 1024, 16000]) == {key: 3}
    assert enc.describe_inputs([1024, 32000]) == {}
    small = registry.create("encoder", "mel", n_fft=512, window_seconds=0.03, **TINY)
    assert small.describe_inputs([500, 600]) == {
        "clips shorter than 512 samples (32 ms), zero-padded to 512": 1
    }


def test_100_sample_clip_encodes_to_one_finite_step() -> None:
    torch.manual_seed(0)
    enc = registry.create("encoder", "mel", **TINY)
    clip, other = _tone(100), _tone(8000, 240.0)
    enc.fit([clip, other])
    batch = enc.preprocess([clip, other])
    assert batch["mask"].sum(1).tolist() == [1, 1 + (8000 - 1024) // 320]
    with torch.no_grad():
        out = enc.eval()(batch)
    assert out.mask.sum(1).tolist()[0] == 1
    assert torch.isfinite(out.pooled).all() and torch.isfinite(out.hidden).all()
