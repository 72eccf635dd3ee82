"""The offline tokenizers of the random presets: deterministic, sensible on English words,
character level on Chinese, and loadable again from a saved directory."""

from __future__ import annotations

from pathlib import Path

from mmml_encoders_hf.offline_tokenizers import (
    ZH_VOCAB_SIZE,
    chinese_tokenizer,
    english_tokenizer,
    english_words,
    train_english_bpe,
)
from transformers import AutoTokenizer


def test_shipped_english_bpe_is_the_deterministic_rebuild_of_the_word_list() -> None:
    shipped = english_tokenizer().backend_tokenizer
    rebuilt = train_english_bpe(english_words())
    assert rebuilt.get_vocab() == shipped.get_vocab()
    text = "The actors weren't convincing, but the music was absolutely wonderful!"
    assert rebuilt.encode(text).ids == shipped.encode(text).ids


def test_english_words_are_single_tokens_and_unknown_words_still_encode() -> None:
    tok = english_tokenizer()
    words = sorted(set(english_words()))
    assert len(words) > 1000
    whole = [w for w in words if len(tok(w, add_special_tokens=False)["input_ids"]) == 1]
    assert len(whole) / len(words) > 0.95, f"only {len(whole)} of {len(words)} words are whole"
    ids = tok("Great movie, TERRIBLE popcorn!")["input_ids"]
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    assert tok.unk_token_id not in ids
    assert tok.convert_ids_to_tokens(ids[1:4]) == ["Ġgreat", "Ġmovie", ","]
    # a word outside the list becomes subword pieces, never <unk>
    assert len(tok("zyxwvut", add_special_tokens=False)["input_ids"]) > 1
    assert tok.decode(ids, skip_special_tokens=True) == " great movie, terrible popcorn!"
    assert len(tok) < 4096  # small embedding for the tiny preset


def test_chinese_tokenizer_is_character_level() -> None:
    tok = chinese_tokenizer()
    assert len(tok) == ZH_VOCAB_SIZE
    ids = tok("今天天气很好，iPhone！")["input_ids"]
    tokens = tok.convert_ids_to_tokens(ids)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert tokens[1:7] == ["今", "天", "天", "气", "很", "好"]
    assert tokens[7:] == [",", "i", "##p", "##h", "##o", "##n", "##e", "!", "[SEP]"]
    assert tok.unk_token_id not in ids
    assert tok.pad_token_id == 0


def test_saved_tokenizers_load_back_identically(tmp_path: Path) -> None:
    for name, tok, text in (
        ("en", english_tokenizer(), "It was fine, I guess."),
        ("zh", chinese_tokenizer(), "还不错，挺好看的"),
    ):
        tok.save_pretrained(tmp_path / name)
        again = AutoTokenizer.from_pretrained(tmp_path / name, local_files_only=True)
        assert again(text)["input_ids"] == tok(text)["input_ids"]
        assert again.pad_token_id == tok.pad_token_id
