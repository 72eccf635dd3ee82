"""``--tensorboard`` inside ``mmml-bench``: real subprocesses on the bundled demo set (two
epochs, 16 items per split), the event files read back with TensorBoard's own reader; and the
switches, in process."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from mmml_tracking_tensorboard import plugin
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mmml_core import registry

BENCH = str(Path(sys.executable).with_name("mmml-bench"))
# Only the plugins the demo run needs, and this one (whatever else is installed).
PLUGINS = "mmml-encoders-hf,mmml-fusion-transformer,mmml-tracking-tensorboard"
TINY = ["--seeds", "1", "--no-progress", "train.max_epochs=2", "data.max_items=16"]


def bench(*args: str, **env: str) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != plugin.ENV}
    full.update(
        {registry.AUTOLOAD_ENV: "1", registry.PLUGINS_ENV: PLUGINS, "PYTHONUNBUFFERED": "1"},
        **env,
    )
    proc = subprocess.run([BENCH, *args], capture_output=True, text=True, timeout=600, env=full)
    assert proc.returncode == 0, f"mmml-bench {' '.join(args)}\n{proc.stdout}\n{proc.stderr}"
    return proc


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the event files in ``folder``: (step, value) in step order."""
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})  # 0: keep every value
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_a_tracked_run_writes_every_epoch_of_each_seed(tmp_path):
    out = tmp_path / "run"
    proc = bench(*TINY, "--tensorboard", "--out", str(out))
    folder = out / "seed-1" / plugin.FOLDER
    assert list(folder.glob("events.out.tfevents.*")), list(out.rglob("*"))
    assert f"tensorboard: events in {folder}" in proc.stderr
    assert f"tensorboard: events in {folder}" in (out / "log.txt").read_text()

    got = scalars(folder)
    per_epoch = {t: v for t, v in got.items() if not t.startswith("test/")}
    for tag in ("train/loss", "valid/loss", "samples_per_s", "epoch_s"):
        assert tag in per_epoch, sorted(got)
    for head in ("M", "T", "A"):  # the demo's scheme: Acc2, Acc3, Acc5, F1, MAE, Corr
        for metric in ("Acc2", "Acc3", "Acc5", "F1", "MAE", "Corr"):
            assert f"valid/{head}/{metric}" in per_epoch, sorted(got)
    lrs = [t for t in per_epoch if t.startswith("lr/")]
    assert lrs, sorted(got)
    for tag, values in per_epoch.items():
        assert [step for step, _ in values] == [1, 2], tag  # one value per epoch
    for tag in lrs:
        assert all(v > 0 for _, v in per_epoch[tag]), tag

    results = json.loads((out / "seed-1" / "results.json").read_text())
    for key, tag in (("train_loss", "train/loss"), ("valid_loss", "valid/loss")):
        want = [r[key] for r in results["history"]]
        assert [v for _, v in per_epoch[tag]] == pytest.approx(want, rel=1e-6), tag
    acc = [r["valid_acc2"] for r in results["history"]]
    assert [v for _, v in per_epoch["valid/M/Acc2"]] == pytest.approx(acc, rel=1e-6)
    for selection, chosen in results["selection"].items():
        mae = got[f"test/{selection}/M/MAE"]
        assert mae == [(chosen["epoch"], pytest.approx(chosen["test"]["M"]["MAE"], rel=1e-6))]
        assert got[f"test/{selection}/loss"][0][0] == chosen["epoch"]


def test_without_the_flag_nothing_is_written(tmp_path):
    out = tmp_path / "run"
    proc = bench(*TINY, "--out", str(out), "train.max_epochs=1")
    assert (out / "seed-1" / "results.json").is_file()
    assert not list(out.rglob("events.out.tfevents.*")) and not list(out.rglob(plugin.FOLDER))
    assert "tensorboard" not in proc.stderr
    listed = bench("plugins", "--json")
    hooks = {r["name"]: r for r in json.loads(listed.stdout) if r["kind"] == "hook"}
    assert hooks["tensorboard"]["distribution"] == "mmml-tracking-tensorboard"


@pytest.fixture
def fresh(monkeypatch):
    """The plugin's switches as a new process has them."""
    monkeypatch.delenv(plugin.ENV, raising=False)
    monkeypatch.setattr(plugin, "_flag", False)
    yield
    plugin.close_all()


METRICS = {"train/loss": 0.5, "valid/loss": 0.25, "valid/M/Acc2": math.nan, "lr/heads": 1e-3}


@pytest.mark.parametrize(
    ("options", "env", "writes"),
    [
        ({"tensorboard": False}, None, False),
        ({}, None, False),
        ({"tensorboard": True}, None, True),
        ({"tensorboard": False}, "1", True),
        ({}, "0", False),
    ],
)
def test_the_flag_or_the_environment_turns_it_on(
    fresh, monkeypatch, tmp_path, options, env, writes
):
    if env is not None:
        monkeypatch.setenv(plugin.ENV, env)
    plugin.mmml_configure_run(run_config={}, options=options)
    seed_dir = tmp_path / "seed-1"
    for epoch in (1, 2):
        plugin.mmml_epoch_end(seed_dir=str(seed_dir), seed=1, epoch=epoch, metrics=METRICS)
    results = {
        "selection": {
            "best_loss": {"epoch": 2, "test_loss": 0.3, "test": {"M": {"MAE": 0.4, "Corr": None}}}
        }
    }
    plugin.mmml_seed_end(seed_dir=str(seed_dir), seed=1, results=results)
    assert (seed_dir / plugin.FOLDER).exists() == writes
    if writes:
        got = scalars(seed_dir / plugin.FOLDER)
        assert got["train/loss"] == [(1, 0.5), (2, 0.5)]
        assert [s for s, v in got["valid/M/Acc2"]] == [1, 2] and math.isnan(
            got["valid/M/Acc2"][0][1]
        )
        assert got["test/best_loss/M/MAE"] == [(2, pytest.approx(0.4))]
        assert "test/best_loss/M/Corr" not in got, "an undefined metric is left out"
        assert plugin._writers == {}, "the seed's writer is closed"
