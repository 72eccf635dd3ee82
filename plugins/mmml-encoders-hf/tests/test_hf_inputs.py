"""``describe_inputs`` (the run's data report) and what ``preprocess`` does to the inputs it
reports: texts cut to ``max_tokens``, audio clips shorter than the conv receptive field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from encoders_hf_helpers import SR, tone

from mmml_core import registry

AUDIO = ("data2vec", "hubert")
SHORT = "clips shorter than 400 samples (25 ms), zero-padded to 400"


@pytest.mark.parametrize(
    ("language", "texts"),
    [
        ("en", ["Great film.", " ".join(["good"] * 6), " ".join(["good"] * 7), "It was slow."]),
        ("zh", ["很好", "好" * 6, "好" * 7, "剧情太慢了，很无聊"]),
    ],
)
def test_text_counts_the_texts_preprocess_truncates(language: str, texts: list[str]) -> None:
    enc = registry.create(
        "encoder", "roberta", checkpoint="random:tiny", language=language, max_tokens=8
    )
    lengths = [len(enc.tokenizer(t)["input_ids"]) for t in texts]  # special tokens included
    assert 8 in lengths, "a text of exactly max_tokens tokens is not truncated"
    cut = sum(n > 8 for n in lengths)
    assert cut >= 1
    assert enc.describe_inputs(texts) == {"texts truncated to 8 tokens": cut}
    kept = enc.preprocess(texts)["attention_mask"].sum(1).tolist()
    assert kept == [min(n, 8) for n in lengths]
    assert enc.describe_inputs([t for t, n in zip(texts, lengths, strict=True) if n <= 8]) == {}
    assert enc.describe_inputs([]) == {}


def test_text_default_limit_in_the_report() -> None:
    enc = registry.create("encoder", "roberta", checkpoint="random:tiny")
    assert enc.describe_inputs(["word " * 200, "short"]) == {"texts truncated to 96 tokens": 1}


@pytest.mark.parametrize("name", AUDIO)
def test_audio_receptive_field_comes_from_the_conv_config(name: str) -> None:
    enc = registry.create("encoder", name, checkpoint="random:tiny")
    need = enc.min_samples
    assert need == 400
    assert enc.frame_lengths(torch.tensor([need - 1, need])).tolist() == [0, 1]
    enc.model.config.conv_kernel = (10, 3, 3)  # a shallower front end has a smaller one
    enc.model.config.conv_stride = (5, 2, 2)
    assert enc.min_samples == 10 + 5 * 2 + 5 * 2 * 2


@pytest.mark.parametrize("name", AUDIO)
def test_audio_counts_the_clips_preprocess_pads(name: str) -> None:
    enc = registry.create("encoder", name, checkpoint="random:tiny")
    assert enc.describe_inputs([0, 100, 399, 400, 16000]) == {SHORT: 3}
    assert enc.describe_inputs([400, 96000]) == {}
    assert enc.describe_inputs([]) == {}
    # previews are counted after the encoder's own length cut
    cut = registry.create("encoder", name, checkpoint="random:tiny", max_seconds=0.02)
    assert cut.describe_inputs([16000, 320]) == {SHORT: 2}


@pytest.mark.parametrize("name", AUDIO)
def test_short_clip_is_zero_padded_to_one_frame(name: str) -> None:
    """A 100-sample clip (6 ms) used to stop preprocess; now it is normalised, zero-padded to
    the receptive field and encoded as one valid frame, alone or inside a padded batch."""
    torch.manual_seed(0)
    enc = registry.create("encoder", name, checkpoint="random:tiny").eval()
    clip, other = tone(100 / SR, 200.0, 1), tone(0.5, 120.0, 2)
    alone = enc.preprocess([clip])
    assert alone["input_values"].shape == (1, 400) and alone["attention_mask"].all()
    head = alone["input_values"][0, :100].double()
    assert abs(float(head.mean())) < 1e-5 and abs(float(head.std(unbiased=False)) - 1) < 1e-4
    assert not alone["input_values"][0, 100:].any()
    with torch.no_grad():
        one = enc(alone)
        both = enc(enc.preprocess([clip, other]))
    assert one.mask.sum().item() == 1 and both.mask.sum(1).tolist() == [1, 24]
    assert torch.isfinite(one.pooled).all() and torch.isfinite(both.pooled).all()
    torch.testing.assert_close(both.pooled[0], one.pooled[0], atol=1e-5, rtol=0)
    empty: Any = np.zeros(0, dtype=np.float32)  # even an empty clip is well defined
    with torch.no_grad():
        assert torch.isfinite(enc(enc.preprocess([empty])).pooled).all()
