"""Self-contained checkpoints (``save_assets`` / ``config_with_assets``) and cheap construction
on the meta device (dry runs): configs and tokenizers are read, weight files never."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from encoders_hf_helpers import tone
from mmml_encoders_hf.checkpoints import ASSETS_MARKER, CheckpointError, resolve

from mmml_core import registry
from mmml_core.interfaces import config_dict

MADE_UP = "mmml-test/no-such-model-4711"
CASES = {
    "roberta-en": ("roberta", {"language": "en"}, ["Great film.", "It was slow and dull, sadly."]),
    "roberta-zh": ("roberta", {"language": "zh"}, ["很好", "剧情太慢了，很无聊"]),
    "data2vec": ("data2vec", {}, [tone(0.5, 150.0), tone(1.0, 110.0)]),
    "hubert": ("hubert", {}, [tone(0.5, 150.0), tone(1.0, 110.0)]),
}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".h5", ".msgpack")


def _local_checkpoint(case: str, directory: Path) -> None:
    """A from_pretrained-layout directory (weights, config, tokenizer / preprocessor) made from
    a random:tiny encoder, standing in for a downloaded hub checkpoint."""
    name, extra, _ = CASES[case]
    torch.manual_seed(0)
    enc = registry.create("encoder", name, checkpoint="random:tiny", **extra)
    enc.model.save_pretrained(directory)
    (enc.tokenizer if enc.modality == "text" else enc.preprocessor).save_pretrained(directory)


def _run(enc: Any, raw: list[Any]) -> Any:
    with torch.no_grad():
        return enc.eval()(enc.preprocess(raw))


@pytest.mark.parametrize("case", list(CASES))
def test_assets_rebuild_the_encoder_offline_without_the_original(
    case: str, tmp_path: Path, offline: None
) -> None:
    name, extra, raw = CASES[case]
    source, assets, again_dir = tmp_path / "source", tmp_path / "assets", tmp_path / "again"
    for folder in (source, assets, again_dir):
        folder.mkdir()
    _local_checkpoint(case, source)
    enc = registry.create("encoder", name, checkpoint=str(source), **extra)
    before = _run(enc, raw)
    assert enc.save_assets(assets) is True
    files = {p.name for p in assets.iterdir()}
    assert {"config.json", ASSETS_MARKER} <= files
    assert ("tokenizer.json" if enc.modality == "text" else "preprocessor_config.json") in files
    assert not [f for f in files if f.endswith(WEIGHT_SUFFIXES)], files
    marker = json.loads((assets / ASSETS_MARKER).read_text())
    # a local folder is recorded by its name only: no absolute path goes into a checkpoint
    assert marker["checkpoint"] == "local folder 'source'" and marker["format"] == 1
    state = {k: v.clone() for k, v in enc.state_dict().items()}
    shutil.rmtree(source)

    config = type(enc).config_with_assets(config_dict(enc), assets)
    assert config == {**config_dict(enc), "checkpoint": str(assets)}
    assert resolve(config["checkpoint"]).kind == "assets"
    torch.manual_seed(1)
    rebuilt = registry.create("encoder", name, **config)
    for key, value in rebuilt.preprocess(raw).items():  # same tokenizer / normalisation
        assert torch.equal(value, enc.preprocess(raw)[key]), key
    assert not torch.equal(_run(rebuilt, raw).pooled, before.pooled), "random until loaded"
    rebuilt.load_state_dict(state)
    after = _run(rebuilt, raw)
    assert torch.equal(after.pooled, before.pooled) and torch.equal(after.hidden, before.hidden)
    assert torch.equal(after.mask, before.mask)
    # assets of an encoder built from assets still name the original checkpoint
    assert rebuilt.save_assets(again_dir)
    marker = json.loads((again_dir / ASSETS_MARKER).read_text())
    assert marker["checkpoint"] == "local folder 'source'"


@pytest.mark.parametrize("case", list(CASES))
def test_random_presets_need_no_assets(case: str, tmp_path: Path) -> None:
    name, extra, _ = CASES[case]
    enc = registry.create("encoder", name, checkpoint="random:tiny", **extra)
    assert enc.save_assets(tmp_path) is False
    assert not any(tmp_path.iterdir())


def test_hub_id_assets_record_the_hub_id(
    tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub id from the local cache (hub layout: refs/main -> snapshot)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--mmml-test--tiny-hubert"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    _local_checkpoint("hubert", repo / "snapshots" / commit)
    enc = registry.create("encoder", "hubert", checkpoint="mmml-test/tiny-hubert")
    assert enc.save_assets(tmp_path)
    assert json.loads((tmp_path / ASSETS_MARKER).read_text())["checkpoint"] == (
        "mmml-test/tiny-hubert"
    )


def test_only_the_marker_makes_a_directory_weightless(tmp_path: Path, offline: None) -> None:
    """A user's directory without weights is an error, never a random initialisation; a
    damaged marker is an error too."""
    _local_checkpoint("roberta-en", tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="no file named model.safetensors"):
        registry.create("encoder", "roberta", checkpoint=str(tmp_path))
    (tmp_path / ASSETS_MARKER).write_text("{not json")
    with pytest.raises(CheckpointError, match="unreadable assets marker"):
        registry.create("encoder", "roberta", checkpoint=str(tmp_path))


def test_model_checkpoint_is_self_contained(tmp_path: Path, offline: None) -> None:
    """Through mmml-core: a model whose encoders came from directories saves their assets and
    loads after those directories are gone, with identical outputs."""
    from mmml_core import checkpoint as core_checkpoint

    if not hasattr(core_checkpoint, "ASSETS"):
        pytest.skip("this mmml-core does not save encoder assets in model checkpoints")
    from mmml_core.model import build_model

    _local_checkpoint("roberta-en", tmp_path / "text")
    _local_checkpoint("hubert", tmp_path / "audio")
    spec = {
        "encoders": {
            "text": {"name": "roberta", "config": {"checkpoint": str(tmp_path / "text")}},
            "audio": {"name": "hubert", "config": {"checkpoint": str(tmp_path / "audio")}},
        },
        "fusion": {"name": "concat"},
    }
    torch.manual_seed(0)
    model = build_model(spec).eval()
    raw = {"text": CASES["roberta-en"][2], "audio": CASES["hubert"][2]}
    with torch.no_grad():
        before = model(model.preprocess(raw))
    core_checkpoint.save_model(model, tmp_path / "ckpt")
    shutil.rmtree(tmp_path / "text")
    shutil.rmtree(tmp_path / "audio")
    loaded, _ = core_checkpoint.load_model(tmp_path / "ckpt")
    with torch.no_grad():
        after = loaded(loaded.preprocess(raw))
    assert set(after) == set(before)
    for head in after:
        assert torch.equal(after[head], before[head]), head


# -- meta device ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(CASES))
def test_meta_build_reads_configs_and_tokenizer_but_no_weights(
    case: str, tmp_path: Path, offline: None
) -> None:
    name, extra, _ = CASES[case]
    _local_checkpoint(case, tmp_path)
    (tmp_path / "model.safetensors").unlink()  # a meta build must not need it
    for checkpoint in ("random:tiny", str(tmp_path)):
        with torch.device("meta"):
            enc = registry.create("encoder", name, checkpoint=checkpoint, **extra)
        assert enc.dim == 64
        assert {p.device.type for p in enc.parameters()} == {"meta"}
        if enc.modality == "text":
            assert enc.tokenizer("Great film.")["input_ids"]  # the real tokenizer was loaded
        else:
            assert enc.min_samples == 400 and enc.do_normalize
    with pytest.raises(CheckpointError, match="no file named model.safetensors"):
        registry.create("encoder", name, checkpoint=str(tmp_path), **extra)


@pytest.mark.parametrize("name", ["roberta", "data2vec", "hubert"])
def test_meta_build_fails_like_a_real_build(name: str, tmp_path: Path, offline: None) -> None:
    wrong = "hubert" if name == "data2vec" else "data2vec"  # another architecture's directory
    _local_checkpoint(wrong, tmp_path)
    with torch.device("meta"):
        with pytest.raises(CheckpointError, match="unknown preset"):
            registry.create("encoder", name, checkpoint="random:huge")
        with pytest.raises(CheckpointError, match="does not exist"):
            registry.create("encoder", name, checkpoint=str(tmp_path / "missing"))
        with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
            registry.create("encoder", name, checkpoint=MADE_UP)
        with pytest.raises(CheckpointError, match=f"is a '{wrong}(-audio)?' checkpoint"):
            registry.create("encoder", name, checkpoint=str(tmp_path))
