"""Name -> component registries, discovered from installed distributions (docs/architecture.md).

One entry-point group per kind (:data:`GROUPS`); entry name = registry name, value =
``package.module:Class``. Built-ins are registered by ``mmml-core``'s own entry points, the
same door a third-party plugin uses.

Listing reads distribution metadata only; a component's module is imported the first time it
is created (or :func:`info` / :func:`load` is asked for it). A module that fails to import is
remembered as *broken*: it stays visible in :func:`describe` (and ``mmml-bench plugins``) and
its real exception is raised again whenever that name is asked for, without affecting other
components. Two distributions that claim the same name make that name an error naming both.

Set ``MMML_DISABLE_PLUGIN_AUTOLOAD=1`` for hermetic runs: only ``mmml-core``'s own entry points
and the distributions listed in ``MMML_PLUGINS`` (comma separated) are loaded.

This module does not import torch.
"""

from __future__ import annotations

import difflib
import importlib.machinery
import importlib.metadata as metadata
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from mmml_core.config import ConfigError, build_config, describe_fields

__all__ = [
    "AUTOLOAD_ENV",
    "CORE_DISTRIBUTION",
    "FIRST_PARTY",
    "GROUPS",
    "KINDS",
    "PLUGINS_ENV",
    "ComponentInfo",
    "PluginConflictError",
    "UnknownComponentError",
    "create",
    "describe",
    "info",
    "list",
    "load",
    "provider_hint",
    "register",
    "reset",
]

GROUPS: dict[str, str] = {
    "encoder": "mmml_core.encoders",
    "fusion": "mmml_core.fusions",
    "head": "mmml_core.heads",
    "loss": "mmml_core.losses",
    "dataset": "mmml_core.datasets",  # classes of mmml_core.data.kinds.DatasetKind's shape
}
KINDS: tuple[str, ...] = tuple(GROUPS)
HOOK_GROUP = "mmml_core.plugins"
AUTOLOAD_ENV = "MMML_DISABLE_PLUGIN_AUTOLOAD"
PLUGINS_ENV = "MMML_PLUGINS"
CORE_DISTRIBUTION = "mmml-core"

#: Where each first-party component comes from, so that a missing one can be named with the
#: distribution to install. Third-party components are found through entry points only; a
#: test checks this index against the plugins' own entry points.
FIRST_PARTY: dict[tuple[str, str], str] = {
    ("encoder", "roberta"): "mmml-encoders-hf",
    ("encoder", "data2vec"): "mmml-encoders-hf",
    ("encoder", "hubert"): "mmml-encoders-hf",
    ("encoder", "opensmile"): "mmml-audio-opensmile",
    ("encoder", "mel"): "mmml-audio-mel",
    ("encoder", "video"): "mmml-encoders-video",
    ("fusion", "cross_attn"): "mmml-fusion-transformer",
    ("fusion", "tfn"): "mmml-fusion-tfn",
}

_list = list  # ``list`` is part of the public API below


class UnknownComponentError(KeyError):
    """No component of that kind has that name; the message lists the available ones."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class PluginConflictError(RuntimeError):
    """Two distributions register the same name for the same kind."""


@dataclass
class ComponentInfo:
    """What the registry knows about one name; ``status`` is one of
    ``available`` (found, not imported yet), ``loaded``, ``broken``, ``conflict``."""

    kind: str
    name: str
    value: str
    distribution: str
    version: str
    status: str = "available"
    error: str | None = None
    fields: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "value": self.value,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "error": self.error,
        }


@dataclass
class _Entry:
    info: ComponentInfo
    loader: Callable[[], Any]
    cls: Any = None
    exc: BaseException | None = None
    claimants: _list[str] = field(default_factory=_list)


_entries: dict[str, dict[str, _Entry]] | None = None


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _distributions() -> Iterable[metadata.Distribution]:
    """Installed distributions, in ``sys.path`` order (tests replace this with fakes)."""
    return metadata.distributions()


def _autoload_enabled() -> bool:
    return os.environ.get(AUTOLOAD_ENV, "").strip().lower() in ("", "0", "false", "no")


def _allowed(dist_name: str) -> bool:
    if _autoload_enabled():
        return True
    explicit = {_normalize(n) for n in os.environ.get(PLUGINS_ENV, "").split(",") if n.strip()}
    return _normalize(dist_name) in {CORE_DISTRIBUTION} | explicit


def iter_plugin_distributions(group: str) -> Iterable[tuple[metadata.EntryPoint, str, str]]:
    """``(entry_point, distribution, version)`` of one group, honouring the autoload switch.

    A distribution shadowed by an earlier one of the same name on ``sys.path`` is skipped,
    as Python's own import would skip it.
    """
    seen: set[str] = set()
    for dist in _distributions():
        name = dist.metadata["Name"] or "?"
        key = _normalize(name)
        if key in seen:
            continue
        seen.add(key)
        if not _allowed(name):
            continue
        for ep in dist.entry_points:
            if ep.group == group:
                yield ep, name, dist.version


def _scan() -> dict[str, dict[str, _Entry]]:
    entries: dict[str, dict[str, _Entry]] = {kind: {} for kind in KINDS}
    for kind, group in GROUPS.items():
        for ep, dist_name, version in iter_plugin_distributions(group):
            known = entries[kind].get(ep.name)
            if known is not None:
                known.claimants.append(f"{dist_name} {version} ({ep.value})")
                known.info.status = "conflict"
                known.info.error = (
                    f"{kind} {ep.name!r} is registered by more than one distribution: "
                    + " and ".join(known.claimants)
                    + ". Uninstall one of them."
                )
                continue
            info = ComponentInfo(kind, ep.name, ep.value, dist_name, version)
            if not _module_present(ep.module):
                info.status = "broken"
                info.error = f"module {ep.module!r} of {dist_name} {version} cannot be found"
            entries[kind][ep.name] = _Entry(
                info, ep.load, claimants=[f"{dist_name} {version} ({ep.value})"]
            )
    return entries


def _module_present(module: str) -> bool:
    """Whether ``module`` can be found on the path, without executing any of it."""
    parts = module.split(".")
    try:
        spec = importlib.machinery.PathFinder.find_spec(parts[0])
        if spec is None:
            import sys

            return parts[0] in sys.modules
        for part in parts[1:]:
            locations = spec.submodule_search_locations
            if locations is None:
                return False
            spec = importlib.machinery.PathFinder.find_spec(part, _list(locations))
            if spec is None:
                return False
    except (ImportError, ValueError):
        return False
    return True


def _all() -> dict[str, dict[str, _Entry]]:
    global _entries
    if _entries is None:
        _entries = _scan()
    return _entries


def reset() -> None:
    """Forget everything discovered (and registered by hand); the next call rescans."""
    global _entries
    _entries = None


def _check_kind(kind: str) -> None:
    if kind not in GROUPS:
        raise ValueError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")


def list(kind: str) -> _list[str]:  # noqa: A001 - the registry's public verb
    """Sorted names of ``kind`` that can be created (broken and conflicting ones excluded,
    see :func:`describe` for those)."""
    _check_kind(kind)
    return sorted(
        name for name, e in _all()[kind].items() if e.info.status in ("available", "loaded")
    )


def describe(kind: str | None = None) -> _list[ComponentInfo]:
    """Every discovered name with its distribution, version and status (no imports)."""
    kinds = [kind] if kind else _list(KINDS)
    out = []
    for k in kinds:
        _check_kind(k)
        out.extend(e.info for _, e in sorted(_all()[k].items()))
    return out


def _entry(kind: str, name: str) -> _Entry:
    _check_kind(kind)
    entries = _all()[kind]
    if name not in entries:
        names = list(kind)
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else provider_hint(kind, name)
        plural = "losses" if kind == "loss" else f"{kind}s"
        raise UnknownComponentError(
            f"no {kind} named {name!r}{hint}; available {plural}: {', '.join(names) or '(none)'}"
        )
    return entries[name]


def provider_hint(kind: str, name: str) -> str:
    """For a first-party name that is not registered here: which distribution provides it,
    and why it is not loaded (not installed, or left out by the autoload switch)."""
    dist = FIRST_PARTY.get((kind, name))
    if dist is None:
        return ""
    try:
        metadata.distribution(dist)
    except metadata.PackageNotFoundError:
        return f" (it is provided by {dist}: pip install {dist})"
    if not _allowed(dist):
        return (
            f" ({dist} is installed but not loaded: {AUTOLOAD_ENV} is set; add {dist} to "
            f"{PLUGINS_ENV} to load it)"
        )
    return f" ({dist} is installed but does not register it; reinstall {dist})"


def load(kind: str, name: str) -> Any:
    """The component class behind ``name``, importing its module on first use."""
    entry = _entry(kind, name)
    if entry.info.status == "conflict":
        raise PluginConflictError(entry.info.error)
    if entry.cls is not None:
        return entry.cls
    if entry.exc is not None:
        raise entry.exc
    try:
        cls = entry.loader()
    except BaseException as exc:  # a plugin's import may fail in any way
        entry.exc = exc
        entry.info.status = "broken"
        entry.info.error = f"{type(exc).__name__}: {exc}"
        raise
    if not hasattr(cls, "Config"):
        exc = TypeError(f"{entry.info.value} (the {kind} {name!r}) has no dataclass Config")
        entry.exc = exc
        entry.info.status = "broken"
        entry.info.error = str(exc)
        raise exc
    entry.cls = cls
    entry.info.status = "loaded"
    entry.info.fields = describe_fields(cls.Config)
    return cls


def info(kind: str, name: str) -> ComponentInfo:
    """Metadata of one component; imports it to report its config fields."""
    load(kind, name)
    return _entry(kind, name).info


def create(kind: str, name: str, **config: Any) -> Any:
    """Build the component ``name`` of ``kind`` from keyword config values."""
    cls = load(kind, name)
    cfg = build_config(cls.Config, config, where=f"{kind} {name!r}")
    component = cls(cfg)
    component.registry_name = name
    return component


def register(kind: str, name: str, cls: Any, distribution: str = "<local>") -> None:
    """Register a class by hand (notebooks, tests); same conflict rule as entry points."""
    _check_kind(kind)
    entries = _all()[kind]
    if name in entries:
        raise PluginConflictError(
            f"{kind} {name!r} is already registered by {entries[name].info.distribution}; "
            f"cannot register it again for {distribution}"
        )
    value = f"{cls.__module__}:{cls.__qualname__}"
    entry = _Entry(ComponentInfo(kind, name, value, distribution, ""), lambda: cls)
    entries[name] = entry
    load(kind, name)


def config_class(kind: str, name: str) -> type:
    """The dataclass config type of a component (imports it)."""
    return load(kind, name).Config


__all__ += ["ConfigError", "config_class", "iter_plugin_distributions", "HOOK_GROUP"]
