"""Hook plugins installed for real: distributions on disk (``*.dist-info`` with ``METADATA``
and ``entry_points.txt``) found through ``PYTHONPATH`` by real ``mmml-bench`` processes.

A hook plugin that cannot be used must not take ``mmml-bench`` down with it: ``--help`` and
training keep working with one warning line per broken plugin, ``mmml-bench plugins`` lists it
(importing nothing), and ``mmml-bench plugins --check`` reports it and exits 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmml_core import registry

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")  # dry runs

# The good plugin records its import and its configure_run call in files named by these
# variables, so a test can see from outside whether a process imported / called it.
GOOD = """
import os
from mmml_core.hooks import hookimpl

if os.environ.get("HOOK_TEST_IMPORTED"):
    with open(os.environ["HOOK_TEST_IMPORTED"], "a") as f:
        f.write("imported\\n")

@hookimpl
def mmml_add_cli_options(parser):
    parser.add_argument("--good-flag", default="unset")

@hookimpl
def mmml_configure_run(run_config, options):
    if os.environ.get("HOOK_TEST_CONFIGURED"):
        with open(os.environ["HOOK_TEST_CONFIGURED"], "w") as f:
            f.write(options["good_flag"])
"""

CRASH = "raise RuntimeError('tracker server unreachable')\n"
QUIT = "import sys\nsys.exit('no licence')\n"
TYPO = """
from mmml_core.hooks import hookimpl

@hookimpl
def mmml_add_cli_options(parser):
    parser.add_argument("--typo-flag")

@hookimpl
def mmml_repot_results(run_dir, results):
    pass
"""


def _install(site: Path, name: str, version: str, entry: str, module: str, source: str) -> None:
    """A distribution ``name`` whose entry point ``entry`` registers the module ``module``."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[{registry.HOOK_GROUP}]\n{entry} = {module}\n")
    (site / f"{module}.py").write_text(textwrap.dedent(source))


def _bench(site: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run the venv's ``mmml-bench`` with ``site`` on the path, loading the distributions
    installed there (and no other plugin of this environment, such as a real hook plugin)
    unless ``env`` says otherwise."""
    full = {k: v for k, v in os.environ.items() if k not in (registry.AUTOLOAD_ENV, "PYTHONPATH")}
    fakes = [p.name.split("-")[0].replace("_", "-") for p in site.glob("*.dist-info")]
    fakes += os.environ.get(registry.PLUGINS_ENV, "").split(",")  # the module's (conftest.py)
    full.update(
        {registry.AUTOLOAD_ENV: "1", registry.PLUGINS_ENV: ",".join(fakes)},
        PYTHONPATH=str(site),
        PYTHONDONTWRITEBYTECODE="1",
    )
    full.update(env)
    exe = Path(sys.executable).with_name("mmml-bench")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300, env=full)


def _hermetic(*dists: str) -> dict[str, str]:
    """Only mmml-core's own components and these distributions: ``--check`` imports no
    third-party model code, which keeps it fast."""
    return {registry.AUTOLOAD_ENV: "1", registry.PLUGINS_ENV: ",".join(dists)}


def _warnings(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("mmml-bench: warning: hook plugin")]


def _hook_rows(stdout: str) -> dict[str, dict]:
    """The hook rows of this test's distributions (installed hook plugins are listed too)."""
    return {r["name"]: r for r in _ours(json.loads(stdout)) if r["kind"] == "hook"}


def _ours(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["distribution"].startswith("mmml-hook-")]


def test_hook_plugins_that_raise_at_import_break_nothing(tmp_path):
    site = tmp_path / "site"
    _install(site, "mmml-hook-crash", "1.2", "crash", "crash_hook_plugin", CRASH)
    _install(site, "mmml-hook-quit", "0.3", "quitter", "quit_hook_plugin", QUIT)
    _install(site, "mmml-hook-good", "2.0", "good", "good_hook_plugin", GOOD)
    imported = tmp_path / "imported.txt"
    expected_warnings = [
        "mmml-bench: warning: hook plugin 'crash' (mmml-hook-crash 1.2) is broken and was not "
        "loaded: RuntimeError: tracker server unreachable",
        "mmml-bench: warning: hook plugin 'quitter' (mmml-hook-quit 0.3) is broken and was not "
        "loaded: SystemExit: no licence",
    ]

    proc = _bench(site, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--good-flag" in proc.stdout, "the good plugin still adds its option"
    assert _warnings(proc.stderr) == expected_warnings

    proc = _bench(site, "plugins", "--json", HOOK_TEST_IMPORTED=str(imported))
    assert proc.returncode == 0, proc.stderr
    rows = _hook_rows(proc.stdout)
    assert {n: (r["distribution"], r["version"], r["status"]) for n, r in rows.items()} == {
        "crash": ("mmml-hook-crash", "1.2", "available"),
        "good": ("mmml-hook-good", "2.0", "available"),
        "quitter": ("mmml-hook-quit", "0.3", "available"),
    }
    assert not imported.exists(), "listing must not import hook plugins"

    dists = _hermetic("mmml-hook-crash", "mmml-hook-quit", "mmml-hook-good")
    proc = _bench(site, "plugins", "--check", **dists)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    table = [ln.split() for ln in proc.stdout.splitlines() if ln.startswith("hook ")]
    assert table == [
        ["hook", "crash", "mmml-hook-crash", "1.2", "broken"],
        ["hook", "good", "mmml-hook-good", "2.0", "loaded"],
        ["hook", "quitter", "mmml-hook-quit", "0.3", "broken"],
    ]
    crash = "broken: hook 'crash' (mmml-hook-crash 1.2): RuntimeError: tracker server unreachable"
    assert crash in proc.stdout
    assert "broken: hook 'quitter' (mmml-hook-quit 0.3): SystemExit: no licence" in proc.stdout
    assert "fusion" in proc.stdout and "loaded" in proc.stdout  # the components were checked
    assert _warnings(proc.stderr) == [], "--check reports problems once, in its own output"

    configured = tmp_path / "configured.txt"
    proc = _bench(site, "--dry-run", "--good-flag", "on", HOOK_TEST_CONFIGURED=str(configured))
    assert proc.returncode == 0, proc.stderr
    assert _warnings(proc.stderr) == expected_warnings
    assert configured.read_text() == "on", "the good plugin's hooks ran"


def test_a_misspelt_hook_is_reported_with_the_hook_it_meant(tmp_path):
    site = tmp_path / "site"
    _install(site, "mmml-hook-typo", "0.1", "typo", "typo_hook_plugin", TYPO)

    proc = _bench(site, "plugins", "--check", "--kind", "hook", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [row] = _ours(json.loads(proc.stdout))
    assert (row["kind"], row["name"], row["distribution"], row["version"], row["status"]) == (
        "hook",
        "typo",
        "mmml-hook-typo",
        "0.1",
        "broken",
    )
    assert (
        "unknown hook 'mmml_repot_results' (did you mean 'mmml_report_results'?)" in (row["error"])
    )
    assert (
        "mmml_add_cli_options, mmml_configure_run, mmml_epoch_end, mmml_report_results, "
        "mmml_seed_end" in row["error"]
    )
    assert "mmml_repot_results" in proc.stderr, "--json keeps stdout JSON, problems on stderr"

    proc = _bench(site, "--help")
    assert proc.returncode == 0, proc.stderr
    assert "--typo-flag" not in proc.stdout, "a broken plugin is left out entirely"
    [warning] = _warnings(proc.stderr)
    assert "'typo' (mmml-hook-typo 0.1)" in warning and "did you mean 'mmml_report_results'?" in (
        warning
    )


def test_a_good_hook_plugin_is_listed_loaded_and_passes_the_check(tmp_path):
    site = tmp_path / "site"
    _install(site, "mmml-hook-good", "2.0", "good", "good_hook_plugin", GOOD)
    imported = tmp_path / "imported.txt"

    proc = _bench(site, "plugins", HOOK_TEST_IMPORTED=str(imported))
    assert proc.returncode == 0, proc.stderr
    assert ["hook", "good", "mmml-hook-good", "2.0", "available"] in [
        ln.split() for ln in proc.stdout.splitlines()
    ]
    assert not imported.exists()

    env = _hermetic("mmml-hook-good")
    proc = _bench(site, "plugins", "--check", "--json", HOOK_TEST_IMPORTED=str(imported), **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = json.loads(proc.stdout)
    assert _hook_rows(proc.stdout)["good"]["status"] == "loaded"
    assert {r["status"] for r in rows} == {"loaded"}, "components were imported too"
    assert imported.read_text() == "imported\n"

    proc = _bench(site, "--help")
    assert proc.returncode == 0 and "--good-flag" in proc.stdout
    assert _warnings(proc.stderr) == []
