"""Learning rates per part of the model (mmml_core.optim): the groups' defaults follow what
each encoder loads, ``optim.GROUP.*`` sets one group, the dry run prints the rates, a run
trains each group at its own rate and records it, and the warm-up and decay schedules."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import pytest
import torch
from fake_dists import bench

from mmml_core.engine import TrainConfig
from mmml_core.model import build_model
from mmml_core.optim import GroupProblems, lr_factor, model_param_groups, resolve_groups

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

TRAIN = SimpleNamespace(lr=1e-3, pretrained_lr=5e-5, weight_decay=0.01)


def test_pretrained_encoders_get_the_fine_tuning_rate_and_the_rest_the_from_scratch_rate():
    groups = resolve_groups({"text": True, "audio": False}, True, TRAIN)
    assert {g: (o.lr, o.weight_decay) for g, o in groups.items()} == {
        "text": (5e-5, 0.01),
        "audio": (1e-3, 0.01),
        "fusion": (1e-3, 0.01),
        "heads": (1e-3, 0.01),
    }
    assert groups["text"].why.startswith("train.pretrained_lr")
    one = resolve_groups({"text": True}, False, TRAIN, {"heads": {"lr": 2e-3}})
    assert list(one) == ["text", "heads"] and one["heads"].lr == 2e-3
    assert one["heads"].why == "optim.heads.lr"


def test_group_problems_name_each_key():
    with pytest.raises(GroupProblems) as err:
        resolve_groups(
            {"text": False, "audio": False},
            True,
            TRAIN,
            {"video": {"lr": 1.0}, "text": {"lr": float("nan")}, "fusion": {"momentum": 0.9}},
        )
    keys = [k for k, _ in err.value.problems]
    assert keys == ["optim.video", "optim.text.lr", "optim.fusion"], err.value.problems
    assert "this model's groups are text, audio, fusion, heads" in str(err.value)


def test_every_trainable_parameter_is_in_exactly_one_group():
    model = build_model(
        {
            "encoders": {
                "text": {"name": "roberta", "config": {"checkpoint": "random:tiny"}},
                "audio": {"name": "data2vec", "config": {"checkpoint": "random:tiny"}},
            },
            "fusion": {"name": "cross_attn", "config": {"layers": 1}},
            "head": {"name": "mlp", "config": {"hidden": 8, "hidden2": 4}},
        }
    )
    groups = resolve_groups({"text": True, "audio": False}, True, TRAIN)
    param_groups = model_param_groups(model, groups)
    assert [g["name"] for g in param_groups] == ["text", "audio", "fusion", "heads"]
    ids = [id(p) for g in param_groups for p in g["params"]]
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(ids) == len(set(ids)) == len(trainable)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all("feature_extractor" in n for n in frozen)  # the frozen CNN front end
    assert {g["name"]: g["lr"] for g in param_groups} == {
        "text": 5e-5,
        "audio": 1e-3,
        "fusion": 1e-3,
        "heads": 1e-3,
    }
    optim = torch.optim.AdamW(param_groups)
    assert [g["lr"] for g in optim.param_groups] == [5e-5, 1e-3, 1e-3, 1e-3]


def test_schedules():
    # warm-up: (step + 1) / warmup, then the schedule over the remaining steps
    assert [lr_factor("constant", s, 4, 100) for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert lr_factor("linear", 4, 4, 104) == 1.0
    assert lr_factor("linear", 54, 4, 104) == pytest.approx(0.5)
    assert lr_factor("linear", 104, 4, 104) == 0.0
    assert lr_factor("cosine", 0, 0, 10) == 1.0
    assert lr_factor("cosine", 5, 0, 10) == pytest.approx(0.5)
    assert lr_factor("cosine", 10, 0, 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor("cosine", 2, 0, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))
    with pytest.raises(ValueError, match="must be one of constant, linear, cosine"):
        TrainConfig(schedule="step")
    with pytest.raises(ValueError, match="warmup_steps must be an integer >= 0"):
        TrainConfig(warmup_steps=-1)


@pytest.fixture(scope="module")
def pretrained_text(tmp_path_factory):
    """A local pretrained-format folder (``save_pretrained``) of a tiny text model."""
    from mmml_core import registry

    folder = tmp_path_factory.mktemp("pretrained") / "tiny-roberta"
    torch.manual_seed(0)
    registry.create("encoder", "roberta", checkpoint="random:tiny").save_pretrained(folder)
    return folder


def test_dry_run_prints_the_resolved_rates(pretrained_text):
    proc = bench("--dry-run", f"text.checkpoint={pretrained_text}", "optim.fusion.lr=3e-4")
    assert proc.returncode == 0, proc.stderr
    assert (
        "learning rates: text 5e-05 (train.pretrained_lr (pretrained weights); weight decay "
        "0.01), audio 0.001 (train.lr (from scratch); weight decay 0.01), fusion 0.0003 "
        "(optim.fusion.lr; weight decay 0.01), heads 0.001 (train.lr (from scratch); weight "
        "decay 0.01)"
    ) in proc.stderr
    resolved = json.loads(proc.stdout)
    assert resolved["optim"] == {
        "text": {"lr": 5e-5, "weight_decay": 0.01},
        "audio": {"lr": 1e-3, "weight_decay": 0.01},
        "fusion": {"lr": 3e-4, "weight_decay": 0.01},
        "heads": {"lr": 1e-3, "weight_decay": 0.01},
    }
    bad = bench("--dry-run", "optim.video.lr=1", "optim.text.lr=0", "optim.text.speed=1")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "optim.video [set by optim.video.lr=1]: unknown parameter group 'video'" in bad.stderr
    assert "optim.text.lr [set by optim.text.lr=0]" in bad.stderr
    assert "unknown key 'speed'" in bad.stderr


def test_a_run_trains_each_group_at_its_rate_under_the_schedule(tmp_path, pretrained_text):
    out = tmp_path / "run"
    proc = bench(
        "--seeds", "1", "train.max_epochs=2", "data.max_items=16", "--no-progress",
        f"text.checkpoint={pretrained_text}", "optim.heads.weight_decay=0",
        "train.schedule=linear", "train.warmup_steps=1", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "seed-1" / "results.json").read_text())
    assert results["param_groups"] == {
        "text": {"lr": 5e-5, "weight_decay": 0.01},
        "audio": {"lr": 1e-3, "weight_decay": 0.01},
        "fusion": {"lr": 1e-3, "weight_decay": 0.01},
        "heads": {"lr": 1e-3, "weight_decay": 0.0},
    }
    # 16 items in batches of 8: 2 steps per epoch, 4 in all, the first a warm-up step. The
    # history has each epoch's last step's rate: step 1 is the decay's start (factor 1),
    # step 3 has (4 - 3) / (4 - 1) = 1/3 left, as Hugging Face's linear schedule
    first, second = (row["lr"] for row in results["history"])
    assert first == pytest.approx({"text": 5e-5, "audio": 1e-3, "fusion": 1e-3, "heads": 1e-3})
    assert second == pytest.approx({g: v / 3 for g, v in first.items()})
    config = json.loads((out / "config.json").read_text())
    assert config["optim"]["text"]["lr"] == 5e-5
