"""Wheels and fresh virtual environments for the slow install tests (``test_wheel_install.py``,
``test_new_plugin.py``).

A fresh environment gets the heavy third-party dependencies (torch, numpy, ...) by a ``.pth``
file pointing at a folder of links into this environment's site-packages, minus every mmml
distribution, so a test does not download or unpack 5 GB of torch. pip counts the linked
distributions as installed, so ``pip install --no-index --find-links WHEELS NAME`` resolves a
wheel's requirements against them (and fails on one they do not meet); mmml itself only comes
from the wheels a test builds. Only mmml wheels are ever offered to pip, so it never replaces
(uninstalls) a linked distribution.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from mmml_core import registry

ROOT = Path(__file__).resolve().parents[1]
_IGNORE = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".pytest_cache")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the test session's plugin switches (conftest.py),
    so a fresh environment autoloads its plugins as a user's would."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (registry.AUTOLOAD_ENV, registry.PLUGINS_ENV, "PYTHONPATH")
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


def run(*cmd: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=600, env=env
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def copy_core(dest: Path) -> Path:
    """mmml-core's project files (a wheel is built from a copy: the work tree stays clean)."""
    dest.mkdir(parents=True)
    for item in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / item, dest / item)
    shutil.copytree(ROOT / "src", dest / "src", ignore=_IGNORE)
    return dest


def copy_project(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest, ignore=_IGNORE)
    return dest


def build_wheel(project: Path, outdir: Path, python: str | Path = sys.executable) -> Path:
    """Build ``project``'s wheel into ``outdir`` with ``python``'s ``build`` (no isolation:
    the build requirements come from that environment); returns the wheel."""
    before = set(outdir.glob("*.whl")) if outdir.is_dir() else set()
    run(python, "-m", "build", "--wheel", "--no-isolation", "--outdir", outdir, project)
    (wheel,) = set(outdir.glob("*.whl")) - before
    return wheel


def dependency_overlay(dest: Path) -> Path:
    site = Path(sysconfig.get_paths()["purelib"])
    overlay = dest / "deps"
    overlay.mkdir()
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.startswith(("mmml", "__editable__", "_mmml")) or name.endswith(".pth"):
            continue
        (overlay / entry.name).symlink_to(entry)
    return overlay


def fresh_venv(dest: Path, *, with_pip: bool = True) -> Path:
    """A new virtual environment at ``dest/venv`` with the dependency overlay; returns its
    python. ``with_pip=False`` leaves out the venv's own pip and setuptools, so the overlay's
    (recent) ones are used, e.g. to build a plugin without isolation."""
    venv = dest / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    run(base, "-m", "venv", *([] if with_pip else ["--without-pip"]), venv)
    py = venv / "bin" / "python"
    site = run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").strip()
    (Path(site) / "zz_deps.pth").write_text(str(dependency_overlay(dest)) + "\n")
    return py
