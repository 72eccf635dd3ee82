"""The feature cache of frozen encoders (docs/training.md#frozen-encoders-and-the-feature-cache).

A frozen encoder (``model.frozen``) gets no gradient and stays in eval mode, so its output for
an item depends on the item alone. With ``train.feature_cache=auto`` the engine computes each
item's :class:`~mmml_core.interfaces.EncoderOutput` once (no_grad, eval mode, fp32, in batches
of the encoder's own ``preprocess`` + ``forward``), stores it, and every later epoch, seed,
fusion and head reads it back instead of running the encoder.

An entry holds one (dataset, split, modality) under one encoder: its key is the SHA-256 of
the JSON of everything the outputs depend on (:func:`key_material`): the dataset's kind, root
and loading settings, the split's item ids and what the dataset can tell about each item
without decoding it (the texts themselves, clip lengths, and for MMSA datasets each audio
file's path, size and modification time; for other kinds the raw items' content), the
encoder's registry name, distribution version and full config, a checksum of its weights
(after ``fit``), the torch version and :data:`FORMAT`. Any change of those makes a new entry.

Layout, under the cache directory (``train.cache_dir``, else ``$MMML_CACHE_DIR``, else
``~/.cache/mmml/features``)::

    <key>/manifest.json              format, key, key material, item ids in order, shards
    <key>/shard-00000.safetensors    hidden (sum of L_i, D), lengths (n,), pooled (n, D)
    ...                              (SHARD_ITEMS items per shard, in the split's order)

Each item's hidden rows are its encoder output where the mask is True (unpadded, ``L_i``
rows); the collate pads them per batch (:func:`pad_cached`), which gives the live encoder's
results because encoders and fusions are padding-invariant (the contract suite checks it).

Safety: an entry is written into a temporary sibling folder and renamed into place with one
``os.rename``, so a reader sees a whole entry or none, and a killed build leaves only a
temporary folder that is ignored (and removed by a later build once its process is gone).
When two runs build the same entry at once, the first rename wins; the other discards its
copy and reads the winner's. Entries are never modified after the rename, so any number of
runs can read them at once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import shutil
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmml_core.interfaces import EncoderOutput, FeatureEncoder, config_dict

__all__ = [
    "CACHE_ENV",
    "FORMAT",
    "CachedFeatures",
    "CachedItem",
    "CachedSplit",
    "cache_dir",
    "cached_output",
    "cached_splits",
    "entry_key",
    "is_cached",
    "key_material",
    "load_or_build",
    "pad_cached",
    "weights_checksum",
]

log = logging.getLogger(__name__)

FORMAT = 1  # the entry layout; a change makes every earlier entry unused
SHARD_ITEMS = 256  # items per safetensors shard
CACHE_ENV = "MMML_CACHE_DIR"
MANIFEST = "manifest.json"
STALE_SECONDS = 24 * 3600  # a temporary folder of another host older than this is removed
#: The keys of a batch's input dict that carry cached encoder outputs (see :func:`pad_cached`).
HIDDEN, MASK, POOLED = "cached.hidden", "cached.mask", "cached.pooled"


def cache_dir(setting: str | None = None) -> Path:
    """The cache directory: ``setting`` (``train.cache_dir``), else ``$MMML_CACHE_DIR``, else
    ``~/.cache/mmml/features``."""
    chosen = setting or os.environ.get(CACHE_ENV) or "~/.cache/mmml/features"
    return Path(chosen).expanduser()


# -- the cached outputs and how batches carry them ---------------------------------------------


@dataclass
class CachedItem:
    """One item's cached encoder output: ``hidden`` (L, D), its valid rows only; ``pooled`` (D,)."""

    hidden: Tensor
    pooled: Tensor


def pad_cached(values: Sequence[CachedItem]) -> dict[str, Tensor]:
    """A batch of cached items as encoder inputs: ``hidden`` padded with zeros to the longest
    item (B, T, D), ``mask`` (B, T) True on each item's own rows, ``pooled`` (B, D)."""
    lengths = [int(v.hidden.shape[0]) for v in values]
    d = int(values[0].pooled.shape[0])
    t = max(max(lengths), 1)
    hidden = torch.zeros(len(values), t, d, dtype=values[0].hidden.dtype)
    mask = torch.zeros(len(values), t, dtype=torch.bool)
    for i, (v, n) in enumerate(zip(values, lengths, strict=True)):
        hidden[i, :n] = v.hidden
        mask[i, :n] = True
    pooled = torch.stack([v.pooled for v in values])
    return {HIDDEN: hidden, MASK: mask, POOLED: pooled}


def is_cached(inputs: Any) -> bool:
    """Whether a modality's batch inputs are cached encoder outputs (:func:`pad_cached`)."""
    return isinstance(inputs, Mapping) and HIDDEN in inputs


def cached_output(inputs: Any) -> EncoderOutput | None:
    """The :class:`EncoderOutput` that cached batch inputs carry; None for encoder inputs."""
    if not is_cached(inputs):
        return None
    return EncoderOutput(hidden=inputs[HIDDEN], mask=inputs[MASK], pooled=inputs[POOLED])


@dataclass
class CachedFeatures:
    """One entry's outputs in memory: every item's hidden rows concatenated (sum L_i, D),
    ``offsets`` (N + 1,) where each item's rows start, ``pooled`` (N, D), ``ids`` in order."""

    ids: list[str]
    hidden: Tensor
    offsets: Tensor
    pooled: Tensor

    def __len__(self) -> int:
        return len(self.ids)

    def item(self, i: int) -> CachedItem:
        a, b = int(self.offsets[i]), int(self.offsets[i + 1])
        return CachedItem(self.hidden[a:b], self.pooled[i])


class CachedSplit(torch.utils.data.Dataset):
    """A split whose items carry cached outputs (:class:`CachedItem`) for some modalities
    instead of their raw values. The split's own items are read without those modalities
    where the split can (``MMSASplit.only``: no audio is decoded for a cached audio encoder);
    ``lengths`` are the split's, so the length-bucketed batches are the same as without the
    cache."""

    def __init__(self, base: Any, features: Mapping[str, CachedFeatures]) -> None:
        self.features = dict(features)
        self.lengths = base.lengths
        self.name = getattr(base, "name", None)
        only = getattr(base, "only", None)
        keep = [m for m in getattr(base, "modalities", ()) if m not in self.features]
        self.base = only(keep) if callable(only) and hasattr(base, "modalities") else base
        self._full = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = dict(self.base[index])
        for m, f in self.features.items():
            if f.ids[index] != item["id"]:
                raise RuntimeError(
                    f"feature cache out of order: item {index} is {item['id']!r} in the split, "
                    f"{f.ids[index]!r} in the {m} cache"
                )
            item[m] = f.item(index)
        return item

    def previews(self, modality: str) -> list[Any]:
        return self._full.previews(modality)


# -- keys -------------------------------------------------------------------------------------


def weights_checksum(module: torch.nn.Module) -> str:
    """SHA-256 over a module's state dict: every tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()


def _update(h: Any, value: Any) -> None:
    """Feed one preview or raw item into a hash, by content."""
    if isinstance(value, str):
        h.update(b"s" + value.encode() + b"\0")
    elif isinstance(value, np.ndarray):
        h.update(f"a{value.dtype}{value.shape}".encode())
        h.update(memoryview(np.ascontiguousarray(value)).cast("B"))
    elif isinstance(value, Tensor):
        _update(h, value.detach().cpu().numpy())
    else:
        h.update(b"r" + repr(value).encode() + b"\0")


def _items_fingerprint(split: Any, modality: str) -> dict[str, Any]:
    """What the split's items of ``modality`` are: ids, previews and, for MMSA splits, each
    audio or video file's path, size and modification time; for other splits the raw items' content
    (read once: a dataset kind without files to stat cannot be checked more cheaply)."""
    h = hashlib.sha256()
    rows = getattr(split, "rows", None)
    ids = list(split.ids) if hasattr(split, "ids") else [split[i]["id"] for i in range(len(split))]
    for i in ids:
        h.update(i.encode() + b"\0")
    for p in split.previews(modality):
        _update(h, p)
    files = hashlib.sha256()
    if rows is not None and all(hasattr(r, "audio_path") for r in rows):
        if modality != "text":  # audio_path, video_path: the files the items are read from
            for r in rows:
                path = getattr(r, f"{modality}_path", None)
                if path is not None:
                    st = os.stat(path)
                    files.update(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}\0".encode())
        content = f"ids, previews, {modality} files' path/size/mtime"
    else:
        for i in range(len(split)):
            _update(files, split[i][modality])
        content = "ids, previews, raw items"
    return {"count": len(ids), "hash": h.hexdigest(), "files": files.hexdigest(), "what": content}


def _dataset_identity(dataset: Any) -> dict[str, Any]:
    root = getattr(dataset, "root", None)
    return {
        "kind": getattr(dataset, "kind", type(dataset).__name__),
        "root": None if root is None else str(Path(root).resolve()),
        "language": getattr(dataset, "language", None),
        "max_audio_seconds": getattr(dataset, "max_audio_seconds", None),
    }


def key_material(
    dataset: Any, split_name: str, split: Any, modality: str, name: str, encoder: FeatureEncoder
) -> dict[str, Any]:
    """Everything an entry's outputs depend on (its key is :func:`entry_key` of this)."""
    from mmml_core import registry

    try:
        version = registry.info("encoder", name).version
    except Exception:  # registered by hand: no distribution
        version = None
    return {
        "format": FORMAT,
        "dataset": _dataset_identity(dataset),
        "split": split_name,
        "items": _items_fingerprint(split, modality),
        "modality": modality,
        "encoder": name,
        "encoder_version": version,
        "config": config_dict(encoder),
        "weights": weights_checksum(encoder),
        "torch": torch.__version__,
    }


def entry_key(material: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()


# -- reading and writing entries ------------------------------------------------------------


def _read(entry: Path, key: str, ids: Sequence[str]) -> CachedFeatures:
    """An entry's outputs; raises ValueError when it is not what ``key`` and ``ids`` say."""
    manifest = json.loads((entry / MANIFEST).read_text())
    if manifest.get("format") != FORMAT or manifest.get("key") != key:
        raise ValueError("format or key differs from the folder's name")
    if list(manifest["ids"]) != list(ids):
        raise ValueError("its items are not the split's")
    from safetensors.torch import load_file

    hidden, lengths, pooled = [], [], []
    for shard in manifest["shards"]:
        t = load_file(str(entry / shard["file"]))
        if len(t["lengths"]) != shard["items"] or int(t["lengths"].sum()) != len(t["hidden"]):
            raise ValueError(f"{shard['file']} does not hold what the manifest says")
        hidden.append(t["hidden"])
        lengths.append(t["lengths"])
        pooled.append(t["pooled"])
    lens = torch.cat(lengths)
    if len(lens) != len(ids):
        raise ValueError("it holds a different number of items")
    offsets = torch.zeros(len(lens) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lens, 0)
    return CachedFeatures(list(ids), torch.cat(hidden), offsets, torch.cat(pooled))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _remove_stale(root: Path, key: str) -> None:
    """Remove temporary folders of ``key`` left by killed builds: this host's whose process is
    gone, other hosts' older than :data:`STALE_SECONDS`. Live builds are left alone."""
    host = socket.gethostname()
    for tmp in root.glob(f".{key}.*.tmp"):
        parts = tmp.name.split(".")  # "", key, host..., pid, token, "tmp"
        try:
            pid, tmp_host = int(parts[-3]), ".".join(parts[2:-3])
            age = time.time() - tmp.stat().st_mtime
        except (ValueError, IndexError, OSError):
            continue
        if (tmp_host == host and not _alive(pid)) or (tmp_host != host and age > STALE_SECONDS):
            shutil.rmtree(tmp, ignore_errors=True)


@torch.no_grad()
def _encode(
    encoder: FeatureEncoder, items: Any, batch_size: int, device: torch.device
) -> tuple[list[Tensor], Tensor]:
    """Every item's (L_i, D) valid hidden rows and its (D,) pooled vector, in item order,
    encoded in batches of similar length (fp32, eval mode; the RNG streams are left as they
    were, so a run with the cache trains with the same random numbers as one without)."""
    lengths = np.asarray(items.lengths)
    order = np.argsort(lengths, kind="stable")
    hidden: list[Tensor | None] = [None] * len(items)
    pooled: list[Tensor | None] = [None] * len(items)
    was_training = encoder.training
    encoder.eval()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size].tolist()
                raw = [items[i] for i in idx]
                inputs = encoder.preprocess(raw)
                inputs = {
                    k: v.to(device) if isinstance(v, Tensor) else v for k, v in inputs.items()
                }
                out = encoder(inputs)
                h, m, p = out.hidden.float().cpu(), out.mask.cpu(), out.pooled.float().cpu()
                for j, i in enumerate(idx):
                    hidden[i] = h[j][m[j]].clone()
                    pooled[i] = p[j].clone()
    finally:
        encoder.train(was_training)
    return hidden, torch.stack(pooled)  # type: ignore[arg-type]


class _RawItems:
    """The raw values of one modality of a split (only that modality read where the split
    can), with the split's lengths."""

    def __init__(self, split: Any, modality: str) -> None:
        only = getattr(split, "only", None)
        self.split = only([modality]) if callable(only) else split
        self.modality, self.lengths = modality, split.lengths

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> Any:
        return self.split[i][self.modality]


def _write(tmp: Path, key: str, material: Mapping[str, Any], ids: Sequence[str], hidden, pooled):
    from safetensors.torch import save_file

    shards = []
    for n, start in enumerate(range(0, len(ids), SHARD_ITEMS)):
        part = hidden[start : start + SHARD_ITEMS]
        name = f"shard-{n:05d}.safetensors"
        save_file(
            {
                "hidden": torch.cat(part).contiguous() if part else torch.zeros(0, pooled.shape[1]),
                "lengths": torch.tensor([len(h) for h in part], dtype=torch.int64),
                "pooled": pooled[start : start + SHARD_ITEMS].contiguous(),
            },
            str(tmp / name),
        )
        shards.append({"file": name, "items": len(part)})
    manifest = {
        "format": FORMAT,
        "key": key,
        "material": material,
        "ids": list(ids),
        "dim": int(pooled.shape[1]),
        "shards": shards,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, default=str))


def load_or_build(
    encoder: FeatureEncoder,
    split: Any,
    material: Mapping[str, Any],
    root: Path,
    *,
    batch_size: int = 32,
    device: torch.device | None = None,
) -> tuple[CachedFeatures, bool]:
    """The entry of ``material`` under ``root``, built first when there is none; returns the
    outputs and whether this call built them. A damaged entry (one that a reader cannot take)
    is set aside and built again."""
    device = device or torch.device("cpu")
    key = entry_key(material)
    modality = str(material["modality"])
    items = _RawItems(split, modality)
    ids = list(split.ids) if hasattr(split, "ids") else [split[i]["id"] for i in range(len(split))]
    entry = root / key
    if entry.is_dir():
        try:
            return _read(entry, key, ids), False
        except Exception as exc:  # damaged outside mmml (entries are never rewritten)
            log.warning(f"feature cache: entry {entry} is damaged ({exc}); building it again")
            aside = root / f".{key}.{socket.gethostname()}.{os.getpid()}.bad.tmp"
            try:
                os.rename(entry, aside)
                shutil.rmtree(aside, ignore_errors=True)
            except OSError:  # another run moved it aside first: build anew all the same
                pass
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root, key)
    tmp = root / f".{key}.{socket.gethostname()}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        hidden, pooled = _encode(encoder, items, batch_size, device)
        _write(tmp, key, material, ids, hidden, pooled)
        try:
            os.rename(tmp, entry)  # atomic; refused when another run published it first
        except OSError:
            if not entry.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another run won: read its entry
            return _read(entry, key, ids), False
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    offsets = torch.zeros(len(hidden) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(torch.tensor([len(h) for h in hidden], dtype=torch.int64), 0)
    cat = torch.cat(hidden) if hidden else torch.zeros(0, pooled.shape[1])
    return CachedFeatures(ids, cat, offsets, pooled), True


# -- the engine's entry point -------------------------------------------------------------------


def cached_splits(
    model: Any,
    dataset: Any,
    splits: Mapping[str, Any],
    cfg: Any,
    device: torch.device,
) -> dict[str, Any]:
    """``splits`` (name -> split) with the frozen encoders' modalities served from the cache
    when ``cfg.feature_cache`` is ``auto`` (else unchanged); logs one line saying which
    modalities come from the cache and whether each entry was built or reused. A context
    model is left as it is (the cache holds no context inputs), with a line saying so."""
    spec = model.spec
    frozen = [m for m in spec.frozen if m in model.encoders]
    if cfg.feature_cache == "off" or not frozen:
        return dict(splits)
    if spec.context:
        log.info(
            f"feature cache: not used for this context model (it holds no context inputs); "
            f"the frozen {', '.join(frozen)} encoder(s) run on every batch"
        )
        return dict(splits)
    root = cache_dir(cfg.cache_dir)
    started = time.perf_counter()
    features: dict[str, dict[str, CachedFeatures]] = {name: {} for name in splits}
    what: dict[str, list[str]] = {"built": [], "reused": []}
    for m in frozen:
        enc = model.encoders[m]
        name = spec.encoders[m].name
        for split_name, split in splits.items():
            material = key_material(dataset, split_name, split, m, name, enc)
            feats, built = load_or_build(
                enc, split, material, root, batch_size=cfg.eval_batch_size, device=device
            )
            features[split_name][m] = feats
            what["built" if built else "reused"].append(f"{m}/{split_name}")
    seconds = time.perf_counter() - started
    parts = [f"{k} {', '.join(v)}" for k, v in what.items() if v]
    log.info(
        f"feature cache: {', '.join(frozen)} served from the cache at {root} "
        f"({'; '.join(parts)}; {seconds:.1f} s)"
    )
    return {name: CachedSplit(split, features[name]) for name, split in splits.items()}
