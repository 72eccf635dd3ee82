"""Modalities and dataset kinds are open sets: a third modality and a new dataset kind, each
from a distribution installed into a folder, run end to end through the real `mmml-bench`,
summary table included, without a line of core code knowing their names; three modalities
(text and two from the plugin, one with variable-length masked sequences) train through every
fusion that takes them."""

from __future__ import annotations

import csv
import json

import pytest
from fake_dists import bench, install

pytestmark = pytest.mark.plugins(
    "mmml-encoders-hf", "mmml-pulse", "mmml-fusion-transformer", "mmml-fusion-tfn"
)

PLUGIN = '''
"""A fake third modality, "pulse" (one number per utterance), a fourth, "beat" (a sequence of
1 to 3 steps, padded and masked), and a dataset kind whose items carry them next to their
text (beat has no default encoder: it is used when asked for)."""

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmml_core.data.kinds import DatasetError, DatasetKind
from mmml_core.interfaces import EncoderOutput, FeatureEncoder


@dataclass
class PulseConfig:
    dim: int = 8


class PulseEncoder(FeatureEncoder):
    modality = "pulse"
    Config = PulseConfig

    def __init__(self, config):
        super().__init__(config)
        self.proj = nn.Linear(1, config.dim)

    @property
    def dim(self):
        return self.config.dim

    def preprocess(self, items):
        return {"x": torch.tensor([float(v) for v in items], dtype=torch.float32).reshape(-1, 1, 1)}

    def forward(self, inputs):
        hidden = torch.tanh(self.proj(inputs["x"]))  # (B, 1, D)
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
        return EncoderOutput(hidden=hidden, mask=mask, pooled=hidden[:, 0])

    def describe_inputs(self, previews):
        return {"pulses above 3": sum(1 for v in previews if v > 3)}


@dataclass
class BeatConfig:
    dim: int = 6


class BeatEncoder(FeatureEncoder):
    modality = "beat"
    Config = BeatConfig

    def __init__(self, config):
        super().__init__(config)
        self.proj = nn.Linear(1, config.dim)

    @property
    def dim(self):
        return self.config.dim

    def preprocess(self, items):
        n = torch.tensor([int(v) for v in items])
        steps = torch.arange(int(n.max()))[None, :]
        mask = steps < n[:, None]  # (B, T)
        x = torch.where(mask, (steps + 1) / n[:, None], torch.full(mask.shape, 99.0))
        return {"x": x[..., None].float(), "mask": mask}

    def forward(self, inputs):
        mask = inputs["mask"]
        hidden = torch.tanh(self.proj(inputs["x"]))  # (B, T, D), padding holds tanh(99 w)
        w = mask[..., None].to(hidden.dtype)
        pooled = (hidden * w).sum(1) / w.sum(1)
        return EncoderOutput(hidden=hidden, mask=mask, pooled=pooled)


class PulseSplit(torch.utils.data.Dataset):
    def __init__(self, rows, modalities):
        self.rows, self.modalities = rows, modalities
        self.lengths = np.ones(len(rows), dtype=np.int64)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        r = self.rows[i]
        item = {"id": r["id"], "labels": {"M": float(r["label"])}}
        if "text" in self.modalities:
            item["text"] = r["text"]
        if "pulse" in self.modalities:
            item["pulse"] = float(r["pulse"])
        if "beat" in self.modalities:
            item["beat"] = int(r["beat"])
        return item

    def previews(self, modality):
        return [self[i][modality] for i in range(len(self))]


class PulseDataset:
    scheme, language, has_modality_labels, heads = "mosi", "en", False, ("M",)

    def __init__(self, rows, modalities):
        self.rows, self.modalities, self.kind, self.report = rows, modalities, "pulse", {}

    def split(self, name):
        return PulseSplit([r for r in self.rows if r["mode"] == name], self.modalities)


class PulseKind(DatasetKind):
    language = "en"
    scheme = "mosi"
    modalities = ("text", "pulse", "beat")
    default_encoders = {"text": "roberta", "pulse": "pulse"}
    defaults = {
        "train": {"lr": 3e-2, "batch_size": 8, "max_epochs": 12, "patience": 12},
        "fields": {"encoder": {"checkpoint": "random:tiny"}, "head": {"hidden": 16, "hidden2": 8}},
    }

    def load(self, root, *, modalities, max_audio_seconds=None, max_items=None):
        path = Path(root) / "pulse.csv"
        if not path.is_file():
            raise DatasetError(root, [f"{path}: file does not exist"])
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        return PulseDataset(rows, tuple(self.requested_modalities(modalities, root)))
'''


def _dataset(root):
    root.mkdir()
    with open(root / "pulse.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "pulse", "beat", "label", "mode"])
        for mode, n in (("train", 24), ("valid", 8), ("test", 8)):
            for i in range(n):
                sign = 1 if i % 2 else -1
                row = [f"{mode}{i}", "a film", 2.5 + sign * 1.5, 1 + i % 3, 2.0 * sign, mode]
                w.writerow(row)


def test_a_third_modality_and_a_new_dataset_kind_from_plugins_run_end_to_end(tmp_path):
    site = tmp_path / "site"
    install(
        site,
        "mmml-pulse",
        "0.1",
        {
            "mmml_core.encoders": {"pulse": "mmml_pulse:PulseEncoder"},
            "mmml_core.datasets": {"pulse": "mmml_pulse:PulseKind"},
        },
        {"mmml_pulse": PLUGIN},
    )
    data = tmp_path / "data"
    _dataset(data)
    listed = bench("list", "dataset", site=site)
    assert listed.returncode == 0 and "pulse" in listed.stdout, listed.stderr
    out = tmp_path / "run"
    proc = bench(
        "--dataset", str(data), "--dataset-kind", "pulse", "--fusion", "concat",
        "--seeds", "1", "--out", str(out), "--no-progress", site=site,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| lowest valid loss | P (pulse subnet) |" in proc.stdout
    assert "| lowest valid loss | T (text subnet) |" in proc.stdout
    assert "pulse: pulses above 3: 20" in proc.stderr  # the encoder's report, every split
    summary = json.loads((out / "results.json").read_text())
    assert summary["heads"] == {"M": "M (fused)", "T": "T (text subnet)", "P": "P (pulse subnet)"}
    assert set(summary["aggregate"]["best_loss"]) >= {"M", "T", "P"}
    assert (out / "summary.csv").read_text().count("\nbest_loss,P,") == 1
    # the pulse carries the label's sign exactly (the text carries nothing): it is learnt
    assert summary["aggregate"]["best_loss"]["P"]["Has0_Acc2"][0] > 0.9
    # predict through the generic --input flag
    predicted = bench(
        "predict", str(out / "seed-1" / "best_loss"), "--input", "pulse=4.0", "--json", site=site
    )
    assert predicted.returncode == 0, predicted.stderr
    assert set(json.loads(predicted.stdout)) == {"P"}


def test_a_kind_without_a_modality_says_so(tmp_path):
    site = tmp_path / "site"
    install(
        site,
        "mmml-pulse",
        "0.1",
        {
            "mmml_core.encoders": {"pulse": "mmml_pulse:PulseEncoder"},
            "mmml_core.datasets": {"pulse": "mmml_pulse:PulseKind"},
        },
        {"mmml_pulse": PLUGIN},
    )
    data = tmp_path / "data"
    _dataset(data)
    proc = bench(
        "--dataset", str(data), "--dataset-kind", "pulse", "--encoder", "audio=data2vec",
        "--fusion", "concat", "--dry-run", site=site,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "cannot provide modality 'audio'" in proc.stderr


@pytest.mark.parametrize(
    ("fusion", "settings"),
    [("cross_attn", ["fusion.layers=1", "fusion.heads=2"]), ("tfn", []), ("concat", [])],
)
def test_three_modalities_train_through_each_fusion(tmp_path, fusion, settings):
    """text + pulse + beat (widths 8 and 6 beside the text encoder's, beat padded and masked)
    for one epoch through the fusion: the run finishes and every subnet head is reported."""
    site = tmp_path / "site"
    install(
        site,
        "mmml-pulse",
        "0.1",
        {
            "mmml_core.encoders": {
                "pulse": "mmml_pulse:PulseEncoder",
                "beat": "mmml_pulse:BeatEncoder",
            },
            "mmml_core.datasets": {"pulse": "mmml_pulse:PulseKind"},
        },
        {"mmml_pulse": PLUGIN},
    )
    data = tmp_path / "data"
    _dataset(data)
    out = tmp_path / "run"
    proc = bench(
        "--dataset", str(data), "--dataset-kind", "pulse", "--modalities", "text,pulse,beat",
        "--encoder", "beat=beat", "--fusion", fusion, "--seeds", "1", "--out", str(out),
        "--no-progress", "train.max_epochs=1", *settings, site=site,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["heads"]) == {"M", "T", "P", "B"}
    assert set(summary["aggregate"]["best_loss"]) >= {"M", "T", "P", "B"}
