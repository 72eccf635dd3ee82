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

import torch
from torch import Tensor, nn

from mmml_core import registry
from mmml_core.cache import cached_output
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
    # conversational context (docs/architecture.md#context): the same encoders and fusion
    # also run on each item's context inputs, and every head reads the concatenation of the
    # current and the context features (so its input is twice as wide)
    context: bool = False
    # an item without earlier utterances: "mask" (zero context features) or "encode" (the
    # encoders read an empty input: the authors' code); see data.empty_context
    empty_context: str = "mask"
    # scale each context feature by tanh(g) with a learned g that starts at 0, so a context
    # model starts as the model without context and learns how much of the context to use
    # (the authors' context model has no gate: profile authors turns it off)
    context_gate: bool = True
    # modalities whose encoders are frozen (model.frozen): their parameters get no gradient
    # and no optimizer group, and they stay in eval mode (no dropout) while the model trains,
    # so their outputs depend on the input alone and can be cached (mmml_core.cache)
    frozen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.encoders = {m: ComponentSpec.coerce(s) for m, s in self.encoders.items()}
        self.fusion = None if self.fusion is None else ComponentSpec.coerce(self.fusion)
        self.head = ComponentSpec.coerce(self.head)
        self.subnet_head = ComponentSpec.coerce(self.subnet_head)
        if not self.encoders:
            raise ValueError("a model needs at least one encoder")
        self.frozen = tuple(self.frozen)
        unknown = [m for m in self.frozen if m not in self.encoders]
        if unknown:
            raise ValueError(
                f"frozen modalities {unknown} have no encoder; the encoders are "
                f"{', '.join(self.encoders)}"
            )
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
            "context": self.context,
            "empty_context": self.empty_context,
            "context_gate": self.context_gate,
            "frozen": list(self.frozen),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelSpec:
        d = dict(d)
        heads = d.get("heads")
        d["heads"] = None if heads is None else tuple(heads)
        d["context"] = bool(d.get("context", False))  # checkpoints before context: none
        d.setdefault("context_gate", True)
        d["frozen"] = tuple(d.get("frozen") or ())  # checkpoints before freezing: none
        return cls(**d)


class ContextGate(nn.Module):
    """What an item's head reads of its context feature: ``sigmoid(w . current + b) *
    (A context + c)``, a learned map of the context feature scaled by how much the item's
    current feature says the context matters (one scalar per item; model.context_gate).

    The gate depends on the current utterance because whether the earlier ones matter does:
    "I felt the same way" needs the utterance before, most sentences do not, and a linear
    subnet head on the concatenation could not tell the two apart by itself. ``A`` and ``c``
    start at zero, so an untrained context model predicts as the model without context does;
    the gate starts half open (``w = 0``, ``b = 0``), so the first steps already teach ``A``
    (a gate that started closed would multiply two zero factors and barely move).
    A checkpoint from before this gate stored one scalar ``g`` per feature, read as
    ``tanh(g) * context``; it loads as ``A = 2 tanh(g) I`` (:meth:`MultimodalModel.
    upgrade_state_dict`), which computes the same.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, 1)  # w, b: how much context this item reads
        self.map = nn.Linear(dim, dim)  # A, c: what it reads
        for p in self.parameters():
            nn.init.zeros_(p)

    def forward(self, current: Tensor, context: Tensor) -> Tensor:
        """(B, D) current and (B, D) context features -> the gated context, (B, D)."""
        dtype = self.map.weight.dtype
        gate = torch.sigmoid(self.proj(current.to(dtype)))  # (B, 1)
        return (gate * self.map(context.to(dtype))).to(context.dtype)


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
        # the context gates (spec.context_gate): one per context feature; the context side starts
        # at zero, so the untrained context model predicts as the model without context
        self.context_gates: nn.ModuleDict | None = None
        if spec.context and spec.context_gate:
            widths = {m: e.dim for m, e in self.encoders.items()}
            if fusion is not None:
                widths = {"fused": fusion.out_dim, **widths}
            self.context_gates = nn.ModuleDict({n: ContextGate(d) for n, d in widths.items()})
        for m in spec.frozen:  # frozen encoders: no gradients, always in eval mode
            self.encoders[m].requires_grad_(False)
            self.encoders[m].eval()

    def train(self, mode: bool = True) -> MultimodalModel:
        """As ``nn.Module.train``, except that frozen encoders (``spec.frozen``) stay in eval
        mode: no dropout, so a frozen encoder computes the same output for an input in
        training as in evaluation (what makes its outputs cacheable)."""
        super().train(mode)
        for m in self.spec.frozen:
            self.encoders[m].eval()
        return self

    def upgrade_state_dict(self, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Weights saved by an earlier mmml in this model's layout: a scalar context gate
        ``context_gates.<name>`` (``tanh(g) * context``) becomes the :class:`ContextGate`
        that computes the same: gate ``sigmoid(0) = 1/2``, ``A = 2 tanh(g) I``, ``c = 0``."""
        out = dict(state)
        for name, gate in (self.context_gates or {}).items():
            g = out.pop(f"context_gates.{name}", None)
            if g is None or f"context_gates.{name}.map.weight" in out:
                continue
            eye = torch.eye(gate.map.weight.shape[0], dtype=g.dtype)
            new = {
                "proj.weight": g.new_zeros(gate.proj.weight.shape),
                "proj.bias": g.new_zeros(1),
                "map.weight": 2 * torch.tanh(g) * eye,
                "map.bias": g.new_zeros(gate.map.bias.shape),
            }
            out.update({f"context_gates.{name}.{k}": v for k, v in new.items()})
        return out

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def encode(self, inputs: Mapping[str, Mapping[str, Tensor]]) -> dict[str, EncoderOutput]:
        """Each modality's :class:`EncoderOutput`: its encoder on its inputs, or, for a
        modality whose inputs are cached outputs (:func:`mmml_core.cache.is_cached`: the
        feature cache of a frozen encoder), those outputs as they are."""
        out = {}
        for m, x in inputs.items():
            if m in self.encoders:
                cached = cached_output(x)
                out[m] = cached if cached is not None else self.encoders[m](x)
        return out

    def forward(
        self,
        inputs: Mapping[str, Mapping[str, Tensor]],
        context: Mapping[str, Any] | None = None,
    ) -> dict[str, Tensor]:
        """Predictions per head. ``context`` (a context model only; the collate's
        ``batch["context"]``): ``present`` (B,) bool, which items have earlier utterances, and
        ``inputs``, the encoder inputs of those items' context (None when none has one).
        Without it every item counts as having no context."""
        missing_all = [m for m in inputs if m not in self.encoders]
        if missing_all:
            raise KeyError(f"inputs for {missing_all}, but the model encodes {self.modalities}")
        encoded = self.encode(inputs)
        fuse = self.fusion is not None and self.head is not None
        fuse = fuse and len(encoded) == len(self.encoders)
        fused = self.fusion(encoded) if fuse else None  # (B, F)
        pooled = {m: out.pooled for m, out in encoded.items()}  # each (B, D)
        if self.spec.context:
            fused, pooled = self._with_context(fused, pooled, context)
        preds: dict[str, Tensor] = {}
        if fused is not None:
            preds["M"] = self.head(fused)  # (B,)
        for m, vector in pooled.items():
            if m in self.subnet_heads:
                preds[self.head_names[m]] = self.subnet_heads[m](vector)  # (B,)
        if not preds:
            raise ValueError(
                f"no head can predict from {sorted(inputs)} alone; heads: {list(self.spec.heads)}"
            )
        return preds

    def _with_context(
        self,
        fused: Tensor | None,
        pooled: Mapping[str, Tensor],
        context: Mapping[str, Any] | None,
    ) -> tuple[Tensor | None, dict[str, Tensor]]:
        """Current features joined with the context's: the same encoders and the same fusion
        (shared weights) on the items that have context; zeros, so masked out, for the items
        that have none (docs/architecture.md#context)."""
        first = fused if fused is not None else next(iter(pooled.values()))
        b = first.shape[0]
        present = None if context is None else context.get("present")
        ctx_inputs = None if context is None else context.get("inputs")
        ctx_fused: Tensor | None = None
        ctx_pooled: dict[str, Tensor] = {}
        if present is not None and ctx_inputs and bool(present.any()):
            rows = present.nonzero().squeeze(1)  # (P,) the items with context
            enc = self.encode({m: ctx_inputs[m] for m in pooled if m in ctx_inputs})
            if fused is not None:
                sub = self.fusion(enc)  # (P, F)
                ctx_fused = sub.new_zeros(b, sub.shape[1]).index_copy(0, rows, sub)
            for m, out in enc.items():
                v = out.pooled  # (P, D)
                ctx_pooled[m] = v.new_zeros(b, v.shape[1]).index_copy(0, rows, v)
        gates = self.context_gates
        if fused is not None:
            if ctx_fused is None:
                ctx_fused = torch.zeros_like(fused)
            elif gates is not None:
                ctx_fused = gates["fused"](fused, ctx_fused)
            fused = torch.cat([fused, ctx_fused.to(fused.dtype)], dim=-1)  # (B, 2F)
        out = {}
        for m, v in pooled.items():
            c = ctx_pooled.get(m)
            if c is None:
                c = torch.zeros_like(v)
            elif gates is not None:
                c = gates[m](v, c)
            out[m] = torch.cat([v, c.to(v.dtype)], -1)
        return fused, out  # pooled: each (B, 2D)

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
    width = 2 if spec.context else 1  # heads read current and context features

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
                "head", spec.head.name, in_dim=fusion.out_dim * width, **spec.head.config
            )

    subnet_heads = {
        m: registry.create(
            "head", spec.subnet_head.name, in_dim=dims[m] * width, **spec.subnet_head.config
        )
        for m in encoders
        if head_name(encoders[m]) in spec.heads
    }
    return MultimodalModel(spec, encoders, fusion, head, subnet_heads)
