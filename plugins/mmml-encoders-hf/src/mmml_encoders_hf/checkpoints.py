"""Where an encoder's weights come from: ``random:<preset>``, a local directory, or a hub id.

Rules (docs/encoders.md): never fall back silently. A hub id is used from the local Hugging Face
cache when it is there; otherwise it is downloaded only when the hub answers within a few
seconds. When it cannot be had (offline, unknown id, no network), :class:`CheckpointError`
says how to bring a local copy.

Assets directories. An mmml model checkpoint carries its own weights file, so an encoder
loaded from a hub id or a directory saves only what else it needs to be rebuilt offline
(``save_assets``: the transformers architecture config, the tokenizer or feature-extractor
config, and the marker file :data:`ASSETS_MARKER` naming the original checkpoint). A directory
with that marker resolves to kind ``assets``: the model is built from its config with random
weights, which the model checkpoint's state dict then overwrites. Only the marker makes a
directory weightless; any other directory without weights stays an error.

Meta device. Under ``with torch.device("meta"):`` (a dry run validating a configuration) the
checkpoint is still resolved and its configs, tokenizer and feature extractor are read, so
every error of a real build is raised, but the model is built from its config and no weight
file is opened (:func:`reads_weights`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ASSETS_MARKER",
    "ATTENTIONS",
    "LANGUAGES",
    "PRESETS",
    "RANDOM_PREFIX",
    "CheckpointError",
    "Source",
    "check_attention",
    "load_hf_model",
    "local_copy_hint",
    "on_meta_device",
    "reads_weights",
    "resolve",
    "with_checkpoint",
    "write_assets_marker",
]

RANDOM_PREFIX = "random:"
PRESETS = ("tiny", "base", "large")
LANGUAGES = ("en", "zh")
#: The encoders' ``attention`` field: transformers' ``attn_implementation`` of the model.
#: ``sdpa`` (default) runs ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels
#: where the device has them); ``eager`` the explicit matmul-softmax-matmul the authors' code
#: ran (the transformers default of their time). Same outputs, to float rounding.
ATTENTIONS = ("sdpa", "eager")
# Seconds the hub gets to answer before we give up; a missing network fails in well under it.
HUB_PROBE_TIMEOUT_S = 8.0
#: The file that marks a directory written by ``save_assets`` (configs and tokenizer, no weights).
ASSETS_MARKER = "mmml-assets.json"
ASSETS_FORMAT = 1


class CheckpointError(OSError):
    """A checkpoint that cannot be loaded; the message says what to do instead."""


@dataclass(frozen=True)
class Source:
    """A resolved checkpoint: ``kind`` is ``random``, ``dir``, ``hub`` or ``assets`` (a directory
    written by ``save_assets``); ``name`` is the preset, directory or hub id; ``load_kwargs`` go
    to every ``from_pretrained`` call; ``origin`` is the checkpoint the encoder was first loaded
    from (for ``assets``, the one its marker records; empty for random presets)."""

    kind: str
    name: str
    load_kwargs: dict[str, Any]
    origin: str = ""


def on_meta_device() -> bool:
    """True inside ``with torch.device("meta"):``: build shapes only, read no weights."""
    import torch

    return torch.get_default_device().type == "meta"


def reads_weights(source: Source) -> bool:
    """Whether building from ``source`` loads a weights file: not for random presets, assets
    directories (the model checkpoint supplies the weights) or on the meta device."""
    return source.kind in ("dir", "hub") and not on_meta_device()


def _portable(source: Source) -> str:
    """What an assets marker records of the original checkpoint: a hub id as it is, a local
    folder by its name only (no absolute path of this machine goes into a checkpoint)."""
    if source.kind == "dir":
        return f"local folder {os.path.basename(os.path.normpath(source.name))!r}"
    return source.origin or source.name


def write_assets_marker(directory: str | os.PathLike[str], source: Source, encoder: str) -> None:
    """Mark ``directory`` (already holding the configs and tokenizer) as an assets directory
    of ``encoder`` whose weights live elsewhere; it records the original checkpoint."""
    import transformers

    marker = {
        "format": ASSETS_FORMAT,
        "encoder": encoder,
        "checkpoint": _portable(source),
        "weights": "not included: they are in the mmml model checkpoint's weights file",
        "transformers": transformers.__version__,
    }
    text = json.dumps(marker, indent=2) + "\n"
    Path(directory, ASSETS_MARKER).write_text(text, encoding="utf-8")


def check_attention(value: str) -> None:
    """Raise a ValueError naming the field and its choices unless ``value`` is an
    :data:`ATTENTIONS` entry."""
    if value not in ATTENTIONS:
        raise ValueError(f"attention must be one of {ATTENTIONS}, got {value!r}")


def loads_pretrained(config: Mapping[str, Any]) -> bool:
    """Whether an encoder config's ``checkpoint`` brings pretrained weights: every checkpoint
    but an explicit ``random:<preset>`` (the empty default is the language's hub model)."""
    return not str(config.get("checkpoint") or "").startswith(RANDOM_PREFIX)


def with_checkpoint(config: dict[str, Any], directory: str | os.PathLike[str]) -> dict[str, Any]:
    """``config`` with ``checkpoint`` pointing at an assets directory."""
    return {**config, "checkpoint": str(directory)}


def _read_assets_marker(path: str) -> str:
    """The original checkpoint recorded by an assets directory's marker."""
    marker = os.path.join(path, ASSETS_MARKER)
    try:
        data = json.loads(Path(marker).read_text(encoding="utf-8"))
        origin = data["checkpoint"]
        fmt = data["format"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"unreadable assets marker {marker}: {exc}") from exc
    if fmt != ASSETS_FORMAT:
        raise CheckpointError(
            f"{marker} has format {fmt!r}; this mmml-encoders-hf reads format {ASSETS_FORMAT}"
        )
    return str(origin)


def local_copy_hint(checkpoint: str) -> str:
    return (
        "To use a local copy: on a machine with internet access run "
        f"`hf download {checkpoint} --local-dir DIR` (or load it with transformers and call "
        "save_pretrained(DIR) on the model and on its tokenizer / feature extractor), copy DIR "
        "to this machine and pass checkpoint=DIR. For random weights without any download use "
        "checkpoint=random:tiny, random:base or random:large."
    )


def _looks_like_path(checkpoint: str) -> bool:
    """Hub ids are ``name`` or ``owner/name``; anything else is meant as a directory."""
    return checkpoint.startswith((".", "/", "~")) or "\\" in checkpoint or checkpoint.count("/") > 1


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def resolve(checkpoint: str) -> Source:
    """Classify ``checkpoint``; for a hub id, make sure it is cached or reachable.

    Raises :class:`CheckpointError` for an unknown preset, a missing directory, or a hub id that
    is neither cached nor reachable (offline via ``HF_HUB_OFFLINE=1``, no network, or not on
    the hub). Failing takes seconds, never a long network timeout. A directory holding
    :data:`ASSETS_MARKER` resolves to kind ``assets`` (see the module docstring).
    """
    if checkpoint.startswith(RANDOM_PREFIX):
        preset = checkpoint[len(RANDOM_PREFIX) :]
        if preset not in PRESETS:
            raise CheckpointError(
                f"unknown preset {checkpoint!r}; presets are "
                + ", ".join(RANDOM_PREFIX + p for p in PRESETS)
            )
        return Source("random", preset, {})
    path = os.path.expanduser(checkpoint)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, ASSETS_MARKER)):
            origin = _read_assets_marker(path)
            return Source("assets", path, {"local_files_only": True}, origin)
        return Source("dir", path, {"local_files_only": True}, path)
    if _looks_like_path(checkpoint):
        raise CheckpointError(
            f"checkpoint directory {checkpoint!r} does not exist. " + local_copy_hint("HUB_ID")
        )
    return _resolve_hub(checkpoint)


def _resolve_hub(repo_id: str) -> Source:
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # an id the cache layout rejects is handled like any uncached id
        cached = None
    if isinstance(cached, str):
        return Source("hub", repo_id, {"local_files_only": True}, repo_id)
    if _offline():
        raise CheckpointError(
            f"checkpoint {repo_id!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE "
            "is set, so it cannot be downloaded. " + local_copy_hint(repo_id)
        )
    from huggingface_hub import HfApi

    try:
        HfApi().model_info(repo_id, timeout=HUB_PROBE_TIMEOUT_S)
    except Exception as exc:  # network errors, unknown or gated repositories alike
        raise CheckpointError(
            f"checkpoint {repo_id!r} is neither a local directory nor in the Hugging Face cache, "
            f"and the hub cannot provide it ({type(exc).__name__}: {exc}). "
            + local_copy_hint(repo_id)
        ) from exc
    return Source("hub", repo_id, {}, repo_id)


def load_hf_model(
    name: str,
    model_types: tuple[str, ...],
    owner: str,
    load_kwargs: dict[str, Any],
    overrides: dict[str, Any] | None = None,
    weights: bool = True,
    attention: str = "sdpa",
) -> Any:
    """``AutoModel.from_pretrained(name)`` with ``attention`` (``sdpa`` or ``eager``, see
    :data:`ATTENTIONS`) as transformers' attention implementation, in float32 (autocast decides
    the compute precision), after checking the architecture is one of ``model_types`` and
    applying config ``overrides``. Weights the checkpoint lacks are named in a warning; a
    load failure becomes a :class:`CheckpointError` naming the checkpoint.

    ``weights=False`` reads only the architecture config and builds the model from it
    (``AutoModel.from_config``: random weights, or none on the meta device); see
    :func:`reads_weights`."""
    import logging

    import torch
    from transformers import AutoConfig, AutoModel

    try:
        hf_config = AutoConfig.from_pretrained(name, **load_kwargs)
        if hf_config.model_type not in model_types:
            raise CheckpointError(
                f"{name!r} is a {hf_config.model_type!r} checkpoint; {owner} loads "
                f"{', '.join(model_types)}"
            )
        for key, value in (overrides or {}).items():
            setattr(hf_config, key, value)
        if not weights:
            return AutoModel.from_config(
                hf_config, attn_implementation=attention, dtype=torch.float32
            )
        # transformers' own loading bar would interleave with the run's log; loading is quick
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        model, info = AutoModel.from_pretrained(
            name,
            config=hf_config,
            attn_implementation=attention,
            dtype=torch.float32,
            output_loading_info=True,
            **load_kwargs,
        )
    except OSError as exc:
        raise CheckpointError(f"cannot load checkpoint {name!r} for {owner}: {exc}") from exc
    if info.get("missing_keys"):
        logging.getLogger("mmml_encoders_hf").warning(
            "%s provides no weights for %s; transformers initialised them randomly",
            name,
            ", ".join(sorted(info["missing_keys"])),
        )
    return model
