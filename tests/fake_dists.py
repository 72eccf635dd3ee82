"""Distributions installed for real into a folder: ``<name>-<version>.dist-info`` with
``METADATA`` and ``entry_points.txt``, plus the plugin's modules. Put the folder on
``PYTHONPATH`` of a real ``mmml-bench`` subprocess and ``importlib.metadata`` finds them
like any installed plugin."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from mmml_core import registry

BENCH = str(Path(sys.executable).with_name("mmml-bench"))


def install(
    site: Path,
    name: str,
    version: str,
    entry_points: Mapping[str, Mapping[str, str]],
    modules: Mapping[str, str],
) -> None:
    """Install distribution ``name`` into ``site``: ``entry_points`` maps group -> {entry name:
    value}; ``modules`` maps module name -> source (dedented)."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    sections = []
    for group, entries in entry_points.items():
        sections.append(f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items()))
    (info / "entry_points.txt").write_text("\n".join(sections))
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))


def bench(
    *args: str, site: Path | None = None, cwd: Path | None = None, timeout: float = 600, **env: str
) -> subprocess.CompletedProcess:
    """The venv's real ``mmml-bench`` (``site`` on its path when given), with this test
    session's plugin settings (conftest.py: the distributions the module says it needs)."""
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full.update(PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1", **env)
    if site is not None:
        full["PYTHONPATH"] = str(site)
    return subprocess.run(
        [BENCH, *args], capture_output=True, text=True, timeout=timeout, env=full, cwd=cwd
    )


#: mmml's own plugin distributions (the packages under plugins/).
FIRST_PARTY = (
    "mmml-encoders-hf",
    "mmml-fusion-transformer",
    "mmml-fusion-tfn",
    "mmml-audio-opensmile",
    "mmml-audio-mel",
    "mmml-encoders-video",
)


@contextmanager
def plugins_enabled(*distributions: str) -> Iterator[None]:
    """Allow these plugin distributions for code that runs at collection time (the test
    session itself runs with autoloading off, see conftest.py)."""
    before = os.environ.get(registry.PLUGINS_ENV)
    os.environ[registry.PLUGINS_ENV] = ",".join(distributions)
    registry.reset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(registry.PLUGINS_ENV, None)
        else:
            os.environ[registry.PLUGINS_ENV] = before
        registry.reset()
