"""``mmml-bench [options] [key=value ...]``: train and evaluate one combination.

Output folder (``--out``, default ``runs/<dataset>-<fusion>-<time>``): ``config.json`` (the
resolved run configuration), ``seed-N/`` per seed (``results.json``, ``curve.png``, the
``best_loss/`` and ``best_acc/`` checkpoints, the resumable ``state/``), over the seeds
``summary.md``, ``summary.csv`` and ``results.json``, and ``log.txt``: the run's log.

The log (the run's header, the data report, one line per epoch, the results table, errors)
goes to stderr, to ``log.txt`` (appended on ``--resume``) and to ``--log-file`` when given,
through the ``mmml_core`` logger (:mod:`mmml_core.logs`). stdout holds only the results: the
table, or with ``--json`` the JSON alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["configure_parser", "run"]

OVERRIDE_HELP = """key=value overrides, applied last: train.FIELD (e.g. train.lr=1e-4,
train.max_epochs=5), data.FIELD (e.g. data.max_items=40 for a quick smoke run;
data.text_context=2 data.audio_context=1 to read earlier utterances), profile=authors, seeds=1,2,
MODALITY.FIELD for that modality's encoder (e.g. text.checkpoint=random:tiny,
audio.freeze_feature_extractor=false), fusion.FIELD (e.g. fusion.layers=2), head.FIELD,
subnet_head.FIELD, loss.FIELD (e.g. loss.weights={"M":1}), optim.GROUP.lr,
model.context_gate=false, model.frozen=text,audio (frozen encoders, their outputs computed once
into the feature cache: train.feature_cache=auto|off, train.cache_dir=DIR), output.dir"""


#: The line before the resolved configuration a failed dry run prints on stderr.
RESOLVED_HEADER = "mmml-bench: resolved configuration (its checks found the problems below):\n"


def configure_parser(parser: argparse.ArgumentParser, verb: str) -> None:
    from mmml_core.hooks import get_plugin_manager

    parser.description = (
        "Train and evaluate one encoder/fusion combination over several seeds, then print "
        "the test metrics table (both checkpoint selections, every head)."
    )
    parser.add_argument(
        "--encoder",
        action="append",
        default=[],
        metavar="[MODALITY=]NAME",
        help="encoder per modality, e.g. data2vec or audio=opensmile, or a network of the "
        "modality's encoder, e.g. video=resnet18 (a timm model for encoder video); may be "
        "given once per modality (default: roberta + data2vec for English, "
        "roberta + hubert for Chinese; video only with --modalities ...,video)",
    )
    parser.add_argument(
        "--fusion",
        metavar="NAME",
        help="fusion name (default cross_attn); 'none' with one --modalities",
    )
    parser.add_argument(
        "--modalities",
        metavar="M[,M]",
        help="modalities to use (default: those the dataset kind has default encoders "
        "for, plus any given with --encoder); one modality = a single-modality model "
        "with its subnet head",
    )
    parser.add_argument(
        "--dataset",
        metavar="demo|PATH",
        help="'demo' (bundled, default) or a dataset root in the MMSA layout",
    )
    parser.add_argument(
        "--dataset-kind",
        metavar="KIND",
        help="the dataset's kind (label scheme, language, default encoders): "
        "mosi, mosei, sims, demo, or one a plugin registers (mmml-bench list dataset)",
    )
    parser.add_argument(
        "--profile",
        metavar="NAME",
        help="paper (default): the paper, and our documented choices where it is silent; "
        "authors: what the paper's code computes (fixed-length padding, a new AdamW every "
        "epoch, lr 5e-6, batch 8, ...); a dry run lists every setting that differs",
    )
    parser.add_argument("--seeds", metavar="N[,N]", help="seeds (default 1,11,111)")
    parser.add_argument(
        "--heads",
        metavar="H[,H]",
        help="M,T,A = multi-loss (default); M = single-loss on the fused head",
    )
    parser.add_argument("--loss", metavar="NAME", help="loss name: l1 (default) or mse")
    parser.add_argument("--device", metavar="DEV", help="auto (default), cpu, cuda, cuda:1")
    parser.add_argument("--config", metavar="FILE", help="run configuration (TOML or JSON)")
    parser.add_argument(
        "--preset",
        metavar="NAME",
        help="a bundled configuration: demo, paper-mosi, paper-mosei, paper-sims, their "
        "authors-mosi, authors-mosei, authors-sims twins (the authors profile), and the "
        "context models paper-mosi-context, paper-mosei-context",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="run folder (default runs/<dataset>-<fusion>-<date>-<time>, made unique)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last completed epoch",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the aggregate results as JSON instead of the table",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="resolve and print the configuration (on stderr when a check fails), build "
        "every component on the meta device and validate the dataset; report every "
        "problem; train nothing",
    )
    parser.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bars (the log still has one line per epoch)",
    )
    parser.add_argument(
        "--log-file",
        metavar="PATH",
        help="also append the run's log to PATH (it is always in <run>/log.txt)",
    )
    parser.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train with N processes through torchrun (DistributedDataParallel; one per GPU, "
        "or gloo on CPU): the same as `torchrun --standalone --nproc-per-node N -m mmml_core "
        "...`; train.batch_size stays the global batch",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help=OVERRIDE_HELP)
    get_plugin_manager().hook.mmml_add_cli_options(parser=parser)


def _layers(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    """The preset, config-file, flag and ``key=value`` layers, and the problems found in them."""
    from mmml_core.config import ConfigError
    from mmml_core.runconfig import (
        Layer,
        Problem,
        flags_layer,
        load_config_file,
        override_layer,
        preset_path,
    )

    layers: list[Layer] = []
    problems: list[Problem] = []
    for flag, value, find in (
        ("--preset", args.preset, preset_path),
        ("--config", args.config, lambda v: v),
    ):
        if not value:
            continue
        try:
            layers.append(Layer(f"{flag} {value}", load_config_file(find(value))))
        except ConfigError as exc:
            problems.append(Problem(flag, str(exc), f"{flag} {value}"))
    flags, found = flags_layer(
        dataset=args.dataset,
        kind=args.dataset_kind,
        seeds=args.seeds,
        device=args.device,
        loss=args.loss,
        fusion=args.fusion,
        heads=args.heads,
        modalities=args.modalities,
        encoders=args.encoder,
        out=args.out,
        profile=args.profile,
    )
    layers.append(flags)
    problems += found
    overrides, found = override_layer(args.overrides, layers)
    layers.append(overrides)
    problems += found
    return layers, problems


def _configure_hooks(pm: Any, layers: list[Any], args: argparse.Namespace) -> list[Any]:
    """Let hook plugins adjust the configuration; what they change becomes the top layer."""
    from mmml_core.runconfig import Layer, merge_layers

    merged, _, _ = merge_layers(layers)
    before = json.dumps(merged, sort_keys=True, default=str)
    pm.hook.mmml_configure_run(run_config=merged, options=vars(args))
    if json.dumps(merged, sort_keys=True, default=str) == before:
        return layers
    return [Layer("a mmml_configure_run hook", merged)]


def describe_profile_differences(cfg: Any, layers: list[Any]) -> str:
    """Every setting that the other profile would change, as a Markdown table: the same
    layers resolved with ``profile`` set to the other one (:mod:`mmml_core.profiles`)."""
    from mmml_core.profiles import PROFILES
    from mmml_core.runconfig import ConfigError, Layer, differences, resolve

    lines = []
    for other in (p for p in PROFILES if p != cfg.profile):
        try:
            alt = resolve([*layers, Layer(f"--profile {other}", {"profile": other})])
        except ConfigError as exc:
            lines.append(f"profile {other!r}: cannot be compared ({exc})")
            continue
        diff = differences(cfg, alt)
        lines += [
            f"Settings that differ between profile {cfg.profile!r} (this run) and profile "
            f"{other!r} ({len(diff)}):",
            "",
            f"| setting | {cfg.profile} | {other} |",
            "|---|---|---|",
        ]
        lines += [f"| `{key}` | {_cell(a)} | {_cell(b)} |" for key, a, b in diff]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _error(message: str) -> int:
    import os

    if os.environ.get("RANK", "0") == "0":  # under torchrun every rank finds it; one says it
        print(f"mmml-bench: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from mmml_core.config import ConfigError
    from mmml_core.hooks import get_plugin_manager
    from mmml_core.runconfig import ConfigErrors, Problem, resolve

    pm = get_plugin_manager()
    from mmml_core.optim import describe_groups
    from mmml_core.validate import check_run, describe_dropped, describe_report

    layers, problems = _layers(args)
    layers = _configure_hooks(pm, layers, args)
    try:
        cfg = resolve(layers)
    except ConfigErrors as exc:  # report the layers' problems and these together...
        problems += exc.problems
        if exc.partial is not None:  # ...and those of the components and data, if checkable
            try:
                check_run(exc.partial, problems)
            except ConfigErrors as more:
                problems = more.problems
        return _error(str(ConfigErrors(problems)))
    except ConfigError as exc:
        problems.append(Problem("configuration", str(exc)))
    if problems:
        return _error(str(ConfigErrors(problems)))

    from mmml_core.engine import resolve_device

    try:
        resolve_device(cfg.train.device)
    except (RuntimeError, ValueError) as exc:  # no CUDA here, or a malformed device name
        return _error(f"train.device: {exc}")

    from mmml_core import distributed

    if args.nproc < 1:
        return _error(f"--nproc must be at least 1, got {args.nproc}")
    if args.dry_run:
        print(describe_profile_differences(cfg, layers), file=sys.stderr)
    try:
        checked = check_run(cfg)
    except ConfigError as exc:
        if args.dry_run:  # what resolved is still worth seeing (e.g. checkpoints not here);
            # on stderr: stdout holds results only, and a failed dry run has none
            print(RESOLVED_HEADER + json.dumps(cfg.to_dict(), indent=2), file=sys.stderr)
        return _error(str(exc))
    if args.dry_run:
        print(json.dumps(checked.resolved(), indent=2))
        print(describe_report(checked.data_report), file=sys.stderr)
        if checked.dropped:
            print(describe_dropped(checked.dropped), file=sys.stderr)
        print(describe_groups(cfg.optim), file=sys.stderr)
        print(
            "mmml-bench: configuration, components and data checked; nothing trained "
            "(parameters: " + ", ".join(f"{k} {v:,}" for k, v in checked.parameters.items()) + ")",
            file=sys.stderr,
        )
        return 0
    if args.nproc > 1 and not distributed.launched():  # checked here, trained by torchrun
        device = resolve_device(cfg.train.device)
        if device.type == "cuda" and device.index is not None:
            return _error(
                f"--nproc {args.nproc} with train.device={cfg.train.device}: each process "
                "uses its own GPU (cuda:LOCAL_RANK); use train.device=cuda or auto"
            )
        if device.type == "cuda" and torch_cuda_count() < args.nproc:
            return _error(
                f"--nproc {args.nproc} needs {args.nproc} GPUs (one per process); this "
                f"machine has {torch_cuda_count()}"
            )
        return _launch(args)
    distributed.init_from_env(cfg.train.device)
    try:
        return _train(checked, args, pm)
    finally:
        distributed.shutdown()


def torch_cuda_count() -> int:
    import torch

    return torch.cuda.device_count()


def _launch(args: argparse.Namespace) -> int:
    """``mmml-bench --nproc N ...``: the same command under ``torchrun`` (this process waits
    for it and returns its exit code; each of the N processes runs the command without
    ``--nproc``). torchrun runs through :mod:`mmml_core._torchrun`, which turns its failure
    reports into mmml-bench's exit codes."""
    import subprocess

    argv = list(getattr(args, "argv", None) or sys.argv[1:])
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            rest.append(a)
    cmd = [sys.executable, "-m", "mmml_core._torchrun", "--standalone"]
    cmd += [f"--nproc-per-node={args.nproc}", "-m", "mmml_core", *rest]
    import signal

    proc = subprocess.Popen(cmd)
    # torchrun stops its ranks on SIGINT and SIGTERM; pass a SIGTERM on to it (Ctrl-C reaches
    # it anyway: it is in this terminal's foreground process group)
    previous = signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # wait for torchrun to stop the ranks, never orphan them
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code if code in (0, 1, 2, 130) else 130 if code == -2 else 1


def _train(checked: Any, args: argparse.Namespace, pm: Any) -> int:
    from mmml_core import distributed
    from mmml_core.logs import console

    if not distributed.current().is_main:  # rank 0 alone logs and writes
        import logging

        quiet = logging.getLogger("mmml_core")
        quiet.addHandler(logging.NullHandler())  # not even Python's last-resort handler
        quiet.propagate = False
        return _train_logged(checked, args, pm)
    with console():
        return _train_logged(checked, args, pm)


def _train_logged(checked: Any, args: argparse.Namespace, pm: Any) -> int:
    """The run, its log going to stderr (set up by :func:`_train`) and, once the run folder
    is open, to ``<run>/log.txt`` and ``--log-file``."""
    import logging
    from contextlib import ExitStack
    from pathlib import Path

    from mmml_core import distributed
    from mmml_core.config import ConfigError
    from mmml_core.engine import TrainingDiverged
    from mmml_core.logs import FILE_ONLY, log_files
    from mmml_core.run import LOG_NAME, open_run_folder, run_experiment

    log = logging.getLogger("mmml_core.commands.train")
    cfg = checked.config
    dist = distributed.current()
    with ExitStack() as stack:
        folder: str | None = None
        if dist.is_main:  # under torchrun: rank 0 opens (and locks) the folder, the others
            try:  # use the one it opened
                out = stack.enter_context(open_run_folder(cfg.output.dir, cfg, resume=args.resume))
                stack.enter_context(log_files(out / LOG_NAME, args.log_file))
                folder = str(out)
            except (ConfigError, OSError) as exc:  # the folder (or --log-file) cannot be used
                dist.broadcast(None)
                return _error(str(exc))
        folder = dist.broadcast(folder)
        if folder is None:  # rank 0 could not open it, and said why
            return 2
        out = Path(folder)
        log.info(
            f"mmml-bench: {cfg.data.dataset} ({cfg.data.kind}), encoders "
            + ", ".join(f"{m}={s.name}" for m, s in cfg.model.encoders.items())
            + f", fusion {cfg.model.fusion.name if cfg.model.fusion else 'none'}, "
            f"heads {','.join(cfg.model.heads)}, loss {cfg.loss.name}, seeds "
            f"{','.join(map(str, cfg.seeds))} -> {out}{' (resumed)' if args.resume else ''}"
        )
        try:
            result = run_experiment(checked, out, resume=args.resume, progress=not args.no_progress)
        except (TrainingDiverged, ConfigError, OSError) as exc:
            log.error(f"mmml-bench: error: {exc}")  # stderr and the log files
            return 2
        except KeyboardInterrupt:
            log.info("interrupted", extra=FILE_ONLY)  # the CLI says it on stderr
            raise
        outputs = (
            f"outputs in {out}/ (summary.md, summary.csv, seed-*/results.json, curve.png, "
            "best_loss/ and best_acc/ checkpoints, log.txt)"
        )
        log.info(result["table"].rstrip("\n"), extra=FILE_ONLY)  # stdout has it, below
        log.info(outputs, extra=FILE_ONLY)
    if not dist.is_main:
        return 0
    pm.hook.mmml_report_results(run_dir=str(out), results=result["summary"])
    if args.json:
        print(json.dumps(result["summary"], indent=2))
    else:
        print(result["table"])
        print(outputs)
    return 0
