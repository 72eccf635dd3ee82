"""The ``random:large`` presets: the published large architectures with random weights.

Shapes and parameter counts are checked on the meta device (no memory, no initialisation).
The audio forward (padding invariance, agreement with transformers) is run for real on short
clips: with one CPU thread a 24-layer, 1024-wide model encodes a second of audio in under a
second; building it takes a few seconds.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from encoders_hf_helpers import tone
from mmml_encoders_hf.checkpoints import PRESETS, CheckpointError

from mmml_core import registry

WIDTH, LAYERS, HEADS, FFN = 1024, 24, 16, 4096


def _encoder_layers(d: int, f: int, layers: int) -> int:
    """Parameters of ``layers`` transformer layers (attention q/k/v/o with biases, a
    two-layer feed-forward with biases, two layer norms)."""
    return layers * (4 * (d * d + d) + (d * f + f) + (f * d + d) + 2 * 2 * d)


def _text(vocab: int, positions: int, token_types: int) -> int:
    """RoBERTa / BERT: embeddings (+ layer norm), the layers, the pooler (dense + bias)."""
    d = WIDTH
    embeddings = (vocab + positions + token_types) * d + 2 * d
    return embeddings + _encoder_layers(d, FFN, LAYERS) + d * d + d


def _audio(positional: int) -> int:
    """wav2vec 2.0 family, large: conv stack (7 x 512 channels, kernels 10,3,3,3,3,2,2, with
    biases, a layer norm after each conv), feature projection (layer norm + linear 512 ->
    1024), ``positional`` parameters, the layers, the encoder's layer norm, the SpecAugment
    mask embedding."""
    c, d = 512, WIDTH
    kernels = (10, 3, 3, 3, 3, 2, 2)
    convs = sum((1 if i == 0 else c) * c * k + c for i, k in enumerate(kernels))
    conv_norms = 7 * 2 * c
    projection = 2 * c + c * d + d
    return (
        convs + conv_norms + projection + positional + _encoder_layers(d, FFN, LAYERS) + 2 * d + d
    )


# Exact counts from the architectures above, and the published sizes they must be within 1 % of:
# roberta-large 355 M (fairseq's RoBERTa model table); hfl/chinese-roberta-wwm-ext-large 325 M
# (hfl's Chinese-BERT-wwm model table; BERT-large with a 21,128-entry vocabulary, 512
# positions, 2 token types); data2vec-audio-large 313 M (the count of the
# architecture, with the base positional embedding of five grouped convs 1024 -> 1024, kernel
# 19, 16 groups; we know of no published figure for the transformers model); hubert-large 317 M (HuBERT paper,
# presumably with its pre-training heads, which the transformers model has not: 315.4 M,
# 0.5 % less).
ROBERTA_LARGE = _text(50265, 514, 1)  # 355,359,744
CHINESE_LARGE = _text(21128, 512, 2)  # 325,522,432
DATA2VEC_LARGE = _audio(5 * (WIDTH * (WIDTH // 16) * 19 + WIDTH))  # 313,280,000
# one conv, kernel 128, 16 groups, weight norm over the kernel axis (g: 128, v: the weight)
HUBERT_LARGE = _audio(WIDTH * (WIDTH // 16) * 128 + 128 + WIDTH)  # 315,438,720

CASES: dict[str, tuple[str, dict[str, Any], int, float]] = {
    "roberta-en": ("roberta", {"language": "en"}, ROBERTA_LARGE, 355e6),
    "roberta-zh": ("roberta", {"language": "zh"}, CHINESE_LARGE, 325e6),
    "data2vec": ("data2vec", {}, DATA2VEC_LARGE, 313e6),
    "hubert": ("hubert", {}, HUBERT_LARGE, 317e6),
}


def test_the_counts_we_compare_to() -> None:
    """The numbers above, written out, so that a change of the formulas shows."""
    assert ROBERTA_LARGE == 355_359_744
    assert CHINESE_LARGE == 325_522_432
    assert DATA2VEC_LARGE == 313_280_000
    assert HUBERT_LARGE == 315_438_720


def test_large_is_a_preset() -> None:
    assert "large" in PRESETS
    with pytest.raises(CheckpointError, match="random:tiny, random:base, random:large"):
        registry.create("encoder", "roberta", checkpoint="random:huge")


@pytest.mark.parametrize("key", list(CASES))
def test_random_large_has_the_published_architecture(key: str) -> None:
    name, extra, exact, published = CASES[key]
    with torch.device("meta"):  # shapes only
        enc = registry.create("encoder", name, checkpoint="random:large", **extra)
    cfg = enc.model.config
    assert enc.dim == WIDTH
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.intermediate_size) == (
        LAYERS,
        HEADS,
        FFN,
    )
    assert len(enc.model.encoder.layer if name == "roberta" else enc.model.encoder.layers) == 24
    count = sum(p.numel() for p in enc.parameters())
    assert count == exact, (key, count)
    assert abs(count - published) / published < 0.01, (key, count, published)


def test_random_large_text_vocabularies_and_tokenizers() -> None:
    with torch.device("meta"):
        en = registry.create("encoder", "roberta", checkpoint="random:large", language="en")
        zh = registry.create("encoder", "roberta", checkpoint="random:large", language="zh")
    assert en.model.config.model_type == "roberta" and zh.model.config.model_type == "bert"
    assert en.model.config.vocab_size == 50265 and en.model.config.max_position_embeddings == 514
    assert zh.model.config.vocab_size == 21128 and zh.model.config.max_position_embeddings == 512
    # every id of the offline tokenizers is a row of the embedding
    assert len(en.tokenizer) <= 50265 and len(zh.tokenizer) <= 21128


def test_random_large_audio_specifics() -> None:
    with torch.device("meta"):
        d2v = registry.create("encoder", "data2vec", checkpoint="random:large")
        hub = registry.create("encoder", "hubert", checkpoint="random:large")
    for enc in (d2v, hub):
        cfg = enc.model.config
        assert cfg.conv_bias and tuple(cfg.conv_dim) == (512,) * 7
        assert tuple(cfg.conv_stride) == (5, 2, 2, 2, 2, 2, 2) and enc.min_samples == 400
        assert all(layer.conv.bias is not None for layer in enc.model.feature_extractor.conv_layers)
        assert all(
            isinstance(layer.layer_norm, torch.nn.LayerNorm)
            for layer in enc.model.feature_extractor.conv_layers
        ), "a per-frame layer norm in every conv layer"
    # transformers' data2vec-audio is post-norm whatever the config says; the encoder must not
    # be told otherwise (AudioEncoder._encode reads do_stable_layer_norm)
    assert not getattr(d2v.model.config, "do_stable_layer_norm", False)
    assert type(d2v.model.encoder).__name__ == "Data2VecAudioEncoder"
    assert (d2v.model.config.num_conv_pos_embeddings, d2v.model.config.conv_pos_kernel_size) == (
        5,
        19,
    )
    assert hub.model.config.feat_extract_norm == "layer" and hub.model.config.do_stable_layer_norm
    assert type(hub.model.encoder).__name__ == "HubertEncoderStableLayerNorm"
    assert hub.model.config.num_conv_pos_embeddings == 128


@pytest.mark.parametrize("name", ["data2vec", "hubert"])
def test_random_large_audio_forward_is_padding_invariant_and_matches_transformers(
    name: str,
) -> None:
    """The real forward on 0.3 s and 0.8 s clips (one model built per encoder): each clip in
    a padded batch equals the clip alone, and the clip alone equals the transformers model."""
    torch.manual_seed(0)
    enc = registry.create("encoder", name, checkpoint="random:large").eval()
    clips = [tone(0.3, 150.0, 1), tone(0.8, 110.0, 2)]
    with torch.no_grad():
        batch = enc(enc.preprocess(clips))
        assert batch.hidden.shape == (2, 39, WIDTH)  # 0.8 s: 39 frames at 50 Hz
        for i, clip in enumerate(clips):
            x = enc.preprocess([clip])
            alone = enc(x)
            n = int(alone.mask[0].sum())
            assert int(batch.mask[i].sum()) == n
            torch.testing.assert_close(batch.hidden[i, :n], alone.hidden[0], atol=1e-4, rtol=0)
            torch.testing.assert_close(batch.pooled[i], alone.pooled[0], atol=1e-4, rtol=0)
            assert not batch.hidden[i, n:].any()
            ref = enc.model(x["input_values"]).last_hidden_state  # (1, T, D)
            torch.testing.assert_close(alone.hidden, ref, atol=1e-4, rtol=0)
