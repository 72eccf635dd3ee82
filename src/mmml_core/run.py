"""Run configuration and experiments: seeds, output folder, summary tables (DESIGN §8, §10).

A run configuration is plain data with four sections and a seed list::

    seeds = [1, 11, 111]
    [data]    dataset = "demo" | a path, kind = mosi|mosei|sims|demo, max_audio_seconds
    [model]   encoders = {text = {name, config}, audio = {...}}, fusion = {name, config} | none,
              head, subnet_head, heads = ["M", "T", "A"]
    [loss]    name = "l1" | "mse", config = {weights = {...}}
    [train]   the fields of :class:`mmml_core.engine.TrainConfig`

Layers, lowest first: built-in defaults < the dataset's defaults (:data:`DATASET_DEFAULTS`)
< a preset or config file < command-line flags < ``key=value`` overrides. Every key is
checked against the dataclass config of the component it belongs to before anything trains.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from mmml_core import registry
from mmml_core.config import ConfigError, build_config, check_keys, describe_fields, parse_value

__all__ = [
    "DATASET_DEFAULTS",
    "DEFAULT_ENCODERS",
    "PRESETS_DIR",
    "ComparisonRow",
    "RunConfig",
    "apply_override",
    "load_config_file",
    "run_comparison",
    "run_experiment",
    "summary_table",
]

PRESETS_DIR = Path(__file__).with_name("presets")

#: Default encoder per language and modality (DESIGN §5; paper section 3.1).
DEFAULT_ENCODERS: dict[str, dict[str, str]] = {
    "en": {"text": "roberta", "audio": "data2vec"},
    "zh": {"text": "roberta", "audio": "hubert"},
}

#: Settings a dataset brings along, beneath anything the user says. The bundled demo set is
#: a small synthetic set for trying the toolkit without downloads: its encoders are trained
#: from random weights (``random:tiny``), so the audio encoders' convolutional front end
#: trains too (frozen random filters cannot learn pitch), with a learning rate and batch
#: size for training from scratch. Each value applies to encoders that have that field.
DATASET_DEFAULTS: dict[str, dict[str, Any]] = {
    "demo": {
        "encoder_fields": {"checkpoint": "random:tiny", "freeze_feature_extractor": False},
        "train": {"lr": 1e-3, "batch_size": 8, "max_epochs": 20, "patience": 8},
        "data": {"max_audio_seconds": 6.0},
    },
}

KIND_LANGUAGE = {"mosi": "en", "mosei": "en", "sims": "zh", "demo": "en"}


@dataclass
class DataConfig:
    dataset: str = "demo"  # "demo" (bundled, no download) or a dataset root in the MMSA layout
    kind: str | None = None  # mosi | mosei | sims | demo; required with a path
    max_audio_seconds: float = 6.0  # the authors' cut: the first 6 s of each clip

    def __post_init__(self) -> None:
        if self.kind is None and self.dataset == "demo":
            self.kind = "demo"
        if self.kind not in KIND_LANGUAGE:
            raise ValueError(
                f"dataset {self.dataset!r} needs a kind: one of {', '.join(KIND_LANGUAGE)} "
                "(--dataset-kind)"
            )
        if self.max_audio_seconds <= 0:
            raise ValueError("max_audio_seconds must be positive")

    @property
    def language(self) -> str:
        return KIND_LANGUAGE[self.kind or "demo"]


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)  # a ModelSpec as plain data
    loss: dict[str, Any] = field(default_factory=lambda: {"name": "l1", "config": {}})
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    seeds: list[int] = field(default_factory=lambda: [1, 11, 111])  # the paper averages 3 runs

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": asdict(self.data),
            "model": copy.deepcopy(self.model),
            "loss": copy.deepcopy(self.loss),
            "train": dict(self.train),
            "seeds": list(self.seeds),
        }


def load_config_file(path: str | Path) -> dict[str, Any]:
    """A JSON or TOML run configuration (see the module docstring for its layout)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            import tomllib

            return tomllib.loads(text)
        return json.loads(text)
    except Exception as exc:  # tomllib and json raise their own error types
        raise ConfigError(f"{path}: cannot parse ({exc})") from exc


def preset_path(name: str) -> Path:
    path = PRESETS_DIR / f"{name}.toml"
    if not path.is_file():
        names = sorted(p.stem for p in PRESETS_DIR.glob("*.toml"))
        raise ConfigError(f"no preset {name!r}; presets: {', '.join(names)}")
    return path


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        old = out.get(k)
        renamed = (
            isinstance(v, Mapping)
            and isinstance(old, dict)
            and "name" in v
            and v.get("name") != old.get("name")
        )
        if isinstance(v, str) and isinstance(old, dict) and v != old.get("name"):
            renamed = True  # a component given by name only replaces the old one and its config
        if renamed:
            out[k] = copy.deepcopy(v)
        elif isinstance(v, str) and isinstance(old, dict):
            pass  # the same component named again keeps its config
        elif isinstance(v, Mapping) and isinstance(old, dict) and k != "weights":
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _component(value: Any) -> dict[str, Any] | None:
    if value is None or (isinstance(value, str) and value.lower() == "none"):
        return None
    if isinstance(value, str):
        return {"name": value, "config": {}}
    if isinstance(value, Mapping):
        unknown = set(value) - {"name", "config"}
        if unknown or "name" not in value:
            raise ConfigError(f"a component is {{name, config}}, got keys {sorted(value)}")
        return {"name": value["name"], "config": dict(value.get("config") or {})}
    raise ConfigError(f"cannot read a component from {value!r}")


def resolve(
    layers: Sequence[Mapping[str, Any]], modalities: Sequence[str] | None = None
) -> RunConfig:
    """Merge configuration layers (lowest first) into a validated :class:`RunConfig`."""
    merged: dict[str, Any] = {}
    for layer in layers:
        unknown = set(layer) - {"data", "model", "loss", "train", "seeds"}
        if unknown:
            raise ConfigError(
                f"unknown section(s) {sorted(unknown)}; sections are data, model, loss, train, seeds"
            )
        merged = _merge(merged, layer)
    try:
        data = build_config(DataConfig, merged.get("data", {}), "data")
    except ConfigError:
        raise
    defaults = DATASET_DEFAULTS.get(data.kind or "", {})
    if "data" in defaults:  # dataset defaults sit beneath the user's data settings
        data = build_config(DataConfig, _merge(defaults["data"], merged.get("data", {})), "data")

    model = dict(merged.get("model", {}))
    unknown = set(model) - {"encoders", "fusion", "head", "subnet_head", "heads", "modalities"}
    if unknown:
        raise ConfigError(
            f"model: unknown key(s) {sorted(unknown)}; keys are encoders, fusion, head, "
            "subnet_head, heads, modalities"
        )
    mods = list(modalities or model.pop("modalities", None) or ["text", "audio"])
    model.pop("modalities", None)
    enc_in = {m: _component(s) for m, s in dict(model.get("encoders", {})).items()}
    for m in enc_in:
        if m not in mods:
            raise ConfigError(f"model.encoders has {m!r}, but the run's modalities are {mods}")
    encoders = {}
    for m in mods:
        spec = enc_in.get(m) or {"name": DEFAULT_ENCODERS[data.language][m], "config": {}}
        cls = registry.load("encoder", spec["name"])
        if getattr(cls, "modality", None) != m:
            raise ConfigError(
                f"encoder {spec['name']!r} encodes {getattr(cls, 'modality', '?')!r}, not {m!r}; "
                f"{m} encoders: {', '.join(_encoders_for(m)) or '(none installed)'}"
            )
        cfg_fields = {f.name for f in fields(cls.Config)}
        auto = {"language": data.language} if "language" in cfg_fields else {}
        auto.update(
            {k: v for k, v in defaults.get("encoder_fields", {}).items() if k in cfg_fields}
        )
        if "max_seconds" in cfg_fields:
            auto["max_seconds"] = data.max_audio_seconds
        spec["config"] = {**auto, **spec["config"]}
        build_config(cls.Config, spec["config"], f"encoder {spec['name']!r} ({m})")
        encoders[m] = spec

    # One modality: no fusion, whatever a preset below names (the CLI rejects an explicit
    # --fusion with one modality before it gets here).
    fusion = _component(model.get("fusion", "cross_attn")) if len(mods) > 1 else None
    if len(mods) > 1 and fusion is None:
        raise ConfigError(f"modalities {mods} need a fusion (fusion none is for one modality)")
    head = _component(model.get("head", "mlp"))
    subnet = _component(model.get("subnet_head", "linear"))
    heads = list(model.get("heads", ["M", "T", "A"]))
    if len(mods) == 1:
        from mmml_core.interfaces import MODALITY_HEADS

        heads = [MODALITY_HEADS[mods[0]]]
    if fusion is not None:
        cls = registry.load("fusion", fusion["name"])
        check_keys(cls.Config, fusion["config"], f"fusion {fusion['name']!r}", ["input_dims"])
    for role, comp in (("head", head), ("subnet_head", subnet)):
        cls = registry.load("head", comp["name"])
        check_keys(cls.Config, comp["config"], f"{role} {comp['name']!r}", ["in_dim"])

    loss = _component(merged.get("loss", "l1"))
    loss_cls = registry.load("loss", loss["name"])
    weights = loss["config"].get("weights") or {h: 1.0 for h in heads}
    weights = {h: float(w) for h, w in weights.items() if h in heads}
    if not weights:
        raise ConfigError(f"loss weights select none of the heads {heads}")
    loss["config"]["weights"] = weights
    build_config(loss_cls.Config, loss["config"], f"loss {loss['name']!r}")

    from mmml_core.engine import TrainConfig

    train = _merge(defaults.get("train", {}), merged.get("train", {}))
    build_config(TrainConfig, train, "train")
    seeds = [int(s) for s in merged.get("seeds", [1, 11, 111])]
    if not seeds:
        raise ConfigError("seeds: at least one seed")
    return RunConfig(
        data=data,
        model={
            "encoders": encoders,
            "fusion": fusion,
            "head": head,
            "subnet_head": subnet,
            "heads": heads,
        },
        loss=loss,
        train=train,
        seeds=seeds,
    )


def _encoders_for(modality: str) -> list[str]:
    out = []
    for name in registry.list("encoder"):
        try:
            if getattr(registry.load("encoder", name), "modality", None) == modality:
                out.append(name)
        except Exception:  # a broken plugin is reported by `mmml-bench plugins`
            continue
    return out


def apply_override(layer: dict[str, Any], item: str, current: Mapping[str, Any]) -> None:
    """Apply one ``key=value`` to ``layer`` (a config layer), typed by the field it names.

    Keys: ``train.FIELD``, ``data.FIELD``, ``seeds``, ``text.FIELD`` / ``audio.FIELD``
    (encoder config, also as ``encoder.text.FIELD``), ``fusion.FIELD``, ``head.FIELD``,
    ``subnet_head.FIELD``, ``loss.FIELD``. ``current`` is the merged configuration so far
    (it names the components whose fields are meant).
    """
    if "=" not in item:
        raise ConfigError(f"override {item!r}: expected key=value")
    key, text = item.split("=", 1)
    parts = key.strip().split(".")
    if parts[0] == "encoder" and len(parts) == 3:
        parts = parts[1:]
    head, rest = parts[0], ".".join(parts[1:])
    from mmml_core.engine import TrainConfig

    if head == "seeds" and not rest:
        layer["seeds"] = [int(s) for s in text.replace(" ", "").split(",") if s]
        return
    if head in ("train", "data") and rest:
        cls = TrainConfig if head == "train" else DataConfig
        layer.setdefault(head, {})[rest] = parse_value(cls, rest, text, head)
        return
    model = current.get("model", {})
    if head in ("text", "audio", "vision") and rest:
        data = current.get("data", {})
        kind = data.get("kind") or ("demo" if data.get("dataset", "demo") == "demo" else None)
        language = KIND_LANGUAGE.get(kind or "", "en")
        name = _component(
            (model.get("encoders") or {}).get(head) or DEFAULT_ENCODERS[language].get(head, "")
        )["name"]
        cls = registry.config_class("encoder", name)
        value = parse_value(cls, rest, text, f"encoder {name!r} ({head})")
        enc = (
            layer.setdefault("model", {})
            .setdefault("encoders", {})
            .setdefault(head, {"name": name})
        )
        if isinstance(enc, str):
            enc = layer["model"]["encoders"][head] = {"name": enc}
        enc.setdefault("config", {})[rest] = value
        return
    if head in ("fusion", "head", "subnet_head") and rest:
        default = {"fusion": "cross_attn", "head": "mlp", "subnet_head": "linear"}[head]
        comp = _component(model.get(head, default))
        if comp is None:
            raise ConfigError(f"override {key}: this run has no {head}")
        kind = "fusion" if head == "fusion" else "head"
        cls = registry.config_class(kind, comp["name"])
        value = parse_value(cls, rest, text, f"{kind} {comp['name']!r}")
        target = layer.setdefault("model", {}).setdefault(head, {"name": comp["name"]})
        if isinstance(target, str):
            target = layer["model"][head] = {"name": target}
        target.setdefault("config", {})[rest] = value
        return
    if head == "loss" and rest:
        comp = _component(current.get("loss", "l1"))
        cls = registry.config_class("loss", comp["name"])
        value = parse_value(cls, rest, text, f"loss {comp['name']!r}")
        target = layer.setdefault("loss", {"name": comp["name"]})
        target.setdefault("config", {})[rest] = value
        return
    raise ConfigError(
        f"override {key!r}: unknown key. Keys are train.FIELD, data.FIELD, seeds, "
        f"text.FIELD, audio.FIELD, fusion.FIELD, head.FIELD, subnet_head.FIELD, loss.FIELD.\n"
        f"train fields:\n{describe_fields(TrainConfig)}\ndata fields:\n{describe_fields(DataConfig)}"
    )


# -- experiments ----------------------------------------------------------------------------

HEAD_LABELS = {"M": "M (fused)", "T": "T (text subnet)", "A": "A (audio subnet)"}
SELECTION_LABELS = {"best_loss": "lowest valid loss", "best_acc": "highest valid Acc2"}


def run_experiment(
    cfg: RunConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
    log: Any = None,
) -> dict[str, Any]:
    """Train every seed of ``cfg`` into ``out_dir/seed-N`` and write the summary tables."""
    from mmml_core.data import load_dataset
    from mmml_core.engine import TrainConfig, json_clean, train_seed
    from mmml_core.model import ComponentSpec, ModelSpec

    log = log or sys.stderr
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / "config.json"
    if resume and saved.is_file():
        before = json.loads(saved.read_text())
        if before != json.loads(json.dumps(cfg.to_dict())):
            raise ConfigError(f"{saved}: --resume with a different configuration than the run's")
    saved.write_text(json.dumps(cfg.to_dict(), indent=2))
    root = None if cfg.data.dataset == "demo" else cfg.data.dataset
    dataset = load_dataset(root, cfg.data.kind, max_audio_seconds=cfg.data.max_audio_seconds)
    spec = ModelSpec.from_dict(cfg.model)
    loss = ComponentSpec(cfg.loss["name"], cfg.loss["config"])
    train = build_config(TrainConfig, cfg.train, "train")
    per_seed = []
    for seed in cfg.seeds:
        seed_dir = out / f"seed-{seed}"
        done = seed_dir / "results.json"
        if resume and done.is_file():
            print(f"seed {seed}: finished earlier, reading {done}", file=log)
            per_seed.append(json.loads(done.read_text()))
            continue
        print(f"seed {seed}: training into {seed_dir}", file=log)
        per_seed.append(
            train_seed(
                spec,
                loss,
                dataset,
                train,
                seed,
                seed_dir,
                resume=resume,
                progress=progress,
                checkpoint_extra={"max_audio_seconds": cfg.data.max_audio_seconds},
            )
        )
    table_md, table_csv = summary_table(per_seed, dataset.scheme)
    (out / "summary.md").write_text(table_md)
    (out / "summary.csv").write_text(table_csv)
    summary = {
        "config": cfg.to_dict(),
        "scheme": dataset.scheme,
        "seeds": cfg.seeds,
        "aggregate": aggregate(per_seed),
        "runs": [f"seed-{s}" for s in cfg.seeds],
    }
    (out / "results.json").write_text(json.dumps(json_clean(summary), indent=2))
    return {"summary": summary, "table": table_md, "per_seed": per_seed}


def aggregate(
    per_seed: Sequence[Mapping[str, Any]],
) -> dict[str, dict[str, dict[str, list[float]]]]:
    """selection -> head -> metric -> [mean, std] over seeds (std with ddof=0 for one seed)."""
    import numpy as np

    out: dict[str, dict[str, dict[str, list[float]]]] = {}
    for selection in ("best_loss", "best_acc"):
        heads = per_seed[0]["selection"][selection]["test"]
        out[selection] = {}
        for head in heads:
            keys = per_seed[0]["selection"][selection]["test"][head].keys()
            out[selection][head] = {}
            for k in keys:
                vals = np.array(
                    [_num(r["selection"][selection]["test"][head][k]) for r in per_seed]
                )
                std = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
                out[selection][head][k] = [float(np.mean(vals)), std]
    return out


def _num(v: Any) -> float:
    return float("nan") if v is None else float(v)


def format_cell(key: str, mean: float, std: float) -> str:
    """``mean ± std`` in table units: accuracies and F1 ×100 with 2 decimals, MAE and Corr
    as they are with 3; an undefined mean (constant predictions) shows as ``nan``."""
    from mmml_core.metrics import PERCENT_KEYS

    if math.isnan(mean):
        return "nan"
    if key in PERCENT_KEYS:
        return f"{100 * mean:.2f} ± {100 * std:.2f}"
    return f"{mean:.3f} ± {std:.3f}"


def summary_table(per_seed: Sequence[Mapping[str, Any]], scheme: str) -> tuple[str, str]:
    """Markdown and CSV: mean ± std over seeds per selection and head (accuracies and F1 ×100)."""
    from mmml_core.metrics import METRIC_KEYS, PERCENT_KEYS

    agg = aggregate(per_seed)
    keys = METRIC_KEYS[scheme]
    n = len(per_seed)
    lines = [
        f"Test metrics, mean ± std over {n} seed(s) ({', '.join(str(r['seed']) for r in per_seed)}); "
        "accuracies and F1 ×100; heads scored against the multimodal label.",
        "",
        "| checkpoint | head | " + " | ".join(keys) + " |",
        "|---|---|" + "---|" * len(keys),
    ]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["checkpoint", "head", *[f"{k}_{s}" for k in keys for s in ("mean", "std")]])
    for selection, heads in agg.items():
        for head in ("M", "T", "A"):
            if head not in heads:
                continue
            cells = [format_cell(k, *heads[head][k]) for k in keys]
            row = []
            for k in keys:
                scale = 100.0 if k in PERCENT_KEYS else 1.0
                row += [heads[head][k][0] * scale, heads[head][k][1] * scale]
            lines.append(
                f"| {SELECTION_LABELS[selection]} | {HEAD_LABELS[head]} | "
                + " | ".join(cells)
                + " |"
            )
            writer.writerow([selection, head, *[f"{v:.6g}" for v in row]])
    return "\n".join(lines) + "\n", buf.getvalue()


# -- comparisons of several runs (the paper's tables) -----------------------------------------


@dataclass
class ComparisonRow:
    """One row of a comparison table: a label, the run's configuration layers, and the head
    whose test metrics the row reports."""

    label: str
    layers: list[dict[str, Any]]
    head: str = "M"
    modalities: list[str] | None = None


def run_comparison(
    rows: Sequence[ComparisonRow],
    out_dir: str | Path,
    *,
    resume: bool = True,
    progress: bool = True,
    log: Any = None,
) -> tuple[str, dict[str, Any]]:
    """Train every row (each into ``out_dir/<n>-<label>``) and return a Markdown table per
    checkpoint selection plus the aggregates. Rows already finished are read back."""
    log = log or sys.stderr
    out = Path(out_dir)
    results: dict[str, Any] = {}
    scheme = None
    for i, row in enumerate(rows):
        cfg = resolve(row.layers, row.modalities)
        slug = "".join(c if c.isalnum() else "-" for c in row.label.lower()).strip("-")
        print(f"== {row.label}", file=log)
        res = run_experiment(cfg, out / f"{i}-{slug}", resume=resume, progress=progress, log=log)
        scheme = res["summary"]["scheme"]
        results[row.label] = {
            "head": row.head,
            "aggregate": res["summary"]["aggregate"],
            "seeds": cfg.seeds,
        }
    from mmml_core.metrics import METRIC_KEYS

    keys = METRIC_KEYS[scheme or "sims"]
    parts = []
    for selection, title in SELECTION_LABELS.items():
        lines = [
            f"Checkpoint: {title}. Test metrics, mean ± std over seeds; accuracies and F1 ×100.",
            "",
            "| run | head | " + " | ".join(keys) + " |",
            "|---|---|" + "---|" * len(keys),
        ]
        for label, r in results.items():
            metrics = r["aggregate"][selection][r["head"]]
            cells = [format_cell(k, *metrics[k]) for k in keys]
            lines.append(f"| {label} | {HEAD_LABELS[r['head']]} | " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    table = "\n\n".join(parts) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.md").write_text(table)
    return table, results
