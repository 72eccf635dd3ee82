"""The authors' input pipeline (the ``authors`` profile): text padded to ``max_tokens``
(``padding="max_length"``), audio zero-padded to ``max_seconds`` (``padding="max_length"``)
and encoded by the transformers forward with the sample mask (``masking="hf"``)."""

from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from encoders_hf_helpers import SR, tone
from mmml_encoders_hf.audio import AudioConfig
from mmml_encoders_hf.text import TextConfig

from mmml_core import registry
from mmml_core.config import ConfigError
from mmml_core.interfaces import config_dict

AUDIO = ("data2vec", "hubert")
FULL = 96000  # 6 s at 16 kHz, the authors' clip length


def audio(name: str, seed: int = 0, **overrides: Any) -> Any:
    torch.manual_seed(seed)
    return registry.create("encoder", name, checkpoint="random:tiny", **overrides)


def conv_frames(samples: int, hf_config: Any) -> int:
    """Frames of an unpadded clip, layer by layer: floor((L - kernel) / stride) + 1."""
    n = samples
    for kernel, stride in zip(hf_config.conv_kernel, hf_config.conv_stride, strict=True):
        n = (n - kernel) // stride + 1
    return n


# -- config ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "field", "choices"),
    [
        (TextConfig, "padding", "('longest', 'max_length')"),
        (AudioConfig, "padding", "('longest', 'max_length')"),
        (AudioConfig, "masking", "('invariant', 'hf')"),
    ],
)
def test_values_are_validated(cls: type, field: str, choices: str) -> None:
    with pytest.raises(ValueError) as info:
        cls(**{field: "max"})
    assert str(info.value) == f"{field} must be one of {choices}, got 'max'"
    name = "roberta" if cls is TextConfig else "hubert"
    with pytest.raises(ConfigError, match=field):
        registry.create("encoder", name, checkpoint="random:tiny", **{field: "HF"})


def test_defaults_and_config_round_trip() -> None:
    assert (TextConfig().padding, AudioConfig().padding, AudioConfig().masking) == (
        "longest",
        "longest",
        "invariant",
    )
    text = registry.create("encoder", "roberta", checkpoint="random:tiny", padding="max_length")
    saved = config_dict(text)
    assert saved["padding"] == "max_length"
    assert registry.create("encoder", "roberta", **saved).config.padding == "max_length"
    for name in AUDIO:
        enc = audio(name, padding="max_length", masking="hf")
        saved = config_dict(enc)
        assert (saved["padding"], saved["masking"]) == ("max_length", "hf")
        again = registry.create("encoder", name, **saved)
        assert (again.config.padding, again.config.masking) == ("max_length", "hf")


# -- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("language", "texts", "max_tokens"),
    [
        ("en", ["Great film.", "It was slow and " * 30, "Not bad at all!"], 96),
        ("zh", ["很好", "剧情太慢了" * 20, "还不错！"], 64),
    ],
)
def test_text_max_length_pads_every_text_to_max_tokens(
    language: str, texts: list[str], max_tokens: int
) -> None:
    longest = registry.create("encoder", "roberta", checkpoint="random:tiny", language=language)
    fixed = registry.create(
        "encoder", "roberta", checkpoint="random:tiny", language=language, padding="max_length"
    )
    assert fixed.max_tokens == max_tokens
    lengths = [min(len(fixed.tokenizer(t)["input_ids"]), max_tokens) for t in texts]
    assert lengths[1] == max_tokens and max(lengths[0], lengths[2]) < max_tokens

    batch = fixed.preprocess(texts)
    assert batch["input_ids"].shape == (3, max_tokens)
    assert batch["attention_mask"].sum(1).tolist() == lengths
    for i, n in enumerate(lengths):
        assert batch["attention_mask"][i, :n].all() and not batch["attention_mask"][i, n:].any()
        assert (batch["input_ids"][i, n:] == fixed.tokenizer.pad_token_id).all()

    short = [texts[0], texts[2]]  # the default pads to the batch's longest text
    assert longest.preprocess(short)["input_ids"].shape == (2, max(lengths[0], lengths[2]))
    assert fixed.preprocess(short)["input_ids"].shape == (2, max_tokens)
    assert longest.preprocess(texts)["input_ids"].shape == (3, max_tokens)


def test_text_max_length_changes_only_the_padding() -> None:
    """Same weights: valid hidden states and pooler output as under ``longest``."""
    torch.manual_seed(0)
    longest = registry.create("encoder", "roberta", checkpoint="random:tiny").eval()
    fixed = registry.create("encoder", "roberta", checkpoint="random:tiny", padding="max_length")
    fixed.load_state_dict(longest.state_dict())
    fixed.eval()
    texts = ["Great film.", "Honestly the plot was slow and the actors seemed bored."]
    with torch.no_grad():
        a, b = longest(longest.preprocess(texts)), fixed(fixed.preprocess(texts))
    t = a.hidden.shape[1]
    assert b.hidden.shape[1] == 96 and t < 96
    assert torch.equal(b.mask[:, :t], a.mask) and not b.mask[:, t:].any()
    torch.testing.assert_close(b.hidden[:, :t], a.hidden, atol=1e-5, rtol=0)
    torch.testing.assert_close(b.pooled, a.pooled, atol=1e-5, rtol=0)


# -- audio preprocessing ---------------------------------------------------------------------


@pytest.mark.parametrize("name", AUDIO)
def test_audio_max_length_pads_every_clip_to_max_seconds(name: str) -> None:
    enc = audio(name, padding="max_length")
    clips = [tone(2.0, 120.0, 1), tone(4.5, 180.0, 2), tone(7.0, 90.0, 3)]
    batch = enc.preprocess(clips)
    values, mask = batch["input_values"], batch["attention_mask"]
    assert values.shape == (3, FULL) and mask.shape == (3, FULL)
    assert mask.sum(1).tolist() == [32000, 72000, FULL]
    for i, (clip, n) in enumerate(zip(clips, [32000, 72000, FULL], strict=True)):
        kept = values[i, :n].double()
        assert abs(float(kept.mean())) < 1e-5
        assert abs(float(kept.var(unbiased=False)) - 1) < 1e-4
        raw = clip[:n].astype(np.float64)  # the authors' formula on the kept samples
        expected = (raw - raw.mean()) / np.sqrt(raw.var() + 1e-7)
        np.testing.assert_allclose(kept.numpy(), expected, atol=1e-5, rtol=0)
        assert mask[i, :n].all() and not mask[i, n:].any() and not values[i, n:].any()
    # the default pads to the batch's longest clip
    default = audio(name).preprocess(clips[:2])
    assert default["input_values"].shape == (2, 72000)
    assert enc.preprocess(clips[:2])["input_values"].shape == (2, FULL)


@pytest.mark.parametrize("name", AUDIO)
def test_audio_max_length_keeps_the_receptive_field_rule(name: str) -> None:
    """A clip under 400 samples is still zero-padded to 400 valid samples (one frame); a
    ``max_seconds`` below the receptive field pads to 400, not to fewer."""
    enc = audio(name, padding="max_length", masking="hf").eval()
    batch = enc.preprocess([tone(100 / SR, 200.0, 1), tone(1.0, 150.0, 2)])
    assert batch["input_values"].shape == (2, FULL)
    assert batch["attention_mask"].sum(1).tolist() == [400, SR]
    with torch.no_grad():
        out = enc(batch)
    assert out.mask.sum(1).tolist() == [1, 49] and torch.isfinite(out.pooled).all()
    tiny = audio(name, padding="max_length", max_seconds=0.01)  # 160 samples
    assert tiny.preprocess([tone(0.5, 150.0)])["input_values"].shape == (1, 400)


# -- masking="hf" ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", AUDIO)
def test_hf_masking_is_the_transformers_forward_with_the_sample_mask(name: str) -> None:
    enc = audio(name, padding="max_length", masking="hf").eval()
    seconds = [2.0, 4.5, 6.0]
    batch = enc.preprocess([tone(s, 100.0 + 40 * i, i) for i, s in enumerate(seconds)])
    frames = [conv_frames(int(s * SR), enc.model.config) for s in seconds]
    assert frames == [99, 224, 299]  # random:tiny has the base conv stack
    with torch.no_grad():
        out = enc(batch)
        ref = enc.model(
            input_values=batch["input_values"], attention_mask=batch["attention_mask"]
        ).last_hidden_state
    assert out.hidden.shape == ref.shape == (3, 299, enc.dim)
    assert out.mask.sum(1).tolist() == frames
    for i, k in enumerate(frames):
        assert out.mask[i, :k].all() and not out.mask[i, k:].any()
        torch.testing.assert_close(out.hidden[i, :k], ref[i, :k], atol=1e-6, rtol=0)
        torch.testing.assert_close(out.pooled[i], ref[i, :k].mean(0), atol=1e-6, rtol=0)
        assert not out.hidden[i, k:].any(), "padded frames are zeroed"


@pytest.mark.parametrize("name", AUDIO)
def test_hf_masking_sdpa_applies_the_mask_without_warnings(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    """SDPA with the padding mask gives what eager attention gives, and logs nothing."""
    enc = audio(name, padding="max_length", masking="hf").eval()
    assert enc.model.config._attn_implementation == "sdpa"
    batch = enc.preprocess([tone(1.0, 120.0, 1), tone(3.0, 200.0, 2)])
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        with torch.no_grad():
            sdpa = enc(batch)
            enc.train()
            enc(batch)
            enc.eval()
    assert not caught and not caplog.records
    enc.model.set_attn_implementation("eager")
    with torch.no_grad():
        eager = enc(batch)
    torch.testing.assert_close(sdpa.hidden, eager.hidden, atol=1e-5, rtol=0)
    # and the mask matters: without it the short clip attends to its padding
    with torch.no_grad():
        unmasked = enc.model(input_values=batch["input_values"]).last_hidden_state
    assert (unmasked[0, :49] - sdpa.hidden[0, :49]).abs().max() > 1e-3


@pytest.mark.parametrize("name", AUDIO)
def test_invariant_and_hf_differ_only_for_padded_clips(name: str) -> None:
    """Same weights, one fixed-length batch: the 2 s clip sees its padding under ``hf``
    (HuBERT's group norm over the whole clip; data2vec's second positional conv reads
    non-zero padding), the 6 s clip fills the batch and comes out the same."""
    hf = audio(name, padding="max_length", masking="hf").eval()
    inv = audio(name, padding="max_length", masking="invariant")
    inv.load_state_dict(hf.state_dict())
    inv.eval()
    batch = hf.preprocess([tone(2.0, 150.0, 1), tone(6.0, 110.0, 2)])
    assert batch["attention_mask"].sum(1).tolist() == [32000, FULL]
    with torch.no_grad():
        a, b = inv(batch), hf(batch)
        alone = inv(inv.preprocess([tone(2.0, 150.0, 1)]))
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(b.hidden[1], a.hidden[1], atol=1e-5, rtol=0)
    torch.testing.assert_close(b.pooled[1], a.pooled[1], atol=1e-5, rtol=0)
    assert (b.pooled[0] - a.pooled[0]).abs().max() > 1e-3
    # invariant: the padded clip is the clip alone; hf: it is not
    torch.testing.assert_close(a.pooled[0], alone.pooled[0], atol=1e-5, rtol=0)
    assert (b.pooled[0] - alone.pooled[0]).abs().max() > 1e-3


@pytest.mark.parametrize("name", AUDIO)
def test_invariant_forward_does_not_depend_on_max_length(name: str) -> None:
    longest = audio(name).eval()
    fixed = audio(name, padding="max_length")
    fixed.load_state_dict(longest.state_dict())
    fixed.eval()
    clips = [tone(0.7, 150.0, 1), tone(1.3, 110.0, 2)]
    with torch.no_grad():
        a, b = longest(longest.preprocess(clips)), fixed(fixed.preprocess(clips))
    t = a.hidden.shape[1]
    assert (t, b.hidden.shape[1]) == (64, 299)
    torch.testing.assert_close(b.hidden[:, :t], a.hidden, atol=1e-5, rtol=0)
    torch.testing.assert_close(b.pooled, a.pooled, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", AUDIO)
@pytest.mark.parametrize("frozen", [True, False])
def test_hf_masking_frozen_cnn_takes_no_gradient(name: str, frozen: bool) -> None:
    enc = audio(name, padding="max_length", masking="hf", freeze_feature_extractor=frozen)
    enc.train()
    seen: list[bool] = []
    enc.model.feature_extractor.register_forward_hook(
        lambda _module, _args, output: seen.append(output.requires_grad)
    )
    out = enc(enc.preprocess([tone(1.0, 120.0, 1), tone(2.5, 200.0, 2)]))
    out.pooled.square().sum().backward()
    cnn = list(enc.model.feature_extractor.parameters())
    assert seen == [not frozen], "the frozen CNN builds no autograd graph"
    if frozen:
        assert all(p.grad is None and not p.requires_grad for p in cnn)
    else:
        assert all(p.grad is not None for p in cnn)
    projection = enc.model.feature_projection.projection.weight
    assert projection.grad is not None and projection.grad.abs().sum() > 0
