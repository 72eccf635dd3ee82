"""The training engine (DESIGN §8): one seed of one model on one dataset.

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
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch.utils.data import DataLoader, RandomSampler

from mmml_core import registry
from mmml_core.checkpoint import atomic_directory, atomic_write_text, recover_directory, save_model
from mmml_core.interfaces import FeatureEncoder
from mmml_core.metrics import ACC2_KEY, regression_metrics
from mmml_core.model import ComponentSpec, ModelSpec, MultimodalModel, build_model

__all__ = ["TrainConfig", "evaluate", "resolve_device", "train_seed"]


@dataclass
class TrainConfig:
    lr: float = 1e-5  # the paper's appendix A.1 (the authors' code used 5e-6 with batch 8)
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

    def __post_init__(self) -> None:
        if self.lr <= 0 or self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("lr, batch_size, max_epochs and patience must be positive")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
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
    from mmml_core.data import LengthBucketSampler

    kwargs: dict[str, Any] = {"collate_fn": collate, "num_workers": cfg.num_workers}
    if cfg.num_workers > 0:
        kwargs["persistent_workers"] = False
    if not train:
        return DataLoader(split, batch_size=batch_size, shuffle=False, **kwargs)
    if cfg.bucket_by_length:
        sampler = LengthBucketSampler(split.lengths, batch_size, seed=seed, shuffle=True)
        sampler.set_epoch(epoch)
        return DataLoader(split, batch_sampler=sampler, **kwargs)
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return DataLoader(
        split,
        batch_size=batch_size,
        sampler=RandomSampler(split, generator=g),
        drop_last=False,
        **kwargs,
    )


def loss_targets(
    targets: Mapping[str, torch.Tensor], single_modality: bool
) -> Mapping[str, torch.Tensor]:
    """What each head learns. A single-modality model (no fusion) predicts the multimodal
    label with its one head (the paper's "text-only" rows); in a fused model each subnet head
    learns its own modality's label where the dataset has one (DESIGN §7)."""
    if not single_modality:
        return targets
    return {h: targets["M"] for h in targets}


@torch.no_grad()
def evaluate(
    model: MultimodalModel,
    loader: DataLoader,
    loss_fn: torch.nn.Module,
    device: torch.device,
    amp: bool = True,
) -> dict[str, Any]:
    """Predictions per head and targets over a loader, plus the mean loss."""
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
            out = model(batch_t["inputs"])
        total, _ = loss_fn(out, loss_targets(batch_t["targets"], single_modality))
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
    path: Path, model: torch.nn.Module, optim: torch.optim.Optimizer, meta: dict[str, Any]
) -> None:
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
        save_file({"torch": torch.get_rng_state()}, str(tmp / "rng.safetensors"))
        np_state = np.random.get_state()
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
    torch.set_rng_state(load_file(str(path / "rng.safetensors"))["torch"])
    random.setstate(_tupled(meta.pop("python_rng")))
    np_state = meta.pop("numpy_rng")
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32), *np_state[2:]))
    return meta


# -- one seed ---------------------------------------------------------------------------------


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
) -> dict[str, Any]:
    """Train one seed; writes ``out_dir/{state,best_loss,best_acc,results.json,curve.png}``
    and returns the results."""
    from tqdm.auto import tqdm

    from mmml_core.data import make_collate

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state_dir = out / "state"
    device = resolve_device(cfg.device)
    _seed_everything(seed)
    model = build_model(spec)
    loss_fn = registry.create("loss", loss_spec.name, **loss_spec.config)

    train_split, valid_split, test_split = (dataset.split(s) for s in ("train", "valid", "test"))
    for m, enc in model.encoders.items():
        if type(enc).fit is not FeatureEncoder.fit:
            enc.fit(_ModalityView(train_split, m))
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    optim = torch.optim.AdamW(
        params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=device.type == "cuda"
    )
    collate = make_collate(dict(model.encoders))
    scheme = dataset.scheme
    acc_key = ACC2_KEY[scheme]
    primary = _primary_head(spec)
    extra = {**(checkpoint_extra or {}), "scheme": scheme, "language": dataset.language}

    meta: dict[str, Any] = {
        "epoch": 0,
        "history": [],
        "best_loss": math.inf,
        "best_acc": -1.0,
        "best_loss_epoch": 0,
        "best_acc_epoch": 0,
        "bad_epochs": 0,
        "stopped": None,
    }
    recover_directory(state_dir)
    if resume and (state_dir / "state.json").is_file():
        meta = _load_state(state_dir, model, optim)
    elif state_dir.exists():
        shutil.rmtree(state_dir)

    valid_loader = _loader(
        valid_split, collate, cfg.eval_batch_size, cfg, train=False, seed=seed, epoch=0
    )
    use_amp = cfg.amp and device.type == "cuda"
    single = spec.fusion is None
    bar = tqdm(
        total=cfg.max_epochs,
        initial=meta["epoch"],
        desc=f"seed {seed}",
        unit="epoch",
        disable=not progress,
        leave=False,
    )
    while meta["stopped"] is None:
        epoch = meta["epoch"] + 1
        model.train()
        loss_sum = torch.zeros((), device=device)
        n_seen = 0
        for batch in _loader(
            train_split, collate, cfg.batch_size, cfg, train=True, seed=seed, epoch=epoch
        ):
            batch_t = _to_device(batch, device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                preds = model(batch_t["inputs"])
            total, _ = loss_fn(preds, loss_targets(batch_t["targets"], single))
            optim.zero_grad(set_to_none=True)
            total.backward()
            if cfg.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            optim.step()
            n = len(batch["ids"])
            loss_sum += total.detach() * n
            n_seen += n
        ev = evaluate(model, valid_loader, loss_fn, device, cfg.amp)
        val_metrics = regression_metrics(ev["preds"][primary], ev["targets"]["M"], scheme)
        row = {
            "epoch": epoch,
            "train_loss": float(loss_sum) / max(n_seen, 1),
            "valid_loss": ev["loss"],
            "valid_acc2": val_metrics[acc_key],
        }
        meta["history"].append(row)
        if ev["loss"] < meta["best_loss"]:
            meta.update(best_loss=ev["loss"], best_loss_epoch=epoch, bad_epochs=0)
            save_model(model, out / "best_loss", extra)
        else:
            meta["bad_epochs"] += 1
        if val_metrics[acc_key] > meta["best_acc"]:
            meta.update(best_acc=val_metrics[acc_key], best_acc_epoch=epoch)
            save_model(model, out / "best_acc", extra)
        meta["epoch"] = epoch
        if meta["bad_epochs"] >= cfg.patience:
            meta["stopped"] = "early_stopping"
        elif epoch >= cfg.max_epochs:
            meta["stopped"] = "epoch_cap"
        _save_state(state_dir, model, optim, meta)
        bar.update(1)
        bar.set_postfix(
            train=f"{row['train_loss']:.3f}",
            valid=f"{row['valid_loss']:.3f}",
            acc2=f"{row['valid_acc2']:.3f}",
        )
    bar.close()

    test_loader = _loader(
        test_split, collate, cfg.eval_batch_size, cfg, train=False, seed=seed, epoch=0
    )
    results: dict[str, Any] = {
        "seed": seed,
        "scheme": scheme,
        "model": spec.to_dict(),
        "loss": {"name": loss_spec.name, "config": loss_spec.config},
        "train": asdict(cfg),
        "epochs": meta["epoch"],
        "stopped": meta["stopped"],
        "history": meta["history"],
        "selection": {},
    }
    for selection, epoch_key, value_key in (
        ("best_loss", "best_loss_epoch", "best_loss"),
        ("best_acc", "best_acc_epoch", "best_acc"),
    ):
        model.load_state_dict(load_file(str(out / selection / "model.safetensors")))
        ev = evaluate(model, test_loader, loss_fn, device, cfg.amp)
        results["selection"][selection] = {
            "epoch": meta[epoch_key],
            "valid_value": meta[value_key],
            "test_loss": ev["loss"],
            "test": _score(ev, scheme, dataset.has_modality_labels),
        }
    atomic_write_text(out / "results.json", json.dumps(json_clean(results), indent=2))
    plot_curves(meta["history"], out / "curve.png", title=f"seed {seed}")
    return results


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


__all__ += ["json_clean", "plot_curves"]
