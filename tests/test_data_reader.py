"""The MMSA-layout reader on real folders made by the tests (docs/data.md)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from data_helpers import COLUMNS, make_mosi_like, make_sims_like, write_csv

from mmml_core.data import DatasetError, load_audio, load_dataset


def test_mosi_like_folder_loads(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    ds = load_dataset(tmp_path, "mosi")
    assert (ds.kind, ds.scheme, ds.language, ds.has_modality_labels) == (
        "mosi",
        "mosi",
        "en",
        False,
    )
    assert ds.max_text_tokens == 96
    train, valid, test = ds.split("train"), ds.split("valid"), ds.split("test")
    assert (len(train), len(valid), len(test)) == (3, 1, 1)
    assert train.ids == ["03bSnISJMiM$_$1", "03bSnISJMiM$_$2", "03bSnISJMiM$_$10"]
    item = train[2]
    assert item["id"] == "03bSnISJMiM$_$10" and item["text"] == "okay i guess"
    # no label_T/label_A in MOSI: every head's target is the overall label
    assert item["labels"] == {"M": 0.0, "T": 0.0, "A": 0.0}
    assert train[0]["labels"] == {"M": 2.4, "T": 2.4, "A": 2.4}
    assert test[0]["labels"]["M"] == -3.0
    assert item["audio"].dtype == np.float32 and item["audio"].ndim == 1
    # clip i was written with 0.5 + 0.25 i seconds at 16 kHz
    assert [len(train[i]["audio"]) for i in range(3)] == [8000, 12000, 16000]
    assert train.lengths.tolist() == [8000, 12000, 16000]
    np.testing.assert_allclose(train.labels("M"), [2.4, -1.8, 0.0], rtol=1e-6)


def test_sims_like_folder_ids_labels_and_audio_formats(tmp_path: Path) -> None:
    make_sims_like(tmp_path)
    ds = load_dataset(tmp_path, "sims")
    assert (ds.scheme, ds.language, ds.has_modality_labels, ds.max_text_tokens) == (
        "sims",
        "zh",
        True,
        64,
    )
    train = ds.split("train")
    assert train.ids == ["video_0001$_$0001", "video_0001$_$0002"]  # zero padding kept
    assert train.rows[0].clip_id == "0001" and train.rows[0].line == 2
    first = train[0]
    assert first["text"] == "我很开心"
    assert first["labels"] == {"M": 0.8, "T": 0.6, "A": 1.0}
    # 1 s of 44.1 kHz stereo -> 16000 mono samples, the mean of the channels (0.5 and 0.25
    # amplitude) so a peak near 0.375
    assert first["audio"].shape == (16000,)
    assert abs(float(np.abs(first["audio"]).max()) - 0.375) < 0.01
    assert train[1]["audio"].shape == (12000,)  # FLAC
    assert ds.split("valid")[0]["audio"].shape == (8000,)  # Ogg Vorbis
    test = ds.split("test")
    assert test[0]["audio"].shape == (96000,)  # 8 s truncated to the default 6 s
    assert test.lengths.tolist() == [96000]
    # clip 0001 is 44.1 kHz stereo, 0004 is 8 s long
    assert ds.report == {
        "clips resampled to 16 kHz": 1,
        "clips downmixed to mono": 1,
        "clips cut to 6 s": 1,
    }
    whole_ds = load_dataset(tmp_path, "sims", max_audio_seconds=None)
    whole = whole_ds.split("test")
    assert whole[0]["audio"].shape == (128000,) and whole.lengths.tolist() == [128000]
    assert "clips cut to 6 s" not in whole_ds.report
    for split in (train, ds.split("valid"), test):
        assert [len(split[i]["audio"]) for i in range(len(split))] == split.lengths.tolist()


def test_load_audio_resamples_downmixes_and_truncates(tmp_path: Path) -> None:
    t = np.arange(22050) / 22050
    left = 0.6 * np.sin(2 * np.pi * 300 * t)
    sf.write(tmp_path / "a.wav", np.stack([left, -left], axis=1), 22050, subtype="FLOAT")
    silent = load_audio(tmp_path / "a.wav")  # the two channels cancel when averaged
    assert silent.dtype == np.float32 and silent.shape == (16000,)
    assert float(np.abs(silent).max()) < 1e-6
    sf.write(tmp_path / "b.wav", left, 22050, subtype="FLOAT")
    wave = load_audio(tmp_path / "b.wav", max_seconds=0.25)
    assert wave.shape == (4000,)
    # a 300 Hz tone stays a 300 Hz tone: the spectrum peaks at bin 300 * N / 16000
    full = load_audio(tmp_path / "b.wav")
    peak_hz = np.argmax(np.abs(np.fft.rfft(full))) * 16000 / len(full)
    assert abs(peak_hz - 300) <= 1.0


def test_never_drops_a_row(tmp_path: Path) -> None:
    rows = make_mosi_like(tmp_path)
    ds = load_dataset(tmp_path, "mosi")
    with open(tmp_path / "label.csv", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert len(ds.rows) == len(rows) == len(csv_rows)
    assert sorted(r.id for r in ds.rows) == sorted(
        f"{r['video_id']}$_${r['clip_id']}" for r in rows
    )
    assert sum(len(ds.split(s)) for s in ("train", "valid", "test")) == len(rows)


def _edit_csv(root: Path, line: int, **changes: str) -> None:
    """Change fields of the record on CSV ``line`` (header = line 1)."""
    with open(root / "label.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    rows[line - 2].update(changes)
    write_csv(root / "label.csv", rows)


def _error(root: Path, kind: str) -> str:
    with pytest.raises(DatasetError) as info:
        load_dataset(root, kind)
    assert isinstance(info.value, ValueError)
    return str(info.value)


def test_missing_column_names_file_line_and_column(tmp_path: Path) -> None:
    rows = make_mosi_like(tmp_path)
    write_csv(tmp_path / "label.csv", rows, [c for c in COLUMNS if c != "mode"])
    msg = _error(tmp_path, "mosi")
    assert f"{tmp_path / 'label.csv'} line 1, field 'mode': column is missing" in msg


def test_sims_requires_modality_label_columns(tmp_path: Path) -> None:
    rows = make_sims_like(tmp_path)
    write_csv(tmp_path / "label.csv", rows, [c for c in COLUMNS if c not in ("label_T", "label_A")])
    msg = _error(tmp_path, "sims")
    assert "line 1, field 'label_T': column is missing" in msg
    assert "line 1, field 'label_A': column is missing" in msg


@pytest.mark.parametrize(
    ("line", "changes", "expected"),
    [
        (4, {"mode": "val"}, "line 4, field 'mode': unknown mode 'val'"),
        (2, {"label": "positive"}, "line 2, field 'label': is not a number: 'positive'"),
        (3, {"label": ""}, "line 3, field 'label': is not a number: ''"),
        (5, {"label": "3.5"}, "line 5, field 'label': 3.5 is outside [-3, 3]"),
        (5, {"label": "nan"}, "line 5, field 'label': nan is outside [-3, 3]"),
        (
            3,
            {"clip_id": "1"},
            "line 3, field 'video_id/clip_id': duplicate id '03bSnISJMiM$_$1' (first on line 2)",
        ),
        (6, {"video_id": ""}, "line 6, field 'video_id': is empty"),
        (
            4,
            {"label_T": "1.0"},
            "line 2, field 'label_T': is empty here but filled in 1 other row(s)",
        ),
    ],
)
def test_malformed_mosi_rows(tmp_path: Path, line: int, changes: dict, expected: str) -> None:
    make_mosi_like(tmp_path)
    _edit_csv(tmp_path, line, **changes)
    msg = _error(tmp_path, "mosi")
    assert f"{tmp_path / 'label.csv'} {expected}" in msg


@pytest.mark.parametrize(
    ("line", "changes", "expected"),
    [
        (2, {"label": "1.2"}, "line 2, field 'label': 1.2 is outside [-1, 1]"),
        (3, {"label_A": "-1.4"}, "line 3, field 'label_A': -1.4 is outside [-1, 1]"),
        (4, {"label_T": ""}, "line 4, field 'label_T': is required for this dataset kind"),
    ],
)
def test_malformed_sims_rows(tmp_path: Path, line: int, changes: dict, expected: str) -> None:
    make_sims_like(tmp_path)
    _edit_csv(tmp_path, line, **changes)
    assert f"{tmp_path / 'label.csv'} {expected}" in _error(tmp_path, "sims")


def test_missing_and_unreadable_audio(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    (tmp_path / "wav/03bSnISJMiM/2.wav").unlink()
    (tmp_path / "wav/0h-zjBukYpk/1.wav").write_bytes(b"RIFF not really a wave file" * 10)
    msg = _error(tmp_path, "mosi")
    assert "2 problem(s)" in msg
    assert (
        f"{tmp_path / 'label.csv'} line 3, field 'audio': no audio file "
        f"{tmp_path / 'wav/03bSnISJMiM/2'}.*"
    ) in msg
    assert (
        f"{tmp_path / 'label.csv'} line 5, field 'audio': unreadable audio "
        f"{tmp_path / 'wav/0h-zjBukYpk/1.wav'}"
    ) in msg


def test_empty_audio_and_two_files_for_one_clip(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    sf.write(tmp_path / "wav/03bSnISJMiM/1.wav", np.zeros(0, dtype=np.float32), 16000)
    sf.write(tmp_path / "wav/03bSnISJMiM/2.flac", np.zeros(100, dtype=np.float32), 16000)
    msg = _error(tmp_path, "mosi")
    assert "line 2, field 'audio': audio" in msg and "is empty (0 samples)" in msg
    assert "line 3, field 'audio': several audio files for one clip: ['2.flac', '2.wav']" in msg


def test_missing_audio_folder_is_one_problem(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    (tmp_path / "wav").rename(tmp_path / "elsewhere")
    msg = _error(tmp_path, "mosi")
    assert "1 problem(s)" in msg and "audio folder does not exist" in msg
    assert "mmml-bench extract-audio" in msg
    assert len(load_dataset(tmp_path, "mosi", audio_dir="elsewhere").rows) == 5


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    _edit_csv(tmp_path, 2, mode="dev", label="high")
    _edit_csv(tmp_path, 6, label="-4")
    (tmp_path / "wav/03bSnISJMiM/10.wav").unlink()
    with pytest.raises(DatasetError) as info:
        load_dataset(tmp_path, "mosi")
    assert len(info.value.problems) == 4
    msg = str(info.value)
    for expected in (
        "line 2, field 'mode'",
        "line 2, field 'label'",
        "line 6, field 'label'",
        "line 4, field 'audio'",
    ):
        assert expected in msg


def test_wrong_field_count_and_multiline_text_line_numbers(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    path = tmp_path / "label.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    # record 1 gets a two-line quoted text, so the records below start one line later
    lines[1] = lines[1].replace("it was great", '"it was\ngreat"')
    lines[3] = lines[3] + ",extra"  # the record now on CSV line 5
    lines.append("")  # a blank line holds no record and is no problem
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    msg = _error(tmp_path, "mosi")
    assert "1 problem(s)" in msg
    assert f"{path} line 5, field '*': expected 9 fields, found 10" in msg


def test_row_of_empty_fields_is_not_skipped(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    with open(tmp_path / "label.csv", "a", encoding="utf-8") as f:
        f.write(",,,,,,,,\n")
    msg = _error(tmp_path, "mosi")
    assert "line 7, field 'video_id': is empty" in msg and "line 7, field 'mode'" in msg


def test_missing_split_folder_and_kind_errors(tmp_path: Path) -> None:
    rows = make_mosi_like(tmp_path)
    write_csv(tmp_path / "label.csv", [r for r in rows if r["mode"] != "valid"])
    assert "no row has mode 'valid'" in _error(tmp_path, "mosi")
    assert "folder does not exist" in _error(tmp_path / "nope", "mosi")
    (tmp_path / "label.csv").unlink()
    assert "label.csv: file does not exist" in _error(tmp_path, "mosi")
    with pytest.raises(ValueError, match="unknown dataset kind 'iemocap'"):
        load_dataset(tmp_path, "iemocap")
    with pytest.raises(ValueError, match="needs a root folder"):
        load_dataset(None, "mosi")


def test_label_csv_that_is_not_utf8_names_file_and_line(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    path = tmp_path / "label.csv"
    lines = path.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(b"okay", "ok\u00e9".encode("latin-1"))  # record on line 4
    path.write_bytes(b"\n".join(lines))
    msg = _error(tmp_path, "mosi")
    assert "1 problem(s)" in msg
    assert f"{path} line 4: not UTF-8 text (byte b'\\xe9'" in msg


def test_label_csv_that_is_a_folder_or_unparseable(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    (tmp_path / "label.csv").unlink()
    (tmp_path / "label.csv").mkdir()
    assert f"{tmp_path / 'label.csv'}: is a folder, not a file" in _error(tmp_path, "mosi")
    (tmp_path / "label.csv").rmdir()
    make_mosi_like(tmp_path / "big")
    _edit_csv(tmp_path / "big", 3, text="x" * (csv.field_size_limit() + 1))
    msg = _error(tmp_path / "big", "mosi")
    assert f"{tmp_path / 'big/label.csv'} line 3: not readable as CSV: field larger" in msg


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever the mode"
)
def test_permission_denied_label_csv_and_audio_folders(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    csv_path, video = tmp_path / "label.csv", tmp_path / "wav/03bSnISJMiM"
    try:
        csv_path.chmod(0)
        assert f"{csv_path}: cannot be read: Permission denied" in _error(tmp_path, "mosi")
        csv_path.chmod(0o644)
        video.chmod(0)
        msg = _error(tmp_path, "mosi")
        assert "1 problem(s)" in msg  # one for the folder, none for each of its 3 clips
        assert f"{video}: cannot list this folder: Permission denied" in msg
        video.chmod(0o755)
        (tmp_path / "wav").chmod(0)
        assert f"{tmp_path / 'wav'}: cannot list this folder" in _error(tmp_path, "mosi")
    finally:
        for p in (csv_path, video, tmp_path / "wav"):
            p.chmod(0o755 if p.is_dir() else 0o644)


def test_unlistable_folders_and_unreadable_csv_are_problems(tmp_path: Path, monkeypatch) -> None:
    """The same paths as above through injected errors, so that they run as root too."""
    make_mosi_like(tmp_path)
    real_listdir, real_read_bytes = os.listdir, Path.read_bytes
    denied: set[Path] = set()

    def listdir(path):
        if Path(path) in denied:
            raise PermissionError(13, "Permission denied", str(path))
        return real_listdir(path)

    def read_bytes(self):
        if self in denied:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    denied.add(tmp_path / "wav/03bSnISJMiM")
    msg = _error(tmp_path, "mosi")
    assert "1 problem(s)" in msg
    assert f"{tmp_path / 'wav/03bSnISJMiM'}: cannot list this folder: Permission denied" in msg
    denied.add(tmp_path / "wav")
    assert f"{tmp_path / 'wav'}: cannot list this folder" in _error(tmp_path, "mosi")
    assert len(load_dataset(tmp_path, "mosi", modalities=["text"]).rows) == 5  # no audio read
    denied.add(tmp_path / "label.csv")
    msg = _error(tmp_path, "mosi")
    assert f"{tmp_path / 'label.csv'}: cannot be read: Permission denied" in msg
