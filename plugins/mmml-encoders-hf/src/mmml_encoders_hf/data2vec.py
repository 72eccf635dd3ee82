"""The ``data2vec`` audio encoder: data2vec-audio (Baevski et al., 2022) for English speech.

Paper section 3.1 (Feature Network: "Data2Vec for English") with the appendix's setup: frozen
CNN feature extractor, fine-tuned transformer; default checkpoint
``facebook/data2vec-audio-base`` (docs/encoders.md). Everything but the two architecture specifics
below lives in :mod:`mmml_encoders_hf.audio` (preprocessing, frozen conv stack, frame masks,
SDPA encoder, masked-mean pooling, padding invariance).

data2vec-audio specifics: layer norm in every conv layer of the feature extractor (so the conv
stack needs no masking), a feature projection that also returns the normalised features, and a
positional embedding of ``num_conv_pos_embeddings`` stacked grouped convolutions (5 in the
base model), each followed by a parameter-free layer norm and GELU; padded frames are zeroed
after each of them so a padded item sees the zero padding it would see alone.
``masking="hf"`` (the ``authors`` profile) runs the transformers forward instead, which zeroes
them before the first layer only.

Letters: B batch, T frames, C conv channels, D width.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor
from transformers import Data2VecAudioConfig

from mmml_encoders_hf.audio import AudioEncoder

__all__ = ["Data2VecEncoder"]


class Data2VecEncoder(AudioEncoder):
    """data2vec-audio encoder (see the module docstring)."""

    MODEL_TYPES: ClassVar[tuple[str, ...]] = ("data2vec-audio",)
    # transformers' data2vec-audio encoder is always post-norm, whatever a checkpoint's
    # config.json carries (a do_stable_layer_norm key there changes nothing in its forward)
    STABLE_LAYER_NORM: ClassVar[bool | None] = False
    # No Chinese data2vec-audio is published; Chinese audio defaults to the hubert encoder.
    DEFAULT_CHECKPOINTS: ClassVar[dict[str, str]] = {"en": "facebook/data2vec-audio-base"}

    @classmethod
    def random_config(cls, preset: str) -> Any:
        """``base``: transformers' defaults, the data2vec-audio-base architecture (93.2 M).

        ``large``: the data2vec-audio-large(-960h) architecture (313.3 M): width 1024, 24
        layers, 16 heads, feed-forward 4096, the base conv stack (7 layers of 512 channels)
        with conv biases, the base positional embedding (5 grouped convs, kernel 19, 16
        groups); dropout, LayerDrop and SpecAugment as in base.

        ``tiny``: the base conv strides and kernels (50 Hz frames, so masks and lengths behave
        as in the real model) with 32 channels, width 64, 2 layers, 2 positional conv layers,
        no LayerDrop or SpecAugment (tests want deterministic training steps).
        """
        if preset == "base":
            return Data2VecAudioConfig()
        if preset == "large":
            # From what we know of the published config.json (not checked here, offline):
            # conv_bias true; the positional embedding as in base (5 convs, kernel 19, 16
            # groups: transformers' defaults, kept); and the wav2vec2 keys
            # feat_extract_norm="layer" and do_stable_layer_norm=true. Transformers'
            # data2vec-audio reads neither of those two: its conv layers always layer-norm and
            # its encoder is always post-norm. They are left out on purpose, since
            # AudioEncoder._encode reads do_stable_layer_norm with getattr and would then run a
            # pre-norm order that the model does not have.
            return Data2VecAudioConfig(
                hidden_size=1024,
                num_hidden_layers=24,
                num_attention_heads=16,
                intermediate_size=4096,
                conv_bias=True,
            )
        return Data2VecAudioConfig(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            conv_dim=(32,) * 7,
            num_conv_pos_embeddings=2,
            num_conv_pos_embedding_groups=4,
            layerdrop=0.0,
            mask_time_prob=0.0,
        )

    def _project(self, features: Tensor) -> Tensor:
        hidden, _normed = self.model.feature_projection(features)  # (B, T, D), (B, T, C)
        return hidden

    def _positional(self, hidden: Tensor, keep: Tensor) -> Tensor:
        x = hidden.transpose(1, 2)  # (B, D, T)
        keep_t = keep.transpose(1, 2)  # (B, 1, T)
        for layer in self.model.encoder.pos_conv_embed.layers:
            x = layer(x) * keep_t  # (B, D, T); zero padding again before the next conv
        return x.transpose(1, 2)  # (B, T, D)
