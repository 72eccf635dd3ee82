"""The bundled demo set: loads through the reader, matches its generator and its README."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from mmml_core.data import demo_root, load_dataset
from mmml_core.data.make_demo import (
    ECHO_REPLIES,
    LEVELS,
    PREDICATES,
    VIDEO_FPS,
    VIDEO_SIZE,
    clip_frames,
    label_report,
    plan,
    write_video,
)


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
    readme = (demo.root / "README.md").read_text(encoding="utf-8")
    assert report in readme
    with_video = label_report(
        [(r.label_T, r.label_A, r.label, r.mode) for r in demo.rows],
        [u.echo for u in planned],
        [u.label_V for u in planned],
    )
    assert with_video.startswith(report + "\n") and with_video in readme
    video_rows = with_video.splitlines()[len(report.splitlines()) :]
    assert [ln.split(" |")[0] for ln in video_rows] == [
        "| video only (label_V)",
        "| audio + video (label_A, label_V)",
        "| text + audio + video, without context",
    ]
    assert video_rows[0].split("|")[2:] == report.splitlines()[2].split("|")[2:]  # = text
    assert video_rows[2].endswith("| 100.0 | 100.0 | 100.0 | 0.000 | 1.000 |")  # no context
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


# --- video: Raw/<video_id>/<clip_id>.mp4, a drawn face whose mouth shows label_V ---


def _decode(path, rgb: bool = True) -> tuple[np.ndarray | list, list[float], float]:
    """Every frame of a video (RGB, or with ``rgb=False`` its (height, width)), their
    presentation times and the stream's frame rate."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        rate = float(stream.average_rate)
        frames, times = [], []
        for f in container.decode(stream):
            frames.append(f.to_ndarray(format="rgb24") if rgb else (f.height, f.width))
            times.append(f.time)
    return (np.stack(frames) if rgb else frames), times, rate


def test_every_clip_has_a_video_as_long_as_its_audio(demo) -> None:
    videos = sorted(p for p in (demo.root / "Raw").rglob("*") if p.is_file())
    assert len(videos) == len(demo.rows)
    total = 0
    for row in demo.rows:
        found = list((demo.root / "Raw" / row.video_id).glob(f"{row.clip_id}.*"))
        assert [p.name for p in found] == [f"{row.clip_id}.mp4"], found
        frames, times, rate = _decode(found[0], rgb=False)
        assert set(frames) == {(VIDEO_SIZE, VIDEO_SIZE)} and rate == VIDEO_FPS
        assert times == pytest.approx([k / VIDEO_FPS for k in range(len(frames))], abs=1e-6)
        duration = sf.info(str(row.audio_path)).duration
        assert abs(len(frames) / VIDEO_FPS - duration) <= 1 / VIDEO_FPS, row
        total += found[0].stat().st_size
    assert total < 1_500_000  # the repository stays light


def test_label_V_is_label_T_the_feeling_the_face_shows(demo) -> None:
    rows = list(csv.DictReader(open(demo.root / "label.csv", encoding="utf-8")))
    assert all(r["label_V"] == r["label_T"] for r in rows)
    assert all(u.label_V == u.label_T for u in plan(0))


def test_videos_are_deterministic(demo, tmp_path) -> None:
    """The same seed gives the same frames, encoded twice to the same decoded frames; the
    committed videos are these (up to the encoder build: a tolerance, not equality)."""
    planned = plan(0)
    for index in (0, 1, 237, 449):
        u = planned[index]
        committed = demo.root / "Raw" / u.video_id / f"{u.clip_id}.mp4"
        duration = sf.info(str(demo.root / "wav" / u.video_id / f"{u.clip_id}.ogg")).duration
        decoded = []
        for attempt in ("a", "b"):
            path = tmp_path / f"{index}{attempt}.mp4"
            write_video(clip_frames(u, index, 0, duration), path)
            decoded.append(_decode(path)[0])
        np.testing.assert_array_equal(decoded[0], decoded[1])
        ours = _decode(committed)[0]
        assert ours.shape == decoded[0].shape
        assert np.abs(ours.astype(np.int16) - decoded[0]).mean() < 2.0
    other = clip_frames(planned[0], 0, 1, 1.0)  # another seed: another face
    assert not np.array_equal(other, clip_frames(planned[0], 0, 0, 1.0))


def test_video_carries_label_V_and_no_other_label(demo) -> None:
    """Ridge least squares on 16x16 grey frames (the frames the video encoders sample, at 2
    fps, averaged over the clip) trained on train: it reads label_V off the face on test, and
    finds nothing of label_A (the nuisance factors and the audio label are independent)."""
    from mmml_core.data.video import sample_frames

    def features(rows) -> np.ndarray:
        out = []
        for row in rows:
            path = demo.root / "Raw" / row.video_id / f"{row.clip_id}.mp4"
            rgb = sample_frames(path, fps=2, max_frames=8).astype(np.float32)
            grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
            f, h, w = grey.shape
            out.append(grey.reshape(f, 16, h // 16, 16, w // 16).mean((0, 2, 4)).ravel())
        return np.array(out)

    train, test = demo.split("train").rows, demo.split("test").rows
    x_train, x_test = features(train), features(test)
    mu, sd = x_train.mean(0), x_train.std(0) + 1e-6
    x_train, x_test = (x_train - mu) / sd, (x_test - mu) / sd
    levels = np.array(LEVELS)
    csv_rows = csv.DictReader(open(demo.root / "label.csv", encoding="utf-8"))
    labels = {(r["video_id"], r["clip_id"]): r for r in csv_rows}

    def accuracy(label: str) -> float:
        y_train, y_test = (
            np.array([float(labels[r.video_id, r.clip_id][label]) for r in rows])
            for rows in (train, test)
        )
        a = np.c_[x_train, np.ones(len(x_train))]
        onehot = (y_train[:, None] == levels[None]).astype(np.float64)
        w = np.linalg.solve(a.T @ a + np.eye(a.shape[1]), a.T @ onehot)
        pred = levels[np.argmax(np.c_[x_test, np.ones(len(x_test))] @ w, 1)]
        return float(np.mean(pred == y_test))

    acc_v, acc_a = accuracy("label_V"), accuracy("label_A")
    print(f"test accuracy from the face: label_V {acc_v:.3f}, label_A {acc_a:.3f}")
    assert acc_v > 0.9
    assert acc_a < 0.5  # chance is 1/3
