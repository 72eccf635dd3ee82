"""Defaults that compose: every registered text encoder x audio encoder x fusion trains
through `mmml-bench` on the demo set with no override but the documented ones that make a
run short, and passes every check (`--dry-run`) under every dataset kind's defaults."""

from __future__ import annotations

import json

import pytest
from data_helpers import make_mosi_like, make_sims_like
from fake_dists import FIRST_PARTY, plugins_enabled

from mmml_core import cli, registry

pytestmark = pytest.mark.plugins(*FIRST_PARTY)

SHORT = ["--seeds", "1", "train.max_epochs=1", "data.max_items=8", "--no-progress"]


def _encoders(modality: str) -> list[str]:
    return [n for n in registry.list("encoder") if registry.load("encoder", n).modality == modality]


with plugins_enabled(*FIRST_PARTY):
    COMBINATIONS = [
        (text, audio, fusion)
        for text in _encoders("text")
        for audio in _encoders("audio")
        for fusion in registry.list("fusion")
    ]
    FUSIONS = registry.list("fusion")


@pytest.mark.parametrize(("text", "audio", "fusion"), COMBINATIONS)
def test_every_combination_trains_on_the_demo_set(text, audio, fusion, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [f"--encoder=text={text}", f"--encoder=audio={audio}", f"--fusion={fusion}"]
    code = cli.main([*argv, "--out", str(out), *SHORT])
    err = capsys.readouterr().err
    assert code == 0, err
    summary = json.loads((out / "results.json").read_text())
    assert set(summary["aggregate"]["best_loss"]) >= {"M", "T", "A"}
    assert summary["config"]["model"]["encoders"]["audio"]["name"] == audio


@pytest.fixture(scope="module")
def kind_roots(tmp_path_factory):
    roots = {}
    for kind in ("mosi", "mosei", "sims"):
        root = tmp_path_factory.mktemp(kind)
        (make_sims_like if kind == "sims" else make_mosi_like)(root)
        roots[kind] = root
    return roots


@pytest.mark.parametrize("kind", ["mosi", "mosei", "sims"])
@pytest.mark.parametrize("fusion", FUSIONS)
def test_every_combination_passes_the_checks_under_each_kinds_defaults(
    kind, fusion, kind_roots, capsys
):
    """The paper's settings with random weights (no hub here): widths, heads and layers follow
    from the encoders under each kind's defaults (5 fusion layers, the language's encoders)."""
    for text in _encoders("text"):
        for audio in _encoders("audio"):
            argv = [f"--encoder=text={text}", f"--encoder=audio={audio}", f"--fusion={fusion}"]
            argv += ["--dataset", str(kind_roots[kind]), "--dataset-kind", kind, "--dry-run"]
            argv += [f"{m}.checkpoint=random:tiny" for m, n in (("text", text), ("audio", audio))
                     if "checkpoint" in _fields(n)]  # fmt: skip
            code = cli.main(argv)
            captured = capsys.readouterr()
            assert code == 0, f"{argv}\n{captured.err}"
            resolved = json.loads(captured.out)
            assert resolved["data"]["kind"] == kind


def _fields(encoder: str) -> set[str]:
    import dataclasses

    return {f.name for f in dataclasses.fields(registry.load("encoder", encoder).Config)}
