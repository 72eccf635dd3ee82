"""``cross_attn`` over N modalities (docs/fusion.md#n-modalities): the contract suite with three
modalities for every variant and form, an independent computation of the N-modality rule over
the module's own weights, the fusion order, and that text + audio is unchanged by the
generalisation: a frozen copy of the two-modality forward of commit df2a17f gives identical
outputs (torch.equal) on the same weights and inputs, and state dicts saved by that code load
with strict=True and reproduce its stored outputs (fixtures/two_modality_reference.safetensors,
written by fixtures/make_two_modality_reference.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from mmml_fusion_transformer.cross_attn import CrossAttentionFusion, modality_order
from safetensors.torch import load_file
from test_cross_attn import attention_block, ffn_block, linear, randomize
from torch import Tensor

from mmml_core import registry
from mmml_core.interfaces import EncoderOutput
from mmml_core.testing import FusionContract, random_encoder_outputs

FIXTURES = Path(__file__).with_name("fixtures")
sys.path.insert(0, str(FIXTURES))
from make_two_modality_reference import CASES as REFERENCE_CASES  # noqa: E402

TINY = CrossAttentionFusion.contract_config()
THREE = {"text": 12, "audio": 10, "vision": 6}
THREE_LENGTHS = {"text": [3, 7, 5], "audio": [9, 4, 6], "vision": [2, 5, 8]}


# --------------------------------------------------------- contract suite, three modalities


class _Three(FusionContract):
    name = "cross_attn"
    input_dims = THREE
    lengths = THREE_LENGTHS


class TestContractThreeFused(_Three):
    pass  # contract_config; widths 12 / 10 / 6 differ: projections on


class TestContractThreeEqualWidths(_Three):
    input_dims = {"text": 16, "audio": 16, "vision": 16}  # no projection
    config = {"heads": 4, "layers": 2}


class TestContractThreeConcat(_Three):
    config = {**TINY, "variant": "concat"}


class TestContractThreeTransformerMean(_Three):
    config = {**TINY, "variant": "transformer", "transformer_pool": "mean"}


class TestContractThreeTransformerCls(_Three):
    config = {**TINY, "variant": "transformer", "transformer_pool": "cls"}


class TestContractThreeTransformerAuthors(_Three):
    config = {**TINY, "variant": "transformer", "transformer_form": "authors", "cls_init_std": 1.0}


class TestContractWithoutText(FusionContract):
    name = "cross_attn"
    input_dims = {"audio": 10, "vision": 6}  # H = audio's width, the first in the fusion order
    lengths = {"audio": [9, 4, 6], "vision": [2, 5, 8]}
    config = {"heads": 2, "layers": 2}


# ------------------------------------------------ the N-modality rule, computed independently


def reference_n(f: CrossAttentionFusion, enc: dict[str, EncoderOutput]) -> Tensor:
    """docs/fusion.md#n-modalities from the formulas (explicit attention, -inf masks, LayerNorm
    written out in test_cross_attn): the modalities in the order text, audio, then the others
    by name; modality m's cross-attention reads the others' layer inputs joined along time."""
    c = f.config
    heads = c.heads
    order = [m for m in ("text", "audio") if m in enc] + sorted(set(enc) - {"text", "audio"})
    B = next(iter(enc.values())).hidden.shape[0]
    ones = torch.ones(B, 1, dtype=torch.bool)
    orig, pooled, X, keep = {}, {}, {}, {}
    for m in order:
        h = enc[m].hidden.masked_fill(~enc[m].mask[..., None], 0.0)
        p = enc[m].pooled
        if f.proj is not None:
            h, p = linear(h, f.proj[m]), linear(p, f.proj[m])
        orig[m], pooled[m] = h, p
        X[m] = torch.cat([f.cls[m].expand(B, 1, -1), h], dim=1)
        keep[m] = torch.cat([ones, enc[m].mask], dim=1)
    for layer in f.layers:
        crossed = {}
        for m in order:
            others = [n for n in order if n != m]
            context = torch.cat([X[n] for n in others], dim=1)
            context_keep = torch.cat([keep[n] for n in others], dim=1)
            crossed[m] = attention_block(X[m], context, context_keep, layer.cross[m], heads)
        X = {
            m: ffn_block(
                attention_block(crossed[m], crossed[m], keep[m], layer.self_attn[m], heads),
                layer.ffn[m],
            )
            for m in order
        }
    parts = []
    for m in order:
        if c.variant == "fused":
            parts.append(X[m][:, 0])
        elif c.variant == "concat":
            lin = f.mix[m][1]
            parts.append(torch.relu(linear(torch.cat([pooled[m], X[m][:, 0]], dim=1), lin)))
        elif c.transformer_form == "authors":
            own = f.authors_encoders[m]  # PyTorch's module, checked in test_cross_attn
            z = torch.cat([orig[m], X[m][:, 1:]], dim=2)
            z = torch.cat([f.authors_cls[m].expand(B, 1, -1), z], dim=1)
            k = torch.cat([ones, enc[m].mask], dim=1)
            with torch.enable_grad():  # PyTorch's Python path, not the fused fast path
                parts.append(own(z, src_key_padding_mask=~k)[:, 0].detach())
        else:
            z = torch.cat([torch.cat([pooled[m][:, None], orig[m]], dim=1), X[m]], dim=2)
            k = keep[m]
            if c.transformer_pool == "cls":
                z = torch.cat([f.variant_cls[m].expand(B, 1, -1), z], dim=1)
                k = torch.cat([ones, k], dim=1)
            for enc_layer in f.variant_encoders[m]:
                z = attention_block(z, z, k, enc_layer.self_attn, heads)
                z = ffn_block(z, enc_layer.ffn)
            if c.transformer_pool == "cls":
                parts.append(z[:, 0])
            else:
                w = k.float()[:, :, None]
                parts.append((z * w).sum(dim=1) / w.sum(dim=1))
    return torch.cat(parts, dim=1)


N_CASES = [
    (THREE, {"heads": 4, "layers": 2, "hidden": 8}),
    ({"text": 16, "audio": 16, "vision": 16}, {"heads": 4, "layers": 2}),  # no projection
    ({"vision": 6, "pulse": 4, "text": 12, "audio": 10}, {"heads": 2, "layers": 2}),  # four
    (THREE, {"heads": 2, "layers": 2, "variant": "concat"}),
    (THREE, {"heads": 2, "layers": 1, "variant": "transformer", "variant_layers": 2}),
    (
        THREE,
        {"heads": 2, "layers": 1, "variant": "transformer", "transformer_pool": "cls"},
    ),
    (
        THREE,
        {
            "hidden": 4,
            "heads": 2,
            "layers": 1,
            "variant": "transformer",
            "transformer_form": "authors",
        },
    ),
]


@pytest.mark.parametrize(("dims", "cfg"), N_CASES)
def test_n_modalities_equal_independent_computation(dims: dict[str, int], cfg: dict) -> None:
    f = registry.create("fusion", "cross_attn", input_dims=dims, **cfg).eval()
    randomize(f, seed=1)
    lengths = {m: [5, 2, 7, 1] if i % 2 else [3, 9, 6, 8] for i, m in enumerate(sorted(dims))}
    enc = random_encoder_outputs(dims, lengths, seed=2)
    with torch.no_grad():
        got = f(enc)
        want = reference_n(f, enc)
    width = 2 * f.hidden_size if f.config.variant == "transformer" else f.hidden_size
    assert got.shape == want.shape == (4, len(dims) * width) == (4, f.out_dim)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_fusion_order_and_parameter_names() -> None:
    assert modality_order({"audio", "text"}) == ("text", "audio")
    assert modality_order(["vision", "audio", "text"]) == ("text", "audio", "vision")
    assert modality_order({"vision", "pulse", "audio"}) == ("audio", "pulse", "vision")
    assert modality_order({"b", "text", "a"}) == ("text", "a", "b")
    a = registry.create("fusion", "cross_attn", input_dims=THREE, heads=2, layers=1)
    reordered = {"vision": 6, "audio": 10, "text": 12}
    b = registry.create("fusion", "cross_attn", input_dims=reordered, heads=2, layers=1)
    assert a.modalities == b.modalities == ("text", "audio", "vision")
    assert list(a.state_dict()) == list(b.state_dict())  # input_dims order changes nothing
    assert a.hidden_size == 12  # text's width
    keys = set(a.state_dict())
    for m in ("text", "audio", "vision"):
        assert f"cls.{m}" in keys and f"proj.{m}.weight" in keys
        assert {f"layers.0.{blk}.{m}.norm.weight" for blk in ("cross", "self_attn", "ffn")} <= keys
    b.load_state_dict(a.state_dict())
    enc = random_encoder_outputs(THREE, THREE_LENGTHS, seed=3)
    with torch.no_grad():
        out = a.eval()(enc)
        torch.testing.assert_close(b.eval()(enc), out, atol=0, rtol=0)
    # features in the fusion order: text's CLS first, vision's last
    H = a.hidden_size
    assert out.shape == (3, 3 * H)
    with torch.no_grad():
        a.layers[-1].ffn["vision"].norm.bias.add_(1.0)  # moves vision's feature only
        moved = a(enc)
    torch.testing.assert_close(moved[:, : 2 * H], out[:, : 2 * H], atol=0, rtol=0)
    assert not torch.allclose(moved[:, 2 * H :], out[:, 2 * H :])


def test_each_cross_attention_reads_every_other_modality() -> None:
    """With one layer, a change in vision's valid positions moves the text and audio features
    (their cross-attention reads vision), and vision's feature reads text and audio."""
    f = registry.create("fusion", "cross_attn", input_dims=THREE, heads=2, layers=1).eval()
    enc = random_encoder_outputs(THREE, THREE_LENGTHS, seed=4)
    H = f.hidden_size
    with torch.no_grad():
        before = f(enc)
        enc["vision"].hidden[:, 0] += 1.0
        after_vision = f(enc)
        enc["text"].hidden[:, 0] += 1.0
        after_text = f(enc)
    for i, m in enumerate(("text", "audio", "vision")):
        cols = slice(i * H, (i + 1) * H)
        assert not torch.allclose(after_vision[:, cols], before[:, cols]), m
    assert not torch.allclose(after_text[:, 2 * H :], after_vision[:, 2 * H :])


def test_empty_third_modality_item_stays_finite() -> None:
    enc = random_encoder_outputs(THREE, THREE_LENGTHS, seed=5)
    enc["vision"].mask[1] = False
    enc["vision"].hidden[1] = float("nan")
    for cfg in ({}, {"variant": "concat"}, {"variant": "transformer"},
                {"variant": "transformer", "transformer_form": "authors"}):  # fmt: skip
        f = registry.create("fusion", "cross_attn", input_dims=THREE, heads=2, layers=2, **cfg)
        for mode in (f.train(), f.eval()):
            assert torch.isfinite(mode(enc)).all(), (cfg, mode.training)


def test_missing_third_modality_at_forward() -> None:
    f = registry.create("fusion", "cross_attn", input_dims=THREE, heads=2)
    enc = random_encoder_outputs({"text": 12, "audio": 10}, {"text": [2], "audio": [3]})
    with pytest.raises(KeyError, match="vision"):
        f(enc)


# ------------------------------------------------------- text + audio unchanged, bit for bit


def two_modality_forward(f: CrossAttentionFusion, encoded: dict[str, EncoderOutput]) -> Tensor:
    """A frozen copy of the forward of commit df2a17f (before the generalisation), the layer
    included, calling the fusion's own submodules in the same order."""
    modalities = ("text", "audio")
    other = {"text": "audio", "audio": "text"}
    x, mask, original, pooled = {}, {}, {}, {}
    for m in modalities:
        out = encoded[m]
        keep = out.mask.bool()
        h = out.hidden.masked_fill(~keep[..., None], 0.0)
        p = out.pooled
        if f.proj is not None:
            h = f.proj[m](h)
            p = f.proj[m](p)
        original[m], pooled[m] = h, p
        x[m], mask[m] = f._with_cls(h, keep, f.cls[m])
    for layer in f.layers:
        crossed = {m: layer.cross[m](x[m], x[other[m]], mask[other[m]]) for m in modalities}
        selfed = {m: layer.self_attn[m](crossed[m], crossed[m], mask[m]) for m in modalities}
        x = {m: layer.ffn[m](selfed[m]) for m in modalities}
    variant = f.config.variant
    if variant == "fused":
        return torch.cat([x[m][:, 0] for m in modalities], dim=-1)
    if variant == "concat":
        feats = [f.mix[m](torch.cat([pooled[m], x[m][:, 0]], dim=-1)) for m in modalities]
        return torch.cat(feats, dim=-1)
    if f.authors_encoders is not None:
        feats = []
        for m in modalities:
            z = torch.cat([original[m], x[m][:, 1:]], dim=-1)
            z, keep = f._with_cls(z, mask[m][:, 1:], f.authors_cls[m])
            z = f.authors_encoders[m](z, src_key_padding_mask=~keep)
            feats.append(z[:, 0])
        return torch.cat(feats, dim=-1)
    feats = []
    for m in modalities:
        orig = torch.cat([pooled[m][:, None], original[m]], dim=1)
        z = torch.cat([orig, x[m]], dim=-1)
        keep = mask[m]
        if f.variant_cls is not None:
            z, keep = f._with_cls(z, keep, f.variant_cls[m])
        for layer in f.variant_encoders[m]:
            z = layer(z, keep)
        if f.variant_cls is not None:
            feats.append(z[:, 0])
        else:
            total = z.masked_fill(~keep[..., None], 0.0).sum(dim=1)
            feats.append(total / keep.sum(dim=1, keepdim=True).to(z.dtype))
    return torch.cat(feats, dim=-1)


@pytest.mark.parametrize("case", sorted(REFERENCE_CASES))
@pytest.mark.parametrize("training", [False, True])
def test_two_modalities_identical_to_the_two_modality_code(case: str, training: bool) -> None:
    """Same weights, same inputs: the generalised forward equals the old one exactly, in eval
    and in training (same seed: dropout draws the same masks in the same order)."""
    dims, cfg = REFERENCE_CASES[case]
    torch.manual_seed(0)
    f = registry.create("fusion", "cross_attn", input_dims=dims, **cfg).train(training)
    randomize(f, seed=1)
    enc = random_encoder_outputs(dims, {"text": [5, 2, 7], "audio": [3, 9, 6]}, seed=2)
    with torch.no_grad():
        torch.manual_seed(9)
        got = f(enc)
        torch.manual_seed(9)
        want = two_modality_forward(f, enc)
    assert f.modalities == ("text", "audio") and f.out_dim == want.shape[1]
    assert torch.equal(got, want)


@pytest.mark.parametrize("case", sorted(REFERENCE_CASES))
def test_two_modality_checkpoints_of_the_old_code_load_and_agree(case: str) -> None:
    """State dicts saved by the code before the generalisation load with strict=True (same
    parameter names) and give the outputs that code computed. Bit-identical on the machine
    that wrote the fixture; the tolerance only allows for another CPU's kernels (the exact
    check on any machine is the frozen-copy test above)."""
    stored = load_file(str(FIXTURES / "two_modality_reference.safetensors"))
    dims, cfg = REFERENCE_CASES[case]
    f = registry.create("fusion", "cross_attn", input_dims=dims, **cfg).eval()
    state = {
        k.split("/state/", 1)[1]: v for k, v in stored.items() if k.startswith(f"{case}/state/")
    }
    f.load_state_dict(state, strict=True)
    # clone: a tensor read from the file may be unaligned, and some CPU kernels then round
    # differently in the last bit
    enc = {
        m: EncoderOutput(
            *(stored[f"{case}/input/{m}/{k}"].clone() for k in ("hidden", "mask", "pooled"))
        )
        for m in dims
    }
    with torch.no_grad():
        got = f(enc)
    torch.testing.assert_close(got, stored[f"{case}/output"], atol=1e-6, rtol=0)


def test_parameter_count_three_modalities() -> None:
    """docs/fusion.md: N·(layers·(16H² + 19H) + H) for the fused variant, no projection."""
    H, layers = 768, 5
    assert 16 * H * H + 19 * H == 18_903_552 // 2
    with torch.device("meta"):
        f = registry.create(
            "fusion", "cross_attn", input_dims={"text": H, "audio": H, "vision": H}, layers=layers
        )
    assert f.proj is None and f.out_dim == 3 * H
    assert sum(p.numel() for p in f.parameters()) == 3 * (layers * (16 * H * H + 19 * H) + H)
