"""Learning rates per part of the model: parameter groups and the learning-rate schedule.

A model has one parameter group per encoder (named by its modality: ``text``, ``audio``,
...), one for the fusion (``fusion``) and one for every prediction head together (``heads``:
the fused head and the subnet heads). Each group has its own learning rate and weight decay.

Defaults, chosen so that what is loaded trains well without hand tuning:

- an encoder that starts from pretrained weights (a hub id or a local folder) gets
  ``train.pretrained_lr``, a fine-tuning rate;
- everything that starts from random weights (the fusion, the heads, a ``random:`` encoder,
  a feature-based encoder such as openSMILE) gets ``train.lr``, the from-scratch rate;
- every group gets ``train.weight_decay``.

``optim.GROUP.lr=...`` and ``optim.GROUP.weight_decay=...`` set one group. The paper trains
the whole model at one rate (1e-5): its presets set both rates to that value.

The schedule (``train.schedule``, ``train.warmup_steps``) multiplies every group's rate by
the same factor at each optimizer step: a linear warm-up from 0 over ``warmup_steps`` steps,
then ``constant`` (the default; the paper uses no schedule), ``linear`` decay to 0 or a
``cosine`` decay to 0 at the end of ``train.max_epochs`` epochs.

This module does not import torch at import time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIXED_GROUPS",
    "GroupProblems",
    "SCHEDULES",
    "OptimGroup",
    "describe_groups",
    "group_names",
    "lr_factor",
    "model_param_groups",
    "resolve_groups",
]

#: The groups every model has besides one per encoder.
FIXED_GROUPS: tuple[str, ...] = ("fusion", "heads")
SCHEDULES: tuple[str, ...] = ("constant", "linear", "cosine")


@dataclass
class OptimGroup:
    """One parameter group's settings (resolved: every field set)."""

    lr: float
    weight_decay: float
    why: str = ""  # where the rate comes from, for the dry run's print-out

    def __post_init__(self) -> None:
        problems = []
        if not _finite(self.lr) or self.lr <= 0:
            problems.append(f"lr must be a finite number > 0, got {self.lr!r}")
        if not _finite(self.weight_decay) or self.weight_decay < 0:
            problems.append(f"weight_decay must be a finite number >= 0, got {self.weight_decay!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "weight_decay": self.weight_decay}


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class GroupProblems(ValueError):
    """Problems with the groups' settings: ``problems`` lists ``(key, message)``, the key as a
    user writes it (``optim.text.lr``)."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{k}: {m}" for k, m in problems))
        self.problems = problems


def group_names(modalities: Iterable[str], has_fusion: bool) -> list[str]:
    """The groups of a model with these encoders (and a fusion or not)."""
    return [*modalities, *(("fusion",) if has_fusion else ()), "heads"]


def resolve_groups(
    encoders: Mapping[str, bool],
    has_fusion: bool,
    train: Any,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, OptimGroup]:
    """Every group's settings. ``encoders``: modality -> whether that encoder starts from
    pretrained weights; ``train``: the run's TrainConfig; ``overrides``: group -> fields the
    user set. Raises :class:`GroupProblems` listing every unknown group or field and bad
    value."""
    overrides = dict(overrides or {})
    names = group_names(encoders, has_fusion)
    problems = [
        (f"optim.{g}", f"unknown parameter group {g!r}; this model's groups are {', '.join(names)}")
        for g in overrides
        if g not in names
    ]
    out: dict[str, OptimGroup] = {}
    for name in names:
        pretrained = encoders.get(name, False)
        if pretrained:
            lr, why = train.pretrained_lr, "train.pretrained_lr (pretrained weights)"
        else:
            lr, why = train.lr, "train.lr (from scratch)"
        wd = train.weight_decay
        given = dict(overrides.get(name) or {})
        unknown = [k for k in given if k not in ("lr", "weight_decay")]
        if unknown:
            problems.append(
                (f"optim.{name}", f"unknown key(s) {unknown}; keys are lr, weight_decay")
            )
        if "lr" in given:
            lr, why = given["lr"], f"optim.{name}.lr"
        wd = given.get("weight_decay", wd)
        if not _finite(lr) or lr <= 0:
            key = f"optim.{name}.lr" if "lr" in given else why.split(" ")[0]
            problems.append((key, f"the {name} group's lr must be a finite number > 0, got {lr!r}"))
        elif not _finite(wd) or wd < 0:
            key = f"optim.{name}.weight_decay" if "weight_decay" in given else "train.weight_decay"
            problems.append((key, f"weight_decay must be a finite number >= 0, got {wd!r}"))
        else:
            out[name] = OptimGroup(lr=lr, weight_decay=wd, why=why)
    if problems:
        raise GroupProblems(problems)
    return out


def describe_groups(groups: Mapping[str, OptimGroup]) -> str:
    """One line: each group's rate and weight decay, and the rule or key that chose the rate."""
    return "learning rates: " + ", ".join(
        f"{name} {g.lr:.3g} ({g.why}; weight decay {g.weight_decay:g})"
        for name, g in groups.items()
    )


def model_param_groups(model: Any, groups: Mapping[str, OptimGroup]) -> list[dict[str, Any]]:
    """AdamW parameter groups of a :class:`~mmml_core.model.MultimodalModel`: the trainable
    parameters of each part with that group's settings (and its ``name``). Frozen parameters
    (an audio model's convolutional front end) are left out. Every trainable parameter must
    belong to exactly one group."""
    parts: dict[str, list[Any]] = {m: list(e.parameters()) for m, e in model.encoders.items()}
    if model.fusion is not None:
        parts["fusion"] = list(model.fusion.parameters())
    head = [] if model.head is None else list(model.head.parameters())
    gates = getattr(model, "context_gates", None)  # a context model's gates read with heads
    parts["heads"] = [
        *head,
        *model.subnet_heads.parameters(),
        *(gates.parameters() if gates else ()),
    ]
    missing = [g for g in parts if g not in groups]
    if missing:
        raise ValueError(f"no settings for parameter group(s) {missing}")
    out, seen = [], set()
    for name, params in parts.items():
        trainable = [p for p in params if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in trainable)
        if trainable:
            out.append({"params": trainable, "name": name, **groups[name].to_dict()})
    stray = [n for n, p in model.named_parameters() if p.requires_grad and id(p) not in seen]
    if stray:
        raise ValueError(f"parameters in no group: {stray[:5]}")
    return out


def lr_factor(schedule: str, step: int, warmup_steps: int, total_steps: int) -> float:
    """The multiplier of every group's rate at optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(total_steps - warmup_steps, 1)
    progress = min(max(step - warmup_steps, 0) / span, 1.0)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}; schedules are {', '.join(SCHEDULES)}")
