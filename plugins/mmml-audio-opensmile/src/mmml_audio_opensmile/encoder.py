"""``opensmile``: openSMILE low-level descriptors + a small transformer (paper §4.3, App. A.2).

The paper's openSMILE baseline of Table 2: frame-level ComParE_2016 descriptors computed with
0.06 s frames every 0.02 s, z-scored with training-split statistics, then "Transformer models,
incorporating between 2 and 4 encoder layers complemented with positional encoding", with "a
feed-forward layer ... added to process feature embeddings in the CLS token of the final
transformer encoder". The paper names no feature set: ComParE_2016 is the choice of the
authors' code, which feeds the 65 LLDs together with their 65 deltas (``deltas=True`` here).

Letters in shape comments: B batch, T frames (padded), F descriptors per frame, D model width.

Pipeline:

- ``preprocess`` (DataLoader worker): openSMILE LLDs per clip (from the disk cache when
  present, see :mod:`mmml_audio_opensmile.features`), padded with zeros to the longest clip;
  returns ``features (B, T, F)`` and ``mask (B, T)``. F = 65 for ComParE_2016, 130 with
  ``deltas`` (the 65 LLDs, then their 65 deltas), 25 for eGeMAPSv02.
- ``forward``: z-score with the buffers ``feature_mean``/``feature_std`` (computed by
  :meth:`OpenSmileEncoder.fit` on the training split, saved in the state dict), linear
  projection F -> D, a learned CLS vector prepended, fixed sinusoidal positions (CLS at
  position 0), a pre-norm ``nn.TransformerEncoder`` with key-padding masks.
- Output: ``hidden`` = the frame states only (the CLS state is left out, so ``hidden`` and
  ``mask`` line up with the openSMILE frames; padded positions are zeroed), ``pooled`` =
  ``tanh(Linear(CLS state))``, the feed-forward layer over the CLS token.

Padding invariance: a clip's features do not depend on the batch, attention never reads padded
keys, and every layer is position-wise otherwise, so a clip's outputs equal its outputs alone up
to float rounding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmml_audio_opensmile.features import (
    SAMPLE_RATE,
    FeatureCache,
    default_cache_dir,
    extract_lld,
    frame_samples,
    settings_tag,
)
from mmml_audio_opensmile.smile_config import DELTAS_LEVEL, FEATURE_DIMS, FEATURE_SETS, feature_dim
from mmml_core.interfaces import EncoderOutput, FeatureEncoder

__all__ = ["OpenSmileEncoder", "OpenSmileEncoderConfig", "sinusoidal_positions"]


@dataclass
class OpenSmileEncoderConfig:
    # the feature set of the authors' code (the paper names none); "eGeMAPSv02" (25 LLDs) is
    # the small alternative
    feature_set: str = "ComParE_2016"
    # openSMILE output level: "lld" (descriptors) or "lld_de" (their deltas only, ComParE only)
    feature_level: str = "lld"
    # append the deltas (level "lld_de") to the LLDs: 65 + 65 = 130 columns for ComParE_2016,
    # as the authors' code does; needs feature_level "lld" and a set with deltas (ComParE)
    deltas: bool = False
    # paper appendix A.2: 0.06 s frames ...
    frame_seconds: float = 0.06
    # ... every 0.02 s (openSMILE's own default is 0.01 s)
    step_seconds: float = 0.02
    # model width; the paper gives none, 64 keeps a ~65-descriptor input unsqueezed
    dim: int = 64
    # paper: "between 2 and 4 encoder layers"; 2 is the cheapest of its range
    layers: int = 2
    # attention heads; dim must be divisible by it
    heads: int = 4
    # position-wise feed-forward width, the usual 4 x dim
    ff_dim: int = 256
    # dropout in attention and feed-forward blocks (PyTorch's transformer default)
    dropout: float = 0.1
    # cache extracted features on disk so a second run does not recompute them
    cache: bool = True
    # "" = $MMML_CACHE_DIR/opensmile, else ~/.cache/mmml/opensmile
    cache_dir: str = ""

    def __post_init__(self) -> None:
        if self.feature_set not in FEATURE_SETS:
            raise ValueError(
                f"feature_set {self.feature_set!r} is not one of {sorted(FEATURE_SETS)}"
            )
        if (self.feature_set, self.feature_level) not in FEATURE_DIMS:
            levels = sorted(lvl for fs, lvl in FEATURE_DIMS if fs == self.feature_set)
            raise ValueError(
                f"feature_level {self.feature_level!r} is not available for "
                f"{self.feature_set}; choose from {levels}"
            )
        if self.deltas and (self.feature_set, DELTAS_LEVEL) not in FEATURE_DIMS:
            raise ValueError(f"deltas=True: {self.feature_set} has no deltas (ComParE_2016 has)")
        if self.deltas and self.feature_level != "lld":
            raise ValueError(
                f"deltas=True appends {DELTAS_LEVEL!r} to the LLDs and needs feature_level "
                f"'lld', not {self.feature_level!r}"
            )
        if not (self.frame_seconds > 0 and self.step_seconds > 0):
            raise ValueError("frame_seconds and step_seconds must be positive")
        if self.layers < 1 or self.heads < 1 or self.dim < 2 or self.ff_dim < 1:
            raise ValueError("layers, heads, dim and ff_dim must be positive")
        if self.dim % self.heads or self.dim % 2:
            raise ValueError(f"dim {self.dim} must be even and divisible by heads {self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout} must be in [0, 1)")


def sinusoidal_positions(length: int, dim: int, device: Any = None) -> Tensor:
    """The fixed sine/cosine positions of "Attention is all you need", ``(length, dim)``."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(
        torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim)
    )  # (dim/2,)
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)
    return table


class OpenSmileEncoder(FeatureEncoder):
    """Audio encoder over openSMILE low-level descriptors (see the module docstring)."""

    Config = OpenSmileEncoderConfig
    modality = "audio"

    def __init__(self, config: OpenSmileEncoderConfig) -> None:
        super().__init__(config)
        c = config
        self.num_features = feature_dim(c.feature_set, c.feature_level, c.deltas)  # F
        self.register_buffer("feature_mean", torch.zeros(self.num_features))
        self.register_buffer("feature_std", torch.ones(self.num_features))
        # frames the statistics were computed from; 0 = fit() never ran (forward refuses)
        self.register_buffer("fit_frames", torch.zeros((), dtype=torch.long))
        self.input_proj = nn.Linear(self.num_features, c.dim)
        self.cls = nn.Parameter(torch.randn(c.dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model=c.dim,
            nhead=c.heads,
            dim_feedforward=c.ff_dim,
            dropout=c.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,  # pre-norm trains from scratch without warm-up
        )
        self.transformer = nn.TransformerEncoder(
            layer, num_layers=c.layers, norm=nn.LayerNorm(c.dim), enable_nested_tensor=False
        )
        self.pool = nn.Linear(c.dim, c.dim)
        self._cache: FeatureCache | None = None

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        """Tiny and disk-free: the 25 eGeMAPS descriptors, one layer, no feature cache."""
        return {
            "feature_set": "eGeMAPSv02",
            "dim": 16,
            "heads": 2,
            "layers": 1,
            "ff_dim": 32,
            "cache": False,
        }

    @property
    def dim(self) -> int:
        return self.config.dim

    # ------------------------------------------------------------------ features
    @property
    def feature_cache(self) -> FeatureCache | None:
        """The disk cache (None when ``cache`` is off); its ``stats`` count hits and misses."""
        if not self.config.cache:
            return None
        if self._cache is None:
            c = self.config
            root = c.cache_dir or default_cache_dir()
            tag = settings_tag(
                c.feature_set, c.feature_level, c.frame_seconds, c.step_seconds, c.deltas
            )
            self._cache = FeatureCache(root, tag)
        return self._cache

    def clip_features(self, wave: Any) -> np.ndarray:
        """Descriptors of one clip, ``(frames, F)``, from the cache or from openSMILE."""
        c = self.config
        x = np.ascontiguousarray(np.asarray(wave, dtype=np.float32))
        cache = self.feature_cache
        key = cache.key(x) if cache is not None else ""
        if cache is not None:
            hit = cache.load(key)
            if hit is not None:
                return hit
        feats = extract_lld(
            x, c.feature_set, c.feature_level, c.frame_seconds, c.step_seconds, c.deltas
        )
        if cache is not None:
            cache.save(key, feats)
        return feats

    def preprocess(self, items: Sequence[Any]) -> dict[str, Tensor]:
        if len(items) == 0:
            raise ValueError("preprocess needs at least one audio item")
        feats = [self.clip_features(w) for w in items]
        lengths = [f.shape[0] for f in feats]
        T = max(lengths)
        batch = np.zeros((len(feats), T, self.num_features), dtype=np.float32)  # (B, T, F)
        for i, f in enumerate(feats):
            batch[i, : f.shape[0]] = f
        mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
        return {"features": torch.from_numpy(batch), "mask": mask}

    def describe_inputs(self, previews: Sequence[Any]) -> dict[str, int]:
        """How many clips (previews: sample counts) are shorter than one openSMILE frame
        (``frame_seconds``), which :func:`~mmml_audio_opensmile.features.extract_lld` zero-pads
        to one frame."""
        need = frame_samples(self.config.frame_seconds)
        short = sum(int(n) < need for n in previews)
        if not short:
            return {}
        ms = f"{need / SAMPLE_RATE * 1000:g}"
        return {f"clips shorter than {need} samples ({ms} ms), zero-padded to {need}": short}

    def fit(self, items: Sequence[Any]) -> None:
        """z-score statistics per descriptor over every frame of the training clips."""
        from tqdm.auto import tqdm

        total = np.zeros(self.num_features, dtype=np.float64)
        total_sq = np.zeros(self.num_features, dtype=np.float64)
        frames = 0
        for wave in tqdm(items, desc="openSMILE statistics", unit="clip", disable=None):
            f = self.clip_features(wave).astype(np.float64)  # (T, F)
            total += f.sum(axis=0)
            total_sq += (f * f).sum(axis=0)
            frames += f.shape[0]
        if frames == 0:
            raise ValueError("fit needs at least one training clip")
        mean = total / frames
        var = np.maximum(total_sq / frames - mean * mean, 0.0)
        std = np.sqrt(var)
        std[std < 1e-8] = 1.0  # a constant descriptor maps to 0, not to inf
        self.feature_mean.copy_(torch.from_numpy(mean).float())
        self.feature_std.copy_(torch.from_numpy(std).float())
        self.fit_frames.fill_(frames)

    # ------------------------------------------------------------------ network
    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        if int(self.fit_frames) == 0:
            raise RuntimeError(
                "opensmile encoder has no z-scoring statistics: call fit(train_items) first "
                "or load a trained state dict"
            )
        x = inputs["features"].float()  # (B, T, F)
        mask = inputs["mask"].to(torch.bool)  # (B, T)
        B, T, _ = x.shape
        x = (x - self.feature_mean) / self.feature_std
        x = x.masked_fill(~mask[..., None], 0.0)
        h = self.input_proj(x)  # (B, T, D)
        cls = self.cls.expand(B, 1, -1)  # (B, 1, D)
        h = torch.cat([cls, h], dim=1)  # (B, 1+T, D)
        h = h + sinusoidal_positions(T + 1, self.config.dim, h.device).to(h.dtype)
        keep = torch.cat([mask.new_ones(B, 1), mask], dim=1)  # (B, 1+T)
        h = self.transformer(h, src_key_padding_mask=~keep)  # (B, 1+T, D)
        pooled = torch.tanh(self.pool(h[:, 0]))  # (B, D)
        hidden = h[:, 1:] * mask[..., None]  # (B, T, D), padding zeroed
        return EncoderOutput(hidden=hidden, mask=mask, pooled=pooled)
