"""The ``hubert`` audio encoder: HuBERT (Hsu et al., 2021) for Mandarin speech.

Paper section 3.1 (Feature Network: "HuBERT for Mandarin") with the appendix's setup: frozen
CNN feature extractor, fine-tuned transformer; default checkpoint
``TencentGameMate/chinese-hubert-base`` for Chinese (docs/encoders.md) and
``facebook/hubert-base-ls960`` for English. Everything but the architecture specifics below
lives in :mod:`mmml_encoders_hf.audio`.

HuBERT specifics: the base models use ``feat_extract_norm="group"``, a per-channel group norm
over time after the first conv layer, which :mod:`mmml_encoders_hf.audio` computes over each
item's valid frames (the published base checkpoints are run without an attention mask, so
with plain transformers their outputs change with batch padding); the large models use
per-frame layer norms and the pre-norm ("stable layer norm") encoder, both supported. The
positional embedding is one wide grouped convolution (kernel 128) with weight norm, or batch
norm when ``conv_pos_batch_norm`` is set; padded frames are zero at its input. With batch norm
in training mode the batch statistics include padded frames (as in transformers), so padding
invariance holds in eval mode only for such checkpoints; none of the defaults uses it.

All of this is the default ``masking="invariant"``; ``masking="hf"`` (the ``authors`` profile)
runs the transformers forward instead, group norm over the whole padded clip included.

Letters: B batch, T frames, D width.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor
from transformers import HubertConfig

from mmml_encoders_hf.audio import AudioEncoder

__all__ = ["HubertEncoder"]


class HubertEncoder(AudioEncoder):
    """HuBERT encoder (see the module docstring)."""

    MODEL_TYPES: ClassVar[tuple[str, ...]] = ("hubert",)
    DEFAULT_CHECKPOINTS: ClassVar[dict[str, str]] = {
        "zh": "TencentGameMate/chinese-hubert-base",  # the authors' Mandarin model
        "en": "facebook/hubert-base-ls960",  # the English base model of the same architecture
    }

    @classmethod
    def random_config(cls, preset: str) -> Any:
        """``base``: transformers' defaults, the hubert-base architecture (94.4 M), group norm.

        ``large``: the hubert-large-ll60k architecture (315.4 M; the HuBERT paper lists 317 M,
        presumably with its pre-training heads, which the transformers model has not):
        width 1024, 24 layers, 16 heads, feed-forward 4096, per-frame layer norm in every conv
        layer, conv biases, the pre-norm ("stable layer norm") encoder; positional conv
        (kernel 128, 16 groups), dropout, LayerDrop and SpecAugment as in base.

        ``tiny``: the base conv strides and kernels with 32 channels and group norm (so the
        masked group norm is exercised), width 64, 2 layers, positional kernel 16, no LayerDrop
        or SpecAugment (tests want deterministic training steps).
        """
        if preset == "base":
            return HubertConfig()
        if preset == "large":
            return HubertConfig(
                hidden_size=1024,
                num_hidden_layers=24,
                num_attention_heads=16,
                intermediate_size=4096,
                feat_extract_norm="layer",
                conv_bias=True,
                do_stable_layer_norm=True,
            )
        return HubertConfig(
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=128,
            conv_dim=(32,) * 7,
            feat_extract_norm="group",
            num_conv_pos_embeddings=16,
            num_conv_pos_embedding_groups=4,
            layerdrop=0.0,
            mask_time_prob=0.0,
        )

    def _project(self, features: Tensor) -> Tensor:
        return self.model.feature_projection(features)  # (B, T, D)

    def _positional(self, hidden: Tensor, keep: Tensor) -> Tensor:
        embed = self.model.encoder.pos_conv_embed
        x = hidden.transpose(1, 2)  # (B, D, T)
        if embed.batch_norm is not None:
            x = embed.batch_norm(x) * keep.transpose(1, 2)  # (B, D, T), padding back to zero
        x = embed.activation(embed.padding(embed.conv(x)))  # (B, D, T)
        return x.transpose(1, 2)  # (B, T, D)
