"""The ``video`` encoder: the contract suite (shapes, gradients, padding invariance over frame
masks, determinism, config round trip), frame sampling from real video files written with
PyAV, the clean errors for missing and corrupt videos, the frozen backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from mmml_encoders_video.frames import FrameError, sample_frames

from mmml_core import registry
from mmml_core.testing import EncoderContract


def frames(n: int, seed: int, h: int = 40, w: int = 48) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


class TestVideoContract(EncoderContract):
    """Three clips of 2, 4 and 3 frames (the second is the longest)."""

    name = "video"

    def raw_items(self, modality: str) -> list:
        return [frames(2, 0), frames(4, 1), frames(3, 2)]


class TestFrozenVideoContract(EncoderContract):
    """Frozen backbone: the temporal layers still train (the contract's gradient check)."""

    name = "video"
    config = {"backbone": "random:tiny", "image_size": 32, "max_frames": 4, "freeze_backbone": True}

    def raw_items(self, modality: str) -> list:
        return [frames(2, 0), frames(4, 1), frames(3, 2)]


def write_video(path: Path, n: int, fps: int = 10, size: tuple[int, int] = (48, 64)) -> Path:
    """An H.264 mp4 of ``n`` frames whose brightness encodes the frame index (10 * k)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for k in range(n):
            img = np.full((*size, 3), 10 * k, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def test_frames_are_sampled_at_the_rate_from_a_real_video(tmp_path):
    video = write_video(tmp_path / "clip.mp4", n=25, fps=10)  # 2.5 s
    got = sample_frames(video, fps=2.0, max_frames=8)  # t = 0, 0.5, 1.0, 1.5, 2.0
    assert got.shape == (5, 48, 64, 3) and got.dtype == np.uint8
    brightness = got.reshape(5, -1).mean(axis=1)
    np.testing.assert_allclose(brightness, [0, 50, 100, 150, 200], atol=3)
    assert sample_frames(video, fps=2.0, max_frames=3).shape[0] == 3
    enc = registry.create("encoder", "video", image_size=32, max_frames=4)
    batch = enc.preprocess([str(video), frames(2, 0)])
    assert batch["pixels"].shape == (2, 4, 3, 32, 32)
    assert batch["mask"].sum(dim=1).tolist() == [4, 2]


def test_missing_and_corrupt_videos_are_errors_naming_the_file(tmp_path):
    with pytest.raises(FrameError, match="no such video file"):
        sample_frames(tmp_path / "gone.mp4", 2.0, 4)
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(FrameError, match=str(bad)):
        sample_frames(bad, 2.0, 4)
    enc = registry.create("encoder", "video", image_size=32)
    with pytest.raises(FrameError, match="uint8 frames"):
        enc.preprocess([np.zeros((2, 8, 8), dtype=np.float32)])


def test_frozen_backbone_takes_no_gradient_and_stays_in_eval_mode():
    enc = registry.create("encoder", "video", image_size=32, max_frames=4, freeze_backbone=True)
    enc.train()
    assert not enc.backbone.training and enc.temporal.training
    out = enc(enc.preprocess([frames(3, 0), frames(2, 1)]))
    out.pooled.sum().backward()
    assert all(p.grad is None for p in enc.backbone.parameters())
    assert enc.position.grad is not None and enc.position.grad.abs().sum() > 0


def test_bad_settings_are_clear_errors(tmp_path):
    for config, match in (
        ({"backbone": "random:huge"}, "presets are"),
        ({"backbone": "random:tiny", "weights": "pretrained"}, "preset with random weights"),
        ({"backbone": "test_convnext", "weights": str(tmp_path / "x.pt")}, "is no file"),
        ({"fps": 0.0}, "fps must be"),
        ({"max_frames": 0}, "max_frames must be"),
        ({"backbone": "no_such_model_xyz"}, "no_such_model_xyz"),
    ):
        with pytest.raises(ValueError, match=match):
            registry.create("encoder", "video", **config)


def test_local_weights_file_loads(tmp_path):
    from safetensors.torch import save_file

    base = registry.create("encoder", "video", backbone="test_convnext", image_size=32)
    weights = tmp_path / "convnext.safetensors"
    save_file({k: v.contiguous() for k, v in base.backbone.state_dict().items()}, str(weights))
    again = registry.create(
        "encoder", "video", backbone="test_convnext", weights=str(weights), image_size=32
    )
    for k, v in base.backbone.state_dict().items():
        assert torch.equal(again.backbone.state_dict()[k], v), k
    assert type(again).loads_pretrained_weights({"weights": str(weights)})
