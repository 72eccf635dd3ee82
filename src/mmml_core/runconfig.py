"""The run configuration: typed sections, layers merged in one place, every problem at once.

A run is configured in layers, lowest first:

1. built-in defaults (:data:`BUILTIN_DEFAULTS`);
2. the dataset kind's defaults (``defaults`` of the kind's class in the ``dataset`` registry:
   the bundled demo set brings its tiny encoders and training settings from there);
2b. the profile's layer (``profile = "paper" | "authors"``, :mod:`mmml_core.profiles`):
   where the paper and its authors' code differ, which one the run follows;
3. a preset (``--preset``) and/or a configuration file (``--config``, TOML or JSON);
4. command-line flags (``--encoder``, ``--fusion``, ``--dataset``, ...);
5. ``key=value`` overrides (``train.lr=1e-4``, ``fusion.layers=2``, ``text.checkpoint=DIR``).

Every layer has the same shape (the shape of a configuration file)::

    seeds = [1, 11, 111]
    profile = "paper"   # or "authors"
    [data]    dataset, kind, max_audio_seconds, max_items, recase, skip_unusable,
              text_context, audio_context, context_order, empty_context
    [model]   encoders = {MODALITY = {name, config}}, fusion = {name, config} | "none",
              head, subnet_head, heads = ["M", "T", "A"], modalities = ["text", "audio"],
              context_gate = true, frozen = ["text"]
    [loss]    name, config
    [train]   the fields of :class:`mmml_core.engine.TrainConfig`
    [optim]   GROUP = {lr, weight_decay}: one parameter group's settings, GROUP a modality
              (its encoder), fusion or heads (:mod:`mmml_core.optim`)
    [output]  dir

A component is ``{name, config}`` or just its name. A higher layer that names a *different*
component replaces the lower one with its config; naming the same component again keeps the
config below and changes only the keys it gives.

:func:`resolve` merges the layers (:func:`merge_layers`, which remembers which layer set each
key), checks every section and every component's keys, and raises one
:class:`ConfigErrors` listing every problem, each naming its key and the layer it came from.
What needs the components themselves (widths, heads, checkpoints) and the data is checked by
:mod:`mmml_core.validate`. This module imports no torch.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from mmml_core import registry
from mmml_core.config import ConfigError, check_keys, describe_fields, parse_value

__all__ = [
    "BUILTIN_DEFAULTS",
    "PRESETS_DIR",
    "SECTIONS",
    "ComponentSpec",
    "ConfigErrors",
    "DataConfig",
    "Layer",
    "ModelConfig",
    "OutputConfig",
    "Problem",
    "RunConfig",
    "component_problems",
    "flags_layer",
    "load_config_file",
    "merge_layers",
    "override_layer",
    "preset_path",
    "resolve",
    "user_key",
]

PRESETS_DIR = Path(__file__).with_name("presets")
SECTIONS: tuple[str, ...] = (
    "profile",
    "data",
    "model",
    "loss",
    "train",
    "optim",
    "seeds",
    "output",
)
_MODEL_KEYS = (
    "encoders",
    "fusion",
    "head",
    "subnet_head",
    "heads",
    "modalities",
    "context_gate",
    "frozen",
)
#: The model keys that are plain settings (``model.KEY=value``, typed by :class:`_ModelKeys`)
_MODEL_SETTINGS = ("context_gate", "frozen")
_ROLES = ("fusion", "head", "subnet_head")  # model components besides the encoders
# sections that neither the model nor the data depends on (problem keys start with them)
_LATER_SECTIONS = frozenset({"train", "optim", "loss", "seeds", "output"})
#: What fills a component field no layer sets: (layer name, role -> {field: value}), highest
#: first (the profile, then the dataset kind).
FieldSources = list[tuple[str, dict[str, Any]]]

#: The lowest layer. Encoders are not named here: each dataset kind names the default encoder
#: per modality for its language (``default_encoders``).
BUILTIN_DEFAULTS: dict[str, Any] = {
    "data": {"dataset": "demo"},
    "model": {
        "fusion": {"name": "cross_attn"},  # the MMML fusion network (paper section 3.2)
        "head": {"name": "mlp"},  # the paper's three fully connected layers
        "subnet_head": {"name": "linear"},  # Dropout -> Linear on each encoder's pooled vector
    },
    "loss": {"name": "l1"},  # the authors' code trains with L1 (the paper's text says L2)
    "seeds": [1, 11, 111],  # the paper averages 3 runs
}


# -- problems -----------------------------------------------------------------------------------


@dataclass
class Problem:
    """One thing wrong with a run: the user-facing ``key`` (``fusion.heads``, ``train.lr``,
    ``data.dataset``), what is wrong, and the layer that set the key (``None`` when no
    layer did, e.g. a missing value)."""

    key: str
    message: str
    origin: str | None = None

    def __str__(self) -> str:
        where = f" [set by {self.origin}]" if self.origin else ""
        return f"{self.key}{where}: {self.message}"


class ConfigErrors(ConfigError):
    """Every problem found in a run's configuration (or data), reported together."""

    def __init__(self, problems: Sequence[Problem], partial: RunConfig | None = None) -> None:
        self.problems = list(problems)
        # where only sections the model and data do not need are wrong (train, loss, seeds,
        # output), the rest of the configuration, so that its checks can still run
        self.partial = partial
        n = len(self.problems)
        head = "1 problem" if n == 1 else f"{n} problems"
        lines = [f"{head} in the run configuration:"]
        for p in self.problems:
            text = str(p).replace("\n", "\n      ")
            lines.append(f"  - {text}")
        super().__init__("\n".join(lines))


# -- typed sections ---------------------------------------------------------------------------


@dataclass
class ComponentSpec:
    """A component by registry name, with the keyword config it is created with."""

    name: str
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def coerce(cls, value: Any) -> ComponentSpec:
        """From a spec, a bare name, or ``{name, config}``."""
        if isinstance(value, ComponentSpec):
            return value
        if isinstance(value, str):
            return cls(value)
        if isinstance(value, Mapping):
            unknown = set(value) - {"name", "config"}
            if unknown or "name" not in value or not isinstance(value["name"], str):
                raise ValueError(
                    f"a component is {{name, config}} or a name, got {json.dumps(value)}"
                )
            config = value.get("config") or {}
            if not isinstance(config, Mapping):
                raise ValueError(f"a component's config is a table of keys, got {config!r}")
            return cls(value["name"], dict(config))
        raise ValueError(f"cannot read a component from {value!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": copy.deepcopy(self.config)}


#: ``data.recase`` values (see :class:`DataConfig`).
RECASE_MODES: tuple[str, ...] = ("auto", "on", "off")


@dataclass
class DataConfig:
    # "demo" (the bundled set, no download) or a dataset root in the MMSA layout
    dataset: str = "demo"
    # a registered dataset kind (mmml-bench list dataset); required with a path
    kind: str | None = None
    # the authors' cut: the first 6 s of each clip
    max_audio_seconds: float | None = 6.0
    # the first N rows of each split only (smoke runs); None = every row
    max_items: int | None = None
    # texts re-cased as text[0] + text[1:].lower(), the authors' fix for the upper-case MOSI
    # and MOSEI transcripts (RoBERTa is cased: "A LOT OF SAD PARTS" is not what it read):
    # auto = only where the kind's language is English and the transcripts are upper case
    # (at least 90% of the texts with cased letters have no lower-case letter); on = every
    # text, whatever its case (the authors' English pipeline); off = texts as written
    recase: str = "auto"
    # drop rows whose audio is missing, empty or unreadable instead of refusing the dataset
    # (six MOSEI clips have no usable audio); the run lists the dropped rows. Off by
    # default: a row is never dropped unless asked. Schema problems stay errors
    skip_unusable: bool = False
    # conversational context (docs/data.md#context): each item also reads the texts / clips
    # of this many earlier utterances of its video in its split; 0 = none. With any window
    # set, every modality of the model needs one, and the heads read current and context
    text_context: int = 0
    audio_context: int = 0
    # the order "earlier" means: clip = clip ids in natural order (the authors' sort);
    # file = the rows' order in label.csv
    context_order: str = "clip"
    # an item without an earlier utterance: mask = its context features are zeros (the
    # encoders do not run on it); encode = its encoders read an empty input (an empty text,
    # an empty clip), the authors' code's behaviour (profile authors)
    empty_context: str = "mask"
    # where the video modality's files are, under the dataset root: auto = frames/ (written
    # by mmml-bench extract-frames) when that folder exists, else Raw/ (the videos, decoded
    # every epoch); any other value names the folder
    video_dir: str = "auto"

    def __post_init__(self) -> None:
        if self.max_audio_seconds is not None and not self.max_audio_seconds > 0:
            raise ValueError(f"max_audio_seconds must be > 0 or none, got {self.max_audio_seconds}")
        if self.max_items is not None and self.max_items < 1:
            raise ValueError(f"max_items must be >= 1 or none, got {self.max_items}")
        if self.recase not in RECASE_MODES:
            raise ValueError(
                f"recase must be one of {', '.join(RECASE_MODES)}, got {self.recase!r}"
            )
        if not isinstance(self.skip_unusable, bool):
            raise ValueError(f"skip_unusable must be true or false, got {self.skip_unusable!r}")
        for name in ("text_context", "audio_context"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
        if self.context_order not in ("clip", "file"):
            raise ValueError(f"context_order must be clip or file, got {self.context_order!r}")
        if self.empty_context not in ("mask", "encode"):
            raise ValueError(f"empty_context must be mask or encode, got {self.empty_context!r}")
        if not isinstance(self.video_dir, str) or not self.video_dir.strip():
            raise ValueError(f"video_dir must be auto or a folder name, got {self.video_dir!r}")

    @property
    def context(self) -> dict[str, int]:
        """modality -> context window, only the windows set (> 0)."""
        windows = {"text": self.text_context, "audio": self.audio_context}
        return {m: w for m, w in windows.items() if w}


@dataclass
class _ModelKeys:
    """The model keys that are plain settings (``model.KEY``), for typing overrides."""

    context_gate: bool  # RunConfig.context_gate
    frozen: tuple[str, ...]  # ModelConfig.frozen: modalities whose encoders are frozen


@dataclass
class _GroupKeys:
    """The keys of one parameter group (``optim.GROUP.KEY``), for typing overrides."""

    lr: float  # this group's learning rate
    weight_decay: float  # this group's AdamW weight decay


@dataclass
class OutputConfig:
    # the run folder; None = runs/<dataset>-<fusion>-<date>-<time>, unique per run
    dir: str | None = None


@dataclass
class ModelConfig:
    """What to build: encoders per modality, a fusion (None for one modality), the fused head,
    the subnet head (one per modality) and the heads that are trained."""

    encoders: dict[str, ComponentSpec]
    fusion: ComponentSpec | None
    head: ComponentSpec
    subnet_head: ComponentSpec
    heads: list[str]
    subnet_heads: dict[str, str]  # modality -> head name (T, A, ...)
    # conversational context on (data.text_context / data.audio_context): the fusion also
    # runs on the context pair, the heads read current and context features
    context: bool = False
    empty_context: str = "mask"  # data.empty_context
    # a context model's features reach the heads through learned gates (model.ContextGate)
    context_gate: bool = True
    # modalities whose encoders are frozen: no gradients, no optimizer group, eval mode;
    # their outputs are cached with train.feature_cache=auto (mmml_core.cache)
    frozen: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "encoders": {m: s.to_dict() for m, s in self.encoders.items()},
            "fusion": None if self.fusion is None else self.fusion.to_dict(),
            "head": self.head.to_dict(),
            "subnet_head": self.subnet_head.to_dict(),
            "heads": list(self.heads),
            "context": self.context,
            "empty_context": self.empty_context,
            "context_gate": self.context_gate,
            "frozen": list(self.frozen),
        }


@dataclass
class RunConfig:
    data: DataConfig
    model: ModelConfig
    loss: ComponentSpec  # (None only in ConfigErrors.partial)
    train: Any  # mmml_core.engine.TrainConfig (None only in ConfigErrors.partial)
    seeds: list[int]
    output: OutputConfig
    scheme: str  # the dataset kind's metric scheme
    language: str  # the dataset kind's text language
    origins: dict[str, str] = field(default_factory=dict, compare=False)  # key -> layer
    # parameter group -> its resolved settings (mmml_core.optim.OptimGroup)
    optim: dict[str, Any] = field(default_factory=dict)
    profile: str = "paper"  # mmml_core.profiles: paper | authors

    def to_dict(self) -> dict[str, Any]:
        """The resolved configuration as a configuration file (every layer folded in)."""
        return {
            "profile": self.profile,
            "data": dataclasses.asdict(self.data),
            "model": self.model.to_dict(),
            "loss": self.loss.to_dict(),
            "train": dataclasses.asdict(self.train),
            "optim": {g: o.to_dict() for g, o in self.optim.items()},
            "seeds": list(self.seeds),
            "output": dataclasses.asdict(self.output),
        }


# -- layers -------------------------------------------------------------------------------------


@dataclass
class Layer:
    """One configuration layer: its data, its name in messages (``"preset 'demo'"``), and
    optionally a finer name per key (the flag or the ``key=value`` item that set it)."""

    name: str
    data: Mapping[str, Any]
    labels: dict[str, str] = field(default_factory=dict)

    def label(self, path: str) -> str:
        return self.labels.get(path, self.name)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML run configuration (see the module docstring for its layout)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # OSError, UnicodeDecodeError, TOML and JSON errors alike
        raise ConfigError(f"{path}: cannot read it as a run configuration ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a run configuration is a table of sections")
    return data


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.toml"
    if not path.is_file():
        names = sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))
        raise ConfigError(f"no preset {name!r}; presets: {', '.join(names)}")
    return path


def _component_or_none(value: Any) -> dict[str, Any] | None:
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    spec = ComponentSpec.coerce(value)
    out: dict[str, Any] = {"name": spec.name}
    if isinstance(value, Mapping) and "config" in value:
        out["config"] = dict(spec.config)
    return out


class _Merger:
    """Folds layers into one plain configuration and remembers the layer of every key."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.origins: dict[str, str] = {}
        self.problems: list[Problem] = []

    def _set(self, path: str, label: str) -> None:
        self.origins[path] = label

    def _drop(self, prefix: str) -> None:
        for key in [k for k in self.origins if k == prefix or k.startswith(prefix + ".")]:
            del self.origins[key]

    def add(self, layer: Layer) -> None:
        if not isinstance(layer.data, Mapping):
            self.problems.append(Problem("(layer)", "a layer is a table of sections", layer.name))
            return
        for section, value in layer.data.items():
            if section not in SECTIONS:
                close = difflib.get_close_matches(section, SECTIONS, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                self.problems.append(
                    Problem(
                        str(section),
                        f"unknown section{hint}; sections are {', '.join(SECTIONS)}",
                        layer.name,
                    )
                )
            elif section in ("seeds", "profile"):
                self.data[section] = copy.deepcopy(value)
                self._set(section, layer.label(section))
            elif section == "loss":
                self._component(self.data, "loss", "loss", value, layer)
            elif section == "model":
                self._model(value, layer)
            elif section == "optim":
                self._groups(value, layer)
            else:
                self._table(section, value, layer)

    def _table(self, section: str, value: Any, layer: Layer) -> None:
        if not isinstance(value, Mapping):
            self.problems.append(Problem(section, "expected a table of keys", layer.name))
            return
        target = self.data.setdefault(section, {})
        for key, v in value.items():
            target[key] = copy.deepcopy(v)
            self._set(f"{section}.{key}", layer.label(f"{section}.{key}"))

    def _groups(self, value: Any, layer: Layer) -> None:
        """``optim``: a table of groups, each a table of fields merged key by key."""
        if not isinstance(value, Mapping) or not all(
            isinstance(v, Mapping) for v in value.values()
        ):
            self.problems.append(
                Problem("optim", "expected a table of groups, each {lr, weight_decay}", layer.name)
            )
            return
        target = self.data.setdefault("optim", {})
        for group, fields in value.items():
            for key, v in fields.items():
                target.setdefault(group, {})[key] = copy.deepcopy(v)
                self._set(f"optim.{group}.{key}", layer.label(f"optim.{group}.{key}"))

    def _model(self, value: Any, layer: Layer) -> None:
        if not isinstance(value, Mapping):
            self.problems.append(Problem("model", "expected a table of keys", layer.name))
            return
        model = self.data.setdefault("model", {})
        for key, v in value.items():
            path = f"model.{key}"
            if key == "encoders":
                if not isinstance(v, Mapping):
                    self.problems.append(
                        Problem("model.encoders", "expected modality = encoder", layer.name)
                    )
                    continue
                encoders = model.setdefault("encoders", {})
                for modality, spec in v.items():
                    self._component(encoders, modality, f"{path}.{modality}", spec, layer)
            elif key in _ROLES:
                self._component(model, key, path, v, layer)
            elif key in ("heads", "modalities", *_MODEL_SETTINGS):
                model[key] = copy.deepcopy(v)
                self._set(path, layer.label(path))
            else:
                self.problems.append(
                    Problem(
                        path,
                        f"unknown key; model keys are {', '.join(_MODEL_KEYS)}",
                        layer.name,
                    )
                )

    def _component(
        self, container: dict[str, Any], key: str, path: str, value: Any, layer: Layer
    ) -> None:
        try:
            spec = _component_or_none(value)
        except ValueError as exc:
            self.problems.append(Problem(user_key(path), str(exc), layer.label(path)))
            return
        old = container.get(key)
        if spec is None:
            container[key] = None
            self._drop(path)
            self._set(path, layer.label(path))
            return
        if old is None or old["name"] != spec["name"]:
            container[key] = {"name": spec["name"], "config": {}}
            self._drop(path)
        self._set(f"{path}.name", layer.label(f"{path}.name"))
        config = container[key]["config"]
        for k, v in spec.get("config", {}).items():
            config[k] = copy.deepcopy(v)
            self._set(f"{path}.config.{k}", layer.label(f"{path}.config.{k}"))


def merge_layers(layers: Sequence[Layer]) -> tuple[dict[str, Any], dict[str, str], list[Problem]]:
    """Fold ``layers`` (lowest first): ``(merged, origins, problems)``; ``origins`` maps each
    internal key path (``model.fusion.config.heads``) to the name of the layer that set it."""
    merger = _Merger()
    for layer in layers:
        merger.add(layer)
    return merger.data, merger.origins, merger.problems


def user_key(path: str) -> str:
    """The key a user writes for an internal path: ``model.fusion.config.heads`` ->
    ``fusion.heads``, ``model.encoders.audio.config.checkpoint`` -> ``audio.checkpoint``,
    ``model.encoders.audio.name`` -> ``audio``, ``loss.config.weights`` -> ``loss.weights``."""
    parts = path.split(".")
    if parts[:2] == ["model", "encoders"] and len(parts) >= 3:
        parts = parts[2:]
    elif parts[0] == "model" and len(parts) >= 2:
        parts = parts[1:]
    parts = [p for p in parts if p not in ("config", "name")]
    return ".".join(parts)


def _origin(origins: Mapping[str, str], *paths: str) -> str | None:
    for path in paths:
        if path in origins:
            return origins[path]
    return None


# -- command line: flags and key=value ----------------------------------------------------------


def flags_layer(
    *,
    dataset: str | None = None,
    kind: str | None = None,
    seeds: str | None = None,
    device: str | None = None,
    loss: str | None = None,
    fusion: str | None = None,
    heads: str | None = None,
    modalities: str | None = None,
    encoders: Sequence[str] = (),
    out: str | None = None,
    profile: str | None = None,
) -> tuple[Layer, list[Problem]]:
    """The layer of the training command's flags (each key labelled with its flag)."""
    data: dict[str, Any] = {}
    labels: dict[str, str] = {}
    problems: list[Problem] = []

    def put(path: str, value: Any, flag: str) -> None:
        node = data
        *parents, last = path.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
        labels[path] = flag

    if profile:
        put("profile", profile, f"--profile {profile}")
    if dataset:
        put("data.dataset", dataset, f"--dataset {dataset}")
    if kind:
        put("data.kind", kind, f"--dataset-kind {kind}")
    if seeds:
        try:
            put("seeds", [int(s) for s in seeds.split(",") if s.strip()], f"--seeds {seeds}")
        except ValueError:
            problems.append(Problem("seeds", f"not a list of integers: {seeds!r}", "--seeds"))
    if device:
        put("train.device", device, f"--device {device}")
    if loss:
        put("loss", {"name": loss}, f"--loss {loss}")
        labels["loss.name"] = f"--loss {loss}"
    if fusion:
        put("model.fusion", None if fusion.lower() == "none" else {"name": fusion}, "--fusion")
        labels["model.fusion.name"] = f"--fusion {fusion}"
        labels["model.fusion"] = f"--fusion {fusion}"
    if heads:
        put("model.heads", [h.strip() for h in heads.split(",") if h.strip()], f"--heads {heads}")
    if modalities:
        mods = [m.strip() for m in modalities.split(",") if m.strip()]
        put("model.modalities", mods, f"--modalities {modalities}")
    for item in encoders:
        config: dict[str, Any] = {}
        if "=" in item:
            modality, name = (s.strip() for s in item.split("=", 1))
            if name not in registry.list("encoder"):
                owner = _model_owner(modality, name)
                if owner is not None:  # --encoder video=resnet18: a model of encoder video
                    name, field = owner
                    config = {field: item.split("=", 1)[1].strip()}
                    labels[f"model.encoders.{modality}.config.{field}"] = f"--encoder {item}"
        else:
            name = item.strip()
            try:
                modality = registry.load("encoder", name).modality
            except Exception as exc:  # unknown, broken or conflicting: reported with the flag
                problems.append(Problem("--encoder", _load_error("encoder", name, exc)))
                continue
        spec: dict[str, Any] = {"name": name}
        if config:
            spec["config"] = config
        put(f"model.encoders.{modality}", spec, f"--encoder {item}")
        labels[f"model.encoders.{modality}.name"] = f"--encoder {item}"
    if out:
        put("output.dir", out, f"--out {out}")
    return Layer("command-line flags", data, labels), problems


def override_layer(items: Sequence[str], below: Sequence[Layer]) -> tuple[Layer, list[Problem]]:
    """The layer of ``key=value`` overrides, each value typed by the field it names.

    Keys: ``profile``, ``train.FIELD``, ``data.FIELD``, ``output.FIELD``, ``seeds``,
    ``MODALITY.FIELD``
    (that modality's encoder, also ``encoder.MODALITY.FIELD``), ``fusion.FIELD``,
    ``head.FIELD``, ``subnet_head.FIELD``, ``loss.FIELD``. ``below`` are the lower layers
    (they name the components whose fields are meant)."""
    data: dict[str, Any] = {}
    labels: dict[str, str] = {}
    problems: list[Problem] = []
    for item in items:
        if "=" not in item:
            problems.append(Problem(item, "expected key=value", "key=value overrides"))
            continue
        key, text = (s.strip() for s in item.split("=", 1))
        base = Layer("built-in defaults", BUILTIN_DEFAULTS)
        merged, _, _ = merge_layers([base, *below, Layer("", data)])
        try:
            path, value, component = _parse_override(key, text, merged)
        except (ConfigError, ValueError, KeyError) as exc:
            problems.append(Problem(key, str(exc), item))
            continue
        node = data
        parts = path.split(".")
        for p in parts[:-1]:
            nxt = node.get(p)
            if not isinstance(nxt, dict):
                nxt = node[p] = {}
            node = nxt
        node[parts[-1]] = value
        if component is not None:  # the component the key belongs to, by its current name
            owner_path, owner_name = component
            _lookup(data, owner_path).setdefault("name", owner_name)
        labels[path] = item
    return Layer("key=value overrides", data, labels), problems


def _lookup(merged: Mapping[str, Any], path: str) -> Any:
    node: Any = merged
    for p in path.split("."):
        node = node[p]
    return node


def _parse_override(
    key: str, text: str, merged: Mapping[str, Any]
) -> tuple[str, Any, tuple[str, str] | None]:
    """``(path, typed value, (component path, component name) or None)``."""
    from mmml_core.engine import TrainConfig

    parts = key.split(".")
    if parts[0] == "encoder" and len(parts) == 3:
        parts = parts[1:]
    head, rest = parts[0], ".".join(parts[1:])
    sections = {"train": TrainConfig, "data": DataConfig, "output": OutputConfig}
    if head == "profile" and not rest:
        return "profile", text, None
    if head == "seeds" and not rest:
        try:
            return "seeds", [int(s) for s in text.replace(" ", "").split(",") if s], None
        except ValueError as exc:
            raise ConfigError(f"seeds={text!r} is not a list of integers") from exc
    if head in sections and rest:
        return f"{head}.{rest}", parse_value(sections[head], rest, text, head), None
    if head == "optim":
        if len(parts) != 3:
            raise ConfigError(
                f"{key!r}: optimizer keys are optim.GROUP.lr and optim.GROUP.weight_decay, GROUP "
                "a modality (its encoder), fusion or heads"
            )
        return key, parse_value(_GroupKeys, parts[2], text, f"optim.{parts[1]}"), None
    if head == "model" and rest in _MODEL_SETTINGS:  # the model keys that are plain settings
        value = parse_value(_ModelKeys, rest, text, "model")
        if rest == "frozen":  # a list in the merged layers, as a configuration file gives it
            value = [m.strip() for m in value if m.strip()]
        return key, value, None
    model = merged.get("model", {})
    if head in _ROLES and rest:
        spec = model.get(head)
        if spec is None:
            raise ConfigError(f"this run has no {head} (fusion none)")
        kind = "fusion" if head == "fusion" else "head"
        cls = _config_class(kind, spec["name"])
        value = parse_value(cls, rest, text, f"{kind} {spec['name']!r}")
        return f"model.{head}.config.{rest}", value, (f"model.{head}", spec["name"])
    if head == "loss" and rest:
        spec = merged.get("loss") or {"name": "l1"}
        cls = _config_class("loss", spec["name"])
        value = parse_value(cls, rest, text, f"loss {spec['name']!r}")
        return f"loss.config.{rest}", value, ("loss", spec["name"])
    if rest and "." not in rest:
        encoders = model.get("encoders") or {}
        name = (encoders.get(head) or {}).get("name") or _default_encoder(merged, head)
        if name:
            cls = _config_class("encoder", name)
            value = parse_value(cls, rest, text, f"encoder {name!r} ({head})")
            return f"model.encoders.{head}.config.{rest}", value, (f"model.encoders.{head}", name)
    from mmml_core.engine import TrainConfig as _T

    raise ConfigError(
        f"unknown key {key!r}. Keys are profile, train.FIELD, data.FIELD, output.FIELD, seeds, "
        "MODALITY.FIELD (e.g. text.checkpoint, audio.checkpoint), fusion.FIELD, head.FIELD, "
        "subnet_head.FIELD, loss.FIELD, optim.GROUP.lr, optim.GROUP.weight_decay, "
        "model.context_gate, model.frozen."
        f"\ntrain fields:\n{describe_fields(_T)}\n"
        f"data fields:\n{describe_fields(DataConfig)}"
    )


def _config_class(kind: str, name: str) -> type:
    try:
        return registry.config_class(kind, name)
    except Exception as exc:
        raise ConfigError(_load_error(kind, name, exc)) from exc


def _kind_name(data: Mapping[str, Any]) -> str | None:
    kind = data.get("kind")
    if kind is None and data.get("dataset", "demo") == "demo":
        return "demo"
    return kind


def _default_encoder(merged: Mapping[str, Any], modality: str) -> str | None:
    kind = _kind_name(merged.get("data", {}))
    if not kind:
        return None
    try:
        cls = registry.load("dataset", kind)
    except Exception:
        return None
    encoders = {**getattr(cls, "optional_encoders", {}), **getattr(cls, "default_encoders", {})}
    return encoders.get(modality)


def _load_error(kind: str, name: str, exc: BaseException) -> str:
    """One line for a component that cannot be loaded by name (unknown, conflict, broken)."""
    if isinstance(exc, (registry.UnknownComponentError, registry.PluginConflictError)):
        return str(exc)
    try:
        info = next(i for i in registry.describe(kind) if i.name == name)
        where = f" (from {info.distribution} {info.version})"
    except Exception:
        where = ""
    return (
        f"{kind} {name!r}{where} is broken: its module fails to import: {type(exc).__name__}: {exc}"
    )


# -- resolution ---------------------------------------------------------------------------------


def component_problems(
    cls: type,
    values: Mapping[str, Any],
    role: str,
    path: str,
    origins: Mapping[str, str],
    filled: Mapping[str, Any] | None = None,
    key_path: str = "{path}.config.{key}",
) -> list[Problem]:
    """Every problem with one component's config values, each blamed on the key that causes it.

    ``filled`` are keys the assembly supplies (a fusion's ``input_dims``, a head's ``in_dim``).
    Each given key is tried alone on top of the defaults (so that several bad keys are each
    reported), then all together (for rules between keys)."""
    filled = dict(filled or {})

    def origin(key: str) -> str | None:
        return origins.get(key_path.format(path=path, key=key))

    names = {f.name for f in dataclasses.fields(cls)}
    problems: list[Problem] = []
    for key in values:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(
                Problem(
                    f"{role}.{key}",
                    f"unknown key{hint}. Valid fields:\n{describe_fields(cls)}",
                    origin(key),
                )
            )
    known = {k: v for k, v in values.items() if k in names and k not in filled}
    if problems:
        return problems
    try:
        check_keys(cls, {**filled, **known}, role)
    except ConfigError as exc:
        return [Problem(role, str(exc), origins.get(f"{path}.name"))]
    for key, value in known.items():
        try:
            cls(**filled, **{key: value})
        except Exception as exc:  # __post_init__ may raise anything on a bad value
            problems.append(Problem(f"{role}.{key}", _message(exc), origin(key)))
    if not problems:
        try:
            cls(**filled, **known)
        except Exception as exc:
            blamed = ", ".join(f"{k} ({origin(k)})" for k in known if origin(k))
            problems.append(
                Problem(
                    role,
                    _message(exc) + (f"; keys set: {blamed}" if blamed else ""),
                    origins.get(f"{path}.name"),
                )
            )
    return problems


def _message(exc: BaseException) -> str:
    if isinstance(exc, TypeError):
        return f"wrong type ({exc})"
    return str(exc)


def _apply_field_defaults(
    cls: type,
    config: dict[str, Any],
    defaults: Mapping[str, Any],
    path: str,
    origins: dict[str, str],
    origin: str,
) -> None:
    """Fill ``defaults`` into ``config`` for fields ``cls`` has and no layer set."""
    names = {f.name for f in dataclasses.fields(cls)}
    for key, value in defaults.items():
        if key in names and key not in config:
            config[key] = copy.deepcopy(value)
            origins[f"{path}.config.{key}"] = origin


def resolve(
    layers: Sequence[Layer | Mapping[str, Any]], modalities: Sequence[str] | None = None
) -> RunConfig:
    """Merge ``layers`` (lowest first, above the built-in and dataset-kind defaults) into a
    checked :class:`RunConfig`; raise :class:`ConfigErrors` with every problem found.

    ``modalities`` (for example ``["text"]``) restricts the run to those modalities, as
    ``--modalities`` does."""
    user = [
        lay if isinstance(lay, Layer) else Layer(f"layer {i + 1}", lay)
        for i, lay in enumerate(layers)
    ]
    if modalities:
        user.append(Layer("--modalities", {"model": {"modalities": list(modalities)}}))
    return _Resolver(user).run()


class _Resolver:
    """One resolution: each step reads the merged layers, records problems, and goes on, so
    that one report holds everything wrong."""

    def __init__(self, user: list[Layer]) -> None:
        self.user = user
        self.base = Layer("built-in defaults", BUILTIN_DEFAULTS)
        self.merged, self.origins, self.problems = merge_layers([self.base, *user])
        self.kind_name: str | None = None
        self.kind_cls: Any = None
        self.field_sources: FieldSources = []
        self.profile = "paper"

    def problem(self, key: str, message: str, origin_path: str | None = None) -> None:
        self.problems.append(Problem(key, message, self.origins.get(origin_path or key)))

    def run(self) -> RunConfig:
        from mmml_core.engine import TrainConfig

        self.kind()
        data = self.data()
        train = _section(
            TrainConfig, self.merged.get("train", {}), "train", self.origins, self.problems
        )
        output = _section(
            OutputConfig, self.merged.get("output", {}), "output", self.origins, self.problems
        )
        model = self.model(data)
        loss = self.loss(model.heads if model else None)
        optim = self.optim(model, train)
        seeds = self.seeds()
        if self.problems and not all(p.key.split(".")[0] in _LATER_SECTIONS for p in self.problems):
            raise ConfigErrors(self.problems)
        assert data is not None and model is not None and self.kind_cls is not None
        cfg = RunConfig(
            data=data,
            model=model,
            loss=loss,
            train=train,
            seeds=seeds,
            output=output,
            scheme=str(self.kind_cls.scheme),
            language=self.language,
            origins=self.origins,
            optim=optim,
            profile=self.profile,
        )
        if self.problems:  # the model and the data can still be checked: say all at once
            raise ConfigErrors(self.problems, partial=cfg)
        return cfg

    # -- the dataset kind and the data section --------------------------------------------------

    @property
    def language(self) -> str:
        return str(getattr(self.kind_cls, "language", "en"))

    @property
    def kind_label(self) -> str:
        return f"dataset kind {self.kind_name!r} defaults"

    def kind(self) -> None:
        """Find the dataset kind and merge again with its defaults as the second layer."""
        data_in = self.merged.get("data", {})
        self.kind_name = _kind_name(data_in)
        if self.kind_name is None:
            kinds = ", ".join(registry.list("dataset"))
            self.problem(
                "data.kind",
                f"the dataset {data_in.get('dataset')!r} needs a kind: one of {kinds} "
                "(--dataset-kind)",
                "data.dataset",
            )
            return
        try:
            self.kind_cls = registry.load("dataset", self.kind_name)
        except Exception as exc:
            self.problem("data.kind", _load_error("dataset", self.kind_name, exc))
            return
        defaults = copy.deepcopy(dict(getattr(self.kind_cls, "defaults", {}) or {}))
        kind_fields = defaults.pop("fields", {})
        layers = [self.base, Layer(self.kind_label, defaults)]
        self.merged, self.origins, self.problems = merge_layers([*layers, *self.user])
        self.field_sources = [(self.kind_label, kind_fields)]
        self.profile_step(layers)

    def profile_step(self, below: list[Layer]) -> None:
        """Insert the profile's layer (:mod:`mmml_core.profiles`) above the dataset kind's
        defaults and merge again; its component fields rank above the kind's."""
        from mmml_core.profiles import DEFAULT_PROFILE, PROFILES, profile_layer

        name = self.merged.get("profile", DEFAULT_PROFILE)
        self.profile = str(name) if name in PROFILES else DEFAULT_PROFILE
        fusion = self.merged.get("model", {}).get("fusion")
        layer = profile_layer(
            self.profile,
            kind=self.kind_name,
            language=self.language,
            fusion=fusion.get("name") if isinstance(fusion, Mapping) else None,
            context=any(
                isinstance(v, int) and v > 0
                for k, v in (self.merged.get("data") or {}).items()
                if k in ("text_context", "audio_context")
            ),
        )
        fields = layer.pop("fields", {})
        label = f"profile {self.profile!r}"
        if layer:
            self.merged, self.origins, self.problems = merge_layers(
                [*below, Layer(label, layer), *self.user]
            )
        if name not in PROFILES:
            self.problem("profile", f"unknown profile {name!r}; profiles: {', '.join(PROFILES)}")
        self.field_sources.insert(0, (label, fields))

    def data(self) -> DataConfig | None:
        data = _section(
            DataConfig, self.merged.get("data", {}), "data", self.origins, self.problems
        )
        if data is None:
            return None
        data.kind = self.kind_name
        if (
            self.kind_cls is not None
            and data.dataset == "demo"
            and getattr(self.kind_cls, "needs_path", True)
        ):
            self.problem(
                "data.dataset",
                f"dataset kind {self.kind_name!r} reads a folder: pass --dataset PATH",
                "data.kind",
            )
        self.max_seconds = data.max_audio_seconds
        return data

    # -- the model ------------------------------------------------------------------------------

    def modalities(self, encoders_in: Mapping[str, Any]) -> list[str]:
        """``model.modalities``, else the kind's default encoders' plus any named encoder's."""
        defaults = dict(getattr(self.kind_cls, "default_encoders", {}) or {})
        mods = self.merged.get("model", {}).get("modalities")
        if mods is None:
            mods = list(defaults) + [m for m in encoders_in if m not in defaults]
        mods = [str(m) for m in mods]
        for m in encoders_in:
            if m not in mods:
                self.problem(
                    m,
                    f"an encoder is given for {m!r}, but the run's modalities are {mods}",
                    f"model.encoders.{m}.name",
                )
        if not mods and self.kind_cls is not None:
            self.problem(
                "model.modalities",
                f"no modality: dataset kind {self.kind_name!r} names no default encoders; "
                "name them with --encoder MODALITY=NAME",
            )
        return mods

    def encoder(self, m: str, spec: Mapping[str, Any] | None) -> tuple[ComponentSpec, type] | None:
        """The encoder of modality ``m`` with every default filled in, and its class."""
        path = f"model.encoders.{m}"
        if spec is None:
            default = {
                **(getattr(self.kind_cls, "optional_encoders", {}) or {}),
                **(getattr(self.kind_cls, "default_encoders", {}) or {}),
            }.get(m)
            if default is None:
                if self.kind_cls is not None:
                    self.problem(
                        m,
                        f"no encoder for modality {m!r}: dataset kind {self.kind_name!r} has "
                        f"no default for it; name one with --encoder {m}=NAME",
                        "model.modalities",
                    )
                return None
            spec = {"name": default, "config": {}}
            self.origins[f"{path}.name"] = self.kind_label
        name = spec["name"]
        try:
            cls = registry.load("encoder", name)
        except Exception as exc:
            self.problem(m, _load_error("encoder", name, exc), f"{path}.name")
            return None
        if getattr(cls, "modality", None) != m:
            others = ", ".join(_encoders_for(m)) or "(none installed)"
            self.problem(
                m,
                f"encoder {name!r} encodes {getattr(cls, 'modality', '?')!r}, not {m!r}; "
                f"{m} encoders: {others}",
                f"{path}.name",
            )
            return None
        config = dict(spec.get("config", {}))
        for label, fields in self.field_sources:
            _apply_field_defaults(
                cls.Config, config, fields.get("encoder", {}), path, self.origins, label
            )
        derived = {"language": self.language, "max_seconds": getattr(self, "max_seconds", None)}
        derived = {k: v for k, v in derived.items() if v is not None}
        label = f"dataset kind {self.kind_name!r}"
        _apply_field_defaults(cls.Config, config, derived, path, self.origins, label)
        self.problems += component_problems(cls.Config, config, m, path, self.origins)
        return ComponentSpec(name, config), cls

    def subnet_heads(self, classes: Mapping[str, type]) -> dict[str, str]:
        from mmml_core.interfaces import head_name

        names: dict[str, str] = {}
        for m, cls in classes.items():
            h = head_name(cls)
            clash = [o for o, oh in names.items() if oh == h]
            if clash or h == "M":
                self.problems.append(
                    Problem(
                        m,
                        f"modality {m!r} would name its subnet head {h!r}, already used by "
                        f"{clash[0] if clash else 'the fused head'}; set `head` on the "
                        "encoder class",
                    )
                )
            names[m] = h
        return names

    def fusion(self, mods: Sequence[str]) -> ComponentSpec | None:
        fusion_in = self.merged.get("model", {}).get("fusion")
        if len(mods) > 1:
            if fusion_in is None:
                self.problem(
                    "fusion",
                    f"modalities {list(mods)} need a fusion (fusion none is for one modality)",
                    "model.fusion",
                )
                return None
            return self.role("fusion", "fusion", fusion_in, ["input_dims"])
        # one modality: no fusion, whatever a preset names; an explicit --fusion is a mistake
        origin = self.origins.get("model.fusion.name", "")
        if fusion_in is not None and mods and origin.startswith("--fusion"):
            self.problems.append(
                Problem(
                    "fusion",
                    f"a single-modality model ({mods[0]}) has no fusion; drop --fusion",
                    origin,
                )
            )
        return None

    def heads(self, mods: Sequence[str], subnet: Mapping[str, str], fused: bool) -> list[str]:
        possible = ["M"] if fused else []
        possible += [subnet[m] for m in mods if m in subnet]
        if len(mods) == 1:
            return possible
        heads = [str(h) for h in self.merged.get("model", {}).get("heads") or possible]
        unknown = [h for h in heads if h not in possible]
        if unknown:
            self.problem(
                "heads",
                f"unknown head(s) {unknown}; this model's heads are {possible} (M = fused)",
                "model.heads",
            )
        if "M" not in heads and fused:
            self.problem(
                "heads", f"a fused model needs the fused head M (heads {heads})", "model.heads"
            )
        return [h for h in possible if h in heads]

    def model(self, data: DataConfig | None) -> ModelConfig | None:
        model_in = self.merged.get("model", {})
        encoders_in = dict(model_in.get("encoders") or {})
        mods = self.modalities(encoders_in)
        encoders: dict[str, ComponentSpec] = {}
        classes: dict[str, type] = {}
        for m in mods:
            found = self.encoder(m, encoders_in.get(m))
            if found is not None:
                encoders[m], classes[m] = found
        subnet = self.subnet_heads(classes)
        fusion = self.fusion(mods)
        head = self.role("head", "head", model_in.get("head"), ["in_dim"])
        subnet_head = self.role("subnet_head", "head", model_in.get("subnet_head"), ["in_dim"])
        heads = self.heads(mods, subnet, fusion is not None)
        context = self.context(mods, data)
        if len(encoders) != len(mods) or head is None or subnet_head is None:
            return None
        empty = data.empty_context if data is not None else "mask"
        gate = model_in.get("context_gate", True)
        if not isinstance(gate, bool):
            self.problem("model.context_gate", f"must be true or false, got {gate!r}")
            gate = True
        frozen = self.frozen(model_in.get("frozen"), mods)
        return ModelConfig(
            encoders, fusion, head, subnet_head, heads, subnet, context, empty, gate, frozen
        )

    def frozen(self, value: Any, mods: Sequence[str]) -> list[str]:
        """``model.frozen``: a list of the run's modalities (each once); anything else is a
        problem naming the key."""
        if value is None:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(m, str) for m in value):
            self.problem("model.frozen", f"must be a list of modalities, got {value!r}")
            return []
        unknown = [m for m in value if m not in mods]
        if unknown:
            self.problem(
                "model.frozen",
                f"no encoder for {', '.join(map(repr, unknown))}: this run's modalities are "
                f"{', '.join(mods)}",
            )
        return list(dict.fromkeys(m for m in value if m in mods))

    def context(self, mods: Sequence[str], data: DataConfig | None) -> bool:
        """Whether the model reads context: a window is set; then every modality needs one
        (the fusion runs on a context pair) and no window may name a modality the run lacks."""
        if data is None or not data.context:
            return False
        windows = data.context
        for m, window in windows.items():
            if m not in mods:
                self.problem(
                    f"data.{m}_context",
                    f"a {m} context window ({window}), but the run's modalities are {list(mods)}",
                )
        for m in mods:
            if m not in windows:
                given = ", ".join(f"data.{k}_context={w}" for k, w in windows.items())
                supported = m in ("text", "audio")
                fix = f"set data.{m}_context >= 1" if supported else "leave the windows at 0"
                self.problems.append(
                    Problem(
                        f"data.{m}_context" if supported else "data.text_context",
                        f"context is on ({given}) but modality {m!r} has no context window: "
                        f"every modality of the model reads its context; {fix}",
                        self.origins.get(f"data.{next(iter(windows))}_context"),
                    )
                )
        return True

    def role(
        self, role: str, kind: str, value: Any, filled: Sequence[str], path: str | None = None
    ) -> ComponentSpec | None:
        return _role(
            role,
            kind,
            value,
            self.field_sources,
            self.origins,
            self.problems,
            filled,
            path,
        )

    # -- loss and seeds -------------------------------------------------------------------------

    def loss(self, heads: Sequence[str] | None) -> ComponentSpec | None:
        """The loss, its weights defaulting to 1 for every head the model trains. ``heads``
        is None when the model has problems of its own: then the weights are not checked
        against it (that would only repeat those problems), the other fields are."""
        spec = _role("loss", "loss", self.merged.get("loss"), [], self.origins, self.problems,
                     [], path="loss")  # fmt: skip
        if spec is None:
            return None
        if heads is None:
            check = {**spec.config}
            if not isinstance(check.get("weights"), Mapping):
                check["weights"] = {"M": 1.0}
            cls = registry.load("loss", spec.name)
            self.problems += component_problems(cls.Config, check, "loss", "loss", self.origins)
            return spec
        weights = spec.config.get("weights")
        if weights is None:
            weights = {h: 1.0 for h in heads}
            self.origins.setdefault("loss.config.weights", "the model's heads")
        if isinstance(weights, Mapping):
            extra = [h for h in weights if h not in heads]
            if extra and heads:
                self.problem(
                    "loss.weights",
                    f"weights for head(s) {extra} that this model does not train (heads "
                    f"{list(heads)})",
                    "loss.config.weights",
                )
            weights = {h: w for h, w in weights.items() if h in heads}
        spec.config["weights"] = weights
        cls = registry.load("loss", spec.name)
        self.problems += component_problems(cls.Config, spec.config, "loss", "loss", self.origins)
        return spec

    def optim(self, model: ModelConfig | None, train: Any) -> dict[str, Any]:
        """Every parameter group's rate and weight decay (:mod:`mmml_core.optim`); the layer
        of a rate that no ``optim`` key set is recorded as the rule that chose it."""
        from mmml_core.optim import GroupProblems, resolve_groups

        given = self.merged.get("optim") or {}
        if model is None:
            return {}
        check_only = train is None  # train has problems of its own: check the groups' keys
        if check_only:
            train = SimpleNamespace(lr=1.0, pretrained_lr=1.0, weight_decay=0.0)
        pretrained = {
            m: bool(registry.load("encoder", s.name).loads_pretrained_weights(s.config))
            for m, s in model.encoders.items()
        }
        try:
            groups = resolve_groups(pretrained, model.fusion is not None, train, given)
        except GroupProblems as exc:
            for key, message in exc.problems:
                if key.startswith("train."):  # train.* problems are reported already
                    continue
                origin = self.origins.get(key) or next(
                    (v for k, v in self.origins.items() if k.startswith(key + ".")), None
                )
                self.problems.append(Problem(key, message, origin))
            return {}
        if check_only:
            return {}
        for name, group in groups.items():
            if f"optim.{name}.lr" not in self.origins:
                self.origins[f"optim.{name}.lr"] = group.why
        return groups

    def seeds(self) -> list[int]:
        raw = self.merged.get("seeds")
        if not isinstance(raw, list) or not raw:
            self.problem("seeds", "at least one seed (a list of integers)")
            return []
        seeds = []
        for s in raw:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                self.problem("seeds", f"{s!r} is not a non-negative integer")
            else:
                seeds.append(s)
        if len(set(seeds)) != len(seeds):
            self.problem("seeds", f"repeated seed in {raw}")
        return seeds


def _section(
    cls: type, values: Any, section: str, origins: Mapping[str, str], problems: list[Problem]
) -> Any:
    if not isinstance(values, Mapping):
        problems.append(Problem(section, "expected a table of keys", origins.get(section)))
        return None
    found = component_problems(cls, values, section, section, origins, key_path="{path}.{key}")
    problems += found
    return None if found else cls(**values)


def _role(
    role: str,
    kind: str,
    value: Any,
    field_sources: FieldSources,
    origins: dict[str, str],
    problems: list[Problem],
    filled: Sequence[str],
    path: str | None = None,
) -> ComponentSpec | None:
    """Check one named component (fusion, head, subnet_head, loss): its name and its keys.
    Values that need the assembly (``filled``) are checked by :mod:`mmml_core.validate`."""
    path = path or f"model.{role}"
    if value is None:
        problems.append(Problem(role, f"no {role} given", origins.get(path)))
        return None
    name = value["name"]
    try:
        cls = registry.load(kind, name)
    except Exception as exc:
        problems.append(Problem(role, _load_error(kind, name, exc), origins.get(f"{path}.name")))
        return None
    config = dict(value.get("config", {}))
    for label, fields in field_sources:
        _apply_field_defaults(cls.Config, config, fields.get(role, {}), path, origins, label)
    names = {f.name for f in dataclasses.fields(cls.Config)}
    unknown = [k for k in config if k not in names]
    for key in unknown:
        close = difflib.get_close_matches(key, sorted(names), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        problems.append(
            Problem(
                f"{role}.{key}",
                f"unknown key{hint}. Valid fields of {kind} {name!r}:\n{describe_fields(cls.Config)}",
                origins.get(f"{path}.config.{key}"),
            )
        )
    for key in filled:
        if key in config:
            problems.append(
                Problem(
                    f"{role}.{key}",
                    "is filled in by the model assembly from the components around it; do not set it",
                    origins.get(f"{path}.config.{key}"),
                )
            )
    return ComponentSpec(name, config)


def _model_owner(modality: str, model: str) -> tuple[str, str] | None:
    """``(encoder, field)`` where ``model`` names a network of the one installed encoder of
    ``modality`` that accepts it (``FeatureEncoder.model_field``), else None."""
    owners = []
    for name in _encoders_for(modality):
        cls = registry.load("encoder", name)
        field = getattr(cls, "model_field", None)
        try:
            if field and cls.names_model(model):
                owners.append((name, field))
        except Exception:  # a plugin's check must not break the command line
            continue
    return owners[0] if len(owners) == 1 else None


def _encoders_for(modality: str) -> list[str]:
    out = []
    for name in registry.list("encoder"):
        try:
            if getattr(registry.load("encoder", name), "modality", None) == modality:
                out.append(name)
        except Exception:  # a broken plugin is reported by `mmml-bench plugins`
            continue
    return out


# -- settings as flat keys (the profile comparison of a dry run) -------------------------------


def _full_config(kind: str, spec: ComponentSpec, skip: Sequence[str] = ()) -> dict[str, Any]:
    """A component's config with every field its dataclass defaults (imports the component);
    ``skip`` leaves out fields the model assembly fills in."""
    cls = registry.config_class(kind, spec.name)
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    out.update(copy.deepcopy(spec.config))
    return out


def settings(cfg: RunConfig) -> dict[str, Any]:
    """Every setting of a resolved run as ``user key -> value`` (``train.lr``,
    ``text.padding``, ``fusion.cls_init_std``, ``optim.fusion.lr``, ...), each component's
    fields with their defaults filled in."""
    out: dict[str, Any] = {"profile": cfg.profile, "seeds": list(cfg.seeds)}
    for section in ("data", "train", "output"):
        for key, value in dataclasses.asdict(getattr(cfg, section)).items():
            out[f"{section}.{key}"] = value
    model = cfg.model
    for m, spec in model.encoders.items():
        out[m] = spec.name
        for key, value in _full_config("encoder", spec).items():
            out[f"{m}.{key}"] = value
    roles: list[tuple[str, str, ComponentSpec | None]] = [
        ("fusion", "fusion", model.fusion),
        ("head", "head", model.head),
        ("subnet_head", "head", model.subnet_head),
        ("loss", "loss", cfg.loss),
    ]
    for role, kind, spec in roles:
        out[role] = spec.name if spec is not None else "none"
        if spec is not None:
            skip = ("input_dims", "in_dim")
            for key, value in _full_config(kind, spec, skip).items():
                out[f"{role}.{key}"] = value
    out["heads"] = list(model.heads)
    if model.context:
        out["model.context_gate"] = model.context_gate
    out["model.frozen"] = list(model.frozen)
    for group, o in cfg.optim.items():
        for key, value in o.to_dict().items():
            out[f"optim.{group}.{key}"] = value
    return out


def differences(a: RunConfig, b: RunConfig) -> list[tuple[str, Any, Any]]:
    """``(key, value in a, value in b)`` for every setting (:func:`settings`) that differs,
    in ``a``'s key order (keys only one side has come last)."""
    sa, sb = settings(a), settings(b)
    keys = list(sa) + [k for k in sb if k not in sa]
    missing = object()
    out = []
    for key in keys:
        va, vb = sa.get(key, missing), sb.get(key, missing)
        if va != vb:
            out.append((key, None if va is missing else va, None if vb is missing else vb))
    return out


__all__ += ["differences", "settings"]
