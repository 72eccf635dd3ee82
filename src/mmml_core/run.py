"""Experiments: the run folder, the seed loop, the summary, and comparisons of several runs.

A run is configured by :mod:`mmml_core.runconfig` (layers, typed sections, every problem at
once) and checked by :mod:`mmml_core.validate` (components built on the meta device, the
data read and validated) before :func:`run_experiment` trains anything or writes a file.

The run folder (:func:`open_run_folder`) is created only after the checks pass. A default
folder name carries the date and time; a second run started in the same second gets a
suffix. A folder in use by another process (a run, or a ``--resume`` of it) is refused:
each run holds an exclusive lock on ``<run>/.lock`` while it works.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmml_core.config import ConfigError
from mmml_core.runconfig import (
    Layer,
    RunConfig,
    load_config_file,
    preset_path,
    resolve,
)
from mmml_core.tables import (
    SELECTION_LABELS,
    aggregate,
    format_cell,
    head_labels,
    summary_table,
)

__all__ = [
    "ComparisonRow",
    "Layer",
    "RunConfig",
    "RunFolderError",
    "load_config_file",
    "open_run_folder",
    "preset_path",
    "resolve",
    "run_comparison",
    "run_experiment",
]

LOCK_NAME = ".lock"
#: the run's log (what the ``mmml_core`` logger says while the run works), appended on resume
LOG_NAME = "log.txt"

log = logging.getLogger(__name__)


class RunFolderError(ConfigError):
    """A run folder that cannot be used: not empty, or in use by another process."""


def default_run_dir(cfg: RunConfig) -> Path:
    fusion = cfg.model.fusion.name if cfg.model.fusion else "+".join(cfg.model.encoders)
    return Path("runs") / f"{Path(cfg.data.dataset).name}-{fusion}-{time.strftime('%Y%m%d-%H%M%S')}"


def _lock(folder: Path) -> Any:
    """Hold an exclusive lock on ``folder/.lock`` for this process (released at exit)."""
    path = folder / LOCK_NAME
    handle = open(path, "a+")  # noqa: SIM115 - held open for the life of the run
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, but no false refusal either
        return handle
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "another process"
        handle.close()
        raise RunFolderError(
            f"{folder} is in use by {owner}; wait for it to finish (or stop it) before "
            "starting or resuming a run there"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"mmml-bench process {os.getpid()}\n")
    handle.flush()
    return handle


@contextmanager
def open_run_folder(out: str | Path | None, cfg: RunConfig, *, resume: bool) -> Iterator[Path]:
    """Create (or, with ``resume``, reopen) the run folder and hold its lock while the block
    runs. Without ``out`` the folder is ``runs/<dataset>-<fusion>-<date>-<time>``, with a
    ``-2``, ``-3``, ... suffix when another run took that name first."""
    if out is None and resume:
        raise RunFolderError("--resume needs the run folder: pass --out DIR")
    if out is None:
        base = default_run_dir(cfg)
        base.parent.mkdir(parents=True, exist_ok=True)
        folder, n = base, 1
        while True:
            try:
                folder.mkdir()
                break
            except FileExistsError:
                n += 1
                folder = base.with_name(f"{base.name}-{n}")
    else:
        folder = Path(out)
        if folder.exists() and not folder.is_dir():
            raise RunFolderError(f"{folder} exists and is not a folder")
        if resume and not (folder / "config.json").is_file():
            raise RunFolderError(f"{folder}: no run to resume here (no config.json)")
        folder.mkdir(parents=True, exist_ok=True)
    handle = _lock(folder)
    try:
        if not resume:
            others = [p.name for p in folder.iterdir() if p.name != LOCK_NAME]
            if others:
                raise RunFolderError(
                    f"{folder} exists and is not empty; pass --resume to continue that run, "
                    "or another --out"
                )
        yield folder
    finally:
        handle.close()


def run_experiment(
    run: Any,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Train every seed into ``out_dir/seed-N`` and write the summary tables.

    ``run`` is a :class:`~mmml_core.validate.CheckedRun` (or a :class:`RunConfig`, checked
    here). ``out_dir`` must be a folder this process may write (see
    :func:`open_run_folder`). What the run does is logged to the ``mmml_core`` logger (see
    :mod:`mmml_core.logs`)."""
    from mmml_core import distributed
    from mmml_core.engine import json_clean, train_seed
    from mmml_core.validate import CheckedRun, check_run, describe_dropped, describe_report

    checked: CheckedRun = run if isinstance(run, CheckedRun) else check_run(run)
    cfg = checked.config
    out = Path(out_dir)
    resolved = json.loads(json.dumps(checked.resolved()))
    saved = out / "config.json"
    if resume and saved.is_file():
        before = json.loads(saved.read_text())
        if before != resolved:
            raise ConfigError(f"{saved}: --resume with a different configuration than the run's")
    main = distributed.current().is_main  # under torchrun rank 0 alone writes
    if main:
        saved.write_text(json.dumps(resolved, indent=2))
    log.info(describe_report(checked.data_report))
    if checked.dropped:
        log.info(describe_dropped(checked.dropped))
    dataset = checked.dataset
    per_seed = []
    for seed in cfg.seeds:
        seed_dir = out / f"seed-{seed}"
        done = seed_dir / "results.json"
        if resume and done.is_file():
            log.info(f"seed {seed}: finished earlier, reading {done}")
            per_seed.append(json.loads(done.read_text()))
            continue
        log.info(f"seed {seed}: training into {seed_dir}")
        per_seed.append(
            train_seed(
                checked.spec,
                cfg.loss,
                dataset,
                cfg.train,
                seed,
                seed_dir,
                resume=resume,
                progress=progress,
                checkpoint_extra={
                    "max_audio_seconds": cfg.data.max_audio_seconds,
                    "profile": cfg.profile,
                },
                groups=cfg.optim or None,
            )
        )
    labels = head_labels(cfg.model.subnet_heads, cfg.model.heads)
    table_md, table_csv = summary_table(per_seed, cfg.scheme, labels)
    if main:
        (out / "summary.md").write_text(table_md)
        (out / "summary.csv").write_text(table_csv)
    summary = {
        "config": resolved,
        "profile": cfg.profile,  # paper | authors (mmml_core.profiles)
        "scheme": cfg.scheme,
        "seeds": cfg.seeds,
        "heads": labels,
        "data_report": checked.data_report,
        "dropped": checked.dropped,  # rows left out by data.skip_unusable, with the reasons
        "parameters": checked.parameters,
        "aggregate": aggregate(per_seed),
        "runs": [f"seed-{s}" for s in cfg.seeds],
    }
    if distributed.current().enabled:
        summary["processes"] = distributed.current().world
    if main:
        (out / "results.json").write_text(json.dumps(json_clean(summary), indent=2))
    return {"summary": summary, "table": table_md, "per_seed": per_seed}


# -- comparisons of several runs (the paper's tables) -----------------------------------------


@dataclass
class ComparisonRow:
    """One row of a comparison table: a label, the run's configuration layers, and the head
    whose test metrics the row reports."""

    label: str
    layers: list[Any]
    head: str = "M"
    modalities: list[str] | None = None


def run_comparison(
    rows: Sequence[ComparisonRow],
    out_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    first_index: int = 0,
) -> tuple[str, dict[str, Any]]:
    """Train every row (each into ``out_dir/<n>-<label>``, with its ``log.txt``) and return
    a Markdown table per checkpoint selection plus the aggregates. Rows already finished are
    read back. Every row is resolved and checked before the first one trains. ``first_index``
    is the first row's ``n`` (a script that trains its rows in separate processes passes each
    row's place in the whole table, so a last call over every row reads them back)."""
    from mmml_core.logs import log_files
    from mmml_core.metrics import METRIC_KEYS
    from mmml_core.validate import check_run

    out = Path(out_dir)
    checked = [check_run(resolve(row.layers, row.modalities)) for row in rows]
    results: dict[str, Any] = {}
    scheme = None
    for i, (row, run) in enumerate(zip(rows, checked, strict=True)):
        slug = "".join(c if c.isalnum() else "-" for c in row.label.lower()).strip("-")
        log.info(f"== {row.label}")
        folder = out / f"{first_index + i}-{slug}"
        again = resume and (folder / "config.json").is_file()
        with (
            open_run_folder(folder, run.config, resume=again) as path,
            log_files(path / LOG_NAME),
        ):
            res = run_experiment(run, path, resume=again, progress=progress)
        scheme = res["summary"]["scheme"]
        results[row.label] = {
            "head": row.head,
            "head_label": res["summary"]["heads"].get(row.head, row.head),
            "aggregate": res["summary"]["aggregate"],
            "seeds": run.config.seeds,
        }
    keys = METRIC_KEYS[scheme or "sims"]
    parts = []
    for selection, title in SELECTION_LABELS.items():
        lines = [
            f"Checkpoint: {title}. Test metrics, mean ± std over seeds; accuracies and F1 ×100.",
            "",
            "| run | head | " + " | ".join(keys) + " |",
            "|---|---|" + "---|" * len(keys),
        ]
        for label, r in results.items():
            metrics = r["aggregate"][selection][r["head"]]
            cells = [format_cell(k, *metrics[k]) for k in keys]
            lines.append(f"| {label} | {r['head_label']} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    table = "\n\n".join(parts) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(table)
    return table, results
