"""Model checkpoints: safetensors weights + a JSON config, one directory, never pickle
(DESIGN §8).

``config.json`` names every component by registry name with its full config and the
distribution (and version) that provided it, so a checkpoint says exactly what built it and
:func:`load_model` rebuilds it with one call. Directories are written atomically: into a
temporary sibling, then renamed over the old one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from mmml_core import __version__, registry
from mmml_core.model import ModelSpec, MultimodalModel, build_model

__all__ = [
    "CheckpointError",
    "atomic_directory",
    "atomic_write_text",
    "load_model",
    "read_config",
    "recover_directory",
    "save_model",
]

WEIGHTS = "model.safetensors"
CONFIG = "config.json"
FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be read; the message names the file."""


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old or the new file, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
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


def save_model(
    model: MultimodalModel, directory: str | Path, extra: dict[str, Any] | None = None
) -> Path:
    """Save ``model`` to ``directory`` (replaced atomically). ``extra`` goes into the config
    (e.g. the dataset's label scheme and audio settings, needed to predict)."""
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
        (tmp / CONFIG).write_text(json.dumps(config, indent=2, sort_keys=True))
    return directory


def read_config(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / CONFIG
    if not path.is_file():
        raise CheckpointError(
            f"{path}: not found; a checkpoint directory holds {CONFIG} and {WEIGHTS}"
        )
    try:
        config = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: not valid JSON ({exc})") from exc
    if config.get("format") != FORMAT or "model" not in config:
        raise CheckpointError(f"{path}: not an mmml checkpoint config (format {FORMAT})")
    return config


def load_model(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[MultimodalModel, dict[str, Any]]:
    """Rebuild the model of a checkpoint directory; returns ``(model in eval mode, config)``."""
    directory = Path(directory)
    config = read_config(directory)
    for role, prov in config.get("components", {}).items():
        try:
            info = registry.describe(prov["kind"])
            have = {i.name: i for i in info}.get(prov["name"])
        except ValueError:
            have = None
        if have is not None and have.version and have.version != prov["version"]:
            warnings.warn(
                f"{directory}: {role} {prov['name']!r} was saved with {prov['distribution']} "
                f"{prov['version']}, this environment has {have.distribution} {have.version}",
                stacklevel=2,
            )
    model = build_model(ModelSpec.from_dict(config["model"]))
    weights = directory / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: not found")
    state = load_file(str(weights))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: does not match the model of {CONFIG} "
            f"(missing {missing[:5]}, unexpected {unexpected[:5]})"
        )
    return model.to(device).eval(), config
