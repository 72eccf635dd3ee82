"""Checking a run before anything trains or is written: the second half of validation.

:func:`mmml_core.runconfig.resolve` checks names and keys. :func:`check_run` then checks what
needs the components and the data, and reports every problem at once:

- every component is created on PyTorch's ``meta`` device (shapes, no memory, no weights
  read), so widths that do not fit, head counts that do not divide a width, layer counts,
  dropout ranges, unknown ``random:`` presets and unreachable checkpoints are found in
  seconds;
- the dataset is read and validated for the modalities the run uses (``label.csv``, the
  splits, every audio file present and readable);
- what loading and preprocessing will do to the data is counted (rows dropped for unusable
  audio with ``data.skip_unusable``, texts re-cased, clips resampled, downmixed or cut, texts
  truncated, clips too short for an encoder), for the log and the run's results; the dropped
  rows themselves are listed (:func:`describe_dropped`).

``mmml-bench --dry-run`` stops after this; a real run trains from the dataset loaded here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from mmml_core import registry
from mmml_core.interfaces import config_dict
from mmml_core.model import ModelSpec, MultimodalModel
from mmml_core.runconfig import (
    ComponentSpec,
    ConfigErrors,
    Problem,
    RunConfig,
    component_problems,
)

__all__ = ["CheckedRun", "check_run", "describe_dropped", "describe_report"]

#: Dropped rows named in the log line; results.json lists them all.
_DROPPED_NAMED = 20


@dataclass
class CheckedRun:
    """A run that passed every check: its configuration, the model spec with every
    component's full config (as built), the loaded dataset, and the data report."""

    config: RunConfig
    spec: ModelSpec
    dataset: Any
    data_report: dict[str, int] = field(default_factory=dict)
    parameters: dict[str, int] = field(default_factory=dict)  # component -> parameter count
    #: rows the dataset left out on request (``data.skip_unusable``), each with its reason
    dropped: list[dict[str, Any]] = field(default_factory=list)

    def resolved(self) -> dict[str, Any]:
        """The resolved configuration with each component's full config."""
        out = self.config.to_dict()
        out["model"] = self.spec.to_dict()
        return out


def check_run(cfg: RunConfig, problems: Sequence[Problem] = ()) -> CheckedRun:
    """Build every component of ``cfg`` on the meta device and load its dataset; raise
    :class:`~mmml_core.runconfig.ConfigErrors` listing every problem found, after
    ``problems`` already found (e.g. by ``resolve`` in sections these checks do not need:
    pass ``ConfigErrors.partial`` as ``cfg``)."""
    problems = list(problems)
    model = _build_on_meta(cfg, problems)
    dataset = _load_dataset(cfg, problems)
    report: dict[str, int] = {}
    if model is not None and dataset is not None:
        report = _data_report(model, dataset, problems)
    if problems:
        raise ConfigErrors(problems)
    assert model is not None
    parameters = {f"{m} encoder": _count(e) for m, e in model.encoders.items()}
    if model.fusion is not None:
        parameters["fusion"] = _count(model.fusion)
    if model.head is not None:
        parameters["fused head"] = _count(model.head)
    parameters["subnet heads"] = sum(_count(h) for h in model.subnet_heads.values())
    dropped = [dict(d) for d in getattr(dataset, "dropped", None) or ()]
    return CheckedRun(cfg, model.resolved_spec(), dataset, report, parameters, dropped)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _blame(
    message: str, config: Mapping[str, Any], path: str, origins: Mapping[str, str]
) -> str | None:
    """The layer that most likely set what ``message`` complains about: a key whose name or
    value appears in it, else whatever named the component."""
    for key, value in config.items():
        # a value counts when it is specific enough to be quoted (not "hf" in "hf download")
        quoted = isinstance(value, str) and len(value) > 3 and value in message
        if f"{path}.config.{key}" in origins and (key in message or quoted):
            return origins[f"{path}.config.{key}"]
    return origins.get(f"{path}.name")


def _create(kind: str, spec: ComponentSpec, **filled: Any) -> Any:
    with torch.device("meta"):
        return registry.create(kind, spec.name, **spec.config, **filled)


#: A stand-in width for encoders that could not be built (divisible by the usual head counts)
_STAND_IN_WIDTH = 768


def _fusion_without_widths(
    spec: ComponentSpec,
    modalities: Sequence[str],
    built: Mapping[str, Any],
    origins: Mapping[str, str],
) -> list[Problem]:
    """The fusion's problems that do not depend on the widths of encoders that could not be
    built (layer counts, dropout ranges, unknown keys), found with a stand-in width; what
    depends on the widths is said to be unchecked."""
    unchecked = Problem(
        "fusion", "widths and heads not checked: they follow from the encoders above"
    )
    try:
        cls = registry.load("fusion", spec.name)
    except Exception:  # reported where the fusion was resolved
        return [unchecked]
    dims = {m: built[m].dim if m in built else _STAND_IN_WIDTH for m in modalities}
    found = component_problems(
        cls.Config, spec.config, "fusion", "model.fusion", origins, {"input_dims": dims}
    )
    width_words = ("width", "divisible", "input_dims", "heads")
    kept = [p for p in found if not any(w in p.message for w in width_words)]
    return [*kept, unchecked]


def _build_on_meta(cfg: RunConfig, problems: list[Problem]) -> MultimodalModel | None:
    origins = cfg.origins
    model_cfg = cfg.model
    encoders = {}
    for m, spec in model_cfg.encoders.items():
        path = f"model.encoders.{m}"
        try:
            encoders[m] = _create("encoder", spec)
        except Exception as exc:  # a plugin may raise anything for a bad checkpoint or value
            msg = f"encoder {spec.name!r} cannot be built: {exc}"
            problems.append(Problem(m, msg, _blame(str(exc), spec.config, path, origins)))
    if len(encoders) != len(model_cfg.encoders):
        if model_cfg.fusion is not None:
            problems += _fusion_without_widths(
                model_cfg.fusion, list(model_cfg.encoders), encoders, origins
            )
        return None
    dims = {m: e.dim for m, e in encoders.items()}

    fusion = None
    if model_cfg.fusion is not None:
        spec = model_cfg.fusion
        cls = registry.load("fusion", spec.name)
        found = component_problems(
            cls.Config, spec.config, "fusion", "model.fusion", origins, {"input_dims": dims}
        )
        if not found:
            try:
                fusion = _create("fusion", spec, input_dims=dims)
            except Exception as exc:
                found = [
                    Problem("fusion", f"cannot be built: {exc}", origins.get("model.fusion.name"))
                ]
        problems += found
        if fusion is None:
            return None

    head = None
    heads_ok = True
    width = 2 if model_cfg.context else 1  # heads read current and context features
    if fusion is not None and "M" in model_cfg.heads:
        head = _head("head", model_cfg.head, fusion.out_dim * width, origins, problems)
        heads_ok = head is not None
    subnet = {}
    for m in encoders:
        if model_cfg.subnet_heads[m] in model_cfg.heads:
            built = _head("subnet_head", model_cfg.subnet_head, dims[m] * width, origins, problems)
            if built is None:
                heads_ok = False
                break
            subnet[m] = built
    if not heads_ok:
        return None
    spec = ModelSpec(
        encoders=dict(model_cfg.encoders),
        fusion=model_cfg.fusion,
        head=model_cfg.head,
        subnet_head=model_cfg.subnet_head,
        heads=tuple(model_cfg.heads),
        context=model_cfg.context,
        empty_context=model_cfg.empty_context,
        context_gate=model_cfg.context_gate,
        frozen=tuple(model_cfg.frozen),
    )
    model = MultimodalModel(spec, encoders, fusion, head, subnet)
    if fusion is not None:  # the fusion's config as built, input widths included
        model.spec.fusion = ComponentSpec(spec.fusion.name, config_dict(fusion))
    return model


def _head(
    role: str, spec: ComponentSpec, in_dim: int, origins: Mapping[str, str], problems: list[Problem]
) -> Any:
    cls = registry.load("head", spec.name)
    path = f"model.{role}"
    found = component_problems(cls.Config, spec.config, role, path, origins, {"in_dim": in_dim})
    if found:
        problems += found
        return None
    try:
        return _create("head", spec, in_dim=in_dim)
    except Exception as exc:
        problems.append(Problem(role, f"cannot be built: {exc}", origins.get(f"{path}.name")))
        return None


def _load_dataset(cfg: RunConfig, problems: list[Problem]) -> Any:
    from mmml_core.data import DatasetError
    from mmml_core.data.kinds import LOAD_OPTIONS, load_options

    origins = cfg.origins
    data = cfg.data
    kind_cls = registry.load("dataset", data.kind)
    bundled = data.dataset == "demo" and not getattr(kind_cls, "needs_path", True)
    root = None if bundled else data.dataset
    origin = origins.get("data.dataset") if root is not None else origins.get("data.kind")
    try:
        kind = registry.create("dataset", data.kind)
        # every optional load keyword is a data.* field of the same name
        extra, refused = load_options(kind, **{k: getattr(data, k) for k in LOAD_OPTIONS})
        for name in refused:
            problems.append(
                Problem(
                    f"data.{name}",
                    f"dataset kind {data.kind!r} does not support it (its load() takes no "
                    f"{name} argument); leave it at its default",
                    origins.get(f"data.{name}"),
                )
            )
        return kind.load(
            root,
            modalities=list(cfg.model.encoders),
            max_audio_seconds=data.max_audio_seconds,
            max_items=data.max_items,
            **extra,
        )
    except DatasetError as exc:
        for line in exc.problems:
            problems.append(Problem("data.dataset", line, origin))
        if getattr(exc, "hint", None):
            problems.append(Problem("data.skip_unusable", f"hint: {exc.hint}"))
    except (OSError, ValueError) as exc:
        problems.append(Problem("data.dataset", f"{root or data.kind}: {exc}", origin))
    return None


def _data_report(model: MultimodalModel, dataset: Any, problems: list[Problem]) -> dict[str, int]:
    """What loading (the dataset's own report) and each encoder's preprocessing will do to
    the data, summed over the splits."""
    report = dict(getattr(dataset, "report", {}) or {})
    for split_name in ("train", "valid", "test"):
        split = dataset.split(split_name)
        for m, enc in model.encoders.items():
            try:
                counts = enc.describe_inputs(split.previews(m))
            except Exception as exc:  # a plugin's report must not hide the real problem
                problems.append(
                    Problem(m, f"cannot inspect the {split_name} split's inputs: {exc}")
                )
                continue
            for what, n in counts.items():
                if n:
                    key = f"{m}: {what}"
                    report[key] = report.get(key, 0) + int(n)
    return report


def describe_dropped(dropped: Sequence[Mapping[str, Any]]) -> str | None:
    """One line naming the rows dropped for unusable audio or video (the first 20, then how
    many more), or None when none was."""
    if not dropped:
        return None
    names = [
        f"{d['video_id']}/{d['clip_id']}" if "video_id" in d else str(d.get("id", "?"))
        for d in dropped
    ]
    kinds = sorted({f for d in dropped for f in d.get("fields", ["audio"])})
    what = " or ".join(kinds)
    shown = ", ".join(names[:_DROPPED_NAMED])
    more = len(names) - _DROPPED_NAMED
    if more > 0:
        shown += f" and {more} more"
    return (
        f"data: {len(dropped)} row(s) dropped because their {what} is missing, empty or "
        f"unreadable (data.skip_unusable): {shown} (results.json lists them with the reasons)"
    )


def describe_report(report: Mapping[str, int]) -> str:
    """One line per count, or a line saying the data is used as it is."""
    if not report:
        return (
            "data: every item is used as it is (no resampling, downmixing, cutting or truncation)"
        )
    return "data: " + "; ".join(f"{what}: {n}" for what, n in report.items())
