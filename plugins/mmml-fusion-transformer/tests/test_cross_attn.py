"""Tests of the ``cross_attn`` fusion: contract, an independent computation of the formulas
of docs/fusion.md over the module's own weights (the authors' form of the ``transformer``
variant through an encoder the test builds itself), the CLS init, the hand-derived parameter
counts, config errors."""

from __future__ import annotations

import math

import pytest
import torch
from mmml_fusion_transformer.cross_attn import CrossAttentionFusion, CrossAttentionFusionConfig
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


class TestContractTransformerAuthors(FusionContract):
    name = "cross_attn"
    config = {**TINY, "variant": "transformer", "transformer_form": "authors", "cls_init_std": 1.0}


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


def fused_sequences(f: CrossAttentionFusion, enc: dict[str, EncoderOutput]):
    """The fusion layers from the formulas: per modality the (projected) original hidden
    states, the (projected) pooled vector, the last layer's states (CLS at 0) and the keeps."""
    heads = f.config.heads
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
    return orig, pooled, {"text": L, "audio": A}, {"text": mL, "audio": mA}


def reference(f: CrossAttentionFusion, enc: dict[str, EncoderOutput]) -> Tensor:
    c = f.config
    heads = c.heads
    orig, pooled, fused, masks = fused_sequences(f, enc)
    L, A = fused["text"], fused["audio"]
    B = L.shape[0]
    ones = torch.ones(B, 1, dtype=torch.bool)
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
    for variant, form in [
        ("fused", "ours"),
        ("concat", "ours"),
        ("transformer", "ours"),
        ("transformer", "authors"),
    ]:
        f = registry.create(
            "fusion",
            "cross_attn",
            input_dims=dims,
            heads=2,
            layers=2,
            variant=variant,
            transformer_form=form,
        )
        for mode in (f.train(), f.eval()):
            assert torch.isfinite(mode(enc)).all(), (variant, form, mode.training)


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


# ------------------------------------------------------------------------------- CLS init


@pytest.mark.parametrize("std", [0.02, 1.0])
def test_cls_init_std(std: float) -> None:
    """Every learned CLS vector is drawn from N(0, cls_init_std); nothing else changes."""
    torch.manual_seed(0)
    dims = {"text": 768, "audio": 768}
    small = {"layers": 1, "variant_layers": 1}
    cfg = {} if std == 0.02 else {"cls_init_std": std}  # 0.02 is the default
    fused = registry.create("fusion", "cross_attn", input_dims=dims, **small, **cfg)
    ours = registry.create(
        "fusion",
        "cross_attn",
        input_dims=dims,
        variant="transformer",
        transformer_pool="cls",
        **small,
        **cfg,
    )
    authors = registry.create(
        "fusion",
        "cross_attn",
        input_dims=dims,
        variant="transformer",
        transformer_form="authors",
        **small,
        **cfg,
    )
    assert fused.config.cls_init_std == std
    vectors = [
        *fused.cls.values(),
        *ours.cls.values(),
        *ours.variant_cls.values(),
        *authors.cls.values(),
        *authors.authors_cls.values(),
    ]
    assert [v.numel() for v in vectors] == [768] * 4 + [1536] * 2 + [768] * 2 + [1536] * 2
    for v in vectors:
        assert 0.9 * std < float(v.detach().std()) < 1.1 * std
        assert abs(float(v.detach().mean())) < 0.15 * std
    # the other weights keep the BERT-style N(0, 0.02)
    w = fused.layers[0].ffn["text"].up.weight.detach()
    assert 0.019 < float(w.std()) < 0.021


# ------------------------------------------- the transformer variant in the authors' form


def authors_reference(f: CrossAttentionFusion, enc: dict[str, EncoderOutput]) -> Tensor:
    """The authors' form from its description, through a PyTorch encoder built here with the
    authors' settings and given the fusion's weights; the fused states come from the formulas
    (fused_sequences), not from the module."""
    c = f.config
    W = 2 * f.hidden_size
    orig, _, fused, _ = fused_sequences(f, enc)
    parts = []
    for m in ("text", "audio"):
        own = torch.nn.TransformerEncoder(
            torch.nn.TransformerEncoderLayer(
                d_model=W,
                nhead=c.heads,
                dim_feedforward=2048,
                dropout=0.1,
                activation="relu",
                layer_norm_eps=1e-5,
                batch_first=True,
                norm_first=False,
            ),
            num_layers=c.variant_layers,
            enable_nested_tensor=False,
        ).eval()
        own.load_state_dict(f.authors_encoders[m].state_dict())  # strict: same keys
        z = torch.cat([orig[m], fused[m][:, 1:]], dim=2)  # no pooled row, no fused CLS
        B = z.shape[0]
        z = torch.cat([f.authors_cls[m].detach().expand(B, 1, -1), z], dim=1)
        keep = torch.cat([torch.ones(B, 1, dtype=torch.bool), enc[m].mask], dim=1)
        # grad mode with parameters that need grad: PyTorch runs its Python path here, while
        # the fusion under no_grad takes the fused fast path, so the two paths are compared
        with torch.enable_grad():
            out = own(z, src_key_padding_mask=~keep)
        parts.append(out[:, 0].detach())
    return torch.cat(parts, dim=1)


def authors_fusion(dims: dict[str, int], seed: int = 1, **cfg) -> CrossAttentionFusion:
    torch.manual_seed(seed)
    return registry.create(
        "fusion",
        "cross_attn",
        input_dims=dims,
        variant="transformer",
        transformer_form="authors",
        **cfg,
    )


AUTHORS_CASES = [
    ({"text": 16, "audio": 16}, {"heads": 4, "layers": 2, "variant_layers": 2}),  # no projection
    ({"text": 16, "audio": 12}, {"heads": 4, "layers": 2, "variant_layers": 3}),  # projections
    ({"text": 16, "audio": 12}, {"hidden": 8, "heads": 2, "layers": 1, "variant_layers": 1}),
]


@pytest.mark.parametrize(("dims", "cfg"), AUTHORS_CASES)
def test_authors_form_equals_independent_computation(dims: dict[str, int], cfg: dict) -> None:
    f = authors_fusion(dims, **cfg).eval()
    randomize(f, seed=3)
    H = f.hidden_size
    assert f.out_dim == 4 * H
    assert f.variant_encoders is None and f.variant_cls is None
    enc = random_encoder_outputs(dims, {"text": [5, 2, 7, 1], "audio": [3, 9, 6, 8]}, seed=2)
    with torch.no_grad():
        got = f(enc)
    want = authors_reference(f, enc)
    assert got.shape == want.shape == (4, 4 * H)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # the text half reads the text encoder, the audio half the audio encoder
    with torch.no_grad():
        f.authors_cls["audio"].add_(1.0)
        moved = f(enc)
    torch.testing.assert_close(moved[:, : 2 * H], got[:, : 2 * H], atol=0, rtol=0)
    assert not torch.allclose(moved[:, 2 * H :], got[:, 2 * H :])


def test_authors_form_ignores_padded_values() -> None:
    """Whatever the padded encoder positions hold (NaN, inf, huge), the output is the same, in
    eval and (same seed, same dropout masks) in training."""
    dims = {"text": 16, "audio": 12}
    f = authors_fusion(dims, heads=4, layers=2, variant_layers=2)
    randomize(f, seed=4)
    lengths = {"text": [5, 2, 7], "audio": [3, 9, 1]}
    clean = random_encoder_outputs(dims, lengths, seed=5)
    for fill in (float("nan"), float("inf"), -float("inf"), 1e30):
        dirty = random_encoder_outputs(dims, lengths, seed=5)
        for o in dirty.values():
            o.hidden[~o.mask] = fill
        for training in (False, True):
            f.train(training)
            with torch.no_grad():
                torch.manual_seed(7)
                want = f(clean)
                torch.manual_seed(7)
                got = f(dirty)
            assert torch.isfinite(got).all(), (fill, training)
            torch.testing.assert_close(got, want, atol=0, rtol=0)
    # and the valid positions do matter: a change there moves the output
    f.eval()
    with torch.no_grad():
        before = f(clean)
        clean["audio"].hidden[2, 0] += 1.0  # the single valid audio frame of item 2
        after = f(clean)
    torch.testing.assert_close(after[:2], before[:2], atol=0, rtol=0)
    assert not torch.allclose(after[2], before[2])


def test_authors_form_modules_are_pytorchs() -> None:
    H, heads, n = 16, 4, 3
    f = authors_fusion({"text": H, "audio": 12}, heads=heads, layers=1, variant_layers=n)
    W = 2 * H
    assert isinstance(f.authors_encoders, torch.nn.ModuleDict)
    assert isinstance(f.authors_cls, torch.nn.ParameterDict)
    for m in ("text", "audio"):
        encoder = f.authors_encoders[m]
        assert type(encoder) is torch.nn.TransformerEncoder
        assert encoder.num_layers == n == len(encoder.layers)
        assert not encoder.enable_nested_tensor and not encoder.use_nested_tensor
        assert encoder.norm is None
        for layer in encoder.layers:
            assert type(layer) is torch.nn.TransformerEncoderLayer
            assert layer.norm_first is False
            assert layer.self_attn.batch_first and layer.self_attn.embed_dim == W
            assert layer.self_attn.num_heads == heads
            assert (layer.linear1.in_features, layer.linear1.out_features) == (W, 2048)
            assert (layer.linear2.in_features, layer.linear2.out_features) == (2048, W)
            assert layer.activation is torch.nn.functional.relu
            assert layer.self_attn.dropout == 0.1
            assert [d.p for d in (layer.dropout, layer.dropout1, layer.dropout2)] == [0.1] * 3
            assert layer.norm1.eps == layer.norm2.eps == 1e-5
        assert f.authors_cls[m].shape == (W,)
    keys = set(f.state_dict())
    for name in (
        "authors_cls.text",
        "authors_cls.audio",
        "authors_encoders.text.layers.0.self_attn.in_proj_weight",
        "authors_encoders.audio.layers.2.linear2.bias",
        "authors_encoders.audio.layers.2.norm2.weight",
    ):
        assert name in keys, name
    assert not any(k.startswith(("variant_encoders.", "variant_cls.")) for k in keys)


def test_authors_form_keeps_pytorchs_init() -> None:
    """PyTorch's default init (xavier-uniform in-projection, zero attention biases, Kaiming-
    uniform FFN, every layer a copy of one layer), which reset_parameters leaves alone."""
    f = authors_fusion({"text": 16, "audio": 16}, heads=4, layers=1, variant_layers=2)
    f.requires_grad_(False)  # plain numbers below
    W = 32
    for m in ("text", "audio"):
        first, second = f.authors_encoders[m].layers
        attn = first.self_attn
        bound = math.sqrt(6 / (W + 3 * W))  # xavier_uniform_ on (3W, W)
        assert float(attn.in_proj_weight.abs().max()) <= bound
        assert abs(float(attn.in_proj_weight.std()) - bound / math.sqrt(3)) < 0.1 * bound
        assert float(attn.in_proj_bias.abs().max()) == 0.0
        assert float(attn.out_proj.bias.abs().max()) == 0.0
        for lin in (first.linear1, first.linear2):
            b = 1 / math.sqrt(lin.in_features)  # nn.Linear's kaiming_uniform_(a=sqrt(5))
            assert float(lin.weight.abs().max()) <= b
            assert abs(float(lin.weight.std()) - b / math.sqrt(3)) < 0.1 * b
        for a, b in zip(first.parameters(), second.parameters(), strict=True):
            assert torch.equal(a, b)  # nn.TransformerEncoder deep-copies one layer
    before = {k: v.clone() for k, v in f.authors_encoders.state_dict().items()}
    cls_before = f.authors_cls["text"].detach().clone()
    f.reset_parameters()
    after = f.authors_encoders.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not torch.equal(f.authors_cls["text"], cls_before)  # the CLS is drawn again


def test_transformer_form_only_changes_the_transformer_variant() -> None:
    """fused and concat ignore transformer_form; the authors' form ignores transformer_pool."""
    dims = {"text": 16, "audio": 12}
    enc = random_encoder_outputs(dims, {"text": [5, 2], "audio": [3, 9]}, seed=2)

    def build(**cfg) -> CrossAttentionFusion:
        torch.manual_seed(11)
        return registry.create(
            "fusion", "cross_attn", input_dims=dims, heads=4, layers=1, **cfg
        ).eval()

    cases = [
        ({"variant": "fused"}, {"variant": "fused", "transformer_form": "authors"}),
        ({"variant": "concat"}, {"variant": "concat", "transformer_form": "authors"}),
        (
            {"variant": "transformer", "transformer_form": "authors", "transformer_pool": "mean"},
            {"variant": "transformer", "transformer_form": "authors", "transformer_pool": "cls"},
        ),
    ]
    for a_cfg, b_cfg in cases:
        a, b = build(**a_cfg), build(**b_cfg)
        sa, sb = a.state_dict(), b.state_dict()
        assert list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)
        with torch.no_grad():
            torch.testing.assert_close(a(enc), b(enc), atol=0, rtol=0)
    ours = build(variant="transformer")
    authors = build(variant="transformer", transformer_form="authors")
    assert set(ours.state_dict()) != set(authors.state_dict())


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


def test_parameter_count_authors_form() -> None:
    """The authors' form at the English depth: per modality 3 PyTorch encoder layers at
    W = 2H with feed-forward 2048, plus a W-wide CLS."""
    H, W, ffn = 768, 2 * 768, 2048
    with torch.device("meta"):
        f = registry.create(
            "fusion",
            "cross_attn",
            input_dims={"text": H, "audio": H},
            variant="transformer",
            transformer_form="authors",
            variant_layers=3,
        )
    layer = (
        (3 * W * W + 3 * W)  # in_proj (q, k, v stacked)
        + (W * W + W)  # out_proj
        + (W * ffn + ffn)  # linear1
        + (ffn * W + W)  # linear2
        + 2 * (2 * W)  # norm1, norm2
    )
    assert layer == 15_744_512
    assert count(f) == hand_count_fused(H, 5) + 2 * (3 * layer + W) == 188_989_440
    assert f.out_dim == 4 * H == 3072


# ------------------------------------------------------------------------------ config errors


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        ({"input_dims": {"text": 8}}, "at least two modalities"),
        ({"input_dims": {}}, "at least two modalities"),
        ({"input_dims": {"text": 8, "audio.left": 8}}, "without '.'"),
        ({"input_dims": {"text": 10, "audio": 8}, "heads": 4}, "not divisible"),
        ({"input_dims": {"text": 8, "audio": 8}, "heads": 2, "variant": "sum"}, "variant"),
        (
            {"input_dims": {"text": 8, "audio": 8}, "heads": 2, "transformer_pool": "max"},
            "transformer_pool",
        ),
        ({"input_dims": {"text": 8, "audio": 8}, "heads": 2, "layers": 0}, "layers"),
        (
            {"input_dims": {"text": 8, "audio": 8}, "heads": 2, "transformer_form": "x"},
            "transformer_form must be one of",
        ),
        *[
            (
                {"input_dims": {"text": 8, "audio": 8}, "heads": 2, "cls_init_std": bad},
                "cls_init_std must be",
            )
            for bad in (0, 0.0, -0.02, float("nan"), float("inf"), "1.0", True)
        ],
    ],
)
def test_config_errors(cfg: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        registry.create("fusion", "cross_attn", **cfg)
    assert isinstance(info.value, ValueError)
    assert "transformer_pool" in str(info.value)  # the valid fields are listed


@pytest.mark.parametrize(
    ("field", "value"), [("transformer_form", "x"), ("cls_init_std", 0), ("cls_init_std", -1.0)]
)
def test_config_class_raises_value_error(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"^{field} must be"):
        CrossAttentionFusionConfig(input_dims={"text": 8, "audio": 8}, heads=2, **{field: value})


def test_cls_init_std_is_a_float() -> None:
    c = CrossAttentionFusionConfig(input_dims={"text": 8, "audio": 8}, heads=2, cls_init_std=1)
    assert c.cls_init_std == 1.0 and isinstance(c.cls_init_std, float)
    assert c.transformer_form == "ours"


def test_missing_modality_at_forward() -> None:
    f = registry.create("fusion", "cross_attn", input_dims={"text": 8, "audio": 8}, heads=2)
    enc = random_encoder_outputs({"text": 8}, {"text": [2, 3]})
    with pytest.raises(KeyError, match="audio"):
        f(enc)
