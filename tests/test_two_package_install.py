"""The users' install, exactly as the README tells it: ``pip install mmml-core
mmml-fusion-transformer`` into a fresh virtual environment (from wheels built here), then
``mmml-bench --encoder data2vec --fusion cross_attn`` (made short the documented way) trains.

The MMML fusion package depends on the encoders it was designed for (mmml-encoders-hf), so pip
brings them; the third-party dependencies come from the dependency overlay of
:mod:`fresh_env` and pip resolves every requirement against them (``--no-index``: only the
wheels built here are offered). A core-only environment shows the other half: a missing
component's error names the distribution that provides it.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from fresh_env import ROOT, build_wheel, clean_env, copy_core, copy_project, fresh_venv, run

pytestmark = pytest.mark.slow

SHORT = ["--seeds", "1", "train.max_epochs=1", "data.max_items=16", "--no-progress"]


@pytest.fixture(scope="module")
def wheels(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheels")
    out = tmp / "dist"
    build_wheel(copy_core(tmp / "core"), out)
    for name in ("mmml-encoders-hf", "mmml-fusion-transformer"):
        build_wheel(copy_project(ROOT / "plugins" / name, tmp / name), out)
    return out


def _install(tmp_path, wheels, *names: str):
    py = fresh_venv(tmp_path, with_pip=False)  # the overlay's pip and setuptools (>= 77)
    env = clean_env()
    run(py, "-m", "pip", "install", "--no-index", "--find-links", wheels, *names, env=env)
    return py, env


def test_the_two_package_install_trains_the_headline_command(tmp_path, wheels):
    py, env = _install(tmp_path, wheels, "mmml-core", "mmml-fusion-transformer")
    listed = json.loads(run(py, "-m", "pip", "list", "--format", "json", env=env))
    mmml = sorted(d["name"] for d in listed if d["name"].startswith("mmml"))
    assert mmml == ["mmml-core", "mmml-encoders-hf", "mmml-fusion-transformer"], mmml
    bench = py.with_name("mmml-bench")
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        [str(bench), "--encoder", "data2vec", "--fusion", "cross_attn", *SHORT],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    (run_dir,) = (work / "runs").iterdir()
    summary = (run_dir / "summary.md").read_text()
    assert "M (fused)" in summary and "T (text subnet)" in summary
    config = json.loads((run_dir / "seed-1" / "best_loss" / "config.json").read_text())
    sources = {role: c["distribution"] for role, c in config["components"].items()}
    assert sources["encoder.audio"] == "mmml-encoders-hf"
    assert sources["fusion"] == "mmml-fusion-transformer"
    where = run(py, "-c", "import mmml_encoders_hf; print(mmml_encoders_hf.__file__)", env=env)
    assert where.startswith(str(tmp_path / "venv")), "not the wheel"


def test_a_missing_component_names_the_distribution_that_provides_it(tmp_path, wheels):
    py, env = _install(tmp_path, wheels, "mmml-core")
    proc = subprocess.run(
        [str(py.with_name("mmml-bench")), "--encoder", "data2vec", "--fusion", "cross_attn",
         "--dry-run"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert (
        "no encoder named 'data2vec' (it is provided by mmml-encoders-hf: pip install "
        "mmml-encoders-hf)" in proc.stderr
    )
    assert (
        "no fusion named 'cross_attn' (it is provided by mmml-fusion-transformer: pip install "
        "mmml-fusion-transformer)" in proc.stderr
    )


def test_the_index_of_first_party_names_matches_the_plugins_entry_points():
    """registry.FIRST_PARTY must say what the plugins under plugins/ really register."""
    if sys.version_info < (3, 11):
        pytest.skip("tomllib is Python 3.11+")
    import tomllib

    from mmml_core import registry

    declared = {}
    for pyproject in sorted((ROOT / "plugins").glob("*/pyproject.toml")):
        project = tomllib.loads(pyproject.read_text())["project"]
        for group, entries in project.get("entry-points", {}).items():
            kind = {g: k for k, g in registry.GROUPS.items()}.get(group)
            if kind is not None:
                declared.update({(kind, name): project["name"] for name in entries})
    assert declared == registry.FIRST_PARTY
