"""Tests of the ``cross_attn`` fusion: contract, an independent computation of the formulas
of docs/fusion.md over the module's own weights, the hand-derived parameter count, config errors."""

from __future__ import annotations

import math

import pytest
import torch
from mmml_fusion_transformer.cross_attn import CrossAttentionFusion
from torch import Tensor

from mmml_core import registry
from mmml_core.config import ConfigError
from mmml_core.interfaces import EncoderOutput
from mmml_core.testing import FusionContract, random_encoder_outputs

TINY = CrossAttentionFusion.contract_config()


# --------------------------------------------------------------------------- contract suite


class TestContractFused(FusionContract):
    name = "cross_attn"  # contract_config; contract widths 12 / 10 differ: projections on


class TestContractEqualWidths(FusionContract):
    name = "cross_attn"
    input_dims = {"text": 16, "audio": 16}  # the paper's setup: no projection
    config = {"heads": 4, "layers": 2}


class TestContractConcat(FusionContract):
    name = "cross_attn"
    config = {**TINY, "variant": "concat"}


class TestContractTransformerMean(FusionContract):
    name = "cross_attn"
    config = {**TINY, "variant": "transformer", "transformer_pool": "mean"}


class TestContractTransformerCls(FusionContract):
    name = "cross_attn"
    config = {**TINY, "variant": "transformer", "transformer_pool": "cls"}


# --------------------------------------------- independent computation of docs/fusion.md
# Written from the formulas, not from the module: explicit x @ W.T + b, a loop over heads,
# -inf on masked keys, softmax, LayerNorm from its definition. Only the weights are shared.


def linear(x: Tensor, lin: torch.nn.Linear) -> Tensor:
    return x @ lin.weight.T + lin.bias


def layer_norm(x: Tensor, ln: torch.nn.LayerNorm) -> Tensor:
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)  # biased variance, as LayerNorm
    return (x - mean) / torch.sqrt(var + ln.eps) * ln.weight + ln.bias


def multi_head_attention(query: Tensor, context: Tensor, key_keep: Tensor, att, heads: int):
    """O · concat_heads(softmax(Q_h K_h^T / sqrt(d)) V_h), masked keys get -inf."""
    Q, K, V = linear(query, att.q), linear(context, att.k), linear(context, att.v)
    width = Q.shape[-1]
    d = width // heads
    per_head = []
    for i in range(heads):
        cols = slice(i * d, (i + 1) * d)
        scores = Q[..., cols] @ K[..., cols].transpose(1, 2) / math.sqrt(d)  # B x Tq x Tk
        scores = scores.masked_fill(~key_keep[:, None, :], float("-inf"))
        per_head.append(torch.softmax(scores, dim=-1) @ V[..., cols])
    return linear(torch.cat(per_head, dim=-1), att.o)


def attention_block(x: Tensor, context: Tensor, key_keep: Tensor, block, heads: int) -> Tensor:
    return layer_norm(
        x + multi_head_attention(x, context, key_keep, block.attention, heads), block.norm
    )


def ffn_block(x: Tensor, block) -> Tensor:
    return layer_norm(x + linear(torch.relu(linear(x, block.up)), block.down), block.norm)


def reference(f: CrossAttentionFusion, enc: dict[str, EncoderOutput]) -> Tensor:
    c = f.config
    heads = c.heads
    L, A = enc["text"].hidden, enc["audio"].hidden
    pooled = {"text": enc["text"].pooled, "audio": enc["audio"].pooled}
    if f.proj is not None:
        L, A = linear(L, f.proj["text"]), linear(A, f.proj["audio"])
        pooled = {m: linear(p, f.proj[m]) for m, p in pooled.items()}
    orig = {"text": L, "audio": A}
    B = L.shape[0]
    ones = torch.ones(B, 1, dtype=torch.bool)
    # CLS prepended, mask gets a leading keep
    L = torch.cat([f.cls["text"].expand(B, 1, -1), L], dim=1)
    A = torch.cat([f.cls["audio"].expand(B, 1, -1), A], dim=1)
    mL = torch.cat([ones, enc["text"].mask], dim=1)
    mA = torch.cat([ones, enc["audio"].mask], dim=1)
    for layer in f.layers:
        L1 = attention_block(L, A, mA, layer.cross["text"], heads)
        A1 = attention_block(A, L, mL, layer.cross["audio"], heads)
        L2 = attention_block(L1, L1, mL, layer.self_attn["text"], heads)
        A2 = attention_block(A1, A1, mA, layer.self_attn["audio"], heads)
        L, A = ffn_block(L2, layer.ffn["text"]), ffn_block(A2, layer.ffn["audio"])
    fused = {"text": L, "audio": A}
    masks = {"text": mL, "audio": mA}
    if c.variant == "fused":
        return torch.cat([L[:, 0], A[:, 0]], dim=1)
    if c.variant == "concat":
        parts = []
        for m in ("text", "audio"):
            lin = f.mix[m][1]
            parts.append(torch.relu(linear(torch.cat([pooled[m], fused[m][:, 0]], dim=1), lin)))
        return torch.cat(parts, dim=1)
    parts = []
    for m in ("text", "audio"):
        original = torch.cat([pooled[m][:, None, :], orig[m]], dim=1)  # pooled opposite CLS
        z = torch.cat([original, fused[m]], dim=2)
        keep = masks[m]
        if c.transformer_pool == "cls":
            z = torch.cat([f.variant_cls[m].expand(B, 1, -1), z], dim=1)
            keep = torch.cat([ones, keep], dim=1)
        for layer in f.variant_encoders[m]:
            z = attention_block(z, z, keep, layer.self_attn, heads)
            z = ffn_block(z, layer.ffn)
        if c.transformer_pool == "cls":
            parts.append(z[:, 0])
        else:
            w = keep.float()[:, :, None]
            parts.append((z * w).sum(dim=1) / w.sum(dim=1))
    return torch.cat(parts, dim=1)


def randomize(f: torch.nn.Module, seed: int) -> None:
    """Non-trivial weights everywhere (biases and LayerNorm affine included)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in f.named_parameters():
            noise = torch.randn(p.shape, generator=g)
            p.copy_(1.0 + 0.1 * noise if name.endswith("norm.weight") else 0.3 * noise)


CASES = [
    # input widths, fusion config
    ({"text": 16, "audio": 16}, {"heads": 4, "layers": 2}),  # equal widths, no projection
    ({"text": 16, "audio": 12}, {"heads": 4, "layers": 3}),  # unequal: projections
    ({"text": 16, "audio": 16}, {"hidden": 8, "heads": 2, "layers": 2}),  # H != widths
    ({"text": 16, "audio": 12}, {"heads": 4, "layers": 2, "variant": "concat"}),
    (
        {"text": 16, "audio": 12},
        {
            "heads": 4,
            "layers": 2,
            "variant": "transformer",
            "variant_layers": 2,
            "transformer_pool": "mean",
        },
    ),
    (
        {"text": 16, "audio": 16},
        {
            "heads": 4,
            "layers": 2,
            "variant": "transformer",
            "variant_layers": 1,
            "transformer_pool": "cls",
        },
    ),
]


@pytest.mark.parametrize(("dims", "cfg"), CASES)
def test_equals_independent_computation(dims: dict[str, int], cfg: dict) -> None:
    f = registry.create("fusion", "cross_attn", input_dims=dims, **cfg).eval()
    assert (f.proj is None) == (set(dims.values()) == {f.hidden_size})
    randomize(f, seed=1)
    # different lengths in the batch, padding holds large garbage
    enc = random_encoder_outputs(dims, {"text": [5, 2, 7, 1], "audio": [3, 9, 6, 8]}, seed=2)
    with torch.no_grad():
        got = f(enc)
        want = reference(f, enc)
    assert got.shape == want.shape == (4, f.out_dim)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_output_is_the_two_cls_states() -> None:
    """The fused output is L'[:, 0] then A'[:, 0]: changing audio changes the text half too
    (cross-attention), and the halves are each LayerNorm outputs (zero mean per half)."""
    f = registry.create(
        "fusion", "cross_attn", input_dims={"text": 8, "audio": 8}, heads=2, layers=1
    ).eval()
    with torch.no_grad():
        f.layers[0].ffn["text"].norm.bias.zero_()
        f.layers[0].ffn["audio"].norm.bias.zero_()
    enc = random_encoder_outputs({"text": 8, "audio": 8}, {"text": [3, 4], "audio": [5, 2]})
    with torch.no_grad():
        out = f(enc)
        torch.testing.assert_close(out[:, :8].mean(1), torch.zeros(2), atol=1e-5, rtol=0)
        torch.testing.assert_close(out[:, 8:].mean(1), torch.zeros(2), atol=1e-5, rtol=0)
        enc["audio"].hidden[:, :2] += 1.0
        assert not torch.allclose(f(enc)[:, :8], out[:, :8])


def test_empty_modality_item_stays_finite() -> None:
    """An item with no valid audio frame at all still attends to the audio CLS: no NaN."""
    dims = {"text": 8, "audio": 8}
    enc = random_encoder_outputs(dims, {"text": [3, 4], "audio": [5, 2]})
    enc["audio"].mask[1] = False
    enc["audio"].hidden[1] = float("nan")  # even NaN in padding must not leak
    for variant in ("fused", "concat", "transformer"):
        f = registry.create(
            "fusion", "cross_attn", input_dims=dims, heads=2, layers=2, variant=variant
        ).train()
        assert torch.isfinite(f(enc)).all(), variant


def test_defaults_follow_design() -> None:
    with torch.device("meta"):
        f = registry.create("fusion", "cross_attn", input_dims={"text": 768, "audio": 768})
    c = f.config
    assert (f.hidden_size, c.heads, c.layers, c.variant) == (768, 12, 5, "fused")
    assert f.proj is None and f.out_dim == 2 * 768
    norms = [m for m in f.modules() if isinstance(m, torch.nn.LayerNorm)]
    assert len(norms) == 5 * 6 and all(n.eps == 1e-12 for n in norms)
    drops = [m for m in f.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 5 * 6 and all(d.p == 0.3 for d in drops)
    attentions = [m for n, m in f.named_modules() if n.endswith(".attention")]
    assert len(attentions) == 5 * 4
    assert all(a.attention_dropout == 0.3 and a.heads == 12 for a in attentions)
    ffn = f.layers[0].ffn["text"]
    assert (ffn.up.in_features, ffn.up.out_features) == (768, 4 * 768)
    # no weight sharing: parameters() drops a tensor registered twice, this count does not
    assert len(list(f.named_parameters(remove_duplicate=False))) == len(list(f.parameters()))


def test_dropout_is_active_in_training() -> None:
    f = registry.create(
        "fusion", "cross_attn", input_dims={"text": 8, "audio": 8}, heads=2, layers=1
    )
    enc = random_encoder_outputs({"text": 8, "audio": 8}, {"text": [3, 4], "audio": [5, 2]})
    f.train()
    assert not torch.allclose(f(enc), f(enc))
    f.eval()
    torch.testing.assert_close(f(enc), f(enc), atol=0, rtol=0)


# --------------------------------------------------------------------------- parameter count


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def hand_count_fused(H: int, layers: int) -> int:
    linear = H * H + H  # one H -> H projection with bias
    attention_block = 4 * linear  # Q, K, V, O
    ffn = (H * 4 * H + 4 * H) + (4 * H * H + H)  # W1 (H -> 4H) + W2 (4H -> H), with bias
    layer_norm = 2 * H  # gain + bias
    per_layer = (
        4 * attention_block  # cross text, cross audio, self text, self audio
        + 2 * ffn  # one FFN per modality
        + 6 * layer_norm  # one post-norm after each of the six residual blocks
    )
    cls = 2 * H  # one learned CLS vector per modality
    return cls + layers * per_layer


def test_parameter_count_at_base_size() -> None:
    H, layers = 768, 5
    # per layer: 4 * 4 * (768*768 + 768)            = 9,449,472
    #          + 2 * (768*3072 + 3072 + 3072*768 + 768) = 9,444,864
    #          + 6 * 2 * 768                        =     9,216   -> 18,903,552
    # 5 layers = 94,517,760; + CLS 2 * 768 = 1,536  -> 94,519,296
    expected = hand_count_fused(H, layers)
    assert expected == 94_519_296
    with torch.device("meta"):  # no memory, no init cost
        f = registry.create(
            "fusion", "cross_attn", input_dims={"text": H, "audio": H}, heads=12, layers=layers
        )
    assert count(f) == expected


def test_parameter_count_with_projection_and_variants() -> None:
    H, layers = 768, 5
    base = hand_count_fused(H, layers)
    with torch.device("meta"):
        proj = registry.create("fusion", "cross_attn", input_dims={"text": H, "audio": 65})
        concat = registry.create(
            "fusion", "cross_attn", input_dims={"text": H, "audio": H}, variant="concat"
        )
        trans = registry.create(
            "fusion",
            "cross_attn",
            input_dims={"text": H, "audio": H},
            variant="transformer",
            variant_layers=2,
            transformer_pool="cls",
        )
    # widths differ: every modality gets Linear(D_m, H)
    assert count(proj) == base + (H * H + H) + (65 * H + H)
    # concat: per modality Linear(2H, H)
    assert count(concat) == base + 2 * (2 * H * H + H)
    # transformer: per modality 2 standard layers at W = 2H plus a W-wide CLS
    W = 2 * H
    enc_layer = 4 * (W * W + W) + (W * 4 * W + 4 * W) + (4 * W * W + W) + 2 * (2 * W)
    assert count(trans) == base + 2 * (2 * enc_layer + W)
    assert trans.out_dim == 4 * H


# ------------------------------------------------------------------------------ config errors


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"input_dims": {"text": 8, "vision": 8}}, "exactly the two modalities"),
        ({"input_dims": {"text": 8, "audio": 8, "vision": 8}}, "exactly the two modalities"),
        ({"input_dims": {"text": 10, "audio": 8}, "heads": 4}, "not divisible"),
        ({"input_dims": {"text": 8, "audio": 8}, "heads": 2, "variant": "sum"}, "variant"),
        (
            {"input_dims": {"text": 8, "audio": 8}, "heads": 2, "transformer_pool": "max"},
            "transformer_pool",
        ),
        ({"input_dims": {"text": 8, "audio": 8}, "heads": 2, "layers": 0}, "layers"),
    ],
)
def test_config_errors(cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        registry.create("fusion", "cross_attn", **cfg)
    assert "transformer_pool" in str(info.value)  # the valid fields are listed


def test_missing_modality_at_forward() -> None:
    f = registry.create("fusion", "cross_attn", input_dims={"text": 8, "audio": 8}, heads=2)
    enc = random_encoder_outputs({"text": 8}, {"text": [2, 3]})
    with pytest.raises(KeyError, match="audio"):
        f(enc)
