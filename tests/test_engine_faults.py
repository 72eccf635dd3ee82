"""The engine when training goes wrong: a diverging seed stops with ``TrainingDiverged`` and
keeps what earlier epochs wrote; ``TrainConfig`` rejects out-of-range numbers by name.

The runs are real: tiny random encoders (``random:tiny``) with ``concat`` fusion on a small
synthetic MOSI-style dataset, driven through ``train_seed`` on CPU. Divergence is real too,
from optimizer settings that blow up (no patched loss).
"""

from __future__ import annotations

import json
import math
import pickle
from pathlib import Path
from typing import Any

import pytest
import torch
from fake_dists import plugins_enabled
from safetensors.torch import load_file, save_file

from mmml_core.checkpoint import load_model
from mmml_core.data import load_dataset
from mmml_core.engine import TrainConfig, TrainingDiverged, train_seed
from mmml_core.model import ComponentSpec, ModelSpec
from mmml_core.testing import write_tiny_dataset

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

with plugins_enabled("mmml-encoders-hf"):  # ModelSpec checks its names when it is made
    SPEC = ModelSpec(
        encoders={
            "text": ComponentSpec("roberta", {"checkpoint": "random:tiny"}),
            "audio": ComponentSpec("data2vec", {"checkpoint": "random:tiny"}),
        },
        fusion=ComponentSpec("concat"),
        head=ComponentSpec("mlp", {"hidden": 16, "hidden2": 8}),
    )
MSE = ComponentSpec("mse")

#: AdamW's decoupled decay multiplies every weight by (1 - lr * weight_decay) = -2 per step:
#: the weights flip sign and double each step until the loss overflows, a few epochs in.
UNSTABLE = {"lr": 1.0, "weight_decay": 3.0}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors gain nothing from intra-op threads (and spin-waits slow a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Any:
    root = write_tiny_dataset(tmp_path_factory.mktemp("tiny"), {"train": 8, "valid": 4, "test": 4})
    return load_dataset(root, "mosi")


def config(**overrides: Any) -> TrainConfig:
    """CPU (deterministic kernels: the bit-for-bit comparisons hold); patience as long as the
    epoch cap, so a rising validation loss does not stop a run before it diverges."""
    base = {"batch_size": 4, "max_epochs": 40, "patience": 40, "device": "cpu"}
    return TrainConfig(**{**base, **overrides})


def finite_weights(path: Path) -> bool:
    return all(
        bool(torch.isfinite(t).all())
        for t in load_file(str(path)).values()
        if t.is_floating_point()
    )


# -- divergence ------------------------------------------------------------------------------


def test_huge_learning_rate_diverges_in_the_first_epoch_and_writes_nothing(dataset, tmp_path):
    out = tmp_path / "seed"
    with pytest.raises(TrainingDiverged) as info:
        train_seed(SPEC, MSE, dataset, config(lr=1e10), 7, out, progress=False)
    exc = info.value
    assert (exc.seed, exc.epoch) == (7, 1)
    assert exc.loss in ("train_loss", "valid_loss", "valid_preds") and not math.isfinite(exc.value)
    assert exc.checkpoints == {} and exc.state is None and exc.state_epoch == 0
    assert str(exc).startswith("seed 7 diverged at epoch 1: ")
    assert "no checkpoint was written" in str(exc)
    for name in ("state", "best_loss", "best_acc", "results.json"):
        assert not (out / name).exists(), name


def test_unstable_run_keeps_the_last_good_epoch(dataset, tmp_path):
    out = tmp_path / "diverged"
    with pytest.raises(TrainingDiverged) as info:
        train_seed(SPEC, MSE, dataset, config(**UNSTABLE), 1, out, progress=False)
    exc = info.value
    good = exc.epoch - 1
    assert exc.seed == 1 and good >= 1, "the run must diverge after at least one good epoch"
    assert exc.loss in ("train_loss", "valid_loss", "valid_preds") and not math.isfinite(exc.value)
    msg = str(exc)
    assert msg.startswith(f"seed 1 diverged at epoch {exc.epoch}: ")
    assert "the checkpoints from earlier epochs were kept" in msg
    assert f"the resumable state at {out / 'state'} holds epoch {good}" in msg
    assert not (out / "results.json").exists()

    # Both checkpoints are from earlier epochs, listed with their paths, and load (their
    # weights match the SHA-256 recorded when they were written) with finite weights.
    assert exc.checkpoints == {"best_loss": out / "best_loss", "best_acc": out / "best_acc"}
    for selection, path in exc.checkpoints.items():
        assert 1 <= exc.checkpoint_epochs[selection] <= good
        assert f"{selection} (epoch {exc.checkpoint_epochs[selection]}) at {path}" in msg
        model, _ = load_model(path)
        assert all(bool(torch.isfinite(p).all()) for p in model.parameters())

    # state/ holds the last good epoch, bit for bit what a run capped there leaves.
    state = json.loads((out / "state" / "state.json").read_text())
    assert exc.state == out / "state" and exc.state_epoch == state["epoch"] == good
    assert [row["epoch"] for row in state["history"]] == list(range(1, exc.epoch))
    assert finite_weights(out / "state" / "model.safetensors")
    ref = tmp_path / "capped"
    train_seed(SPEC, MSE, dataset, config(**UNSTABLE, max_epochs=good), 1, ref, progress=False)
    for name in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
        assert (out / "state" / name).read_bytes() == (ref / "state" / name).read_bytes(), name
    ref_state = json.loads((ref / "state" / "state.json").read_text())
    assert state.pop("stopped") is None and ref_state.pop("stopped") == "epoch_cap"
    assert state == ref_state

    # The state resumes: the same settings diverge again at the same epoch.
    with pytest.raises(TrainingDiverged) as again:
        train_seed(SPEC, MSE, dataset, config(**UNSTABLE), 1, out, resume=True, progress=False)
    assert (again.value.epoch, again.value.loss, again.value.state_epoch) == (
        exc.epoch,
        exc.loss,
        good,
    )


def test_non_finite_test_prediction_is_divergence_not_a_metric(dataset, tmp_path):
    out = tmp_path / "seed"
    cfg = config(lr=1e-3, max_epochs=1)
    train_seed(SPEC, MSE, dataset, cfg, 2, out, progress=False)
    results = (out / "results.json").read_text()
    weights = out / "best_acc" / "model.safetensors"
    tensors = load_file(str(weights))
    save_file(
        {
            k: torch.full_like(v, math.nan) if v.is_floating_point() else v
            for k, v in tensors.items()
        },
        str(weights),
    )
    with pytest.raises(TrainingDiverged) as info:
        train_seed(SPEC, MSE, dataset, cfg, 2, out, resume=True, progress=False)
    exc = info.value
    assert (exc.loss, exc.selection, exc.epoch, exc.seed) == ("test_preds", "best_acc", 1, 2)
    assert exc.head in SPEC.heads and math.isnan(exc.value)
    assert "on the test split, so no test metrics were computed" in str(exc)
    assert (out / "results.json").read_text() == results


def test_training_diverged_pickles_with_its_fields(tmp_path):
    exc = TrainingDiverged(
        3,
        5,
        "valid_loss",
        math.inf,
        checkpoints={"best_loss": tmp_path / "best_loss"},
        checkpoint_epochs={"best_loss": 2},
        state=tmp_path / "state",
        state_epoch=4,
    )
    back = pickle.loads(pickle.dumps(exc))
    assert str(back) == str(exc)
    assert (back.seed, back.epoch, back.loss, back.value) == (3, 5, "valid_loss", math.inf)
    assert back.checkpoints == exc.checkpoints and back.state_epoch == 4
    assert isinstance(back, RuntimeError)


# -- TrainConfig -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", math.nan, "lr must be a finite number > 0, got nan"),
        ("lr", math.inf, "lr must be a finite number > 0, got inf"),
        ("lr", 0.0, "lr must be a finite number > 0, got 0.0"),
        ("lr", -1e-5, "lr must be a finite number > 0, got -1e-05"),
        ("lr", "fast", "lr must be a finite number > 0, got 'fast'"),
        ("weight_decay", -0.01, "weight_decay must be a finite number >= 0, got -0.01"),
        ("weight_decay", math.nan, "weight_decay must be a finite number >= 0, got nan"),
        ("grad_clip", 0.0, "grad_clip must be None or a finite number > 0, got 0.0"),
        ("grad_clip", -math.inf, "grad_clip must be None or a finite number > 0, got -inf"),
        ("grad_clip", math.nan, "grad_clip must be None or a finite number > 0, got nan"),
        ("batch_size", 0, "batch_size must be an integer >= 1, got 0"),
        ("batch_size", True, "batch_size must be an integer >= 1, got True"),
        ("eval_batch_size", -4, "eval_batch_size must be an integer >= 1, got -4"),
        ("max_epochs", 0, "max_epochs must be an integer >= 1, got 0"),
        ("max_epochs", 2.5, "max_epochs must be an integer >= 1, got 2.5"),
        ("patience", 0, "patience must be an integer >= 1, got 0"),
        ("num_workers", -1, "num_workers must be an integer >= 0, got -1"),
    ],
)
def test_train_config_names_the_bad_field_and_value(field, value, message):
    with pytest.raises(ValueError) as info:
        TrainConfig(**{field: value})
    assert str(info.value) == message


def test_train_config_lists_every_problem_and_accepts_the_edges():
    with pytest.raises(ValueError) as info:
        TrainConfig(lr=math.nan, patience=0)
    assert str(info.value) == (
        "lr must be a finite number > 0, got nan; patience must be an integer >= 1, got 0"
    )
    cfg = TrainConfig(lr=1, weight_decay=0, grad_clip=None, num_workers=0, batch_size=1)
    assert cfg.lr == 1 and cfg.grad_clip is None
    assert TrainConfig(grad_clip=0.5).grad_clip == 0.5
