"""Dataset kinds as an open registry: a third-party kind with its own modality, loading only
the modalities a run uses, ``max_items``, the load report, and collating any modality."""

from __future__ import annotations

import csv
import importlib.metadata as md
import shutil
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from data_helpers import CharTextEncoder, make_mosi_like, make_sims_like, tone, write_csv
from torch import Tensor, nn

from mmml_core import registry
from mmml_core.data import DatasetError, collate, load_dataset, make_collate
from mmml_core.data.kinds import DatasetKind, LoadedDataset, LoadedSplit
from mmml_core.interfaces import EncoderOutput, FeatureEncoder

#: A third-party dataset kind whose items carry a "pulse" (one float per item) besides text.
PULSE_KIND = """
import csv
from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from mmml_core.data import DatasetError
from mmml_core.data.kinds import DatasetKind


@dataclass
class PulseConfig:
    scale: float = 1.0


class PulseSplit(Dataset):
    def __init__(self, rows, modalities):
        self.rows, self.modalities = rows, modalities
        self.lengths = np.array([len(r["text"]) for r in rows], dtype=np.int64)

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        row = self.rows[i]
        return {"id": row["id"], **{m: row[m] for m in self.modalities}, "labels": {"M": row["M"]}}

    def previews(self, modality):
        return [r[modality] for r in self.rows]


class PulseDataset:
    scheme, language, has_modality_labels, heads, report = "mosi", "en", False, ("M",), {}

    def __init__(self, kind, rows, modalities):
        self.kind, self.rows, self.modalities = kind, rows, modalities

    def split(self, name):
        return PulseSplit([r for r in self.rows if r["mode"] == name], self.modalities)


class PulseKind(DatasetKind):
    Config = PulseConfig
    language = "en"
    scheme = "mosi"
    modalities = ("text", "pulse")

    def load(self, root, *, modalities, max_audio_seconds=6.0, max_items=None):
        root = self.resolve_root(root)
        mods = self.requested_modalities(modalities, root)
        path, rows, problems = root / "pulse.csv", [], []
        with open(path, newline="", encoding="utf-8") as f:
            for line, rec in enumerate(csv.DictReader(f), start=2):
                try:
                    pulse = float(rec["pulse"]) * self.config.scale
                except ValueError:
                    problems.append(f"{path} line {line}, field 'pulse': not a number")
                    continue
                rows.append({"id": rec["id"], "text": rec["text"], "pulse": pulse,
                             "M": float(rec["label"]), "mode": rec["mode"]})
        if problems:
            raise DatasetError(root, problems)
        return PulseDataset(self.kind_name, rows, mods)
"""


class FakeDist:
    """Just what the registry reads of an ``importlib.metadata.Distribution``."""

    def __init__(self, name: str, version: str, entry_points: list[tuple[str, str, str]]):
        self.metadata = {"Name": name}
        self.version = version
        self.entry_points = [md.EntryPoint(n, v, g) for g, n, v in entry_points]


@pytest.fixture
def pulse_kind(monkeypatch, tmp_path):
    """mmml-core plus a fake distribution ``mmml-pulse`` registering the dataset kind
    ``pulse``; yields a folder holding a pulse dataset."""
    module_dir = tmp_path / "site"
    module_dir.mkdir()
    (module_dir / "fake_pulse_kind.py").write_text(textwrap.dedent(PULSE_KIND))
    monkeypatch.syspath_prepend(str(module_dir))
    sys.modules.pop("fake_pulse_kind", None)
    monkeypatch.delenv(registry.AUTOLOAD_ENV, raising=False)
    core = [d for d in md.distributions() if (d.metadata["Name"] or "").lower() == "mmml-core"]
    fake = FakeDist(
        "mmml-pulse", "0.2", [("mmml_core.datasets", "pulse", "fake_pulse_kind:PulseKind")]
    )
    monkeypatch.setattr(registry, "_distributions", lambda: [*core, fake])
    registry.reset()
    root = tmp_path / "data"
    root.mkdir()
    rows = [
        {"id": "a", "text": "calm day", "pulse": "61", "label": "0.5", "mode": "train"},
        {"id": "b", "text": "what a fright", "pulse": "118", "label": "-1", "mode": "train"},
        {"id": "c", "text": "fine", "pulse": "70", "label": "0", "mode": "test"},
    ]
    write_csv(root / "pulse.csv", rows, ["id", "text", "pulse", "label", "mode"])
    yield root
    registry.reset()
    sys.modules.pop("fake_pulse_kind", None)


class PulseEncoder(FeatureEncoder):
    """One float per item -> a one-step sequence of width 2."""

    modality = "pulse"

    @dataclass
    class Config:
        offset: float = 0.0

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.proj = nn.Linear(1, 2)

    @property
    def dim(self) -> int:
        return 2

    def preprocess(self, items: Sequence[float]) -> dict[str, Tensor]:
        return {"pulse": torch.tensor(items, dtype=torch.float32)[:, None] - self.config.offset}

    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        hidden = self.proj(inputs["pulse"])[:, None, :]  # (B, 1, 2)
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool)
        return EncoderOutput(hidden=hidden, mask=mask, pooled=hidden[:, 0])


def test_builtin_kinds_come_from_core_entry_points() -> None:
    registry.reset()
    assert {"demo", "mosi", "mosei", "sims"} <= set(registry.list("dataset"))
    infos = {i.name: i for i in registry.describe("dataset")}
    assert infos["mosi"].distribution == "mmml-core"
    assert infos["mosi"].value == "mmml_core.data.kinds:MosiKind"
    sims = registry.load("dataset", "sims")
    assert (sims.language, sims.scheme, sims.modalities, sims.needs_path, sims.defaults) == (
        "zh",
        "sims",
        ("text", "audio", "video"),
        True,
        {},
    )
    assert sims.default_encoders == {"text": "roberta", "audio": "hubert"}  # video: on request
    assert sims.optional_encoders == {"video": "video"}
    demo = registry.load("dataset", "demo")
    assert demo.needs_path is False and demo.defaults["train"]["lr"] == 1e-3
    assert demo.defaults["fields"]["encoder"]["checkpoint"] == "random:tiny"


def test_a_kind_from_a_fake_distribution_with_its_own_modality(pulse_kind: Path) -> None:
    assert "pulse" in registry.list("dataset")
    assert "fake_pulse_kind" not in sys.modules, "listing must not import the kind"
    [info] = [i for i in registry.describe("dataset") if i.name == "pulse"]
    assert (info.distribution, info.version) == ("mmml-pulse", "0.2")

    ds = registry.create("dataset", "pulse", scale=0.01).load(pulse_kind, modalities=["pulse"])
    assert isinstance(ds, LoadedDataset) and ds.kind == "pulse" and ds.modalities == ("pulse",)
    train = ds.split("train")
    assert isinstance(train, LoadedSplit)
    assert train[1] == {"id": "b", "pulse": pytest.approx(1.18), "labels": {"M": -1.0}}
    assert train.previews("pulse") == pytest.approx([0.61, 1.18])

    both = load_dataset(pulse_kind, "pulse")  # the wrapper: every modality of the kind
    items = [both.split("train")[i] for i in range(2)]
    assert items[0]["text"] == "calm day" and items[0]["pulse"] == 61.0
    encoders = {
        "text": CharTextEncoder(CharTextEncoder.Config()),
        "pulse": PulseEncoder(PulseEncoder.Config(offset=60.0)),
    }
    batch = make_collate(encoders, ["M", "T", "P"])(items)
    torch.testing.assert_close(batch["inputs"]["pulse"]["pulse"], torch.tensor([[1.0], [58.0]]))
    assert batch["inputs"]["text"]["input_ids"].shape == (2, len("what a fright"))
    for head in ("M", "T", "P"):  # the kind labels only M: every head learns it
        torch.testing.assert_close(batch["targets"][head], torch.tensor([0.5, -1.0]))
    assert encoders["pulse"](batch["inputs"]["pulse"]).pooled.shape == (2, 2)

    with pytest.raises(DatasetError) as err:
        load_dataset(pulse_kind, "pulse", modalities=["text", "audio"])
    assert "cannot provide modality 'audio'; its modalities are text, pulse" in str(err.value)
    with pytest.raises(DatasetError, match="needs a root folder"):
        load_dataset(None, "pulse")


def test_text_only_load_needs_no_audio_folder(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    shutil.rmtree(tmp_path / "wav")
    with pytest.raises(DatasetError, match="audio folder does not exist"):
        load_dataset(tmp_path, "mosi")
    ds = load_dataset(tmp_path, "mosi", modalities=["text"])
    assert ds.modalities == ("text",) and ds.report == {} and ds.heads == ("M", "T", "A")
    train = ds.split("train")
    assert train[0] == {
        "id": "03bSnISJMiM$_$1",
        "text": "it was great",
        "labels": {"M": 2.4, "T": 2.4, "A": 2.4},
    }
    assert train.lengths.tolist() == [12, 9, 12]  # characters, for the bucketed sampler
    assert train.previews("text") == ["it was great", "so boring", "okay i guess"]
    with pytest.raises(ValueError, match="'audio' is not loaded; loaded: text"):
        train.previews("audio")
    # the labels are still validated in full
    with open(tmp_path / "label.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows[0]["label"] = "9"
    write_csv(tmp_path / "label.csv", rows)
    with pytest.raises(DatasetError, match="line 2, field 'label': 9.0 is outside"):
        load_dataset(tmp_path, "mosi", modalities=["text"])


def test_audio_only_load_needs_no_text_column(tmp_path: Path) -> None:
    rows = make_mosi_like(tmp_path)
    write_csv(tmp_path / "label.csv", rows, ["video_id", "clip_id", "label", "mode"])
    with pytest.raises(DatasetError, match="field 'text': column is missing"):
        load_dataset(tmp_path, "mosi")
    train = load_dataset(tmp_path, "mosi", modalities=["audio"]).split("train")
    assert set(train[0]) == {"id", "audio", "labels"}
    assert train.lengths.tolist() == train.previews("audio") == [8000, 12000, 16000]


def test_unknown_modality_and_kind_errors(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path, "mosi", modalities=["text", "vision", "pulse"])
    assert err.value.problems == [
        f"dataset kind 'mosi' cannot provide modality {m!r}; its modalities are text, audio, video"
        for m in ("vision", "pulse")
    ]
    with pytest.raises(DatasetError, match="no modality requested"):
        load_dataset(tmp_path, "mosi", modalities=[])
    with pytest.raises(ValueError, match="unknown dataset kind 'iemocap'; registered kinds: "):
        load_dataset(tmp_path, "iemocap")
    with pytest.raises(registry.ConfigError, match="unknown key\\(s\\) 'audio_folder'"):
        load_dataset(tmp_path, "mosi", audio_folder="wav")
    with pytest.raises(ValueError, match="max_items must be at least 1"):
        load_dataset(tmp_path, "mosi", max_items=0)


def test_max_items_keeps_the_first_rows_of_each_split_after_validating_all(
    tmp_path: Path,
) -> None:
    make_mosi_like(tmp_path)
    ds = load_dataset(tmp_path, "mosi", max_items=2)
    assert ds.split("train").ids == ["03bSnISJMiM$_$1", "03bSnISJMiM$_$2"]  # file order
    assert (len(ds.split("valid")), len(ds.split("test"))) == (1, 1)
    assert [len(ds.split("train")[i]["audio"]) for i in range(2)] == [8000, 12000]
    assert len(load_dataset(tmp_path, "mosi", max_items=1).rows) == 3
    (tmp_path / "wav/03bSnISJMiM/10.wav").unlink()  # the third train row: past the cut
    with pytest.raises(DatasetError, match="line 4, field 'audio': no audio file"):
        load_dataset(tmp_path, "mosi", max_items=1)


def test_report_counts_what_loading_does_to_real_audio(tmp_path: Path) -> None:
    make_sims_like(tmp_path)
    # 8 kHz stereo, 7 s: resampled, downmixed and cut; replaces the 8 s 16 kHz mono clip
    (tmp_path / "wav/video_0002/0004.wav").unlink()
    sf.write(
        tmp_path / "wav/video_0002/0004.wav", tone(7.0, 8000, channels=2), 8000, subtype="PCM_16"
    )
    # 8 kHz mono, 1 s: resampled only; replaces the 16 kHz FLAC
    (tmp_path / "wav/video_0001/0002.flac").unlink()
    sf.write(tmp_path / "wav/video_0001/0002.wav", tone(1.0, 8000), 8000, subtype="PCM_16")
    ds = load_dataset(tmp_path, "sims")
    assert ds.report == {
        "clips resampled to 16 kHz": 3,  # 44.1 kHz 0001, 8 kHz 0002 and 0004
        "clips downmixed to mono": 2,  # 0001 and 0004
        "clips cut to 6 s": 1,  # 0004
    }
    test = ds.split("test")
    assert test.previews("audio") == test.lengths.tolist() == [96000]
    clip = test[0]["audio"]
    assert clip.shape == (96000,) and clip.dtype == np.float32
    assert abs(float(np.abs(clip).max()) - 0.375) < 0.02  # mean of 0.5 and 0.25 amplitude
    assert load_dataset(tmp_path, "sims", max_audio_seconds=8.0).report == {
        "clips resampled to 16 kHz": 3,
        "clips downmixed to mono": 2,
    }
    # the report covers the kept rows only: 0001, 0003 and 0004, not the 8 kHz 0002
    assert load_dataset(tmp_path, "sims", max_items=1).report == {
        "clips resampled to 16 kHz": 2,
        "clips downmixed to mono": 2,
        "clips cut to 6 s": 1,
    }
    assert load_dataset(tmp_path, "sims", modalities=["text"]).report == {}
    # 16 kHz mono clips within the cap: nothing to report
    plain = tmp_path / "plain"
    make_mosi_like(plain)
    assert load_dataset(plain, "mosi").report == {}


def test_collate_falls_back_to_m_for_a_head_the_dataset_lacks(tmp_path: Path) -> None:
    make_sims_like(tmp_path)
    train = load_dataset(tmp_path, "sims", modalities=["text"]).split("train")
    items = [train[0], train[1]]
    batch = collate(items, {"text": CharTextEncoder(CharTextEncoder.Config())}, ["T", "V", "M"])
    assert list(batch["targets"]) == ["T", "V", "M"]
    torch.testing.assert_close(batch["targets"]["T"], torch.tensor([0.6, -1.0]))  # own label
    torch.testing.assert_close(batch["targets"]["V"], torch.tensor([0.8, -0.8]))  # M's
    torch.testing.assert_close(batch["targets"]["M"], torch.tensor([0.8, -0.8]))


def test_a_kind_subclass_without_load_or_bundle_says_so() -> None:
    class Half(DatasetKind):
        language, scheme, modalities, needs_path = "en", "mosi", ("text",), False

    with pytest.raises(NotImplementedError, match="Half does not implement load"):
        Half().load(None, modalities=["text"])
    with pytest.raises(NotImplementedError, match="Half has no bundled dataset"):
        Half().resolve_root(None)
    assert Half().resolve_root("~/x") == Path("~/x").expanduser()
