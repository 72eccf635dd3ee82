"""The run log: the ``mmml_core`` logger, its console handler and the run's log files.

mmml-core's modules log through :mod:`logging`, under ``mmml_core`` (``mmml_core.engine``,
``mmml_core.run``: children that propagate to it), and never configure it. The training
command does: :func:`console` sends INFO and above to stderr as plain messages, and
:func:`log_files` appends the same records, time-stamped, to ``<run>/log.txt`` (and
``--log-file``) while the run works. A library user sees nothing at INFO unless they
configure logging (``logging.basicConfig(level=logging.INFO)``, or :func:`console`).

The console handler writes through ``tqdm.write``, so a log line never tears a progress bar,
and looks up ``sys.stderr`` at each record (as ``logging.lastResort`` does), so a redirected or
captured stderr gets the lines. A record logged with ``extra=FILE_ONLY`` goes to the files
only: the results table, which the CLI prints to stdout itself.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

__all__ = ["FILE_ONLY", "LOGGER", "console", "log_files"]

#: the name of mmml-core's logger (the parent of every module's logger)
LOGGER = "mmml_core"
#: ``extra=`` for a record that goes to the log files, not to the console
FILE_ONLY: dict[str, Any] = {"console": False}
FILE_FORMAT = "%(asctime)s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class _Stderr(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is when a record comes, through
    ``tqdm.write`` (which clears and redraws any progress bar)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # set by StreamHandler.__init__; always sys.stderr
        pass

    def emit(self, record: logging.LogRecord) -> None:
        if not getattr(record, "console", True):
            return
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
        except Exception:  # logging's rule: a failing handler must not stop the program
            self.handleError(record)


@contextmanager
def console(level: int = logging.INFO) -> Iterator[logging.Handler]:
    """Log ``mmml_core`` records of ``level`` and above to stderr, as their plain message,
    while the block runs. The logger does not propagate meanwhile (a root handler would print
    each line twice); both are restored after."""
    logger = logging.getLogger(LOGGER)
    handler = _Stderr()
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    before = logger.level, logger.propagate
    logger.addHandler(handler)
    if logger.level == logging.NOTSET or logger.level > level:
        logger.setLevel(level)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(before[0])
        logger.propagate = before[1]


@contextmanager
def log_files(*paths: str | Path | None, level: int = logging.INFO) -> Iterator[list[Path]]:
    """Append ``mmml_core`` records of ``level`` and above, with their time, to each of
    ``paths`` (``None`` skipped, the same file once) while the block runs; yields the files.
    A file's folder is created when missing."""
    logger = logging.getLogger(LOGGER)
    files: list[Path] = []
    for path in paths:
        if path is not None and Path(path).resolve() not in [f.resolve() for f in files]:
            files.append(Path(path))
    with ExitStack() as stack:
        for path in files:
            path.parent.mkdir(parents=True, exist_ok=True)
            handler = logging.FileHandler(path, mode="a", encoding="utf-8")
            stack.callback(handler.close)
            handler.setLevel(level)
            handler.setFormatter(logging.Formatter(FILE_FORMAT, DATE_FORMAT))
            logger.addHandler(handler)
            stack.callback(logger.removeHandler, handler)
        before = logger.level
        if logger.level == logging.NOTSET or logger.level > level:
            logger.setLevel(level)
        stack.callback(logger.setLevel, before)
        yield files
