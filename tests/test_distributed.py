"""Several processes through torchrun (docs/training.md#several-processes-torchrun): real
``mmml-bench --nproc 2`` runs, which start ``torchrun`` with two gloo processes on this CPU.

The model is the MMML assembly without a random layer: a frozen text encoder (kept in
evaluation mode), the trained openSMILE audio encoder, the ``cross_attn`` fusion, the fused
head and both subnet heads, all with dropout 0. So a two-process run must compute what one
process computes from the same global batches: the loss of each global batch is the mean over
its items whichever rank holds them. Batch 5 on 16 training items makes a last batch of one
item, which leaves rank 1 without an item (it runs with weight 0). Tolerance: 1e-5 relative
(gradients are summed across the ranks in another order than within one process); the
correlations get an absolute 1e-4, as they divide by the predictions' small spread."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from fake_dists import BENCH, bench

pytestmark = pytest.mark.plugins(
    "mmml-audio-opensmile", "mmml-encoders-hf", "mmml-fusion-transformer"
)

EPOCHS = 4
ARGS = [
    "--seeds",
    "1",
    f"train.max_epochs={EPOCHS}",
    f"train.patience={EPOCHS}",
    "data.max_items=16",
    "train.batch_size=5",
    "train.eval_batch_size=3",
    "--encoder",
    "audio=opensmile",
    "audio.dropout=0",
    "model.frozen=text",
    "train.feature_cache=off",  # the frozen encoder runs in the step, on each rank
    "fusion.dropout=0",
    "fusion.attention_dropout=0",
    "head.dropout=0",
    "subnet_head.dropout=0",
    "--no-progress",
]


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (torchrun starts each rank in a session of its own, so a
    signal to the launcher's process group does not reach them)."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        for task in os.listdir(f"/proc/{parent}/task"):
            try:
                with open(f"/proc/{parent}/task/{task}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _results(run) -> dict:
    return json.loads((run / "seed-1" / "results.json").read_text())


def _close(a: dict, b: dict) -> None:
    """Histories and test metrics of two runs agree to 1e-5 relative."""
    assert len(a["history"]) == len(b["history"]) == EPOCHS
    for ra, rb in zip(a["history"], b["history"], strict=True):
        for key in ("train_loss", "valid_loss", "valid_acc2"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-5), (ra, rb)
    for sel in ("best_loss", "best_acc"):
        sa, sb = a["selection"][sel], b["selection"][sel]
        assert sb["epoch"] == sa["epoch"]
        assert set(sa["test"]) >= {"M", "T", "A"} and set(sb["test"]) == set(sa["test"])
        for head, metrics in sa["test"].items():
            for metric, value in metrics.items():
                got = sb["test"][head][metric]
                # Corr divides by the predictions' spread, which is small for the frozen text
                # encoder's head: a 1e-7 change of a prediction moves it by ~1e-5 (observed
                # -0.4952252 against -0.4952307), so it gets an absolute 1e-4
                slack = 1e-4 if metric == "Corr" else 1e-7
                assert got == pytest.approx(value, rel=1e-5, abs=slack), (head, metric)


def test_two_processes_match_one_and_a_killed_run_resumes(tmp_path):
    one = tmp_path / "one"
    assert bench(*ARGS, "--out", str(one)).returncode == 0

    run = tmp_path / "two"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.Popen(
        [BENCH, "--nproc", "2", *ARGS, "--out", str(run)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    state = run / "seed-1" / "state" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    for pid in [proc.pid, *_descendants(proc.pid)]:  # the launcher, torchrun and both ranks
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()
    killed_at = json.loads(state.read_text())["epoch"]
    assert 2 <= killed_at < EPOCHS and not (run / "seed-1" / "results.json").exists()

    resumed = bench("--nproc", "2", *ARGS, "--out", str(run), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)  # rank 0 alone prints: stdout is one JSON document
    assert summary["processes"] == 2
    b = _results(run)
    assert b["processes"] == 2
    _close(_results(one), b)
    assert b["throughput"]["train_samples"] == EPOCHS * 16, "each epoch counted once"

    lines = [ln for ln in resumed.stderr.splitlines() if ln.startswith("seed 1 epoch ")]
    resumed_epochs = [int(ln.split()[3].split("/")[0]) for ln in lines]
    assert resumed_epochs == list(range(killed_at + 1, EPOCHS + 1)), resumed.stderr


def test_nproc_is_checked_before_anything_starts(tmp_path):
    bad = bench("--nproc", "0", *ARGS, "--out", str(tmp_path / "r"))
    assert bad.returncode == 2 and "--nproc must be at least 1" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "r").exists()
    wrong = bench("--nproc", "2", *ARGS, "train.lr=-1", "--out", str(tmp_path / "r"))
    assert wrong.returncode == 2 and "train.lr" in wrong.stderr, wrong.stderr
    assert "Traceback" not in wrong.stderr and "torch.distributed" not in wrong.stderr
    assert not (tmp_path / "r").exists()


def test_a_failing_rank_ends_the_run_with_one_error_line(tmp_path):
    """Training that diverges (lr 1, weight decay 3: the weights flip sign and double every
    step) stops every rank; rank 0 alone reports it, with mmml-bench's exit code 2."""
    run = tmp_path / "r"
    proc = bench(
        "--nproc", "2", *ARGS, "train.lr=1.0", "train.weight_decay=3.0", "train.max_epochs=40",
        "train.patience=40", "--out", str(run),
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("mmml-bench: error: seed 1 diverged at epoch") == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "ChildFailedError" not in proc.stderr
    assert (run / "seed-1" / "best_loss" / "model.safetensors").is_file(), "kept"
