"""Offline tokenizers for the ``random:*`` presets (no hub, no network, deterministic).

English: a byte-level BPE in the RoBERTa layout (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2,
``<unk>`` 3, ``<mask>`` 4), lower-casing, trained on a word list written for this package
(``data/words_en.txt``, about 1,200 everyday and sentiment-bearing words). The trained
tokenizer is shipped as ``data/tokenizer_en.json`` so that a model saved today tokenizes the
same way after a ``tokenizers`` upgrade; ``python -m mmml_encoders_hf.offline_tokenizers``
rebuilds it, and a test checks the rebuild matches the shipped file. Every listed word is one
token; any other text still encodes (byte fallback), as pieces of the learned subwords.
Lower-casing is our choice for models trained from scratch on small data (it halves the
vocabulary a tiny model must learn); real RoBERTa checkpoints keep their own cased tokenizer.

Chinese: character level, BERT style (``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3,
``[MASK]`` 4): NFKC (full-width forms become ASCII), lower-casing, one token per CJK
character of the basic block U+4E00-U+9FA5 (20,902), CJK punctuation U+3000-U+303F (64),
the middle dot, printable ASCII (94) and ``##``-continuations of ASCII letters and digits
(62), so Latin words inside Chinese text become letter pieces rather than ``[UNK]``. With the
5 special tokens that is 21,128 entries, the size of the ``hfl/chinese-roberta-wwm-ext``
vocabulary, so ``random:base`` has its exact architecture.
It is built in code (nothing to ship) and is the same on every run.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from tokenizers import (
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)
from transformers import PreTrainedTokenizerFast

__all__ = [
    "EN_SPECIAL_TOKENS",
    "ZH_SPECIAL_TOKENS",
    "ZH_VOCAB_SIZE",
    "english_tokenizer",
    "chinese_tokenizer",
    "train_english_bpe",
    "english_words",
]

EN_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # RoBERTa's ids 0..4
ZH_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Upper bound for the BPE trainer; training stops earlier, once every listed word is whole.
EN_MAX_VOCAB = 4096
ZH_VOCAB_SIZE = 21128  # hfl/chinese-roberta-wwm-ext's vocabulary size
MODEL_MAX_LENGTH = 512  # position-embedding limit of both architectures (RoBERTa: 514 - 2)


def _data_file(name: str) -> Path:
    return Path(str(resources.files("mmml_encoders_hf") / "data" / name))


def english_words() -> list[str]:
    """The shipped word list the English BPE is trained on."""
    words: list[str] = []
    for line in _data_file("words_en.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            words.extend(line.split())
    return words


def train_english_bpe(words: Iterable[str]) -> Tokenizer:
    """Train the English byte-level BPE on ``words`` (deterministic for a given input)."""
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    # add_prefix_space: the first word of a sentence gets the same token as any other.
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=EN_MAX_VOCAB,
        special_tokens=list(EN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte: no <unk> needed
        show_progress=False,
    )
    tok.train_from_iterator([" ".join(words)], trainer)
    # Positional arguments: the keyword for the cls pair was renamed across tokenizers releases.
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>"))
    )
    return tok


def english_tokenizer() -> PreTrainedTokenizerFast:
    """The shipped English BPE wrapped as a transformers tokenizer (RoBERTa special tokens)."""
    tok = Tokenizer.from_file(str(_data_file("tokenizer_en.json")))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        cls_token="<s>",
        sep_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
    )


def _chinese_vocab() -> dict[str, int]:
    tokens = list(ZH_SPECIAL_TOKENS)
    ascii_printable = [chr(c) for c in range(0x21, 0x7F)]  # no space: it only separates
    tokens += ascii_printable
    tokens += ["##" + c for c in ascii_printable if c.isalnum()]
    tokens += [chr(c) for c in range(0x3000, 0x3040)]  # CJK symbols and punctuation
    tokens += ["\u00b7"]  # middle dot of transliterated names (NFKC keeps it)
    tokens += [chr(c) for c in range(0x4E00, 0x9FA6)]  # CJK unified ideographs, basic block
    if len(tokens) != ZH_VOCAB_SIZE:  # guards edits to the ranges above
        raise AssertionError(f"Chinese vocabulary has {len(tokens)} entries, not {ZH_VOCAB_SIZE}")
    return {t: i for i, t in enumerate(tokens)}


def chinese_tokenizer() -> PreTrainedTokenizerFast:
    """Character-level BERT-style tokenizer for Chinese ``random:*`` presets."""
    tok = Tokenizer(models.WordPiece(_chinese_vocab(), unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence(
        [
            normalizers.NFKC(),
            normalizers.BertNormalizer(
                clean_text=True, handle_chinese_chars=True, strip_accents=False, lowercase=True
            ),
        ]
    )
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        cls_token="[CLS]",
        sep_token="[SEP]",
        unk_token="[UNK]",
        pad_token="[PAD]",
        mask_token="[MASK]",
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
    )


def main(argv: list[str] | None = None) -> int:
    """Rebuild ``data/tokenizer_en.json`` from ``data/words_en.txt`` (maintainers only)."""
    argv = sys.argv[1:] if argv is None else argv
    out = Path(argv[0]) if argv else _data_file("tokenizer_en.json")
    tok = train_english_bpe(english_words())
    out.write_text(tok.to_str(pretty=True) + "\n", encoding="utf-8")
    print(f"wrote {out} ({tok.get_vocab_size()} tokens)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
