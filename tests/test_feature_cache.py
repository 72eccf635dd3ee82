"""Frozen encoders (model.frozen) and their feature cache (mmml_core.cache).

The end-to-end checks run the real ``mmml-bench`` on the demo set (random:tiny encoders, 16
rows per split, 2 epochs): the cache gives the metrics of the same run without it, a second
run reuses the entries, a changed encoder setting makes new ones. The safety checks (a killed
build, two builders of one entry) drive :func:`mmml_core.cache.load_or_build` directly.
"""

from __future__ import annotations

import json
import math
import os
import socket
import threading
from pathlib import Path

import pytest
import torch
from fake_dists import bench

from mmml_core import cache, registry
from mmml_core.data import load_dataset
from mmml_core.model import ModelSpec, build_model
from mmml_core.optim import model_param_groups, resolve_groups
from mmml_core.runconfig import ComponentSpec

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

#: test metrics of the run with the cache and of the run without it agree to this (the
#: cached outputs are the live encoder's, re-padded per batch; float32 summation order only)
TOL = 1e-5
TINY = {"checkpoint": "random:tiny"}
RUN = ["--seeds", "1", "train.max_epochs=2", "data.max_items=16", "--no-progress"]


def _run(out: Path, cache_dir: Path, *extra: str) -> tuple[dict, str]:
    args = [*RUN, "model.frozen=text,audio", f"train.cache_dir={cache_dir}", "--out", str(out)]
    proc = bench(*args, *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "seed-1" / "results.json").read_text()), proc.stderr


def _cache_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if "feature cache:" in ln]
    assert len(lines) == 1, stderr
    return lines[0]


def _entries(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if not p.name.startswith(".")}


def _assert_same_metrics(a: dict, b: dict) -> None:
    for sel in ("best_loss", "best_acc"):
        sa, sb = a["selection"][sel], b["selection"][sel]
        assert sa["epoch"] == sb["epoch"], sel
        assert math.isclose(sa["test_loss"], sb["test_loss"], abs_tol=TOL), sel
        assert sa["test"].keys() == sb["test"].keys()
        for head, metrics in sa["test"].items():
            for key, value in metrics.items():
                other = sb["test"][head][key]
                if value is None or other is None:
                    assert value is other, (sel, head, key)
                else:
                    assert math.isclose(value, other, abs_tol=TOL), (sel, head, key, value, other)
    for ra, rb in zip(a["history"], b["history"], strict=True):
        assert math.isclose(ra["train_loss"], rb["train_loss"], abs_tol=TOL)
        assert math.isclose(ra["valid_loss"], rb["valid_loss"], abs_tol=TOL)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Four real runs sharing one cache folder: built, reused, cache off, text.max_tokens=8."""
    base = tmp_path_factory.mktemp("cache-runs")
    root = base / "cache"
    built, built_log = _run(base / "built", root)
    after_build = {e: (root / e / cache.MANIFEST).stat().st_mtime_ns for e in _entries(root)}
    reused, reused_log = _run(base / "reused", root)
    after_reuse = {e: (root / e / cache.MANIFEST).stat().st_mtime_ns for e in _entries(root)}
    off, off_log = _run(base / "off", root, "train.feature_cache=off")
    changed, changed_log = _run(base / "changed", root, "text.max_tokens=8")
    return {
        "root": root,
        "built": (built, built_log),
        "reused": (reused, reused_log),
        "off": (off, off_log),
        "changed": (changed, changed_log),
        "after_build": after_build,
        "after_reuse": after_reuse,
        "entries": _entries(root),
    }


def test_cache_gives_the_metrics_of_the_run_without_it(runs: dict) -> None:
    (with_cache, log_cache), (without, log_off) = runs["built"], runs["off"]
    line = _cache_line(log_cache)
    assert "text, audio served from the cache" in line and "built text/train" in line
    assert "feature cache:" not in log_off  # off: the frozen encoders run on every batch
    _assert_same_metrics(with_cache, without)
    # the settings are in the results; the frozen encoders have no optimizer group
    assert with_cache["train"]["feature_cache"] == "auto"
    assert without["train"]["feature_cache"] == "off"
    assert with_cache["model"]["frozen"] == ["text", "audio"]
    assert set(with_cache["param_groups"]) == {"fusion", "heads"}


def test_a_second_run_reuses_the_entries_and_gives_identical_results(runs: dict) -> None:
    (first, _), (second, log) = runs["built"], runs["reused"]
    line = _cache_line(log)
    assert (
        "(reused text/train, text/valid, text/test, audio/train, audio/valid, audio/test;" in line
    )
    assert runs["after_reuse"] == runs["after_build"]  # no entry was written again
    assert len(runs["after_build"]) == 6  # 2 modalities x 3 splits
    assert first["selection"] == second["selection"]
    assert first["history"] == second["history"]


def test_a_changed_encoder_setting_makes_new_entries(runs: dict) -> None:
    _, log = runs["changed"]
    line = _cache_line(log)
    # text.max_tokens changes the text encoder's config: new text entries; audio is reused
    assert "built text/train, text/valid, text/test" in line
    assert "reused audio/train, audio/valid, audio/test" in line
    assert len(runs["entries"]) == 9
    new = runs["entries"] - set(runs["after_build"])
    configs = {
        json.loads((runs["root"] / e / cache.MANIFEST).read_text())["material"]["config"][
            "max_tokens"
        ]
        for e in new
    }
    assert configs == {8}


# -- in process: keys, killed and concurrent builds --------------------------------------------


@pytest.fixture(scope="module")
def demo():
    return load_dataset(None, "demo", modalities=["text", "audio"], max_items=8)


def _text_encoder(seed: int = 0):
    torch.manual_seed(seed)
    return registry.create("encoder", "roberta", **TINY).eval()


def _material(dataset, encoder, split="train"):
    return cache.key_material(dataset, split, dataset.split(split), "text", "roberta", encoder)


def test_the_key_changes_with_weights_config_data_and_split(demo) -> None:
    enc = _text_encoder()
    key = cache.entry_key(_material(demo, enc))
    assert key == cache.entry_key(_material(demo, enc))  # deterministic
    other_weights = _text_encoder(seed=1)
    assert cache.entry_key(_material(demo, other_weights)) != key
    with torch.no_grad():
        enc2 = _text_encoder()
        next(enc2.parameters()).add_(1e-3)
    assert cache.entry_key(_material(demo, enc2)) != key
    shorter = registry.create("encoder", "roberta", **TINY, max_tokens=8)
    shorter.load_state_dict(enc.state_dict())
    assert cache.entry_key(_material(demo, shorter)) != key
    assert cache.entry_key(_material(demo, enc, "valid")) != key
    fewer = load_dataset(None, "demo", modalities=["text", "audio"], max_items=4)
    assert cache.entry_key(_material(fewer, enc)) != key
    recased = load_dataset(None, "demo", modalities=["text", "audio"], max_items=8, recase="on")
    if recased.split("train").texts != demo.split("train").texts:
        assert cache.entry_key(_material(recased, enc)) != key


def _dead_pid() -> int:
    pid = 2**22 - 7
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_a_killed_build_is_ignored_and_rebuilt(demo, tmp_path: Path) -> None:
    enc = _text_encoder()
    material = _material(demo, enc)
    key = cache.entry_key(material)
    host = socket.gethostname()
    # what a build killed mid-write leaves: a temporary folder with a partial shard and no
    # manifest, named after its (now gone) process; and one of a build still running
    killed = tmp_path / f".{key}.{host}.{_dead_pid()}.dead.tmp"
    killed.mkdir()
    (killed / "shard-00000.safetensors").write_bytes(b"\x00" * 17)
    running = tmp_path / f".{key}.{host}.{os.getpid()}.live.tmp"
    running.mkdir()
    split = demo.split("train")
    feats, built = cache.load_or_build(enc, split, material, tmp_path)
    assert built
    assert not killed.exists()  # removed: its process is gone
    assert running.exists()  # left alone: its process may still finish
    assert _entries(tmp_path) == {key}
    again, built_again = cache.load_or_build(enc, split, material, tmp_path)
    assert not built_again
    assert torch.equal(again.hidden, feats.hidden) and torch.equal(again.pooled, feats.pooled)
    # the cached outputs are the live encoder's on each item
    with torch.no_grad():
        out = enc(enc.preprocess([split[0]["text"]]))
    item = feats.item(0)
    torch.testing.assert_close(item.hidden, out.hidden[0][out.mask[0]], atol=1e-5, rtol=0)
    torch.testing.assert_close(item.pooled, out.pooled[0], atol=1e-5, rtol=0)


def test_a_damaged_entry_is_built_again(demo, tmp_path: Path) -> None:
    enc = _text_encoder()
    material = _material(demo, enc)
    split = demo.split("train")
    feats, _ = cache.load_or_build(enc, split, material, tmp_path)
    entry = tmp_path / cache.entry_key(material)
    (entry / "shard-00000.safetensors").write_bytes(b"damaged")
    again, built = cache.load_or_build(enc, split, material, tmp_path)
    assert built and torch.equal(again.hidden, feats.hidden)
    assert _entries(tmp_path) == {entry.name}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_concurrent_builders_end_with_one_valid_entry(
    demo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both builders finish their copy before either publishes it (a barrier after the
    write), so both race for the rename: one wins, the other reads the winner's entry."""
    enc_a, enc_b = _text_encoder(), _text_encoder()
    material = _material(demo, enc_a)
    assert cache.entry_key(material) == cache.entry_key(_material(demo, enc_b))
    barrier = threading.Barrier(2, timeout=60)
    write = cache._write

    def write_then_wait(*args, **kwargs):
        write(*args, **kwargs)
        barrier.wait()

    monkeypatch.setattr(cache, "_write", write_then_wait)
    results: dict[str, tuple] = {}
    errors: list[BaseException] = []

    def build(name, enc):
        try:
            results[name] = cache.load_or_build(enc, demo.split("train"), material, tmp_path)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=build, args=(n, e)) for n, e in (("a", enc_a), ("b", enc_b))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert sorted(built for _, built in results.values()) == [False, True]
    (fa, _), (fb, _) = results["a"], results["b"]
    assert torch.equal(fa.hidden, fb.hidden) and torch.equal(fa.pooled, fb.pooled)
    assert _entries(tmp_path) == {cache.entry_key(material)}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # loser cleaned up
    monkeypatch.setattr(cache, "_write", write)
    read, built = cache.load_or_build(enc_a, demo.split("train"), material, tmp_path)
    assert not built and torch.equal(read.hidden, fa.hidden)


# -- freezing ------------------------------------------------------------------------------------


def _spec(frozen=()):
    return ModelSpec(
        {"text": ComponentSpec("roberta", TINY), "audio": ComponentSpec("data2vec", TINY)},
        ComponentSpec("cross_attn", {"layers": 1}),
        frozen=frozen,
    )


def test_a_frozen_encoder_gets_no_gradient_no_group_and_stays_in_eval_mode() -> None:
    model = build_model(_spec(("text",)))
    assert not any(p.requires_grad for p in model.encoders["text"].parameters())
    assert any(p.requires_grad for p in model.encoders["audio"].parameters())
    model.train()
    assert not model.encoders["text"].training
    assert not any(m.training for m in model.encoders["text"].modules())
    assert model.encoders["audio"].training and model.fusion.training
    cfg = type("T", (), {"lr": 1e-3, "pretrained_lr": 1e-5, "weight_decay": 0.01})()
    groups = resolve_groups({"text": False, "audio": False}, True, cfg)
    param_groups = model_param_groups(model, groups)
    assert [g["name"] for g in param_groups] == ["audio", "fusion", "heads"]
    torch.optim.AdamW(param_groups)  # no empty group
    # dropout off in the frozen encoder while training: the same input, the same output
    items = model.preprocess({"text": ["a frozen encoder", "reads the same"]})["text"]
    a, b = model.encoders["text"](items), model.encoders["text"](items)
    assert torch.equal(a.hidden, b.hidden)


def test_frozen_is_stored_in_the_spec_and_old_specs_load_without_it() -> None:
    spec = _spec(("audio",))
    d = spec.to_dict()
    assert d["frozen"] == ["audio"]
    assert ModelSpec.from_dict(d).frozen == ("audio",)
    del d["frozen"]
    assert ModelSpec.from_dict(d).frozen == ()
    with pytest.raises(ValueError, match="frozen modalities \\['vision'\\]"):
        _spec(("vision",))


def test_model_frozen_in_the_dry_run_and_an_unknown_modality_is_a_clean_error() -> None:
    ok = bench("--dry-run", "model.frozen=text,audio")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["model"]["frozen"] == ["text", "audio"]
    bad = bench("--dry-run", "model.frozen=text,vision")
    assert bad.returncode == 2
    assert "Traceback" not in bad.stderr
    assert "model.frozen [set by model.frozen=text,vision]: no encoder for 'vision'" in bad.stderr
