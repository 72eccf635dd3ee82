"""``mmml-bench new-plugin NAME --kind KIND``: write a new plugin package from a template.

The plugin is a complete distribution ``mmml-<kind>-<name>`` (see :mod:`mmml_core.scaffold`):
``pyproject.toml`` with the entry point, a ``test`` extra and ranges on mmml-core and torch,
``README.md``, a small working component and its contract test. The templates come with
mmml-core itself, so this works from an installed wheel, without a checkout of mmml.

A bad name, a name mmml already has for that kind, or a destination that exists and is not
empty is exit status 2 and one line ``mmml-bench new-plugin: error: ...`` on stderr.
No torch is imported.
"""

from __future__ import annotations

import argparse
import sys

from mmml_core import registry, scaffold

__all__ = ["configure_parser", "run"]

PROG = "mmml-bench new-plugin"


def configure_parser(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.description = (
        "Write a new plugin package mmml-KIND-NAME (pyproject.toml with the entry point, "
        "README.md, a small working component of that kind and its contract test) from the "
        "templates that ship with mmml-core."
    )
    parser.add_argument(
        "name",
        metavar="NAME",
        help="registry name users type (e.g. --fusion NAME): lowercase letters, digits and "
        "single underscores, starting with a letter",
    )
    parser.add_argument("--kind", required=True, choices=scaffold.KINDS, help="the component kind")
    parser.add_argument(
        "--dest",
        metavar="DIR",
        help="folder to create (default ./mmml-KIND-NAME); it must not exist or be empty",
    )
    parser.add_argument(
        "--modality",
        metavar="M",
        help=f"encoders only: the modality ({', '.join(scaffold.ENCODER_MODALITIES)}; "
        "default audio)",
    )


def run(args: argparse.Namespace) -> int:
    try:
        plugin = scaffold.plan(args.kind, args.name, args.dest, args.modality)
        taken = [i for i in registry.describe(args.kind) if i.name == args.name]
        if taken:
            t = taken[0]
            raise scaffold.ScaffoldError(
                f"{args.kind} {args.name!r} is already registered by {t.distribution} "
                f"{t.version}; choose another name"
            )
        scaffold.write(args.kind, args.name, plugin.dest, args.modality)
    except (scaffold.ScaffoldError, OSError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    what = f"{plugin.kind} {plugin.name!r}"
    if plugin.modality:
        what += f" (modality {plugin.modality})"
    print(f"created {plugin.dest}: {plugin.distribution}, {what}, package {plugin.package}")
    for rel in sorted(plugin.files):
        print(f"  {rel}")
    print("next:")
    print(f"  cd {plugin.dest}")
    print("  pip install -e '.[test]'      # the plugin and pytest")
    print("  pytest                        # its contract tests")
    print(f"  mmml-bench plugins --kind {plugin.kind}")
    return 0
