"""Discovery with fake distributions: no installs, the same code path as real plugins."""

from __future__ import annotations

import importlib.metadata as md
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mmml_core import hooks, registry
from mmml_core.config import ConfigError

FUSION_MODULE = """
from dataclasses import dataclass, field
import torch
from mmml_core.interfaces import Fusion

@dataclass
class Cfg:
    input_dims: dict = field(default_factory=dict)
    scale: float = 1.0  # a knob to test config validation

class Sum(Fusion):
    Config = Cfg
    def __init__(self, config):
        super().__init__(config)
        self.out_dim = max(config.input_dims.values())
    def forward(self, encoded):
        return sum(o.pooled for o in encoded.values()) * self.config.scale
"""


class FakeDist:
    """Just what the registry reads of an ``importlib.metadata.Distribution``."""

    def __init__(self, name: str, version: str, entry_points: list[tuple[str, str, str]]):
        self.metadata = {"Name": name}
        self.version = version
        self.entry_points = [md.EntryPoint(n, v, g) for g, n, v in entry_points]


@pytest.fixture
def fake_env(monkeypatch, tmp_path):
    """Install fake distributions (a list the test fills) instead of the real ones."""
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv(registry.AUTOLOAD_ENV, raising=False)
    monkeypatch.delenv(registry.PLUGINS_ENV, raising=False)
    dists: list[FakeDist] = []
    real = list(md.distributions())
    core = [d for d in real if (d.metadata["Name"] or "").lower() == "mmml-core"]
    monkeypatch.setattr(registry, "_distributions", lambda: [*core, *dists])
    registry.reset()
    hooks.reset()

    def write(module: str, source: str) -> None:
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(module, None)

    yield dists, write
    registry.reset()
    hooks.reset()


def test_builtins_come_from_core_entry_points(fake_env):
    assert registry.list("fusion") == ["concat"]
    assert registry.list("head") == ["linear", "mlp"]
    assert registry.list("loss") == ["l1", "mse"]
    info = registry.info("fusion", "concat")
    assert info.distribution == "mmml-core" and info.status == "loaded"


def test_plugin_is_listed_without_import_and_created_by_name(fake_env):
    dists, write = fake_env
    write("fake_sum_fusion", FUSION_MODULE)
    dists.append(
        FakeDist("mmml-fusion-sum", "0.3", [("mmml_core.fusions", "sum", "fake_sum_fusion:Sum")])
    )
    assert "sum" in registry.list("fusion")
    assert "fake_sum_fusion" not in sys.modules, "listing must not import plugin code"
    [info] = [i for i in registry.describe("fusion") if i.name == "sum"]
    assert (info.distribution, info.version, info.status) == ("mmml-fusion-sum", "0.3", "available")
    fusion = registry.create("fusion", "sum", input_dims={"text": 4, "audio": 4}, scale=2.0)
    assert fusion.config.scale == 2.0 and fusion.out_dim == 4


def test_two_distributions_claiming_one_name_is_an_error_naming_both(fake_env):
    dists, write = fake_env
    write("fake_sum_fusion", FUSION_MODULE)
    dists.append(FakeDist("dist-one", "1.0", [("mmml_core.fusions", "sum", "fake_sum_fusion:Sum")]))
    dists.append(FakeDist("dist-two", "2.0", [("mmml_core.fusions", "sum", "fake_sum_fusion:Sum")]))
    assert "sum" not in registry.list("fusion")
    [info] = [i for i in registry.describe("fusion") if i.name == "sum"]
    assert info.status == "conflict"
    with pytest.raises(registry.PluginConflictError) as err:
        registry.create("fusion", "sum", input_dims={"text": 4})
    assert "dist-one" in str(err.value) and "dist-two" in str(err.value)


def test_a_plugin_clashing_with_a_builtin_is_an_error(fake_env):
    dists, write = fake_env
    write("fake_sum_fusion", FUSION_MODULE)
    dists.append(FakeDist("evil", "1.0", [("mmml_core.fusions", "concat", "fake_sum_fusion:Sum")]))
    with pytest.raises(registry.PluginConflictError, match="mmml-core.*evil"):
        registry.create("fusion", "concat", input_dims={"text": 4})


def test_broken_plugin_is_isolated_and_its_error_reraised(fake_env):
    dists, write = fake_env
    write("fake_broken", "raise ImportError('libfoo.so.3: cannot open shared object file')\n")
    write("fake_sum_fusion", FUSION_MODULE)
    dists.append(FakeDist("mmml-broken", "0.1", [("mmml_core.fusions", "broken", "fake_broken:X")]))
    dists.append(
        FakeDist("mmml-fusion-sum", "0.3", [("mmml_core.fusions", "sum", "fake_sum_fusion:Sum")])
    )
    for _ in range(2):  # the real error, every time it is asked for
        with pytest.raises(ImportError, match="libfoo.so.3"):
            registry.create("fusion", "broken", input_dims={"text": 4})
    [info] = [i for i in registry.describe("fusion") if i.name == "broken"]
    assert info.status == "broken" and "libfoo.so.3" in info.error
    assert "broken" not in registry.list("fusion")
    assert registry.create("fusion", "sum", input_dims={"text": 4}).out_dim == 4


def test_plugin_whose_module_is_missing_is_broken_at_listing(fake_env):
    dists, _ = fake_env
    dists.append(
        FakeDist("mmml-gone", "0.1", [("mmml_core.fusions", "gone", "no_such_module_x:Y")])
    )
    [info] = [i for i in registry.describe("fusion") if i.name == "gone"]
    assert info.status == "broken" and "no_such_module_x" in info.error
    with pytest.raises(ModuleNotFoundError):
        registry.create("fusion", "gone")


def test_autoload_switch(fake_env, monkeypatch):
    dists, write = fake_env
    write("fake_sum_fusion", FUSION_MODULE)
    dists.append(
        FakeDist("mmml-fusion-sum", "0.3", [("mmml_core.fusions", "sum", "fake_sum_fusion:Sum")])
    )
    monkeypatch.setenv(registry.AUTOLOAD_ENV, "1")
    registry.reset()
    assert registry.list("fusion") == ["concat"], "only mmml-core's own components"
    with pytest.raises(registry.UnknownComponentError, match="available fusions: concat"):
        registry.create("fusion", "sum")
    monkeypatch.setenv(registry.PLUGINS_ENV, "mmml_fusion_sum")  # explicit opt-in, any spelling
    registry.reset()
    assert registry.list("fusion") == ["concat", "sum"]


def test_unknown_and_missing_config_keys_list_valid_fields(fake_env):
    with pytest.raises(ConfigError) as err:
        registry.create("head", "mlp", in_dim=8, hiden=3)
    msg = str(err.value)
    assert "unknown key(s) 'hiden'" in msg
    for field in ("in_dim", "hidden", "hidden2", "dropout"):
        assert field in msg
    with pytest.raises(ConfigError, match="missing required key\\(s\\) 'in_dim'"):
        registry.create("head", "mlp")


def test_unknown_name_lists_available(fake_env):
    with pytest.raises(registry.UnknownComponentError, match="available heads: linear, mlp"):
        registry.create("head", "mpl")
    with pytest.raises(ValueError, match="kinds are encoder, fusion, head, loss"):
        registry.list("fusions")


def test_manual_registration_follows_the_conflict_rule(fake_env):
    from mmml_core.builtins.concat import ConcatFusion

    registry.register("fusion", "concat2", ConcatFusion)
    assert "concat2" in registry.list("fusion")
    with pytest.raises(registry.PluginConflictError, match="mmml-core"):
        registry.register("fusion", "concat", ConcatFusion)


def test_hook_plugins_load_through_entry_points_and_honour_the_switch(fake_env, monkeypatch):
    dists, write = fake_env
    write(
        "fake_hook_plugin",
        """
        from mmml_core.hooks import hookimpl
        SEEN = []
        @hookimpl
        def mmml_report_results(run_dir, results):
            SEEN.append((run_dir, results))
        """,
    )
    dists.append(
        FakeDist("mmml-tracker", "1.0", [("mmml_core.plugins", "tracker", "fake_hook_plugin")])
    )
    pm = hooks.get_plugin_manager()
    pm.hook.mmml_report_results(run_dir="/tmp/run", results={"ok": 1})
    assert sys.modules["fake_hook_plugin"].SEEN == [("/tmp/run", {"ok": 1})]
    monkeypatch.setenv(registry.AUTOLOAD_ENV, "1")
    hooks.reset()
    assert hooks.get_plugin_manager().get_plugin("tracker") is None


def _bench(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    exe = Path(sys.executable).with_name("mmml-bench")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=120)


def test_plugins_json_lists_builtins_with_distribution_and_version():
    proc = _bench("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(proc.stdout)
    core = md.version("mmml-core")
    by_name = {(r["kind"], r["name"]): r for r in rows}
    for key in [
        ("fusion", "concat"),
        ("head", "mlp"),
        ("head", "linear"),
        ("loss", "l1"),
        ("loss", "mse"),
    ]:
        assert by_name[key]["distribution"] == "mmml-core"
        assert by_name[key]["version"] == core
        assert by_name[key]["status"] == "available"
    assert all(set(r) >= {"kind", "name", "distribution", "version", "status"} for r in rows)


@pytest.mark.parametrize("argv", [["--help"], ["plugins"], ["plugins", "--json"], ["list"]])
def test_help_and_plugins_import_no_torch_or_plugin_code(argv):
    code = (
        "import sys, contextlib, io\n"
        "from mmml_core.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    rc = main({argv!r})\n"
        "heavy = sorted(m for m in sys.modules if m == 'torch' or m.startswith('mmml_') and "
        "not m.startswith('mmml_core'))\n"
        "print(rc, heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0 []", proc.stdout


def test_a_component_missing_an_interface_method_cannot_be_created(fake_env):
    dists, write = fake_env
    write(
        "fake_incomplete",
        """
        from dataclasses import dataclass, field
        from mmml_core.interfaces import Fusion

        @dataclass
        class Cfg:
            input_dims: dict = field(default_factory=dict)

        class NoForward(Fusion):
            Config = Cfg
        """,
    )
    dists.append(
        FakeDist(
            "mmml-incomplete", "0.1", [("mmml_core.fusions", "nofwd", "fake_incomplete:NoForward")]
        )
    )
    with pytest.raises(TypeError, match="abstract method forward"):
        registry.create("fusion", "nofwd", input_dims={"text": 4})


def test_plugins_check_imports_everything_and_reports_broken(fake_env, capsys):
    from mmml_core.cli import main

    dists, write = fake_env
    write("fake_broken2", "raise RuntimeError('needs CUDA 99')\n")
    dists.append(
        FakeDist("mmml-broken", "0.2", [("mmml_core.fusions", "broken", "fake_broken2:X")])
    )
    assert main(["plugins"]) == 0
    row = [ln.split() for ln in capsys.readouterr().out.splitlines() if " broken " in f" {ln} "]
    assert row == [["fusion", "broken", "mmml-broken", "0.2", "available"]]  # not imported yet
    assert "fake_broken2" not in sys.modules
    assert main(["plugins", "--check", "--json"]) == 1  # a broken component fails the check
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["broken"]["status"] == "broken" and "needs CUDA 99" in rows["broken"]["error"]
    assert rows["concat"]["status"] == "loaded"
