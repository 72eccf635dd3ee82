"""Every registered fusion with every registered audio encoder (and the text encoder) resolves
through the harness's configuration path, builds, and runs a training step on demo items: the
combinations `mmml-bench --encoder X --fusion Y` offers."""

from __future__ import annotations

import pytest
import torch

from mmml_core import registry
from mmml_core.data import load_dataset, make_collate
from mmml_core.model import build_model
from mmml_core.run import resolve

SMALL = {  # small settings per component, so that each combination builds in a moment
    "cross_attn": {"layers": 1, "heads": 2},
    "tfn": {"proj_dim": 8, "hidden": 16},
    "opensmile": {"feature_set": "eGeMAPSv02", "dim": 16, "layers": 1, "cache": False},
    "mel": {"backbone": "cnn8", "width": 8},
}


def _audio_encoders() -> list[str]:
    return [n for n in registry.list("encoder") if registry.load("encoder", n).modality == "audio"]


@pytest.fixture(scope="module")
def items():
    train = load_dataset(None, "demo").split("train")
    return [train[i] for i in range(4)]


@pytest.mark.parametrize("audio", _audio_encoders())
@pytest.mark.parametrize("fusion", registry.list("fusion"))
def test_combination_trains_one_step(fusion, audio, items):
    cfg = resolve(
        [
            {
                "seeds": [1],
                "model": {
                    "encoders": {"audio": {"name": audio, "config": SMALL.get(audio, {})}},
                    "fusion": {"name": fusion, "config": SMALL.get(fusion, {})},
                    "head": {"name": "mlp", "config": {"hidden": 16, "hidden2": 8}},
                },
            }
        ]
    )
    assert cfg.model["encoders"]["text"]["config"]["checkpoint"] == "random:tiny"
    torch.manual_seed(0)
    model = build_model(cfg.model)
    for enc in model.encoders.values():
        enc.fit([it[enc.modality] for it in items])
    batch = make_collate(dict(model.encoders))(items)
    loss = registry.create("loss", cfg.loss["name"], **cfg.loss["config"])
    total, parts = loss(model(batch["inputs"]), batch["targets"])
    total.backward()
    assert set(parts) == {"M", "T", "A"} and torch.isfinite(total)
    fusion_grads = [p.grad for p in model.fusion.parameters() if p.requires_grad]
    assert not fusion_grads or any(g is not None and g.abs().sum() > 0 for g in fusion_grads)
