"""``cross_attn``: the MMML fusion network (Wu et al., "Multi-Modality Multi-Loss Fusion
Network", section 3.2 and Fig. 1; the two variants of section 3.4 and Table 6).

Specification: docs/fusion.md. A learned CLS vector is prepended to each modality's sequence (its
mask gets a leading keep), then ``layers`` identical (but not weight-shared) layers run, each,
for the text sequence L and the audio sequence A::

    L1 = LN(L  + Drop(O · MHA(q=L,  k=v=A,  keys masked by A's mask)))   # cross-attention;
    A1 = LN(A  + Drop(O · MHA(q=A,  k=v=L,  keys masked by L's mask)))   # both read L and A
    L2 = LN(L1 + Drop(O · MHA(q=k=v=L1, keys masked by L's mask)))       # self-attention
    A2 = LN(A1 + Drop(O · MHA(q=k=v=A1, keys masked by A's mask)))
    L' = LN(L2 + Drop(W2 · ReLU(W1 · L2)))                               # position-wise FFN
    A' = LN(A2 + Drop(W2 · ReLU(W1 · A2)))

N modalities (any N >= 2, any names). The modalities are taken in the *fusion order*:
``text`` first, ``audio`` second (those of the two that are present), then every other
modality in sorted name order (:func:`modality_order`; text + audio + vision gives text,
audio, vision). Write X_m for modality m's sequence at a layer's input and keep_m for its
mask. Each layer computes, for every modality m::

    C_m  = concat_time( X_n  for n != m, in the fusion order )        # (B, sum_n (T_n+1), H)
    k_m  = concat_time( keep_n for n != m, in the fusion order )
    X1_m = LN(X_m  + Drop(O · MHA(q=X_m, k=v=C_m, keys masked by k_m)))  # cross-attention
    X2_m = LN(X1_m + Drop(O · MHA(q=k=v=X1_m, keys masked by keep_m)))   # self-attention
    X'_m = LN(X2_m + Drop(W2 · ReLU(W1 · X2_m)))                         # position-wise FFN

so every modality's cross-attention reads the other modalities' layer inputs (their CLS
positions included) as one key sequence: one softmax over all their valid positions
together, not one attention per pair. Every block has its own weights per modality, named
after the query modality (``layers.i.cross.<m>``, ``layers.i.self_attn.<m>``,
``layers.i.ffn.<m>``). With N = 2 the key sequence of text is audio's alone and of audio is
text's alone: exactly the two-modality layer above, with the same parameter names, the same
order of the blocks (all cross-attentions, then all self-attentions, then all FFNs, each in
the fusion order, so dropout draws its masks in the same order too) and the same results,
bit for bit; a two-modality checkpoint loads with ``strict=True``.

Every attention block has its own Q, K, V, O projections (with bias) and its own LayerNorm;
there is no positional encoding (the encoders below already encoded positions). Attention
runs through ``torch.nn.functional.scaled_dot_product_attention`` with a boolean key-padding
mask; the CLS position is always a valid key, so no attention row is ever fully masked.

Output per ``variant``:

Every variant computes one feature per modality, each from that modality's own states only,
and concatenates the features in the fusion order (text first): width N·H, or N·W for the
``transformer`` variant; 2H and 4H for text + audio.

- ``fused`` (the paper's model): ``concat(L'[:, 0], A'[:, 0])``, width 2H.
- ``concat`` (section 3.4, "Concatenation Variation"): per modality
  ``ReLU(Linear(2H, H)(Drop(concat(original pooled, fused CLS))))``, then the modalities
  concatenated: width 2H.
- ``transformer`` (section 3.4, "Transformer Variation"), in the form ``transformer_form``
  selects (the field has no effect on the other variants):

  - ``"ours"`` (default): per modality the original hidden states and the fused states are
    concatenated along features (width 2H) and run through a small standard post-norm
    transformer encoder built from this module's blocks (``variant_layers`` layers, FFN 4·2H,
    the fusion's heads, dropouts and eps, BERT-style init); the modality's feature is the
    masked mean of its hidden states (``transformer_pool="mean"``, the paper's text) or the
    output at a new learned 2H CLS (``"cls"``, our own form, not the authors' code).
    Alignment: the fused sequence has the CLS at position 0, the encoder sequence has no CLS;
    position 0 of the original side holds the encoder's pooled vector (the original
    utterance-level summary, as the ``concat`` variant pairs it with the fused CLS), and
    positions 1.. hold the encoder's hidden states, so every row pairs a time step with its
    own fused state.
  - ``"authors"`` (the authors' code): per modality the original hidden states (B, T, H) are
    concatenated along features with the fused states *without* the fused CLS,
    ``x[m][:, 1:]``, giving (B, T, 2H) with no pooled vector; a new learned 2H CLS is
    prepended (mask ``[True ; encoder mask]``) and the sequence runs through PyTorch's own
    ``nn.TransformerEncoder`` of ``variant_layers`` ``nn.TransformerEncoderLayer`` layers
    (d_model 2H, the fusion's ``heads``, feed-forward 2048, dropout 0.1, ReLU, eps 1e-5,
    post-norm, batch first, nested tensors off) with ``src_key_padding_mask = ~mask``; the
    feature is the output at the CLS. Those layers keep PyTorch's default init
    (``reset_parameters`` leaves them alone; ``nn.TransformerEncoder`` starts every layer as
    a copy of one layer). ``transformer_pool`` has no effect in this form. The authors' code
    has two modalities; with more, each further modality gets the same per-modality
    computation (its own encoder and CLS), as ours does.

  Either form: the modalities concatenated, width 4H for two.

Width H: ``hidden``, or by default the width of the first modality in the fusion order: the
text encoder's (768 for roberta-base, the paper's setup) whenever text is present. When every encoder already has width H there is no projection; otherwise each
modality gets a ``Linear(D_m, H)`` (applied to its hidden states and, for the variants, its
pooled vector), so the "original" signals of the variants are the projected ones.

The learned CLS vectors (per modality, and the new 2H CLS of the ``transformer`` variant where
it has one: ``transformer_pool="cls"`` or the ``authors`` form) are drawn from
N(0, ``cls_init_std``): 0.02 by default (BERT-style, like every weight); the authors' code
keeps them in an ``nn.Embedding``, drawn N(0, 1), which the ``authors`` profile sets.

Padding: padded encoder positions are zeroed on entry, so no value there (not even NaN or
inf) can reach a valid position; padded query rows compute finite values that never feed a
valid position or a CLS, because they are masked out as keys everywhere (in the ``authors``
form too: ``src_key_padding_mask`` excludes them as keys of PyTorch's encoder).

Legend of the letters in shape comments:
    B   batch size
    T   a modality's encoder sequence length; T+1 with the CLS prepended
    Tq  query length, Tk key length of one attention call
    D   a modality's encoder width (D_m)
    H   fusion width; h heads of width d = H / h
    W   width of the transformer variant, 2H
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmml_core.interfaces import EncoderOutput, Fusion

__all__ = [
    "MODALITIES",
    "modality_order",
    "default_heads",
    "FORMS",
    "POOLS",
    "VARIANTS",
    "CrossAttentionFusion",
    "CrossAttentionFusionConfig",
]

#: The paper's two modalities: first in the fusion order, in this order (text features first).
MODALITIES: tuple[str, str] = ("text", "audio")
VARIANTS: tuple[str, ...] = ("fused", "concat", "transformer")
POOLS: tuple[str, ...] = ("mean", "cls")
#: Forms of the ``transformer`` variant: our own blocks, or the authors' PyTorch encoder.
FORMS: tuple[str, ...] = ("ours", "authors")
# The authors' encoder layer: PyTorch's nn.TransformerEncoderLayer defaults, spelled out so
# that a change of PyTorch's defaults cannot change the model.
_AUTHORS_FFN = 2048
_AUTHORS_DROPOUT = 0.1
_AUTHORS_EPS = 1e-5


def modality_order(names: Iterable[str]) -> tuple[str, ...]:
    """The fusion order of a set of modalities: ``text``, then ``audio`` (those present), then
    the others in sorted name order. It never depends on the order of ``input_dims``, and for
    text + audio it is the paper's (and the two-modality fusion's) order, text first."""
    names = set(names)
    return tuple(m for m in MODALITIES if m in names) + tuple(sorted(names - set(MODALITIES)))


@dataclass
class CrossAttentionFusionConfig:
    # modality -> encoder width; filled in by the model assembly; 2 or more modalities, taken
    # in the fusion order (modality_order: text, audio, then the others by name)
    input_dims: dict[str, int] = field(default_factory=dict)
    # H; None = the width of the first modality in the fusion order (text's when present), so
    # the paper's equal-width encoders need no projection
    hidden: int | None = None
    # None: chosen from the width by :func:`default_heads` (12 for 768, 16 for 1024, 4 for 64)
    heads: int | None = None
    layers: int = 5  # the paper (appendix A.1) found 5 fusion layers best
    dropout: float = 0.3  # on every residual branch (hidden dropout), docs/fusion.md
    attention_dropout: float = 0.3  # on the attention probabilities, docs/fusion.md
    layer_norm_eps: float = 1e-12  # the BERT/RoBERTa value, matching the text encoder
    variant: str = "fused"  # fused | concat | transformer (paper section 3.4, Table 6)
    # transformer variant only (either form): the paper says "transformer encoders" (plural);
    # 2 is the smallest plural stack and keeps the variant's cost near one extra fusion layer.
    # The authors' code uses 3 for English, 2 for Mandarin (the "authors" profile sets these)
    variant_layers: int = 2
    # transformer variant only: "mean" of the hidden states (paper's text) or a new 2H "cls"
    # vector (authors' code)
    transformer_pool: str = "mean"
    # std of the normal init N(0, std) of every learned CLS vector: the per-modality CLS and
    # the transformer variant's 2H CLS. 0.02 = BERT-style, as every weight here; the authors'
    # code uses nn.Embedding(1, H), N(0, 1) (the "authors" profile sets 1.0). > 0, finite
    cls_init_std: float = 0.02
    # transformer variant only (no effect on fused / concat): "ours" = the encoder of our
    # blocks over [pooled ; hidden] | fused states, pooled by transformer_pool; "authors" = the
    # authors' code: hidden | fused states without the fused CLS, a new 2H CLS, PyTorch's
    # nn.TransformerEncoder (FFN 2048, dropout 0.1, eps 1e-5, post-norm), read at the CLS
    # (transformer_pool has no effect there); variant_layers sets its depth
    transformer_form: str = "ours"

    def __post_init__(self) -> None:
        dims = dict(self.input_dims)
        if len(dims) < 2:
            raise ValueError(
                "cross_attn fuses at least two modalities (each modality's cross-attention "
                f"reads the others); got input_dims {dims}"
            )
        names = [m for m in dims if not isinstance(m, str) or not m or "." in m]
        if names:
            raise ValueError(
                "input_dims names must be non-empty strings without '.' (they name the "
                f"fusion's parameters); got {names}"
            )
        bad = {m: d for m, d in dims.items() if not isinstance(d, int) or d <= 0}
        if bad:
            raise ValueError(f"input_dims must be positive integers, got {bad}")
        if self.hidden is not None and self.hidden <= 0:
            raise ValueError(f"hidden must be positive or None, got {self.hidden}")
        width = self.width
        if self.heads is None:
            self.heads = default_heads(width)
        if self.heads <= 0 or width % self.heads:
            raise ValueError(f"the fusion width H={width} is not divisible by heads={self.heads}")
        if self.layers < 1:
            raise ValueError(f"layers must be at least 1, got {self.layers}")
        for name in ("dropout", "attention_dropout"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {p}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.transformer_pool not in POOLS:
            raise ValueError(
                f"transformer_pool must be one of {POOLS}, got {self.transformer_pool!r}"
            )
        if self.variant_layers < 1:
            raise ValueError(f"variant_layers must be at least 1, got {self.variant_layers}")
        if self.transformer_form not in FORMS:
            raise ValueError(
                f"transformer_form must be one of {FORMS}, got {self.transformer_form!r}"
            )
        std = self.cls_init_std
        if (
            isinstance(std, bool)
            or not isinstance(std, (int, float))
            or not math.isfinite(std)
            or std <= 0
        ):
            raise ValueError(f"cls_init_std must be a finite number > 0, got {std!r}")
        self.cls_init_std = float(std)

    @property
    def modalities(self) -> tuple[str, ...]:
        """The modalities of ``input_dims`` in the fusion order (:func:`modality_order`)."""
        return modality_order(self.input_dims)

    @property
    def width(self) -> int:
        """H: ``hidden`` if given, else the width of the first modality in the fusion order
        (the text encoder's when there is one)."""
        if self.hidden is not None:
            return self.hidden
        return int(self.input_dims[self.modalities[0]])


def default_heads(width: int) -> int:
    """Attention heads for a fusion of width H when none are given: heads of width 64 (the
    BERT-family convention: 768 -> 12 as roberta-base and the paper, 1024 -> 16 as the large
    encoders) when H is a multiple of 64 and at least 128; otherwise the most heads of width at
    least 16 that divide H (64 -> 4, 96 -> 6, 100 -> 5), at least one."""
    if width % 64 == 0 and width >= 128:
        return width // 64
    return max(h for h in range(1, max(1, width // 16) + 1) if width % h == 0)


class _Attention(nn.Module):
    """Multi-head attention with its own Q, K, V, O projections (with bias).

    ``key_mask`` (B, Tk) is True on keys that take part; every row must have one.
    """

    def __init__(self, width: int, heads: int, attention_dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.attention_dropout = attention_dropout
        self.q = nn.Linear(width, width)
        self.k = nn.Linear(width, width)
        self.v = nn.Linear(width, width)
        self.o = nn.Linear(width, width)

    def forward(self, query: Tensor, context: Tensor, key_mask: Tensor) -> Tensor:
        B, Tq, H = query.shape
        Tk = context.shape[1]
        h, d = self.heads, H // self.heads
        q = self.q(query).view(B, Tq, h, d).transpose(1, 2)  # (B, h, Tq, d)
        k = self.k(context).view(B, Tk, h, d).transpose(1, 2)  # (B, h, Tk, d)
        v = self.v(context).view(B, Tk, h, d).transpose(1, 2)  # (B, h, Tk, d)
        mask = key_mask[:, None, None, :]  # (B, 1, 1, Tk), broadcast over heads and queries
        p = self.attention_dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)  # (B,h,Tq,d)
        out = out.transpose(1, 2).reshape(B, Tq, H)  # (B, Tq, H)
        return self.o(out)  # (B, Tq, H)


class _AttentionBlock(nn.Module):
    """Post-norm residual attention: ``LN(x + Drop(O · MHA(q=x, k=v=context)))``."""

    def __init__(
        self, width: int, heads: int, dropout: float, attention_dropout: float, eps: float
    ) -> None:
        super().__init__()
        self.attention = _Attention(width, heads, attention_dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: Tensor, context: Tensor, key_mask: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.attention(x, context, key_mask)))  # (B, Tq, H)


class _FeedForwardBlock(nn.Module):
    """Post-norm residual position-wise FFN: ``LN(x + Drop(W2 · ReLU(W1 · x)))``, inner 4x."""

    def __init__(self, width: int, dropout: float, eps: float) -> None:
        super().__init__()
        self.up = nn.Linear(width, 4 * width)
        self.down = nn.Linear(4 * width, width)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.down(F.relu(self.up(x)))))  # (B, T, H)


class _FusionLayer(nn.Module):
    """One MMML fusion layer: per modality, cross-attention to the other modalities, then
    self-attention, then the FFN (the module docstring's N-modality rule)."""

    def __init__(self, c: CrossAttentionFusionConfig) -> None:
        super().__init__()
        H = c.width
        order = c.modalities
        self.modalities = order

        def attention() -> _AttentionBlock:
            return _AttentionBlock(H, c.heads, c.dropout, c.attention_dropout, c.layer_norm_eps)

        # keyed by the modality whose sequence the block updates (the query modality)
        self.cross = nn.ModuleDict({m: attention() for m in order})
        self.self_attn = nn.ModuleDict({m: attention() for m in order})
        self.ffn = nn.ModuleDict(
            {m: _FeedForwardBlock(H, c.dropout, c.layer_norm_eps) for m in order}
        )

    def _others(
        self, m: str, x: Mapping[str, Tensor], mask: Mapping[str, Tensor]
    ) -> tuple[Tensor, Tensor]:
        """The key sequence of modality m's cross-attention: every other modality's sequence
        and mask, joined along time in the fusion order (one modality's as it is)."""
        others = [n for n in self.modalities if n != m]
        if len(others) == 1:  # two modalities: the other one's tensors themselves
            return x[others[0]], mask[others[0]]
        context = torch.cat([x[n] for n in others], dim=1)  # (B, Σ_n (T_n+1), H)
        keep = torch.cat([mask[n] for n in others], dim=1)  # (B, Σ_n (T_n+1))
        return context, keep

    def forward(self, x: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
        # every cross-attention reads this layer's inputs (not another one's output)
        crossed = {m: self.cross[m](x[m], *self._others(m, x, mask)) for m in self.modalities}
        selfed = {m: self.self_attn[m](crossed[m], crossed[m], mask[m]) for m in self.modalities}
        return {m: self.ffn[m](selfed[m]) for m in self.modalities}  # each (B, T+1, H)


class _EncoderLayer(nn.Module):
    """A standard post-norm transformer encoder layer (the ``transformer`` variant)."""

    def __init__(self, width: int, c: CrossAttentionFusionConfig) -> None:
        super().__init__()
        self.self_attn = _AttentionBlock(
            width, c.heads, c.dropout, c.attention_dropout, c.layer_norm_eps
        )
        self.ffn = _FeedForwardBlock(width, c.dropout, c.layer_norm_eps)

    def forward(self, x: Tensor, mask: Tensor) -> Tensor:
        return self.ffn(self.self_attn(x, x, mask))  # (B, T, W)


class CrossAttentionFusion(Fusion):
    """The MMML fusion network over two or more modalities (text and audio in the paper).

    Exact rule for N modalities (module docstring, docs/fusion.md#n-modalities): the
    modalities are taken in the fusion order (:func:`modality_order`: text, audio, then the
    others by name); in every layer, each modality m's cross-attention queries m's sequence
    (CLS first) and attends to the other modalities' layer-input sequences (CLS included)
    joined along time in the fusion order, keys masked by their joined masks; then m's
    self-attention and FFN, as with two. Each variant's per-modality features are
    concatenated in the fusion order: ``out_dim`` = N·H (``fused``, ``concat``) or N·2H
    (``transformer``, either form). With text + audio this is the paper's layer, unchanged
    bit for bit, parameter names included."""

    Config = CrossAttentionFusionConfig

    def __init__(self, config: CrossAttentionFusionConfig) -> None:
        super().__init__(config)
        c = config
        H = c.width
        self.hidden_size = H
        order = c.modalities
        self.modalities = order
        N = len(order)
        dims = {m: int(c.input_dims[m]) for m in order}
        self.proj: nn.ModuleDict | None = None
        if any(d != H for d in dims.values()):
            self.proj = nn.ModuleDict({m: nn.Linear(dims[m], H) for m in order})
        self.cls = nn.ParameterDict({m: nn.Parameter(torch.empty(H)) for m in order})
        self.layers = nn.ModuleList([_FusionLayer(c) for _ in range(c.layers)])

        self.mix: nn.ModuleDict | None = None
        self.variant_encoders: nn.ModuleDict | None = None
        self.variant_cls: nn.ParameterDict | None = None
        self.authors_encoders: nn.ModuleDict | None = None
        self.authors_cls: nn.ParameterDict | None = None
        if c.variant == "fused":
            self.out_dim = N * H
        elif c.variant == "concat":
            self.mix = nn.ModuleDict(
                {
                    m: nn.Sequential(nn.Dropout(c.dropout), nn.Linear(2 * H, H), nn.ReLU())
                    for m in order
                }
            )
            self.out_dim = N * H
        elif c.transformer_form == "authors":
            W = 2 * H
            # PyTorch's own modules (their default init, their state dict keys), as the
            # authors' code builds them
            self.authors_encoders = nn.ModuleDict(
                {
                    m: nn.TransformerEncoder(
                        nn.TransformerEncoderLayer(
                            d_model=W,
                            nhead=c.heads,
                            dim_feedforward=_AUTHORS_FFN,
                            dropout=_AUTHORS_DROPOUT,
                            activation="relu",
                            layer_norm_eps=_AUTHORS_EPS,
                            batch_first=True,
                            norm_first=False,
                        ),
                        num_layers=c.variant_layers,
                        enable_nested_tensor=False,
                    )
                    for m in order
                }
            )
            self.authors_cls = nn.ParameterDict({m: nn.Parameter(torch.empty(W)) for m in order})
            self.out_dim = N * W
        else:  # transformer, our form
            W = 2 * H
            self.variant_encoders = nn.ModuleDict(
                {
                    m: nn.ModuleList([_EncoderLayer(W, c) for _ in range(c.variant_layers)])
                    for m in order
                }
            )
            if c.transformer_pool == "cls":
                self.variant_cls = nn.ParameterDict(
                    {m: nn.Parameter(torch.empty(W)) for m in order}
                )
            self.out_dim = N * W
        self.reset_parameters()

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        """Tiny settings for the contract tests (input_dims come from the contract)."""
        return {"hidden": 16, "heads": 2, "layers": 2, "variant_layers": 1}

    def reset_parameters(self) -> None:
        """BERT-style init (the encoders' convention): N(0, 0.02) weights, zero biases, unit
        LayerNorms; CLS vectors N(0, ``cls_init_std``). The ``authors`` form's PyTorch
        encoders keep PyTorch's default init and are not touched here."""
        pytorch_init: set[nn.Module] = set()
        if self.authors_encoders is not None:
            pytorch_init = set(self.authors_encoders.modules())
        std = self.config.cls_init_std
        for module in self.modules():
            if module in pytorch_init:
                continue
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        for p in self.cls.values():
            nn.init.normal_(p, std=std)
        for extra in (self.variant_cls, self.authors_cls):
            if extra is not None:
                for p in extra.values():
                    nn.init.normal_(p, std=std)

    def _with_cls(self, x: Tensor, keep: Tensor, cls: Tensor) -> tuple[Tensor, Tensor]:
        """Prepend a learned vector and a keep to a sequence and its mask."""
        B = x.shape[0]
        first = cls.to(x.dtype).expand(B, 1, -1)  # (B, 1, width)
        x = torch.cat([first, x], dim=1)  # (B, T+1, width)
        keep = torch.cat([keep.new_ones(B, 1), keep], dim=1)  # (B, T+1)
        return x, keep

    def forward(self, encoded: Mapping[str, EncoderOutput]) -> Tensor:
        order = self.modalities
        missing = [m for m in order if m not in encoded]
        if missing:
            raise KeyError(f"cross_attn was built for {list(order)}; missing {missing}")
        x: dict[str, Tensor] = {}
        mask: dict[str, Tensor] = {}
        original: dict[str, Tensor] = {}
        pooled: dict[str, Tensor] = {}
        for m in order:
            out = encoded[m]
            keep = out.mask.bool()  # (B, T)
            h = out.hidden.masked_fill(~keep[..., None], 0.0)  # (B, T, D), padding zeroed
            p = out.pooled  # (B, D)
            if self.proj is not None:
                h = self.proj[m](h)  # (B, T, H)
                p = self.proj[m](p)  # (B, H)
            original[m], pooled[m] = h, p
            x[m], mask[m] = self._with_cls(h, keep, self.cls[m])  # (B, T+1, H), (B, T+1)

        for layer in self.layers:
            x = layer(x, mask)

        variant = self.config.variant
        if variant == "fused":
            return torch.cat([x[m][:, 0] for m in order], dim=-1)  # (B, N·H)
        if variant == "concat":
            assert self.mix is not None
            feats = [
                self.mix[m](torch.cat([pooled[m], x[m][:, 0]], dim=-1))  # (B, 2H) -> (B, H)
                for m in order
            ]
            return torch.cat(feats, dim=-1)  # (B, N·H)

        if self.authors_encoders is not None:
            assert self.authors_cls is not None
            feats = []
            for m in order:
                # the original hidden states beside the fused states without the fused CLS
                z = torch.cat([original[m], x[m][:, 1:]], dim=-1)  # (B, T, W)
                z, keep = self._with_cls(z, mask[m][:, 1:], self.authors_cls[m])  # (B, T+1, W)
                z = self.authors_encoders[m](z, src_key_padding_mask=~keep)  # (B, T+1, W)
                feats.append(z[:, 0])  # (B, W), the new CLS
            return torch.cat(feats, dim=-1)  # (B, N·W), (B, 4H) for two

        assert self.variant_encoders is not None
        feats = []
        for m in order:
            # original side aligned with the fused side: pooled vector opposite the fused CLS
            orig = torch.cat([pooled[m][:, None], original[m]], dim=1)  # (B, T+1, H)
            z = torch.cat([orig, x[m]], dim=-1)  # (B, T+1, W)
            keep = mask[m]  # (B, T+1)
            if self.variant_cls is not None:
                z, keep = self._with_cls(z, keep, self.variant_cls[m])  # (B, T+2, W)
            for layer in self.variant_encoders[m]:
                z = layer(z, keep)  # (B, T+1 or T+2, W)
            if self.variant_cls is not None:
                feats.append(z[:, 0])  # (B, W)
            else:
                total = z.masked_fill(~keep[..., None], 0.0).sum(dim=1)  # (B, W)
                feats.append(total / keep.sum(dim=1, keepdim=True).to(z.dtype))  # (B, W)
        return torch.cat(feats, dim=-1)  # (B, N·W), (B, 4H) for two
