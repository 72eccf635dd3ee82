"""The third-party path end to end: wheels of mmml-core and of a plugin written by
``mmml-bench new-plugin`` (following CONTRIBUTING.md), installed into a fresh virtual
environment.

The fresh environment gets the heavy third-party dependencies (torch, numpy, ...) through the
dependency overlay of :mod:`fresh_env`, so the test does not download or unpack 5 GB of torch.
The wheels go in with ``--no-deps`` and the test then checks every declared requirement of both
wheels against what the new environment imports. mmml itself only comes from the wheels built
here. (``test_new_plugin.py`` runs the recipe with the installed wheel's own ``mmml-bench``.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from fresh_env import clean_env, copy_core, dependency_overlay, run

pytestmark = pytest.mark.slow


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


def _make_plugin(dest: Path) -> Path:
    """The CONTRIBUTING.md recipe: ``mmml-bench new-plugin gated --kind fusion``."""
    bench = Path(sys.executable).with_name("mmml-bench")
    run(bench, "new-plugin", "gated", "--kind", "fusion", cwd=dest)
    return dest / "mmml-fusion-gated"


def test_core_and_scaffolded_plugin_wheels_install_into_a_fresh_venv(tmp_path):
    src = copy_core(tmp_path / "core-src")  # build from a copy: the work tree stays clean
    wheels = tmp_path / "wheels"
    plugin = _make_plugin(tmp_path)
    for project in (src, plugin):
        run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", wheels, project)
    built = sorted(p.name for p in wheels.glob("*.whl"))
    assert [n.split("-")[0] for n in built] == ["mmml_core", "mmml_fusion_gated"], built

    venv = tmp_path / "venv"
    run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", venv)
    py = venv / "bin" / "python"
    new_site = Path(
        run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    )
    (new_site / "zz_deps.pth").write_text(str(dependency_overlay(tmp_path)) + "\n")
    env = clean_env()  # autoloading on, as for a user
    run(
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
    unmet = run(py, "-c", REQUIREMENTS_CHECK).strip()
    assert unmet == "[]", f"requirements of the wheels not met: {unmet}"

    rows = json.loads(run(venv / "bin" / "mmml-bench", "plugins", "--json", env=env))
    gated = [r for r in rows if r["name"] == "gated"]
    assert gated == [
        {
            "kind": "fusion",
            "name": "gated",
            "value": "mmml_fusion_gated.fusion:GatedFusion",
            "distribution": "mmml-fusion-gated",
            "version": "0.1.0",
            "status": "available",
            "error": None,
        }
    ]
    assert {r["distribution"] for r in rows} == {"mmml-core", "mmml-fusion-gated"}
    out = run(
        py,
        "-c",
        (
            "import mmml_core, mmml_fusion_gated\n"
            "from mmml_core import registry\n"
            "f = registry.create('fusion', 'gated', input_dims={'text': 6, 'audio': 4}, dim=5)\n"
            "print(type(f).__name__, f.out_dim, mmml_core.__file__, mmml_fusion_gated.__file__)\n"
        ),
        env=env,
    )
    name, out_dim, core_file, plugin_file = out.split()
    assert (name, out_dim) == ("GatedFusion", "5")
    assert core_file.startswith(str(venv)) and plugin_file.startswith(str(venv)), "not the wheels"
    # the plugin's own contract tests pass against the installed wheels
    run(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin, env=env)
