"""``train.compile``: the training step through ``torch.compile`` (Inductor, on this CPU)
computes the loss the eager step computes. Real training through ``train_seed`` on a small
openSMILE audio model (one 16-wide layer: Inductor's compile time grows with the graph), two
epochs of two batches, dropout on. Inductor's ``fallback_random`` makes the compiled graph
draw its dropout masks from the same generator as eager PyTorch, so the two runs see the same
masks; what remains is the compiled kernels' rounding (tolerance 1e-5 relative)."""

from __future__ import annotations

import pytest
import torch
from fake_dists import plugins_enabled

from mmml_core.data import load_dataset
from mmml_core.engine import TrainConfig, train_seed
from mmml_core.model import ComponentSpec, ModelSpec
from mmml_core.testing import write_tiny_dataset

pytestmark = pytest.mark.plugins("mmml-audio-opensmile")


def test_compiled_training_gives_the_eager_losses(tmp_path, monkeypatch):
    import torch._inductor.config as inductor

    monkeypatch.setattr(inductor, "fallback_random", True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = write_tiny_dataset(tmp_path / "data", {"train": 8, "valid": 4, "test": 4})
    with plugins_enabled("mmml-audio-opensmile"):
        dataset = load_dataset(root, "mosi")
        config = {"feature_set": "eGeMAPSv02", "layers": 1, "dim": 16, "heads": 2}
        config.update(ff_dim=32, cache_dir=str(tmp_path / "smile"))
        spec = ModelSpec(encoders={"audio": ComponentSpec("opensmile", config)})
        runs = {}
        try:
            for compiled in (False, True):
                cfg = TrainConfig(batch_size=4, max_epochs=2, patience=2, device="cpu")
                cfg.compile = compiled
                out = tmp_path / f"compile-{compiled}"
                runs[compiled] = train_seed(
                    spec, ComponentSpec("l1"), dataset, cfg, 1, out, progress=False
                )
        finally:
            torch.set_num_threads(threads)
            torch._dynamo.reset()
    eager, compiled = runs[False], runs[True]
    assert compiled["train"]["compile"] is True and eager["train"]["compile"] is False
    for a, b in zip(eager["history"], compiled["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-5)
        assert b["valid_loss"] == pytest.approx(a["valid_loss"], rel=1e-5)
    assert eager["history"][0]["train_loss"] != eager["history"][1]["train_loss"], "it trains"
    for sel in ("best_loss", "best_acc"):
        a, b = eager["selection"][sel], compiled["selection"][sel]
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-5)
