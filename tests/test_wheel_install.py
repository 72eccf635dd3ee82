"""The third-party path end to end: wheels of mmml-core and of a plugin made from
``plugins/_template`` (following CONTRIBUTING.md), installed into a fresh virtual environment.

The fresh environment gets the heavy third-party dependencies (torch, numpy, ...) by a
``.pth`` file pointing at a folder of links into this environment's site-packages, minus
every mmml distribution, so the test does not download or unpack 5 GB of torch. pip does not
count a ``.pth`` folder as installed, so the wheels go in with ``--no-deps`` and the test then
checks every declared requirement of both wheels against what the new environment imports.
mmml itself only comes from the wheels built here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(*cmd: str | Path, cwd: Path | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


REQUIREMENTS_CHECK = """
import importlib.metadata as md
from packaging.requirements import Requirement
unmet = []
for dist in ("mmml-core", "mmml-fusion-gated"):
    for line in md.requires(dist) or []:
        req = Requirement(line)
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        try:
            version = md.version(req.name)
        except md.PackageNotFoundError:
            unmet.append(f"{dist}: {req} (missing)")
            continue
        if not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{dist}: {req} (have {version})")
print(unmet)
"""


def _make_plugin_from_template(dest: Path) -> Path:
    """The CONTRIBUTING.md recipe: copy the template and rename ``example`` to ``gated``."""
    plugin = dest / "mmml-fusion-gated"
    shutil.copytree(ROOT / "plugins" / "_template", plugin)
    (plugin / "src" / "mmml_fusion_example").rename(plugin / "src" / "mmml_fusion_gated")
    for path in plugin.rglob("*"):
        if path.is_file() and path.suffix in (".py", ".toml", ".md"):
            text = path.read_text().replace("mmml_fusion_example", "mmml_fusion_gated")
            text = text.replace("mmml-fusion-example", "mmml-fusion-gated")
            text = text.replace("example_gated", "gated")
            path.write_text(text)
    return plugin


def _dependency_overlay(dest: Path) -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    overlay = dest / "deps"
    overlay.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("mmml", "__editable__", "_mmml")) or name.endswith(".pth"):
            continue
        (overlay / entry.name).symlink_to(entry)
    return overlay


def test_core_and_template_plugin_wheels_install_into_a_fresh_venv(tmp_path):
    src = tmp_path / "core-src"  # build from a copy: the work tree stays clean
    src.mkdir()
    for item in ("pyproject.toml", "README.md", "src"):
        (shutil.copytree if (ROOT / item).is_dir() else shutil.copy)(ROOT / item, src / item)
    wheels = tmp_path / "wheels"
    plugin = _make_plugin_from_template(tmp_path)
    for project in (src, plugin):
        _run(
            sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", wheels, project
        )
    built = sorted(p.name for p in wheels.glob("*.whl"))
    assert [n.split("-")[0] for n in built] == ["mmml_core", "mmml_fusion_gated"], built

    venv = tmp_path / "venv"
    _run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv)
    py = venv / "bin" / "python"
    new_site = Path(
        _run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    (new_site / "zz_deps.pth").write_text(str(_dependency_overlay(tmp_path)) + "\n")
    _run(
        py,
        "-m",
        "pip",
        "install",
        "--no-index",
        "--no-deps",
        "--find-links",
        wheels,
        "mmml-core",
        "mmml-fusion-gated",
    )
    unmet = _run(py, "-c", REQUIREMENTS_CHECK).strip()
    assert unmet == "[]", f"requirements of the wheels not met: {unmet}"

    rows = json.loads(_run(venv / "bin" / "mmml-bench", "plugins", "--json"))
    gated = [r for r in rows if r["name"] == "gated"]
    assert gated == [
        {
            "kind": "fusion",
            "name": "gated",
            "value": "mmml_fusion_gated.fusion:GatedSumFusion",
            "distribution": "mmml-fusion-gated",
            "version": "0.1.0",
            "status": "available",
            "error": None,
        }
    ]
    assert {r["distribution"] for r in rows} == {"mmml-core", "mmml-fusion-gated"}
    out = _run(
        py,
        "-c",
        (
            "import mmml_core, mmml_fusion_gated\n"
            "from mmml_core import registry\n"
            "f = registry.create('fusion', 'gated', input_dims={'text': 6, 'audio': 4}, dim=5)\n"
            "print(type(f).__name__, f.out_dim, mmml_core.__file__, mmml_fusion_gated.__file__)\n"
        ),
    )
    name, out_dim, core_file, plugin_file = out.split()
    assert (name, out_dim) == ("GatedSumFusion", "5")
    assert core_file.startswith(str(venv)) and plugin_file.startswith(str(venv)), "not the wheels"
    # the plugin's own contract tests pass against the installed wheels
    _run(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", plugin / "tests", cwd=tmp_path)
