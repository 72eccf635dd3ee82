"""Behaviour of the three encoders on random:tiny presets: preprocessing, masks, padding
invariance, the frozen feature extractor, and agreement with the transformers reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from encoders_hf_helpers import SR, tone
from mmml_encoders_hf.audio import masked_group_norm
from mmml_encoders_hf.checkpoints import CheckpointError
from torch import nn

from mmml_core import registry
from mmml_core.config import ConfigError

ENCODERS: dict[str, dict[str, Any]] = {
    "roberta-en": {"name": "roberta", "checkpoint": "random:tiny", "language": "en"},
    "roberta-zh": {"name": "roberta", "checkpoint": "random:tiny", "language": "zh"},
    "data2vec": {"name": "data2vec", "checkpoint": "random:tiny"},
    "hubert": {"name": "hubert", "checkpoint": "random:tiny"},
}
AUDIO = ("data2vec", "hubert")


def make(key: str, seed: int = 0, **overrides: Any) -> Any:
    cfg = dict(ENCODERS[key])
    name = cfg.pop("name")
    torch.manual_seed(seed)
    return registry.create("encoder", name, **{**cfg, **overrides})


def items(key: str) -> list[Any]:
    """Three items, the first short, the second much longer, the third in between."""
    if key == "roberta-en":
        return [
            "Great film.",
            "Honestly the plot was slow, the actors seemed bored and I wanted my money back.",
            "Not bad at all!",
        ]
    if key == "roberta-zh":
        return ["很好", "这部电影的剧情太慢了，演员看起来很无聊，我想退钱。", "还不错！"]
    return [tone(0.4, 150.0, 1), tone(1.5, 110.0, 2), tone(0.9, 220.0, 3)]


def test_registered_through_entry_points() -> None:
    for name in ("roberta", "data2vec", "hubert"):
        assert name in registry.list("encoder")
        assert registry.info("encoder", name).distribution == "mmml-encoders-hf"
    assert registry.load("encoder", "roberta").modality == "text"
    assert registry.load("encoder", "data2vec").modality == "audio"
    assert registry.load("encoder", "hubert").modality == "audio"


@pytest.mark.parametrize("key", list(ENCODERS))
def test_padding_invariance_each_item(key: str) -> None:
    """Every item alone == the same item inside a batch padded to a longer one (1e-5)."""
    enc = make(key).eval()
    xs = items(key)
    with torch.no_grad():
        batch = enc(enc.preprocess(xs))
        assert batch.hidden.shape[1] == int(batch.mask[1].sum()), "padded to the longest item"
        for i, x in enumerate(xs):
            alone = enc(enc.preprocess([x]))
            n = int(alone.mask[0].sum())
            assert alone.mask[0].all() and int(batch.mask[i].sum()) == n
            torch.testing.assert_close(batch.pooled[i], alone.pooled[0], atol=1e-5, rtol=0)
            torch.testing.assert_close(batch.hidden[i, :n], alone.hidden[0], atol=1e-5, rtol=0)
            assert not batch.hidden[i, n:].any(), "padded positions are zeroed"


@pytest.mark.parametrize("key", AUDIO)
def test_audio_matches_transformers_on_unpadded_input(key: str) -> None:
    """Our forward (masked group norm, re-zeroed positional convs) is the transformers model
    on a single unpadded utterance."""
    enc = make(key).eval()
    x = enc.preprocess([tone(1.7, 130.0)])
    with torch.no_grad():
        ours = enc(x)
        ref = enc.model(x["input_values"]).last_hidden_state  # (1, T, D)
    torch.testing.assert_close(ours.hidden, ref, atol=1e-5, rtol=0)
    torch.testing.assert_close(ours.pooled, ref.mean(1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("key", AUDIO)
def test_frozen_feature_extractor_gets_no_gradient_rest_trains(key: str) -> None:
    enc = make(key).train()
    out = enc(enc.preprocess(items(key)))
    (out.pooled.pow(2).sum() + out.hidden[out.mask].sum()).backward()
    frozen = dict(enc.model.feature_extractor.named_parameters())
    assert frozen
    for name, p in frozen.items():
        assert not p.requires_grad and p.grad is None, name
    for name, p in enc.named_parameters():
        if not name.startswith("model.feature_extractor."):
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} gets no gradient"
    # The same check fails when the extractor is not frozen: gradients do reach it then.
    free = make(key, freeze_feature_extractor=False).train()
    out = free(free.preprocess(items(key)))
    out.pooled.pow(2).sum().backward()
    assert all(p.grad is not None for p in free.model.feature_extractor.parameters())


def test_text_all_parameters_train() -> None:
    enc = make("roberta-en").train()
    out = enc(enc.preprocess(items("roberta-en")))
    (out.pooled.pow(2).sum() + out.hidden[out.mask].sum()).backward()
    for name, p in enc.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} gets no gradient"


def test_text_preprocess_truncates_and_pads_right() -> None:
    en = make("roberta-en")
    long_text = " ".join(["good"] * 300)
    x = en.preprocess([long_text, "bad"])
    assert set(x) == {"input_ids", "attention_mask"}
    assert x["input_ids"].shape == (2, 96)  # the English default, special tokens included
    assert x["attention_mask"][1].tolist()[:3] == [1, 1, 1] and not x["attention_mask"][1, 3:].any()
    assert (x["input_ids"][1, 3:] == en.tokenizer.pad_token_id).all()
    assert make("roberta-zh").preprocess(["好" * 200])["input_ids"].shape == (1, 64)
    assert make("roberta-en", max_tokens=10).preprocess([long_text])["input_ids"].shape == (1, 10)
    with pytest.raises(TypeError, match="item 1"):
        en.preprocess(["fine", 3])


def test_text_pooled_is_pooler_over_first_token() -> None:
    enc = make("roberta-en").eval()
    with torch.no_grad():
        out = enc(enc.preprocess(items("roberta-en")))
        pooler = enc.model.pooler
        expected = torch.tanh(pooler.dense(out.hidden[:, 0]))
    torch.testing.assert_close(out.pooled, expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("key", AUDIO)
def test_audio_preprocess_normalises_valid_samples_and_pads_with_zeros(key: str) -> None:
    enc = make(key)
    a, b = tone(0.5, 200.0) * 3.0, tone(1.0, 100.0)
    x = enc.preprocess([a, b])
    values, mask = x["input_values"], x["attention_mask"]
    assert values.shape == mask.shape == (2, len(b)) and values.dtype == torch.float32
    assert mask[0].sum() == len(a) and mask[1].all()
    valid = values[0, : len(a)].double()
    assert abs(float(valid.mean())) < 1e-5 and abs(float(valid.std(unbiased=False)) - 1) < 1e-4
    assert not values[0, len(a) :].any()
    # max_seconds cuts; normalize=False keeps the raw samples
    raw = make(key, normalize=False, max_seconds=0.25).preprocess([b])["input_values"]
    assert raw.shape == (1, int(0.25 * SR))
    np.testing.assert_array_equal(raw[0].numpy(), b[: int(0.25 * SR)])


@pytest.mark.parametrize("key", AUDIO)
def test_frame_mask_follows_conv_output_length_formula(key: str) -> None:
    enc = make(key).eval()
    lengths = [400, 719, 720, 16000, 16000 + 320]
    # wav2vec 2.0 conv stack: kernels (10, 3, 3, 3, 3, 2, 2), strides (5, 2, 2, 2, 2, 2, 2)
    expected = []
    for n in lengths:
        for k, s in zip((10, 3, 3, 3, 3, 2, 2), (5, 2, 2, 2, 2, 2, 2), strict=True):
            n = (n - k) // s + 1
        expected.append(n)
    assert expected[:3] == [1, 1, 2]
    assert enc.frame_lengths(torch.tensor(lengths)).tolist() == expected
    waves = [tone(n / SR, 150.0) for n in lengths]
    with torch.no_grad():
        out = enc(enc.preprocess(waves))
    assert out.mask.sum(1).tolist() == expected
    assert out.mask.shape[1] == max(expected)


def test_masked_group_norm_equals_group_norm_of_the_unpadded_item() -> None:
    torch.manual_seed(0)
    norm = nn.GroupNorm(4, 8, affine=True)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    x = torch.randn(2, 8, 30) * 3 + 1
    lengths = torch.tensor([30, 17])
    y = masked_group_norm(x, lengths, norm)
    torch.testing.assert_close(y[0], norm(x[:1])[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(y[1, :, :17], norm(x[1:, :, :17])[0], atol=1e-5, rtol=0)
    # plain group norm over the padded item differs: the masking matters
    assert (norm(x[1:])[0, :, :17] - y[1, :, :17]).abs().max() > 1e-2


def test_config_errors_list_fields() -> None:
    with pytest.raises(ConfigError, match="language"):
        registry.create("encoder", "roberta", checkpoint="random:tiny", language="fr")
    with pytest.raises(ConfigError, match="max_seconds"):
        registry.create("encoder", "hubert", checkpoint="random:tiny", max_tokens=5)
    with pytest.raises(CheckpointError, match="random:tiny, random:base"):
        registry.create("encoder", "hubert", checkpoint="random:huge")
    with pytest.raises(CheckpointError, match="no default checkpoint for language 'zh'"):
        registry.create("encoder", "data2vec", language="zh")


@pytest.mark.parametrize("key", AUDIO)
def test_spec_augment_and_layerdrop_train(key: str) -> None:
    """The published configs' training-time SpecAugment and LayerDrop run through our forward."""
    enc = make(key, layerdrop=0.5, mask_time_prob=0.3).train()
    assert enc.model.config.layerdrop == 0.5 and enc.model.config.mask_time_prob == 0.3
    assert enc.model.config._attn_implementation == "sdpa"
    torch.manual_seed(0)
    np.random.seed(0)  # transformers draws the SpecAugment spans with numpy
    out = enc(enc.preprocess(items(key)))
    out.pooled.pow(2).sum().backward()
    assert enc.model.masked_spec_embed.grad is not None  # masked frames were replaced
    with torch.no_grad():  # eval mode: neither is applied, padding invariance holds again
        enc.eval()
        alone = enc(enc.preprocess(items(key)[:1]))
        batch = enc(enc.preprocess(items(key)))
    torch.testing.assert_close(batch.pooled[0], alone.pooled[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("key", list(ENCODERS))
def test_runs_under_bfloat16_autocast(key: str) -> None:
    """Mixed precision as the engine uses it on GPUs (here CPU autocast): close to float32."""
    enc = make(key).eval()
    x = enc.preprocess(items(key))
    with torch.no_grad():
        full = enc(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = enc(x)
    assert torch.equal(half.mask, full.mask)
    assert torch.isfinite(half.pooled.float()).all()
    cos = torch.nn.functional.cosine_similarity(half.pooled.float(), full.pooled, dim=-1)
    assert (cos > 0.98).all(), cos
