"""The hook plugin: entry point ``tensorboard`` in the group ``mmml_core.plugins``.

Off unless enabled, by ``mmml-bench --tensorboard`` or by the environment variable
``MMML_TENSORBOARD=1`` (for runs started from Python, which do not parse options). Then every
seed the engine trains gets TensorBoard event files in ``<seed_dir>/tensorboard/``:

- each key of the engine's ``mmml_epoch_end`` metrics (``train/loss``, ``valid/loss``,
  ``valid/<head>/<metric>``, ``lr/<group>``, ``samples_per_s``, ``epoch_s``) as a scalar at
  step = epoch, flushed after every epoch (a killed run keeps its finished epochs);
- from ``mmml_seed_end``, the test loss and every test metric of both checkpoints,
  ``test/<selection>/loss`` and ``test/<selection>/<head>/<metric>``, at the checkpoint's
  epoch; then the seed's files are closed.

This module imports neither torch nor tensorboard until it writes: ``mmml-bench`` imports it
whenever it builds its parser.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
from pathlib import Path
from typing import Any

from mmml_core.hooks import hookimpl

__all__ = ["ENV", "FOLDER", "close_all", "enabled"]

#: set to 1 (or true, yes, on) to track without the flag
ENV = "MMML_TENSORBOARD"
#: the folder in each seed's output folder that holds its event files
FOLDER = "tensorboard"

log = logging.getLogger("mmml_core.plugins.tensorboard")  # the run's log shows it
_flag = False  # --tensorboard, as the last run configured through the CLI gave it
_writers: dict[str, Any] = {}  # seed folder -> its open SummaryWriter


def enabled() -> bool:
    """Whether runs are tracked: ``--tensorboard`` was given, or ``MMML_TENSORBOARD`` is true."""
    return _flag or os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


@hookimpl
def mmml_add_cli_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--tensorboard",
        action="store_true",
        help=f"write TensorBoard event files per seed to <run>/seed-N/{FOLDER}/ "
        f"(mmml-tracking-tensorboard; or set {ENV}=1)",
    )


@hookimpl
def mmml_configure_run(run_config: dict[str, Any], options: dict[str, Any]) -> None:
    global _flag
    _flag = bool(options.get("tensorboard"))


def _writer(seed_dir: str) -> Any:
    writer = _writers.get(seed_dir)
    if writer is None:
        from torch.utils.tensorboard import SummaryWriter

        folder = Path(seed_dir) / FOLDER
        writer = _writers[seed_dir] = SummaryWriter(log_dir=str(folder))
        log.info(f"tensorboard: events in {folder} (tensorboard --logdir {Path(seed_dir).parent})")
    return writer


@hookimpl
def mmml_epoch_end(seed_dir: str, seed: int, epoch: int, metrics: dict[str, float]) -> None:
    if not enabled():
        return
    writer = _writer(seed_dir)
    for tag, value in metrics.items():
        writer.add_scalar(tag, value, global_step=epoch)
    writer.flush()


@hookimpl
def mmml_seed_end(seed_dir: str, seed: int, results: dict[str, Any]) -> None:
    if not enabled():
        return
    writer = _writer(seed_dir)
    for selection, chosen in results.get("selection", {}).items():
        step = chosen.get("epoch", 0)
        if chosen.get("test_loss") is not None:
            writer.add_scalar(f"test/{selection}/loss", chosen["test_loss"], global_step=step)
        for head, values in chosen.get("test", {}).items():
            for key, value in values.items():
                if value is not None:  # an undefined metric is null in the results
                    writer.add_scalar(f"test/{selection}/{head}/{key}", value, global_step=step)
    _writers.pop(seed_dir).close()


def close_all() -> None:
    """Close every open writer (a seed that diverged has no ``mmml_seed_end``); at exit too."""
    while _writers:
        _writers.popitem()[1].close()


atexit.register(close_all)
