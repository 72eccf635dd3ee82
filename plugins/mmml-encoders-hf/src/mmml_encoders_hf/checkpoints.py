"""Where an encoder's weights come from: ``random:<preset>``, a local directory, or a hub id.

Rules (DESIGN §5): never fall back silently. A hub id is used from the local Hugging Face
cache when it is there; otherwise it is downloaded only when the hub answers within a few
seconds. When it cannot be had (offline, unknown id, no network), :class:`CheckpointError`
says how to bring a local copy.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = [
    "load_hf_model",
    "LANGUAGES",
    "PRESETS",
    "RANDOM_PREFIX",
    "CheckpointError",
    "Source",
    "local_copy_hint",
    "resolve",
]

RANDOM_PREFIX = "random:"
PRESETS = ("tiny", "base")
LANGUAGES = ("en", "zh")
# Seconds the hub gets to answer before we give up; a missing network fails in well under it.
HUB_PROBE_TIMEOUT_S = 8.0


class CheckpointError(OSError):
    """A checkpoint that cannot be loaded; the message says what to do instead."""


@dataclass(frozen=True)
class Source:
    """A resolved checkpoint: ``kind`` is ``random``, ``dir`` or ``hub``; ``name`` is the preset,
    directory or hub id; ``load_kwargs`` go to every ``from_pretrained`` call."""

    kind: str
    name: str
    load_kwargs: dict[str, Any]


def local_copy_hint(checkpoint: str) -> str:
    return (
        "To use a local copy: on a machine with internet access run "
        f"`hf download {checkpoint} --local-dir DIR` (or load it with transformers and call "
        "save_pretrained(DIR) on the model and on its tokenizer / feature extractor), copy DIR "
        "to this machine and pass checkpoint=DIR. For random weights without any download use "
        "checkpoint=random:tiny or checkpoint=random:base."
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
    the hub). Failing takes seconds, never a long network timeout.
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
        return Source("dir", path, {"local_files_only": True})
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
        return Source("hub", repo_id, {"local_files_only": True})
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
    return Source("hub", repo_id, {})


def load_hf_model(
    name: str,
    model_types: tuple[str, ...],
    owner: str,
    load_kwargs: dict[str, Any],
    overrides: dict[str, Any] | None = None,
) -> Any:
    """``AutoModel.from_pretrained(name)`` with SDPA attention in float32 (autocast decides
    the compute precision), after checking the architecture is one of ``model_types`` and
    applying config ``overrides``. Weights the checkpoint lacks are named in a warning; a
    load failure becomes a :class:`CheckpointError` naming the checkpoint."""
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
        model, info = AutoModel.from_pretrained(
            name,
            config=hf_config,
            attn_implementation="sdpa",
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
