"""What the ``data2vec`` and ``hubert`` audio encoders share (paper section 3.1, audio subnet).

Both are wav2vec 2.0-family models: a convolutional feature extractor turns 16 kHz samples
into 50 Hz frames (receptive field 400 samples, stride 320), a linear projection widens them,
a convolutional positional embedding is added, and a transformer encodes the frames. The
architecture files (:mod:`mmml_encoders_hf.data2vec`, :mod:`mmml_encoders_hf.hubert`) add the
parts that differ; this module holds the rest.

What this encoder does, following the paper's appendix, docs/data.md and docs/encoders.md:

- ``preprocess`` (DataLoader worker): cut every utterance to ``max_seconds``, normalise it to
  zero mean and unit variance over its own samples when the checkpoint's feature-extractor
  config says ``do_normalize`` (random presets: yes, as the authors did), and pad with zeros to
  the longest item of the batch (``padding="max_length"``: to ``max_seconds`` for every
  item), with a sample-level ``attention_mask``. An utterance shorter
  than the conv stack's receptive field (:attr:`AudioEncoder.min_samples`, 400 samples = 25 ms
  for these models) gives no frame at all (alone the conv stack fails, in a padded batch its
  pooled vector is NaN), so ``preprocess`` zero-pads it to the receptive field after
  normalisation, the padding counted as valid samples: it yields exactly one frame (an empty
  utterance too). ``describe_inputs`` counts such utterances for the run's data report.
- ``forward``: the feature extractor is frozen (no parameter takes a gradient and it runs
  without building a graph); the frame mask comes from the model's conv output-length formula
  (``_get_feat_extract_output_lengths``); attention runs through SDPA (``attention="eager"``:
  transformers' explicit attention, as the authors' code ran it); ``pooled`` is the mean
  of the last hidden states over the valid frames.

Padding invariance (``masking="invariant"``, the default). An utterance encoded inside a
padded batch gives the same valid-frame hidden states and pooled vector as the utterance
encoded alone (to float32 rounding). The plain transformers forward does not guarantee that,
and neither did the original fairseq code, in two places, which this module handles
explicitly:

1. Group norm in the first conv layer (``feat_extract_norm="group"``: HuBERT base,
   chinese-hubert-base, wav2vec2-base) normalises each channel over the whole time axis,
   padding included, and those checkpoints are meant to be run without an attention mask.
   Here the statistics of that layer are taken over the item's valid frames only, which is
   exactly what the layer computes for the unpadded utterance.
2. A multi-layer convolutional positional embedding (data2vec-audio: 5 layers) zeroes the
   padded frames only before its first layer; later layers see non-zero padding near the end
   of a short item. Here padded frames are zeroed after every layer, which reproduces the
   zero padding each convolution sees on the unpadded utterance.

So for real checkpoints the outputs equal what the published model computes on each utterance
by itself (batch of one), which is also how the authors' numbers would not depend on batch
composition. Valid frames never read padded samples in the conv stack: the output-length
formula counts exactly the frames whose receptive field lies inside the utterance.

The authors' pipeline (``padding="max_length"``, ``masking="hf"``: the ``authors`` profile).
Their code padded every clip with zeros to 6 s (96,000 samples) and called the transformers
model with the sample mask as ``attention_mask``. ``masking="hf"`` does exactly that call,
``self.model(input_values=..., attention_mask=...)``: data2vec zeroes the padded frames once,
before its positional convolutions; HuBERT's group norm takes its statistics over the whole
padded clip; SpecAugment is applied where transformers' forward applies it. So a clip's
outputs depend on how far it is padded, as in the authors' runs. The frozen CNN takes no
gradient and builds no autograd graph there either (``freeze_feature_extractor``; the CNN's
``_freeze_parameters`` is called, so transformers does not mark the input as requiring grad);
the frame mask, the zeroing of padded frames and ``pooled`` are computed as above from the
conv output-length formula (299 frames for 96,000 samples). One deviation stays under
``max_length``: a clip shorter than :attr:`AudioEncoder.min_samples` is still zero-padded to
400 valid samples (one frame), where the authors' code would give it an empty frame mask and
a NaN mean. An empty clip (no samples: the missing predecessor of a context model under
``data.empty_context=encode``) is kept as the authors' loader gives it, zeros with an
all-zero sample mask, handed to transformers as such; its frame mask then covers every frame
(the authors' frame count falls back to all of them), so its vector is the encoder's response
to the padded silence.

Letters: B batch, S samples, C conv channels, T frames, D width.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn
from transformers import AutoFeatureExtractor, AutoModel, Wav2Vec2FeatureExtractor
from transformers.masking_utils import create_bidirectional_mask

from mmml_core.interfaces import EncoderOutput, FeatureEncoder
from mmml_encoders_hf.checkpoints import (
    LANGUAGES,
    CheckpointError,
    check_attention,
    load_hf_model,
    loads_pretrained,
    reads_weights,
    resolve,
    with_checkpoint,
    write_assets_marker,
)

__all__ = ["AudioConfig", "AudioEncoder", "masked_group_norm", "normalize_waveform"]

SAMPLE_RATE = 16000  # raw audio items are 16 kHz mono (mmml_core.interfaces)
NORM_EPS = 1e-7  # variance floor of the authors' (and transformers') per-utterance normalisation
PADDINGS = ("longest", "max_length")  # AudioConfig.padding
MASKINGS = ("invariant", "hf")  # AudioConfig.masking


@dataclass
class AudioConfig:
    # Empty picks the language's default (docs/encoders.md); else a hub id, a local directory
    # (from_pretrained / save_pretrained layout) or random:tiny / random:base.
    checkpoint: str = ""
    # English is the paper's MOSI/MOSEI setting; picks the default checkpoint only.
    language: str = "en"
    # The authors kept at most 6 s (96,000 samples) per utterance (docs/paper.md).
    max_seconds: float = 6.0
    # The authors froze the CNN feature extractor (paper appendix); it also saves most of the
    # activation memory of the audio branch.
    freeze_feature_extractor: bool = True
    # None: as the checkpoint's feature-extractor config says (do_normalize); True/False
    # overrides it. Random presets normalise, as the authors did.
    normalize: bool | None = None
    # None: the checkpoint's LayerDrop probability (training only; 0 for random:tiny).
    layerdrop: float | None = None
    # None: the checkpoint's SpecAugment time-masking probability (training only; 0 for
    # random:tiny, 0.05 in the published base configs).
    mask_time_prob: float | None = None
    # "longest": zero-pad the batch to its longest clip; "max_length": zero-pad every clip to
    # max_seconds, as the authors' code did (the ``authors`` profile).
    padding: str = "longest"
    # "invariant": mmml's padding-invariant forward (masked group norm, positional convs
    # re-zeroed); "hf": the transformers model's own forward with the sample mask as
    # attention_mask, as the authors' code ran it (outputs then depend on the padding).
    masking: str = "invariant"
    # transformers' attention implementation: "sdpa" (fused kernels) or "eager" (explicit
    # matmul + softmax, as the authors' code ran it; the ``authors`` profile). Same outputs.
    attention: str = "sdpa"

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, got {self.language!r}")
        if not self.max_seconds > 0:
            raise ValueError(f"max_seconds must be positive, got {self.max_seconds}")
        for name in ("layerdrop", "mask_time_prob"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        if self.masking not in MASKINGS:
            raise ValueError(f"masking must be one of {MASKINGS}, got {self.masking!r}")
        check_attention(self.attention)


def normalize_waveform(wave: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance over the utterance's own samples (float32)."""
    wave = wave.astype(np.float64)
    return ((wave - wave.mean()) / np.sqrt(wave.var() + NORM_EPS)).astype(np.float32)


def masked_group_norm(x: Tensor, lengths: Tensor, norm: nn.GroupNorm) -> Tensor:
    """``norm`` applied to each item as if it were ``lengths[b]`` frames long.

    ``x`` is (B, C, T); statistics of each group use only the first ``lengths[b]`` frames, the
    formula of :class:`torch.nn.GroupNorm` (biased variance, ``norm.eps``), computed in float32
    as autocast computes group norm. Padded frames are normalised with the same statistics;
    nothing valid depends on them.
    """
    b, c, t = x.shape
    g = norm.num_groups
    valid = torch.arange(t, device=x.device)[None, :] < lengths[:, None]  # (B, T)
    keep = valid[:, None, None, :].float()  # (B, 1, 1, T)
    xg = x.float().reshape(b, g, c // g, t)  # (B, G, C/G, T)
    count = lengths.float()[:, None, None, None] * (c // g)  # (B, 1, 1, 1)
    mean = (xg * keep).sum(dim=(2, 3), keepdim=True) / count  # (B, G, 1, 1)
    var = (((xg - mean) * keep) ** 2).sum(dim=(2, 3), keepdim=True) / count  # (B, G, 1, 1)
    y = ((xg - mean) * torch.rsqrt(var + norm.eps)).reshape(b, c, t)  # (B, C, T)
    if norm.affine:
        y = y * norm.weight.float()[None, :, None] + norm.bias.float()[None, :, None]
    return y.to(x.dtype)


def _output(hidden: Tensor, mask: Tensor, frames: Tensor) -> EncoderOutput:
    """Padded frames of ``hidden`` (B, T, D) zeroed; ``pooled`` the mean over the ``frames``
    valid ones, summed in float32."""
    keep = mask[..., None].to(hidden.dtype)  # (B, T, 1)
    hidden = hidden * keep  # padding zeroed
    pooled = (hidden.float().sum(1) / frames[:, None].float()).to(hidden.dtype)  # (B, D)
    return EncoderOutput(hidden=hidden, mask=mask, pooled=pooled)


def _conv_out_length(lengths: Tensor, conv: nn.Conv1d) -> Tensor:
    """Valid output frames of an unpadded, undilated strided convolution."""
    return torch.div(lengths - conv.kernel_size[0], conv.stride[0], rounding_mode="floor") + 1


class AudioEncoder(FeatureEncoder):
    """Base of the wav2vec 2.0-family encoders; subclasses set the class attributes below and
    implement :meth:`random_config`, :meth:`_project` and :meth:`_positional`.

    Attributes: ``model`` is the transformers model (``model.feature_extractor`` is its CNN);
    ``preprocessor`` is what transformers calls the checkpoint's *feature extractor*, the
    waveform-preprocessing config (``preprocessor_config.json``), or None when the checkpoint
    has none; ``do_normalize`` is the normalisation ``preprocess`` applies.
    """

    modality: ClassVar[str] = "audio"
    Config: ClassVar[type] = AudioConfig
    MODEL_TYPES: ClassVar[tuple[str, ...]]  # accepted config.model_type values
    #: Pre-norm ("stable") transformer layers: True/False fixed by the architecture, None =
    #: as the checkpoint's ``do_stable_layer_norm`` says (HuBERT large does, base does not).
    STABLE_LAYER_NORM: ClassVar[bool | None] = None
    DEFAULT_CHECKPOINTS: ClassVar[dict[str, str]]  # language -> hub id

    def __init__(self, config: AudioConfig) -> None:
        super().__init__(config)
        if not config.checkpoint and config.language not in self.DEFAULT_CHECKPOINTS:
            raise CheckpointError(
                f"{type(self).__name__} has no default checkpoint for language "
                f"{config.language!r}; pass checkpoint= (defaults: {self.DEFAULT_CHECKPOINTS})"
            )
        self.checkpoint = config.checkpoint or self.DEFAULT_CHECKPOINTS[config.language]
        self.max_samples = int(round(config.max_seconds * SAMPLE_RATE))
        overrides = {
            k: v
            for k, v in (("layerdrop", config.layerdrop), ("mask_time_prob", config.mask_time_prob))
            if v is not None
        }
        source = resolve(self.checkpoint)
        self.source = source
        if source.kind == "random":
            hf_config = self.random_config(source.name)
            for key, value in overrides.items():
                setattr(hf_config, key, value)
            self.model = AutoModel.from_config(hf_config, attn_implementation=config.attention)
            # The authors' normalisation; saved with save_pretrained for directory round trips.
            self.preprocessor = Wav2Vec2FeatureExtractor(
                feature_size=1,
                sampling_rate=SAMPLE_RATE,
                padding_value=0.0,
                do_normalize=True,
                return_attention_mask=True,
            )
        else:
            self.preprocessor, self.model = self._load_pretrained(
                source.name, source.load_kwargs, overrides, reads_weights(source)
            )
        self._check_architecture()
        if config.normalize is not None:
            self.do_normalize = config.normalize
        elif self.preprocessor is not None:
            self.do_normalize = bool(getattr(self.preprocessor, "do_normalize", False))
        else:
            raise CheckpointError(
                f"{self.checkpoint!r} has no feature-extractor config (preprocessor_config.json), "
                "so it does not say whether to normalise waveforms; set normalize=true or false"
            )
        if config.freeze_feature_extractor:
            for p in self.model.feature_extractor.parameters():
                p.requires_grad_(False)
            # transformers' own forward (masking="hf") would otherwise mark the input as
            # requiring grad in training and build a graph through the frozen CNN
            freeze = getattr(self.model.feature_extractor, "_freeze_parameters", None)
            if freeze is not None:
                freeze()

    # -- per architecture -------------------------------------------------------------------

    @classmethod
    @abc.abstractmethod
    def random_config(cls, preset: str) -> Any:
        """The transformers config of ``random:<preset>``."""

    @abc.abstractmethod
    def _project(self, features: Tensor) -> Tensor:
        """(B, T, C) conv features -> (B, T, D) encoder input."""

    @abc.abstractmethod
    def _positional(self, hidden: Tensor, keep: Tensor) -> Tensor:
        """Convolutional positional embedding of ``hidden`` (B, T, D), padded frames zero;
        ``keep`` (B, T, 1) is 1 on valid frames."""

    # -- shared ------------------------------------------------------------------------------

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        return {"checkpoint": "random:tiny"}

    @property
    def dim(self) -> int:  # D
        return int(self.model.config.hidden_size)

    @property
    def min_samples(self) -> int:
        """The conv stack's receptive field: the shortest utterance that yields one frame
        (400 samples, 25 ms, for every wav2vec 2.0-family base and large model), from the
        checkpoint's ``conv_kernel`` and ``conv_stride``."""
        layers = zip(self.model.config.conv_kernel, self.model.config.conv_stride, strict=True)
        n = 1
        for kernel, stride in reversed(list(layers)):
            n = (n - 1) * stride + kernel
        return n

    def describe_inputs(self, previews: Sequence[Any]) -> dict[str, int]:
        """How many utterances (previews: sample counts) ``preprocess`` zero-pads to
        :attr:`min_samples` because they are shorter than one frame's receptive field."""
        need = self.min_samples
        short = sum(min(int(n), self.max_samples) < need for n in previews)
        if not short:
            return {}
        ms = f"{need / SAMPLE_RATE * 1000:g}"
        return {f"clips shorter than {need} samples ({ms} ms), zero-padded to {need}": short}

    def frame_lengths(self, sample_lengths: Tensor) -> Tensor:
        """Valid frames per item, by the model's own conv output-length formula."""
        return self.model._get_feat_extract_output_lengths(sample_lengths).to(torch.long)

    def preprocess(self, items: Sequence[Any]) -> dict[str, Tensor]:
        """Cut to ``max_seconds``, normalise per utterance if configured, zero-pad an utterance
        shorter than :attr:`min_samples` to it (the padding is valid: one frame), pad the batch
        with zeros to its longest item or (``padding="max_length"``) to ``max_seconds``."""
        need = self.min_samples
        waves = []
        for i, item in enumerate(items):
            wave = np.asarray(item, dtype=np.float32)
            if wave.ndim != 1:
                raise ValueError(f"audio item {i} has shape {wave.shape}; expected 1-D samples")
            wave = wave[: self.max_samples]
            if self.do_normalize and len(wave):
                wave = normalize_waveform(wave)
            authors_empty = not len(wave) and self.config.masking == "hf"
            if len(wave) < need and not authors_empty:  # the zeros are the utterance's mean
                wave = np.pad(wave, (0, need - len(wave)))
            # masking="hf": an empty clip (a context model's missing predecessor) stays
            # empty: zeros with an all-zero sample mask, as the authors' loader gives it
            waves.append(wave)
        if not waves:
            raise ValueError("preprocess got no audio items")
        width = max(len(w) for w in waves)
        if self.config.padding == "max_length":  # min_samples wins over a shorter max_seconds
            width = max(width, self.max_samples)
        values = np.zeros((len(waves), width), dtype=np.float32)  # (B, S)
        mask = np.zeros((len(waves), width), dtype=np.int64)  # (B, S)
        for i, w in enumerate(waves):
            values[i, : len(w)] = w
            mask[i, : len(w)] = 1
        return {"input_values": torch.from_numpy(values), "attention_mask": torch.from_numpy(mask)}

    def _extract(self, values: Tensor, lengths: Tensor) -> Tensor:
        """The conv feature extractor, (B, S) -> (B, C, T), group norm over valid frames."""
        x = values[:, None]  # (B, 1, S)
        for layer in self.model.feature_extractor.conv_layers:
            lengths = _conv_out_length(lengths, layer.conv)
            norm = getattr(layer, "layer_norm", None)
            if isinstance(norm, nn.GroupNorm):
                x = layer.activation(masked_group_norm(layer.conv(x), lengths, norm))  # (B, C, T)
            else:
                x = layer(x)  # (B, C, T); a layer norm here acts per frame
        return x

    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        if self.config.masking == "hf":
            return self._forward_hf(inputs)
        values = inputs["input_values"]  # (B, S)
        lengths = inputs["attention_mask"].sum(-1).to(torch.long)  # (B,)
        frozen = self.config.freeze_feature_extractor
        with torch.set_grad_enabled(torch.is_grad_enabled() and not frozen):
            features = self._extract(values, lengths).transpose(1, 2)  # (B, T, C)
        frames = self.frame_lengths(lengths)  # (B,); the longest item fills all T frames
        t = features.shape[1]
        mask = torch.arange(t, device=values.device)[None, :] < frames[:, None]  # (B, T)
        hidden = self._project(features)  # (B, T, D)
        # SpecAugment as the checkpoint configures it (training only, valid frames only).
        hidden = self.model._mask_hidden_states(hidden, attention_mask=mask.long())
        hidden = self._encode(hidden, mask)  # (B, T, D)
        return _output(hidden, mask, frames)

    def _forward_hf(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        """``masking="hf"``: the transformers forward with the sample mask, as the authors
        ran it (module docstring); the frozen CNN builds no graph (see ``__init__``)."""
        sample_mask = inputs["attention_mask"]  # (B, S)
        out = self.model(input_values=inputs["input_values"], attention_mask=sample_mask)
        hidden = out.last_hidden_state  # (B, T, D)
        samples = sample_mask.sum(-1).to(torch.long)  # (B,)
        t = hidden.shape[1]
        # an empty clip (all-zero mask): the authors' frame count falls back to every frame,
        # so its vector is the encoder's response to the padded silence
        frames = torch.where(samples > 0, self.frame_lengths(samples.clamp(min=1)), t)  # (B,)
        mask = torch.arange(t, device=hidden.device)[None, :] < frames[:, None]  # (B, T)
        return _output(hidden, mask, frames)

    def _encode(self, hidden: Tensor, mask: Tensor) -> Tensor:
        """The transformer encoder of the checkpoint with masked positional convolution.

        Same order of operations as transformers' ``HubertEncoder`` /
        ``HubertEncoderStableLayerNorm`` / ``Data2VecAudioEncoder``, including LayerDrop.
        """
        encoder = self.model.encoder
        hf_config = self.model.config
        keep = mask[..., None].to(hidden.dtype)  # (B, T, 1)
        hidden = hidden * keep
        hidden = hidden + self._positional(hidden, keep)  # (B, T, D)
        stable = self.STABLE_LAYER_NORM
        if stable is None:  # the architecture branches on the checkpoint's config
            stable = bool(getattr(hf_config, "do_stable_layer_norm", False))
        if not stable:
            hidden = encoder.layer_norm(hidden)
        hidden = encoder.dropout(hidden)
        attn_mask = create_bidirectional_mask(
            config=hf_config, inputs_embeds=hidden, attention_mask=mask
        )
        for layer in encoder.layers:
            if self.training and hf_config.layerdrop > 0.0:
                if torch.rand([]) < hf_config.layerdrop:
                    continue
            hidden = layer(hidden, attention_mask=attn_mask)  # (B, T, D)
        if stable:
            hidden = encoder.layer_norm(hidden)
        return hidden

    def save_assets(self, directory: Any) -> bool:
        """Architecture config, feature-extractor config (when the checkpoint has one) and the
        assets marker, no weights (see :mod:`mmml_encoders_hf.checkpoints`); nothing for random
        presets, which rebuild from their name."""
        if self.source.kind == "random":
            return False
        self.model.config.save_pretrained(str(directory))
        if self.preprocessor is not None:
            self.preprocessor.save_pretrained(str(directory))
        write_assets_marker(directory, self.source, type(self).__name__)
        return True

    @classmethod
    def config_with_assets(cls, config: dict[str, Any], directory: Any) -> dict[str, Any]:
        return with_checkpoint(config, directory)

    @classmethod
    def loads_pretrained_weights(cls, config: Mapping[str, Any]) -> bool:
        return loads_pretrained(config)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write weights (safetensors), config and feature-extractor config so that
        ``checkpoint=directory`` loads them back."""
        self.model.save_pretrained(str(directory))
        if self.preprocessor is not None:
            self.preprocessor.save_pretrained(str(directory))

    def _check_architecture(self) -> None:
        model_type = self.model.config.model_type
        if model_type not in self.MODEL_TYPES:
            raise CheckpointError(
                f"{self.checkpoint!r} is a {model_type!r} checkpoint; {type(self).__name__} "
                f"loads {', '.join(self.MODEL_TYPES)}"
            )
        if getattr(self.model.config, "add_adapter", False):
            raise CheckpointError(f"{self.checkpoint!r}: adapter layers are not supported")

    def _load_pretrained(
        self, name: str, load_kwargs: dict[str, Any], overrides: dict[str, Any], weights: bool
    ) -> tuple[Any, Any]:
        model = load_hf_model(
            name,
            self.MODEL_TYPES,
            type(self).__name__,
            load_kwargs,
            overrides,
            weights,
            attention=self.config.attention,
        )
        try:
            preprocessor = AutoFeatureExtractor.from_pretrained(name, **load_kwargs)
        except OSError:
            preprocessor = None  # __init__ then requires an explicit normalize=
        if preprocessor is not None:
            rate = getattr(preprocessor, "sampling_rate", SAMPLE_RATE)
            if rate != SAMPLE_RATE:
                raise CheckpointError(f"{name!r} expects {rate} Hz audio; mmml feeds 16 kHz")
        return preprocessor, model
