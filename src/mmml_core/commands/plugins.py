"""``mmml-bench plugins`` and ``mmml-bench list``: what the registries discovered.

Reads distribution metadata only: no plugin module (and no torch) is imported unless
``--check`` asks to import every component to find the broken ones.
"""

from __future__ import annotations

import argparse
import json

from mmml_core import registry

__all__ = ["configure_parser", "run"]


def configure_parser(parser: argparse.ArgumentParser, verb: str) -> None:
    if verb == "list":
        parser.add_argument("kind", nargs="?", choices=registry.KINDS, help="only this kind")
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        return
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--kind", choices=registry.KINDS, help="only this kind")
    parser.add_argument(
        "--check",
        action="store_true",
        help="import every component to find broken ones (imports torch and plugin code)",
    )


def run(args: argparse.Namespace) -> int:
    infos = registry.describe(args.kind)
    if getattr(args, "check", False):
        for item in infos:
            try:
                registry.load(item.kind, item.name)
            except Exception:  # recorded as broken in the info; keep checking the rest
                pass
        infos = registry.describe(args.kind)
    if not hasattr(args, "check"):  # `mmml-bench list`
        names = {k: registry.list(k) for k in ([args.kind] if args.kind else registry.KINDS)}
        if args.json:
            print(json.dumps(names, indent=2))
        else:
            for kind, items in names.items():
                print(f"{kind}: {', '.join(items) or '(none)'}")
        return 0
    if args.json:
        print(json.dumps([i.as_dict() for i in infos], indent=2))
        return 0
    rows = [("KIND", "NAME", "DISTRIBUTION", "VERSION", "STATUS")]
    rows += [(i.kind, i.name, i.distribution, i.version, i.status) for i in infos]
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    for r in rows:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)).rstrip())
    problems = [i for i in infos if i.error]
    for i in problems:
        print(f"\n{i.status}: {i.kind} {i.name!r} ({i.distribution}): {i.error}")
    return 0
