"""Behaviour hooks (pluggy), all in this one module (docs/architecture.md#hook-plugins).

A plugin module registers under the entry-point group ``mmml_core.plugins`` and implements any
of the hooks below with ``@mmml_core.hooks.hookimpl``. Hooks are for behaviour; name -> class
mappings (encoders, fusions, heads, losses) use the registries instead. Add a hook only when a
real plugin needs it.

Hook plugins are as isolated as components: :func:`get_plugin_manager` imports each one on its
own, and one that cannot be used is left out and recorded as *broken* instead of stopping
``mmml-bench``. Broken means its module raised while being imported (``SystemExit`` included),
pluggy rejected it (a hook implementation whose arguments the hookspec lacks), or it
implements a hook that has no hookspec here (a misspelt ``mmml_repot_results`` would otherwise
be silently never called). Two distributions that use the same entry name are a *conflict*:
neither is loaded. :func:`describe_plugins` lists every hook plugin with its distribution,
version and status, for ``mmml-bench plugins``.

The plugin manager honours the same autoload switch as the registries
(``MMML_DISABLE_PLUGIN_AUTOLOAD``). This module does not import torch.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.metadata as metadata
import sys
from typing import Any

import pluggy

from mmml_core import registry

__all__ = [
    "KIND",
    "PROJECT",
    "broken_plugins",
    "describe_plugins",
    "get_plugin_manager",
    "hook_names",
    "hookimpl",
    "hookspec",
    "reset",
]

PROJECT = "mmml"
#: the ``kind`` of hook plugin rows in :func:`describe_plugins` (and ``mmml-bench plugins``)
KIND = "hook"
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

    @hookspec
    def mmml_epoch_end(
        self, seed_dir: str, seed: int, epoch: int, metrics: dict[str, float]
    ) -> None:
        """Receive one finished epoch of one seed, e.g. to plot it in an experiment tracker.

        Called by the engine after the epoch's checkpoints and resumable state are written
        (a diverged epoch is not reported; a resumed seed reports only the epochs it trains).
        ``seed_dir`` is the seed's output folder (``<run>/seed-<seed>`` under ``mmml-bench``);
        ``epoch`` counts from 1. ``metrics`` maps names to plain floats:

        - ``train/loss``, ``valid/loss``: the epoch's mean training loss and the validation loss;
        - ``valid/<head>/<metric>``: every metric of the dataset's scheme for every head, scored
          against the multimodal label (``valid/M/Acc2``, ``valid/T/MAE``, ...); with
          per-modality labels also ``valid/<head>@label_<head>/<metric>``. NaN where a metric is
          undefined;
        - ``lr/<group>``: the learning rate of each optimizer parameter group after the epoch,
          by the group's ``name`` (its index when it has none);
        - ``samples_per_s``: training samples per second of the epoch's training pass;
        - ``epoch_s``: the epoch's wall time in seconds (training, validation, checkpoints).

        When no plugin implements this hook the engine does not compute the per-head metrics.
        """

    @hookspec
    def mmml_seed_end(self, seed_dir: str, seed: int, results: dict[str, Any]) -> None:
        """Receive one seed's results once it is trained and both checkpoints are tested (the
        same data as ``<seed_dir>/results.json``: ``epochs``, ``history``, and per checkpoint
        selection its ``test`` metrics per head), e.g. to record them and close the tracker's
        files for that seed. Not called for a seed that diverged, nor for one a ``--resume``
        found finished."""


_pm: pluggy.PluginManager | None = None
#: one row per hook plugin as the last build of ``_pm`` left it (None: not built yet)
_rows: list[registry.ComponentInfo] | None = None
_PROBLEMS = ("broken", "conflict")


def hook_names() -> list[str]:
    """The names of every hook a plugin may implement."""
    return sorted(name for name in vars(MmmlHookSpecs) if name.startswith("mmml_"))


def _scan() -> list[tuple[registry.ComponentInfo, metadata.EntryPoint]]:
    """One row per entry name, from distribution metadata only (nothing is imported)."""
    found: dict[str, tuple[registry.ComponentInfo, metadata.EntryPoint, list[str]]] = {}
    for ep, dist, version in registry.iter_plugin_distributions(registry.HOOK_GROUP):
        claim = f"{dist} {version} ({ep.value})"
        if ep.name in found:
            info, _, claimants = found[ep.name]
            claimants.append(claim)
            info.status = "conflict"
            info.error = (
                f"hook plugin {ep.name!r} is registered by more than one distribution: "
                + " and ".join(claimants)
                + ". None of them is loaded; uninstall all but one."
            )
            continue
        info = registry.ComponentInfo(KIND, ep.name, ep.value, dist, version)
        if not registry._module_present(ep.module):
            info.status = "broken"
            info.error = f"module {ep.module!r} of {dist} {version} cannot be found"
        found[ep.name] = (info, ep, [claim])
    return [found[name][:2] for name in sorted(found)]


def _unknown_hooks_message(pm: pluggy.PluginManager, plugin: object, exc: Exception) -> str:
    """Name each hook ``plugin`` implements that has no hookspec, with the likely intended one."""
    valid = hook_names()
    unknown = sorted(
        caller.name
        for caller in pm.get_hookcallers(plugin) or []
        if not caller.has_spec()
        and any(i.plugin is plugin and not i.optionalhook for i in caller.get_hookimpls())
    )
    if not unknown:  # not this plugin's fault after all; pluggy's own words
        return f"{type(exc).__name__}: {exc}"
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, valid, n=1)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    noun = "hook" if len(unknown) == 1 else "hooks"
    return f"unknown {noun} {', '.join(parts)}; the hooks are {', '.join(valid)}"


def _load(pm: pluggy.PluginManager, info: registry.ComponentInfo, ep: metadata.EntryPoint) -> None:
    """Import and register one hook plugin, or record why it is broken (and leave it out)."""
    try:
        plugin = ep.load()
    except (Exception, SystemExit) as exc:  # a plugin's import may fail in any way
        info.status, info.error = "broken", f"{type(exc).__name__}: {exc}"
        return
    try:
        pm.register(plugin, name=ep.name)
    except (pluggy.PluginValidationError, ValueError) as exc:  # pluggy leaves pm untouched
        # (ValueError: the same object under two entry names; pluggy appends its whole table)
        first = str(exc).split("\n{", 1)[0] if isinstance(exc, ValueError) else str(exc)
        info.status, info.error = "broken", f"{type(exc).__name__}: {first}"
        return
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        info.status, info.error = "broken", _unknown_hooks_message(pm, plugin, exc)
        pm.unregister(name=ep.name)
        return
    info.status, info.error = "loaded", None


def _warn(info: registry.ComponentInfo) -> None:
    what = "is broken" if info.status == "broken" else "is in conflict"
    error = " ".join((info.error or "").split())  # one line, whatever the exception said
    print(
        f"mmml-bench: warning: hook plugin {info.name!r} ({info.distribution} {info.version}) "
        f"{what} and was not loaded: {error}",
        file=sys.stderr,
    )


def get_plugin_manager(warn: bool = True) -> pluggy.PluginManager:
    """The process-wide plugin manager, with every allowed ``mmml_core.plugins`` entry point
    that could be loaded.

    Built on first call: each plugin is imported and validated on its own, and one that fails
    is left out (see :func:`broken_plugins`). With ``warn``, that build prints one warning
    line per plugin left out to stderr; later calls return the same manager silently.
    """
    global _pm, _rows
    if _pm is None:
        pm = pluggy.PluginManager(PROJECT)
        pm.add_hookspecs(MmmlHookSpecs)
        rows = []
        for info, ep in _scan():
            if info.status != "conflict":
                _load(pm, info, ep)
            rows.append(info)
        _pm, _rows = pm, rows
        if warn:
            for info in broken_plugins():
                _warn(info)
    return _pm


def describe_plugins() -> list[registry.ComponentInfo]:
    """Every hook plugin (kind ``"hook"``, name = entry name) with distribution, version,
    status and error, sorted by name.

    Reads distribution metadata only, so a plugin is ``available`` (or ``broken`` when its
    module cannot be found, or ``conflict``), unless the plugin manager was already built:
    then the rows say what loading found (``loaded``, ``broken``, ``conflict``).
    """
    if _rows is not None:
        return list(_rows)
    return [info for info, _ in _scan()]


def broken_plugins() -> list[registry.ComponentInfo]:
    """The hook plugins the plugin manager left out (``broken`` or ``conflict``); builds the
    manager (importing every hook plugin) if needed."""
    if _rows is None:
        get_plugin_manager(warn=False)
    return [info for info in _rows or [] if info.status in _PROBLEMS]


def reset() -> None:
    """Drop the plugin manager; the next :func:`get_plugin_manager` rebuilds it."""
    global _pm, _rows
    _pm = None
    _rows = None
