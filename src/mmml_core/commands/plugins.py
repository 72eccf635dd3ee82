"""``mmml-bench plugins`` and ``mmml-bench list``: what the registries discovered.

``plugins`` lists components and behaviour-hook plugins (kind ``hook``, see
:mod:`mmml_core.hooks`) with distribution, version and status. It reads distribution metadata
only: no plugin module (and no torch) is imported unless ``--check`` asks to import every
component and every hook plugin to find the broken ones; then the exit status is 1 when any
is broken or in conflict, so CI can run it after installing plugins.
"""

from __future__ import annotations

import argparse
import json
import sys

from mmml_core import hooks, registry

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb == "list":
        parser.add_argument("kind", nargs="?", choices=registry.KINDS, help="only this kind")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        return
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--kind", choices=[*registry.KINDS, hooks.KIND], help="only this kind")
    parser.add_argument(
        "--check",
        action="store_true",
        help="import every component and hook plugin (torch and plugin code) and exit 1 "
        "if any is broken or in conflict",
    )


def _describe(kind: str | None) -> list[registry.ComponentInfo]:
    components = registry.describe(kind) if kind != hooks.KIND else []
    return components + (hooks.describe_plugins() if kind in (None, hooks.KIND) else [])


def _problem(i: registry.ComponentInfo) -> str:
    return f"{i.status}: {i.kind} {i.name!r} ({i.distribution} {i.version}): {i.error}"


def run(args: argparse.Namespace) -> int:
    if hasattr(args, "check"):  # `mmml-bench plugins`
        return _plugins(args)
    # `mmml-bench list`
    names = {k: registry.list(k) for k in ([args.kind] if args.kind else registry.KINDS)}
    if args.json:
        print(json.dumps(names, indent=2))
    else:
        for kind, items in names.items():
            print(f"{kind}: {', '.join(items) or '(none)'}")
    return 0


def _plugins(args: argparse.Namespace) -> int:
    if args.check:
        for item in registry.describe(args.kind) if args.kind != hooks.KIND else []:
            try:
                registry.load(item.kind, item.name)
            except (Exception, SystemExit):  # recorded as broken in the info; check the rest
                pass
        if args.kind in (None, hooks.KIND):
            hooks.get_plugin_manager(warn=False)  # the problems are printed below instead
    infos = _describe(args.kind)
    problems = [i for i in infos if i.status in ("broken", "conflict")]
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        if args.check:  # stdout stays JSON
            for i in problems:
                print(_problem(i), file=sys.stderr)
        return 1 if args.check and problems else 0
    rows = [("KIND", "NAME", "DISTRIBUTION", "VERSION", "STATUS")]
    rows += [(i.kind, i.name, i.distribution, i.version, i.status) for i in infos]
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip())
    for i in problems:
        print(f"\n{_problem(i)}")
    if not args.check:
        return 0
    print(f"\n{len(problems)} problem(s)" if problems else "\nno problems found")
    return 1 if problems else 0
