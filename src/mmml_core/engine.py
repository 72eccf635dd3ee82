"""The training engine (docs/training.md): one seed of one model on one dataset.

AdamW over every trainable parameter, early stopping on the validation loss (patience 8 as in
the paper's appendix A.1), an epoch cap, optional gradient clipping. Two checkpoints are kept
(lowest validation loss, highest validation binary accuracy) and both are evaluated on test.
On CUDA: bf16 autocast and fused AdamW. The step has no per-item Python; the loss is read back
to the host once per epoch.

Resume: after every epoch the full training state (weights, optimizer, RNG, history,
early-stopping counters) is written atomically to ``<run>/state``; a killed run started again
with the same settings continues from its last completed epoch and ends with the same result
as an uninterrupted run (on CPU, where kernels are deterministic). Batch order depends only on
the seed and the epoch number, never on how many epochs ran in this process.

Divergence: a non-finite training loss, validation loss or prediction ends the seed with
:class:`TrainingDiverged` before the epoch writes anything, so the checkpoints and the
resumable state keep the last good epoch. It is checked once per epoch, on the loss that is
read back anyway.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
import os
import random
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, RandomSampler

from mmml_core import distributed, registry
from mmml_core.checkpoint import atomic_directory, atomic_write_text, recover_directory, save_model
from mmml_core.interfaces import FeatureEncoder
from mmml_core.metrics import ACC2_KEY, regression_metrics
from mmml_core.model import ComponentSpec, ModelSpec, MultimodalModel, build_model
from mmml_core.optim import SCHEDULES, OptimGroup, lr_factor, model_param_groups, resolve_groups

__all__ = ["TrainConfig", "TrainingDiverged", "evaluate", "resolve_device", "train_seed"]

log = logging.getLogger(__name__)  # under "mmml_core", which the train command configures


@dataclass
class TrainConfig:
    # the from-scratch rate: fusion, heads and encoders with random weights (the paper's
    # appendix A.1 trains everything at 1e-5; the authors' code used 5e-6 with batch 8)
    lr: float = 1e-5
    # the fine-tuning rate of encoders that start from pretrained weights (paper: 1e-5)
    pretrained_lr: float = 1e-5
    batch_size: int = 16  # the paper's appendix A.1
    eval_batch_size: int = 32  # no gradients at evaluation: larger batches are free
    max_epochs: int = 100  # a cap only: early stopping normally ends a run sooner
    patience: int = 8  # epochs without a lower validation loss (paper A.1)
    weight_decay: float = 0.01  # AdamW's usual default
    grad_clip: float | None = None  # max gradient norm; None = no clipping (as the paper)
    bucket_by_length: bool = True  # batches of similar audio length: less padding, same items
    num_workers: int = 0  # DataLoader workers running encoder preprocessing; 0 = in process
    device: str = "auto"  # auto = cuda when available, else cpu
    amp: bool = True  # bf16 autocast, used on CUDA only
    # torch.compile the training forward and backward (Inductor; shapes that change from
    # batch to batch are compiled once more as dynamic); evaluation stays eager
    compile: bool = False
    # DataLoader page-locked host memory for faster copies to the GPU: auto = on CUDA
    pin_memory: str = "auto"
    # batches each DataLoader worker loads ahead (with num_workers > 0)
    prefetch_factor: int = 2
    # after warm-up: constant | linear | cosine (decay to 0 at max_epochs); the paper: constant
    schedule: str = "constant"
    warmup_steps: int = 0  # optimizer steps of linear warm-up from 0; 0 = none (the paper)
    # never = one AdamW for the whole run; epoch = a new AdamW (moments reset) at the start
    # of every epoch, as the authors' code does (profile authors)
    reset_optimizer: str = "never"
    # which epoch keeps the best-Acc2 weights on a tie: earlier (`>`) or later (`>=`, the
    # authors' code)
    acc_tie: str = "earlier"
    # what a single-modality model learns: multimodal = the label (the paper's text-only
    # rows); own = its modality's label where the dataset has one (label_A on CH-SIMS, the
    # authors' Table 2), else the label
    unimodal_label: str = "multimodal"
    # frozen encoders' outputs (model.frozen): auto = computed once per item and read back from
    # the feature cache (mmml_core.cache); off = the encoders run on every batch
    feature_cache: str = "auto"
    # the feature cache's folder; None = $MMML_CACHE_DIR, else ~/.cache/mmml/features
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        """Reject every out-of-range number, naming the field and its value (all at once).

        NaN and infinity are errors for the float fields (``nan <= 0`` is False, so a plain
        comparison would let ``lr=nan`` through); booleans are not numbers here."""
        checks: list[tuple[str, str, Callable[[Any], bool]]] = [
            ("lr", "a finite number > 0", lambda v: _finite(v) and v > 0),
            ("pretrained_lr", "a finite number > 0", lambda v: _finite(v) and v > 0),
            ("warmup_steps", "an integer >= 0", lambda v: _integer(v) and v >= 0),
            ("schedule", f"one of {', '.join(SCHEDULES)}", lambda v: v in SCHEDULES),
            ("reset_optimizer", "one of never, epoch", lambda v: v in ("never", "epoch")),
            ("acc_tie", "one of earlier, later", lambda v: v in ("earlier", "later")),
            (
                "unimodal_label",
                "one of multimodal, own",
                lambda v: v in ("multimodal", "own"),
            ),
            ("weight_decay", "a finite number >= 0", lambda v: _finite(v) and v >= 0),
            (
                "grad_clip",
                "None or a finite number > 0",
                lambda v: v is None or _finite(v) and v > 0,
            ),
            ("batch_size", "an integer >= 1", lambda v: _integer(v) and v >= 1),
            ("eval_batch_size", "an integer >= 1", lambda v: _integer(v) and v >= 1),
            ("max_epochs", "an integer >= 1", lambda v: _integer(v) and v >= 1),
            ("patience", "an integer >= 1", lambda v: _integer(v) and v >= 1),
            ("num_workers", "an integer >= 0", lambda v: _integer(v) and v >= 0),
            ("prefetch_factor", "an integer >= 1", lambda v: _integer(v) and v >= 1),
            ("pin_memory", "one of auto, true, false", lambda v: v in ("auto", "true", "false")),
            ("compile", "true or false", lambda v: isinstance(v, bool)),
            ("feature_cache", "one of auto, off", lambda v: v in ("auto", "off")),
            ("cache_dir", "None or a folder", lambda v: v is None or isinstance(v, str) and v),
        ]
        problems = [
            f"{name} must be {what}, got {getattr(self, name)!r}"
            for name, what, ok in checks
            if not ok(getattr(self, name))
        ]
        if problems:
            raise ValueError("; ".join(problems))


def _finite(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _integer(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


class TrainingDiverged(RuntimeError):
    """A seed's loss or predictions became non-finite (NaN or infinity): training stopped.

    Raised before anything of the diverged epoch is written, so the ``best_loss``/``best_acc``
    checkpoints and the resumable ``state`` keep what the earlier epochs wrote (resuming with
    the same settings repeats the divergence). ``loss`` names what was not finite:
    ``"train_loss"`` (the epoch's mean training loss), ``"valid_loss"``, ``"valid_preds"`` or
    ``"test_preds"`` (the predictions of ``head``; for ``test_preds`` of the checkpoint
    ``selection``, and ``epoch`` is that checkpoint's epoch). ``checkpoints`` and
    ``checkpoint_epochs`` map each checkpoint this run wrote to its folder and epoch;
    ``state_epoch`` is the epoch the resumable state at ``state`` holds (0: none written).
    """

    def __init__(
        self,
        seed: int,
        epoch: int,
        loss: str,
        value: float,
        *,
        head: str | None = None,
        selection: str | None = None,
        checkpoints: Mapping[str, Path] | None = None,
        checkpoint_epochs: Mapping[str, int] | None = None,
        state: Path | None = None,
        state_epoch: int = 0,
    ) -> None:
        self.seed, self.epoch, self.loss, self.value = seed, epoch, loss, value
        self.head, self.selection = head, selection
        self.checkpoints = dict(checkpoints or {})
        self.checkpoint_epochs = dict(checkpoint_epochs or {})
        self.state, self.state_epoch = state, state_epoch
        super().__init__(self._message())

    def __reduce__(self) -> tuple[Any, ...]:
        # The keyword arguments do not survive RuntimeError's default pickling (by ``args``).
        kwargs = {
            k: getattr(self, k)
            for k in ("head", "selection", "checkpoints", "checkpoint_epochs", "state")
        }
        kwargs["state_epoch"] = self.state_epoch
        return (partial(type(self), **kwargs), (self.seed, self.epoch, self.loss, self.value))

    def _message(self) -> str:
        if self.loss == "test_preds":
            what = (
                f"seed {self.seed}: head {self.head!r} of the {self.selection} checkpoint "
                f"(epoch {self.epoch}) predicts {self.value} on the test split, so no test "
                "metrics were computed"
            )
            kept, hint = "The checkpoints were kept: ", ""
        else:
            problem = {
                "train_loss": f"the epoch's mean training loss is {self.value}",
                "valid_loss": f"the validation loss is {self.value}",
                "valid_preds": f"head {self.head!r} predicts {self.value} on the validation split",
            }[self.loss]
            what = f"seed {self.seed} diverged at epoch {self.epoch}: {problem}"
            kept = "Training stopped; the checkpoints from earlier epochs were kept: "
            hint = " A lower lr or weight_decay, or a grad_clip, may help."
        if self.checkpoints:
            kept += ", ".join(
                f"{sel} (epoch {self.checkpoint_epochs.get(sel, '?')}) at {path}"
                for sel, path in self.checkpoints.items()
            )
        else:
            kept = "Training stopped; no epoch finished before it, so no checkpoint was written"
        if self.state is not None and self.state_epoch > 0:
            kept += f"; the resumable state at {self.state} holds epoch {self.state_epoch}"
        return f"{what}. {kept}.{hint}"


def resolve_device(name: str) -> torch.device:
    """``train.device`` as a device. Under torchrun, ``auto`` and ``cuda`` mean this process's
    own GPU (``cuda:LOCAL_RANK``)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dist = distributed.current()
    if name == "cuda" and dist.enabled:
        name = f"cuda:{dist.local_rank}"
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"--device {name}: CUDA is not available on this machine")
    return device


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        return {k: _to_device(v, device) for k, v in batch.items()}
    return batch


class _ModalityView(Sequence):
    """The raw items of one modality of a split, loaded lazily (for ``encoder.fit``).

    A full ``Sequence`` as ``FeatureEncoder.fit`` promises: negative indices and slices (a
    slice loads its items into a list) work as on a list."""

    def __init__(self, split: Any, modality: str) -> None:
        self.split, self.modality = split, modality

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        if i < -n or i >= n:
            raise IndexError(i)
        return self.split[i % n][self.modality]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _loader(
    split: Any,
    collate: Callable,
    batch_size: int,
    cfg: TrainConfig,
    *,
    train: bool,
    seed: int,
    epoch: int,
) -> DataLoader:
    """The DataLoader of one pass over ``split`` (settings: :func:`_loader_kwargs`)."""
    kwargs = _loader_kwargs(collate, cfg)
    if not train:
        return DataLoader(split, batch_size=batch_size, shuffle=False, **kwargs)
    batches = _train_batch_sampler(split, batch_size, cfg, seed, epoch)
    return DataLoader(split, batch_sampler=batches, **kwargs)


def _train_batch_sampler(
    split: Any, batch_size: int, cfg: TrainConfig, seed: int, epoch: int
) -> Any:
    """The training batches of one epoch (item indices), from the seed and the epoch alone:
    length buckets, or uniform shuffling with ``bucket_by_length`` off."""
    from torch.utils.data import BatchSampler

    from mmml_core.data import LengthBucketSampler

    if cfg.bucket_by_length:
        sampler = LengthBucketSampler(split.lengths, batch_size, seed=seed, shuffle=True)
        sampler.set_epoch(epoch)
        return sampler
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return BatchSampler(RandomSampler(split, generator=g), batch_size, drop_last=False)


def _loader_kwargs(collate: Callable, cfg: TrainConfig) -> dict[str, Any]:
    """The DataLoader settings every loader of a run shares: the collate, the workers, and
    pinned memory and prefetching as ``cfg`` says."""
    pin = cfg.pin_memory == "true" or (  # auto: where a worker's batch can be pinned by a
        cfg.pin_memory == "auto"  # thread of this process while the step runs
        and cfg.num_workers > 0
        and resolve_device(cfg.device).type == "cuda"
    )
    kwargs: dict[str, Any] = {
        "collate_fn": collate,
        "num_workers": cfg.num_workers,
        "pin_memory": pin,
    }
    if cfg.num_workers > 0:
        kwargs.update(persistent_workers=False, prefetch_factor=cfg.prefetch_factor)
    return kwargs


def _global_batches(split: Any, cfg: TrainConfig, seed: int, epoch: int) -> list[list[int]]:
    """The epoch's training batches as item indices: exactly those a one-process run's
    training loader yields (the same sampler, seed and epoch)."""
    return [list(b) for b in _train_batch_sampler(split, cfg.batch_size, cfg, seed, epoch)]


def _shard_batches(
    batches: Sequence[Sequence[int]], dist: distributed.Dist
) -> tuple[list[list[int]], list[int], list[float]]:
    """This rank's share of each global batch (items ``rank, rank + world, ...``), how many
    real items it holds, and the factor its mean loss is scaled by so that DDP's average of
    the ranks' gradients is the gradient of the global batch's mean loss: ``world * n_rank /
    n_batch``. An empty share runs the batch's first item with factor 0."""
    shares, counts, scales = [], [], []
    for batch in batches:
        share = list(batch[dist.rank :: dist.world])
        counts.append(len(share))
        scales.append(dist.world * len(share) / len(batch))
        shares.append(share or [batch[0]])
    return shares, counts, scales


def _shard_loader(
    split: Any, collate: Callable, batches: Sequence[Sequence[int]], cfg: TrainConfig
) -> DataLoader:
    return DataLoader(
        split, batch_sampler=[list(b) for b in batches], **_loader_kwargs(collate, cfg)
    )


def loss_targets(
    targets: Mapping[str, torch.Tensor], single_modality: bool, own: bool = False
) -> Mapping[str, torch.Tensor]:
    """What each head learns. A single-modality model (no fusion) predicts the multimodal
    label with its one head (the paper's "text-only" rows), or with ``own``
    (``train.unimodal_label=own``) its modality's label; in a fused model each subnet head
    learns its own modality's label where the dataset has one (docs/architecture.md). A
    modality label the dataset does not have is the multimodal label (the reader fills it)."""
    if not single_modality or own:
        return targets
    return {h: targets["M"] for h in targets}


@torch.no_grad()
def evaluate(
    model: MultimodalModel,
    loader: DataLoader,
    loss_fn: torch.nn.Module,
    device: torch.device,
    amp: bool = True,
    own_label: bool = False,
) -> dict[str, Any]:
    """Predictions per head and targets over a loader, plus the mean loss (``own_label``:
    see :func:`loss_targets`)."""
    single_modality = model.fusion is None
    model.eval()
    preds: dict[str, list[torch.Tensor]] = {}
    targets: dict[str, list[torch.Tensor]] = {}
    ids: list[str] = []
    loss_sum = torch.zeros((), device=device)
    count = 0
    for batch in loader:
        batch_t = _to_device(batch, device)
        with torch.autocast(
            device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"
        ):
            out = model(batch_t["inputs"], batch_t.get("context"))
        total, _ = loss_fn(out, loss_targets(batch_t["targets"], single_modality, own_label))
        n = len(batch["ids"])
        loss_sum += total.float() * n
        count += n
        ids.extend(batch["ids"])
        for h, p in out.items():
            preds.setdefault(h, []).append(p.float().cpu())
        for h, t in batch["targets"].items():
            targets.setdefault(h, []).append(t.float().cpu())
    return {
        "loss": float(loss_sum) / max(count, 1),
        "preds": {h: torch.cat(v).numpy() for h, v in preds.items()},
        "targets": {h: torch.cat(v).numpy() for h, v in targets.items()},
        "ids": ids,
    }


def _eval_loader(run: _Seed, split: Any) -> tuple[DataLoader, list[int] | None]:
    """The evaluation loader of ``split``; under torchrun over this rank's share of the items
    (``rank, rank + world, ...``), with the indices of that share."""
    cfg, dist = run.cfg, distributed.current()
    if not dist.enabled:
        loader = _loader(
            split, run.collate, cfg.eval_batch_size, cfg, train=False, seed=run.seed, epoch=0
        )
        return loader, None
    from torch.utils.data import Subset

    share = list(range(dist.rank, len(split), dist.world))
    kwargs = _loader_kwargs(run.collate, cfg)
    return DataLoader(Subset(split, share), batch_size=cfg.eval_batch_size, **kwargs), share


def _evaluate(run: _Seed, loader: tuple[DataLoader, list[int] | None]) -> dict[str, Any]:
    """:func:`evaluate` over an :func:`_eval_loader`; under torchrun the ranks' results are
    gathered into the whole split's, in item order, on every rank."""
    data, share = loader
    ev = evaluate(run.model, data, run.loss_fn, run.device, run.cfg.amp, run.own_label)
    if share is None:
        return ev
    parts = [p for p in distributed.current().gather((share, ev)) if p[0]]
    order = np.argsort(np.concatenate([np.asarray(p[0]) for p in parts]), kind="stable")
    count = sum(len(p[0]) for p in parts)

    def joined(key: str) -> dict[str, np.ndarray]:
        return {h: np.concatenate([p[1][key][h] for p in parts])[order] for h in parts[0][1][key]}

    ids = [i for p in parts for i in p[1]["ids"]]
    return {
        "loss": sum(p[1]["loss"] * len(p[0]) for p in parts) / max(count, 1),
        "preds": joined("preds"),
        "targets": joined("targets"),
        "ids": [ids[j] for j in order],
    }


def _score(ev: Mapping[str, Any], scheme: str, has_modality_labels: bool) -> dict[str, Any]:
    """Metrics per head against the multimodal label ``M`` (what every table compares);
    with per-modality labels also each subnet head against its own label."""
    label = ev["targets"]["M"]
    out: dict[str, Any] = {h: regression_metrics(p, label, scheme) for h, p in ev["preds"].items()}
    if has_modality_labels:
        for h, p in ev["preds"].items():
            if h != "M" and h in ev["targets"]:
                out[f"{h}@label_{h}"] = regression_metrics(p, ev["targets"][h], scheme)
    return out


def _primary_head(spec: ModelSpec) -> str:
    return "M" if "M" in spec.heads else spec.heads[0]


# -- resumable state ------------------------------------------------------------------------


def _save_state(
    path: Path,
    model: torch.nn.Module,
    optim: torch.optim.Optimizer,
    meta: dict[str, Any],
    rank_rngs: Sequence[torch.Tensor] = (),
) -> None:
    """Write the resumable state atomically. ``rank_rngs``: under torchrun, every rank's
    torch generator state in rank order (rank 0's is the one a single process saves)."""
    with atomic_directory(path) as tmp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
            str(tmp / "model.safetensors"),
        )
        osd = optim.state_dict()
        tensors, scalars = {}, {}
        for idx, st in osd["state"].items():
            for key, val in st.items():
                if isinstance(val, torch.Tensor):
                    tensors[f"{idx}/{key}"] = val.detach().cpu().contiguous()
                else:
                    scalars[f"{idx}/{key}"] = val
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        rngs = {"torch": torch.get_rng_state()}
        rngs.update({f"torch_rank{r}": g for r, g in enumerate(rank_rngs) if r > 0})
        save_file(rngs, str(tmp / "rng.safetensors"))
        np_state = np.random.get_state()
        # the seconds trained go beside the state, not in it: state.json holds only what the
        # computation depends on, the same bytes for the same epochs however fast they ran
        meta = dict(meta)
        timing = meta.pop("timing", None)
        if timing is not None:
            (tmp / "timing.json").write_text(json.dumps(timing))
        meta = {
            **meta,
            "optimizer_scalars": scalars,
            "optimizer_param_groups": osd["param_groups"],
            "python_rng": _jsonable(random.getstate()),
            "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        }
        (tmp / "state.json").write_text(json.dumps(meta))


def _jsonable(x: Any) -> Any:
    return [_jsonable(v) for v in x] if isinstance(x, (tuple, list)) else x


def _tupled(x: Any) -> Any:
    return tuple(_tupled(v) for v in x) if isinstance(x, list) else x


def _load_state(path: Path, model: torch.nn.Module, optim: torch.optim.Optimizer) -> dict[str, Any]:
    meta = json.loads((path / "state.json").read_text())
    model.load_state_dict(load_file(str(path / "model.safetensors")))
    tensors = load_file(str(path / "optimizer.safetensors"))
    state: dict[int, dict[str, Any]] = {}
    for key, val in tensors.items():
        idx, name = key.split("/", 1)
        state.setdefault(int(idx), {})[name] = val
    for key, val in meta.pop("optimizer_scalars").items():
        idx, name = key.split("/", 1)
        state.setdefault(int(idx), {})[name] = val
    optim.load_state_dict({"state": state, "param_groups": meta.pop("optimizer_param_groups")})
    rngs = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rngs.get(f"torch_rank{distributed.current().rank}", rngs["torch"]))
    random.setstate(_tupled(meta.pop("python_rng")))
    np_state = meta.pop("numpy_rng")
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    if (path / "timing.json").is_file():  # states saved before mmml timed seeds have none
        meta["timing"] = json.loads((path / "timing.json").read_text())
    return meta


# -- one seed ---------------------------------------------------------------------------------


@dataclass
class _Seed:
    """Everything the steps of one seed's training share (built by :func:`_setup`)."""

    spec: ModelSpec
    cfg: TrainConfig
    seed: int
    out: Path
    device: torch.device
    model: MultimodalModel
    loss_fn: torch.nn.Module
    params: list[torch.nn.Parameter]
    optim: torch.optim.Optimizer
    collate: Callable
    train_split: Any
    valid_split: Any
    test_split: Any
    scheme: str
    extra: dict[str, Any]  # what the checkpoints' config.json holds besides the model
    make_optim: Callable[[], torch.optim.Optimizer]  # a fresh AdamW over the model's groups
    step: int = 0  # optimizer steps taken (the schedule's clock)
    steps_per_epoch: int = 1
    ddp: torch.nn.Module | None = None  # under torchrun: the DDP wrapper training runs through
    train_forward: Callable | None = None  # with train.compile: the compiled training forward

    @property
    def own_label(self) -> bool:
        return self.cfg.unimodal_label == "own"

    @property
    def state_dir(self) -> Path:
        return self.out / "state"

    @property
    def acc_key(self) -> str:
        return ACC2_KEY[self.scheme]

    @property
    def primary(self) -> str:
        return _primary_head(self.spec)


def _target_heads(spec: ModelSpec) -> tuple[str, ...]:
    """The heads whose targets a batch carries: the model's heads and always the multimodal
    label ``M``, which a single-modality model learns and every head is scored against."""
    return ("M", *(h for h in spec.heads if h != "M"))


def default_groups(spec: ModelSpec, cfg: TrainConfig) -> dict[str, OptimGroup]:
    """The parameter groups' settings from ``cfg`` alone (no ``optim.GROUP`` keys): the
    fine-tuning rate for encoders that load pretrained weights, the from-scratch rate for
    the rest (:mod:`mmml_core.optim`)."""
    pretrained = {
        m: registry.load("encoder", s.name).loads_pretrained_weights(s.config)
        for m, s in spec.encoders.items()
    }
    return resolve_groups(pretrained, spec.fusion is not None, cfg)


def _set_lr(run: _Seed) -> None:
    """Scale every group's rate by the schedule's factor for the coming optimizer step."""
    cfg = run.cfg
    if cfg.schedule == "constant" and cfg.warmup_steps == 0:
        return
    total = cfg.max_epochs * run.steps_per_epoch
    factor = lr_factor(cfg.schedule, run.step, cfg.warmup_steps, total)
    for group in run.optim.param_groups:
        group["lr"] = group["base_lr"] * factor


def _setup(
    spec: ModelSpec,
    loss_spec: ComponentSpec,
    dataset: Any,
    cfg: TrainConfig,
    seed: int,
    out: Path,
    checkpoint_extra: dict[str, Any] | None,
    groups: Mapping[str, OptimGroup] | None = None,
) -> _Seed:
    """Seed the RNGs, build model and loss, fit the encoders on the training split, build the
    optimizer. The order of these steps fixes what the seeded random streams produce."""
    from mmml_core.data import make_collate

    device = resolve_device(cfg.device)
    _seed_everything(seed)
    model = build_model(spec)
    loss_fn = registry.create("loss", loss_spec.name, **loss_spec.config)
    train_split, valid_split, test_split = (dataset.split(s) for s in ("train", "valid", "test"))
    for m, enc in model.encoders.items():
        if type(enc).fit is not FeatureEncoder.fit:
            enc.fit(_ModalityView(train_split, m))
    model.to(device)
    # frozen encoders' outputs from the feature cache (train.feature_cache): the splits'
    # items then carry those outputs instead of raw inputs (RNG streams are left untouched)
    from mmml_core.cache import cached_splits

    splits = {"train": train_split, "valid": valid_split, "test": test_split}
    splits = cached_splits(model, dataset, splits, cfg, device)
    train_split, valid_split, test_split = splits["train"], splits["valid"], splits["test"]
    params = [p for p in model.parameters() if p.requires_grad]
    if groups is None:
        groups = default_groups(spec, cfg)
    param_groups = model_param_groups(model, groups)

    def make_optim() -> torch.optim.Optimizer:
        optim = torch.optim.AdamW(
            [dict(g) for g in param_groups],
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            fused=device.type == "cuda",
        )
        for group in optim.param_groups:  # the schedule scales from these
            group["base_lr"] = group["lr"]
        return optim

    optim = make_optim()
    return _Seed(
        spec=spec,
        cfg=cfg,
        seed=seed,
        out=out,
        device=device,
        model=model,
        loss_fn=loss_fn,
        params=params,
        optim=optim,
        collate=make_collate(dict(model.encoders), _target_heads(spec), spec.empty_context),
        train_split=train_split,
        valid_split=valid_split,
        test_split=test_split,
        scheme=dataset.scheme,
        extra={**(checkpoint_extra or {}), "scheme": dataset.scheme, "language": dataset.language},
        make_optim=make_optim,
    )


def _start(run: _Seed, resume: bool) -> dict[str, Any]:
    """The bookkeeping to continue from: with ``resume`` and a saved state, that state (which
    also restores weights, optimizer and RNGs); else a fresh start, removing any old state."""
    meta: dict[str, Any] = {
        "epoch": 0,  # the last completed epoch
        "history": [],
        "best_loss": math.inf,
        "best_acc": -1.0,
        "best_loss_epoch": 0,  # 0: no checkpoint written yet
        "best_acc_epoch": 0,
        "bad_epochs": 0,
        "stopped": None,
    }
    dist = distributed.current()
    if dist.is_main:  # under torchrun rank 0 alone writes (and repairs) the state
        recover_directory(run.state_dir)
    dist.barrier()
    if resume and (run.state_dir / "state.json").is_file():
        meta = _load_state(run.state_dir, run.model, run.optim)
    dist.barrier()  # every rank has read the state before rank 0 may remove it
    if dist.is_main and not resume and run.state_dir.exists():
        shutil.rmtree(run.state_dir)
    return meta


class _StepBar:
    """The progress bar within an epoch (stderr, cleared when the epoch ends): steps done of
    the total, the running mean training loss and samples/s. The loss is read back from the
    device at most once per ``interval`` seconds and on the last step (one host sync each),
    and never when the bar is off."""

    def __init__(self, total: int, desc: str, enabled: bool, interval: float = 1.0) -> None:
        from tqdm.auto import tqdm

        self.enabled, self.interval = enabled, interval
        self.bar = tqdm(total=total, desc=desc, unit="step", leave=False, disable=not enabled)
        self.start = self.shown = time.perf_counter()

    def step(self, n_seen: int, loss_sum: torch.Tensor) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        last = self.bar.n + 1 >= (self.bar.total or 0)
        if now - self.shown >= self.interval or last:
            self.shown = now
            rate = n_seen / max(now - self.start, 1e-9)
            mean = float(loss_sum) / max(n_seen, 1)
            self.bar.set_postfix_str(f"loss {mean:.3f}, {rate:.1f} samples/s", refresh=False)
        self.bar.update(1)
        if last:  # tqdm skips a redraw within mininterval of the previous one: the final
            self.bar.refresh()  # count and loss must show before close() clears the bar

    def close(self) -> None:
        self.bar.close()


def _train_epoch(run: _Seed, epoch: int, progress: bool = False) -> float:
    """One pass over the training split; returns the epoch's mean training loss. The loss is
    summed on the device and read back once, here (no host sync per step; with ``progress``,
    the step bar reads it about once a second)."""
    cfg, device = run.cfg, run.device
    use_amp = cfg.amp and device.type == "cuda"
    single = run.spec.fusion is None
    run.model.train()
    loss_sum = torch.zeros((), device=device)
    n_seen = 0
    dist = distributed.current()
    if dist.enabled:  # this rank's share of the one-process run's batches
        shares, counts, scales = _shard_batches(
            _global_batches(run.train_split, cfg, run.seed, epoch), dist
        )
        loader = _shard_loader(run.train_split, run.collate, shares, cfg)
    else:
        loader = _loader(
            run.train_split,
            run.collate,
            cfg.batch_size,
            cfg,
            train=True,
            seed=run.seed,
            epoch=epoch,
        )
        counts, scales = [], []
    forward = next(f for f in (run.train_forward, run.ddp, run.model) if f is not None)
    bar = _StepBar(len(loader), f"epoch {epoch}", progress and dist.is_main)
    run.steps_per_epoch = len(loader)  # the same every epoch: the schedule counts from it
    run.step = (epoch - 1) * run.steps_per_epoch
    if cfg.reset_optimizer == "epoch":  # the authors' code: a new AdamW every epoch
        run.optim = run.make_optim()
    for i, batch in enumerate(loader):
        batch_t = _to_device(batch, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            preds = forward(batch_t["inputs"], batch_t.get("context"))
        total, _ = run.loss_fn(preds, loss_targets(batch_t["targets"], single, run.own_label))
        run.optim.zero_grad(set_to_none=True)
        (total * scales[i] if dist.enabled else total).backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(run.params, cfg.grad_clip)
        _set_lr(run)
        run.optim.step()
        run.step += 1
        n = counts[i] if dist.enabled else len(batch["ids"])
        loss_sum += total.detach() * n
        n_seen += n
        bar.step(n_seen, loss_sum)
    bar.close()
    if dist.enabled:  # the mean over every rank's items
        loss_sum = dist.all_sum(loss_sum)
        n_seen = int(dist.all_sum(torch.tensor(n_seen, device=device)))
    return float(loss_sum) / max(n_seen, 1)


def _first_nonfinite(preds: Mapping[str, np.ndarray]) -> tuple[str, float] | None:
    """The first head with a NaN or infinite prediction, with that value; None if all finite."""
    for head, p in preds.items():
        bad = ~np.isfinite(p)
        if bad.any():
            return head, float(p[bad][0])
    return None


def _diverged(
    run: _Seed, meta: Mapping[str, Any], epoch: int, loss: str, value: float, **where: Any
) -> TrainingDiverged:
    """The exception for a non-finite ``loss``, listing what the run has written so far."""
    written = {
        sel: meta[f"{sel}_epoch"] for sel in ("best_loss", "best_acc") if meta[f"{sel}_epoch"] > 0
    }
    return TrainingDiverged(
        run.seed,
        epoch,
        loss,
        value,
        checkpoints={sel: run.out / sel for sel in written},
        checkpoint_epochs=written,
        state=run.state_dir if meta["epoch"] > 0 else None,
        state_epoch=meta["epoch"],
        **where,
    )


def _validate(
    run: _Seed,
    loader: tuple[DataLoader, list[int] | None],
    meta: Mapping[str, Any],
    epoch: int,
    train_loss: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The epoch's history row (training loss, validation loss and validation Acc2 of the
    primary head) and the evaluation it came from. A non-finite validation loss or prediction
    raises :class:`TrainingDiverged` (no metrics are computed on NaN)."""
    ev = _evaluate(run, loader)
    if not math.isfinite(ev["loss"]):
        raise _diverged(run, meta, epoch, "valid_loss", ev["loss"])
    bad = _first_nonfinite(ev["preds"])
    if bad is not None:
        raise _diverged(run, meta, epoch, "valid_preds", bad[1], head=bad[0])
    val_metrics = regression_metrics(ev["preds"][run.primary], ev["targets"]["M"], run.scheme)
    row = {
        "epoch": epoch,
        "train_loss": train_loss,
        "valid_loss": ev["loss"],
        "valid_acc2": val_metrics[run.acc_key],
    }
    return row, ev


def _select(run: _Seed, meta: dict[str, Any], row: Mapping[str, Any]) -> None:
    """Close the epoch of ``row`` in ``meta``: save the model as ``best_loss`` on a lower
    validation loss (else count a bad epoch) and as ``best_acc`` on a higher validation Acc2,
    and set ``stopped`` once patience or the epoch cap is reached."""
    epoch, cfg = row["epoch"], run.cfg
    if row["valid_loss"] < meta["best_loss"]:
        meta.update(best_loss=row["valid_loss"], best_loss_epoch=epoch, bad_epochs=0)
        if distributed.current().is_main:
            save_model(run.model, run.out / "best_loss", run.extra)
    else:
        meta["bad_epochs"] += 1
    acc, best = row["valid_acc2"], meta["best_acc"]
    if acc > best or (cfg.acc_tie == "later" and acc == best):
        meta.update(best_acc=row["valid_acc2"], best_acc_epoch=epoch)
        if distributed.current().is_main:
            save_model(run.model, run.out / "best_acc", run.extra)
    meta["epoch"] = epoch
    if meta["bad_epochs"] >= cfg.patience:
        meta["stopped"] = "early_stopping"
    elif epoch >= cfg.max_epochs:
        meta["stopped"] = "epoch_cap"


def _test_selections(
    run: _Seed, meta: Mapping[str, Any], loss_spec: ComponentSpec, has_modality_labels: bool
) -> dict[str, Any]:
    """Evaluate both checkpoints on the test split; the seed's results. A non-finite test
    prediction raises :class:`TrainingDiverged` (``loss="test_preds"``)."""
    cfg = run.cfg
    distributed.current().barrier()  # rank 0 wrote the checkpoints every rank reads here
    test_loader = _eval_loader(run, run.test_split)
    results: dict[str, Any] = {
        "seed": run.seed,
        "profile": run.extra.get("profile", "paper"),
        "scheme": run.scheme,
        "model": run.spec.to_dict(),
        "loss": {"name": loss_spec.name, "config": loss_spec.config},
        "train": asdict(cfg),
        "param_groups": {  # the resolved rates (before the schedule's factor)
            g["name"]: {"lr": g["base_lr"], "weight_decay": g["weight_decay"]}
            for g in run.optim.param_groups
        },
        "epochs": meta["epoch"],
        "stopped": meta["stopped"],
        "history": meta["history"],
        "selection": {},
    }
    for selection in ("best_loss", "best_acc"):
        epoch = meta[f"{selection}_epoch"]
        run.model.load_state_dict(load_file(str(run.out / selection / "model.safetensors")))
        ev = _evaluate(run, test_loader)
        bad = _first_nonfinite(ev["preds"])
        if bad is not None:
            raise _diverged(
                run, meta, epoch, "test_preds", bad[1], head=bad[0], selection=selection
            )
        results["selection"][selection] = {
            "epoch": epoch,
            "valid_value": meta[selection],
            "test_loss": ev["loss"],
            "test": _score(ev, run.scheme, has_modality_labels),
        }
    return results


# -- per-epoch reporting: the log line and the mmml_epoch_end hook ---------------------------


def current_lrs(optim: torch.optim.Optimizer) -> dict[str, float]:
    """The learning rate of each of ``optim``'s parameter groups now, by the group's
    ``name`` (its index when it has none), in group order."""
    return {str(g.get("name", i)): float(g["lr"]) for i, g in enumerate(optim.param_groups)}


def format_lrs(lrs: Mapping[str, float]) -> str:
    """``lr 1.0e-03`` when every group has that rate, else ``lr text=1.0e-05 audio=...``."""
    if len(set(lrs.values())) <= 1:
        return f"lr {next(iter(lrs.values()), math.nan):.1e}"
    return "lr " + " ".join(f"{name}={lr:.1e}" for name, lr in lrs.items())


def _epoch_line(
    seed: int,
    max_epochs: int,
    row: Mapping[str, Any],
    lrs: Mapping[str, float],
    seconds: float,
    rate: float,
) -> str:
    """The epoch's log line; ``seconds`` is the whole epoch, ``rate`` the training samples/s."""
    return (
        f"seed {seed} epoch {row['epoch']}/{max_epochs}: train {row['train_loss']:.3f} "
        f"valid {row['valid_loss']:.3f} acc2 {row['valid_acc2']:.3f} {format_lrs(lrs)} "
        f"({seconds:.1f} s, {rate:.0f} samples/s)"
    )


def _epoch_metrics(
    row: Mapping[str, Any],
    scores: Mapping[str, Mapping[str, float]],
    lrs: Mapping[str, float],
    seconds: float,
    rate: float,
) -> dict[str, float]:
    """What ``mmml_epoch_end`` receives (its hookspec lists the keys)."""
    metrics = {"train/loss": float(row["train_loss"]), "valid/loss": float(row["valid_loss"])}
    for head, values in scores.items():
        metrics.update({f"valid/{head}/{k}": float(v) for k, v in values.items()})
    metrics.update({f"lr/{name}": lr for name, lr in lrs.items()})
    metrics.update(samples_per_s=float(rate), epoch_s=float(seconds))
    return metrics


def train_seed(
    spec: ModelSpec,
    loss_spec: ComponentSpec,
    dataset: Any,
    cfg: TrainConfig,
    seed: int,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    checkpoint_extra: dict[str, Any] | None = None,
    groups: Mapping[str, OptimGroup] | None = None,
) -> dict[str, Any]:
    """Train one seed; writes ``out_dir/{state,best_loss,best_acc,results.json,curve.png}``
    and returns the results.

    Each epoch logs one line (``seed 1 epoch 3/20: train ... valid ... acc2 ... lr ...``) to
    the ``mmml_core.engine`` logger and calls the ``mmml_epoch_end`` hook; the finished seed
    calls ``mmml_seed_end`` (see :mod:`mmml_core.hooks`). With ``progress``, tqdm bars over
    the epochs and within each epoch.

    Raises :class:`TrainingDiverged` when an epoch's training or validation loss (or a
    prediction) is not finite; what earlier epochs wrote stays as it was."""
    from tqdm.auto import tqdm

    from mmml_core.hooks import get_plugin_manager

    hook = get_plugin_manager().hook
    tracked = bool(hook.mmml_epoch_end.get_hookimpls())  # per-head metrics only if wanted
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run = _setup(spec, loss_spec, dataset, cfg, seed, out, checkpoint_extra, groups)
    meta = _start(run, resume)
    dist = distributed.current()
    if dist.enabled:  # gradients averaged over the ranks in backward
        from torch.nn.parallel import DistributedDataParallel

        run.ddp = DistributedDataParallel(
            run.model,
            device_ids=[run.device.index] if run.device.type == "cuda" else None,
            find_unused_parameters=True,  # LayerDrop, context gates of a batch without context
        )
    if cfg.compile:  # the parameters stay the model's: checkpoints and state are unchanged
        run.train_forward = torch.compile(run.model if run.ddp is None else run.ddp)
    progress = progress and dist.is_main
    if run.device.type == "cuda":  # the seed's own peak (throughput)
        torch.cuda.reset_peak_memory_stats(run.device)
    valid_loader = _eval_loader(run, run.valid_split)
    bar = tqdm(
        total=cfg.max_epochs,
        initial=meta["epoch"],
        desc=f"seed {seed}",
        unit="epoch",
        disable=not progress,
        leave=False,
    )
    try:
        while meta["stopped"] is None:
            epoch = meta["epoch"] + 1
            started = time.perf_counter()
            train_loss = _train_epoch(run, epoch, progress)
            train_s = time.perf_counter() - started
            rate = len(run.train_split) / max(train_s, 1e-9)
            if not math.isfinite(train_loss):
                raise _diverged(run, meta, epoch, "train_loss", train_loss)
            row, ev = _validate(run, valid_loader, meta, epoch, train_loss)
            row["lr"] = current_lrs(run.optim)  # each group's rate at the epoch's last step
            meta["history"].append(row)
            timing = meta.setdefault("timing", {"train_seconds": 0.0, "train_samples": 0})
            timing["train_seconds"] += train_s  # outside the history, which resume reproduces
            timing["train_samples"] += len(run.train_split)
            _select(run, meta, row)
            rank_rngs = dist.gather(torch.get_rng_state()) if dist.enabled else ()
            if dist.is_main:
                _save_state(run.state_dir, run.model, run.optim, meta, rank_rngs)
            seconds, lrs = time.perf_counter() - started, current_lrs(run.optim)
            log.info(_epoch_line(seed, cfg.max_epochs, row, lrs, seconds, rate))
            if tracked and dist.is_main:
                scores = _score(ev, run.scheme, dataset.has_modality_labels)
                metrics = _epoch_metrics(row, scores, lrs, seconds, rate)
                hook.mmml_epoch_end(seed_dir=str(out), seed=seed, epoch=epoch, metrics=metrics)
            bar.update(1)
            bar.set_postfix(
                train=f"{row['train_loss']:.3f}",
                valid=f"{row['valid_loss']:.3f}",
                acc2=f"{row['valid_acc2']:.3f}",
            )
    finally:
        bar.close()

    results = _test_selections(run, meta, loss_spec, dataset.has_modality_labels)
    results["throughput"] = throughput(meta, run.device)
    if dist.enabled:
        results["processes"] = dist.world
    log.info(f"seed {seed}: {describe_throughput(results['throughput'])}")
    if not dist.is_main:
        return results
    atomic_write_text(out / "results.json", json.dumps(json_clean(results), indent=2))
    plot_curves(meta["history"], out / "curve.png", title=f"seed {seed}")
    hook.mmml_seed_end(seed_dir=str(out), seed=seed, results=json_clean(results))
    return results


def throughput(meta: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """A seed's own speed and memory, its results' ``throughput``: training samples per second
    over every epoch it trained (the training passes only, without validation; a resumed seed
    adds the epochs each attempt finished), and the peak memory: on CUDA the most memory
    PyTorch allocated on the device since the seed (or its last resumed attempt) started, on
    CPU the peak resident size of the whole process (``peak_memory`` says which)."""
    t = meta.get("timing") or {}
    seconds, samples = float(t.get("train_seconds", 0.0)), int(t.get("train_samples", 0))
    out: dict[str, Any] = {
        "train_samples_per_s": samples / seconds if seconds > 0 else None,
        "train_seconds": seconds,
        "train_samples": samples,
        "peak_memory_bytes": None,
        "peak_memory": None,
    }
    if device.type == "cuda":
        out["peak_memory_bytes"] = int(torch.cuda.max_memory_allocated(device))
        out["peak_memory"] = "cuda_max_allocated"
        return out
    try:
        import resource
    except ImportError:  # not on this platform (Windows): no peak to report
        return out
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    out["peak_memory_bytes"] = int(kib if sys.platform == "darwin" else kib * 1024)
    out["peak_memory"] = "process_peak_rss"
    return out


def describe_throughput(t: Mapping[str, Any]) -> str:
    """``41 samples/s training, peak memory 1.23 GiB (process peak RSS)``."""
    rate = t.get("train_samples_per_s")
    text = "no epoch trained" if rate is None else f"{rate:.0f} samples/s training"
    if t.get("peak_memory_bytes") is not None:
        where = {"cuda_max_allocated": "CUDA, allocated", "process_peak_rss": "process peak RSS"}
        text += f", peak memory {t['peak_memory_bytes'] / 2**30:.2f} GiB "
        text += f"({where.get(t.get('peak_memory'), t.get('peak_memory'))})"
    return text


def json_clean(x: Any) -> Any:
    """Plain JSON data: NaN (an undefined metric) becomes null, NumPy scalars floats."""
    if isinstance(x, Mapping):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return None if math.isnan(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


def plot_curves(history: Sequence[Mapping[str, float]], path: Path, title: str = "") -> None:
    """Training/validation loss and validation binary accuracy per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(epochs, [r["train_loss"] for r in history], label="train loss")
    ax.plot(epochs, [r["valid_loss"] for r in history], label="valid loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax2 = ax.twinx()
    ax2.plot(
        epochs,
        [r["valid_acc2"] for r in history],
        color="tab:green",
        linestyle="--",
        label="valid Acc2",
    )
    ax2.set_ylabel("binary accuracy")
    lines = ax.get_lines() + ax2.get_lines()
    ax.legend(lines, [ln.get_label() for ln in lines], loc="best", fontsize=8)
    ax.set_title(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


__all__ += ["current_lrs", "format_lrs", "json_clean", "plot_curves"]
