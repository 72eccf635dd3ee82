"""Two data-layer recoveries (docs/data.md): re-casing upper-case English transcripts
(``data.recase``) and dropping rows whose audio is unusable (``data.skip_unusable``), on real
folders, in process and through the real ``mmml-bench``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import soundfile as sf
from data_helpers import make_mosi_like, make_sims_like, tone, write_csv
from fake_dists import bench

from mmml_core.data import DatasetError, load_dataset
from mmml_core.data.reader import MOSEI_UNUSABLE, recase_text, upper_case_transcripts
from mmml_core.runconfig import DataConfig
from mmml_core.testing import write_tiny_dataset
from mmml_core.validate import describe_dropped

pytestmark = pytest.mark.plugins("mmml-encoders-hf")  # the CLI runs: roberta, data2vec

UPPER = ["IT WAS GREAT", "SO BORING", "OKAY I GUESS", "LOVED THE CAST", "HATED IT"]
RECASED = ["It was great", "So boring", "Okay i guess", "Loved the cast", "Hated it"]
KEY = "texts re-cased (upper-case transcripts)"


def _set_texts(root: Path, texts: list[str]) -> None:
    with open(root / "label.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for row, text in zip(rows, texts, strict=True):
        row["text"] = text
    write_csv(root / "label.csv", rows)


def _texts(ds) -> list[str]:
    return [r.text for r in ds.rows]


# -- re-casing --------------------------------------------------------------------------------


def test_recase_rule_and_upper_case_share() -> None:
    assert recase_text("A LOT OF SAD PARTS") == "A lot of sad parts"
    assert recase_text("") == "" and recase_text("x") == "x"
    assert recase_text("i LIKED IT, BUT...") == "i liked it, but..."  # first character kept
    # a share of the texts that have cased letters; digits/punctuation/Chinese do not count
    assert upper_case_transcripts(["ONE"] * 9 + ["one"])  # 90%
    assert not upper_case_transcripts(["ONE"] * 8 + ["one"] * 2)
    assert upper_case_transcripts(["ONE", "TWO", "123", "...", "好的"])
    assert not upper_case_transcripts(["我很开心", "123", ""])
    assert not upper_case_transcripts([])


def test_upper_case_mosi_is_recased_under_auto(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    _set_texts(tmp_path, UPPER)
    ds = load_dataset(tmp_path, "mosi")
    assert _texts(ds) == RECASED
    assert [item["text"] for item in ds.split("train")] == RECASED[:3]
    assert ds.split("train").previews("text") == RECASED[:3]
    assert ds.report[KEY] == 5
    # the count is of the kept rows; the decision is over the whole CSV
    small = load_dataset(tmp_path, "mosi", max_items=1)
    assert _texts(small) == ["It was great", "Loved the cast", "Hated it"]
    assert small.report[KEY] == 3
    # a text-only run re-cases the same way; an audio-only run has no text to re-case
    assert _texts(load_dataset(tmp_path, "mosi", modalities=["text"])) == RECASED
    assert KEY not in load_dataset(tmp_path, "mosi", modalities=["audio"]).report


def test_upper_case_mosi_left_alone_when_off(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    _set_texts(tmp_path, UPPER)
    ds = load_dataset(tmp_path, "mosi", recase="off")
    assert _texts(ds) == UPPER
    assert not any(k.startswith("texts re-cased") for k in ds.report)


def test_mixed_case_not_recased_under_auto_but_on_recases_every_text(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    mixed = ["It was GREAT", "SO BORING", "Okay, I guess", "LOVED THE CAST", "Hated it"]
    _set_texts(tmp_path, mixed)  # 2 of 5 upper case: below 90%
    ds = load_dataset(tmp_path, "mosi")
    assert _texts(ds) == mixed and not any(k.startswith("texts re-cased") for k in ds.report)
    on = load_dataset(tmp_path, "mosi", recase="on")
    assert _texts(on) == [
        "It was great",
        "So boring",
        "Okay, i guess",
        "Loved the cast",
        "Hated it",
    ]
    assert on.report["texts re-cased (data.recase=on)"] == 4  # "Hated it" is unchanged


def test_sims_never_recased_under_auto(tmp_path: Path) -> None:
    make_sims_like(tmp_path)
    texts = ["OK 我很开心", "NO WAY 太糟糕了", "还行吧 OK", "不喜欢 BAD"]  # upper case, but zh
    _set_texts(tmp_path, texts)
    ds = load_dataset(tmp_path, "sims")
    assert _texts(ds) == texts
    assert not any(k.startswith("texts re-cased") for k in ds.report)
    assert _texts(load_dataset(tmp_path, "sims", recase="on"))[0] == "Ok 我很开心"


def test_recase_values_are_checked() -> None:
    assert DataConfig().recase == "auto" and DataConfig().skip_unusable is False
    with pytest.raises(ValueError, match="recase must be one of auto, on, off, got 'yes'"):
        DataConfig(recase="yes")
    with pytest.raises(ValueError, match="skip_unusable must be true or false"):
        DataConfig(skip_unusable="yes")  # type: ignore[arg-type]


# -- skipping rows whose audio is unusable ----------------------------------------------------


def _add_rows(root: Path) -> None:
    """Two more rows (valid, test) with audio, so that one row per split can be lost."""
    with open(root / "label.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for clip, mode in (("3", "valid"), ("4", "test")):
        row = {"video_id": "0h-zjBukYpk", "clip_id": clip, "text": "fine", "label": "0.4"}
        rows.append({**row, "mode": mode})
        sf.write(root / f"wav/0h-zjBukYpk/{clip}.wav", tone(0.5, 16000), 16000)
    write_csv(root / "label.csv", rows)


def _break_two(root: Path) -> tuple[Path, Path]:
    missing, corrupt = root / "wav/03bSnISJMiM/2.wav", root / "wav/0h-zjBukYpk/1.wav"
    missing.unlink()
    corrupt.write_bytes(b"RIFF not really a wave file" * 10)
    return missing, corrupt


def _sizes(ds) -> dict[str, int]:
    return {s: len(ds.split(s)) for s in ("train", "valid", "test")}


def test_missing_and_corrupt_audio_fail_by_default_and_drop_with_skip(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    _add_rows(tmp_path)
    assert _sizes(load_dataset(tmp_path, "mosi")) == {"train": 3, "valid": 2, "test": 2}
    missing, corrupt = _break_two(tmp_path)
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path, "mosi")
    msg = str(info.value)
    assert "2 problem(s)" in msg and info.value.hint
    assert f"no audio file {missing.with_suffix('')}.*" in msg
    assert f"unreadable audio {corrupt}" in msg
    assert "set data.skip_unusable=true to drop such clips (the run lists them)" in msg

    ds = load_dataset(tmp_path, "mosi", skip_unusable=True)
    assert _sizes(ds) == {"train": 2, "valid": 1, "test": 2}
    assert "03bSnISJMiM$_$2" not in ds.split("train").ids
    assert "0h-zjBukYpk$_$1" not in ds.split("valid").ids
    assert [(d["video_id"], d["clip_id"], d["mode"], d["line"]) for d in ds.dropped] == [
        ("03bSnISJMiM", "2", "train", 3),
        ("0h-zjBukYpk", "1", "valid", 5),
    ]
    assert "no audio file" in ds.dropped[0]["reason"]
    assert "unreadable audio" in ds.dropped[1]["reason"]
    assert ds.report["rows dropped (unusable audio)"] == 2
    assert [item["id"] for item in ds.split("valid")] == ["0h-zjBukYpk$_$3"]  # loads
    # a text-only run reads no audio: nothing to drop
    assert load_dataset(tmp_path, "mosi", modalities=["text"], skip_unusable=True).dropped == []


def test_empty_audio_is_dropped_and_the_log_line_names_up_to_20(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    sf.write(tmp_path / "wav/03bSnISJMiM/1.wav", tone(0.0, 16000), 16000)
    ds = load_dataset(tmp_path, "mosi", skip_unusable=True)
    assert [d["clip_id"] for d in ds.dropped] == ["1"]
    assert "is empty (0 samples)" in ds.dropped[0]["reason"]
    line = describe_dropped(ds.dropped)
    assert line is not None and "1 row(s) dropped" in line and "03bSnISJMiM/1" in line
    many = [{"video_id": "v", "clip_id": str(i)} for i in range(25)]
    line = describe_dropped(many)
    assert line is not None and "v/19 and 5 more" in line and "v/20" not in line
    assert describe_dropped([]) is None


def test_schema_errors_still_fail_with_skipping_on(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    _add_rows(tmp_path)
    _break_two(tmp_path)
    with open(tmp_path / "label.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows[0]["label"] = "great"
    rows[1]["clip_id"] = rows[0]["clip_id"]  # a duplicate id
    write_csv(tmp_path / "label.csv", rows)
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path, "mosi", skip_unusable=True)
    msg = str(info.value)
    assert "2 problem(s)" in msg  # the label and the duplicate; the audio is not a problem
    assert "field 'label': is not a number: 'great'" in msg and "duplicate id" in msg
    assert "field 'audio'" not in msg


def test_a_split_left_empty_is_an_error(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    (tmp_path / "wav/0h-zjBukYpk/1.wav").unlink()  # the only valid row
    with pytest.raises(DatasetError, match="no row of split 'valid' is left"):
        load_dataset(tmp_path, "mosi", skip_unusable=True)


def test_mosei_hint_names_the_six_clips(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    (tmp_path / "wav/03bSnISJMiM/2.wav").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path, "mosei")
    assert all(clip in str(info.value) for clip in MOSEI_UNUSABLE)
    assert len(MOSEI_UNUSABLE) == 6 and "3aIQUQgawaI/12" in MOSEI_UNUSABLE
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path, "mosi")
    assert "3aIQUQgawaI/12" not in str(info.value)  # MOSI has no such clips


def test_kind_without_the_keywords_refuses_a_non_default_value(tmp_path: Path) -> None:
    from mmml_core.data.kinds import load_options

    class OldKind:
        def load(self, root, *, modalities, max_audio_seconds=6.0, max_items=None): ...

    class AnyKind:
        def load(self, root, **kwargs): ...

    assert load_options(OldKind(), recase="auto", skip_unusable=False) == ({}, [])
    assert load_options(OldKind(), recase="on", skip_unusable=True) == (
        {},
        ["recase", "skip_unusable"],
    )
    assert load_options(AnyKind(), recase="off", skip_unusable=False) == (
        {"recase": "off", "skip_unusable": False},
        [],
    )


# -- through the real mmml-bench --------------------------------------------------------------

TINY = [
    "--dataset-kind",
    "mosi",
    "--fusion",
    "concat",
    "text.checkpoint=random:tiny",
    "audio.checkpoint=random:tiny",
    "--seeds",
    "1",
    "--no-progress",
]


def test_cli_dry_run_reports_recased_texts(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "d", {"train": 4, "valid": 2, "test": 2})
    with open(data / "label.csv", newline="", encoding="utf-8") as f:
        texts = [row["text"].upper() for row in csv.DictReader(f)]
    _set_texts(data, texts)
    proc = bench("--dataset", str(data), *TINY, "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "texts re-cased (upper-case transcripts): 8" in proc.stderr
    assert json.loads(proc.stdout)["data"]["recase"] == "auto"


def test_cli_unusable_audio_exits_2_then_trains_with_skip(tmp_path: Path) -> None:
    data = write_tiny_dataset(tmp_path / "d", {"train": 6, "valid": 3, "test": 3})
    missing, corrupt = data / "wav/vidtrain0/1.wav", data / "wav/vidvalid0/2.wav"
    missing.unlink()
    corrupt.write_bytes(b"not audio at all")
    args = ["--dataset", str(data), *TINY, "train.max_epochs=1", "train.batch_size=4"]
    proc = bench(*args, "--out", str(tmp_path / "refused"))
    assert proc.returncode == 2
    assert f"no audio file {missing.with_suffix('')}.*" in proc.stderr
    assert f"unreadable audio {corrupt}" in proc.stderr
    assert "data.skip_unusable=true" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "refused").exists()

    out = tmp_path / "run"
    proc = bench(*args, "--out", str(out), "data.skip_unusable=true")
    assert proc.returncode == 0, proc.stderr
    line = "(data.skip_unusable): vidtrain0/1, vidvalid0/2"
    assert line in proc.stderr and "2 row(s) dropped" in proc.stderr
    assert line in (out / "log.txt").read_text()
    results = json.loads((out / "results.json").read_text())
    assert results["data_report"]["rows dropped (unusable audio)"] == 2
    assert [(d["video_id"], d["clip_id"], d["mode"]) for d in results["dropped"]] == [
        ("vidtrain0", "1", "train"),
        ("vidvalid0", "2", "valid"),
    ]
    assert results["config"]["data"]["skip_unusable"] is True
