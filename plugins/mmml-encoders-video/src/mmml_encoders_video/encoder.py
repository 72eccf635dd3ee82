"""``video``: a clip's frames through a timm image backbone, then a transformer over time.

Letters in shape comments: B batch, F frames (the batch's most), S image side, D backbone
width, N the batch's valid frames.

- ``preprocess`` (DataLoader worker, CPU): each raw item (a video path, decoded with PyAV, or
  frames already sampled, :mod:`mmml_encoders_video.frames`) gives up to ``max_frames`` frames
  sampled at ``fps``; each frame is centre-cropped to a square and resized to ``image_size``
  (no face detector: no well-kept library detects faces offline without model downloads, and
  the datasets' speakers are filmed centred). Returns ``pixels (B, F, 3, S, S)`` in [0, 1]
  (frames past a clip's end are 0) and ``mask (B, F)``.
- ``forward``: the valid frames only (``pixels[mask]``, so padded frames cost nothing and
  change nothing, also in training: BatchNorm statistics never see them) are normalised with
  the backbone's mean and std and encoded to one vector each, ``(N, D)``; they are put back
  in place, ``(B, F, D)``, a learned position embedding per frame index is added, and
  ``temporal_layers`` pre-norm transformer layers attend over each clip's valid frames only.
- Output: ``hidden (B, F, D)`` (zero at padded frames), ``mask``, ``pooled`` = the masked
  mean over frames.

Backbones: any timm model name (``timm.list_models()``), with ``weights`` = ``random``,
``pretrained`` (timm's published weights, from the hub or its cache) or a local weights file
(``.safetensors``, ``.pth``, ``.bin``). Presets with random weights for offline use:
``random:tiny`` (timm's ``test_convnext``, 64 wide, 0.2 M parameters, 64-pixel frames) and
``random:base`` (``resnet50``, 2048 wide, 23.5 M, 224 pixels). ``freeze_backbone`` keeps the
backbone's weights fixed and in evaluation mode; the temporal layers still train.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from mmml_core.interfaces import EncoderOutput, FeatureEncoder
from mmml_encoders_video.frames import as_frames, centre_crop_resize, check_fps

__all__ = ["PRESETS", "VideoEncoder", "VideoEncoderConfig"]

#: preset -> (timm model, default frame side)
PRESETS: dict[str, tuple[str, int]] = {
    "random:tiny": ("test_convnext", 64),
    "random:base": ("resnet50", 224),
}
WEIGHTS = ("random", "pretrained")


@dataclass
class VideoEncoderConfig:
    # a timm model name, or a preset with random weights: random:tiny, random:base
    backbone: str = "random:tiny"
    # random | pretrained (timm's published weights) | a local weights file; presets: random
    weights: str = "random"
    # frames sampled per second of video ...
    fps: float = 2.0
    # ... and at most this many per clip (8 at 2 fps: the first 4 s)
    max_frames: int = 8
    # frame side in pixels; None = the backbone's own input size (64 for random:tiny)
    image_size: int | None = None
    # transformer layers over the frames (0: per-frame features with position embeddings)
    temporal_layers: int = 1
    # attention heads of the temporal layers; None = width // 64 (at least 1), made a divisor
    temporal_heads: int | None = None
    # dropout in the temporal layers
    dropout: float = 0.1
    # keep the backbone's weights fixed (and the backbone in evaluation mode)
    freeze_backbone: bool = False

    def __post_init__(self) -> None:
        if self.backbone.startswith("random:") and self.backbone not in PRESETS:
            raise ValueError(f"backbone {self.backbone!r}: presets are {sorted(PRESETS)}")
        if self.backbone in PRESETS and self.weights != "random":
            raise ValueError(
                f"backbone {self.backbone!r} is a preset with random weights; weights "
                f"{self.weights!r} needs a timm model name"
            )
        if self.weights not in WEIGHTS and not os.path.isfile(self.weights):
            raise ValueError(
                f"weights must be random, pretrained or a weights file; {self.weights!r} is no file"
            )
        if not self.fps > 0 or self.fps != self.fps or self.fps == float("inf"):
            raise ValueError(f"fps must be a finite number > 0, got {self.fps}")
        for name, low in (("max_frames", 1), ("temporal_layers", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
        if self.image_size is not None and (
            isinstance(self.image_size, bool) or not isinstance(self.image_size, int)
            or self.image_size < 16
        ):  # fmt: skip
            raise ValueError(
                f"image_size must be None or an integer >= 16, got {self.image_size!r}"
            )
        if self.temporal_heads is not None and self.temporal_heads < 1:
            raise ValueError(f"temporal_heads must be >= 1, got {self.temporal_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")


def _backbone(config: VideoEncoderConfig) -> tuple[nn.Module, int]:
    """The timm model without its classifier (one vector per image) and its frame side."""
    import timm

    name, side = PRESETS.get(config.backbone, (config.backbone, 0))
    kwargs: dict[str, Any] = {"num_classes": 0}
    pretrained = config.weights != "random"
    if pretrained and config.weights != "pretrained":
        kwargs["pretrained_cfg_overlay"] = {"file": config.weights}
    try:
        model = timm.create_model(name, pretrained=pretrained, **kwargs)
    except RuntimeError as exc:  # an unknown name: timm's message lists no alternatives
        raise ValueError(f"backbone {name!r}: {exc}") from None
    if not side:
        side = int(model.pretrained_cfg.get("input_size", (3, 224, 224))[-1])
    return model, side


class VideoEncoder(FeatureEncoder):
    """Vision encoder over a clip's frames (see the module docstring)."""

    Config = VideoEncoderConfig
    modality: ClassVar[str] = "video"
    # --encoder video=resnet18: a timm model name (or a preset) is this encoder's backbone
    model_field: ClassVar[str | None] = "backbone"

    @classmethod
    def names_model(cls, name: str) -> bool:
        """A preset or a model name timm knows (``timm.is_model``)."""
        if name in PRESETS:
            return True
        import timm

        return bool(timm.is_model(name))

    def __init__(self, config: VideoEncoderConfig) -> None:
        super().__init__(config)
        self.backbone, side = _backbone(config)
        self.side = config.image_size or side
        self._dim = int(self.backbone.num_features)
        cfg = self.backbone.pretrained_cfg
        mean = torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406)), dtype=torch.float32)
        std = torch.tensor(cfg.get("std", (0.229, 0.224, 0.225)), dtype=torch.float32)
        self.register_buffer("pixel_mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", std.view(1, 3, 1, 1), persistent=False)
        self.position = nn.Parameter(torch.randn(config.max_frames, self._dim) * 0.02)
        heads = config.temporal_heads or max(1, self._dim // 64)
        while self._dim % heads:
            heads -= 1
        self.temporal: nn.Module | None = None
        if config.temporal_layers:
            layer = nn.TransformerEncoderLayer(
                self._dim,
                heads,
                dim_feedforward=4 * self._dim,
                dropout=config.dropout,
                batch_first=True,
                norm_first=True,
            )
            self.temporal = nn.TransformerEncoder(
                layer, config.temporal_layers, enable_nested_tensor=False
            )
        if config.freeze_backbone:
            for p in self.backbone.parameters():
                p.requires_grad_(False)

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        """The tiny preset on 32-pixel frames, at most 4 of them."""
        return {"backbone": "random:tiny", "image_size": 32, "max_frames": 4}

    @classmethod
    def loads_pretrained_weights(cls, config: Mapping[str, Any]) -> bool:
        return config.get("weights", "random") != "random"

    @property
    def dim(self) -> int:
        return self._dim

    def train(self, mode: bool = True) -> VideoEncoder:
        super().train(mode)
        if self.config.freeze_backbone:
            self.backbone.eval()
        return self

    def preprocess(self, items: Sequence[Any]) -> dict[str, Tensor]:
        if len(items) == 0:
            raise ValueError("preprocess needs at least one video item")
        c = self.config
        clips = [centre_crop_resize(as_frames(x, c.fps, c.max_frames), self.side) for x in items]
        most = max(x.shape[0] for x in clips)
        pixels = torch.zeros(len(clips), most, 3, self.side, self.side)
        mask = torch.zeros(len(clips), most, dtype=torch.bool)
        for i, x in enumerate(clips):
            pixels[i, : x.shape[0]] = x
            mask[i, : x.shape[0]] = True
        return {"pixels": pixels, "mask": mask}

    def load_input(self, value: Any) -> Any:
        """``mmml-bench predict --video FILE``: the clip's frames, decoded (or read from a
        frames file) now, so that a missing or broken file is an error naming it."""
        if isinstance(value, (str, os.PathLike)) and not os.path.isfile(value):
            raise FileNotFoundError(f"{os.fspath(value)}: no such video file")
        return as_frames(value, self.config.fps, self.config.max_frames)

    def describe_inputs(self, previews: Sequence[Any]) -> dict[str, int]:
        """Counts of clips the frame cap cuts (frames files, whose count is known); a frames
        file extracted at another rate than ``fps`` is an error naming it."""
        cut = 0
        for p in previews:
            if not isinstance(p, Mapping) or p.get("fps") is None:
                continue
            check_fps(p.get("path"), float(p["fps"]), self.config.fps)
            cut += int(p.get("frames") or 0) > self.config.max_frames
        return {f"clips cut to {self.config.max_frames} frames": cut}

    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        pixels, mask = inputs["pixels"], inputs["mask"].bool()  # (B, F, 3, S, S), (B, F)
        b, f = mask.shape
        valid = (pixels[mask] - self.pixel_mean) / self.pixel_std  # (N, 3, S, S)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.config.freeze_backbone):
            per_frame = self.backbone(valid)  # (N, D)
        hidden = per_frame.new_zeros(b, f, self._dim)
        hidden[mask] = per_frame
        hidden = hidden + self.position[:f].to(hidden.dtype)
        if self.temporal is not None:
            hidden = self.temporal(hidden, src_key_padding_mask=~mask)
        hidden = hidden * mask.unsqueeze(-1).to(hidden.dtype)
        count = mask.sum(dim=1, keepdim=True).clamp(min=1).to(hidden.dtype)
        pooled = hidden.sum(dim=1) / count  # (B, D)
        return EncoderOutput(hidden=hidden, mask=mask, pooled=pooled)
