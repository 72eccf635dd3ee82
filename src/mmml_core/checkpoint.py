"""Model checkpoints: safetensors weights + a JSON config, one directory, never pickle
(docs/training.md#model-checkpoints-and-prediction).

``config.json`` names every component by registry name with its full config and the
distribution (and version) that provided it, so a checkpoint says exactly what built it and
:func:`load_model` rebuilds it with one call. Directories are written atomically: into a
temporary sibling, then renamed over the old one.

A checkpoint is verified and self-contained:

- ``config.json`` records the SHA-256 of ``model.safetensors`` (``weights_sha256``);
  :func:`load_model` checks it before loading anything. Checkpoints written before the
  checksum existed have none and still load, unverified.
- An encoder that needs files besides the weights (a tokenizer, an architecture config)
  writes them with ``FeatureEncoder.save_assets`` into ``assets/<modality>/``; config.json
  records that folder relative to the checkpoint (``"assets": {"text": "assets/text"}``) and
  :func:`load_model` rebuilds that encoder from ``config_with_assets`` of that folder, so
  nothing is fetched from a model hub and the original resource may be gone.

Every way a checkpoint directory can be unusable raises one :class:`CheckpointError` whose
message starts with the file at fault.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mmml_core import __version__, registry
from mmml_core.model import ModelSpec, MultimodalModel, build_model

__all__ = [
    "ASSETS",
    "CONFIG",
    "WEIGHTS",
    "CheckpointError",
    "atomic_directory",
    "atomic_write_text",
    "file_sha256",
    "load_model",
    "read_config",
    "recover_directory",
    "save_model",
]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
ASSETS = "assets"
FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be read; the message names the file."""


def _umask() -> int:
    mask = os.umask(0o22)
    os.umask(mask)
    return mask


def _normal_permissions(path: Path) -> None:
    """Give a file or a folder tree made by ``tempfile`` (which makes them private: 0600 and
    0700) the permissions of any file the user creates (0666 and 0777 less the umask)."""
    mask = _umask()
    paths = [path, *path.rglob("*")] if path.is_dir() else [path]
    for p in paths:
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    _normal_permissions(Path(tmp))
    os.replace(tmp, path)


def recover_directory(path: Path) -> None:
    """Finish an :func:`atomic_directory` swap that a kill interrupted between its two renames."""
    old = path.with_name(f".{path.name}.old")
    if not path.exists() and old.exists():
        os.replace(old, path)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling folder to fill; when the block succeeds it replaces ``path``
    (the old folder is renamed aside first and removed after, and :func:`recover_directory`
    restores it if a kill falls between the two renames). On error nothing changes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover_directory(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    try:
        yield tmp
        _normal_permissions(tmp)
        old = path.with_name(f".{path.name}.old")
        if path.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _provenance(spec: ModelSpec) -> dict[str, Any]:
    def one(kind: str, name: str) -> dict[str, str]:
        info = registry.info(kind, name)
        return {
            "kind": kind,
            "name": name,
            "distribution": info.distribution,
            "version": info.version,
        }

    out = {f"encoder.{m}": one("encoder", s.name) for m, s in spec.encoders.items()}
    if spec.fusion is not None:
        out["fusion"] = one("fusion", spec.fusion.name)
    out["head"] = one("head", spec.head.name)
    out["subnet_head"] = one("head", spec.subnet_head.name)
    return out


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _save_assets(model: MultimodalModel, root: Path) -> dict[str, str]:
    """Let every encoder write its assets under ``root/assets/<modality>``; returns the
    folders that were used, relative to ``root`` (POSIX separators, as config.json stores
    them)."""
    assets: dict[str, str] = {}
    for modality, encoder in model.encoders.items():
        if modality in ("", ".", "..") or "/" in modality or "\\" in modality:
            raise ValueError(f"modality {modality!r} cannot name an assets folder")
        folder = root / ASSETS / modality
        folder.mkdir(parents=True)
        if encoder.save_assets(folder):
            assets[modality] = f"{ASSETS}/{modality}"
        else:
            shutil.rmtree(folder)
    if (root / ASSETS).is_dir() and not any((root / ASSETS).iterdir()):
        (root / ASSETS).rmdir()
    return assets


def _point_at_assets(config: dict[str, Any], assets: Mapping[str, str]) -> None:
    """Record each encoder that saved assets as rebuilt from them (a folder relative to the
    checkpoint), not from where it was first loaded: no absolute path of this machine stays
    in the checkpoint, and a moved or copied checkpoint folder still loads."""
    for modality, relative in assets.items():
        encoder = config["model"]["encoders"][modality]
        cls = registry.load("encoder", encoder["name"])
        encoder["config"] = dict(cls.config_with_assets(dict(encoder["config"]), relative))


def save_model(
    model: MultimodalModel, directory: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Save ``model`` to ``directory`` (replaced atomically). ``extra`` goes into the config
    (e.g. the dataset's label scheme and audio settings, needed to predict).

    Besides the weights and the config, the directory holds each encoder's assets (see the
    module docstring); config.json records the weights' SHA-256 and the assets' folders."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    spec = model.resolved_spec()
    config = {
        "format": FORMAT,
        "mmml_core_version": __version__,
        "model": spec.to_dict(),
        "components": _provenance(spec),
        **(extra or {}),
    }
    with atomic_directory(directory) as tmp:
        state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt"})
        config["weights_sha256"] = file_sha256(tmp / WEIGHTS)
        config["assets"] = _save_assets(model, tmp)
        _point_at_assets(config, config["assets"])
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    return directory


def _one_line(exc: BaseException) -> str:
    """An exception as one line; its type is named unless the message says enough."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if isinstance(exc, (ValueError, registry.UnknownComponentError)):
        return text
    return f"{type(exc).__name__}: {text}"


def read_config(directory: str | Path) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint directory, checked to be an mmml checkpoint
    config (a :class:`CheckpointError` otherwise)."""
    directory = Path(directory)
    if not directory.exists():
        raise CheckpointError(f"{directory}: no such checkpoint directory")
    if not directory.is_dir():
        raise CheckpointError(
            f"{directory}: not a directory; a checkpoint is a directory holding {CONFIG} "
            f"and {WEIGHTS}"
        )
    path = directory / CONFIG
    if not path.is_file():
        raise CheckpointError(
            f"{path}: not found; a checkpoint directory holds {CONFIG} and {WEIGHTS}"
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot be read as text ({exc})") from exc
    if not text.strip():
        raise CheckpointError(f"{path}: empty")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict):
        raise CheckpointError(f"{path}: not an mmml checkpoint config (format {FORMAT})")
    if config.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {config.get('format')!r}, this mmml-core "
            f"{__version__} reads format {FORMAT}"
        )
    return config


def _check_weights(directory: Path, config: Mapping[str, Any]) -> Path:
    """The weights file, present, non-empty and matching the recorded checksum (if any)."""
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: not found")
    if weights.stat().st_size == 0:
        raise CheckpointError(f"{weights}: empty")
    expected = config.get("weights_sha256")
    if expected is not None:
        actual = file_sha256(weights)
        if actual != expected:
            raise CheckpointError(
                f"{weights}: SHA-256 {actual} does not match {expected} recorded in "
                f"{directory / CONFIG}; the file changed or was damaged after saving"
            )
    return weights


def _warn_versions(directory: Path, config: Mapping[str, Any]) -> None:
    components = config.get("components")
    if not isinstance(components, Mapping):
        return
    for role, prov in components.items():
        if not isinstance(prov, Mapping) or not {"kind", "name"} <= set(prov):
            continue
        try:
            info = registry.describe(prov["kind"])
        except ValueError:
            continue
        have = {i.name: i for i in info}.get(prov["name"])
        if have is not None and have.version and have.version != prov.get("version"):
            warnings.warn(
                f"{directory}: {role} {prov['name']!r} was saved with {prov.get('distribution')} "
                f"{prov.get('version')}, this environment has {have.distribution} {have.version}",
                stacklevel=3,
            )


def _component_name(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and isinstance(value.get("name"), str):
        return value["name"]
    return None


def _roles(model: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """role -> (kind, registry name) of the components a model dict of config.json names
    (read leniently: a malformed dict is reported by ``ModelSpec`` afterwards)."""
    roles: dict[str, tuple[str, str]] = {}
    encoders = model.get("encoders")
    for modality, value in encoders.items() if isinstance(encoders, Mapping) else ():
        roles[f"encoder.{modality}"] = ("encoder", _component_name(value) or "")
    for role, kind in (("fusion", "fusion"), ("head", "head"), ("subnet_head", "head")):
        roles[role] = (kind, _component_name(model.get(role)) or "")
    return {role: kn for role, kn in roles.items() if kn[1]}


def _spec(directory: Path, config: Mapping[str, Any]) -> ModelSpec:
    """The model spec of config.json, with every component checked to be installed and each
    encoder that saved assets pointed at them."""
    path = directory / CONFIG
    provenance = config.get("components")
    provenance = provenance if isinstance(provenance, Mapping) else {}
    classes: dict[str, Any] = {}
    for role, (kind, name) in _roles(config["model"]).items():
        try:
            classes[role] = registry.load(kind, name)
        except Exception as exc:  # unknown, conflicting, or a plugin whose import fails
            prov = provenance.get(role)
            saved = ""
            if isinstance(prov, Mapping) and prov.get("distribution"):
                dist = f"{prov['distribution']} {prov.get('version') or ''}".strip()
                saved = f" (saved with {dist})"
            raise CheckpointError(
                f"{path}: {role} {name!r}{saved} cannot be loaded here: {_one_line(exc)}"
            ) from exc
    try:
        spec = ModelSpec.from_dict(copy.deepcopy(config["model"]))
    except Exception as exc:  # TypeError, ValueError, KeyError of a malformed model dict
        raise CheckpointError(
            f"{path}: the model it describes is invalid: {_one_line(exc)}"
        ) from exc
    assets = config.get("assets") or {}
    if not isinstance(assets, Mapping):
        raise CheckpointError(f"{path}: 'assets' must map modalities to folders, got {assets!r}")
    for modality, relative in assets.items():
        folder = _asset_folder(directory, modality, relative, spec)
        encoder = spec.encoders[modality]
        cls = classes.get(f"encoder.{modality}") or registry.load("encoder", encoder.name)
        try:
            encoder.config = dict(cls.config_with_assets(copy.deepcopy(encoder.config), folder))
        except Exception as exc:  # plugin code reading its own files
            raise CheckpointError(
                f"{folder}: encoder {encoder.name!r} cannot rebuild from these assets: "
                f"{_one_line(exc)}"
            ) from exc
    return spec


def _asset_folder(directory: Path, modality: str, relative: Any, spec: ModelSpec) -> Path:
    path = directory / CONFIG
    if modality not in spec.encoders:
        raise CheckpointError(
            f"{path}: assets for {modality!r}, but the model encodes {list(spec.encoders)}"
        )
    rel = PurePosixPath(relative) if isinstance(relative, str) else None
    if rel is None or rel.is_absolute() or ".." in rel.parts or not rel.parts:
        raise CheckpointError(
            f"{path}: assets of {modality!r} must be a folder inside the checkpoint, "
            f"got {relative!r}"
        )
    folder = directory.joinpath(*rel.parts)
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not found; {CONFIG} lists it as {modality!r} assets")
    return folder


def _load_weights(model: MultimodalModel, weights: Path) -> None:
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors' own error, or an OSError
        raise CheckpointError(
            f"{weights}: not a readable safetensors file ({_one_line(exc)})"
        ) from exc
    state = model.upgrade_state_dict(state)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k} {tuple(v.shape)} != {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or shapes:
        found = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("shape", shapes)):
            if items:
                more = f" and {len(items) - 5} more" if len(items) > 5 else ""
                found.append(f"{label} {items[:5]}{more}")
        raise CheckpointError(f"{weights}: does not fit the model of {CONFIG} ({'; '.join(found)})")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise CheckpointError(
            f"{weights}: does not fit the model of {CONFIG} ({_one_line(exc)})"
        ) from exc


def load_model(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[MultimodalModel, dict[str, Any]]:
    """Rebuild the model of a checkpoint directory; returns ``(model in eval mode, config)``.

    The weights are checked against the SHA-256 in config.json before the model is built;
    a checkpoint without one (saved before mmml recorded it) loads unverified. Encoders with
    saved assets are rebuilt from them (nothing is fetched). Raises :class:`CheckpointError`
    naming the file for a missing, damaged or mismatched checkpoint and for components that
    are not installed here or whose config is invalid; the config returned is config.json
    as written.
    """
    directory = Path(directory)
    config = read_config(directory)
    weights = _check_weights(directory, config)
    _warn_versions(directory, config)
    spec = _spec(directory, config)
    try:
        model = build_model(spec)
    except Exception as exc:  # invalid configs, or an encoder that cannot get its files
        raise CheckpointError(
            f"{directory / CONFIG}: cannot build the model it describes: {_one_line(exc)}"
        ) from exc
    _load_weights(model, weights)
    return model.to(device).eval(), config
