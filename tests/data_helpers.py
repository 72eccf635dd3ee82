"""Builders of real dataset folders for the data tests (real CSV, WAV and MP4 files), and
two tiny real encoders to batch their items with."""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor, nn

from mmml_core.data.reader import COLUMNS
from mmml_core.interfaces import EncoderOutput, FeatureEncoder


def tone(seconds: float, sr: int, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    """A sine tone, (N,) or (N, C) float32; channel c has amplitude 0.5 / (c + 1)."""
    t = np.arange(round(seconds * sr)) / sr
    wave = np.sin(2 * np.pi * freq * t).astype(np.float32)
    if channels == 1:
        return 0.5 * wave
    return np.stack([wave * 0.5 / (c + 1) for c in range(channels)], axis=1)


def write_csv(path: Path, rows: Sequence[dict[str, str]], columns: Sequence[str] = COLUMNS) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})


def make_mosi_like(root: Path, sr: int = 16000) -> list[dict[str, str]]:
    """A MOSI-like folder: labels in [-3, 3], empty label_T/label_A, WAV audio."""
    rows = [
        {
            "video_id": "03bSnISJMiM",
            "clip_id": "1",
            "text": "it was great",
            "label": "2.4",
            "mode": "train",
        },
        {
            "video_id": "03bSnISJMiM",
            "clip_id": "2",
            "text": "so boring",
            "label": "-1.8",
            "mode": "train",
        },
        {
            "video_id": "03bSnISJMiM",
            "clip_id": "10",
            "text": "okay i guess",
            "label": "0.0",
            "mode": "train",
        },
        {
            "video_id": "0h-zjBukYpk",
            "clip_id": "1",
            "text": "loved the cast",
            "label": "3.0",
            "mode": "valid",
        },
        {
            "video_id": "0h-zjBukYpk",
            "clip_id": "2",
            "text": "hated it",
            "label": "-3",
            "mode": "test",
        },
    ]
    for i, row in enumerate(rows):
        path = root / "wav" / row["video_id"] / f"{row['clip_id']}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, tone(0.5 + 0.25 * i, sr), sr, subtype="PCM_16")
    write_csv(root / "label.csv", rows)
    return rows


def make_sims_like(root: Path) -> list[dict[str, str]]:
    """A CH-SIMS-like folder: zero-padded clip ids, per-modality labels, mixed audio formats.

    Clip 0001 is 44.1 kHz stereo WAV (resampled and downmixed on load), 0002 FLAC, 0003 Ogg
    Vorbis, 0004 a 16 kHz WAV of 8 s (truncated to 6 s on load).
    """
    rows = [
        {
            "video_id": "video_0001",
            "clip_id": "0001",
            "text": "我很开心",
            "label": "0.8",
            "label_T": "0.6",
            "label_A": "1.0",
            "label_V": "0.4",
            "annotation": "Positive",
            "mode": "train",
        },
        {
            "video_id": "video_0001",
            "clip_id": "0002",
            "text": "太糟糕了",
            "label": "-0.8",
            "label_T": "-1.0",
            "label_A": "-0.6",
            "label_V": "-0.8",
            "annotation": "Negative",
            "mode": "train",
        },
        {
            "video_id": "video_0002",
            "clip_id": "0003",
            "text": "还行吧",
            "label": "0.0",
            "label_T": "0.2",
            "label_A": "-0.2",
            "label_V": "0.0",
            "annotation": "Neutral",
            "mode": "valid",
        },
        {
            "video_id": "video_0002",
            "clip_id": "0004",
            "text": "不喜欢",
            "label": "-0.4",
            "label_T": "-0.6",
            "label_A": "0.0",
            "label_V": "-0.2",
            "annotation": "Negative",
            "mode": "test",
        },
    ]
    (root / "wav" / "video_0001").mkdir(parents=True)
    (root / "wav" / "video_0002").mkdir(parents=True)
    sf.write(
        root / "wav/video_0001/0001.wav", tone(1.0, 44100, channels=2), 44100, subtype="PCM_16"
    )
    sf.write(root / "wav/video_0001/0002.flac", tone(0.75, 16000), 16000, subtype="PCM_16")
    sf.write(
        root / "wav/video_0002/0003.ogg", tone(0.5, 16000), 16000, format="OGG", subtype="VORBIS"
    )
    sf.write(root / "wav/video_0002/0004.wav", tone(8.0, 16000), 16000, subtype="PCM_16")
    write_csv(root / "label.csv", rows)
    return rows


def make_mp4(path: Path, seconds: float, sr: int = 44100, channels: int = 2) -> None:
    """A real MP4 holding an AAC-encoded sine tone, written with PyAV."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    wave = tone(seconds, sr, channels=channels)
    planar = np.ascontiguousarray(wave.reshape(len(wave), -1).T)  # (C, N) float32
    layout = "mono" if channels == 1 else "stereo"
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=sr, layout=layout)
        step = 1024
        for start in range(0, planar.shape[1], step):
            frame = av.AudioFrame.from_ndarray(
                planar[:, start : start + step], format="fltp", layout=layout
            )
            frame.sample_rate = sr
            frame.pts = start
            frame.time_base = Fraction(1, sr)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)


class CharTextEncoder(FeatureEncoder):
    """Characters -> code point ids (mod 97), padded to the longest text of the batch."""

    modality = "text"

    @dataclass
    class Config:
        width: int = 8  # tiny: only shapes matter here

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(97, config.width)

    @property
    def dim(self) -> int:
        return self.config.width

    def preprocess(self, items: Sequence[str]) -> dict[str, Tensor]:
        longest = max(len(t) for t in items)
        ids = torch.zeros(len(items), longest, dtype=torch.long)
        mask = torch.zeros(len(items), longest, dtype=torch.bool)
        for i, text in enumerate(items):
            ids[i, : len(text)] = torch.tensor([ord(c) % 97 for c in text])
            mask[i, : len(text)] = True
        return {"input_ids": ids, "attention_mask": mask}

    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        hidden = self.embed(inputs["input_ids"])  # (B, T, D)
        mask = inputs["attention_mask"]
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, D)
        return EncoderOutput(hidden=hidden, mask=mask, pooled=pooled)


class FrameAudioEncoder(FeatureEncoder):
    """Normalised waveform cut into 400-sample frames; padding to the longest clip."""

    modality = "audio"

    @dataclass
    class Config:
        frame: int = 400  # 25 ms at 16 kHz

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.proj = nn.Linear(config.frame, 4)

    @property
    def dim(self) -> int:
        return 4

    def preprocess(self, items: Sequence[np.ndarray]) -> dict[str, Tensor]:
        longest = max(len(a) for a in items)
        wave = torch.zeros(len(items), longest)
        lengths = torch.tensor([len(a) for a in items])
        for i, a in enumerate(items):
            x = torch.from_numpy(a)
            wave[i, : len(a)] = (x - x.mean()) / (x.std() + 1e-7)
        return {"input_values": wave, "lengths": lengths}

    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        f = self.config.frame
        wave = inputs["input_values"]
        n = wave.shape[1] // f
        hidden = self.proj(wave[:, : n * f].reshape(wave.shape[0], n, f))  # (B, T, D)
        mask = torch.arange(n)[None, :] < (inputs["lengths"] // f)[:, None]  # (B, T)
        pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1)
        return EncoderOutput(hidden=hidden, mask=mask, pooled=pooled)


def make_video(
    path: Path, n_frames: int, fps: int = 10, size: tuple[int, int] = (48, 64), level: int = 0
) -> Path:
    """A real H.264 MP4 (no audio) of ``n_frames`` frames written with PyAV: frame ``k`` is
    flat grey of brightness ``level + 10 * k``, so a frame's index can be read back."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for k in range(n_frames):
            img = np.full((*size, 3), min(255, level + 10 * k), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
