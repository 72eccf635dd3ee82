"""The ``paper`` and ``authors`` profiles (mmml_core.profiles): what the authors profile
sets, that every layer above it still wins, the optimizer re-created every epoch, the
later-epoch Acc2 tie, the single-modality label, and the dry run's comparison of the two
profiles (which the README's table must match)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from data_helpers import make_mosi_like

from mmml_core import engine
from mmml_core.run import load_config_file, preset_path
from mmml_core.runconfig import ConfigErrors, Layer, differences, resolve, settings
from mmml_core.validate import check_run

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

ROOT = Path(__file__).resolve().parents[1]


def _preset(name: str, *extra: dict) -> list[Layer]:
    return [Layer(f"--preset {name}", load_config_file(preset_path(name))), *map(_layer, extra)]


def _layer(data: dict) -> Layer:
    return Layer("test", data)


# -- what the profile sets ---------------------------------------------------------------------


def test_authors_profile_sets_the_authors_pipeline_with_its_origin():
    cfg = resolve([{"profile": "authors"}])
    s = settings(cfg)
    assert cfg.profile == "authors" and s["profile"] == "authors"
    assert s["train.lr"] == s["train.pretrained_lr"] == 5e-6
    assert s["train.batch_size"] == 8
    assert s["train.reset_optimizer"] == "epoch" and s["train.acc_tie"] == "later"
    assert s["train.bucket_by_length"] is False and s["train.amp"] is False
    assert s["subnet_head.dropout"] == 0.3
    assert s["fusion.variant_layers"] == 3  # English
    assert s["data.recase"] == "on"
    assert s["text.attention"] == s["audio.attention"] == "eager"  # not SDPA
    assert {g.lr for g in cfg.optim.values()} == {5e-6}
    assert cfg.origins["train.lr"] == "profile 'authors'"
    assert cfg.origins["model.subnet_head.config.dropout"] == "profile 'authors'"


def test_paper_profile_is_the_default_and_sets_nothing():
    default, paper = resolve([]), resolve([{"profile": "paper"}])
    assert default.profile == "paper"
    assert differences(default, paper) == []
    assert not any(v.startswith("profile") for v in default.origins.values())


def test_every_layer_above_the_profile_wins():
    cfg = resolve(
        [
            {"profile": "authors", "train": {"lr": 1e-3}},
            {"model": {"subnet_head": {"name": "linear", "config": {"dropout": 0.2}}}},
        ]
    )
    assert cfg.train.lr == 1e-3 and cfg.train.pretrained_lr == 5e-6
    assert cfg.model.subnet_head.config["dropout"] == 0.2


def test_profile_by_language_and_fusion():
    sims = resolve(_preset("authors-sims", {"data": {"dataset": "/nowhere"}}))
    s = settings(sims)
    assert s["fusion.variant_layers"] == 2  # Mandarin
    assert s["data.recase"] == "off"
    concat = resolve([{"profile": "authors", "model": {"fusion": "concat"}}])
    assert settings(concat)["head.layers"] == 4  # their concatenation baseline's head
    assert settings(resolve([{"profile": "authors"}]))["head.layers"] == 3
    mosei = resolve(_preset("authors-mosei", {"data": {"dataset": "/nowhere"}}))
    assert mosei.data.skip_unusable is True


def test_unknown_profile_is_one_problem_naming_the_choices():
    with pytest.raises(ConfigErrors) as err:
        resolve([{"profile": "author"}])
    assert [p.key for p in err.value.problems] == ["profile"]
    assert "paper, authors" in str(err.value)


def test_head_layers_builds_the_authors_concatenation_head():
    from mmml_core.builtins.heads import MLPHead, MLPHeadConfig

    head = MLPHead(MLPHeadConfig(in_dim=1536, layers=4))
    widths = [(m.in_features, m.out_features) for m in head.net if isinstance(m, torch.nn.Linear)]
    assert widths == [(1536, 768), (768, 768), (768, 512), (512, 1)]
    three = MLPHead(MLPHeadConfig(in_dim=1536))
    assert [k for k in three.state_dict()] == [
        "net.1.weight", "net.1.bias", "net.3.weight", "net.3.bias", "net.5.weight", "net.5.bias"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="layers"):
        MLPHeadConfig(in_dim=4, layers=1)


# -- the engine: optimizer per epoch, ties, single-modality label -----------------------------


def _first_steps(profile: str, tmp_path: Path) -> list[tuple[int, bool]]:
    """Train 2 epochs of 2 steps; for each optimizer step, (which optimizer, state empty)."""
    from mmml_core.run import run_experiment

    cfg = resolve(
        [
            {
                "profile": profile,
                "seeds": [1],
                "data": {"max_items": 4, "max_audio_seconds": 1.0},
                "train": {"batch_size": 2, "max_epochs": 2, "patience": 10},
                "model": {"fusion": {"name": "cross_attn", "config": {"layers": 1}}},
            }
        ]
    )
    steps: list[tuple[int, bool]] = []

    from torch.optim.optimizer import register_optimizer_step_pre_hook

    def record(optimizer, args, kwargs):
        if not hasattr(optimizer, "_test_number"):  # ids can be reused once one is freed
            optimizer._test_number = len({n for n, _ in steps})
        steps.append((optimizer._test_number, len(optimizer.state) == 0))

    handle = register_optimizer_step_pre_hook(record)
    (tmp_path / profile).mkdir()
    try:
        run_experiment(check_run(cfg), tmp_path / profile, progress=False)
    finally:
        handle.remove()
    return steps


def test_authors_profile_recreates_the_optimizer_every_epoch(tmp_path):
    steps = _first_steps("authors", tmp_path)
    assert len(steps) == 4  # 2 epochs x 2 steps
    # moments are zero (no state yet) at each epoch's first step, and only there
    assert [empty for _, empty in steps] == [True, False, True, False]
    assert [n for n, _ in steps] == [0, 0, 1, 1]  # a new optimizer each epoch
    # the paper profile keeps one optimizer: only the very first step starts from zero
    paper = _first_steps("paper", tmp_path)
    assert [empty for _, empty in paper] == [True, False, False, False]
    assert len({i for i, _ in paper}) == 1


def test_acc_tie_later_keeps_the_later_epoch(monkeypatch, tmp_path):
    saved: list[tuple[str, int]] = []
    monkeypatch.setattr(
        engine, "save_model", lambda model, path, extra: saved.append((Path(path).name, 0))
    )
    for tie, expected in (("earlier", 1), ("later", 2)):
        run = SimpleNamespace(
            cfg=engine.TrainConfig(acc_tie=tie), model=None, out=tmp_path, extra={}
        )
        meta = {"best_loss": 9.0, "best_acc": -1.0, "bad_epochs": 0, "epoch": 0,
                "best_loss_epoch": 0, "best_acc_epoch": 0}  # fmt: skip
        for epoch in (1, 2):
            engine._select(run, meta, {"epoch": epoch, "valid_loss": 1.0, "valid_acc2": 0.75})
        assert meta["best_acc_epoch"] == expected, tie
        assert meta["best_loss_epoch"] == 1  # the loss keeps `<`: a tie is not lower


def test_unimodal_label_own_trains_on_the_modality_label():
    targets = {"M": torch.tensor([1.0]), "A": torch.tensor([-1.0])}
    assert engine.loss_targets(targets, True)["A"].item() == 1.0  # the multimodal label
    assert engine.loss_targets(targets, True, own=True)["A"].item() == -1.0
    assert engine.loss_targets(targets, False)["A"].item() == -1.0
    with pytest.raises(ValueError, match="unimodal_label"):
        engine.TrainConfig(unimodal_label="audio")


# -- the dry run's comparison and the README's table -------------------------------------------


def _preset_diff() -> list[tuple[str, object, object]]:
    where = {"data": {"dataset": "~/data/MOSI"}}
    return differences(
        resolve(_preset("authors-mosi", where)), resolve(_preset("paper-mosi", where))
    )


def test_authors_and_paper_presets_differ_only_by_the_profile():
    # the twin presets: paper-mosi with --profile authors is authors-mosi
    where = {"data": {"dataset": "~/data/MOSI"}}
    swapped = resolve(_preset("paper-mosi", where, {"profile": "authors"}))
    assert differences(swapped, resolve(_preset("authors-mosi", where))) == []
    keys = [k for k, _, _ in _preset_diff()]
    for key in ("profile", "train.lr", "train.batch_size", "train.reset_optimizer",
                "train.acc_tie", "subnet_head.dropout", "data.recase"):  # fmt: skip
        assert key in keys


def _cell(v: object) -> str:
    import json

    return v if isinstance(v, str) else json.dumps(v)


def test_readme_has_the_profile_table():
    text = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \| ([^|]+) \| ([^|]+) \|$", text, re.M)
    table = {k: (a.strip(), b.strip()) for k, a, b in rows}
    diff = _preset_diff()
    assert diff, "the presets must differ"
    missing = [k for k, _, _ in diff if k not in table]
    assert not missing, f"README profile table lacks {missing}"
    for key, a, b in diff:
        assert table[key] == (_cell(a), _cell(b)), key


@pytest.mark.parametrize("preset", ["authors-mosi", "paper-mosi"])
def test_dry_run_prints_every_setting_that_differs(preset, tmp_path):
    root = tmp_path / "MOSI"
    make_mosi_like(root)
    from fake_dists import bench

    proc = bench(
        "--preset", preset, "--dataset", str(root), "--dry-run",
        "text.checkpoint=random:tiny", "audio.checkpoint=random:tiny",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    where = {"data": {"dataset": str(root)}}
    ckpt = {"model": {"encoders": {m: {"name": n, "config": {"checkpoint": "random:tiny"}}
                                   for m, n in (("text", "roberta"), ("audio", "data2vec"))}}}  # fmt: skip
    other = "paper-mosi" if preset == "authors-mosi" else "authors-mosi"
    diff = differences(resolve(_preset(preset, where, ckpt)), resolve(_preset(other, where, ckpt)))
    assert diff
    for key, a, b in diff:
        assert f"| `{key}` | {_cell(a)} | {_cell(b)} |" in proc.stderr, key
    authors = preset == "authors-mosi"
    for m in ("text", "audio"):  # the authors' step runs transformers' eager attention
        row = f"| `{m}.attention` | {'eager' if authors else 'sdpa'} | {'sdpa' if authors else 'eager'} |"
        assert row in proc.stderr
    n = len(re.findall(r"^\| `", proc.stderr, re.M))
    assert n == len(diff)  # nothing else is listed


def test_profile_is_recorded_in_results_and_checkpoints(tmp_path):
    import json

    from mmml_core.run import run_experiment

    cfg = resolve(
        [
            {
                "profile": "authors",
                "seeds": [1],
                "data": {"max_items": 2},
                "train": {"batch_size": 2, "max_epochs": 1},
                "model": {"fusion": {"name": "cross_attn", "config": {"layers": 1}}},
            }
        ]  # fmt: skip
    )
    (tmp_path / "run").mkdir()
    run_experiment(check_run(cfg), tmp_path / "run", progress=False)
    assert json.loads((tmp_path / "run/results.json").read_text())["profile"] == "authors"
    assert json.loads((tmp_path / "run/config.json").read_text())["profile"] == "authors"
    seed = tmp_path / "run/seed-1"
    assert json.loads((seed / "results.json").read_text())["profile"] == "authors"
    assert json.loads((seed / "best_loss/config.json").read_text())["profile"] == "authors"


def test_profile_flag_in_help():
    from fake_dists import bench

    proc = bench("--help")
    assert "--profile" in proc.stdout and "authors" in proc.stdout
