"""Where weights come from and where they go: presets, local directories, hub ids that cannot
be fetched, the model checkpoint of mmml-core, and the random:base parameter counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from encoders_hf_helpers import tone
from mmml_encoders_hf.checkpoints import CheckpointError

from mmml_core import registry
from mmml_core.checkpoint import load_model, save_model
from mmml_core.model import build_model

MADE_UP = "mmml-test/no-such-model-4711"
CASES = {
    "roberta-en": ("roberta", {"language": "en"}, ["Great film.", "It was slow and dull, sadly."]),
    "roberta-zh": ("roberta", {"language": "zh"}, ["很好", "剧情太慢了，很无聊"]),
    "data2vec": ("data2vec", {}, [tone(0.5, 150.0), tone(1.0, 110.0)]),
    "hubert": ("hubert", {}, [tone(0.5, 150.0), tone(1.0, 110.0)]),
}


def _hint_in(message: str, checkpoint: str) -> None:
    assert checkpoint in message
    assert f"hf download {checkpoint} --local-dir DIR" in message
    assert "save_pretrained(DIR)" in message and "checkpoint=DIR" in message


@pytest.mark.parametrize("name", ["roberta", "data2vec", "hubert"])
def test_uncached_hub_id_offline_fails_with_local_copy_hint(name: str, offline: None) -> None:
    with pytest.raises(CheckpointError) as err:
        registry.create("encoder", name, checkpoint=MADE_UP)
    _hint_in(str(err.value), MADE_UP)
    assert "HF_HUB_OFFLINE" in str(err.value)


@pytest.mark.timeout(60)  # a hang guard, not a timing assertion: the probe gives up after 8 s
def test_unreachable_hub_id_fails_without_offline_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the hub unreachable (CI) or reachable (the id does not exist) alike."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with pytest.raises(CheckpointError) as err:
        registry.create("encoder", "roberta", checkpoint=MADE_UP)
    _hint_in(str(err.value), MADE_UP)


@pytest.mark.parametrize(
    ("name", "config", "default"),
    [
        ("roberta", {}, "roberta-base"),
        ("roberta", {"language": "zh"}, "hfl/chinese-roberta-wwm-ext"),
        ("data2vec", {}, "facebook/data2vec-audio-base"),
        ("hubert", {"language": "zh"}, "TencentGameMate/chinese-hubert-base"),
    ],
)
def test_empty_checkpoint_picks_the_language_default(
    name: str, config: dict[str, Any], default: str, offline: None
) -> None:
    with pytest.raises(CheckpointError) as err:
        registry.create("encoder", name, **config)
    _hint_in(str(err.value), default)


def test_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        registry.create("encoder", "hubert", checkpoint=str(tmp_path / "nothing" / "here"))


@pytest.mark.parametrize("case", list(CASES))
def test_saved_directory_loads_by_path_with_identical_outputs(
    case: str, tmp_path: Path, offline: None
) -> None:
    name, extra, raw = CASES[case]
    torch.manual_seed(0)
    enc = registry.create("encoder", name, checkpoint="random:tiny", **extra).eval()
    enc.save_pretrained(tmp_path)
    files = {p.name for p in tmp_path.iterdir()}
    assert {"model.safetensors", "config.json"} <= files
    assert ("tokenizer.json" if enc.modality == "text" else "preprocessor_config.json") in files
    torch.manual_seed(1)  # a different seed: only the saved weights can make outputs equal
    again = registry.create("encoder", name, checkpoint=str(tmp_path), **extra).eval()
    assert again.model.config._attn_implementation == "sdpa"
    x = enc.preprocess(raw)
    for key, value in again.preprocess(raw).items():
        assert torch.equal(value, x[key]), key
    with torch.no_grad():
        a, b = enc(x), again(x)
    assert torch.equal(a.pooled, b.pooled) and torch.equal(a.hidden, b.hidden)
    assert torch.equal(a.mask, b.mask)


def test_model_checkpoint_round_trip(tmp_path: Path) -> None:
    """mmml-core's checkpoint: safetensors state dict + JSON component configs; random presets
    rebuild the same architecture and tokenizer, then the weights make the outputs equal."""
    spec = {
        "encoders": {
            "text": {"name": "roberta", "config": {"checkpoint": "random:tiny"}},
            "audio": {"name": "hubert", "config": {"checkpoint": "random:tiny"}},
        },
        "fusion": {"name": "concat"},
    }
    torch.manual_seed(0)
    model = build_model(spec).eval()
    raw = {"text": CASES["roberta-en"][2], "audio": CASES["hubert"][2]}
    with torch.no_grad():
        before = model(model.preprocess(raw))
    save_model(model, tmp_path / "ckpt")
    torch.manual_seed(1)
    fresh = build_model(spec).eval()
    loaded, config = load_model(tmp_path / "ckpt")
    assert config["model"]["encoders"]["text"]["config"]["max_tokens"] is None
    with torch.no_grad():
        other = fresh(fresh.preprocess(raw))
        after = loaded(loaded.preprocess(raw))
    assert set(after) == {"M", "T", "A"}
    for head in after:
        assert not torch.equal(other[head], before[head]), "seeds differ, so must outputs"
        assert torch.equal(after[head], before[head]), head


# Published sizes: roberta-base 124.6 M, data2vec-audio-base 93.2 M, hubert-base 94.4 M,
# hfl/chinese-roberta-wwm-ext (bert-base with a 21,128-entry vocabulary) 102.3 M.
PUBLISHED = [
    ("roberta", {"language": "en"}, 124.6e6),
    ("roberta", {"language": "zh"}, 102.3e6),
    ("data2vec", {}, 93.2e6),
    ("hubert", {}, 94.4e6),
]


@pytest.mark.parametrize(("name", "extra", "published"), PUBLISHED)
def test_random_base_has_the_published_parameter_count(
    name: str, extra: dict[str, Any], published: float
) -> None:
    with torch.device("meta"):  # shapes only: no memory, no initialisation time
        enc = registry.create("encoder", name, checkpoint="random:base", **extra)
    count = sum(p.numel() for p in enc.parameters())
    assert abs(count - published) / published < 0.01, (name, count)
    assert enc.dim == 768 and enc.model.config.num_hidden_layers == 12


def test_directory_checks_architecture_and_normalisation_setting(
    tmp_path: Path, offline: None
) -> None:
    enc = registry.create("encoder", "data2vec", checkpoint="random:tiny")
    enc.save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="'data2vec-audio' checkpoint"):
        registry.create("encoder", "hubert", checkpoint=str(tmp_path))
    with pytest.raises(CheckpointError, match="'data2vec-audio' checkpoint"):
        registry.create("encoder", "roberta", checkpoint=str(tmp_path))
    (tmp_path / "preprocessor_config.json").unlink()
    with pytest.raises(CheckpointError, match="set normalize=true or false"):
        registry.create("encoder", "data2vec", checkpoint=str(tmp_path))
    again = registry.create("encoder", "data2vec", checkpoint=str(tmp_path), normalize=True)
    assert again.do_normalize


def test_hub_id_in_the_local_cache_loads_offline(
    tmp_path: Path, offline: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hub id already in the Hugging Face cache (hub layout: refs/main -> snapshot) loads
    with HF_HUB_OFFLINE=1, from the cache and nowhere else."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--mmml-test--tiny-hubert"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    torch.manual_seed(0)
    enc = registry.create("encoder", "hubert", checkpoint="random:tiny").eval()
    enc.save_pretrained(repo / "snapshots" / commit)
    torch.manual_seed(1)
    again = registry.create("encoder", "hubert", checkpoint="mmml-test/tiny-hubert").eval()
    x = enc.preprocess(CASES["hubert"][2])
    with torch.no_grad():
        assert torch.equal(again(x).pooled, enc(x).pooled)
