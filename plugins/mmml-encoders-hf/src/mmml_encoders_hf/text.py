"""The ``roberta`` text encoder: RoBERTa (English) and BERT-architecture RoBERTa-wwm (Chinese).

Paper section 3.1 (Feature Network, text subnet) with the setup of the appendix: the text of an
utterance is tokenized (at most 96 tokens for English, 64 for Chinese, special tokens
included), the transformer's last hidden states form the sequence that feeds the fusion, and
the pooler output over the first token (``<s>`` / ``[CLS]``: dense + tanh) is the utterance
vector for the text subnet head. The model class comes from the checkpoint's ``model_type``
through ``AutoModel``, so ``hfl/chinese-roberta-wwm-ext`` (a BERT checkpoint) loads here too.

Pooler: ``roberta-base`` was converted from fairseq without trained pooler weights, so
transformers initialises that dense layer randomly when it loads the checkpoint (and it trains
with the rest, as in the authors' setup); this encoder logs a warning naming every weight a
checkpoint did not provide. BERT checkpoints such as the Chinese default ship a trained pooler.

Checkpoints and dry runs (:mod:`mmml_encoders_hf.checkpoints`): ``save_assets`` writes the
architecture config and tokenizer of a hub or directory checkpoint next to an mmml model
checkpoint, so that it rebuilds offline; under the meta device the encoder reads configs and
tokenizer but no weights. ``describe_inputs`` counts the texts that ``preprocess`` truncates.

Padding: ``padding="longest"`` (default) pads a batch to its longest text; ``"max_length"``
pads every text to ``max_tokens``, as the authors' code did (the ``authors`` profile). The
attention mask marks the real tokens either way, so valid hidden states and the pooler output
are the same under both, to float rounding (absolute positions, right padding).

Letters: B batch, T tokens, D width.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from torch import Tensor
from transformers import AutoModel, AutoTokenizer, BertConfig, RobertaConfig

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
from mmml_encoders_hf.offline_tokenizers import (
    ZH_VOCAB_SIZE,
    chinese_tokenizer,
    english_tokenizer,
)

__all__ = ["RobertaEncoder", "TextConfig", "random_text_config"]


# the defaults per language: docs/encoders.md
DEFAULT_CHECKPOINTS = {"en": "roberta-base", "zh": "hfl/chinese-roberta-wwm-ext"}
DEFAULT_MAX_TOKENS = {"en": 96, "zh": 64}  # the authors' limits (docs/paper.md)
MODEL_TYPES = ("roberta", "bert")
MAX_POSITIONS = 512  # both architectures embed at most 512 positions
PADDINGS = ("longest", "max_length")
# Transformer sizes of the random presets; "base" is the transformers defaults (768, 12, 12).
ARCHITECTURES: dict[str, dict[str, int]] = {
    # small enough for CPU tests, wide enough to learn the demo set
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128),
    "base": {},
    # roberta-large and BERT-large (hfl/chinese-roberta-wwm-ext-large is a BERT-large)
    "large": dict(
        hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096
    ),
}


@dataclass
class TextConfig:
    # Empty picks the language's default (docs/encoders.md); else a hub id, a local directory
    # (from_pretrained / save_pretrained layout) or random:tiny / random:base / random:large.
    checkpoint: str = ""
    # English is the paper's MOSI/MOSEI setting; "zh" (CH-SIMS) switches the default checkpoint
    # and, for random presets, the tokenizer (character level) and architecture (BERT).
    language: str = "en"
    # None: 96 for English, 64 for Chinese, as the authors truncated; counts special tokens.
    max_tokens: int | None = None
    # "longest": pad the batch to its longest text; "max_length": pad every text to
    # max_tokens, as the authors' code did (the ``authors`` profile).
    padding: str = "longest"
    # transformers' attention implementation: "sdpa" (fused kernels) or "eager" (explicit
    # matmul + softmax, as the authors' code ran it; the ``authors`` profile). Same outputs.
    attention: str = "sdpa"

    def __post_init__(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, got {self.language!r}")
        if self.padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {self.padding!r}")
        check_attention(self.attention)
        if self.max_tokens is not None and not 3 <= self.max_tokens <= MAX_POSITIONS:
            raise ValueError(f"max_tokens must be in [3, {MAX_POSITIONS}], got {self.max_tokens}")


def random_text_config(preset: str, language: str, vocab_size: int) -> RobertaConfig | BertConfig:
    """Architecture of a ``random:<preset>`` text model.

    ``base`` is the published architecture: roberta-base (124.6 M parameters: 50,265-entry
    vocabulary, 514 positions, one token type) for English, bert-base with the 21,128-entry
    vocabulary of hfl/chinese-roberta-wwm-ext (102.3 M) for Chinese. ``large`` is the
    published large architecture (width 1024, 24 layers, 16 heads, feed-forward 4096), same
    vocabularies and positions: roberta-large (355.4 M) for English, the BERT-large layout of
    hfl/chinese-roberta-wwm-ext-large (325.5 M) for Chinese. The offline tokenizer's ids all
    fall inside those vocabularies; the unused embedding rows are simply never read.
    ``tiny`` (width 64, 2 layers, 4 heads) sizes the embedding to the offline tokenizer.
    """
    if preset not in ARCHITECTURES:
        raise ValueError(f"unknown text preset {preset!r}; presets are {sorted(ARCHITECTURES)}")
    arch = ARCHITECTURES[preset]
    if language == "en":
        return RobertaConfig(
            vocab_size=vocab_size if preset == "tiny" else 50265,
            max_position_embeddings=MAX_POSITIONS + 2,  # RoBERTa counts from padding_idx + 1
            type_vocab_size=1,
            layer_norm_eps=1e-5,
            pad_token_id=1,
            bos_token_id=0,
            eos_token_id=2,
            **arch,
        )
    return BertConfig(
        vocab_size=vocab_size if preset == "tiny" else ZH_VOCAB_SIZE,
        max_position_embeddings=MAX_POSITIONS,
        pad_token_id=0,
        **arch,
    )


class RobertaEncoder(FeatureEncoder):
    """Text encoder on a RoBERTa or BERT checkpoint (see the module docstring)."""

    modality: ClassVar[str] = "text"
    Config: ClassVar[type] = TextConfig

    def __init__(self, config: TextConfig) -> None:
        super().__init__(config)
        self.checkpoint = config.checkpoint or DEFAULT_CHECKPOINTS[config.language]
        self.max_tokens = config.max_tokens or DEFAULT_MAX_TOKENS[config.language]
        source = resolve(self.checkpoint)
        self.source = source
        if source.kind == "random":
            self.tokenizer = english_tokenizer() if config.language == "en" else chinese_tokenizer()
            hf_config = random_text_config(source.name, config.language, len(self.tokenizer))
            self.model = AutoModel.from_config(hf_config, attn_implementation=config.attention)
        else:
            self.tokenizer, self.model = _load_pretrained(
                source.name, source.load_kwargs, reads_weights(source), config.attention
            )
        self.tokenizer.padding_side = "right"  # BERT's absolute positions need right padding
        if self.tokenizer.pad_token_id != self.model.config.pad_token_id:
            raise CheckpointError(
                f"{self.checkpoint!r}: tokenizer pads with id {self.tokenizer.pad_token_id}, the "
                f"model expects {self.model.config.pad_token_id}"
            )
        if getattr(self.model, "pooler", None) is None:
            raise CheckpointError(f"{self.checkpoint!r}: the model was built without a pooler")

    @classmethod
    def contract_config(cls) -> dict[str, Any]:
        return {"checkpoint": "random:tiny"}

    @property
    def dim(self) -> int:  # D
        return int(self.model.config.hidden_size)

    def preprocess(self, items: Sequence[Any]) -> dict[str, Tensor]:
        """Tokenize, truncate to ``max_tokens`` and pad (right) to the longest item, or to
        ``max_tokens`` with ``padding="max_length"``."""
        texts = list(items)
        for i, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"text item {i} is a {type(text).__name__}, not a str")
        enc = self.tokenizer(
            texts,
            padding=self.config.padding,
            truncation=True,
            max_length=self.max_tokens,
            return_tensors="pt",
            return_token_type_ids=False,
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}  # (B, T)

    def join_context(self, items: Sequence[Any]) -> str:
        """Earlier utterances joined oldest first with the tokenizer's separator token
        (``</s>`` for RoBERTa, ``[SEP]`` for BERT), as the authors' context model reads them;
        ``preprocess`` then truncates the joined text to ``max_tokens`` like any text."""
        sep = self.tokenizer.sep_token or " "
        return sep.join(str(x) for x in items)

    def describe_inputs(self, previews: Sequence[Any]) -> dict[str, int]:
        """How many texts have more than ``max_tokens`` tokens (special tokens included), so
        that ``preprocess`` cuts them; one batch call of the tokenizer."""
        texts = [str(text) for text in previews]
        if not texts:
            return {}
        ids = self.tokenizer(
            texts,
            truncation=False,
            return_attention_mask=False,
            return_token_type_ids=False,
            verbose=False,  # no warning for texts longer than the model's positions
        )["input_ids"]
        cut = sum(len(row) > self.max_tokens for row in ids)
        return {f"texts truncated to {self.max_tokens} tokens": cut} if cut else {}

    def forward(self, inputs: Mapping[str, Tensor]) -> EncoderOutput:
        attention_mask = inputs["attention_mask"]  # (B, T)
        out = self.model(input_ids=inputs["input_ids"], attention_mask=attention_mask)
        mask = attention_mask.bool()  # (B, T)
        hidden = out.last_hidden_state * mask[..., None]  # (B, T, D), padding zeroed
        return EncoderOutput(hidden=hidden, mask=mask, pooled=out.pooler_output)  # pooled (B, D)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write weights (safetensors), config and tokenizer; ``checkpoint=directory`` loads them."""
        self.model.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))

    def save_assets(self, directory: Any) -> bool:
        """Architecture config, tokenizer and the assets marker, no weights (see
        :mod:`mmml_encoders_hf.checkpoints`); nothing for random presets, which rebuild from
        their name."""
        if self.source.kind == "random":
            return False
        self.model.config.save_pretrained(str(directory))
        self.tokenizer.save_pretrained(str(directory))
        write_assets_marker(directory, self.source, type(self).__name__)
        return True

    @classmethod
    def config_with_assets(cls, config: dict[str, Any], directory: Any) -> dict[str, Any]:
        return with_checkpoint(config, directory)

    @classmethod
    def loads_pretrained_weights(cls, config: Mapping[str, Any]) -> bool:
        return loads_pretrained(config)


def _load_pretrained(
    name: str, load_kwargs: dict[str, Any], weights: bool, attention: str = "sdpa"
) -> tuple[Any, Any]:
    model = load_hf_model(
        name, MODEL_TYPES, "the roberta encoder", load_kwargs, weights=weights, attention=attention
    )
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, **load_kwargs)
    except OSError as exc:
        raise CheckpointError(f"cannot load the tokenizer of {name!r}: {exc}") from exc
    return tokenizer, model
