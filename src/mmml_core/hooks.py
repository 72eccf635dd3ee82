"""Behaviour hooks (pluggy), all in this one module (DESIGN §2).

A plugin module registers under the entry-point group ``mmml_core.plugins`` and implements any
of the hooks below with ``@mmml_core.hooks.hookimpl``. Hooks are for behaviour; name -> class
mappings (encoders, fusions, heads, losses) use the registries instead. Add a hook only when a
real plugin needs it.

The plugin manager honours the same autoload switch as the registries
(``MMML_DISABLE_PLUGIN_AUTOLOAD``). This module does not import torch.
"""

from __future__ import annotations

import argparse
from typing import Any

import pluggy

from mmml_core import registry

__all__ = ["PROJECT", "get_plugin_manager", "hookimpl", "hookspec", "reset"]

PROJECT = "mmml"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class MmmlHookSpecs:
    @hookspec
    def mmml_add_cli_options(self, parser: argparse.ArgumentParser) -> None:
        """Add options to the ``mmml-bench`` training parser.

        Called once when the parser is built. Options a plugin adds come back to it in
        :meth:`mmml_configure_run` as part of ``options``.
        """

    @hookspec
    def mmml_configure_run(self, run_config: dict[str, Any], options: dict[str, Any]) -> None:
        """Adjust a run's configuration in place before it is validated and trained.

        ``run_config`` is the full run configuration (model spec, training settings) as plain
        data; ``options`` are the parsed command-line options, plugin options included.
        """

    @hookspec
    def mmml_report_results(self, run_dir: str, results: dict[str, Any]) -> None:
        """Receive the finished run's results (the same data as ``results.json``), e.g. to
        send them to an experiment tracker. ``run_dir`` is the run's output folder."""


_pm: pluggy.PluginManager | None = None


def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, with every allowed ``mmml_core.plugins`` entry point."""
    global _pm
    if _pm is None:
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(MmmlHookSpecs)
        for ep, _dist, _version in registry.iter_plugin_distributions(registry.HOOK_GROUP):
            if pm.get_plugin(ep.name) is None:
                pm.register(ep.load(), name=ep.name)
        _pm = pm
    return _pm


def reset() -> None:
    """Drop the plugin manager; the next :func:`get_plugin_manager` rebuilds it."""
    global _pm
    _pm = None
