"""Validation of dataclass configs and parsing of ``key=value`` overrides.

Every error lists the valid fields, so a typo never becomes a silently ignored setting.
This module imports no torch: the CLI validates before anything heavy loads.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["ConfigError", "build_config", "check_keys", "describe_fields", "parse_value"]


class ConfigError(ValueError):
    """A config with unknown, missing or ill-typed keys."""


def describe_fields(cls: type) -> str:
    """``name: type = default`` for each field, one per line, for error messages."""
    lines = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f" = {f.default!r}"
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f" = {f.default_factory()!r}"  # type: ignore[misc]
        else:
            default = " (required)"
        lines.append(f"  {f.name}: {_type_name(f.type)}{default}")
    return "\n".join(lines)


def check_keys(
    cls: type, values: Mapping[str, Any], where: str, filled: Sequence[str] = ()
) -> None:
    """Raise :class:`ConfigError` for unknown keys and for missing required ones (``filled``
    names the keys someone else supplies later, e.g. a fusion's ``input_dims``)."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    missing = [
        name
        for name, f in fields.items()
        if name not in values
        and name not in filled
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
    ]
    problems = []
    if unknown:
        problems.append(f"unknown key(s) {', '.join(map(repr, unknown))}")
    if missing:
        problems.append(f"missing required key(s) {', '.join(map(repr, missing))}")
    if problems:
        raise ConfigError(f"{where}: {'; '.join(problems)}. Valid fields:\n{describe_fields(cls)}")


def build_config(cls: type, values: Mapping[str, Any], where: str) -> Any:
    """Instantiate dataclass ``cls`` from ``values``; unknown or missing keys raise.

    ``where`` names the component in the message (e.g. ``"fusion 'concat'"``).
    """
    check_keys(cls, values, where)
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}. Valid fields:\n{describe_fields(cls)}") from exc


def parse_value(cls: type, key: str, text: str, where: str) -> Any:
    """Convert the string of a ``key=value`` override to the type of field ``key``."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if key not in fields:
        raise ConfigError(f"{where}: unknown key {key!r}. Valid fields:\n{describe_fields(cls)}")
    hints = typing.get_type_hints(cls)
    target = hints.get(key, str)
    try:
        return _convert(target, text)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"{where}: {key}={text!r} is not a valid {_type_name(target)} ({exc})"
        ) from exc


def _convert(target: Any, text: str) -> Any:
    origin = typing.get_origin(target)
    args = typing.get_args(target)
    if origin is typing.Union or (
        origin is not None and str(origin) == "<class 'types.UnionType'>"
    ):
        if text.lower() in ("none", "null") and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, text)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"matches none of {args}")
    if target is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ValueError("expected true/false")
    if target is int:
        return int(text)
    if target is float:
        return float(text)
    if target is str or target is Any:
        return text
    if origin in (list, tuple, dict) or target in (list, tuple, dict):
        value = json.loads(text) if text.strip()[:1] in "[{" else text.split(",")
        if origin is tuple or target is tuple:
            inner = args[0] if args else str
            return tuple(_convert(inner, str(v)) if isinstance(v, str) else v for v in value)
        if origin is list or target is list:
            inner = args[0] if args else str
            return [_convert(inner, str(v)) if isinstance(v, str) else v for v in value]
        if not isinstance(value, dict):
            raise ValueError("expected a JSON object")
        return value
    raise TypeError(f"cannot parse a value of type {target!r} from the command line")


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", None) or str(t).replace("typing.", "")
