"""The model assembly: encoders + fusion + fused head + subnet heads (docs/architecture.md).

A :class:`ModelSpec` names every part by registry name with its config; :func:`build_model`
turns it into a :class:`MultimodalModel`. The spec is plain JSON, which is what a checkpoint
stores (never pickle).

Heads: ``"M"`` is the fused head on the fusion's output; each encoder's modality has a subnet
head on its pooled vector (the paper's multi-loss, section 3.3), named by
:func:`~mmml_core.interfaces.head_name` (``T`` for text, ``A`` for audio, ...). A model without a fusion is a single-modality model
whose only head is that modality's subnet head (the paper's "text-only" rows).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from mmml_core import registry
from mmml_core.interfaces import EncoderOutput, FeatureEncoder, config_dict, head_name
from mmml_core.runconfig import ComponentSpec

__all__ = ["ComponentSpec", "ModelSpec", "MultimodalModel", "build_model"]


@dataclass
class ModelSpec:
    """What to build. ``encoders`` maps modality -> encoder; ``fusion`` None means a
    single-modality model. ``heads`` lists the heads to build: ``M`` and subnet heads named by
    :func:`~mmml_core.interfaces.head_name`; None builds them all."""

    encoders: dict[str, ComponentSpec]
    fusion: ComponentSpec | None = None
    head: ComponentSpec = field(default_factory=lambda: ComponentSpec("mlp"))
    subnet_head: ComponentSpec = field(default_factory=lambda: ComponentSpec("linear"))
    heads: tuple[str, ...] | None = None  # None: every head the model has

    def __post_init__(self) -> None:
        self.encoders = {m: ComponentSpec.coerce(s) for m, s in self.encoders.items()}
        self.fusion = None if self.fusion is None else ComponentSpec.coerce(self.fusion)
        self.head = ComponentSpec.coerce(self.head)
        self.subnet_head = ComponentSpec.coerce(self.subnet_head)
        if not self.encoders:
            raise ValueError("a model needs at least one encoder")
        possible = set(self.subnet_head_names().values())
        if self.fusion is not None:
            possible.add("M")
        if self.heads is None:  # the fused head first, then one subnet head per modality
            self.heads = ("M",) * (self.fusion is not None) + tuple(
                self.subnet_head_names().values()
            )
        self.heads = tuple(h for h in self.heads if h in possible)
        if not self.heads:
            raise ValueError(
                f"none of the requested heads exists for this model (possible: {sorted(possible)})"
            )
        if self.fusion is None and len(self.encoders) > 1:
            raise ValueError("several encoders need a fusion")
        if self.fusion is not None and "M" not in self.heads:
            raise ValueError(
                f"a fused model needs the fused head M (heads {list(self.heads)}); drop the "
                "fusion for a single-modality model"
            )

    def subnet_head_names(self) -> dict[str, str]:
        """modality -> subnet head name, from the encoder classes (imports them)."""
        return {m: head_name(registry.load("encoder", s.name)) for m, s in self.encoders.items()}

    def to_dict(self) -> dict[str, Any]:
        def c(s: ComponentSpec) -> dict[str, Any]:
            return {"name": s.name, "config": copy.deepcopy(s.config)}

        return {
            "encoders": {m: c(s) for m, s in self.encoders.items()},
            "fusion": None if self.fusion is None else c(self.fusion),
            "head": c(self.head),
            "subnet_head": c(self.subnet_head),
            "heads": list(self.heads),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        d = dict(d)
        heads = d.get("heads")
        d["heads"] = None if heads is None else tuple(heads)
        return cls(**d)


class MultimodalModel(nn.Module):
    """Predictions per head from whichever modalities the inputs contain.

    With every modality present it returns the fused head and the subnet heads; with one
    modality only (a missing-modality prediction) it returns that modality's subnet head.
    """

    def __init__(
        self,
        spec: ModelSpec,
        encoders: Mapping[str, FeatureEncoder],
        fusion: nn.Module | None,
        head: nn.Module | None,
        subnet_heads: Mapping[str, nn.Module],
    ) -> None:
        super().__init__()
        self.spec = spec
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.head = head
        self.subnet_heads = nn.ModuleDict(dict(subnet_heads))  # keyed by modality
        self.head_names = {m: head_name(e) for m, e in self.encoders.items()}  # modality -> head

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def encode(self, inputs: Mapping[str, Mapping[str, Tensor]]) -> dict[str, EncoderOutput]:
        return {m: self.encoders[m](x) for m, x in inputs.items() if m in self.encoders}

    def forward(self, inputs: Mapping[str, Mapping[str, Tensor]]) -> dict[str, Tensor]:
        missing_all = [m for m in inputs if m not in self.encoders]
        if missing_all:
            raise KeyError(f"inputs for {missing_all}, but the model encodes {self.modalities}")
        encoded = self.encode(inputs)
        preds: dict[str, Tensor] = {}
        if self.fusion is not None and self.head is not None and len(encoded) == len(self.encoders):
            preds["M"] = self.head(self.fusion(encoded))  # (B,)
        for m, out in encoded.items():
            if m in self.subnet_heads:
                preds[self.head_names[m]] = self.subnet_heads[m](out.pooled)  # (B,)
        if not preds:
            raise ValueError(
                f"no head can predict from {sorted(inputs)} alone; heads: {list(self.spec.heads)}"
            )
        return preds

    def preprocess(self, raw: Mapping[str, Any]) -> dict[str, dict[str, Tensor]]:
        """Raw items per modality -> encoder inputs (what the DataLoader collate does)."""
        return {m: self.encoders[m].preprocess(items) for m, items in raw.items()}

    def resolved_spec(self) -> ModelSpec:
        """The spec with every component's full config, as a checkpoint stores it."""
        spec = copy.deepcopy(self.spec)
        for m, enc in self.encoders.items():
            spec.encoders[m].config = config_dict(enc)
        if self.fusion is not None and spec.fusion is not None:
            spec.fusion.config = config_dict(self.fusion)
        if self.head is not None:
            spec.head.config = {k: v for k, v in config_dict(self.head).items() if k != "in_dim"}
        first = next(iter(self.subnet_heads.values()), None)
        if first is not None:
            spec.subnet_head.config = {k: v for k, v in config_dict(first).items() if k != "in_dim"}
        return spec


def build_model(spec: ModelSpec | Mapping[str, Any]) -> MultimodalModel:
    """Create every component of ``spec`` through the registry and assemble them."""
    if not isinstance(spec, ModelSpec):
        spec = ModelSpec.from_dict(spec)
    encoders: dict[str, FeatureEncoder] = {}
    for modality, s in spec.encoders.items():
        enc = registry.create("encoder", s.name, **s.config)
        if getattr(enc, "modality", None) != modality:
            raise ValueError(
                f"encoder {s.name!r} encodes {getattr(enc, 'modality', '?')!r}, "
                f"but was given for {modality!r}"
            )
        encoders[modality] = enc
    dims = {m: e.dim for m, e in encoders.items()}

    fusion = head = None
    if spec.fusion is not None:
        fcfg = dict(spec.fusion.config)
        if "input_dims" in fcfg and fcfg["input_dims"] and dict(fcfg["input_dims"]) != dims:
            raise ValueError(
                f"fusion input_dims {fcfg['input_dims']} do not match the encoders {dims}"
            )
        fcfg["input_dims"] = dims
        fusion = registry.create("fusion", spec.fusion.name, **fcfg)
        if "M" in spec.heads:
            head = registry.create(
                "head", spec.head.name, in_dim=fusion.out_dim, **spec.head.config
            )

    subnet_heads = {
        m: registry.create("head", spec.subnet_head.name, in_dim=dims[m], **spec.subnet_head.config)
        for m in encoders
        if head_name(encoders[m]) in spec.heads
    }
    return MultimodalModel(spec, encoders, fusion, head, subnet_heads)
