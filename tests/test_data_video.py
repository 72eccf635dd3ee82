"""The ``video`` modality of the MMSA layout: ``Raw/<video>/<clip>.mp4`` (real H.264 files
written with PyAV), ``label_V``, the clean errors and the skip option for missing and corrupt
videos, ``mmml-bench extract-frames`` (real subprocesses), and ``--encoder video=<timm>``."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from data_helpers import make_mosi_like, make_sims_like, make_video
from fake_dists import BENCH

from mmml_core.data import DatasetError, load_dataset
from mmml_core.data.video import frames_info, read_frames, sample_frames
from mmml_core.testing import write_tiny_dataset

pytestmark = pytest.mark.plugins(
    "mmml-encoders-video", "mmml-encoders-hf", "mmml-fusion-transformer"
)


def _rows(root: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(open(root / "label.csv", encoding="utf-8")))


def _with_videos(root: Path, n_frames: int = 12) -> list[dict[str, str]]:
    rows = _rows(root)
    for i, r in enumerate(rows):
        make_video(root / "Raw" / r["video_id"] / f"{r['clip_id']}.mp4", n_frames + i % 3, level=i)
    return rows


def bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=600, cwd=cwd)


def test_videos_load_as_paths_with_label_v_falling_back_to_label(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    _with_videos(tmp_path)
    ds = load_dataset(tmp_path, "mosi", modalities=["text", "video"])
    assert ds.heads == ("M", "T", "A", "V") and ds.modalities == ("text", "video")
    assert ds.report == {"clips decoded from video files (Raw/)": len(ds.rows)}
    train = ds.split("train")
    item = train[0]
    assert item["video"] == str(
        tmp_path / "Raw" / train.rows[0].video_id / f"{train.rows[0].clip_id}.mp4"
    )
    assert item["labels"]["V"] == item["labels"]["M"]  # MOSI: label_V empty in every row
    assert train.previews("video")[0] == {"path": item["video"], "fps": None, "frames": None}
    frames = sample_frames(item["video"], fps=2.0)  # 12 frames at 10 fps: t = 0, 0.5, 1.0
    assert frames.shape == (3, 48, 64, 3)
    # the default modalities are still text and audio: video is loaded only when asked for
    assert load_dataset(tmp_path, "mosi", modalities=["text"]).heads == ("M", "T", "A")


def test_label_v_is_required_where_the_kind_requires_modality_labels(tmp_path: Path) -> None:
    make_sims_like(tmp_path)
    rows = _with_videos(tmp_path)
    csv_path = tmp_path / "label.csv"
    ds = load_dataset(tmp_path, "sims", modalities=["text", "video"])
    want = [float(r["label_V"]) for r in rows]
    assert [r.label_V for r in ds.rows] == want
    assert [ds.split("train")[i]["labels"]["V"] for i in range(len(ds.split("train")))] == [
        float(r["label_V"]) for r in rows if r["mode"] == "train"
    ]
    assert ds.split("train").labels("V").tolist() == pytest.approx(
        [float(r["label_V"]) for r in rows if r["mode"] == "train"]
    )
    rows[1]["label_V"] = ""
    with open(csv_path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path, "sims", modalities=["text", "video"])
    assert err.value.problems == [
        f"{csv_path} line 3, field 'label_V': is required for this dataset kind"
    ]
    # label_V is read only when video is loaded
    assert load_dataset(tmp_path, "sims", modalities=["text"]).rows[0].label_V is None


def test_missing_and_corrupt_videos_name_the_row_and_can_be_skipped(tmp_path: Path) -> None:
    make_mosi_like(tmp_path)
    rows = _with_videos(tmp_path)
    gone = tmp_path / "Raw" / rows[0]["video_id"] / f"{rows[0]['clip_id']}.mp4"
    gone.unlink()
    corrupt = tmp_path / "Raw" / rows[1]["video_id"] / f"{rows[1]['clip_id']}.mp4"
    corrupt.write_bytes(b"not a video at all" * 10)
    csv_path = tmp_path / "label.csv"
    with pytest.raises(DatasetError) as err:
        load_dataset(tmp_path, "mosi", modalities=["text", "video"])
    problems = err.value.problems
    assert len(problems) == 2
    assert problems[0].startswith(f"{csv_path} line 2, field 'video': no video file ")
    assert str(gone.with_suffix("")) in problems[0]
    assert problems[1].startswith(f"{csv_path} line 3, field 'video': {corrupt}: unreadable video")
    assert "data.skip_unusable=true" in err.value.hint and "video" in err.value.hint
    ds = load_dataset(tmp_path, "mosi", modalities=["text", "video"], skip_unusable=True)
    assert [(d["line"], d["video_id"]) for d in ds.dropped] == [
        (2, rows[0]["video_id"]),
        (3, rows[1]["video_id"]),
    ]
    assert ds.report["rows dropped (unusable video)"] == 2
    assert [d["fields"] for d in ds.dropped] == [["video"], ["video"]]
    from mmml_core.validate import describe_dropped

    assert "2 row(s) dropped because their video is missing" in describe_dropped(ds.dropped)
    assert len(ds.rows) == len(rows) - 2
    # a text-only run never looks at the videos
    assert len(load_dataset(tmp_path, "mosi", modalities=["text"]).rows) == len(rows)
    (tmp_path / "Raw").rename(tmp_path / "elsewhere")
    with pytest.raises(DatasetError, match="video folder does not exist"):
        load_dataset(tmp_path, "mosi", modalities=["video"])


def test_extract_frames_writes_the_sampled_frames_and_the_reader_uses_them(tmp_path: Path) -> None:
    root = write_tiny_dataset(tmp_path / "ds", {"train": 4, "valid": 2, "test": 2})
    rows = _with_videos(root, n_frames=25)  # 2.5 s at 10 fps
    first = bench("extract-frames", str(root), "--workers", "2", "--no-progress", "--size", "32")
    assert first.returncode == 0, first.stderr
    assert "extracted 8, failed 0, total with frames 8" in first.stdout
    r = rows[0]
    out = root / "frames" / r["video_id"] / f"{r['clip_id']}.npz"
    frames, fps = read_frames(out)
    want = sample_frames(root / "Raw" / r["video_id"] / f"{r['clip_id']}.mp4", 2.0, None, 32)
    assert fps == 2.0 and frames.shape == (5, 32, 43, 3)  # t = 0 .. 2 s; 48x64 -> 32x43
    np.testing.assert_array_equal(frames, want)
    assert frames_info(out).frames == 5
    again = bench("extract-frames", str(root), "--no-progress", "--size", "32")
    assert (
        again.returncode == 0
        and "8 already extracted" in again.stdout
        and "0 to extract" in again.stdout
    )
    mixed = bench("extract-frames", str(root), "--fps", "4", "--size", "32")
    assert mixed.returncode == 2 and "made with other settings" in mixed.stderr
    assert "Traceback" not in mixed.stderr
    ds = load_dataset(root, "mosi", modalities=["video"])
    assert ds.report == {"clips read from extracted frames (frames/)": 8}
    assert ds.split("test").previews("video")[0]["fps"] == 2.0
    raw = load_dataset(root, "mosi", modalities=["video"], video_dir="Raw")
    assert raw.report == {"clips decoded from video files (Raw/)": 8}
    out.unlink()  # a half-finished extraction is an error, not a mix of frames and videos
    with pytest.raises(DatasetError, match="finish the extraction"):
        load_dataset(root, "mosi", modalities=["video"])


def test_frames_at_another_rate_are_refused_before_training(tmp_path: Path) -> None:
    root = write_tiny_dataset(tmp_path / "ds", {"train": 4, "valid": 2, "test": 2})
    _with_videos(root)
    made = bench("extract-frames", str(root), "--fps", "4", "--size", "32", "--no-progress")
    assert made.returncode == 0, made.stderr
    args = ["--dataset", str(root), "--dataset-kind", "mosi", "--modalities", "text,video"]
    args += ["--encoder", "text=roberta", "text.checkpoint=random:tiny", "--dry-run"]
    proc = bench(*args, cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "frames extracted at 4 fps, but the encoder samples at 2 fps" in proc.stderr
    ok = bench(*args, "video.fps=4", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr


def test_encoder_flag_names_a_timm_backbone_of_the_video_encoder() -> None:
    proc = bench(
        "--encoder", "video=test_convnext", "--modalities", "text,audio,video", "--dry-run"
    )
    if proc.returncode != 0:  # the demo set has no video yet in an old checkout
        pytest.fail(proc.stderr)
    resolved = json.loads(proc.stdout)
    video = resolved["model"]["encoders"]["video"]
    assert video["name"] == "video" and video["config"]["backbone"] == "test_convnext"
    assert resolved["model"]["heads"] == ["M", "T", "A", "V"]
    bad = bench(
        "--encoder", "video=no_such_model_xyz", "--modalities", "text,audio,video", "--dry-run"
    )
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "no_such_model_xyz" in bad.stderr


def test_train_then_predict_with_video_and_with_video_alone(tmp_path: Path) -> None:
    root = write_tiny_dataset(tmp_path / "ds", {"train": 8, "valid": 4, "test": 4})
    rows = _with_videos(root, n_frames=8)
    run = tmp_path / "run"
    args = ["--dataset", str(root), "--dataset-kind", "mosi", "--modalities", "text,video"]
    args += ["--encoder", "text=roberta", "text.checkpoint=random:tiny", "video.image_size=32"]
    args += ["--seeds", "1", "train.max_epochs=1", "--no-progress", "--out", str(run)]
    trained = bench(*args, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "data: clips decoded from video files (Raw/): 16" in trained.stderr
    ckpt = run / "seed-1" / "best_loss"
    clip = root / "Raw" / rows[0]["video_id"] / f"{rows[0]['clip_id']}.mp4"
    both = bench(
        "predict", str(ckpt), "--text", "the film was great", "--video", str(clip), "--json"
    )
    assert both.returncode == 0, both.stderr
    assert set(json.loads(both.stdout)) == {"M", "T", "V"}
    missing = bench("predict", str(ckpt), "--video", str(tmp_path / "gone.mp4"))
    assert missing.returncode == 2 and "gone.mp4" in missing.stderr
    assert "Traceback" not in missing.stderr
    from mmml_core.predict import Predictor

    predictor = Predictor(ckpt)
    alone = predictor.predict(video=str(clip))  # the video subnet head alone
    assert set(alone) == {"V"}
    assert alone["V"] == pytest.approx([json.loads(both.stdout)["V"]], abs=1e-5)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="broken.mp4"):
        predictor.predict(video=str(broken))
