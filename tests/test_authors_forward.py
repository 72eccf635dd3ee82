"""The ``authors`` profile computes what the paper's code computes (docs/paper.md, "The
authors' pipeline"), checked on tiny random transformers encoders against an independent
computation written here from that description: fixed-length inputs (96 / 64 tokens,
96,000 samples with a sample mask), the transformers audio model called with that mask, the
frame mask from the convolution-length formula, CLS vectors prepended to the full padded
sequences, the fusion layers with explicitly masked softmax attention, and the heads.

English: RoBERTa + data2vec; Mandarin: a BERT-architecture text model + HuBERT (whose group
norm sees the padding). Clips of 2.0, 4.5 and 7.0 s; texts of very different lengths."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmml_core.model import ModelSpec, build_model
from mmml_core.runconfig import resolve

pytestmark = pytest.mark.plugins("mmml-encoders-hf", "mmml-fusion-transformer")

SR = 16000
SECONDS = (2.0, 4.5, 7.0)
LONG = " ".join(["really"] * 150)  # far beyond 96 tokens
TEXTS = {
    "en": ["It was great", "I did not like the ending, " + LONG, "Meh"],
    "zh": ["很好", "这部电影" * 40, "一般般吧"],
}
SETUPS = {"en": ("mosi", "data2vec", 96), "zh": ("sims", "hubert", 64)}


def _model(language: str) -> tuple[torch.nn.Module, object]:
    kind, audio, _ = SETUPS[language]
    cfg = resolve(
        [
            {
                "profile": "authors",
                "data": {"dataset": "/not/read", "kind": kind},
                "model": {
                    "encoders": {
                        "text": {"name": "roberta", "config": {"checkpoint": "random:tiny"}},
                        "audio": {"name": audio, "config": {"checkpoint": "random:tiny"}},
                    },
                    "fusion": {"name": "cross_attn", "config": {"layers": 2}},
                },
            }
        ]
    )
    torch.manual_seed(0)
    m = cfg.model
    spec = ModelSpec(m.encoders, m.fusion, m.head, m.subnet_head, tuple(m.heads))
    return build_model(spec).eval(), cfg


def _waves() -> list[np.ndarray]:
    rng = np.random.default_rng(3)
    # different levels and offsets, so that the per-clip normalisation matters
    return [
        (0.3 * (i + 1) * rng.standard_normal(int(s * SR)) + 0.1 * i).astype(np.float32)
        for i, s in enumerate(SECONDS)
    ]


def _conv_frames(samples: int, hf_config) -> int:
    """Frames of the conv feature extractor for ``samples`` kept samples (no padding)."""
    n = samples
    for kernel, stride in zip(hf_config.conv_kernel, hf_config.conv_stride, strict=True):
        n = (n - kernel) // stride + 1
    return n


def _linear(x: torch.Tensor, layer: torch.nn.Linear) -> torch.Tensor:
    return x @ layer.weight.T + layer.bias


def _layer_norm(x: torch.Tensor, norm: torch.nn.LayerNorm) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _attend(block, query, context, key_keep, heads: int) -> torch.Tensor:
    """``LN(q + O · softmax(QK^T / sqrt(d), masked keys -> probability 0) V)``."""
    att = block.attention
    b, tq, h = query.shape
    d = h // heads

    def split(x):
        return x.view(b, -1, heads, d).transpose(1, 2)  # (B, h, T, d)

    q, k, v = (
        split(_linear(query, att.q)),
        split(_linear(context, att.k)),
        split(_linear(context, att.v)),
    )
    scores = q @ k.transpose(-1, -2) / math.sqrt(d)  # (B, h, Tq, Tk)
    scores = scores.masked_fill(~key_keep[:, None, None, :], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    out = (probs @ v).transpose(1, 2).reshape(b, tq, h)
    return _layer_norm(query + _linear(out, att.o), block.norm)


def _fusion(fusion, text_seq, text_keep, audio_seq, audio_keep) -> torch.Tensor:
    heads = fusion.config.heads
    x = {"text": text_seq, "audio": audio_seq}
    keep = {"text": text_keep, "audio": audio_keep}
    other = {"text": "audio", "audio": "text"}
    for layer in fusion.layers:
        crossed = {m: _attend(layer.cross[m], x[m], x[other[m]], keep[other[m]], heads) for m in x}
        selfed = {m: _attend(layer.self_attn[m], crossed[m], crossed[m], keep[m], heads) for m in x}
        x = {}
        for m, s in selfed.items():
            ffn = layer.ffn[m]
            x[m] = _layer_norm(s + _linear(torch.relu(_linear(s, ffn.up)), ffn.down), ffn.norm)
    return torch.cat([x["text"][:, 0], x["audio"][:, 0]], dim=-1)


def _mlp(head, features: torch.Tensor) -> torch.Tensor:
    linears = [m for m in head.net if isinstance(m, torch.nn.Linear)]
    for i, lin in enumerate(linears):
        features = _linear(features, lin)
        if i < len(linears) - 1:
            features = torch.relu(features)
    return features.squeeze(-1)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_authors_profile_forward_is_the_authors_computation(language):
    model, cfg = _model(language)
    _, _, max_tokens = SETUPS[language]
    text_enc, audio_enc = model.encoders["text"], model.encoders["audio"]
    texts, waves = TEXTS[language], _waves()
    inputs = model.preprocess({"text": texts, "audio": waves})

    # -- text: exactly max_tokens ids, padded, the mask on the real tokens -----------------
    ids, att = inputs["text"]["input_ids"], inputs["text"]["attention_mask"]
    assert ids.shape == (3, max_tokens) and att.shape == (3, max_tokens)
    for i, text in enumerate(texts):
        full = text_enc.tokenizer(text, truncation=False, verbose=False)["input_ids"]
        n = min(len(full), max_tokens)
        assert int(att[i].sum()) == n
        assert att[i, :n].all() and not att[i, n:].any()
        assert (ids[i, n:] == text_enc.tokenizer.pad_token_id).all()
        if len(full) <= max_tokens:
            assert ids[i, :n].tolist() == full
    assert int(att[1].sum()) == max_tokens  # the long text is cut

    # -- audio: exactly 96,000 samples, the kept samples normalised, zeros after ------------
    values, mask = inputs["audio"]["input_values"], inputs["audio"]["attention_mask"]
    assert values.shape == (3, 96000) and mask.shape == (3, 96000)
    for i, wave in enumerate(waves):
        kept = wave[:96000].astype(np.float64)
        n = len(kept)
        expected = (kept - kept.mean()) / np.sqrt(kept.var() + 1e-7)
        assert int(mask[i].sum()) == n and mask[i, :n].all() and not mask[i, n:].any()
        np.testing.assert_allclose(values[i, :n].numpy(), expected, rtol=1e-5, atol=1e-5)
        assert not values[i, n:].any()
    assert [int(mask[i].sum()) for i in range(3)] == [32000, 72000, 96000]

    with torch.no_grad():
        preds = model(inputs)
        encoded = model.encode(inputs)

        # -- the encoders as the authors call them ----------------------------------------
        text_out = text_enc.model(input_ids=ids, attention_mask=att)
        audio_hidden = audio_enc.model(input_values=values, attention_mask=mask).last_hidden_state
        hf_config = audio_enc.model.config
        k = [_conv_frames(int(mask[i].sum()), hf_config) for i in range(3)]
        frames = audio_hidden.shape[1]
        assert frames == _conv_frames(96000, hf_config)
        assert k[2] == frames and k[0] < k[1] < frames
        frame_keep = torch.arange(frames)[None, :] < torch.tensor(k)[:, None]  # (B, T)
        assert torch.equal(encoded["audio"].mask, frame_keep)  # the conv-length formula
        assert torch.equal(encoded["text"].mask, att.bool())
        audio_mean = torch.stack([audio_hidden[i, : k[i]].mean(0) for i in range(3)])

        # -- heads and fusion, from exactly those --------------------------------------------
        t_lin = model.subnet_heads["text"].net[1]
        a_lin = model.subnet_heads["audio"].net[1]
        expect_t = _linear(text_out.pooler_output, t_lin).squeeze(-1)
        expect_a = _linear(audio_mean, a_lin).squeeze(-1)
        fusion = model.fusion
        b = len(texts)
        ones = torch.ones(b, 1, dtype=torch.bool)
        text_seq = torch.cat([fusion.cls["text"].expand(b, 1, -1), text_out.last_hidden_state], 1)
        audio_seq = torch.cat([fusion.cls["audio"].expand(b, 1, -1), audio_hidden], 1)
        fused = _fusion(
            fusion,
            text_seq,
            torch.cat([ones, att.bool()], 1),  # (B, 1 + max_tokens)
            audio_seq,
            torch.cat([ones, frame_keep], 1),  # (B, 1 + frames)
        )
        assert fused.shape == (b, 2 * fusion.config.width)
        expect_m = _mlp(model.head, fused)

    torch.testing.assert_close(preds["T"], expect_t, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(preds["A"], expect_a, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(preds["M"], expect_m, rtol=1e-4, atol=1e-5)


def test_authors_profile_settings_reach_the_components():
    model, _ = _model("en")
    assert model.subnet_heads["text"].net[0].p == 0.3
    assert model.subnet_heads["audio"].net[0].p == 0.3
    assert model.fusion.config.cls_init_std == 1.0
    assert model.encoders["text"].config.padding == "max_length"
    assert model.encoders["audio"].config.padding == "max_length"
    assert model.encoders["audio"].config.masking == "hf"
    for m in ("text", "audio"):
        assert model.encoders[m].config.attention == "eager"
        assert model.encoders[m].model.config._attn_implementation == "eager"


def test_paper_profile_pads_per_batch_and_differs_for_short_clips():
    """The default profile pads to the batch's longest item and encodes each clip as if
    alone, so its audio features of a short clip differ from the authors' (HuBERT)."""
    model, _ = _model("zh")
    cfg = resolve(
        [
            {
                "data": {"dataset": "/not/read", "kind": "sims"},
                "model": {
                    "encoders": {
                        "text": {"name": "roberta", "config": {"checkpoint": "random:tiny"}},
                        "audio": {"name": "hubert", "config": {"checkpoint": "random:tiny"}},
                    },
                    "fusion": {"name": "cross_attn", "config": {"layers": 2}},
                },
            }
        ]
    )
    m = cfg.model
    paper = build_model(ModelSpec(m.encoders, m.fusion, m.head, m.subnet_head, tuple(m.heads)))
    paper.load_state_dict(model.state_dict())
    paper.eval()
    waves = _waves()[:2]
    texts = [TEXTS["zh"][0], TEXTS["zh"][2]]  # short texts
    inp_p = paper.preprocess({"text": texts, "audio": waves})
    inp_a = model.preprocess({"text": texts, "audio": waves})
    assert inp_p["audio"]["input_values"].shape == (2, 72000)  # the batch's longest clip
    assert inp_p["text"]["input_ids"].shape[1] < 64
    with torch.no_grad():
        a_p = paper.encode(inp_p)["audio"].pooled
        a_a = model.encode(inp_a)["audio"].pooled
    assert not torch.allclose(a_p[0], a_a[0], atol=1e-4)  # group norm saw 4 s of padding
