"""Each ``mmml_`` hook is called by the real CLI path, from a plugin found by entry point; hook
plugins that cannot be used are left out and reported, not fatal (fake distributions here,
real ones on disk in ``test_hook_plugins.py``)."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import io
import json
import sys
import textwrap

import pytest
from harness_data import make_learnable_mosi

from mmml_core import hooks, registry
from mmml_core.cli import main

# mmml-tracker: the fake hook distribution of the first test
pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer", "mmml-tracker")

PLUGIN = """
from mmml_core.hooks import hookimpl

CALLS = []

@hookimpl
def mmml_add_cli_options(parser):
    parser.add_argument("--tracker-project", default=None)
    CALLS.append("add_cli_options")

@hookimpl
def mmml_configure_run(run_config, options):
    CALLS.append(("configure_run", options["tracker_project"]))
    run_config.setdefault("train", {})["max_epochs"] = 1  # a plugin may adjust the run

@hookimpl
def mmml_epoch_end(seed_dir, seed, epoch, metrics):
    CALLS.append(("epoch_end", seed_dir, seed, epoch, metrics))

@hookimpl
def mmml_seed_end(seed_dir, seed, results):
    CALLS.append(("seed_end", seed_dir, seed, results["epochs"]))

@hookimpl
def mmml_report_results(run_dir, results):
    CALLS.append(("report_results", run_dir, sorted(results)))
"""


class _Dist:
    metadata = {"Name": "mmml-tracker"}
    version = "1.0"
    entry_points = [md.EntryPoint("tracker", "fake_tracker_plugin", "mmml_core.plugins")]


def test_hooks_are_called_by_a_training_run(tmp_path, monkeypatch):
    (tmp_path / "fake_tracker_plugin.py").write_text(textwrap.dedent(PLUGIN))
    monkeypatch.syspath_prepend(str(tmp_path))
    real = list(md.distributions())
    monkeypatch.setattr(registry, "_distributions", lambda: [*real, _Dist()])
    registry.reset()
    hooks.reset()
    data = make_learnable_mosi(tmp_path / "data", {"train": 8, "valid": 4, "test": 4})
    out = tmp_path / "run"
    argv = [
        "--dataset",
        str(data),
        "--dataset-kind",
        "mosi",
        "--modalities",
        "text",
        "--seeds",
        "1",
        "--out",
        str(out),
        "--no-progress",
        "--tracker-project",
        "demo-proj",
        "--json",
        "text.checkpoint=random:tiny",
        "train.max_epochs=5",
    ]
    stdout = io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout):
            assert main(argv) == 0
        calls = sys.modules["fake_tracker_plugin"].CALLS
    finally:
        registry.reset()
        hooks.reset()
    assert calls[0] == "add_cli_options"
    assert calls[1] == ("configure_run", "demo-proj")
    seed_dir = str(out / "seed-1")
    assert calls[2][:4] == ("epoch_end", seed_dir, 1, 1)  # the one epoch configure_run left
    metrics = calls[2][4]
    history = json.loads((out / "seed-1" / "results.json").read_text())["history"]
    assert metrics["train/loss"] == history[0]["train_loss"]
    assert metrics["valid/T/Has0_Acc2"] == history[0]["valid_acc2"]  # the text-only model's head
    assert {"valid/loss", "valid/T/MAE", "samples_per_s", "epoch_s"} <= set(metrics)
    assert any(k.startswith("lr/") for k in metrics) and all(
        type(v) is float for v in metrics.values()
    )
    assert calls[3] == ("seed_end", seed_dir, 1, 1)
    assert calls[4][:2] == ("report_results", str(out))
    # the results.json data; the run layer may add keys, these are the ones a tracker relies on
    assert set(calls[4][2]) >= {"aggregate", "config", "runs", "scheme", "seeds"}
    assert json.loads((out / "seed-1" / "results.json").read_text())["epochs"] == 1


class FakeDist:
    """Just what discovery reads of an ``importlib.metadata.Distribution``."""

    def __init__(self, name: str, version: str, entries: dict[str, str]):
        self.metadata = {"Name": name}
        self.version = version
        self.entry_points = [md.EntryPoint(n, v, registry.HOOK_GROUP) for n, v in entries.items()]


@pytest.fixture
def hook_env(monkeypatch, tmp_path):
    """Only fake hook distributions (a list the test fills); ``write`` creates their modules."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(registry.AUTOLOAD_ENV, raising=False)
    dists: list[FakeDist] = []
    monkeypatch.setattr(registry, "_distributions", lambda: list(dists))
    registry.reset()
    hooks.reset()
    written: list[str] = []

    def write(module: str, source: str) -> None:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(module, None)
        written.append(module)

    yield dists, write
    for module in written:
        sys.modules.pop(module, None)
    registry.reset()
    hooks.reset()


GOOD = """
from mmml_core.hooks import hookimpl

SEEN = []

@hookimpl
def mmml_report_results(run_dir, results):
    SEEN.append(run_dir)
"""


def _rows() -> dict[str, registry.ComponentInfo]:
    return {i.name: i for i in hooks.describe_plugins()}


def test_plugins_that_fail_to_import_are_left_out_with_one_warning_each(hook_env, capsys):
    dists, write = hook_env
    write("fake_hook_crash", "raise RuntimeError('tracker server unreachable')\n")
    write("fake_hook_exit", "import sys\nsys.exit('no licence')\n")
    write("fake_hook_good", GOOD)
    dists.append(FakeDist("mmml-crash", "1.2", {"crash": "fake_hook_crash"}))
    dists.append(FakeDist("mmml-exit", "0.3", {"quitter": "fake_hook_exit"}))
    dists.append(FakeDist("mmml-good", "2.0", {"good": "fake_hook_good"}))

    listed = _rows()  # metadata only: nothing imported yet
    assert {n: i.status for n, i in listed.items()} == dict.fromkeys(listed, "available")
    assert "fake_hook_good" not in sys.modules and "fake_hook_crash" not in sys.modules

    pm = hooks.get_plugin_manager()
    pm.hook.mmml_report_results(run_dir="/runs/x", results={})
    assert sys.modules["fake_hook_good"].SEEN == ["/runs/x"]
    assert pm.get_plugin("crash") is None and pm.get_plugin("quitter") is None
    rows = _rows()
    assert (rows["good"].kind, rows["good"].status, rows["good"].error) == ("hook", "loaded", None)
    assert rows["crash"].status == "broken"
    assert rows["crash"].error == "RuntimeError: tracker server unreachable"
    assert (rows["quitter"].status, rows["quitter"].error) == ("broken", "SystemExit: no licence")
    assert [i.name for i in hooks.broken_plugins()] == ["crash", "quitter"]

    assert capsys.readouterr().err.splitlines() == [
        "mmml-bench: warning: hook plugin 'crash' (mmml-crash 1.2) is broken and was not "
        "loaded: RuntimeError: tracker server unreachable",
        "mmml-bench: warning: hook plugin 'quitter' (mmml-exit 0.3) is broken and was not "
        "loaded: SystemExit: no licence",
    ]
    assert hooks.get_plugin_manager() is pm
    assert capsys.readouterr().err == "", "warned once, when the manager is built"


def test_a_misspelt_hook_makes_the_plugin_broken_naming_the_hook_it_meant(hook_env, capsys):
    dists, write = hook_env
    write(
        "fake_hook_typo",
        """
        from mmml_core.hooks import hookimpl
        CALLED = []

        @hookimpl
        def mmml_configure_run(run_config, options):
            CALLED.append("configure_run")

        @hookimpl
        def mmml_repot_results(run_dir, results):
            CALLED.append("report")

        @hookimpl
        def mmml_frobnicate():
            CALLED.append("frobnicate")
        """,
    )
    write("fake_hook_good", GOOD)
    dists.append(FakeDist("mmml-typo", "0.1", {"typo": "fake_hook_typo"}))
    dists.append(FakeDist("mmml-good", "2.0", {"good": "fake_hook_good"}))
    pm = hooks.get_plugin_manager(warn=False)
    assert capsys.readouterr().err == ""
    [broken] = hooks.broken_plugins()
    assert (broken.name, broken.distribution, broken.version) == ("typo", "mmml-typo", "0.1")
    assert broken.error == (
        "unknown hooks 'mmml_frobnicate', 'mmml_repot_results' (did you mean "
        "'mmml_report_results'?); the hooks are "
        + ", ".join(
            [
                "mmml_add_cli_options",
                "mmml_configure_run",
                "mmml_epoch_end",
                "mmml_report_results",
                "mmml_seed_end",
            ]
        )
    )
    # left out entirely: its correctly named hook is not called either
    assert pm.get_plugin("typo") is None and pm.get_plugin("good") is not None
    pm.hook.mmml_configure_run(run_config={}, options={})
    pm.hook.mmml_report_results(run_dir="r", results={})
    assert sys.modules["fake_hook_typo"].CALLED == []
    pm.check_pending()  # what is left is valid


def test_a_hookimpl_with_arguments_the_spec_lacks_is_broken(hook_env):
    dists, write = hook_env
    write(
        "fake_hook_args",
        """
        from mmml_core.hooks import hookimpl

        @hookimpl
        def mmml_report_results(run_dir, result):
            pass
        """,
    )
    dists.append(FakeDist("mmml-args", "0.1", {"args": "fake_hook_args"}))
    pm = hooks.get_plugin_manager(warn=False)
    assert pm.get_plugin("args") is None
    [broken] = hooks.broken_plugins()
    assert broken.error.startswith("PluginValidationError: ") and "'result'" in broken.error


def test_two_distributions_using_one_entry_name_load_neither(hook_env):
    dists, write = hook_env
    write("fake_hook_good", GOOD)
    dists.append(FakeDist("dist-one", "1.0", {"tracker": "fake_hook_good"}))
    dists.append(FakeDist("dist-two", "2.0", {"tracker": "fake_hook_good"}))
    [row] = hooks.describe_plugins()
    assert row.status == "conflict" and "dist-one 1.0" in row.error and "dist-two 2.0" in row.error
    assert hooks.get_plugin_manager(warn=False).get_plugin("tracker") is None
    assert [i.name for i in hooks.broken_plugins()] == ["tracker"]
    assert "fake_hook_good" not in sys.modules


def test_a_missing_module_is_broken_at_listing_and_reports_the_real_error_at_load(hook_env):
    dists, _ = hook_env
    dists.append(FakeDist("mmml-gone", "0.1", {"gone": "no_such_hook_module_x"}))
    [row] = hooks.describe_plugins()
    assert row.status == "broken" and "no_such_hook_module_x" in row.error
    hooks.get_plugin_manager(warn=False)
    [row] = hooks.describe_plugins()
    assert row.error == "ModuleNotFoundError: No module named 'no_such_hook_module_x'"


def test_one_module_under_two_entry_names_loads_once(hook_env):
    dists, write = hook_env
    write("fake_hook_good", GOOD)
    dists.append(
        FakeDist("mmml-good", "2.0", {"alpha": "fake_hook_good", "beta": "fake_hook_good"})
    )
    pm = hooks.get_plugin_manager(warn=False)
    pm.hook.mmml_report_results(run_dir="r", results={})
    assert sys.modules["fake_hook_good"].SEEN == ["r"], "called once"
    [broken] = hooks.broken_plugins()
    assert broken.name == "beta" and broken.error.startswith(
        "ValueError: Plugin already registered"
    )
    assert "\n" not in broken.error
