"""``mmml-bench new-plugin``: every kind's scaffold is a working plugin, and the CONTRIBUTING.md
recipe works from mmml-core's wheel alone (the templates ship inside it).

Fast tests scaffold every kind into a temporary folder and run the scaffolds' own tests (mmml's
contracts included) in one subprocess, with each plugin "installed" by hand: its ``src`` on the
path and a ``dist-info`` with the entry points of its ``pyproject.toml``. The slow test builds
wheels, installs mmml-core's into a fresh virtual environment, scaffolds with the installed
``mmml-bench``, builds and installs the plugin there, runs its tests and trains with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fake_dists import BENCH
from fresh_env import ROOT, build_wheel, clean_env, copy_core, copy_project, fresh_venv, run

import mmml_core
from mmml_core import cli, registry


def _toml(path: Path) -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    return tomllib.loads(path.read_text())


#: (registry name, kind, modality): one scaffold of each template
SCAFFOLDS = [
    ("gated", "fusion", None),
    ("frames", "encoder", "audio"),
    ("bytes", "encoder", "text"),
    ("mlp2", "head", None),
    ("huber", "loss", None),
]


def _new_plugin(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [BENCH, "new-plugin", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


@pytest.fixture(scope="module")
def scaffolds(tmp_path_factory) -> dict[str, Path]:
    """Registry name -> plugin folder, written by ``mmml-bench new-plugin`` (in process)."""
    root = tmp_path_factory.mktemp("scaffolds")
    out = {}
    for name, kind, modality in SCAFFOLDS:
        dest = root / f"{kind}-{name}"
        argv = ["new-plugin", name, "--kind", kind, "--dest", str(dest)]
        assert cli.main(argv + (["--modality", modality] if modality else [])) == 0
        out[name] = dest
    return out


def _install_by_hand(plugins: dict[str, Path], site: Path) -> tuple[list[str], list[str]]:
    """A ``dist-info`` per plugin (its pyproject's name, version and entry points) in ``site``;
    returns the distributions and the paths (``site`` and every plugin's ``src``)."""
    dists, paths = [], [str(site)]
    for folder in plugins.values():
        project = _toml(folder / "pyproject.toml")["project"]
        info = site / f"{project['name'].replace('-', '_')}-{project['version']}.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
        )
        (info / "entry_points.txt").write_text(
            "".join(
                f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
                for group, entries in project["entry-points"].items()
            )
        )
        dists.append(project["name"])
        paths.append(str(folder / "src"))
    return dists, paths


def _hermetic_env(dists: list[str], paths: list[str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(
        PYTHONPATH=os.pathsep.join(paths),
        PYTHONDONTWRITEBYTECODE="1",
        **{registry.AUTOLOAD_ENV: "1", registry.PLUGINS_ENV: ",".join(dists)},
    )
    return env


def test_every_kind_scaffolds_a_complete_package(scaffolds):
    for name, kind, modality in SCAFFOLDS:
        folder = scaffolds[name]
        package = f"mmml_{kind}_{name}"
        files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
        assert files == sorted(
            [
                ".gitignore",
                "README.md",
                "pyproject.toml",
                f"src/{package}/__init__.py",
                f"src/{package}/{kind}.py",
                f"src/{package}/py.typed",
                f"tests/test_{name}.py",
            ]
        ), files
        meta = _toml(folder / "pyproject.toml")
        assert meta["build-system"]["requires"] == ["setuptools>=77"]
        project = meta["project"]
        assert project["name"] == f"mmml-{kind}-{name}"
        deps = {d.split(">")[0]: d for d in project["dependencies"]}
        major, minor = (int(p) for p in mmml_core.__version__.split(".")[:2])
        assert deps["mmml-core"] == f"mmml-core>={major}.{minor},<{major}.{minor + 1}"
        assert deps["torch"] == "torch>=2.4"
        assert not any("==" in d for d in project["dependencies"]), "ranges, never pins"
        assert any(d.startswith("pytest") for d in project["optional-dependencies"]["test"])
        cls = "".join(p.capitalize() for p in name.split("_")) + kind.capitalize()
        assert project["entry-points"] == {registry.GROUPS[kind]: {name: f"{package}.{kind}:{cls}"}}
        assert meta["tool"]["setuptools"]["package-data"] == {package: ["py.typed"]}
        readme = (folder / "README.md").read_text()
        for step in ("pip install -e '.[test]'", "pip install build", "python -m build"):
            assert step in readme, (name, step)
        module = (folder / "src" / package / f"{kind}.py").read_text()
        assert f"class {cls}(" in module and f"class {cls}Config" in module
        if modality:
            assert f'modality = "{modality}"' in module
        assert "{{" not in readme + module


def test_scaffolds_pass_their_own_tests_and_contracts(scaffolds, tmp_path):
    """The scaffolds' tests as written (mmml's contract for each kind, padding invariance of
    both encoders included, and the checks of what each component computes), all in one
    pytest subprocess, each plugin found through its own entry points."""
    dists, paths = _install_by_hand(scaffolds, tmp_path / "site")
    tests = [str(folder / "tests") for folder in scaffolds.values()]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider"]
        + ["--import-mode=importlib", *tests],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=_hermetic_env(dists, paths),
    )
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert "skipped" not in summary, summary
    for cls in ("GatedFusion", "FramesEncoder", "BytesEncoder", "Mlp2Head", "HuberLoss"):
        assert f"::Test{cls}::test_config_round_trip PASSED" in proc.stdout, cls
    for cls in ("FramesEncoder", "BytesEncoder"):
        assert f"::Test{cls}::test_padding_invariance PASSED" in proc.stdout, cls


def test_scaffolds_pass_ruff(scaffolds):
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed")
    for folder in scaffolds.values():
        for args in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
            proc = subprocess.run([ruff, *args], cwd=folder, capture_output=True, text=True)
            assert proc.returncode == 0, f"{folder.name}: ruff {args[0]}\n{proc.stdout}"


def test_scaffolds_work_together_in_a_run(scaffolds, tmp_path):
    """The READMEs' ways to use each kind (`--fusion`, `--encoder MODALITY=`, `[model] head`
    in a config file, `--loss`, and a config field of each) in one real dry run."""
    dists, paths = _install_by_hand(scaffolds, tmp_path / "site")
    (tmp_path / "mlp2.toml").write_text('[model]\nhead = "mlp2"\nsubnet_head = "mlp2"\n')
    proc = subprocess.run(
        [BENCH, "--fusion", "gated", "--encoder", "audio=frames", "--encoder", "text=bytes"]
        + ["--config", "mlp2.toml", "--loss", "huber", "--seeds", "1", "--dry-run"]
        + ["fusion.dim=32", "audio.dim=32", "text.dim=16", "head.hidden=32", "loss.delta=0.5"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=_hermetic_env(dists, paths),
    )
    assert proc.returncode == 0, proc.stderr
    resolved = json.loads(proc.stdout)
    model = resolved["model"]
    assert {m: e["name"] for m, e in model["encoders"].items()} == {
        "text": "bytes",
        "audio": "frames",
    }
    assert model["fusion"]["name"] == "gated" and model["fusion"]["config"]["dim"] == 32
    assert model["head"]["name"] == "mlp2" and model["subnet_head"]["name"] == "mlp2"
    assert resolved["loss"]["name"] == "huber" and resolved["loss"]["config"]["delta"] == 0.5


@pytest.mark.parametrize("name", ["Gated", "gated-sum", "2fast", "gated__sum"])
def test_a_bad_name_is_one_error_line(name, tmp_path):
    proc = _new_plugin(name, "--kind", "fusion", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("mmml-bench new-plugin: error: invalid plugin name")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert list(tmp_path.iterdir()) == [], "nothing is written"


def test_an_existing_folder_is_never_overwritten(tmp_path):
    dest = tmp_path / "mmml-fusion-gated"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    proc = _new_plugin("gated", "--kind", "fusion", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"mmml-bench new-plugin: error: {dest.name} already exists and is not empty; "
        "choose another --dest or remove it\n"
    )
    assert [p.name for p in dest.iterdir()] == ["mine.txt"]
    assert (dest / "mine.txt").read_text() == "keep me"
    # an empty folder is fine, and so is --dest
    (tmp_path / "empty").mkdir()
    assert _new_plugin("gated", "--kind", "fusion", "--dest", "empty", cwd=tmp_path).returncode == 0
    assert (tmp_path / "empty" / "src" / "mmml_fusion_gated" / "fusion.py").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["concat", "--kind", "fusion"], "fusion 'concat' is already registered by mmml-core"),
        (["none", "--kind", "fusion"], "'none' is reserved for fusions"),
        (["gated", "--kind", "fusion", "--modality", "text"], "--modality applies to --kind"),
        (["wave", "--kind", "encoder", "--modality", "smell"], "no encoder template for"),
    ],
)
def test_other_refusals_are_one_error_line(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["new-plugin", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"mmml-bench new-plugin: error: {message}") and err.count("\n") == 1


@pytest.mark.slow
def test_recipe_from_the_installed_wheel_scaffolds_builds_tests_and_trains(tmp_path):
    """CONTRIBUTING.md's recipe with nothing but wheels: mmml-core's wheel (the templates inside
    it) in a fresh environment, its `mmml-bench new-plugin`, the plugin built with `python -m
    build` and installed with its test extra, its tests, and a short run with the new fusion
    on the bundled demo set (whose default encoders come from mmml-encoders-hf's wheel)."""
    wheels = tmp_path / "wheels"
    core = build_wheel(copy_core(tmp_path / "core-src"), wheels)
    with zipfile.ZipFile(core) as whl:
        names = whl.namelist()
    shipped = sorted(n for n in names if n.startswith("mmml_core/scaffold/templates/"))
    source = ROOT / "src" / "mmml_core" / "scaffold" / "templates"
    expected = sorted(
        f"mmml_core/{p.relative_to(source.parents[1])}" for p in source.rglob("*.tmpl")
    )
    assert shipped == expected and "mmml_core/scaffold/__init__.py" in names, shipped
    assert "mmml_core/scaffold/templates/fusion/module.py.tmpl" in shipped
    hf = copy_project(ROOT / "plugins" / "mmml-encoders-hf", tmp_path / "hf-src")
    build_wheel(hf, wheels)

    py = fresh_venv(tmp_path, with_pip=False)  # pip, setuptools and build from the overlay
    env = clean_env()
    pip = [py, "-m", "pip", "install", "--no-index", "--find-links", wheels]
    run(*pip, "mmml-core", env=env)  # its requirements resolve against the overlay
    bench = py.parent / "mmml-bench"
    where = run(py, "-c", "import mmml_core.scaffold as s; print(s.__file__)", env=env)
    assert where.startswith(str(tmp_path / "venv")), f"not the wheel's mmml-core: {where}"

    work = tmp_path / "work"
    work.mkdir()
    out = run(bench, "new-plugin", "gated", "--kind", "fusion", cwd=work, env=env)
    plugin = work / "mmml-fusion-gated"
    assert out.startswith(f"created {plugin.name}"), out
    build_wheel(plugin, wheels, python=py)  # `python -m build` in the user's environment
    run(*pip, "mmml-fusion-gated[test]", "mmml-encoders-hf", env=env)

    rows = json.loads(run(bench, "plugins", "--json", env=env))
    gated = [r for r in rows if r["name"] == "gated"]
    assert [(r["kind"], r["value"], r["distribution"]) for r in gated] == [
        ("fusion", "mmml_fusion_gated.fusion:GatedFusion", "mmml-fusion-gated")
    ]
    assert {r["distribution"] for r in rows} == {
        "mmml-core",
        "mmml-fusion-gated",
        "mmml-encoders-hf",
    }

    tests = run(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=plugin, env=env)
    assert "passed" in tests and "failed" not in tests, tests

    runs = tmp_path / "run"
    run(
        bench,
        "--fusion",
        "gated",
        "--seeds",
        "1",
        "train.max_epochs=1",
        "data.max_items=16",
        "--no-progress",
        "--out",
        runs,
        cwd=work,
        env=env,
    )
    for made in ("summary.md", "results.json", "seed-1/results.json", "seed-1/best_loss"):
        assert (runs / made).exists(), made
    config = json.loads((runs / "config.json").read_text())
    assert config["model"]["fusion"]["name"] == "gated"


def test_new_plugin_imports_no_torch(tmp_path):
    code = (
        "import sys, contextlib, io\n"
        "from mmml_core.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main(['new-plugin', 'gated', '--kind', 'encoder', '--dest', {str(tmp_path / 'p')!r}])\n"
        "print(rc, 'torch' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "0 False", proc.stdout + proc.stderr
