"""``mmml-bench extract-audio`` as a real subprocess on test-made MP4 files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from data_helpers import make_mp4, write_csv

from mmml_core.data import DatasetError, load_dataset


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("mmml-bench")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mmml_core.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=300)


def test_extract_audio_end_to_end(tmp_path: Path) -> None:
    make_mp4(tmp_path / "Raw/vidA/1.mp4", 1.5, sr=44100, channels=2)
    make_mp4(tmp_path / "Raw/vidA/0002.mp4", 0.7, sr=48000, channels=1)
    make_mp4(tmp_path / "Raw/vidC/3.mp4", 0.4, sr=16000, channels=1)
    bad = tmp_path / "Raw/vidB/7.mp4"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(np.random.default_rng(0).bytes(20000))  # not a container at all

    first = _bench("extract-audio", str(tmp_path), "--workers", "2", "--no-progress")
    assert first.returncode == 0, first.stderr
    assert "4 clip(s)" in first.stdout and "0 already extracted" in first.stdout
    assert "4 to extract" in first.stdout and "extracted 3, failed 1" in first.stdout
    assert "Raw/vidB/7.mp4" in first.stderr and "could not be decoded" in first.stderr
    failures = (tmp_path / "wav/extract_failures.txt").read_text()
    assert failures.startswith("Raw/vidB/7.mp4\t")

    # RMS of the tone: mono 0.5 / sqrt(2); stereo downmixed to (0.5 + 0.25) / 2 / sqrt(2)
    cases = (("vidA/1.wav", 1.5, 0.265), ("vidA/0002.wav", 0.7, 0.354), ("vidC/3.wav", 0.4, 0.354))
    for name, seconds, rms in cases:
        info = sf.info(str(tmp_path / "wav" / name))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert abs(info.duration - seconds) < 0.05  # AAC adds a few ms of padding
        wave, _ = sf.read(str(tmp_path / "wav" / name))
        assert abs(np.sqrt(np.mean(wave[1000:-1000] ** 2)) - rms) < 0.01
    assert not (tmp_path / "wav/vidB").exists()
    assert not list(tmp_path.rglob("*.part"))

    mtimes = {p: p.stat().st_mtime_ns for p in (tmp_path / "wav").rglob("*.wav")}
    second = _bench("extract-audio", str(tmp_path), "--no-progress")
    assert second.returncode == 0, second.stderr
    assert "3 already extracted, 1 known failure(s) skipped, 0 to extract" in second.stdout
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten

    strict = _bench("extract-audio", str(tmp_path), "--strict", "--retry-failed", "--no-progress")
    assert strict.returncode == 1
    assert "1 to extract" in strict.stdout and "Raw/vidB/7.mp4" in strict.stderr

    # the extracted folder reads through the dataset reader; the failed clip's row is named
    rows = [
        {"video_id": "vidA", "clip_id": "1", "text": "a", "label": "1", "mode": "train"},
        {"video_id": "vidA", "clip_id": "0002", "text": "b", "label": "-1", "mode": "valid"},
        {"video_id": "vidB", "clip_id": "7", "text": "c", "label": "0", "mode": "test"},
    ]
    write_csv(tmp_path / "label.csv", rows)
    try:
        load_dataset(tmp_path, "mosi")
        raise AssertionError("the clip that failed to decode must be reported")
    except DatasetError as exc:
        assert "line 4, field 'audio': no audio file" in str(exc)
    write_csv(tmp_path / "label.csv", rows[:2] + [dict(rows[2], video_id="vidC", clip_id="3")])
    ds = load_dataset(tmp_path, "mosi")
    assert (
        ds.split("valid")[0]["audio"].shape[0]
        == sf.info(str(tmp_path / "wav/vidA/0002.wav")).frames
    )


def test_extract_audio_missing_raw_is_usage_error(tmp_path: Path) -> None:
    result = _bench("extract-audio", str(tmp_path))
    assert result.returncode == 2
    assert "Raw does not exist" in result.stderr
