"""The run layer as users meet it: configuration layers, `--dry-run` catching every mistake
before anything trains, faults as one clean error, run folders that never collide, and the
data report. CLI checks run the real `mmml-bench`, in process (``cli.main``) where only the
exit code and messages matter, as a subprocess where the process boundary does."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from data_helpers import tone, write_csv
from fake_dists import bench
from harness_data import make_learnable_mosi

from mmml_core import cli
from mmml_core.run import RunFolderError, open_run_folder
from mmml_core.runconfig import resolve

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer", "mmml-broken-audio")

TINY_ENCODERS = ["text.checkpoint=random:tiny", "audio.checkpoint=random:tiny"]


def main(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def mosi(tmp_path_factory) -> Path:
    return make_learnable_mosi(tmp_path_factory.mktemp("mosi"), {"train": 8, "valid": 4, "test": 4})


# -- --dry-run catches each mistake, and several at once --------------------------------------


@pytest.mark.parametrize(
    ("args", "key", "words"),
    [
        (["fusion.layers=-1"], "fusion.layers [set by fusion.layers=-1]", "at least 1"),
        (["fusion.heads=5"], "fusion.heads [set by fusion.heads=5]", "not divisible by heads=5"),
        (["fusion.dropout=2"], "fusion.dropout [set by fusion.dropout=2]", "[0, 1)"),
        (["audio.checkpoint=random:huge"], "audio [set by audio.checkpoint=random:huge]", "preset"),
        (
            ["text.checkpoint=/no/such/dir"],
            "text [set by text.checkpoint=/no/such/dir]",
            "does not exist",
        ),
        (["train.lr=nan"], "train.lr [set by train.lr=nan]", "finite"),
        (["train.lr=inf"], "train.lr [set by train.lr=inf]", "finite"),
        (
            ["--dataset", "/no/such/data", "--dataset-kind", "mosi", *TINY_ENCODERS],
            "data.dataset [set by --dataset /no/such/data]",
            "folder does not exist",
        ),
        (["--heads", "M,X"], "heads [set by --heads M,X]", "unknown head"),
        (
            ["--encoder", "audio=roberta"],
            "audio [set by --encoder audio=roberta]",
            "encodes 'text'",
        ),
    ],
)
def test_dry_run_catches(capsys, args, key, words):
    code, out, err = main(capsys, "--dry-run", *args)
    assert code == 2, err
    assert key in err and words in err, err
    assert "Traceback" not in err and out == ""


def test_dry_run_catches_a_missing_audio_file_and_an_unreachable_checkpoint(capsys, tmp_path):
    data = make_learnable_mosi(tmp_path / "d", {"train": 4, "valid": 2, "test": 2})
    missing = next((data / "wav").rglob("*.wav"))
    missing.unlink()
    code, _, err = main(
        capsys,
        "--dry-run",
        "--dataset", str(data),
        "--dataset-kind", "mosi",
        "text.checkpoint=random:tiny",  # the audio encoder keeps its hub default: unreachable
    )  # fmt: skip
    assert code == 2
    assert "data.dataset [set by --dataset" in err and "no audio file" in err
    assert str(missing.with_suffix("")) in err and "line " in err
    assert "audio [set by dataset kind 'mosi'" in err and "facebook/data2vec-audio-base" in err


def test_dry_run_reports_every_problem_at_once():
    """The subprocess a user runs: five mistakes in three layers, one report, exit 2."""
    proc = bench(
        "--dry-run",
        "--dataset", "/no/such/data",
        "--dataset-kind", "mosi",
        "fusion.layers=-1", "fusion.heads=5", "fusion.dropout=2",
        "audio.checkpoint=random:huge", "text.checkpoint=random:tiny", "train.lr=nan",
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    err = proc.stderr
    assert "problems in the run configuration" in err
    for key in ("audio [set by audio.checkpoint=random:huge]", "train.lr [set by train.lr=nan]"):
        assert key in err, err
    assert "data.dataset [set by --dataset /no/such/data]" in err
    # the fusion's widths and heads need the encoders; its other values are checked anyway
    assert "fusion: widths and heads not checked" in err
    assert "fusion.layers [set by fusion.layers=-1]: layers must be at least 1" in err
    assert "fusion.dropout [set by fusion.dropout=2]" in err
    proc = bench("--dry-run", "fusion.layers=-1", "fusion.heads=5", "fusion.dropout=2")
    assert proc.returncode == 2
    assert proc.stderr.count("[set by fusion.") == 3, proc.stderr


def test_dry_run_prints_the_resolved_configuration_and_the_data_report(capsys):
    code, out, err = main(capsys, "--dry-run", "--encoder", "data2vec", "--fusion", "cross_attn")
    assert code == 0, err
    resolved = json.loads(out)
    fusion = resolved["model"]["fusion"]["config"]
    # heads follow from the width the encoders give (64 for random:tiny): the documented rule
    assert fusion["input_dims"] == {"text": 64, "audio": 64} and fusion["heads"] == 4
    assert fusion["layers"] == 2  # the demo kind's defaults
    assert resolved["train"]["lr"] == 1e-3 and resolved["seeds"] == [1, 11, 111]
    assert "data:" in err and "nothing trained" in err


def test_layers_are_merged_in_order_and_remember_their_origin():
    cfg = resolve(
        [
            {"model": {"fusion": {"name": "cross_attn", "config": {"layers": 3}}}},
            {"train": {"lr": 2e-4}, "model": {"fusion": "cross_attn"}},  # same name keeps config
        ]
    )
    assert cfg.model.fusion.config["layers"] == 3 and cfg.train.lr == 2e-4
    assert cfg.origins["model.fusion.config.layers"] == "layer 1"
    assert cfg.origins["train.lr"] == "layer 2"
    assert cfg.origins["train.batch_size"] == "dataset kind 'demo' defaults"
    replaced = resolve([{"model": {"fusion": {"name": "cross_attn", "config": {"layers": 3}}}},
                        {"model": {"fusion": "concat"}}])  # fmt: skip
    assert replaced.model.fusion.name == "concat" and replaced.model.fusion.config == {}


# -- faults: one clean error each ---------------------------------------------------------------


def test_a_selected_plugin_that_raises_at_import_is_one_clean_error(tmp_path):
    from fake_dists import install

    site = tmp_path / "site"
    install(
        site,
        "mmml-broken-audio",
        "0.3",
        {"mmml_core.encoders": {"wobbly": "mmml_wobbly:Wobbly"}},
        {"mmml_wobbly": "raise ImportError('libwobble.so: cannot open shared object file')\n"},
    )
    proc = bench("--dry-run", "--encoder", "audio=wobbly", site=site)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "encoder 'wobbly' (from mmml-broken-audio 0.3) is broken" in proc.stderr
    assert "libwobble.so" in proc.stderr
    ok = bench("--dry-run", site=site)  # not selected: nothing else breaks
    assert ok.returncode == 0, ok.stderr


def test_unreadable_label_csv_is_a_clean_error(tmp_path, capsys):
    root = tmp_path / "data"
    (root / "label.csv").mkdir(parents=True)  # a folder where the CSV should be
    code, _, err = main(
        capsys, "--dry-run", "--dataset", str(root), "--dataset-kind", "mosi", *TINY_ENCODERS
    )
    assert code == 2 and "label.csv" in err and "Traceback" not in err
    (root / "label.csv").rmdir()
    (root / "label.csv").write_bytes(b"video_id,clip_id\n\xff\xfe\xfa bad bytes\n")
    code, _, err = main(
        capsys, "--dry-run", "--dataset", str(root), "--dataset-kind", "mosi", *TINY_ENCODERS
    )
    assert code == 2 and "label.csv" in err and "UTF-8" in err


def test_an_audio_folder_that_is_a_file_is_a_clean_error(tmp_path, capsys):
    data = make_learnable_mosi(tmp_path / "d", {"train": 4, "valid": 2, "test": 2})
    import shutil

    shutil.rmtree(data / "wav")
    (data / "wav").write_text("not a folder")
    code, _, err = main(
        capsys, "--dry-run", "--dataset", str(data), "--dataset-kind", "mosi", *TINY_ENCODERS
    )
    assert code == 2 and str(data / "wav") in err and "Traceback" not in err


def test_a_diverging_run_stops_naming_the_epoch_and_keeps_its_checkpoints(mosi, tmp_path):
    out = tmp_path / "run"
    proc = bench(
        "--dataset", str(mosi), "--dataset-kind", "mosi", "--seeds", "1", "--out", str(out),
        "--no-progress", "--loss", "mse", "--fusion", "concat", *TINY_ENCODERS,
        "head.hidden=16", "head.hidden2=8", "train.lr=1e12", "train.max_epochs=6",
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "epoch" in proc.stderr and "seed 1" in proc.stderr
    kept = [p for p in (out / "seed-1").iterdir() if p.name in ("best_loss", "best_acc")]
    for folder in kept:
        assert (folder / "model.safetensors").is_file()


# -- run folders ----------------------------------------------------------------------------


def test_runs_started_in_the_same_second_get_different_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(time, "strftime", lambda fmt, *a: "20261128-120000")
    cfg = resolve([{"seeds": [1]}])
    with (
        open_run_folder(None, cfg, resume=False) as a,
        open_run_folder(None, cfg, resume=False) as b,
    ):
        assert a != b and a.is_dir() and b.is_dir()
        assert b.name == a.name + "-2"


def test_a_folder_in_use_is_refused_to_a_second_process(tmp_path):
    cfg = resolve([{"seeds": [1]}])
    out = tmp_path / "run"
    with open_run_folder(out, cfg, resume=False) as folder:
        (folder / "config.json").write_text("{}")
        proc = bench("--out", str(out), "--resume", "--seeds", "1", "data.max_items=4")
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert f"{out} is in use by mmml-bench process" in proc.stderr
        with pytest.raises(RunFolderError, match="in use"):
            with open_run_folder(out, cfg, resume=True):
                pass
    with open_run_folder(out, cfg, resume=True):  # released: usable again
        pass


def test_nothing_is_written_when_validation_fails(tmp_path, capsys):
    out = tmp_path / "run"
    code, _, _ = main(capsys, "--out", str(out), "fusion.heads=5")
    assert code == 2 and not out.exists()


# -- the data: only the modalities used, and what was done to it ------------------------------


def test_text_only_run_on_a_dataset_without_any_audio(tmp_path):
    root = tmp_path / "textonly"
    root.mkdir()
    rows = []
    for mode, n in (("train", 8), ("valid", 4), ("test", 4)):
        for i in range(n):
            good = i % 2 == 0
            rows.append(
                {
                    "video_id": f"{mode}{i // 3}",
                    "clip_id": str(i),
                    "text": "a great film" if good else "an awful film",
                    "label": "2.0" if good else "-2.0",
                    "mode": mode,
                }
            )
    write_csv(root / "label.csv", rows)
    proc = bench(
        "--dataset", str(root), "--dataset-kind", "mosi", "--modalities", "text",
        "--seeds", "1", "--out", str(tmp_path / "run"), "--no-progress",
        "text.checkpoint=random:tiny", "train.max_epochs=1",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| lowest valid loss | T (text subnet) |" in proc.stdout
    assert not (root / "wav").exists()


def test_the_run_reports_what_it_did_to_the_data(tmp_path):
    root = tmp_path / "mixed"
    rows = []
    clips = [  # (seconds, rate, channels)
        (0.5, 16000, 1),
        (0.5, 8000, 2),  # resampled and downmixed
        (2.5, 16000, 1),  # cut to the 2 s limit below
        (0.004, 16000, 1),  # 64 samples: shorter than the HF front end's 400-sample field
    ]
    for i, (seconds, sr, channels) in enumerate(clips * 3):
        mode = ("train", "train", "valid", "test")[i % 4]
        row = {
            "video_id": f"v{i}",
            "clip_id": "1",
            "text": ("so very good " * 60) if i == 0 else "fine",
            "label": "1.0" if i % 2 else "-1.0",
            "mode": mode,
        }
        rows.append(row)
        path = root / "wav" / row["video_id"] / "1.wav"
        path.parent.mkdir(parents=True)
        sf.write(path, tone(seconds, sr, channels=channels), sr)
    write_csv(root / "label.csv", rows)
    proc = bench(
        "--dataset", str(root), "--dataset-kind", "mosi", "--dry-run",
        "data.max_audio_seconds=2", *TINY_ENCODERS,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    err = proc.stderr
    assert "resampled" in err and "downmixed" in err and "cut" in err
    assert "truncated to 96 tokens: 1" in err
    assert "shorter than 400 samples" in err
    out = tmp_path / "run"
    proc = bench(
        "--dataset", str(root), "--dataset-kind", "mosi", "--seeds", "1", "--out", str(out),
        "--no-progress", "--fusion", "concat", "data.max_audio_seconds=2", *TINY_ENCODERS,
        "train.max_epochs=1", "head.hidden=8", "head.hidden2=4",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "results.json").read_text())["data_report"]
    counts = {k: v for k, v in report.items()}
    assert sum(v for k, v in counts.items() if "resampled" in k) == 3
    assert sum(v for k, v in counts.items() if "downmixed" in k) == 3
    assert sum(v for k, v in counts.items() if "cut" in k) == 3
    assert sum(v for k, v in counts.items() if "truncated" in k) == 1
    assert sum(v for k, v in counts.items() if "shorter" in k) == 3
    assert np.isfinite(
        json.loads((out / "results.json").read_text())["aggregate"]["best_loss"]["M"]["MAE"][0]
    )
