"""The bundled demo set: loads through the reader, matches its generator and its README."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from mmml_core.data import demo_root, load_dataset
from mmml_core.data.make_demo import ECHO_REPLIES, LEVELS, PREDICATES, label_report, plan


@pytest.fixture(scope="module")
def demo():
    return load_dataset(None, "demo")


def test_demo_loads_through_the_reader(demo) -> None:
    assert (demo.kind, demo.scheme, demo.language, demo.has_modality_labels) == (
        "demo",
        "sims",
        "en",
        True,
    )
    sizes = {s: len(demo.split(s)) for s in ("train", "valid", "test")}
    assert sizes == {"train": 270, "valid": 90, "test": 90}
    for row in demo.rows:
        assert -1.0 <= row.label <= 1.0
        assert row.label_T in LEVELS and row.label_A in LEVELS
        assert row.label == pytest.approx((row.label_T + row.label_A) / 2)
    ordinary = [r.text for r in demo.rows if r.text not in ECHO_REPLIES]
    assert len(set(ordinary)) == len(ordinary)  # every ordinary sentence once
    test = demo.split("test")
    for i in (0, 45, 89):
        item = test[i]
        assert item["audio"].dtype == np.float32 and item["audio"].ndim == 1
        assert 0.5 * 16000 <= len(item["audio"]) <= 3.5 * 16000
        info = sf.info(str(test.rows[i].audio_path))
        assert (info.samplerate, info.channels) == (16000, 1)
    assert (demo.root / "label.csv").is_file() and demo.root == demo_root()


def test_demo_is_small() -> None:
    size = sum(p.stat().st_size for p in demo_root().rglob("*") if p.is_file())
    assert size < 5_000_000


def test_demo_csv_is_what_the_generator_plans_for_seed_0(demo) -> None:
    planned = plan(0)
    assert [
        (u.video_id, u.clip_id, u.text, u.label_T, u.label_A, u.label, u.mode) for u in planned
    ] == [(r.video_id, r.clip_id, r.text, r.label_T, r.label_A, r.label, r.mode) for r in demo.rows]
    assert plan(1) != planned
    assert set(csv.DictReader(open(demo.root / "label.csv", encoding="utf-8")).fieldnames) == {
        "video_id",
        "clip_id",
        "text",
        "label",
        "label_T",
        "label_A",
        "label_V",
        "annotation",
        "mode",
    }


def test_text_label_follows_the_documented_lexicon(demo) -> None:
    """An ordinary clip's predicate sets its label_T; an echo clip's text is one of the few
    replies that refer back and its label_T is the previous clip's (same video), never after
    another echo or first; every reply follows clips of more than one text label, so its
    words alone cannot tell its label."""
    previous = None
    previous_was_echo = False
    echoes = 0
    labels_after: dict[str, set[float]] = {}
    for row in demo.rows:
        found = [
            lvl
            for lvl, phrases in PREDICATES.items()
            for p in phrases
            if row.text.endswith(f" {p}.")
        ]
        if row.text in ECHO_REPLIES:
            echoes += 1
            labels_after.setdefault(row.text, set()).add(row.label_T)
            assert found == [], row.text
            assert previous is not None and previous.video_id == row.video_id, row.text
            assert previous_was_echo is False, row.text
            assert row.label_T == previous.label_T, row.text
            previous_was_echo = True
        else:
            assert found == [row.label_T], row.text
            previous_was_echo = False
        previous = row
    assert 0.15 * len(demo.rows) < echoes < 0.3 * len(demo.rows)
    assert set(labels_after) == set(ECHO_REPLIES)
    assert all(len(levels) == 3 for levels in labels_after.values()), labels_after


def test_readme_reports_the_label_only_bounds(demo) -> None:
    planned = plan(0)
    report = label_report(
        [(r.label_T, r.label_A, r.label, r.mode) for r in demo.rows], [u.echo for u in planned]
    )
    assert report in (demo.root / "README.md").read_text(encoding="utf-8")
    lines = report.splitlines()
    assert lines[4].startswith("| both | 100.0 | 100.0 | 100.0 | 0.000 | 1.000 |")
    without = [ln for ln in lines if ln.startswith("| both, without context |")]
    assert len(without) == 1
    acc2 = float(without[0].split("|")[2])
    assert acc2 < 95.0  # context is needed for the echo clips


def _f0(wave: np.ndarray, sr: int = 16000) -> float:
    """Median autocorrelation pitch (Hz) over the loud 40 ms frames of a clip."""
    f0s = []
    for start in range(0, len(wave) - 640, 320):
        x = wave[start : start + 640] - wave[start : start + 640].mean()
        if np.sqrt(np.mean(x**2)) < 0.05 * np.abs(wave).max():
            continue
        ac = np.correlate(x, x, "full")[639:]
        lag = sr // 400 + int(np.argmax(ac[sr // 400 : sr // 60]))  # 60..400 Hz
        f0s.append(sr / lag)
    return float(np.median(f0s))


def test_audio_label_is_carried_by_pitch_and_rate(demo) -> None:
    train = demo.split("train")
    by_level: dict[float, list[tuple[float, float]]] = {lvl: [] for lvl in LEVELS}
    spoken = {(u.video_id, u.clip_id): u.speech for u in plan(0)}
    for i, row in enumerate(train.rows[:60]):
        wave = train[i]["audio"]
        words = len(spoken[row.video_id, row.clip_id].split())  # the sentence the audio says
        by_level[row.label_A].append((_f0(wave), len(wave) / 16000 / words))
    pitch = [np.median([p for p, _ in by_level[lvl]]) for lvl in LEVELS]
    sec_per_word = [np.median([s for _, s in by_level[lvl]]) for lvl in LEVELS]
    assert pitch[0] < pitch[1] < pitch[2]  # low, normal, high voice
    assert sec_per_word[0] > sec_per_word[1] > sec_per_word[2]  # slow, normal, fast
