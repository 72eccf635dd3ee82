"""Plugin scaffolds: what ``mmml-bench new-plugin NAME --kind KIND`` writes.

A scaffold is a complete plugin distribution ``mmml-<kind>-<name>`` (import package
``mmml_<kind>_<name>``, registry name ``NAME``): ``pyproject.toml`` with its entry point and a
``test`` extra, ``README.md``, a small working component of that kind and its contract test.

The templates ship inside mmml-core's wheel, under ``mmml_core/scaffold/templates/`` (package
data): one folder per template (``common``, ``fusion``, ``head``, ``loss``, ``encoder-audio``,
``encoder-text``) of files ending in ``.tmpl``, so they are neither imported nor linted as
code. Rendering is plain replacement of ``{{placeholder}}`` markers; a marker left over is an
error, never output. This module does not import torch.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = [
    "ENCODER_MODALITIES",
    "KINDS",
    "Plugin",
    "ScaffoldError",
    "check_name",
    "plan",
    "render",
    "write",
]

KINDS: tuple[str, ...] = ("encoder", "fusion", "head", "loss")
#: modalities with an encoder template (the contract's raw items exist for these)
ENCODER_MODALITIES: tuple[str, ...] = ("audio", "text")
NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
MAX_NAME = 40
#: names mmml itself gives a meaning to, per kind
RESERVED: dict[str, frozenset[str]] = {"fusion": frozenset({"none"})}

_MARKER = re.compile(r"\{\{[a-z_]+\}\}")


class ScaffoldError(ValueError):
    """A name, kind, modality or destination that cannot be scaffolded (one-line message)."""


@dataclass(frozen=True)
class Plugin:
    """What a scaffold is called: its distribution, package, module and class."""

    kind: str
    name: str
    modality: str | None  # encoders only
    dest: Path

    @property
    def distribution(self) -> str:
        return f"mmml-{self.kind}-{self.name.replace('_', '-')}"

    @property
    def package(self) -> str:
        return f"mmml_{self.kind}_{self.name}"

    @property
    def module(self) -> str:
        return self.kind  # fusion.py, encoder.py, head.py, loss.py

    @property
    def class_name(self) -> str:
        return "".join(p.capitalize() for p in self.name.split("_")) + self.kind.capitalize()

    @property
    def group(self) -> str:
        from mmml_core.registry import GROUPS

        return GROUPS[self.kind]  # mmml_core.fusions, ... mmml_core.losses

    @property
    def entry_point(self) -> str:
        return f"{self.package}.{self.module}:{self.class_name}"

    @property
    def template(self) -> str:
        return f"encoder-{self.modality}" if self.kind == "encoder" else self.kind

    @property
    def files(self) -> dict[str, str]:
        """Output path (relative to ``dest``) -> template (``folder/file.tmpl``)."""
        src = f"src/{self.package}"
        return {
            "pyproject.toml": "common/pyproject.toml.tmpl",
            "README.md": "common/README.md.tmpl",
            ".gitignore": "common/gitignore.tmpl",
            f"{src}/__init__.py": "common/__init__.py.tmpl",
            f"{src}/py.typed": "common/py.typed.tmpl",
            f"{src}/{self.module}.py": f"{self.template}/module.py.tmpl",
            f"tests/test_{self.name}.py": f"{self.template}/test.py.tmpl",
        }


# What the README says per template: one sentence about the component, and how to use it.
_ABOUT = {
    "fusion": "Each modality's pooled encoder vector is projected to a common width and scaled, "
    "feature by feature, by a learned gate in (0, 1) computed from the same vector; the gated "
    "projections are summed over the modalities.",
    "encoder-audio": "A small audio encoder over raw 16 kHz samples: each 25 ms frame's log "
    "energy and learned filterbank responses, projected and passed through masked residual "
    "temporal convolutions, so padding a clip in a batch changes none of its outputs. No "
    "download, no pretrained weights.",
    "encoder-text": "A small byte-level text encoder: UTF-8 bytes, embedded and passed through "
    "masked residual temporal convolutions, so padding a text in a batch changes none of its "
    "outputs. No tokenizer, no download.",
    "head": "A small MLP head: dropout, linear and GELU layers, then one output per utterance.",
    "loss": "The Huber (smooth L1) loss, summed over the prediction heads with per-head weights "
    "like mmml's built-in `l1` and `mse`: quadratic for errors below `delta`, linear above.",
}
_TRAIN, _CHECK = "train it on the demo set", "a config field, checked only"
_USAGE: dict[str, list[tuple[str, str]]] = {
    "fusion": [
        ("mmml-bench --fusion {{name}} --seeds 1", _TRAIN),
        ("mmml-bench --fusion {{name}} fusion.dim=32 --dry-run", _CHECK),
    ],
    "encoder-audio": [
        ("mmml-bench --encoder audio={{name}} --seeds 1", _TRAIN),
        ("mmml-bench --encoder audio={{name}} audio.dim=32 --dry-run", _CHECK),
    ],
    "encoder-text": [
        ("mmml-bench --encoder text={{name}} --seeds 1", _TRAIN),
        ("mmml-bench --encoder text={{name}} text.dim=32 --dry-run", _CHECK),
    ],
    "head": [
        (
            "printf '[model]\\nhead = \"{{name}}\"\\n' > {{name}}.toml",
            'the fused head (subnet heads: subnet_head = "{{name}}")',
        ),
        ("mmml-bench --config {{name}}.toml --seeds 1", _TRAIN),
        ("mmml-bench --config {{name}}.toml head.hidden=32 --dry-run", _CHECK),
    ],
    "loss": [
        ("mmml-bench --loss {{name}} --seeds 1", "train with it on the demo set"),
        ("mmml-bench --loss {{name}} loss.delta=0.5 --dry-run", _CHECK),
    ],
}
_DEPENDENCIES = {"encoder-audio": ["numpy>=1.24"]}


def check_name(name: str) -> None:
    """Raise :class:`ScaffoldError` unless ``name`` can be a registry name, a distribution
    suffix and a package suffix at once."""
    if not NAME_RE.fullmatch(name) or len(name) > MAX_NAME:
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use lowercase letters, digits and single "
            f"underscores, starting with a letter, at most {MAX_NAME} characters "
            "(e.g. gated or gated_sum)"
        )


def plan(
    kind: str, name: str, dest: str | Path | None = None, modality: str | None = None
) -> Plugin:
    """Check the request and name everything; ``dest`` defaults to ``./mmml-<kind>-<name>``."""
    if kind not in KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
    check_name(name)
    if name in RESERVED.get(kind, ()):
        raise ScaffoldError(f"{name!r} is reserved for {kind}s by mmml; choose another name")
    if kind == "encoder":
        modality = modality or "audio"
        if modality not in ENCODER_MODALITIES:
            raise ScaffoldError(
                f"no encoder template for modality {modality!r}; templates exist for "
                f"{', '.join(ENCODER_MODALITIES)} (start from audio for any 1-D signal and "
                "change `modality`)"
            )
    elif modality is not None:
        raise ScaffoldError("--modality applies to --kind encoder only")
    probe = Plugin(kind, name, modality, Path("."))
    return Plugin(kind, name, modality, Path(dest) if dest else Path(probe.distribution))


def _placeholders(plugin: Plugin) -> dict[str, str]:
    deps = ["mmml-core" + _core_range(), "torch>=2.4", *_DEPENDENCIES.get(plugin.template, [])]
    flag = f" --modality {plugin.modality}" if plugin.kind == "encoder" else ""
    values = {
        "name": plugin.name,
        "kind": plugin.kind,
        "modality": plugin.modality or "",
        "distribution": plugin.distribution,
        "package": plugin.package,
        "module": plugin.module,
        "class": plugin.class_name,
        "group": plugin.group,
        "dependencies": ", ".join(f'"{d}"' for d in deps),
        "command": f"mmml-bench new-plugin {plugin.name} --kind {plugin.kind}{flag}",
        "about": _ABOUT[plugin.template],
        "contract": f"{plugin.kind.capitalize()}Contract",
    }
    lines = [(c.replace("{{name}}", plugin.name), h) for c, h in _USAGE[plugin.template]]
    width = max(len(c) for c, _ in lines) + 2
    values["usage"] = "\n".join(
        f"{c:<{width}}# {h.replace('{{name}}', plugin.name)}" for c, h in lines
    )
    values["about"] = textwrap.fill(values["about"], width=100)
    return values


def _core_range() -> str:
    """``>=X.Y,<X.Y+1`` around the running mmml-core (``>=0.1,<0.2`` from a source tree)."""
    from mmml_core import __version__

    parts = [int(p) for p in re.findall(r"\d+", __version__)[:2]] + [0, 0]
    major, minor = parts[0], parts[1]
    if (major, minor) == (0, 0):
        major, minor = 0, 1
    if major == 0:
        return f">={major}.{minor},<{major}.{minor + 1}"
    return f">={major}.{minor},<{major + 1}"


def _template_text(template: str) -> str:
    return (
        resources.files(__name__)
        .joinpath("templates", *template.split("/"))
        .read_text(encoding="utf-8")
    )


def render(plugin: Plugin) -> dict[str, str]:
    """Output path (relative to ``plugin.dest``) -> file text."""
    values = _placeholders(plugin)
    out = {}
    for path, template in plugin.files.items():
        text = _template_text(template)
        for key, value in values.items():
            text = text.replace("{{" + key + "}}", value)
        left = _MARKER.search(text)
        if left:  # a template bug, not a user error
            raise RuntimeError(f"template {template} has an unknown marker {left.group()}")
        out[path] = text
    return out


def write(
    kind: str, name: str, dest: str | Path | None = None, modality: str | None = None
) -> Plugin:
    """Write the scaffold into ``dest`` (which must not exist, or be an empty folder)."""
    plugin = plan(kind, name, dest, modality)
    target = plugin.dest
    if target.exists() and not target.is_dir():
        raise ScaffoldError(f"{target} exists and is not a folder")
    if target.is_dir() and any(target.iterdir()):
        raise ScaffoldError(
            f"{target} already exists and is not empty; choose another --dest or remove it"
        )
    files = render(plugin)
    for rel, text in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return plugin
