"""``opensmile`` inside ``mmml-bench``: real subprocesses on a tiny dataset in the MMSA layout.

The encoder is trained as the audio encoder of a fusion (``concat``, with a random tiny text
encoder) and alone (``--modalities audio``). The checkpoints must carry the z-scoring
statistics of the training split, the harness must fill the feature cache, and
``mmml-bench predict`` must answer with the audio subnet head from a WAV file.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mmml_core import registry
from mmml_core.checkpoint import load_model
from mmml_core.data import load_dataset
from mmml_core.predict import predict
from mmml_core.testing import write_tiny_dataset

BENCH = str(Path(sys.executable).with_name("mmml-bench"))
SPLIT_SIZES = {"train": 16, "valid": 6, "test": 6}
SAMPLE_RATE = 16000
# a small transformer: the CLI tests are about the harness path, not model capacity
SMALL_OPENSMILE = ["audio.dim=16", "audio.heads=2", "audio.layers=1", "audio.ff_dim=32"]


def write_mosi(root: Path) -> Path:
    """MOSI-style labels in [-3, 3], a sentiment word in the text, a tone whose pitch follows
    the label's sign (mmml-core's test kit)."""
    return write_tiny_dataset(root, SPLIT_SIZES, seconds=0.5)


def bench(*args: str) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [BENCH, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.returncode == 0, f"mmml-bench {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def train_args(data: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    """Options, then ``extra`` (more options, or overrides), then the overrides (argparse
    reads the ``key=value`` positionals as one run, after every option)."""
    return [
        "--dataset",
        str(data),
        "--dataset-kind",
        "mosi",
        "--seeds",
        "1",
        "--out",
        str(out),
        "--no-progress",
        "--encoder",
        "audio=opensmile",
        *extra,
        *SMALL_OPENSMILE,
        f"audio.cache_dir={cache}",
        "train.max_epochs=2",
        "train.batch_size=8",
    ]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mosi(tmp_path_factory.mktemp("mosi"))


def _audio(data: Path, split: str) -> list[np.ndarray]:
    part = load_dataset(data, "mosi").split(split)
    return [part[i]["audio"] for i in range(len(part))]


def test_opensmile_as_the_audio_encoder_of_a_fusion(dataset: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    proc = bench(
        *train_args(dataset, out, cache, "--fusion", "concat", "text.checkpoint=random:tiny")
    )
    assert "audio=opensmile" in proc.stderr and "fusion concat" in proc.stderr
    assert (out / "results.json").is_file()
    results = json.loads((out / "seed-1" / "results.json").read_text())
    assert results["model"]["encoders"]["audio"]["name"] == "opensmile"
    assert set(results["selection"]["best_loss"]["test"]) == {"M", "T", "A"}
    # every clip of every split went through openSMILE once, into the run's cache
    assert len(list(cache.rglob("*.npy"))) == sum(SPLIT_SIZES.values())

    model, config = load_model(out / "seed-1" / "best_loss")
    enc = model.encoders["audio"]
    saved = config["model"]["encoders"]["audio"]["config"]
    assert saved["cache_dir"] == str(cache) and saved["dim"] == 16
    # the statistics are those of the training split, recomputed here without the cache
    fresh = registry.create("encoder", "opensmile", **{**saved, "cache": False})
    fresh.fit(_audio(dataset, "train"))
    assert int(enc.fit_frames) == int(fresh.fit_frames) > 0
    torch.testing.assert_close(enc.feature_mean, fresh.feature_mean)
    torch.testing.assert_close(enc.feature_std, fresh.feature_std)
    everything = registry.create("encoder", "opensmile", **{**saved, "cache": False})
    everything.fit([w for s in SPLIT_SIZES for w in _audio(dataset, s)])
    assert not torch.allclose(enc.feature_mean, everything.feature_mean)


def test_opensmile_audio_only_and_predict(dataset: Path, tmp_path: Path) -> None:
    out, cache = tmp_path / "run", tmp_path / "cache"
    bench(*train_args(dataset, out, cache, "--modalities", "audio"))
    assert (out / "results.json").is_file()
    results = json.loads((out / "seed-1" / "results.json").read_text())
    assert results["model"]["fusion"] is None
    assert set(results["selection"]["best_loss"]["test"]) == {"A"}

    ckpt = out / "seed-1" / "best_loss"
    model, _ = load_model(ckpt)
    assert int(model.encoders["audio"].fit_frames) > 0
    wav = dataset / "wav" / "vidtest0" / "0.wav"
    answer = json.loads(bench("predict", str(ckpt), "--audio", str(wav), "--json").stdout)
    assert set(answer) == {"A"} and math.isfinite(answer["A"])
    assert answer["A"] == pytest.approx(predict(ckpt, audio=wav)["A"][0], abs=1e-5)
