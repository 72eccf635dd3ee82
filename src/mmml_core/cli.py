"""``mmml-bench``: the harness's command line (docs/architecture.md#the-command-line).

``mmml-bench [train options]`` trains and evaluates one combination; the other verbs are
subcommands. Each subcommand lives in its own module, imported only when it runs, so
``mmml-bench --help`` and ``mmml-bench plugins`` stay light (no torch, no plugin code).

Exit codes: 0 success, 1 a run or command failed, 2 bad usage or configuration.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["SUBCOMMANDS", "main"]

#: verb -> (module with ``configure_parser(parser)`` and ``run(args) -> int``, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("mmml_core.commands.train", "train and evaluate one combination (the default verb)"),
    "plugins": (
        "mmml_core.commands.plugins",
        "list discovered components with distribution, version, status",
    ),
    "list": ("mmml_core.commands.plugins", "list component names of one kind (or all)"),
    "predict": ("mmml_core.commands.predict", "predict sentiment with a trained checkpoint"),
    "extract-audio": (
        "mmml_core.data.extract",
        "extract 16 kHz mono WAV from a dataset's Raw/*.mp4",
    ),
    "extract-frames": (
        "mmml_core.data.extract",
        "decode a dataset's Raw/*.mp4 once into frames/ for the video modality",
    ),
    "new-plugin": (
        "mmml_core.commands.new_plugin",
        "write a new encoder, fusion, head or loss plugin package from a template",
    ),
}

EPILOG = """\
verbs:
{verbs}

Run `mmml-bench VERB --help` for a verb's options. Without a verb, the training options apply:
  mmml-bench --encoder data2vec --fusion cross_attn          # demo set, 3 seeds
  mmml-bench --dataset ~/data/MOSI --dataset-kind mosi --seeds 1
"""


def _top_parser() -> argparse.ArgumentParser:
    verbs = "\n".join(f"  {name:<14} {help_}" for name, (_, help_) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="mmml-bench",
        description="Train, evaluate and compare multimodal sentiment models (mmml).",
        epilog=EPILOG.format(verbs=verbs),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
    )
    parser.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in SUBCOMMANDS:
        verb, rest = argv[0], argv[1:]
    elif argv and argv[0] in ("-h", "--help"):
        top = _top_parser()
        top.print_help()
        print("\ntraining options (the default verb):")
        _verb_parser("train").print_help()
        return 0
    else:
        verb, rest = "train", argv
    parser = _verb_parser(verb)
    # intermixed: key=value overrides may stand between options
    args = parser.parse_intermixed_args(rest)
    args.argv = rest  # as given (mmml-bench --nproc hands them on to torchrun)
    module = importlib.import_module(SUBCOMMANDS[verb][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _verb_parser(verb: str) -> argparse.ArgumentParser:
    module_name, help_ = SUBCOMMANDS[verb]
    prog = "mmml-bench" if verb == "train" else f"mmml-bench {verb}"
    parser = argparse.ArgumentParser(prog=prog, description=help_)
    module = importlib.import_module(module_name)
    module.configure_parser(parser, verb)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
