"""Each ``mmml_`` hook is called by the real CLI path, from a plugin found by entry point."""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import io
import json
import sys
import textwrap

from harness_data import make_learnable_mosi

from mmml_core import hooks, registry
from mmml_core.cli import main

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
    assert calls[2] == (
        "report_results",
        str(out),
        ["aggregate", "config", "runs", "scheme", "seeds"],
    )
    assert json.loads((out / "seed-1" / "results.json").read_text())["epochs"] == 1
