"""A trained checkpoint is portable: no absolute path of the machine that wrote it, the file
permissions of any file the user creates, and a moved (or copied) checkpoint folder predicts
the same, after the pretrained folder it was trained from is gone."""

from __future__ import annotations

import json
import os
import shutil
import stat

import pytest
import torch
from fake_dists import bench

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

TEXT = "what a wonderful film"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 1-epoch run whose text encoder comes from a local pretrained-format folder."""
    from mmml_core import registry

    tmp_path = tmp_path_factory.mktemp("portable")
    pretrained = tmp_path / "my-pretrained-text"
    torch.manual_seed(0)
    registry.create("encoder", "roberta", checkpoint="random:tiny").save_pretrained(pretrained)
    out = tmp_path / "run"
    proc = bench(
        "--seeds", "1", "train.max_epochs=1", "data.max_items=16", "--no-progress",
        f"text.checkpoint={pretrained}", "--out", str(out),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return tmp_path, pretrained, out / "seed-1" / "best_loss"


def test_a_checkpoint_holds_no_absolute_path_and_has_normal_permissions(trained):
    tmp_path, pretrained, ckpt = trained
    files = [p for p in ckpt.rglob("*") if p.is_file()]
    assert {"config.json", "model.safetensors"} <= {p.name for p in files}
    for path in files:
        data = path.read_bytes()
        assert str(tmp_path).encode() not in data, f"{path} holds an absolute path"
    config = json.loads((ckpt / "config.json").read_text())
    assert config["model"]["encoders"]["text"]["config"]["checkpoint"] == "assets/text"
    mask = os.umask(0o22)
    os.umask(mask)
    for path in [ckpt, *ckpt.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        want = (0o777 if path.is_dir() else 0o666) & ~mask
        assert mode == want, f"{path}: {oct(mode)}, expected {oct(want)}"


def test_a_moved_checkpoint_still_predicts(trained):
    tmp_path, pretrained, ckpt = trained
    before = bench("predict", str(ckpt), "--text", TEXT, "--json")
    assert before.returncode == 0, before.stderr
    moved = tmp_path / "elsewhere" / "my-model"
    moved.parent.mkdir()
    shutil.copytree(ckpt, moved)
    shutil.rmtree(tmp_path / "run")  # the run folder and the pretrained folder are gone
    shutil.rmtree(pretrained)
    after = bench("predict", str(moved), "--text", TEXT, "--json", HF_HUB_OFFLINE="1")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout) == json.loads(before.stdout)
