"""Progress and the run's log: one line per epoch on stderr even with ``--no-progress``, the
same lines (with the header, the data report and the results table) in ``<run>/log.txt`` and
``--log-file``, appended on ``--resume``; with progress on, a bar within each epoch. Real
``mmml-bench`` runs on the bundled demo set, two epochs of 16 items per split."""

from __future__ import annotations

import json
import re

import pytest
import torch
from fake_dists import bench

from mmml_core.engine import current_lrs, format_lrs

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

TINY = ["--seeds", "1", "train.max_epochs=2", "data.max_items=16"]
EPOCH_LINE = re.compile(
    r"^seed 1 epoch (\d)/2: train \d+\.\d{3} valid \d+\.\d{3} acc2 \d\.\d{3} "
    r"lr \d\.\de[-+]\d\d \(\d+\.\d s, \d+ samples/s\)$"
)


def _epoch_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if EPOCH_LINE.match(ln)]


def _logged(path) -> list[str]:
    """The messages of a log file, without the time stamp that starts each record."""
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")
    return [stamp.sub("", ln) for ln in path.read_text(encoding="utf-8").splitlines()]


def test_without_progress_each_epoch_logs_one_line_to_stderr_and_the_run_log(tmp_path):
    out, extra = tmp_path / "run", tmp_path / "logs" / "extra.log"
    proc = bench(*TINY, "--no-progress", "--out", str(out), "--log-file", str(extra))
    assert proc.returncode == 0, proc.stderr
    lines = _epoch_lines(proc.stderr)
    assert [EPOCH_LINE.match(ln).group(1) for ln in lines] == ["1", "2"], proc.stderr
    assert "step/s" not in proc.stderr and "%|" not in proc.stderr, "no progress bar"
    assert not _epoch_lines(proc.stdout) and "| lowest valid loss | M (fused) |" in proc.stdout

    logged = _logged(out / "log.txt")
    assert _epoch_lines("\n".join(logged)) == lines
    assert logged[0].startswith("mmml-bench: demo (demo), encoders") and logged[0].endswith(
        f"-> {out}"
    )
    assert any(ln.startswith("data: ") for ln in logged), "the data report"
    assert "| lowest valid loss | M (fused) |" in "\n".join(logged), "the results table"
    assert _logged(extra) == logged, "--log-file holds the same log"
    history = json.loads((out / "seed-1" / "results.json").read_text())["history"]
    for row, line in zip(history, lines, strict=True):  # the numbers the run recorded
        assert f"train {row['train_loss']:.3f} valid {row['valid_loss']:.3f}" in line

    again = bench(*TINY, "--no-progress", "--out", str(out), "--resume", "--json")
    assert again.returncode == 0, again.stderr
    assert set(json.loads(again.stdout)) >= {"aggregate", "config"}, "stdout: the JSON alone"
    resumed = _logged(out / "log.txt")
    assert resumed[: len(logged)] == logged, "appended"
    assert resumed[len(logged)].endswith(f"-> {out} (resumed)")
    assert any("seed 1: finished earlier" in ln for ln in resumed[len(logged) :])


def test_with_progress_a_bar_counts_the_steps_of_each_epoch(tmp_path):
    out = tmp_path / "run"
    proc = bench(*TINY, "train.batch_size=8", "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads(proc.stdout)) >= {"aggregate", "config"}, "stdout: the JSON alone"
    err = proc.stderr  # text mode: tqdm's carriage returns read as line ends
    for epoch in (1, 2):  # 16 training items in batches of 8: 2 steps
        steps = re.findall(rf"^epoch {epoch}: +\d+%\|.*\| (\d)/2 \[.*samples/s\]", err, re.M)
        assert steps[-1:] == ["2"], err
    assert [EPOCH_LINE.match(ln).group(1) for ln in _epoch_lines(err)] == ["1", "2"], err
    assert len(_epoch_lines("\n".join(_logged(out / "log.txt")))) == 2
    raw = (out / "log.txt").read_bytes()
    assert b"\r" not in raw and b"step/s" not in raw, "no progress bar in the log"


def test_learning_rates_print_once_when_shared_else_per_group():
    w = [torch.nn.Parameter(torch.zeros(1)) for _ in range(4)]
    one = torch.optim.AdamW(w, lr=1e-3)
    assert current_lrs(one) == {"0": 1e-3} and format_lrs(current_lrs(one)) == "lr 1.0e-03"
    groups = [
        {"params": [w[0]], "lr": 1e-5, "name": "text"},
        {"params": [w[1]], "lr": 2e-5, "name": "audio"},
        {"params": [w[2]], "lr": 1e-4, "name": "fusion"},
        {"params": [w[3]], "lr": 1e-4},  # no name: its index
    ]
    lrs = current_lrs(torch.optim.AdamW(groups))
    assert format_lrs(lrs) == "lr text=1.0e-05 audio=2.0e-05 fusion=1.0e-04 3=1.0e-04"
    same = [{**g, "lr": 5e-4} for g in groups]
    assert format_lrs(current_lrs(torch.optim.AdamW(same))) == "lr 5.0e-04"
