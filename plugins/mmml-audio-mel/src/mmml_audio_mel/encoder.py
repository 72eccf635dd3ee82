"""``mel``: log-Mel spectrogram + CNN backbone (paper §4.3 and appendix A.2, Table 2).

The paper's Mel baseline: "the number of Mel filterbanks was set to 128, while the window size
and step were adjusted to 0.06 seconds and 0.02 seconds", processed by "a custom 8-layer CNN
model and modified versions of ResNet-18 and ResNet-32" (torchvision/timm have no ResNet-32 of
this family; ``resnet34`` is offered next to ``resnet18``).

Letters in shape comments: B batch, N samples, M Mel bins, T frames, C channels, F' frequency
rows after the backbone, T' time steps after the backbone, D = C output width.

- ``preprocess`` (DataLoader worker, CPU): torchaudio ``MelSpectrogram`` (16 kHz, n_fft 1024,
  Hann window of 960 samples, hop 320, M Mel bins, power 2, ``center=False``) and
  ``AmplitudeToDB`` (10 log10, floor 1e-10 = -100 dB, no ``top_db`` clamp: ``top_db`` would
  depend on the loudest frame). With ``center=False`` a clip of N samples has exactly
  ``1 + (N - n_fft) // hop`` frames, each made of its own samples only, so zero-padding the
  batch's waveforms changes no valid frame. Clips shorter than ``n_fft`` are zero-padded to it.
  Returns ``mel (B, M, T)`` (padded frames hold 0) and ``mask (B, T)``.
- ``forward``: per-Mel-bin normalisation with the training statistics in the buffers
  ``mel_mean``/``mel_std`` (:meth:`MelEncoder.fit`), padded frames set to 0 (the training mean:
  a fixed, deterministic value), then the backbone on ``(B, 1, M, T)``.
- Output: ``hidden`` = the backbone's feature map averaged over frequency, ``(B, T', D)``;
  ``mask`` = valid time steps from each clip's valid frame count through every layer's own
  output-length formula (:mod:`mmml_audio_mel.masking`); ``pooled`` = masked mean over them.
  For ``cnn8`` T' = ceil(T / 16); for the ResNets every one of the five stride-2 layers maps
  L -> floor((L - 1) / 2) + 1, i.e. T' = ceil(T / 32).

Padding invariance (evaluation): exact up to float rounding for every backbone, because every
time-mixing layer sees padded positions as it would see its own zero/-inf padding alone (see
:mod:`mmml_audio_mel.masking`); in training BatchNorm statistics ignore padded positions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mmml_audio_mel.cnn8 import CNN8
from mmml_audio_mel.masking import TimeLengths, install
from mmml_core.interfaces import EncoderOutput, FeatureEncoder

__all__ = ["BACKBONES", "LogMelFrontend", "MelEncoder", "MelEncoderConfig"]

SAMPLE_RATE = 16000
BACKBONES: tuple[str, ...] = ("cnn8", "resnet18", "resnet34")


@dataclass
class MelEncoderConfig:
    # "cnn8" (the paper's custom 8-layer CNN, ours), or timm "resnet18" / "resnet34"
    backbone: str = "cnn8"
    # paper appendix A.2: 128 Mel filterbanks
    n_mels: int = 128
    # paper: 0.06 s window (960 samples at 16 kHz) ...
    window_seconds: float = 0.06
    # ... every 0.02 s (320 samples)
    hop_seconds: float = 0.02
    # FFT size: the next power of two above the 960-sample window
    n_fft: int = 1024
    # cnn8 only: channels of its first block (blocks use w, 2w, 4w, 8w; D = 8w)
    width: int = 32

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"backbone {self.backbone!r} is not one of {list(BACKBONES)}")
        win = round(self.window_seconds * SAMPLE_RATE)
        hop = round(self.hop_seconds * SAMPLE_RATE)
        if not (0 < win <= self.n_fft) or hop < 1:
            raise ValueError(
                f"need 0 < window ({win} samples) <= n_fft ({self.n_fft}) and a hop >= 1 sample"
            )
        if self.n_mels < 1 or self.width < 1:
            raise ValueError("n_mels and width must be positive")


class LogMelFrontend:
    """Waveforms -> dB Mel spectrograms on the CPU (a plain object, not an ``nn.Module``:
    it must stay on the CPU in DataLoader workers when the encoder moves to a GPU)."""

    def __init__(self, config: MelEncoderConfig) -> None:
        import torchaudio

        self.n_fft = config.n_fft
        self.hop = round(config.hop_seconds * SAMPLE_RATE)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=config.n_fft,
            win_length=round(config.window_seconds * SAMPLE_RATE),
            hop_length=self.hop,
            n_mels=config.n_mels,
            power=2.0,
            center=False,
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)

    def frames(self, num_samples: int) -> int:
        """Valid frames of a clip (after padding it to at least ``n_fft`` samples)."""
        return 1 + (max(num_samples, self.n_fft) - self.n_fft) // self.hop

    def __call__(self, items: Sequence[Any]) -> tuple[Tensor, Tensor]:
        waves = []
        for item in items:
            x = np.asarray(item, dtype=np.float32)
            if x.ndim != 1:
                raise ValueError(f"an audio item must be a 1-D array of samples, got {x.shape}")
            waves.append(x)
        lengths = [max(w.size, self.n_fft) for w in waves]
        batch = torch.zeros(len(waves), max(lengths))  # (B, N)
        for i, w in enumerate(waves):
            batch[i, : w.size] = torch.from_numpy(w)
        with torch.no_grad():
            spec = self.to_db(self.mel(batch))  # (B, M, T)
        frames = torch.tensor([self.frames(n) for n in lengths])
        mask = torch.arange(spec.shape[-1])[None, :] < frames[:, None]  # (B, T)
        return spec.masked_fill(~mask[:, None, :], 0.0), mask


def _timm_resnet(name: str) -> nn.Module:
    import timm

    return timm.create_model(name, pretrained=False, in_chans=1, num_classes=0, global_pool="")


class MelEncoder(FeatureEncoder):
    """Audio encoder over log-Mel spectrograms (see the module docstring)."""

    Config = MelEncoderConfig
    modality = "audio"

    def __init__(self, config: MelEncoderConfig) -> None:
        super().__init__(config)
        with torch.device("cpu"):  # preprocessing runs on the CPU, even when the model is
            self.frontend = LogMelFrontend(config)  # built on the meta device (a dry run)
        self.register_buffer("mel_mean", torch.zeros(config.n_mels))
        self.register_buffer("mel_std", torch.ones(config.n_mels))
        # frames the statistics were computed from; 0 = fit() never ran (forward refuses)
        self.register_buffer("fit_frames", torch.zeros((), dtype=torch.long))
        if config.backbone == "cnn8":
            self.backbone: nn.Module = CNN8(width=config.width)
            self._dim = self.backbone.out_channels
        else:
            self.backbone = _timm_resnet(config.backbone)
            self._dim = int(self.backbone.num_features)
        self.tracker = TimeLengths()
        install(self.backbone, self.tracker)

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        """A tiny cnn8 over 32 Mel bins."""
        return {"backbone": "cnn8", "n_mels": 32, "width": 4}

    @property
    def dim(self) -> int:
        return self._dim

    def preprocess(self, items: Sequence[Any]) -> dict[str, Tensor]:
        if len(items) == 0:
            raise ValueError("preprocess needs at least one audio item")
        mel, mask = self.frontend(items)
        return {"mel": mel, "mask": mask}

    def describe_inputs(self, previews: Sequence[Any]) -> dict[str, int]:
        """How many clips (previews: sample counts) are shorter than one FFT frame
        (``n_fft`` samples), which ``preprocess`` zero-pads to one frame."""
        need = self.frontend.n_fft
        short = sum(int(n) < need for n in previews)
        if not short:
            return {}
        ms = f"{need / SAMPLE_RATE * 1000:g}"
        return {f"clips shorter than {need} samples ({ms} ms), zero-padded to {need}": short}

    def fit(self, items: Sequence[Any]) -> None:
        """Mean and standard deviation per Mel bin over every valid frame of the training clips."""
        total = torch.zeros(self.config.n_mels, dtype=torch.float64)
        total_sq = torch.zeros(self.config.n_mels, dtype=torch.float64)
        frames = 0
        for start in range(0, len(items), 32):
            mel, mask = self.frontend(items[start : start + 32])  # (b, M, T), (b, T)
            valid = mel.double().transpose(1, 2)[mask]  # (frames, M)
            total += valid.sum(0)
            total_sq += (valid * valid).sum(0)
            frames += valid.shape[0]
        if frames == 0:
            raise ValueError("fit needs at least one training clip")
        mean = total / frames
        std = (total_sq / frames - mean * mean).clamp(min=0).sqrt()
        std[std < 1e-6] = 1.0  # a constant bin (e.g. above the signal's band) maps to 0
        self.mel_mean.copy_(mean.float())
        self.mel_std.copy_(std.float())
        self.fit_frames.fill_(frames)

    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        if int(self.fit_frames) == 0:
            raise RuntimeError(
                "mel encoder has no normalisation statistics: call fit(train_items) first or "
                "load a trained state dict"
            )
        mel = inputs["mel"].float()  # (B, M, T)
        mask = inputs["mask"].to(torch.bool)  # (B, T)
        x = (mel - self.mel_mean[:, None]) / self.mel_std[:, None]
        x = x.masked_fill(~mask[:, None, :], 0.0)
        with self.tracker.track(mask.sum(dim=1), x.shape[-1]):
            fmap = self.backbone(x[:, None])  # (B, C, F', T')
            steps = self.tracker.lengths(fmap.shape[-1])  # (B,)
        hidden = fmap.mean(dim=2).transpose(1, 2)  # (B, T', C)
        out_mask = torch.arange(hidden.shape[1], device=hidden.device)[None, :] < steps[:, None]
        hidden = hidden * out_mask[..., None]  # (B, T', C), padding zeroed
        pooled = hidden.sum(dim=1) / out_mask.sum(dim=1, keepdim=True).to(hidden.dtype)  # (B, C)
        return EncoderOutput(hidden=hidden, mask=out_mask, pooled=pooled)
